//! `#[execution_router]`: parse, validate, expand.

use proc_macro2::TokenStream;

use crate::fallback;
use crate::parse::{RouterInput, require_inline, router_module};

/// Expands one `#[execution_router(args)] mod name { ... }`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let module = match router_module(item.clone()) {
        Ok(module) => module,
        Err(error) => return fallback::with_errors(item, error),
    };
    let result = require_inline(&module)
        .and_then(|()| RouterInput::parse(args, &module))
        .and_then(|input| input.validate());
    match result {
        Ok(router) => router.expand(),
        Err(error) => fallback::with_errors(fallback::router(&module), error),
    }
}
