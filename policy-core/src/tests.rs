//! Request-level tests: a real actix `App` with the route guard, the `Token`
//! extractor and the reissue middleware, as the server wires them.

use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use actix_web::test as atest;
use actix_web::{App, HttpRequest, HttpResponse, web};
use serde_json::json;
use uuid::Uuid;

use crate::testutil::*;
use crate::validate::unix_now;
use crate::*;

const TI_SELF: RoutePolicy = RoutePolicy::new(TokenTypes::NONE, Bindings::TASK_INSTANCE);
const RUN: RoutePolicy = RoutePolicy::new(
    TokenTypes::EXECUTION.with(TokenType::Workload),
    Bindings::TASK_INSTANCE,
);
const CT_SELF: RoutePolicy = RoutePolicy::new(TokenTypes::NONE, Bindings::CONNECTION_TEST);

/// Uses the token three ways (two extractors and `authenticate`) on top of the guard.
async fn heartbeat(req: HttpRequest, a: Token, b: Token) -> HttpResponse {
    let c = authenticate(&req).unwrap();
    assert!(std::sync::Arc::ptr_eq(a.claims(), &c) && std::sync::Arc::ptr_eq(b.claims(), &c));
    HttpResponse::Ok().body(format!("{} {}", a.sub(), a.token_type()))
}

async fn run(token: Token) -> HttpResponse {
    // The /run exchange sets the header itself; Reissue must keep it.
    HttpResponse::Ok()
        .insert_header((
            REFRESHED_TOKEN_HEADER,
            format!("exchanged-for-{}", token.sub()),
        ))
        .finish()
}

async fn set_state(body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(body.into_inner())
}

async fn extractor_only(token: Token) -> HttpResponse {
    HttpResponse::Ok().body(token.sub().to_string())
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().body("pong")
}

struct Fixture {
    key: SigningKey,
    validator: TokenValidator,
    generator: TokenGenerator,
}

impl Fixture {
    /// The cache is off so that any second validation would show in the counter.
    fn new() -> Fixture {
        let key = hs512();
        Fixture {
            validator: validator_with(&key, uncached()),
            generator: generator(&key),
            key,
        }
    }

    fn token(&self, scope: TokenType, ttl: u64) -> String {
        self.generator
            .generate(TI, scope, Duration::from_secs(ttl))
            .unwrap()
    }
}

/// The app as the server wires it (a macro: the service type cannot be named).
macro_rules! app {
    ($f:expr) => {{
        let f: &Fixture = $f;
        atest::init_service(
            App::new()
                .app_data(f.validator.clone())
                .app_data(f.generator.clone())
                .wrap(Reissue::new(f.generator.clone()))
                .service(
                    web::resource("/ti/{task_instance_id}/heartbeat")
                        .wrap(Enforce::new(TI_SELF))
                        .route(web::put().to(heartbeat)),
                )
                .service(
                    web::resource("/ti/{task_instance_id}/run")
                        .wrap(Enforce::new(RUN))
                        .route(web::patch().to(run)),
                )
                .service(
                    web::resource("/ti/{task_instance_id}/state")
                        .wrap(Enforce::new(TI_SELF))
                        .route(web::patch().to(set_state)),
                )
                .service(
                    web::resource("/ct/{connection_test_id}")
                        .wrap(Enforce::new(CT_SELF))
                        .route(web::get().to(extractor_only)),
                )
                .route("/plain", web::get().to(extractor_only))
                .route("/ping", web::get().to(ping)),
        )
        .await
    }};
}

async fn detail(res: ServiceResponse) -> String {
    let body: serde_json::Value = atest::read_body_json(res).await;
    body["detail"].as_str().unwrap().to_owned()
}

fn bearer(token: &str) -> (actix_web::http::header::HeaderName, String) {
    (AUTHORIZATION, format!("Bearer {token}"))
}

fn heartbeat_req(ti: &str) -> atest::TestRequest {
    atest::TestRequest::put().uri(&format!("/ti/{ti}/heartbeat"))
}

#[actix_web::test]
async fn guard_extractors_and_reissue_verify_exactly_once_per_request() {
    let f = Fixture::new();
    let app = app!(&f);
    // 20 s left: due for re-issue, so Reissue reads the claims too.
    let token = f.token(TokenType::Execution, 20);
    let req = heartbeat_req(&TI.to_string())
        .insert_header(bearer(&token))
        .to_request();
    let res = atest::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(f.validator.signature_verifications(), 1);
    let fresh = res
        .headers()
        .get(REFRESHED_TOKEN_HEADER)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(atest::read_body(res).await, format!("{TI} execution"));
    // The re-issued token is a full-lifetime execution token for the same subject.
    let claims = f.validator.validate(&fresh).unwrap();
    assert_eq!((claims.sub, claims.scope), (TI, TokenType::Execution));
    assert_eq!(claims.lifetime(), 600);
    assert_eq!(f.validator.signature_verifications(), 2);
    // A second request verifies once more (the cache is off), not twice.
    let req = heartbeat_req(&TI.to_string())
        .insert_header(bearer(&token))
        .to_request();
    atest::call_service(&app, req).await;
    assert_eq!(f.validator.signature_verifications(), 3);
}

#[actix_web::test]
async fn every_row_of_the_run_time_table() {
    let f = Fixture::new();
    let app = app!(&f);
    let exec = f.token(TokenType::Execution, 600);
    let workload = f.token(TokenType::Workload, 600);
    let ti = TI.to_string();

    // 1. No Authorization: Bearer header -> 401 with WWW-Authenticate.
    let res = atest::call_service(&app, heartbeat_req(&ti).to_request()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers().get(WWW_AUTHENTICATE).unwrap(), "Bearer");
    assert_eq!(detail(res).await, "Missing auth token");

    // 2. Bad signature / expired / not yet valid / wrong audience / alg none -> exactly "Invalid auth token".
    let other = SigningKey::from_secret([9u8; 64], Algorithm::HS512, None).unwrap();
    let bad_sig = token(&other, TokenType::Execution);
    let expired = f
        .generator
        .generate_at(
            TI,
            TokenType::Execution,
            Duration::from_secs(60),
            unix_now() - 120,
        )
        .unwrap();
    let future = f
        .generator
        .generate_at(
            TI,
            TokenType::Execution,
            Duration::from_secs(60),
            unix_now() + 120,
        )
        .unwrap();
    let mut c = claims();
    c.insert("aud".into(), json!("elsewhere"));
    c.insert("exp".into(), json!(unix_now() + 60));
    c.insert("iat".into(), json!(unix_now()));
    c.insert("nbf".into(), json!(unix_now()));
    let wrong_aud = sign_claims(&f.key, &c);
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(serde_json::Value::Object(c).to_string().as_bytes())
    );
    for token in [
        bad_sig,
        expired,
        future,
        wrong_aud,
        alg_none,
        "garbage".into(),
    ] {
        let res = atest::call_service(
            &app,
            heartbeat_req(&ti)
                .insert_header(bearer(&token))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(detail(res).await, "Invalid auth token", "{token}");
    }

    // 3. Claims of the wrong shape -> starts with "Invalid auth token", names the problem.
    let mut c = claims();
    c.insert("exp".into(), json!(unix_now() + 60));
    c.insert("iat".into(), json!(unix_now()));
    c.insert("nbf".into(), json!(unix_now()));
    c.insert("scope".into(), json!("superuser"));
    let res = atest::call_service(
        &app,
        heartbeat_req(&ti)
            .insert_header(bearer(&sign_claims(&f.key, &c)))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        detail(res).await,
        "Invalid auth token: claim `scope` must be `execution` or `workload`, got \"superuser\""
    );
    c.insert("scope".into(), json!("execution"));
    c.insert("sub".into(), json!("ti-42"));
    let res = atest::call_service(
        &app,
        heartbeat_req("ti-42")
            .insert_header(bearer(&sign_claims(&f.key, &c)))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        detail(res).await,
        "Invalid auth token: claim `sub` must be a UUID, got \"ti-42\""
    );

    // 4. Token type not allowed.
    let res = atest::call_service(
        &app,
        heartbeat_req(&ti)
            .insert_header(bearer(&workload))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        detail(res).await,
        "Token type 'workload' not allowed for this endpoint. Allowed types: execution"
    );
    // ... but /run accepts it.
    let req = atest::TestRequest::patch()
        .uri(&format!("/ti/{ti}/run"))
        .insert_header(bearer(&workload))
        .to_request();
    assert_eq!(
        atest::call_service(&app, req).await.status(),
        StatusCode::OK
    );

    // 5. ti:self with another task instance id -> 403; an upper-case UUID of our own matches.
    let res = atest::call_service(
        &app,
        heartbeat_req(&Uuid::new_v4().to_string())
            .insert_header(bearer(&exec))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        detail(res).await,
        "Token subject does not match task instance ID"
    );
    let res = atest::call_service(
        &app,
        heartbeat_req("not-a-uuid")
            .insert_header(bearer(&exec))
            .to_request(),
    )
    .await;
    assert_eq!(
        detail(res).await,
        "Token subject does not match task instance ID"
    );
    let res = atest::call_service(
        &app,
        heartbeat_req(&ti.to_uppercase())
            .insert_header(bearer(&exec))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // ct:self likewise.
    let req = atest::TestRequest::get()
        .uri(&format!("/ct/{}", Uuid::new_v4()))
        .insert_header(bearer(&exec))
        .to_request();
    assert_eq!(
        detail(atest::call_service(&app, req).await).await,
        "Token subject does not match connection test ID"
    );
    let req = atest::TestRequest::get()
        .uri(&format!("/ct/{ti}"))
        .insert_header(bearer(&exec))
        .to_request();
    assert_eq!(
        atest::call_service(&app, req).await.status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn malformed_authorization_headers_are_4xx_with_a_message() {
    let f = Fixture::new();
    let app = app!(&f);
    let exec = f.token(TokenType::Execution, 600);
    let ti = TI.to_string();
    let cases: Vec<(HeaderValue, u16, &str)> = vec![
        (
            HeaderValue::from_static("Bearer"),
            401,
            "Missing auth token",
        ),
        (
            HeaderValue::from_static("Bearer "),
            401,
            "Missing auth token",
        ),
        (
            HeaderValue::from_static("Basic dXNlcjpwdw=="),
            401,
            "Missing auth token",
        ),
        (
            HeaderValue::from_static("Token abc"),
            401,
            "Missing auth token",
        ),
        (
            HeaderValue::from_str(&format!("Bearer\t{exec}")).unwrap(),
            401,
            "Missing auth token",
        ),
        (
            HeaderValue::from_str(&format!("Bearer \t{exec}")).unwrap(),
            403,
            "Invalid auth token",
        ),
        (
            HeaderValue::from_static("Bearer    "),
            401,
            "Missing auth token",
        ),
        (
            HeaderValue::from_bytes(b"Bearer \xff\xfe\x80abc").unwrap(),
            403,
            "Invalid auth token",
        ),
        (
            HeaderValue::from_bytes("Bearer ťokén".as_bytes()).unwrap(),
            403,
            "Invalid auth token",
        ),
        (
            HeaderValue::from_bytes(b"\xffBearer x").unwrap(),
            401,
            "Missing auth token",
        ),
        (
            HeaderValue::from_str(&format!("Bearer {}", "a".repeat(10 * 1024))).unwrap(),
            403,
            "Invalid auth token",
        ),
        (
            HeaderValue::from_static("Bearer a.b"),
            403,
            "Invalid auth token",
        ),
        (
            HeaderValue::from_static("Bearer a.b.c.d"),
            403,
            "Invalid auth token",
        ),
        (
            HeaderValue::from_static("Bearer %%%.***.???"),
            403,
            "Invalid auth token",
        ),
    ];
    for (value, status, want) in cases {
        let req = heartbeat_req(&ti)
            .insert_header((AUTHORIZATION, value.clone()))
            .to_request();
        let res = atest::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), status, "{value:?}");
        assert_eq!(detail(res).await, want, "{value:?}");
    }
    // The scheme is case-insensitive; one or more spaces separate it from the
    // token (RFC 6750 `1*SP`), and trailing spaces or tabs are not part of it.
    for value in [
        format!("bearer {exec}"),
        format!("BEARER {exec}"),
        format!("Bearer  {exec}"),
        format!("Bearer     {exec}"),
        format!("Bearer {exec} "),
        format!("Bearer  {exec} \t "),
    ] {
        let req = heartbeat_req(&ti)
            .insert_header((AUTHORIZATION, value.clone()))
            .to_request();
        let res = atest::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::OK, "{value:?}");
    }
}

#[actix_web::test]
async fn two_authorization_headers_are_refused_whatever_they_hold() {
    let f = Fixture::new();
    let app = app!(&f);
    let exec = f.token(TokenType::Execution, 600);
    let foreign = f
        .generator
        .generate(
            Uuid::new_v4(),
            TokenType::Execution,
            Duration::from_secs(600),
        )
        .unwrap();
    let ti = TI.to_string();
    // The same valid token twice, a valid one and another task's, a valid one
    // and garbage, in both orders: each is 400 before any validation.
    let pairs = [
        (exec.clone(), exec.clone()),
        (exec.clone(), foreign.clone()),
        (foreign, exec.clone()),
        (exec.clone(), "garbage".to_owned()),
        ("garbage".to_owned(), exec),
    ];
    for (first, second) in pairs {
        let req = heartbeat_req(&ti)
            .append_header(bearer(&first))
            .append_header(bearer(&second))
            .to_request();
        let res = atest::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.headers().get(WWW_AUTHENTICATE).unwrap(),
            r#"Bearer error="invalid_request""#
        );
        assert!(matches!(
            res.response()
                .error()
                .and_then(|e| e.as_error::<crate::AuthError>()),
            Some(crate::AuthError::AmbiguousCredentials)
        ));
        assert_eq!(detail(res).await, "More than one Authorization header");
    }
    assert_eq!(f.validator.signature_verifications(), 0);
    // A second header of another scheme is just as ambiguous.
    let req = heartbeat_req(&ti)
        .append_header(bearer(&f.token(TokenType::Execution, 600)))
        .append_header((AUTHORIZATION, "Basic dXNlcjpwdw=="))
        .to_request();
    assert_eq!(
        atest::call_service(&app, req).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[actix_web::test]
async fn the_guard_runs_before_the_body_is_read() {
    let f = Fixture::new();
    let app = app!(&f);
    let uri = format!("/ti/{TI}/state");
    // Not JSON at all: still 401, not 400, and the handler never ran.
    let req = atest::TestRequest::patch()
        .uri(&uri)
        .set_payload("{not json")
        .to_request();
    let res = atest::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The refusal carries its AuthError, so access logs can say why.
    assert!(matches!(
        res.response()
            .error()
            .and_then(|e| e.as_error::<crate::AuthError>()),
        Some(crate::AuthError::MissingToken)
    ));
    let token = f.token(TokenType::Execution, 600);
    let req = atest::TestRequest::patch()
        .uri(&uri)
        .insert_header(bearer(&token))
        .set_json(json!({"state": "running"}))
        .to_request();
    let res = atest::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        atest::read_body_json::<serde_json::Value, _>(res).await,
        json!({"state": "running"})
    );
}

#[actix_web::test]
async fn reissue_thresholds_workload_skip_and_handler_header_kept() {
    let f = Fixture::new();
    let app = app!(&f);
    let ti = TI.to_string();
    let now = unix_now();
    let ttl = Duration::from_secs(600); // window: max(120, 30) = 120 s
    let call = |token: String| {
        let req = heartbeat_req(&ti)
            .insert_header(bearer(&token))
            .to_request();
        atest::call_service(&app, req)
    };
    let refreshed = |res: &ServiceResponse| res.headers().contains_key(REFRESHED_TOKEN_HEADER);

    // 110 s left: within 120 s -> re-issued. 130 s left: not.
    let near = f
        .generator
        .generate_at(TI, TokenType::Execution, ttl, now - 490)
        .unwrap();
    assert!(refreshed(&call(near).await));
    let far = f
        .generator
        .generate_at(TI, TokenType::Execution, ttl, now - 470)
        .unwrap();
    assert!(!refreshed(&call(far).await));
    // Short tokens use the 30 s floor: a 100 s token with 25 s left is due, with 40 s left not.
    let short = Duration::from_secs(100);
    let due = f
        .generator
        .generate_at(TI, TokenType::Execution, short, now - 75)
        .unwrap();
    assert!(refreshed(&call(due).await));
    let not_due = f
        .generator
        .generate_at(TI, TokenType::Execution, short, now - 60)
        .unwrap();
    assert!(!refreshed(&call(not_due).await));

    // Workload tokens are never re-issued, however close to expiry.
    let workload = f
        .generator
        .generate_at(TI, TokenType::Workload, short, now - 95)
        .unwrap();
    let req = atest::TestRequest::patch()
        .uri(&format!("/ti/{ti}/run"))
        .insert_header(bearer(&workload))
        .to_request();
    let res = atest::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The handler's own header (the /run exchange) is kept, not overwritten.
    assert_eq!(
        res.headers().get(REFRESHED_TOKEN_HEADER).unwrap(),
        format!("exchanged-for-{ti}").as_str()
    );
    let exec_near = f
        .generator
        .generate_at(TI, TokenType::Execution, short, now - 95)
        .unwrap();
    let req = atest::TestRequest::patch()
        .uri(&format!("/ti/{ti}/run"))
        .insert_header(bearer(&exec_near))
        .to_request();
    let res = atest::call_service(&app, req).await;
    assert_eq!(
        res.headers().get(REFRESHED_TOKEN_HEADER).unwrap(),
        format!("exchanged-for-{ti}").as_str()
    );

    // A route that never looked at the token gets no header and costs no verification.
    let before = f.validator.signature_verifications();
    let req = atest::TestRequest::get()
        .uri("/ping")
        .insert_header(bearer(&f.token(TokenType::Execution, 5)))
        .to_request();
    let res = atest::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!refreshed(&res));
    assert_eq!(f.validator.signature_verifications(), before);
}

#[test]
fn needs_reissue_exact_edges() {
    let key = hs512();
    let v = validator(&key);
    let g = generator(&key);
    let at = |scope, ttl: u64| {
        v.validate_at(
            &g.generate_at(TI, scope, Duration::from_secs(ttl), NOW)
                .unwrap(),
            NOW,
        )
        .unwrap()
    };
    let c = at(TokenType::Execution, 600); // window 120
    assert!(!needs_reissue(&c, NOW + 479));
    assert!(needs_reissue(&c, NOW + 480));
    let c = at(TokenType::Execution, 100); // 20 % is 20 < 30: window 30
    assert!(!needs_reissue(&c, NOW + 69));
    assert!(needs_reissue(&c, NOW + 70));
    let c = at(TokenType::Workload, 100);
    assert!(!needs_reissue(&c, NOW + 99));
}

#[actix_web::test]
async fn extractor_alone_validates_and_refuses() {
    let f = Fixture::new();
    let app = app!(&f);
    let token = f.token(TokenType::Workload, 600);
    let req = atest::TestRequest::get()
        .uri("/plain")
        .insert_header(bearer(&token))
        .to_request();
    let res = atest::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(f.validator.signature_verifications(), 1);
    let req = atest::TestRequest::get().uri("/plain").to_request();
    let res = atest::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(detail(res).await, "Missing auth token");
}

#[actix_web::test]
async fn no_validator_in_the_app_is_a_500() {
    let app = atest::init_service(
        App::new().service(
            web::resource("/ti/{task_instance_id}/heartbeat")
                .wrap(Enforce::new(TI_SELF))
                .route(web::put().to(heartbeat)),
        ),
    )
    .await;
    let res = atest::call_service(
        &app,
        heartbeat_req(&TI.to_string())
            .insert_header(bearer("x"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(detail(res).await, "Token validation is not configured");
}

#[actix_web::test]
async fn validator_in_web_data_is_found_too() {
    let key = hs512();
    let v = validator(&key);
    let app = atest::init_service(
        App::new()
            .app_data(web::Data::new(v.clone()))
            .route("/plain", web::get().to(extractor_only)),
    )
    .await;
    let req = atest::TestRequest::get()
        .uri("/plain")
        .insert_header(bearer(
            &generator(&key)
                .generate(TI, TokenType::Execution, Duration::from_secs(60))
                .unwrap(),
        ))
        .to_request();
    assert_eq!(
        atest::call_service(&app, req).await.status(),
        StatusCode::OK
    );
}

#[test]
fn route_info_is_const_constructible() {
    struct Heartbeat;
    impl ExecutionRoute for Heartbeat {
        const INFO: RouteInfo = RouteInfo {
            method: "PUT",
            path: "/task-instances/{task_instance_id}/heartbeat",
            handler: "heartbeat",
            policy: TI_SELF,
            doc: "Records that a running task instance is alive.\n\nMore.",
            describe: None,
        };
    }
    assert_eq!(
        Heartbeat::INFO.policy.scopes().collect::<Vec<_>>(),
        ["ti:self"]
    );
    assert_eq!(
        Heartbeat::INFO.summary(),
        "Records that a running task instance is alive."
    );
    const E: Enforce = Enforce::new(RUN);
    assert_eq!(E.policy(), RUN);
}
