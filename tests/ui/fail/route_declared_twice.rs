use actix_web::patch;
use policy_macros::execution_route;

#[execution_route(patch, "/{task_instance_id}/state", scopes = ["ti:self"])]
#[patch("/{task_instance_id}/state")]
async fn update_state() -> &'static str {
    "{}"
}

fn main() {}
