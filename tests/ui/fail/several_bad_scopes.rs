use policy_macros::execution_route;

// Every mistake is reported in the same build, each on its own literal.
#[execution_route(
    patch,
    "/{task_instance_id}/run",
    scopes = ["ti:slef", "token:bogus", "admin", "token:workload", "token:workload", "ct:self"]
)]
async fn run() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(RunRoute);
}
