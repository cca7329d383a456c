use policy_macros::execution_route;

// The parameter is spelled `{id}`: `ti:self` would have nothing to compare with.
#[execution_route(patch, "/task-instances/{id}/state", scopes = ["ti:self"])]
async fn update_state() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(UpdateStateRoute);
}
