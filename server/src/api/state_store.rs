//! `/store/...`: the task and asset state stores.

/// The routes.
#[policy_macros::execution_router(prefix = "/execution/store")]
pub mod routes {}
