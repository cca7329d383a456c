use policy_macros::execution_router;

// `ti:self` on the router applies to every route inside, nested routers
// included; two routes lack `{task_instance_id}`.
#[execution_router(prefix = "/task-instances", scopes = ["ti:self"])]
mod task_instances {
    use policy_macros::{execution_route, execution_router};

    #[execution_route(patch, "/{task_instance_id}/state")]
    async fn update_state() -> &'static str {
        "{}"
    }

    #[execution_route(get, "/count")]
    async fn count() -> &'static str {
        "0"
    }

    #[execution_router(prefix = "/previous")]
    mod previous {
        use policy_macros::execution_route;

        #[execution_route(get, "/{dag_id}")]
        async fn previous() -> &'static str {
            "{}"
        }
    }
}

fn main() {
    let _ = actix_web::App::new().configure(task_instances::configure);
}
