//! `#[execution_route]` above actix-web's own attribute, in its three forms.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications)]

use actix_web::{App, HttpResponse, get, route};
use policy_core::{ExecutionRoute, TokenType};
use policy_macros::execution_route;

/// Authenticated: execution tokens only.
#[execution_route]
#[get("/health/authenticated")]
async fn authenticated() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// Bound to the task instance, with actix-web's options kept.
#[execution_route(scopes = ["ti:self"])]
#[actix_web::patch("/task-instances/{task_instance_id}/state", name = "state")]
pub(crate) async fn update_state() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// Several methods through `#[route]`.
#[execution_route(scopes = ["token:execution"])]
#[route("/variables/{variable_key}", method = "GET", method = "HEAD")]
async fn variable() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {
    let info = authenticated::INFO;
    assert_eq!(
        (info.method, info.path, info.handler),
        ("GET", "/health/authenticated", "authenticated")
    );
    assert!(info.policy.allows(TokenType::Execution));
    assert!(!info.policy.allows(TokenType::Workload));
    assert!(info.policy.bindings().is_empty());

    let info = update_state::INFO;
    assert_eq!(info.method, "PATCH");
    assert_eq!(info.path, "/task-instances/{task_instance_id}/state");
    assert_eq!(
        info.policy.to_string(),
        "tokens: execution; bindings: ti:self"
    );

    assert_eq!(variable::INFO.method, "GET, HEAD");

    let _app = App::new()
        .service(authenticated)
        .service(update_state)
        .service(variable);
}
