//! `#[execution_route]`: parse, validate, expand.

use proc_macro2::TokenStream;

use crate::fallback;
use crate::parse::{Handler, RouteInput, is_combined_args};

/// Expands one `#[execution_route(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let handler = match Handler::parse(item.clone()) {
        Ok(handler) => handler,
        Err(error) => return fallback::with_errors(item, error),
    };
    let combined = is_combined_args(&args);
    match RouteInput::parse(args, &handler).and_then(|input| input.validate()) {
        Ok(route) => route.expand(),
        Err(error) => fallback::with_errors(fallback::route(&handler, combined), error),
    }
}
