//! Routers nest: prefixes concatenate, scopes accumulate, `configure` and
//! `routes` include the nested routers.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications)]

use actix_web::App;
use policy_macros::execution_router;

#[execution_router(prefix = "/execution")]
mod api {
    use actix_web::HttpResponse;
    use policy_macros::{execution_route, execution_router};

    #[execution_route(get, "/variables/{variable_key}")]
    async fn get_variable() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[execution_router(prefix = "/task-instances/{task_instance_id}", scopes = ["ti:self"])]
    mod task_instances {
        use actix_web::HttpResponse;
        use policy_macros::{execution_route, execution_router};

        #[execution_route(patch, "/state")]
        async fn update_state() -> HttpResponse {
            HttpResponse::NoContent().finish()
        }

        // A third level without a prefix: it only adds a scope.
        #[execution_router(scopes = ["token:workload", "token:execution"])]
        mod workload {
            use actix_web::HttpResponse;
            use policy_macros::execution_route;

            #[execution_route(patch, "/run")]
            async fn run() -> HttpResponse {
                HttpResponse::Ok().finish()
            }
        }
    }
}

fn main() {
    let listed: Vec<String> = api::routes()
        .iter()
        .map(|r| format!("{} {} {} [{}]", r.method, r.path, r.handler, r.policy))
        .collect();
    assert_eq!(
        listed,
        [
            "GET /execution/variables/{variable_key} get_variable [tokens: execution]",
            "PATCH /execution/task-instances/{task_instance_id}/state update_state [tokens: execution; bindings: ti:self]",
            "PATCH /execution/task-instances/{task_instance_id}/run run [tokens: execution, workload; bindings: ti:self]",
        ]
    );
    let _app = App::new().configure(api::configure);
}
