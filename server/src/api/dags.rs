//! `/dags/{dag_id}`: a DAG's metadata.

use schemars::JsonSchema;
use serde::Serialize;

use crate::store::{self, timestamp};

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/dags", scopes = ["ti:running"])]
pub mod routes {
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;

    use super::DagResponse;
    use crate::api::ApiError;
    use crate::store::Store;

    /// Get a DAG.
    ///
    /// `DagResponse` (tags sorted), or 404.
    #[execution_route(get, "/{dag_id}", responses = [200 => DagResponse, 404])]
    pub async fn get_dag(
        store: web::Data<Store>,
        dag_id: web::Path<String>,
    ) -> Result<HttpResponse, ApiError> {
        match store.dag(&dag_id).await? {
            Some(dag) => Ok(HttpResponse::Ok().json(DagResponse::from(dag))),
            None => Err(ApiError::not_found(format!(
                "The Dag with dag_id: `{dag_id}` was not found"
            ))),
        }
    }
}

/// `DagResponse`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct DagResponse {
    /// DAG id.
    pub dag_id: String,
    /// Whether the DAG is paused.
    pub is_paused: bool,
    /// Its bundle.
    pub bundle_name: Option<String>,
    /// The bundle's version.
    pub bundle_version: Option<String>,
    /// Its file, relative to the bundle.
    pub relative_fileloc: Option<String>,
    /// Owners, comma-separated.
    pub owners: Option<String>,
    /// Tag names, sorted.
    pub tags: Vec<String>,
    /// The next scheduled logical date.
    pub next_dagrun: Option<String>,
}

impl From<store::Dag> for DagResponse {
    fn from(dag: store::Dag) -> DagResponse {
        DagResponse {
            dag_id: dag.dag_id,
            is_paused: dag.is_paused,
            bundle_name: dag.bundle_name,
            bundle_version: dag.bundle_version,
            relative_fileloc: dag.relative_fileloc,
            owners: dag.owners,
            tags: dag.tags,
            next_dagrun: dag.next_dagrun.map(timestamp),
        }
    }
}
