//! `/connection-tests/{connection_test_id}...`: connection tests run by a worker (workload tokens only).

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/connection-tests")]
pub mod routes {}
