use policy_macros::execution_route;

#[execution_route(patch, "/{task_instance_id}/state", scope = ["ti:self"])]
async fn update_state() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(UpdateStateRoute);
}
