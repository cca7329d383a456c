use policy_macros::execution_router;

#[execution_router(prefix = "/task-instances/", scopes = ["ti:self"])]
mod task_instances {
    use policy_macros::execution_route;

    #[execution_route(patch, "/{task_instance_id}/run")]
    async fn run() -> &'static str {
        "{}"
    }
}

fn main() {
    let _ = actix_web::App::new().configure(task_instances::configure);
}
