use policy_macros::execution_route;

#[execution_route(get, "/variables/{variable_key}", scopes = ["token:bogus"])]
async fn get_variable() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(GetVariableRoute);
}
