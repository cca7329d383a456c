//! `/assets/...`: assets by name, URI and alias.

/// The routes.
#[policy_macros::execution_router(prefix = "/execution/assets")]
pub mod routes {}
