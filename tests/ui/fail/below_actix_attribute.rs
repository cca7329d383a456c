use actix_web::get;
use policy_macros::execution_route;

// actix-web's attribute runs first and turns the function into a struct:
// `#[execution_route]` must come above it.
#[get("/task-instances/{task_instance_id}")]
#[execution_route(scopes = ["ti:self"])]
async fn show() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(show);
}
