//! Phase three: code generation. Only `::policy_core::...` paths are named, so
//! the user's crate needs nothing in scope; locals are `__`-prefixed.

use policy_core::{Binding, RoutePolicy, TokenType};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Attribute, Ident, LitStr, Meta};

use crate::parse::Key;
use crate::validate::{Api, Member, Route, Router, Shape, service_ident};

/// The `const` expression of a policy computed by the macro, built only from
/// policy-core's `const fn`s.
fn policy_tokens(policy: RoutePolicy) -> TokenStream {
    let tokens = policy.declared_tokens().iter().map(|t| match t {
        TokenType::Execution => quote!(Execution),
        TokenType::Workload => quote!(Workload),
    });
    let bindings = policy.bindings().iter().map(|b| match b {
        Binding::TaskInstance => quote!(TaskInstance),
        Binding::ConnectionTest => quote!(ConnectionTest),
        Binding::Running => quote!(Running),
        Binding::OwnTask => quote!(OwnTask),
    });
    quote! {
        ::policy_core::RoutePolicy::new(
            ::policy_core::TokenTypes::NONE #(.with(::policy_core::TokenType::#tokens))*,
            ::policy_core::Bindings::NONE #(.with(::policy_core::Binding::#bindings))*,
        )
    }
}

/// `run`, also for `r#type`.
fn handler_name(handler: &Ident) -> String {
    let name = handler.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

pub(crate) fn route_info(
    method: &str,
    path: &str,
    handler: &Ident,
    policy: TokenStream,
    doc: &str,
    describe: TokenStream,
) -> TokenStream {
    let handler = handler_name(handler);
    quote! {
        ::policy_core::RouteInfo {
            method: #method,
            path: #path,
            handler: #handler,
            policy: #policy,
            doc: #doc,
            describe: #describe,
        }
    }
}

impl Api {
    /// `describe: ...`: a function filling an `Operation`, through
    /// `::policy_core::__describe!`, which drops it when policy-core is built
    /// without its `openapi` feature. Each argument type describes itself if
    /// it is a request part; then the declared body, query and responses.
    fn describe(&self) -> TokenStream {
        let arguments = &self.arguments;
        let body = self.body.iter();
        let query = self.query.iter();
        let responses = self.responses.iter().map(|(status, body)| match body {
            Some(body) => quote!(__operation.set_response::<#body>(#status);),
            None => quote!(__operation.set_response_schema(#status, ::core::option::Option::None);),
        });
        quote! {
            ::policy_core::__describe!(|__operation: &mut ::policy_core::Operation<'_>| {
                #[allow(unused_imports)]
                use ::policy_core::__private::arg::{DescribeArg as _, SkipArg as _};
                #((&::policy_core::__private::arg::Arg::<#arguments>::new()).describe_arg(__operation);)*
                #(__operation.set_body::<#body>();)*
                #(__operation.set_query::<#query>();)*
                #(#responses)*
            })
        }
    }
}

/// The text of `///` comments (`#[doc = "..."]`), one line each, without the
/// space that follows `///`.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        .flat_map(|text| {
            text.lines()
                .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// `#[get("/p", name = "x")]` -> `#[get("/p", name = "x", wrap = "...")]`.
fn with_argument(attr: &Attribute, argument: TokenStream) -> Attribute {
    let mut attr = attr.clone();
    if let Meta::List(list) = &mut attr.meta {
        let tokens = &list.tokens;
        let trailing_comma =
            tokens.clone().into_iter().last().is_some_and(
                |t| matches!(&t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','),
            );
        let separator = if tokens.is_empty() || trailing_comma {
            quote!()
        } else {
            quote!(,)
        };
        list.tokens = quote!(#tokens #separator #argument);
    } else {
        let path = attr.path().clone();
        attr = syn::parse_quote!(#[#path(#argument)]);
    }
    attr
}

impl Route {
    /// Phase three for `#[execution_route]`.
    pub(crate) fn expand(&self) -> TokenStream {
        let policy = policy_tokens(self.policy);
        let handler = &self.function.sig.ident;
        match &self.shape {
            Shape::Combined { method, path } => {
                let function = &self.function;
                let vis = &function.vis;
                let service = service_ident(handler);
                let (http, guard) = (method.http(), method.guard());
                let name = handler_name(handler);
                let info = route_info(
                    &http,
                    &self.full_path,
                    handler,
                    policy,
                    &doc_text(&function.attrs),
                    self.api.describe(),
                );
                let doc = format!(
                    "The actix-web service of `{name}`: `{http} {}` ({}). \
                     Generated by `#[execution_route]`; register it with `App::service`.",
                    self.full_path, self.policy
                );
                quote! {
                    #function

                    #[doc = #doc]
                    #[derive(Clone, Copy, Debug)]
                    #vis struct #service;

                    impl ::policy_core::ExecutionRoute for #service {
                        const INFO: ::policy_core::RouteInfo = #info;
                    }

                    impl ::policy_core::__private::actix_web::dev::HttpServiceFactory for #service {
                        fn register(
                            self,
                            __config: &mut ::policy_core::__private::actix_web::dev::AppService,
                        ) {
                            // The policy is a resource middleware: it runs before the handler's
                            // extractors, so an unauthorized caller never sees a body error.
                            let __resource = ::policy_core::__private::actix_web::Resource::new(#path)
                                .name(#name)
                                .guard(::policy_core::__private::actix_web::guard::#guard())
                                .wrap(::policy_core::Enforce::new(
                                    <Self as ::policy_core::ExecutionRoute>::INFO.policy,
                                ))
                                .to(#handler);
                            ::policy_core::__private::actix_web::dev::HttpServiceFactory::register(
                                __resource, __config,
                            );
                        }
                    }
                }
            }
            Shape::Actix {
                attr_index,
                methods,
            } => {
                let mut function = self.function.clone();
                let enforce = quote!(::policy_core::Enforce::new(#policy)).to_string();
                let enforce = LitStr::new(&enforce, Span::call_site());
                function.attrs[*attr_index] =
                    with_argument(&function.attrs[*attr_index], quote!(wrap = #enforce));
                let info = route_info(
                    &methods.join(", "),
                    &self.full_path,
                    handler,
                    policy,
                    &doc_text(&self.function.attrs),
                    self.api.describe(),
                );
                quote! {
                    #function

                    impl ::policy_core::ExecutionRoute for #handler {
                        const INFO: ::policy_core::RouteInfo = #info;
                    }
                }
            }
        }
    }
}

impl Router {
    /// Phase three for `#[execution_router]`: hands the merged scopes and
    /// prefix down to every member, then adds `configure` and `routes`.
    pub(crate) fn expand(&self) -> TokenStream {
        let mut module = self.module.clone();
        let pass_down = &self.pass_down;
        let prefix = LitStr::new(&self.full_prefix, Span::call_site());
        let (scopes_key, prefix_key) = (Key::InheritedScopes.ident(), Key::InheritedPrefix.ident());
        let hidden = quote!(#scopes_key = [#(#pass_down),*], #prefix_key = #prefix);

        let mut services = Vec::new();
        let mut nested = Vec::new();
        if let Some((_, items)) = &mut module.content {
            for member in &self.members {
                let (item_index, attr_index) = match member {
                    Member::Route {
                        item_index,
                        attr_index,
                        service,
                    } => {
                        services.push(service.clone());
                        (*item_index, *attr_index)
                    }
                    Member::Router {
                        item_index,
                        attr_index,
                        module,
                    } => {
                        nested.push(module.clone());
                        (*item_index, *attr_index)
                    }
                };
                let attrs = match &mut items[item_index] {
                    syn::Item::Fn(function) => &mut function.attrs,
                    syn::Item::Mod(module) => &mut module.attrs,
                    _ => continue,
                };
                attrs[attr_index] = with_argument(&attrs[attr_index], hidden.clone());
            }
            let mut mounted: Vec<TokenStream> = nested.iter().map(|m| quote!(#m)).collect();
            mounted.extend(self.children.iter().map(inside_module));
            items.extend(router_functions(self.prefix.as_ref(), &services, &mounted));
            items.extend(self.parent_items());
            if let Some(parent) = &self.parent {
                let parent = inside_module(parent);
                items.push(syn::parse_quote! {
                    /// The router this one is mounted in (checked by its `routers` list).
                    #[doc(hidden)]
                    pub type __Parent = #parent::__Router;
                });
            }
        }
        quote!(#module)
    }

    /// For a router with `routers = [...]`: the marker its children's
    /// `__Parent` must name, a check of each child, and the macro through
    /// which a child that names this router as `parent` receives its scopes
    /// and prefix.
    fn parent_items(&self) -> Vec<syn::Item> {
        if self.children.is_empty() {
            return Vec::new();
        }
        let pass_down = &self.pass_down;
        let prefix = LitStr::new(&self.full_prefix, Span::call_site());
        let (scopes_key, prefix_key, via_key) = (
            Key::InheritedScopes.ident(),
            Key::InheritedPrefix.ident(),
            Key::ViaParent.ident(),
        );
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(
            &(self.module.ident.to_string(), &self.full_prefix),
            &mut hasher,
        );
        let name = Ident::new(
            &format!(
                "__execution_router_{}_{:016x}",
                handler_name(&self.module.ident),
                std::hash::Hasher::finish(&hasher)
            ),
            Span::call_site(),
        );
        let checks = self.children.iter().map(|child| {
            let inside = inside_module(child);
            let span = syn::spanned::Spanned::span(child);
            quote::quote_spanned! {span=>
                // A router listed here must name this one as its `parent`.
                let _: #inside::__Parent = __Router;
            }
        });
        vec![
            syn::parse_quote! {
                /// Marks this router as the `parent` of the routers in its `routers` list.
                #[doc(hidden)]
                #[derive(Clone, Copy, Debug)]
                pub struct __Router;
            },
            syn::parse_quote! {
                #[doc(hidden)]
                const _: () = { #(#checks)* };
            },
            syn::parse_quote! {
                #[doc(hidden)]
                #[allow(unused_macros)]
                macro_rules! #name {
                    (($($args:tt)*) $($item:tt)*) => {
                        #[::policy_macros::execution_router(
                            $($args)* #via_key = (), #scopes_key = [#(#pass_down),*], #prefix_key = #prefix
                        )]
                        $($item)*
                    };
                }
            },
            syn::parse_quote! {
                #[doc(hidden)]
                #[allow(unused_imports)]
                pub(crate) use #name as __execution_router;
            },
        ]
    }
}

/// `#[execution_router(parent = p, ...)] mod m { ... }` becomes
/// `p::__execution_router! { (parent = p, ...,) mod m { ... } }`: the parent's
/// macro puts the attribute back with its own scopes and prefix added.
pub(crate) fn through_parent(
    parent: &syn::Path,
    args: TokenStream,
    module: &syn::ItemMod,
) -> TokenStream {
    let ends_with_comma = args
        .clone()
        .into_iter()
        .last()
        .is_some_and(|t| matches!(&t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','));
    let separator = if ends_with_comma { quote!() } else { quote!(,) };
    quote! {
        #parent::__execution_router! { (#args #separator) #module }
    }
}

/// A path written next to a router module, as code inside that module must
/// write it: relative paths go through `super`.
fn inside_module(path: &syn::Path) -> TokenStream {
    let first = path.segments.first().map(|s| s.ident.to_string());
    if path.leading_colon.is_some() || matches!(first.as_deref(), Some("crate" | "$crate")) {
        return quote!(#path);
    }
    if first.as_deref() == Some("self") {
        let rest = path.segments.iter().skip(1);
        return quote!(super #(:: #rest)*);
    }
    quote!(super::#path)
}

/// `configure` and `routes`, added to the router's module.
pub(crate) fn router_functions(
    prefix: Option<&LitStr>,
    services: &[Ident],
    nested: &[TokenStream],
) -> Vec<syn::Item> {
    let mount = match prefix {
        Some(prefix) => quote! {
            __cfg.service(
                ::policy_core::__private::actix_web::web::scope(#prefix)
                    #(.service(#services))*
                    #(.configure(#nested::configure))*
            );
        },
        None if services.is_empty() && nested.is_empty() => quote!(let _ = __cfg;),
        None => quote! {
            #(__cfg.service(#services);)*
            #(__cfg.configure(#nested::configure);)*
        },
    };
    let list = if nested.is_empty() {
        quote!(::std::vec![#(<#services as ::policy_core::ExecutionRoute>::INFO),*])
    } else {
        quote! {
            let mut __routes: ::std::vec::Vec<::policy_core::RouteInfo> =
                ::std::vec![#(<#services as ::policy_core::ExecutionRoute>::INFO),*];
            #(__routes.extend(#nested::routes());)*
            __routes
        }
    };
    vec![
        syn::parse_quote! {
            /// Mounts every route of this router, and of the routers nested in it, on an
            /// actix-web app: `App::new().configure(configure)`. Generated by
            /// `#[execution_router]`.
            pub fn configure(__cfg: &mut ::policy_core::__private::actix_web::web::ServiceConfig) {
                #mount
            }
        },
        syn::parse_quote! {
            /// Method, full path, handler and merged policy of every route of this router,
            /// nested routers included. Generated by `#[execution_router]`.
            pub fn routes() -> ::std::vec::Vec<::policy_core::RouteInfo> {
                #list
            }
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(tokens: impl quote::ToTokens) -> String {
        tokens.to_token_stream().to_string().replace(' ', "")
    }

    #[test]
    fn policy_is_built_from_const_fns_of_policy_core() {
        let policy = RoutePolicy::from_scopes(["ti:self", "token:workload"]).unwrap();
        assert_eq!(
            flat(policy_tokens(policy)),
            "::policy_core::RoutePolicy::new(\
             ::policy_core::TokenTypes::NONE.with(::policy_core::TokenType::Workload),\
             ::policy_core::Bindings::NONE.with(::policy_core::Binding::TaskInstance),)"
        );
        assert_eq!(
            flat(policy_tokens(RoutePolicy::AUTHENTICATED)),
            "::policy_core::RoutePolicy::new(::policy_core::TokenTypes::NONE,::policy_core::Bindings::NONE,)"
        );
    }

    #[test]
    fn an_argument_is_appended_after_the_existing_ones() {
        let wrap = quote!(wrap = "W");
        for (attr, expected) in [
            (quote!(#[get("/p")]), r#"#[get("/p",wrap="W")]"#),
            (quote!(#[get("/p",)]), r#"#[get("/p",wrap="W")]"#),
            (
                quote!(#[actix_web::get("/p", name = "n")]),
                r#"#[actix_web::get("/p",name="n",wrap="W")]"#,
            ),
            (
                quote!(#[execution_route]),
                r#"#[execution_route(wrap="W")]"#,
            ),
            (
                quote!(#[execution_route()]),
                r#"#[execution_route(wrap="W")]"#,
            ),
        ] {
            let attr: Attribute = syn::parse_quote!(#attr);
            assert_eq!(flat(with_argument(&attr, wrap.clone())), expected);
        }
    }
}
