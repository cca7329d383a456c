//! A router's scopes and prefix are merged into each route at compile time.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications)]

use actix_web::App;
use policy_core::{Binding, RoutePolicy, TokenType};
use policy_macros::execution_router;

#[execution_router(prefix = "/task-instances", scopes = ["ti:self"])]
mod task_instances {
    use actix_web::{HttpResponse, put};
    use policy_macros::execution_route;

    // Repeating a router scope on a route is fine: merging is a union.
    #[execution_route(patch, "/{task_instance_id}/state", scopes = ["ti:self"])]
    async fn update_state() -> HttpResponse {
        HttpResponse::NoContent().finish()
    }

    #[execution_route]
    #[put("/{task_instance_id}/heartbeat")]
    async fn heartbeat() -> HttpResponse {
        HttpResponse::NoContent().finish()
    }
}

/// A router with neither prefix nor scopes, and no routes.
#[execution_router]
mod empty {}

const TI_SELF: RoutePolicy =
    RoutePolicy::AUTHENTICATED.with(policy_core::Scope::Bind(Binding::TaskInstance));

fn main() {
    let routes = task_instances::routes();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].method, "PATCH");
    assert_eq!(routes[0].path, "/task-instances/{task_instance_id}/state");
    assert_eq!(routes[0].handler, "update_state");
    assert_eq!(routes[1].method, "PUT");
    assert_eq!(
        routes[1].path,
        "/task-instances/{task_instance_id}/heartbeat"
    );
    for route in &routes {
        assert_eq!(route.policy, TI_SELF);
        assert!(!route.policy.allows(TokenType::Workload));
    }
    assert!(empty::routes().is_empty());

    let _app = App::new()
        .configure(task_instances::configure)
        .configure(empty::configure);
}
