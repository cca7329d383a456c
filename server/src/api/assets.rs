//! `/assets/...`: assets by name, URI and alias.

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/assets")]
pub mod routes {}
