use policy_macros::execution_route;

#[execution_route(get, "/health")]
struct Health;

fn main() {
    let _ = Health;
}
