use policy_macros::execution_router;

#[execution_router(prefix = "/task-instances")]
async fn run() -> &'static str {
    "{}"
}

fn main() {
    let _ = run;
}
