//! `/asset-events/...`: asset events by asset and by alias.

/// The routes.
#[policy_macros::execution_router(prefix = "/execution/asset-events")]
pub mod routes {}
