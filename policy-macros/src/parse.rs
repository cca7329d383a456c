//! Phase one: syntax only. Reads the attribute arguments and the annotated item
//! into plain structs; what the scopes, methods and paths *mean* is checked in
//! [`crate::validate`].

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, ItemFn, ItemMod, LitInt, LitStr, Meta, Token, Type};

use crate::errors::Errors;

/// The `key = value` arguments either macro knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// `scopes = [...]`.
    Scopes,
    /// `prefix = "/path"` (routers).
    Prefix,
    /// Hidden, added by an enclosing `#[execution_router]`: its scopes.
    InheritedScopes,
    /// Hidden, added by an enclosing `#[execution_router]`: the path of every
    /// enclosing router, concatenated.
    InheritedPrefix,
    /// `parent = path::to::router` (routers in another file than their parent).
    Parent,
    /// `routers = [path::to::child, ...]` (the routers that name this one as parent).
    Routers,
    /// Hidden, added when a parent router hands its scopes and prefix to a
    /// router that names it with `parent`.
    ViaParent,
    /// `body = Type`: the JSON request body, when no extractor says it.
    Body,
    /// `query = Type`: the query parameters, when no extractor says them.
    Query,
    /// `responses = [201 => Type, 404]`: statuses and JSON bodies.
    Responses,
}

impl Key {
    const ALL: [Key; 10] = [
        Key::Scopes,
        Key::Body,
        Key::Query,
        Key::Responses,
        Key::Prefix,
        Key::InheritedScopes,
        Key::InheritedPrefix,
        Key::Parent,
        Key::Routers,
        Key::ViaParent,
    ];

    fn of(ident: &Ident) -> Option<Key> {
        Key::ALL.into_iter().find(|key| ident == key.written())
    }

    /// As written in the attribute.
    pub(crate) fn written(self) -> &'static str {
        match self {
            Key::Scopes => "scopes",
            Key::Prefix => "prefix",
            Key::InheritedScopes => "__inherited_scopes",
            Key::InheritedPrefix => "__prefix",
            Key::Parent => "parent",
            Key::Routers => "routers",
            Key::ViaParent => "__via_parent",
            Key::Body => "body",
            Key::Query => "query",
            Key::Responses => "responses",
        }
    }

    /// The key as an identifier, for generated arguments.
    pub(crate) fn ident(self) -> Ident {
        Ident::new(self.written(), Span::call_site())
    }
}

/// The attributes of actix-web that declare a route, by their last path segment.
const ACTIX_ROUTE_ATTRIBUTES: [&str; 11] = [
    "get", "post", "put", "delete", "head", "connect", "options", "trace", "patch", "route",
    "routes",
];

/// One comma-separated argument: `patch`, `"/path"`, `key = value` (the
/// key as written, and which one it is if known), `body = Type`,
/// `query = Type` or `responses = [...]`.
enum Arg {
    Flag(Ident),
    Path(LitStr),
    Named(Ident, Option<Key>, Expr),
    Type(Ident, Key, Box<Type>),
    Responses(Ident, Vec<ResponseArg>),
}

/// One entry of `responses = [...]`: `404`, or `201 => MessageResponse` for a
/// response with a JSON body.
pub(crate) struct ResponseArg {
    /// The status code as written.
    pub(crate) status: LitInt,
    /// The body's type, if the response has one.
    pub(crate) body: Option<Type>,
}

impl Parse for ResponseArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let status: LitInt = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "a response is a status, e.g. `404`, or a status and its body type, e.g. `200 => TIRunContext`",
            )
        })?;
        let body = if input.parse::<Option<Token![=>]>>()?.is_some() {
            Some(input.parse()?)
        } else {
            None
        };
        Ok(ResponseArg { status, body })
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return input.parse().map(Arg::Path);
        }
        if input.peek(Ident) && input.peek2(Token![=]) {
            let ident: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let key = Key::of(&ident);
            return match key {
                Some(key @ (Key::Body | Key::Query)) => {
                    Ok(Arg::Type(ident, key, Box::new(input.parse()?)))
                }
                Some(Key::Responses) => {
                    let content;
                    syn::bracketed!(content in input);
                    let list = Punctuated::<ResponseArg, Token![,]>::parse_terminated(&content)?;
                    Ok(Arg::Responses(ident, list.into_iter().collect()))
                }
                _ => Ok(Arg::Named(ident, key, input.parse()?)),
            };
        }
        if input.peek(Ident) {
            return input.parse().map(Arg::Flag);
        }
        Err(input.error("expected a method (`get`), a path (`\"/path\"`) or `scopes = [...]`"))
    }
}

/// The hidden arguments an enclosing router adds; shared by both macros.
#[derive(Default)]
pub(crate) struct Inherited {
    /// The scopes of every enclosing router, innermost first, with their spans.
    pub(crate) scopes: Vec<LitStr>,
    /// The path of every enclosing router, concatenated.
    pub(crate) prefix: Option<LitStr>,
}

impl Inherited {
    /// Takes `key = value` if it is one of the hidden arguments.
    fn take(&mut self, key: Option<Key>, ident: &Ident, value: &Expr, errors: &mut Errors) -> bool {
        match key {
            Some(Key::InheritedScopes) => self.scopes = scope_list(ident, value, errors),
            Some(Key::InheritedPrefix) => self.prefix = string(ident, value, errors),
            _ => return false,
        }
        true
    }
}

/// `#[execution_route(...)]` arguments.
pub(crate) struct RouteArgs {
    /// `patch` in the combined spelling.
    pub(crate) method: Option<Ident>,
    /// `"/{task_instance_id}/run"` in the combined spelling.
    pub(crate) path: Option<LitStr>,
    /// The route's own `scopes = [...]`.
    pub(crate) scopes: Vec<LitStr>,
    /// What enclosing routers passed down.
    pub(crate) inherited: Inherited,
    /// `body = Type`.
    pub(crate) body: Option<Type>,
    /// `query = Type`.
    pub(crate) query: Option<Type>,
    /// `responses = [...]`.
    pub(crate) responses: Vec<ResponseArg>,
}

impl Parse for RouteArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let args = Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        let mut errors = Errors::default();
        let mut route = RouteArgs {
            method: None,
            path: None,
            scopes: Vec::new(),
            inherited: Inherited::default(),
            body: None,
            query: None,
            responses: Vec::new(),
        };
        let mut seen_scopes: Option<Ident> = None;
        let mut seen: Vec<Ident> = Vec::new();
        let mut once = |key: &Ident, errors: &mut Errors| {
            if seen.contains(key) {
                errors.push(syn::Error::new_spanned(
                    key,
                    format!("`{key}` is given twice"),
                ));
            }
            seen.push(key.clone());
        };
        for arg in args {
            match arg {
                Arg::Flag(method) => match &route.method {
                    Some(first) => errors.push(syn::Error::new_spanned(
                        &method,
                        format!("a route has one method; `{first}` is already given"),
                    )),
                    None => route.method = Some(method),
                },
                Arg::Path(path) => match &route.path {
                    Some(first) => errors.push(syn::Error::new_spanned(
                        &path,
                        format!("a route has one path; `{}` is already given", first.value()),
                    )),
                    None => route.path = Some(path),
                },
                Arg::Named(key, which, value) => {
                    if which == Some(Key::Scopes) {
                        if seen_scopes.replace(key.clone()).is_some() {
                            errors.push(syn::Error::new_spanned(
                                &key,
                                "`scopes` is given twice; write all scopes in one list",
                            ));
                        }
                        route.scopes.extend(scope_list(&key, &value, &mut errors));
                    } else if !route.inherited.take(which, &key, &value, &mut errors) {
                        errors.push(syn::Error::new_spanned(
                            &key,
                            format!(
                                "unknown argument `{key}`; expected `scopes`, `body`, `query` or `responses`"
                            ),
                        ));
                    }
                }
                Arg::Type(key, which, ty) => {
                    once(&key, &mut errors);
                    match which {
                        Key::Body => route.body = Some(*ty),
                        _ => route.query = Some(*ty),
                    }
                }
                Arg::Responses(key, responses) => {
                    once(&key, &mut errors);
                    route.responses = responses;
                }
            }
        }
        errors.finish(route)
    }
}

/// `#[execution_router(...)]` arguments.
pub(crate) struct RouterArgs {
    /// `prefix = "/task-instances"`.
    pub(crate) prefix: Option<LitStr>,
    /// The router's own `scopes = [...]`.
    pub(crate) scopes: Vec<LitStr>,
    /// `parent = super::execution`: the router this one is mounted in, kept in
    /// another module.
    pub(crate) parent: Option<syn::Path>,
    /// `routers = [super::variables::routes, ...]`: routers kept in other
    /// modules that name this one as their `parent`.
    pub(crate) routers: Vec<syn::Path>,
    /// Whether the parent has already handed its scopes and prefix down.
    pub(crate) via_parent: bool,
    /// What enclosing routers passed down.
    pub(crate) inherited: Inherited,
}

impl Parse for RouterArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let args = Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        let mut errors = Errors::default();
        let mut router = RouterArgs {
            prefix: None,
            scopes: Vec::new(),
            parent: None,
            routers: Vec::new(),
            via_parent: false,
            inherited: Inherited::default(),
        };
        let mut seen: Vec<Ident> = Vec::new();
        for arg in args {
            let (key, which, value) = match arg {
                Arg::Named(key, which, value) => (key, which, value),
                Arg::Type(key, ..) | Arg::Responses(key, _) => {
                    errors.push(syn::Error::new_spanned(
                        &key,
                        format!("`{key}` describes a route; put it on `#[execution_route]`"),
                    ));
                    continue;
                }
                Arg::Flag(ident) => {
                    errors.push(syn::Error::new_spanned(
                        &ident,
                        format!("unexpected `{ident}`; expected `prefix = \"/path\"` or `scopes = [...]`"),
                    ));
                    continue;
                }
                Arg::Path(path) => {
                    errors.push(syn::Error::new_spanned(
                        &path,
                        format!("a router path is written `prefix = \"{}\"`", path.value()),
                    ));
                    continue;
                }
            };
            if seen.contains(&key) {
                errors.push(syn::Error::new_spanned(
                    &key,
                    format!("`{key}` is given twice"),
                ));
                continue;
            }
            seen.push(key.clone());
            if which == Some(Key::Prefix) {
                router.prefix = string(&key, &value, &mut errors);
            } else if which == Some(Key::Scopes) {
                router.scopes = scope_list(&key, &value, &mut errors);
            } else if which == Some(Key::Parent) {
                router.parent = router_path(&key, &value, &mut errors);
            } else if which == Some(Key::Routers) {
                router.routers = router_paths(&key, &value, &mut errors);
            } else if which == Some(Key::ViaParent) {
                router.via_parent = true;
            } else if !router.inherited.take(which, &key, &value, &mut errors) {
                errors.push(syn::Error::new_spanned(
                    &key,
                    format!(
                        "unknown argument `{key}`; expected `prefix`, `scopes`, `parent` or `routers`"
                    ),
                ));
            }
        }
        errors.finish(router)
    }
}

/// `[ "a", "b" ]`: every element must be a string literal; each one that is not
/// is reported.
fn scope_list(key: &Ident, value: &Expr, errors: &mut Errors) -> Vec<LitStr> {
    let Expr::Array(array) = value else {
        errors.push(syn::Error::new_spanned(
            value,
            format!("`{key}` takes a list of string literals, e.g. `{key} = [\"ti:self\"]`"),
        ));
        return Vec::new();
    };
    let mut scopes = Vec::new();
    for element in &array.elems {
        match as_string(element) {
            Some(lit) => scopes.push(lit.clone()),
            None => errors.push(syn::Error::new_spanned(
                element,
                format!(
                    "a scope is a string literal, e.g. `\"ti:self\"`; expected {}",
                    policy_core::expected_scopes(true)
                ),
            )),
        }
    }
    scopes
}

/// `parent = path::to::router`: a path to a module under `#[execution_router]`.
fn router_path(key: &Ident, value: &Expr, errors: &mut Errors) -> Option<syn::Path> {
    match value {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            Some(path.path.clone())
        }
        Expr::Group(group) => router_path(key, &group.expr, errors),
        _ => {
            errors.push(syn::Error::new_spanned(
                value,
                format!(
                    "`{key}` takes the path of a module under `#[execution_router]`, \
                     e.g. `{key} = super::execution`"
                ),
            ));
            None
        }
    }
}

/// `routers = [a::routes, b::routes]`.
fn router_paths(key: &Ident, value: &Expr, errors: &mut Errors) -> Vec<syn::Path> {
    let Expr::Array(array) = value else {
        errors.push(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` takes a list of router modules, e.g. `{key} = [super::variables::routes]`"
            ),
        ));
        return Vec::new();
    };
    array
        .elems
        .iter()
        .filter_map(|element| router_path(key, element, errors))
        .collect()
}

fn string(key: &Ident, value: &Expr, errors: &mut Errors) -> Option<LitStr> {
    let lit = as_string(value).cloned();
    if lit.is_none() {
        errors.push(syn::Error::new_spanned(
            value,
            format!("`{key}` takes a string literal, e.g. `{key} = \"/task-instances\"`"),
        ));
    }
    lit
}

fn as_string(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Some(lit),
        Expr::Group(group) => as_string(&group.expr),
        _ => None,
    }
}

/// `#[execution_route]` as written, before its meaning is checked.
pub(crate) struct RouteInput<'a> {
    pub(crate) args: RouteArgs,
    pub(crate) handler: &'a Handler,
}

impl RouteInput<'_> {
    /// Phase one for `#[execution_route]`, once the item has been read as a
    /// [`Handler`] (kept apart so that the fallback has it even when the
    /// arguments do not parse).
    pub(crate) fn parse(args: TokenStream, handler: &Handler) -> syn::Result<RouteInput<'_>> {
        let args = syn::parse2::<RouteArgs>(args)?;
        Ok(RouteInput { args, handler })
    }
}

/// `#[execution_router]` as written.
pub(crate) struct RouterInput<'a> {
    pub(crate) args: RouterArgs,
    pub(crate) module: &'a ItemMod,
}

impl RouterInput<'_> {
    /// Phase one for `#[execution_router]`, once the item has been read by
    /// [`router_module`].
    pub(crate) fn parse(args: TokenStream, module: &ItemMod) -> syn::Result<RouterInput<'_>> {
        let args = syn::parse2::<RouterArgs>(args)?;
        Ok(RouterInput { args, module })
    }
}

/// The item under `#[execution_router]`: it must be a module.
pub(crate) fn router_module(item: TokenStream) -> syn::Result<ItemMod> {
    syn::parse2(item).map_err(|_| {
        syn::Error::new(
            Span::call_site(),
            "`#[execution_router]` goes on an inline module: `mod name { ... }`",
        )
    })
}

/// An inline module, as a router needs: a macro cannot read another file.
pub(crate) fn require_inline(module: &ItemMod) -> syn::Result<()> {
    match module.content {
        Some(_) => Ok(()),
        None => Err(syn::Error::new_spanned(
            module,
            "`#[execution_router]` needs an inline module (`mod name { ... }`): \
             a macro cannot read a module kept in another file",
        )),
    }
}

/// The annotated handler and, in the first spelling, the actix-web route
/// attribute found below `#[execution_route]`.
pub(crate) struct Handler {
    /// The function, attributes included.
    pub(crate) function: ItemFn,
    /// `#[get("/p")]`, `#[actix_web::route("/p", method = "GET")]`... if present.
    pub(crate) actix: Option<ActixAttr>,
    /// A second actix route attribute, an error reported by validation.
    pub(crate) extra_actix: Vec<Attribute>,
}

/// An actix-web route attribute, read far enough to know its path and methods.
pub(crate) struct ActixAttr {
    /// Its position in the function's attributes.
    pub(crate) index: usize,
    /// `get`, `patch`, `route`...
    pub(crate) kind: Ident,
    /// The path literal, or why it could not be read.
    pub(crate) path: syn::Result<LitStr>,
    /// `method = "GET"` values of `#[route]`.
    pub(crate) methods: Vec<LitStr>,
}

impl Handler {
    /// Reads the item under `#[execution_route]`; it must be a function.
    pub(crate) fn parse(item: TokenStream) -> syn::Result<Handler> {
        let function: ItemFn = syn::parse2(item).map_err(|_| {
            syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[execution_route]` goes on an `async fn` handler",
            )
        })?;
        let mut actix = None;
        let mut extra_actix = Vec::new();
        for (index, attr) in function.attrs.iter().enumerate() {
            let Some(kind) = last_segment(attr) else {
                continue;
            };
            if !ACTIX_ROUTE_ATTRIBUTES.contains(&kind.to_string().as_str()) {
                continue;
            }
            if actix.is_some() {
                extra_actix.push(attr.clone());
            } else {
                actix = Some(ActixAttr::read(index, kind.clone(), attr));
            }
        }
        Ok(Handler {
            function,
            actix,
            extra_actix,
        })
    }
}

impl ActixAttr {
    fn read(index: usize, kind: Ident, attr: &Attribute) -> ActixAttr {
        let unreadable = || {
            syn::Error::new_spanned(
                attr,
                format!("missing path in `#[{kind}]`; expected `#[{kind}(\"/path\")]`"),
            )
        };
        let mut methods = Vec::new();
        let path = match &attr.meta {
            Meta::List(list) if kind != "routes" => list
                .parse_args_with(|input: ParseStream<'_>| {
                    let path: LitStr = input.parse()?;
                    // The options (`name = "..."`, `method = "GET"`, `wrap = "..."`) are
                    // actix-web's to check; only `method` matters here.
                    while input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
                        let key: Ident = input.parse()?;
                        input.parse::<Token![=]>()?;
                        let value: Expr = input.parse()?;
                        if key == "method"
                            && let Some(method) = as_string(&value)
                        {
                            methods.push(method.clone());
                        }
                    }
                    Ok(path)
                })
                .map_err(|_| unreadable()),
            _ if kind == "routes" => Err(syn::Error::new_spanned(
                attr,
                "`#[routes]` declares several routes; `#[execution_route]` protects one: \
                 put it above a single `#[get(\"/path\")]` (or `#[route(...)]`) attribute",
            )),
            _ => Err(unreadable()),
        };
        ActixAttr {
            index,
            kind,
            path,
            methods,
        }
    }
}

/// The last segment of an attribute's path: `patch` for `#[actix_web::patch]`.
pub(crate) fn last_segment(attr: &Attribute) -> Option<&Ident> {
    attr.path().segments.last().map(|segment| &segment.ident)
}

/// Whether the first argument of an `#[execution_route(...)]` attribute makes
/// it the combined spelling (a method ident or a path literal). Decided on the
/// raw tokens so a router can name the generated service even when the route's
/// own arguments have errors.
pub(crate) fn is_combined(attr: &Attribute) -> bool {
    match &attr.meta {
        Meta::List(list) => is_combined_args(&list.tokens),
        _ => false,
    }
}

/// [`is_combined`] on the arguments alone.
pub(crate) fn is_combined_args(args: &TokenStream) -> bool {
    let mut tokens = args.clone().into_iter();
    match (tokens.next(), tokens.next()) {
        (Some(TokenTree::Literal(_)), _) => true,
        (Some(TokenTree::Ident(_)), Some(TokenTree::Punct(p))) => p.as_char() == ',',
        (Some(TokenTree::Ident(_)), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn the_combined_spelling_starts_with_a_method_or_a_path() {
        assert!(is_combined_args(&quote!(patch, "/p", scopes = ["ti:self"])));
        assert!(is_combined_args(&quote!(get)));
        assert!(is_combined_args(&quote!("/p")));
        assert!(!is_combined_args(&quote!(scopes = ["ti:self"])));
        assert!(!is_combined_args(&quote!()));
    }

    #[test]
    fn every_malformed_argument_is_reported() {
        let error =
            syn::parse2::<RouteArgs>(quote!(get, post, "/a", "/b", scope = [], scopes = "x"))
                .err()
                .unwrap();
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            [
                "a route has one method; `get` is already given",
                "a route has one path; `/a` is already given",
                "unknown argument `scope`; expected `scopes`, `body`, `query` or `responses`",
                "`scopes` takes a list of string literals, e.g. `scopes = [\"ti:self\"]`",
            ]
        );
    }

    #[test]
    fn parent_and_routers_are_paths() {
        let args: RouterArgs = syn::parse2(quote!(
            parent = super::execution,
            routers = [a::routes, crate::b::routes],
            __via_parent = ()
        ))
        .unwrap();
        assert_eq!(args.parent.unwrap().segments.len(), 2);
        assert_eq!(args.routers.len(), 2);
        assert!(args.via_parent);
        let error = syn::parse2::<RouterArgs>(quote!(parent = "x", routers = super::a))
            .err()
            .unwrap();
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            [
                "`parent` takes the path of a module under `#[execution_router]`, e.g. `parent = super::execution`",
                "`routers` takes a list of router modules, e.g. `routers = [super::variables::routes]`",
            ]
        );
    }

    #[test]
    fn body_query_and_responses_are_types() {
        let args: RouteArgs = syn::parse2(quote!(
            put,
            "/p",
            body = Payload<'static>,
            query = Vec<(String, String)>,
            responses = [201 => Option<Message>, 404]
        ))
        .unwrap();
        assert!(args.body.is_some() && args.query.is_some());
        assert_eq!(args.responses.len(), 2);
        assert!(args.responses[0].body.is_some() && args.responses[1].body.is_none());
        let error = syn::parse2::<RouteArgs>(quote!(body = A, body = B))
            .err()
            .unwrap();
        assert_eq!(error.to_string(), "`body` is given twice");
    }

    #[test]
    fn hidden_router_arguments_are_read() {
        let args: RouteArgs =
            syn::parse2(quote!(__inherited_scopes = ["ti:self"], __prefix = "/ti")).unwrap();
        assert_eq!(args.inherited.scopes[0].value(), "ti:self");
        assert_eq!(args.inherited.prefix.unwrap().value(), "/ti");
    }
}
