//! `/asset-events/...`: asset events by asset and by alias.

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/asset-events")]
pub mod routes {}
