use policy_macros::execution_route;

// Airflow silently ignores an unknown scope, so this typo would switch the
// subject check off. Here it does not compile.
#[execution_route(patch, "/{task_instance_id}/state", scopes = ["ti:slef"])]
async fn update_state() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(UpdateStateRoute);
}
