//! `/dags/{dag_id}`: a DAG's metadata.

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/dags")]
pub mod routes {}
