use policy_macros::execution_route;

// `task:self` compares the path's `{dag_id}/{run_id}/{task_id}` with the token's task
// instance; this path has no `{run_id}`, so the route would check nothing.
#[execution_route(post, "/xcoms/{dag_id}/{task_id}/{key}", scopes = ["task:self"])]
async fn set_xcom() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(SetXcomRoute);
}
