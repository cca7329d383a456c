//! `#[execution_route]`: parse, validate, expand.

use proc_macro2::TokenStream;

use crate::errors::item_and_compile_error;
use crate::expand::route_fallback;
use crate::parse::is_combined_args;
use crate::validate::RouteInput;

/// Expands one `#[execution_route(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let result = RouteInput::parse(args.clone(), item.clone()).and_then(|input| input.validate());
    match result {
        Ok(route) => route.expand(),
        Err(error) => item_and_compile_error(route_fallback(item, is_combined_args(&args)), error),
    }
}
