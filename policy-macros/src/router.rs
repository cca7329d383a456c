//! `#[execution_router]`: parse, validate, expand.

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::errors::item_and_compile_error;
use crate::expand::router_functions;
use crate::validate::RouterInput;

/// Expands one `#[execution_router(args)] mod name { ... }`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let result = RouterInput::parse(args, item.clone()).and_then(|input| input.validate());
    match result {
        Ok(router) => router.expand(),
        Err(error) => item_and_compile_error(router_fallback(item), error),
    }
}

/// The module as written plus an empty `configure` and `routes`, so that code
/// calling them reports nothing beyond the real error.
fn router_fallback(item: TokenStream) -> TokenStream {
    let Ok(mut module) = syn::parse2::<syn::ItemMod>(item.clone()) else {
        return item;
    };
    match &mut module.content {
        Some((_, items)) => {
            items.extend(router_functions(None, &[], &[]));
            module.into_token_stream()
        }
        None => item,
    }
}
