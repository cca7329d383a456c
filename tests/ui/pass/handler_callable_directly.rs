//! In the combined spelling the handler stays an ordinary `async fn` that a unit
//! test can call; the service is generated beside it, with the fn's visibility.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications)]

use actix_web::{App, web};
use policy_macros::execution_route;

mod handlers {
    use actix_web::web;
    use policy_macros::execution_route;

    /// Sets a variable; callable from anywhere in the crate.
    #[execution_route(put, "/variables/{variable_key}")]
    pub(crate) async fn put_variable(body: web::Json<String>) -> String {
        format!("stored {}", body.into_inner())
    }
}

#[execution_route(get, "/variables/{variable_key}")]
async fn get_variable(key: web::Json<String>) -> String {
    key.into_inner().to_uppercase()
}

fn main() {
    let system = actix_web::rt::System::new();
    let got = system.block_on(get_variable(web::Json("my_var".to_owned())));
    assert_eq!(got, "MY_VAR");
    let put = system.block_on(handlers::put_variable(web::Json("x".to_owned())));
    assert_eq!(put, "stored x");

    let _app = App::new()
        .service(GetVariableRoute)
        .service(handlers::PutVariableRoute);
}
