//! The Execution API routes: one file per route group, holding its router,
//! its handlers and its wire types.
//!
//! Every protected handler is declared with `#[execution_route]` inside the
//! group's `#[execution_router]` module, so its token policy is merged and
//! checked at compile time and enforced before any extractor runs. This file
//! is the list of groups.

pub(crate) mod bounds;
mod error;
mod fields;
mod payload;
mod query;

pub mod asset_events;
pub mod assets;
pub mod connection_tests;
pub mod connections;
pub mod dag_runs;
pub mod dags;
pub mod hitl;
pub mod state_store;
pub mod task_instances;
pub mod task_reschedules;
pub mod variables;
pub mod xcoms;

pub use error::{ApiError, RETRY_AFTER_SECONDS};
pub use fields::MessageResponse;
pub use payload::Payload;
pub use query::{FastApiQuery, FromQuery, QueryParams};

/// Every route under `/execution`: the routers of the groups, in this order (it
/// matters where two groups' paths could both match, as in Airflow's router).
/// Each names this one as its `parent`, which hands it the prefix.
#[policy_macros::execution_router(
    prefix = "/execution",
    routers = [
        task_instances::routes,
        variables::routes,
        connections::routes,
        xcoms::routes,
        dag_runs::routes,
        dags::routes,
        assets::routes,
        asset_events::routes,
        connection_tests::routes,
        hitl::routes,
        state_store::routes,
        task_reschedules::routes,
    ]
)]
pub mod execution {}

/// Every route under `/execution`, with its policy (read by `server routes`
/// and the OpenAPI document).
pub fn routes() -> Vec<policy_core::RouteInfo> {
    execution::routes()
}

/// Mounts the protected routes (the app adds `/health`, `/health/ping` and
/// `/openapi.json`).
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    execution::configure(cfg);
}
