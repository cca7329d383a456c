//! `/hitlDetails/{task_instance_id}`: human-in-the-loop requests and responses.

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/hitlDetails")]
pub mod routes {}
