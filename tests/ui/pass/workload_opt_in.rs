//! Only the route that declares `token:workload` accepts workload tokens; the
//! merged policy is a `const`.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications)]

use actix_web::HttpResponse;
use policy_core::{ExecutionRoute, RoutePolicy, TokenType};
use policy_macros::execution_route;

#[execution_route(patch, "/{task_instance_id}/state", scopes = ["ti:self"])]
async fn update_state() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[execution_route(
    patch,
    "/{task_instance_id}/run",
    scopes = ["ti:self", "token:execution", "token:workload"]
)]
async fn run() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Usable in const context: computed by the macro.
const RUN: RoutePolicy = RunRoute::INFO.policy;
const STATE: RoutePolicy = UpdateStateRoute::INFO.policy;
const _: () = assert!(RUN.allows(TokenType::Workload) && RUN.allows(TokenType::Execution));
const _: () = assert!(!STATE.allows(TokenType::Workload) && STATE.allows(TokenType::Execution));

fn main() {
    assert_eq!(RUN.allowed_tokens().to_string(), "execution, workload");
    assert_eq!(STATE.allowed_tokens().to_string(), "execution");
    let _app = actix_web::App::new()
        .service(RunRoute)
        .service(UpdateStateRoute);
}
