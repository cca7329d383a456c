//! Routers compose across modules (and so across files): a child names its
//! `parent`, the parent lists its `routers`; prefixes concatenate and scopes
//! accumulate exactly as for routers nested inline.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications)]

use actix_web::App;
use policy_macros::execution_router;

/// The parent: a list of routers kept elsewhere.
#[execution_router(prefix = "/execution", scopes = ["token:execution"], routers = [task_instances::routes, variables::routes])]
mod api {}

mod task_instances {
    use policy_macros::execution_router;

    #[execution_router(parent = super::api, prefix = "/task-instances")]
    pub(crate) mod routes {
        use actix_web::HttpResponse;
        use policy_macros::execution_route;

        #[execution_route(patch, "/{task_instance_id}/run", scopes = ["ti:self", "token:workload"])]
        pub(crate) async fn run() -> HttpResponse {
            HttpResponse::Ok().finish()
        }

        #[execution_route(get, "/count")]
        pub(crate) async fn count() -> HttpResponse {
            HttpResponse::Ok().finish()
        }
    }
}

mod variables {
    use policy_macros::execution_router;

    // `crate::` paths work as well as relative ones.
    #[execution_router(parent = crate::api, prefix = "/variables")]
    pub(crate) mod routes {
        use actix_web::HttpResponse;
        use policy_macros::execution_route;

        #[execution_route(get, "/{variable_key}")]
        pub(crate) async fn get_variable() -> HttpResponse {
            HttpResponse::Ok().finish()
        }
    }
}

fn main() {
    let listed: Vec<String> = api::routes()
        .iter()
        .map(|r| format!("{} {} [{}]", r.method, r.path, r.policy))
        .collect();
    assert_eq!(
        listed,
        [
            "PATCH /execution/task-instances/{task_instance_id}/run [tokens: execution, workload; bindings: ti:self]",
            "GET /execution/task-instances/count [tokens: execution]",
            "GET /execution/variables/{variable_key} [tokens: execution]",
        ]
    );
    let _app = App::new().configure(api::configure);
}
