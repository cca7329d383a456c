//! A handler may take the current token (policy-core's extractor) next to any
//! other actix-web extractor, in both spellings.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications)]

use actix_web::{App, HttpResponse, web};
use policy_core::Token;
use policy_macros::execution_route;

#[execution_route(patch, "/{task_instance_id}/run", scopes = ["ti:self", "token:workload"])]
async fn run(token: Token, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(format!(
        "{} {} {} {}",
        token.sub(),
        token.token_type(),
        path.into_inner(),
        body.len()
    ))
}

#[execution_route(scopes = ["ti:self"])]
#[actix_web::get("/{task_instance_id}")]
async fn show(token: Token) -> HttpResponse {
    HttpResponse::Ok().body(token.sub().to_string())
}

fn main() {
    let _app = App::new().service(RunRoute).service(show);
}
