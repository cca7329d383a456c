//! `/store/...`: the task and asset state stores.

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/store")]
pub mod routes {}
