use policy_macros::execution_route;

// Neither a method and path nor an actix-web route attribute: nothing to
// protect, and no path to check `ti:self` against.
#[execution_route(scopes = ["ti:self"])]
async fn show() -> &'static str {
    "{}"
}

fn main() {
    let _ = show;
}
