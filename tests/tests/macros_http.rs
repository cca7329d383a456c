//! The generated routes over real HTTP, on a loopback port: the layout of
//! Airflow's Execution API (an authenticated router holding a `ti:self` router,
//! `/state` for execution tokens only, `/run` for execution and workload
//! tokens), and its test expectations.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};
use policy_core::{
    Algorithm, GeneratorConfig, KeySource, Reissue, SigningKey, TokenGenerator, TokenType,
    TokenValidator, ValidationConfig,
};
use policy_macros::execution_router;
use uuid::Uuid;

#[execution_router(prefix = "/execution")]
mod api {
    use actix_web::{HttpResponse, web};
    use policy_macros::{execution_route, execution_router};

    /// Authenticated router (Airflow's `JWTBearerDep`): execution tokens only.
    #[execution_route(get, "/variables/{variable_key}")]
    async fn get_variable(key: web::Path<String>) -> HttpResponse {
        HttpResponse::Ok().json(serde_json::json!({ "key": key.into_inner(), "value": "v" }))
    }

    #[execution_route(post, "/xcoms/{key}")]
    async fn set_xcom(body: web::Json<serde_json::Value>) -> HttpResponse {
        HttpResponse::Created().json(body.into_inner())
    }

    /// Airflow's `ti_id_router` (`JWTBearerTIPathDep`): `sub` must be the path's id.
    #[execution_router(prefix = "/task-instances", scopes = ["ti:self"])]
    mod task_instances {
        use actix_web::{HttpResponse, web};
        use policy_core::Token;
        use policy_macros::execution_route;

        #[execution_route(patch, "/{task_instance_id}/state")]
        async fn update_state(body: web::Json<serde_json::Value>) -> HttpResponse {
            let _ = body;
            HttpResponse::NoContent().finish()
        }

        /// The first spelling, above actix-web's own attribute.
        #[execution_route]
        #[actix_web::put("/{task_instance_id}/heartbeat")]
        async fn heartbeat() -> HttpResponse {
            HttpResponse::NoContent().finish()
        }

        #[execution_route(
            patch,
            "/{task_instance_id}/run",
            scopes = ["token:execution", "token:workload"]
        )]
        async fn run(token: Token, id: web::Path<uuid::Uuid>) -> HttpResponse {
            HttpResponse::Ok().json(serde_json::json!({
                "id": id.into_inner(),
                "sub": token.sub(),
                "token_type": token.token_type().as_str(),
            }))
        }
    }
}

/// A server on a loopback port, wired exactly like the real one.
struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
    generator: TokenGenerator,
}

impl Server {
    fn start() -> Server {
        let key = SigningKey::from_secret([7u8; 64], Algorithm::HS512, None).unwrap();
        let validator =
            TokenValidator::new(KeySource::signing_key(&key), ValidationConfig::default()).unwrap();
        let generator = TokenGenerator::new(key, GeneratorConfig::default());
        let app_generator = generator.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(validator.clone())
                .app_data(app_generator.clone())
                .wrap(Reissue::new(app_generator.clone()))
                .configure(api::configure)
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Server {
            addr,
            handle,
            generator,
        }
    }

    fn token(&self, sub: Uuid, token_type: TokenType) -> String {
        self.generator
            .generate(sub, token_type, Duration::from_secs(600))
            .unwrap()
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Response {
        self.send_raw(raw_request(method, path, token, body)).await
    }

    /// Sends a request exactly as written.
    async fn send_raw(&self, request: String) -> Response {
        let addr = self.addr;
        actix_web::rt::task::spawn_blocking(move || exchange(addr, &request))
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.body))
    }

    fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail in {:?}", self.body))
            .to_owned()
    }
}

fn raw_request(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> String {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    request
}

/// One HTTP/1.1 exchange with `Connection: close`; the response is sized by
/// `Content-Length` (actix-web sets it on every response these routes make).
fn exchange(addr: SocketAddr, request: &str) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    // A guard against a hung test, not a timing assertion.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, rest) = raw
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    assert_eq!(rest.len(), length, "body of {raw:?}");
    Response {
        status,
        headers,
        body: rest.to_owned(),
    }
}

const WORKLOAD_REFUSED: &str =
    "Token type 'workload' not allowed for this endpoint. Allowed types: execution";
const STATE_BODY: &str = r#"{"state": "success", "end_date": "2025-01-01T00:00:00Z"}"#;

#[actix_web::test]
async fn workload_token_is_refused_on_state_and_accepted_on_run() {
    let server = Server::start();
    let ti = Uuid::new_v4();
    let workload = server.token(ti, TokenType::Workload);

    let state_path = format!("/execution/task-instances/{ti}/state");
    let res = server
        .send("PATCH", &state_path, Some(&workload), Some(STATE_BODY))
        .await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert_eq!(res.detail(), WORKLOAD_REFUSED);

    let run_path = format!("/execution/task-instances/{ti}/run");
    let res = server
        .send("PATCH", &run_path, Some(&workload), Some("{}"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!(body["sub"], ti.to_string());
    assert_eq!(body["id"], ti.to_string());
    assert_eq!(body["token_type"], "workload");

    // The authenticated router does not opt in either.
    let res = server
        .send("GET", "/execution/variables/my_var", Some(&workload), None)
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(res.detail(), WORKLOAD_REFUSED);
    server.stop().await;
}

#[actix_web::test]
async fn execution_token_is_accepted_on_state_and_run() {
    let server = Server::start();
    let ti = Uuid::new_v4();
    let execution = server.token(ti, TokenType::Execution);

    let state_path = format!("/execution/task-instances/{ti}/state");
    let res = server
        .send("PATCH", &state_path, Some(&execution), Some(STATE_BODY))
        .await;
    assert_eq!(res.status, 204, "{}", res.body);

    let run_path = format!("/execution/task-instances/{ti}/run");
    let res = server
        .send("PATCH", &run_path, Some(&execution), Some("{}"))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["token_type"], "execution");

    let res = server
        .send("GET", "/execution/variables/my_var", Some(&execution), None)
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["key"], "my_var");
    server.stop().await;
}

#[actix_web::test]
async fn token_of_another_task_instance_is_refused() {
    let server = Server::start();
    let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
    for token_type in [TokenType::Execution, TokenType::Workload] {
        let token = server.token(mine, token_type);
        let res = server
            .send(
                "PATCH",
                &format!("/execution/task-instances/{other}/run"),
                Some(&token),
                Some("{}"),
            )
            .await;
        assert_eq!(res.status, 403, "{token_type}: {}", res.body);
        assert_eq!(
            res.detail(),
            "Token subject does not match task instance ID"
        );
    }
    let token = server.token(mine, TokenType::Execution);
    let res = server
        .send(
            "PATCH",
            &format!("/execution/task-instances/{other}/state"),
            Some(&token),
            Some(STATE_BODY),
        )
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(
        res.detail(),
        "Token subject does not match task instance ID"
    );
    server.stop().await;
}

#[actix_web::test]
async fn authorization_runs_before_the_body_is_read() {
    let server = Server::start();
    let ti = Uuid::new_v4();
    let state_path = format!("/execution/task-instances/{ti}/state");
    let not_json = "{ this is not json";

    // No token and a body that cannot parse: 401, never a 400/422 leaking the schema.
    for (method, path) in [
        ("PATCH", state_path.as_str()),
        ("POST", "/execution/xcoms/k"),
    ] {
        let res = server.send(method, path, None, Some(not_json)).await;
        assert_eq!(res.status, 401, "{method} {path}: {}", res.body);
        assert_eq!(res.detail(), "Missing auth token");
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    }

    // A bad token, or a token refused by the policy: 403 before the body too.
    let res = server
        .send("PATCH", &state_path, Some("not.a.jwt"), Some(not_json))
        .await;
    assert_eq!(res.status, 403);
    assert!(
        res.detail().starts_with("Invalid auth token"),
        "{}",
        res.body
    );
    let workload = server.token(ti, TokenType::Workload);
    let res = server
        .send("PATCH", &state_path, Some(&workload), Some(not_json))
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(res.detail(), WORKLOAD_REFUSED);

    // Authorized: now the body extractor runs and refuses the body.
    let execution = server.token(ti, TokenType::Execution);
    let res = server
        .send("PATCH", &state_path, Some(&execution), Some(not_json))
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    let res = server
        .send(
            "POST",
            "/execution/xcoms/k",
            Some(&execution),
            Some(r#"{"a": 1}"#),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.json(), serde_json::json!({ "a": 1 }));
    server.stop().await;
}

#[test]
fn routes_lists_every_route_with_its_merged_policy() {
    let listed: Vec<String> = api::routes()
        .iter()
        .map(|r| format!("{} {} {} [{}]", r.method, r.path, r.handler, r.policy))
        .collect();
    assert_eq!(
        listed,
        [
            "GET /execution/variables/{variable_key} get_variable [tokens: execution]",
            "POST /execution/xcoms/{key} set_xcom [tokens: execution]",
            "PATCH /execution/task-instances/{task_instance_id}/state update_state \
             [tokens: execution; bindings: ti:self]",
            "PUT /execution/task-instances/{task_instance_id}/heartbeat heartbeat \
             [tokens: execution; bindings: ti:self]",
            "PATCH /execution/task-instances/{task_instance_id}/run run \
             [tokens: execution, workload; bindings: ti:self]",
        ]
    );
}

#[actix_web::test]
async fn route_above_an_actix_attribute_enforces_the_inherited_policy() {
    let server = Server::start();
    let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
    let path = format!("/execution/task-instances/{mine}/heartbeat");
    let execution = server.token(mine, TokenType::Execution);

    let res = server.send("PUT", &path, None, None).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.detail(), "Missing auth token");

    let res = server.send("PUT", &path, Some(&execution), None).await;
    assert_eq!(res.status, 204, "{}", res.body);

    let workload = server.token(mine, TokenType::Workload);
    let res = server.send("PUT", &path, Some(&workload), None).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.detail(), WORKLOAD_REFUSED);

    let foreign = server.token(other, TokenType::Execution);
    let res = server.send("PUT", &path, Some(&foreign), None).await;
    assert_eq!(res.status, 403);
    assert_eq!(
        res.detail(),
        "Token subject does not match task instance ID"
    );
    server.stop().await;
}

#[actix_web::test]
async fn authorization_header_spacing_and_repetition_over_http() {
    let server = Server::start();
    let ti = Uuid::new_v4();
    let token = server.token(ti, TokenType::Execution);
    let foreign = server.token(Uuid::new_v4(), TokenType::Execution);
    let path = format!("/execution/task-instances/{ti}/heartbeat");
    let request = |authorization: &[String]| {
        let mut request =
            format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for value in authorization {
            request.push_str(&format!("Authorization: {value}\r\n"));
        }
        request.push_str("Content-Length: 0\r\n\r\n");
        request
    };

    // Several spaces after the scheme (RFC 6750 `1*SP`, which Airflow accepts
    // too), any case of the scheme, trailing whitespace: the token is read.
    for value in [
        format!("Bearer  {token}"),
        format!("Bearer      {token}"),
        format!("bEaReR {token}"),
        format!("Bearer {token}   "),
    ] {
        let res = server.send_raw(request(std::slice::from_ref(&value))).await;
        assert_eq!(res.status, 204, "{value:?}: {}", res.body);
    }

    // Two Authorization headers: 400 whatever they hold, so no reader of the
    // request can disagree with us on which token counted.
    for pair in [
        [format!("Bearer {token}"), format!("Bearer {token}")],
        [format!("Bearer {token}"), format!("Bearer {foreign}")],
        [format!("Bearer {foreign}"), format!("Bearer {token}")],
        [format!("Bearer {token}"), "Basic dXNlcjpwdw==".to_owned()],
    ] {
        let res = server.send_raw(request(&pair)).await;
        assert_eq!(res.status, 400, "{pair:?}: {}", res.body);
        assert_eq!(res.detail(), "More than one Authorization header");
        assert_eq!(
            res.header("www-authenticate"),
            Some(r#"Bearer error="invalid_request""#)
        );
    }
    server.stop().await;
}
