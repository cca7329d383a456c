//! # policy-core
//!
//! The runtime of a declarative token-policy engine for actix-web.
//!
//! Without default features this crate is only the pure [`scope`] grammar and
//! [`path`] pattern reader, shared with `policy-macros` so that compile time and
//! run time agree on what a valid scope is.

pub mod path;
pub mod scope;

pub use scope::{Binding, Bindings, RoutePolicy, Scope, ScopeError, TokenType, TokenTypes};
