//! The two spellings declare the same route and the same policy.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications)]

use actix_web::{App, HttpResponse};
use policy_core::ExecutionRoute;
use policy_macros::execution_route;

/// Above actix-web's attribute.
#[execution_route(scopes = ["ti:self", "token:workload"])]
#[actix_web::patch("/{task_instance_id}/run")]
async fn run_actix() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Combined: method and path in `#[execution_route]`.
#[execution_route(patch, "/{task_instance_id}/run", scopes = ["ti:self", "token:workload"])]
async fn run_combined() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {
    let actix = run_actix::INFO;
    let combined = RunCombinedRoute::INFO;
    assert_eq!(actix.method, combined.method);
    assert_eq!(actix.path, combined.path);
    assert_eq!(actix.policy, combined.policy);
    assert_eq!(
        (actix.handler, combined.handler),
        ("run_actix", "run_combined")
    );
    // `token:workload` alone does not let execution tokens in.
    assert_eq!(
        combined.policy.to_string(),
        "tokens: workload; bindings: ti:self"
    );

    let _app = App::new().service(run_actix).service(RunCombinedRoute);
}
