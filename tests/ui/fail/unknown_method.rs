use policy_macros::execution_route;

#[execution_route(fetch, "/variables/{variable_key}")]
async fn get_variable() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(GetVariableRoute);
}
