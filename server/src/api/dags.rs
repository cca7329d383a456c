//! `/dags/{dag_id}`: a DAG's metadata.

/// The routes.
#[policy_macros::execution_router(prefix = "/execution/dags")]
pub mod routes {}
