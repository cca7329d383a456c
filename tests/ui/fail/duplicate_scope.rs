use policy_macros::execution_route;

#[execution_route(
    patch,
    "/{task_instance_id}/run",
    scopes = ["ti:self", "token:workload", "ti:self"]
)]
async fn run() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(RunRoute);
}
