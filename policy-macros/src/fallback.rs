//! What both macros emit when they cannot expand: the user's item, as far as
//! it was parsed, plus the errors, and just enough generated items that code
//! naming them compiles, so the user sees the real errors only (as actix-web
//! and tokio do). Works from the parsed model; never re-parses the item.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ItemMod;

use crate::expand::{route_info, router_functions};
use crate::parse::Handler;
use crate::validate::{is_valid_path, service_ident};

/// The item, then the errors.
pub(crate) fn with_errors(item: impl ToTokens, error: syn::Error) -> TokenStream {
    let mut tokens = item.into_token_stream();
    tokens.extend(error.into_compile_error());
    tokens
}

/// The handler as written, plus a service that registers nothing (so an
/// enclosing router's `configure` and `routes` still compile). `combined` says
/// which spelling the arguments use.
pub(crate) fn route(handler: &Handler, combined: bool) -> TokenStream {
    let mut function = handler.function.clone();
    let name = function.sig.ident.clone();
    let stub_info = route_info(
        "",
        "",
        &name,
        quote!(::policy_core::RoutePolicy::AUTHENTICATED),
        "",
        quote!(::core::option::Option::None),
    );
    if combined {
        let vis = &function.vis;
        let service = service_ident(&name);
        return quote! {
            #function

            #[doc(hidden)]
            #vis struct #service;

            impl ::policy_core::ExecutionRoute for #service {
                const INFO: ::policy_core::RouteInfo = #stub_info;
            }

            impl ::policy_core::__private::actix_web::dev::HttpServiceFactory for #service {
                fn register(self, _: &mut ::policy_core::__private::actix_web::dev::AppService) {
                    let _ = #name;
                }
            }
        };
    }
    match &handler.actix {
        // actix-web would report (or panic on) the same bad path again.
        Some(actix) if !actix.path.as_ref().is_ok_and(is_valid_path) => {
            function.attrs.remove(actix.index);
            quote!(#function)
        }
        Some(_) => quote! {
            #function

            impl ::policy_core::ExecutionRoute for #name {
                const INFO: ::policy_core::RouteInfo = #stub_info;
            }
        },
        None => quote!(#function),
    }
}

/// The module as written plus an empty `configure` and `routes`.
pub(crate) fn router(module: &ItemMod) -> TokenStream {
    let mut module = module.clone();
    if let Some((_, items)) = &mut module.content {
        items.extend(router_functions(None, &[], &[]));
    }
    module.into_token_stream()
}
