//! `#[execution_router]`: parse, validate, expand.

use proc_macro2::TokenStream;

use crate::parse::{RouterInput, require_inline, router_module};
use crate::{expand, fallback};

/// Expands one `#[execution_router(args)] mod name { ... }`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let module = match router_module(item.clone()) {
        Ok(module) => module,
        Err(error) => return fallback::with_errors(item, error),
    };
    let input =
        match require_inline(&module).and_then(|()| RouterInput::parse(args.clone(), &module)) {
            Ok(input) => input,
            Err(error) => return fallback::with_errors(fallback::router(&module), error),
        };
    // A router kept apart from its parent: the parent's macro hands down its
    // scopes and prefix, then calls this macro again (`__via_parent`).
    if let Some(parent) = &input.args.parent
        && !input.args.via_parent
        && input.args.inherited.prefix.is_none()
    {
        return expand::through_parent(parent, args, &module);
    }
    let result = input.validate();
    match result {
        Ok(router) => router.expand(),
        Err(error) => fallback::with_errors(fallback::router(&module), error),
    }
}
