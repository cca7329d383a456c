//! The Execution API routes: one file per route group, holding its router,
//! its handlers and its wire types.
//!
//! Every protected handler is declared with `#[execution_route]` inside the
//! group's `#[execution_router]` module, so its token policy is merged and
//! checked at compile time and enforced before any extractor runs. This file
//! is the list of groups.

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

/// Mounts the routers of every group, in this order (it matters where two
/// groups' paths could both match, as in Airflow's router).
const GROUPS: &[(
    fn(&mut actix_web::web::ServiceConfig),
    fn() -> Vec<policy_core::RouteInfo>,
)] = &[
    (
        task_instances::routes::configure,
        task_instances::routes::routes,
    ),
    (variables::routes::configure, variables::routes::routes),
    (connections::routes::configure, connections::routes::routes),
    (xcoms::routes::configure, xcoms::routes::routes),
    (dag_runs::routes::configure, dag_runs::routes::routes),
    (dags::routes::configure, dags::routes::routes),
    (assets::routes::configure, assets::routes::routes),
    (
        asset_events::routes::configure,
        asset_events::routes::routes,
    ),
    (
        connection_tests::routes::configure,
        connection_tests::routes::routes,
    ),
    (hitl::routes::configure, hitl::routes::routes),
    (state_store::routes::configure, state_store::routes::routes),
    (
        task_reschedules::routes::configure,
        task_reschedules::routes::routes,
    ),
];

/// Every route under `/execution`, with its policy (read by `server routes`
/// and the OpenAPI document).
pub fn routes() -> Vec<policy_core::RouteInfo> {
    GROUPS.iter().flat_map(|(_, routes)| routes()).collect()
}

/// Mounts the protected routes (the app adds `/health/ping` and `/openapi.json`).
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    for (configure, _) in GROUPS {
        configure(cfg);
    }
}
