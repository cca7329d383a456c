//! `/task-reschedules/{task_instance_id}/start_date`.

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/task-reschedules")]
pub mod routes {}
