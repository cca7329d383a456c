use policy_macros::execution_route;

const TI_SELF: &str = "ti:self";

#[execution_route(patch, "/{task_instance_id}/state", scopes = [TI_SELF, 42, "token:execution"])]
async fn update_state() -> &'static str {
    "{}"
}

fn main() {
    let _ = (TI_SELF, actix_web::App::new().service(UpdateStateRoute));
}
