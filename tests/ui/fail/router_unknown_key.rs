use policy_macros::execution_router;

#[execution_router(path = "/task-instances", scopes = ["ti:self"])]
mod task_instances {}

fn main() {
    let _ = actix_web::App::new().configure(task_instances::configure);
}
