use actix_web::get;
use policy_macros::execution_route;

// First spelling: the path is read from actix-web's attribute.
#[execution_route(scopes = ["ct:self"])]
#[get("/connection-tests/{connection_id}")]
async fn connection_test() -> &'static str {
    "{}"
}

fn main() {
    let _ = actix_web::App::new().service(connection_test);
}
