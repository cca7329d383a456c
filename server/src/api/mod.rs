//! The Execution API routes.
//!
//! [`execution`] is the route table: every protected handler is declared with
//! `#[execution_route]` inside `#[execution_router]` modules, so its token
//! policy is merged and checked at compile time and enforced before any
//! extractor runs. The handlers only extract and delegate; what they do lives
//! in plain functions beside this file.

mod error;
mod payload;
mod resources;
mod task_instances;
mod xcoms;

pub use error::{ApiError, RETRY_AFTER_SECONDS};
pub use payload::Payload;
pub use xcoms::{XComPath, XComQuery};

use policy_macros::execution_router;

/// Every route under `/execution`, with its policy (read by `server routes`
/// and the OpenAPI document).
pub fn routes() -> Vec<policy_core::RouteInfo> {
    execution::routes()
}

/// Mounts the protected routes (the app adds `/health/ping` and `/openapi.json`).
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    execution::configure(cfg);
}

/// The route table, as in DESIGN.md: the `ti:self` router, where only `/run`
/// opts into workload tokens, and three routers open to any execution token.
#[execution_router(prefix = "/execution")]
pub mod execution {
    use policy_macros::execution_router;

    /// `/task-instances/{task_instance_id}/...`: the token's subject must be that instance.
    #[execution_router(prefix = "/task-instances", scopes = ["ti:self"])]
    pub mod task_instances {
        use actix_web::{HttpRequest, HttpResponse, web};
        use policy_core::Token;
        use policy_macros::execution_route;
        use uuid::Uuid;

        use crate::api::{ApiError, Payload, task_instances};
        use crate::models::{TIEnterRunningPayload, TIHeartbeatInfo, TIStateUpdate};
        use crate::store::Store;

        /// Starts a queued task instance; returns its `TIRunContext`.
        #[execution_route(patch, "/{task_instance_id}/run", scopes = ["token:execution", "token:workload"])]
        pub async fn run(
            req: HttpRequest,
            token: Token,
            store: web::Data<Store>,
            id: web::Path<Uuid>,
            payload: Payload<TIEnterRunningPayload>,
        ) -> Result<HttpResponse, ApiError> {
            task_instances::run(&req, &token, &store, *id, &payload).await
        }

        /// Moves a running task instance to its final (or retry) state.
        #[execution_route(patch, "/{task_instance_id}/state")]
        pub async fn update_state(
            store: web::Data<Store>,
            id: web::Path<Uuid>,
            payload: Payload<TIStateUpdate>,
        ) -> Result<HttpResponse, ApiError> {
            task_instances::update_state(&store, *id, &payload).await
        }

        /// Records that a running task instance is alive.
        #[execution_route(put, "/{task_instance_id}/heartbeat")]
        pub async fn heartbeat(
            store: web::Data<Store>,
            id: web::Path<Uuid>,
            payload: Payload<TIHeartbeatInfo>,
        ) -> Result<HttpResponse, ApiError> {
            task_instances::heartbeat(&store, *id, &payload).await
        }
    }

    /// `/variables/{variable_key}`.
    #[execution_router(prefix = "/variables")]
    pub mod variables {
        use actix_web::{HttpResponse, web};
        use policy_macros::execution_route;

        use crate::api::{ApiError, Payload, resources};
        use crate::models::VariablePostBody;
        use crate::store::Store;

        /// Reads a variable.
        #[execution_route(get, "/{variable_key}")]
        pub async fn get_variable(
            store: web::Data<Store>,
            key: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            resources::get_variable(&store, &key).await
        }

        /// Creates or replaces a variable.
        #[execution_route(put, "/{variable_key}")]
        pub async fn put_variable(
            store: web::Data<Store>,
            key: web::Path<String>,
            body: Payload<VariablePostBody>,
        ) -> Result<HttpResponse, ApiError> {
            resources::put_variable(&store, &key, &body).await
        }

        /// Deletes a variable.
        #[execution_route(delete, "/{variable_key}")]
        pub async fn delete_variable(
            store: web::Data<Store>,
            key: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            resources::delete_variable(&store, &key).await
        }
    }

    /// `/connections/{connection_id}`.
    #[execution_router(prefix = "/connections")]
    pub mod connections {
        use actix_web::{HttpResponse, web};
        use policy_macros::execution_route;

        use crate::api::{ApiError, resources};
        use crate::store::Store;

        /// Reads a connection.
        #[execution_route(get, "/{connection_id}")]
        pub async fn get_connection(
            store: web::Data<Store>,
            conn_id: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            resources::get_connection(&store, &conn_id).await
        }
    }

    /// `/xcoms/{dag_id}/{run_id}/{task_id}/{key}`.
    #[execution_router(prefix = "/xcoms")]
    pub mod xcoms {
        use actix_web::{HttpResponse, web};
        use policy_macros::execution_route;

        use crate::api::{ApiError, XComPath, XComQuery, xcoms};
        use crate::store::Store;

        /// Reads an XCom.
        #[execution_route(get, "/{dag_id}/{run_id}/{task_id}/{key}")]
        pub async fn get_xcom(
            store: web::Data<Store>,
            path: web::Path<XComPath>,
            query: web::Query<XComQuery>,
        ) -> Result<HttpResponse, ApiError> {
            xcoms::get_xcom(&store, &path, &query).await
        }

        /// Stores an XCom (any JSON value).
        #[execution_route(post, "/{dag_id}/{run_id}/{task_id}/{key}")]
        pub async fn set_xcom(
            store: web::Data<Store>,
            path: web::Path<XComPath>,
            query: web::Query<XComQuery>,
            body: web::Bytes,
        ) -> Result<HttpResponse, ApiError> {
            xcoms::set_xcom(&store, &path, &query, &body).await
        }

        /// Deletes an XCom.
        #[execution_route(delete, "/{dag_id}/{run_id}/{task_id}/{key}")]
        pub async fn delete_xcom(
            store: web::Data<Store>,
            path: web::Path<XComPath>,
            query: web::Query<XComQuery>,
        ) -> Result<HttpResponse, ApiError> {
            xcoms::delete_xcom(&store, &path, &query).await
        }
    }
}
