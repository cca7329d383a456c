//! Phase two: meaning. Turns the parsed arguments into a checked model: scopes
//! parsed with policy-core's own grammar, paths read with policy-core's own
//! pattern reader, bindings checked against the full path (router prefixes
//! included), the merged [`RoutePolicy`] computed. Every mistake is collected.

use policy_core::path::path_params;
use policy_core::{Binding, RoutePolicy, Scope, ScopeError};
use proc_macro2::Span;
use syn::{Attribute, FnArg, Ident, Item, ItemFn, ItemMod, LitStr, Type};

use crate::errors::Errors;
use crate::parse::{self, Inherited, RouteArgs, RouteInput, RouterArgs, RouterInput};

/// An HTTP method of the combined spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Trace,
}

impl Method {
    /// Every method, in the order messages list them.
    const ALL: [Method; 8] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
        Method::Trace,
    ];

    fn parse(ident: &Ident) -> Option<Method> {
        Method::ALL.into_iter().find(|m| ident == m.written())
    }

    /// `patch`, as written in the attribute.
    fn written(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
            Method::Head => "head",
            Method::Options => "options",
            Method::Trace => "trace",
        }
    }

    /// `PATCH`.
    pub(crate) fn http(self) -> String {
        self.written().to_uppercase()
    }

    /// `Patch`, the actix-web guard function.
    pub(crate) fn guard(self) -> Ident {
        let written = self.written();
        let name = format!("{}{}", written[..1].to_uppercase(), &written[1..]);
        Ident::new(&name, Span::call_site())
    }
}

fn expected_methods() -> String {
    let mut list = String::new();
    for (i, method) in Method::ALL.iter().enumerate() {
        let separator = match i {
            0 => "",
            i if i + 1 == Method::ALL.len() => " or ",
            _ => ", ",
        };
        list.push_str(&format!("{separator}`{}`", method.written()));
    }
    list
}

/// A scope together with the literal that declared it, for error spans.
#[derive(Clone)]
pub(crate) struct Declared {
    pub(crate) scope: Scope,
    pub(crate) literal: LitStr,
}

/// Parses a list written by the user: every unknown, malformed or repeated
/// scope is an error on its literal; the valid ones are returned.
fn own_scopes(literals: &[LitStr], errors: &mut Errors) -> Vec<Declared> {
    let mut declared: Vec<Declared> = Vec::new();
    for literal in literals {
        match Scope::parse(&literal.value()) {
            Ok(scope) if declared.iter().any(|d| d.scope == scope) => {
                errors.spanned(literal, ScopeError::Duplicate(literal.value()));
            }
            Ok(scope) => declared.push(Declared {
                scope,
                literal: literal.clone(),
            }),
            Err(error) => errors.spanned(literal, error),
        }
    }
    declared
}

/// Scopes passed down by routers. They were checked (and reported) by the
/// router that declared them, so anything invalid here is skipped silently.
fn inherited_scopes(literals: &[LitStr]) -> Vec<Declared> {
    literals
        .iter()
        .filter_map(|literal| {
            let scope = Scope::parse(&literal.value()).ok()?;
            Some(Declared {
                scope,
                literal: literal.clone(),
            })
        })
        .collect()
}

fn policy_of<'a>(scopes: impl IntoIterator<Item = &'a Declared>) -> RoutePolicy {
    scopes
        .into_iter()
        .fold(RoutePolicy::AUTHENTICATED, |policy, d| policy.with(d.scope))
}

/// Checks a path literal on its own, then joined to the routers' prefix; on
/// success returns the full path and its parameters.
fn full_path(
    literal: &LitStr,
    prefix: Option<&LitStr>,
    errors: &mut Errors,
) -> Option<(String, Vec<String>)> {
    let local = literal.value();
    if let Err(error) = path_params(&local) {
        errors.spanned(literal, error);
        return None;
    }
    let full = format!("{}{local}", prefix.map(LitStr::value).unwrap_or_default());
    match path_params(&full) {
        Ok(params) => {
            let params = params.into_iter().map(str::to_owned).collect();
            Some((full, params))
        }
        Err(error) => {
            errors.spanned(literal, error);
            None
        }
    }
}

/// Every path parameter a declared binding reads must be in the full path:
/// `ti:self` needs `{task_instance_id}`, `ct:self` `{connection_test_id}`,
/// `task:self` `{dag_id}`, `{run_id}` and `{task_id}`. The error lands on the
/// scope literal, the route's own or, if inherited, the router's.
fn check_bindings(
    own: &[Declared],
    inherited: &[Declared],
    path: &str,
    params: &[String],
    handler: &Ident,
    errors: &mut Errors,
) {
    for binding in Binding::ALL {
        let Some(param) = binding
            .path_params()
            .iter()
            .find(|needed| !params.iter().any(|p| p == *needed))
        else {
            continue;
        };
        let declared = |list: &[Declared]| {
            list.iter()
                .find(|d| d.scope == Scope::Bind(binding))
                .map(|d| d.literal.clone())
        };
        let scope = binding.scope();
        if let Some(literal) = declared(own) {
            errors.spanned(
                literal,
                format!(
                    "`{scope}` needs a `{{{param}}}` parameter in the route path, \
                     but `{path}` has none"
                ),
            );
        } else if let Some(literal) = declared(inherited) {
            errors.spanned(
                literal,
                format!(
                    "`{scope}` of this router needs a `{{{param}}}` parameter in the path of \
                     every route it holds, but `{handler}` has path `{path}`"
                ),
            );
        }
    }
}

/// How the route is declared.
pub(crate) enum Shape {
    /// `#[execution_route(patch, "/p")]`: we register the route ourselves.
    Combined { method: Method, path: LitStr },
    /// `#[execution_route]` above `#[patch("/p")]`: actix-web registers it.
    Actix {
        attr_index: usize,
        methods: Vec<String>,
    },
}

/// A checked `#[execution_route]`.
pub(crate) struct Route {
    pub(crate) function: ItemFn,
    pub(crate) shape: Shape,
    /// Router prefixes and the route's path.
    pub(crate) full_path: String,
    /// The route's scopes merged with its routers'.
    pub(crate) policy: RoutePolicy,
    /// What the route reads and answers, for API documents.
    pub(crate) api: Api,
}

/// A route's request and responses: the handler's argument types (each
/// describes itself if it is a request part), then what the attribute
/// declares, which wins.
pub(crate) struct Api {
    /// The types of the handler's arguments.
    pub(crate) arguments: Vec<Type>,
    /// `body = Type`.
    pub(crate) body: Option<Type>,
    /// `query = Type`.
    pub(crate) query: Option<Type>,
    /// `responses = [...]`: status and body type.
    pub(crate) responses: Vec<(u16, Option<Type>)>,
}

impl RouteInput<'_> {
    /// Phase two: every mistake reported at once.
    pub(crate) fn validate(&self) -> syn::Result<Route> {
        let mut errors = Errors::default();
        let RouteArgs {
            scopes,
            inherited:
                Inherited {
                    scopes: inherited,
                    prefix,
                },
            ..
        } = &self.args;
        let own = own_scopes(scopes, &mut errors);
        let inherited = inherited_scopes(inherited);
        let policy = policy_of(own.iter().chain(&inherited));
        let handler = &self.handler.function.sig.ident;

        let (shape, path) = self.shape(&mut errors);
        let mut full = String::new();
        if let Some(path) = &path
            && let Some((full_path, params)) = full_path(path, prefix.as_ref(), &mut errors)
        {
            check_bindings(&own, &inherited, &full_path, &params, handler, &mut errors);
            full = full_path;
        }
        let api = self.api(&mut errors);
        // Every branch leaving `shape` empty has pushed an error.
        errors.finish(shape).and_then(|shape| {
            let shape = shape.ok_or_else(|| {
                syn::Error::new(Span::call_site(), "`#[execution_route]` sees no route")
            })?;
            Ok(Route {
                function: self.handler.function.clone(),
                shape,
                full_path: full,
                policy,
                api,
            })
        })
    }

    /// The declared responses checked (a status from 100 to 599, each once)
    /// and the argument types read off the signature. A generic handler's
    /// argument types cannot be named outside it: they describe nothing.
    fn api(&self, errors: &mut Errors) -> Api {
        let mut responses: Vec<(u16, Option<Type>)> = Vec::new();
        for response in &self.args.responses {
            match response.status.base10_parse::<u16>() {
                Ok(status) if (100..=599).contains(&status) => {
                    if responses.iter().any(|(s, _)| *s == status) {
                        errors.spanned(&response.status, format!("status {status} is given twice"));
                    }
                    responses.push((status, response.body.clone()));
                }
                _ => errors.spanned(
                    &response.status,
                    format!(
                        "`{}` is not an HTTP status; expected a number from 100 to 599",
                        response.status
                    ),
                ),
            }
        }
        let signature = &self.handler.function.sig;
        let arguments = if signature.generics.params.is_empty() {
            signature
                .inputs
                .iter()
                .filter_map(|input| match input {
                    FnArg::Typed(arg) if !matches!(*arg.ty, Type::ImplTrait(_)) => {
                        Some((*arg.ty).clone())
                    }
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        Api {
            arguments,
            body: self.args.body.clone(),
            query: self.args.query.clone(),
            responses,
        }
    }

    /// Which spelling is used, and the route's own path (when readable).
    fn shape(&self, errors: &mut Errors) -> (Option<Shape>, Option<LitStr>) {
        for extra in &self.handler.extra_actix {
            errors.spanned(
                extra,
                "a second route attribute; `#[execution_route]` protects exactly one route",
            );
        }

        match (&self.handler.actix, &self.args.method, &self.args.path) {
            (Some(actix), None, None) => {
                let methods = match actix.kind.to_string().as_str() {
                    "route" => actix.methods.iter().map(LitStr::value).collect(),
                    kind => vec![kind.to_uppercase()],
                };
                let path = match &actix.path {
                    Ok(path) => Some(path.clone()),
                    Err(error) => {
                        errors.push(error.clone());
                        None
                    }
                };
                let shape = Shape::Actix {
                    attr_index: actix.index,
                    methods,
                };
                (Some(shape), path)
            }
            (Some(actix), _, _) => {
                let kind = &actix.kind;
                errors.spanned(
                    &self.handler.function.attrs[actix.index],
                    format!(
                        "the route is declared twice: by `#[{kind}]` here and by the method \
                         and path of `#[execution_route]`; keep one of them"
                    ),
                );
                (None, None)
            }
            (None, None, None) => {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    "`#[execution_route]` sees no route to protect: put it above actix-web's \
                     route attribute (`#[get(\"/path\")]`, `#[route(\"/path\", method = \"GET\")]`), \
                     not below it, or give the method and path: \
                     `#[execution_route(get, \"/path\", scopes = [...])]`",
                ));
                (None, None)
            }
            (None, Some(method), None) => {
                errors.spanned(
                    method,
                    format!(
                        "missing path after `{method}`: expected \
                         `#[execution_route({method}, \"/path\", ...)]`"
                    ),
                );
                if Method::parse(method).is_none() {
                    errors.spanned(method, unknown_method(method));
                }
                (None, None)
            }
            (None, None, Some(path)) => {
                errors.spanned(
                    path,
                    format!(
                        "missing method: expected `#[execution_route(get, \"{}\", ...)]`; \
                         the method is one of {}",
                        path.value(),
                        expected_methods()
                    ),
                );
                (None, Some(path.clone()))
            }
            (None, Some(method), Some(path)) => match Method::parse(method) {
                Some(m) => {
                    let shape = Shape::Combined {
                        method: m,
                        path: path.clone(),
                    };
                    (Some(shape), Some(path.clone()))
                }
                None => {
                    errors.spanned(method, unknown_method(method));
                    (None, Some(path.clone()))
                }
            },
        }
    }
}

fn unknown_method(method: &Ident) -> String {
    format!("unknown method `{method}`; expected {}", expected_methods())
}

/// `get_variable` -> `GetVariableRoute`: the service generated beside a handler
/// in the combined spelling.
pub(crate) fn service_ident(handler: &Ident) -> Ident {
    let name = handler.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let mut pascal = String::with_capacity(name.len() + 5);
    for word in name.split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            pascal.extend(first.to_uppercase());
            pascal.push_str(chars.as_str());
        }
    }
    pascal.push_str("Route");
    Ident::new(&pascal, Span::call_site())
}

/// What a router mounts.
pub(crate) enum Member {
    /// A `#[execution_route]` function and the service it registers as.
    Route {
        item_index: usize,
        attr_index: usize,
        service: Ident,
    },
    /// A nested `#[execution_router]` module.
    Router {
        item_index: usize,
        attr_index: usize,
        module: Ident,
    },
}

/// A checked `#[execution_router]`.
pub(crate) struct Router {
    pub(crate) module: ItemMod,
    /// The router's own prefix (its `web::scope`), if any.
    pub(crate) prefix: Option<LitStr>,
    /// Every enclosing router's prefix and this one's, concatenated.
    pub(crate) full_prefix: String,
    /// Scopes handed down: this router's valid ones, then the inherited ones.
    pub(crate) pass_down: Vec<LitStr>,
    pub(crate) members: Vec<Member>,
    /// `parent = ...`, once the parent has handed its scopes and prefix down.
    pub(crate) parent: Option<syn::Path>,
    /// `routers = [...]`: routers in other modules mounted in this one.
    pub(crate) children: Vec<syn::Path>,
}

impl RouterInput<'_> {
    /// Phase two: scopes and prefix checked, members found.
    pub(crate) fn validate(&self) -> syn::Result<Router> {
        let mut errors = Errors::default();
        let RouterArgs {
            prefix,
            scopes,
            parent,
            routers,
            via_parent,
            inherited,
        } = &self.args;
        if let Some(parent) = parent
            && !via_parent
        {
            errors.spanned(
                parent,
                "a router nested in another router's module inherits from it; `parent` is for \
                 a router kept in another module",
            );
        }
        let own = own_scopes(scopes, &mut errors);
        let pass_down = own
            .into_iter()
            .map(|d| d.literal)
            .chain(
                inherited_scopes(&inherited.scopes)
                    .into_iter()
                    .map(|d| d.literal),
            )
            .collect();

        let outer = inherited
            .prefix
            .as_ref()
            .map(LitStr::value)
            .unwrap_or_default();
        let mut full_prefix = outer.clone();
        let prefix = prefix.clone().filter(|p| !p.value().is_empty());
        if let Some(prefix) = &prefix {
            let value = prefix.value();
            if value.ends_with('/') {
                errors.spanned(
                    prefix,
                    format!(
                        "router prefix `{value}` must not end with `/`: each route path starts \
                         with its own `/`"
                    ),
                );
            } else if let Err(error) = path_params(&value) {
                errors.spanned(prefix, error);
            } else {
                full_prefix.push_str(&value);
                if let Err(error) = path_params(&full_prefix) {
                    errors.spanned(prefix, error);
                }
            }
        }

        let mut members = Vec::new();
        let items = self
            .module
            .content
            .as_ref()
            .map_or(&[][..], |(_, items)| items);
        for (item_index, item) in items.iter().enumerate() {
            match item {
                Item::Fn(function) => {
                    if let Some(attr_index) = find(&function.attrs, "execution_route") {
                        let attr = &function.attrs[attr_index];
                        let service = if parse::is_combined(attr) {
                            service_ident(&function.sig.ident)
                        } else {
                            function.sig.ident.clone()
                        };
                        members.push(Member::Route {
                            item_index,
                            attr_index,
                            service,
                        });
                    }
                }
                Item::Mod(module) => {
                    if let Some(attr_index) = find(&module.attrs, "execution_router") {
                        members.push(Member::Router {
                            item_index,
                            attr_index,
                            module: module.ident.clone(),
                        });
                    }
                }
                _ => {}
            }
        }

        errors.finish(Router {
            module: self.module.clone(),
            prefix,
            full_prefix,
            pass_down,
            members,
            parent: parent.clone().filter(|_| *via_parent),
            children: routers.clone(),
        })
    }
}

/// Whether actix-web can take this path as it is.
pub(crate) fn is_valid_path(path: &LitStr) -> bool {
    path_params(&path.value()).is_ok()
}

fn find(attrs: &[Attribute], name: &str) -> Option<usize> {
    attrs
        .iter()
        .position(|attr| parse::last_segment(attr).is_some_and(|ident| ident == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_pascal_case_plus_route() {
        let name = |s: &str| service_ident(&Ident::new(s, Span::call_site())).to_string();
        assert_eq!(name("get_variable"), "GetVariableRoute");
        assert_eq!(name("run"), "RunRoute");
        assert_eq!(name("_private_v2"), "PrivateV2Route");
    }

    #[test]
    fn methods_parse_and_name_their_http_method_and_guard() {
        for method in Method::ALL {
            let ident = Ident::new(method.written(), Span::call_site());
            assert_eq!(Method::parse(&ident), Some(method));
        }
        let patch = Method::parse(&Ident::new("patch", Span::call_site())).unwrap();
        assert_eq!(
            (patch.http(), patch.guard().to_string()),
            ("PATCH".into(), "Patch".into())
        );
        assert_eq!(Method::parse(&Ident::new("PATCH", Span::call_site())), None);
    }

    #[test]
    fn method_list_reads_like_english() {
        assert_eq!(
            expected_methods(),
            "`get`, `post`, `put`, `patch`, `delete`, `head`, `options` or `trace`"
        );
    }
}
