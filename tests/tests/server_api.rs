//! The Execution API server over real HTTP: the real app on a loopback port,
//! a temporary SQLite database, HS512 tokens. Every route, every row of
//! DESIGN.md's run-time table, the workload -> execution exchange, reissue,
//! the state machine's 409s and 404s, and that refused requests change nothing.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};
use execution_api_server::app::{self, AppState};
use execution_api_server::store::{DatabaseTarget, NewConnection, NewTaskInstance, Store};
use policy_core::{
    Algorithm, GeneratorConfig, KeySource, SigningKey, TokenGenerator, TokenType, TokenValidator,
    ValidationConfig,
};
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: [u8; 64] = [42; 64];

/// The app on a loopback port, plus a store on the same database for set-up
/// and for checking what a request did (or did not) change.
struct Server {
    base: String,
    agent: ureq::Agent,
    generator: TokenGenerator,
    validator: TokenValidator,
    store: Store,
    rt: tokio::runtime::Runtime,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn detail(&self) -> Value {
        self.json()["detail"].clone()
    }
}

fn key() -> SigningKey {
    SigningKey::from_secret(SECRET, Algorithm::HS512, None).unwrap()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Server {
    fn start() -> Server {
        Server::start_on(None)
    }

    /// On `target`, or on a fresh SQLite file in a temporary directory.
    fn start_on(target: Option<DatabaseTarget>) -> Server {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "server-api-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let target = target.unwrap_or_else(|| DatabaseTarget::in_data_dir(&dir));
        let generator = TokenGenerator::new(key(), GeneratorConfig::default());
        let validator =
            TokenValidator::new(KeySource::signing_key(&key()), ValidationConfig::default())
                .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Creates the database and its schema before the server opens it too.
        let store = rt.block_on(Store::open(&target)).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/execution", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let (server_validator, server_generator) = (validator.clone(), generator.clone());
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let state = AppState {
                    store: Store::open(&target).await.unwrap(),
                    validator: server_validator,
                    generator: server_generator,
                    // Arbitrary token subjects, as Airflow's route tests use: ownership
                    // (strict by default) has its own tests in server/tests/ownership.rs.
                    ownership: app::OwnershipChecks::Permissive,
                    subjects: Default::default(),
                };
                let server =
                    HttpServer::new(move || App::new().configure(app::configure(state.clone())))
                        .workers(1)
                        .disable_signals()
                        .listen(listener)
                        .unwrap()
                        .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            })
        });
        let handle = rx.recv().unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Server {
            base,
            agent,
            generator,
            validator,
            store,
            rt,
            handle,
            thread: Some(thread),
            dir,
        }
    }

    fn token(&self, sub: Uuid, scope: TokenType) -> String {
        self.generator
            .generate(sub, scope, Duration::from_secs(600))
            .unwrap()
    }

    fn queued(&self, dag: &str, task: &str) -> Uuid {
        self.queued_with(NewTaskInstance::new(dag, task))
    }

    fn queued_with(&self, new: NewTaskInstance) -> Uuid {
        self.rt
            .block_on(self.store.create_task_instance(&new))
            .unwrap()
    }

    fn state_of(&self, id: Uuid) -> String {
        self.rt
            .block_on(self.store.task_instance(id))
            .unwrap()
            .expect("task instance")
            .state
            .map_or_else(|| "none".to_owned(), |s| s.to_string())
    }

    /// Sends a request; `body` is sent as JSON when given.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{}", self.base, path);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let result = match body {
            Some(body) => {
                let has_type = headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
                if !has_type {
                    req = req.header("Content-Type", "application/json");
                }
                self.agent.run(req.body(body.as_bytes().to_vec()).unwrap())
            }
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = resp.body_mut().read_to_string().unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, None, &[])
    }

    fn send(&self, method: &str, path: &str, token: &str, body: Value) -> Reply {
        self.call(method, path, Some(token), Some(&body.to_string()), &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.rt.block_on(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_body(host: &str, pid: i64) -> Value {
    json!({"state": "running", "hostname": host, "unixname": "airflow", "pid": pid,
           "start_date": "2026-01-01T10:00:00.123456+00:00"})
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn hs512_token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&SECRET),
    )
    .unwrap()
}

#[test]
fn health_ping_is_open_and_headers_are_echoed() {
    let server = Server::start();
    let reply = server.call(
        "GET",
        "/health/ping",
        None,
        None,
        &[
            ("correlation-id", "abc-123"),
            ("airflow-api-version", "2025-04-28"),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"ok": ["database"], "failing": {}}));
    assert_eq!(reply.header("correlation-id"), Some("abc-123"));
    assert_eq!(reply.header("airflow-api-version"), Some("2025-04-28"));
    // Without the request header, the server's version.
    let reply = server.get("/health/ping", None);
    assert_eq!(reply.header("airflow-api-version"), Some(app::API_VERSION));
    assert_eq!(reply.header("correlation-id"), None);
}

#[test]
fn run_time_auth_table() {
    let server = Server::start();
    let ti = server.queued("auth_dag", "t");
    let other = server.queued("auth_dag", "u");
    let run = format!("/task-instances/{ti}/run");
    let state = format!("/task-instances/{ti}/state");
    let success = json!({"state": "success", "end_date": "2026-01-01T11:00:00Z"});

    // 401: no Authorization header.
    let reply = server.call(
        "PATCH",
        &run,
        None,
        Some(&run_body("h", 1).to_string()),
        &[],
    );
    assert_eq!(reply.status, 401);
    assert_eq!(reply.detail(), "Missing auth token");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let reply = server.get("/variables/x", None);
    assert_eq!(reply.status, 401);

    // 403: bad signature, expired, wrong audience, malformed, alg none.
    let forged = TokenGenerator::new(
        SigningKey::from_secret([9u8; 64], Algorithm::HS512, None).unwrap(),
        GeneratorConfig::default(),
    )
    .generate(ti, TokenType::Execution, Duration::from_secs(600))
    .unwrap();
    let expired = server
        .generator
        .generate_at(
            ti,
            TokenType::Execution,
            Duration::from_secs(600),
            unix_now() - 3600,
        )
        .unwrap();
    let wrong_aud = TokenGenerator::new(
        key(),
        GeneratorConfig {
            audience: "urn:someone:else".into(),
            ..GeneratorConfig::default()
        },
    )
    .generate(ti, TokenType::Execution, Duration::from_secs(600))
    .unwrap();
    let now = unix_now();
    let alg_none = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(
            json!({"sub": ti, "aud": "urn:airflow.apache.org:task", "iat": now, "nbf": now, "exp": now + 600})
                .to_string()
                .as_bytes()
        )
    );
    for bad in [
        forged.as_str(),
        &expired,
        &wrong_aud,
        "not-a-jwt",
        &alg_none,
    ] {
        let reply = server.send("PATCH", &run, bad, run_body("h", 1));
        assert_eq!(reply.status, 403, "{bad}: {}", reply.body);
        assert_eq!(reply.detail(), "Invalid auth token", "{bad}");
    }

    // 403: claims of the wrong shape, and a sub that is not a UUID (Airflow: 500).
    let base =
        json!({"aud": "urn:airflow.apache.org:task", "iat": now, "nbf": now, "exp": now + 600});
    let mut bogus_scope = base.clone();
    bogus_scope["sub"] = json!(ti.to_string());
    bogus_scope["scope"] = json!("admin");
    let mut not_uuid = base.clone();
    not_uuid["sub"] = json!("not-a-uuid");
    for claims in [bogus_scope, not_uuid] {
        let reply = server.send(
            "PATCH",
            &run,
            &hs512_token(claims.clone()),
            run_body("h", 1),
        );
        assert_eq!(reply.status, 403, "{claims}: {}", reply.body);
        let detail = reply.detail();
        let detail = detail.as_str().unwrap();
        assert!(detail.starts_with("Invalid auth token: "), "{detail}");
    }

    // 403: workload token where only execution is allowed.
    let workload = server.token(ti, TokenType::Workload);
    let reply = server.send("PATCH", &state, &workload, success.clone());
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.detail(),
        "Token type 'workload' not allowed for this endpoint. Allowed types: execution"
    );
    let reply = server.get("/variables/x", Some(&workload));
    assert_eq!(reply.status, 403);

    // 403: subject mismatch (and a path that is not a UUID at all).
    let other_token = server.token(other, TokenType::Execution);
    for path in [run.clone(), "/task-instances/not-a-uuid/run".to_owned()] {
        let reply = server.send("PATCH", &path, &other_token, run_body("h", 1));
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(
            reply.detail(),
            "Token subject does not match task instance ID"
        );
    }

    // None of the refused requests changed anything.
    assert_eq!(server.state_of(ti), "queued");
    assert_eq!(server.state_of(other), "queued");

    // Upper-case UUIDs in the path are the same task instance (Airflow compares strings).
    let token = server.token(ti, TokenType::Execution);
    let upper = format!("/task-instances/{}/run", ti.to_string().to_uppercase());
    let reply = server.send("PATCH", &upper, &token, run_body("h", 1));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(server.state_of(ti), "running");
}

#[test]
fn full_life_with_the_workload_exchange() {
    full_life(&Server::start());
}

/// An Airflow-made database from `.ci/airflow-env`, required under `.ci/test`.
fn airflow_fixture(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("EXECUTION_API_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "{name} is unset but EXECUTION_API_TEST_REQUIRE_ALL=1"
            );
            eprintln!("{name} unset (source .ci/airflow-env): not run on that database");
            None
        }
    }
}

#[test]
fn full_life_on_an_airflow_made_sqlite_database() {
    let Some(template) = airflow_fixture("EXECUTION_API_TEST_AIRFLOW_SQLITE") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("server-api-airflow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("airflow.db");
    std::fs::copy(template, &copy).unwrap();
    full_life(&Server::start_on(Some(DatabaseTarget::Sqlite(copy))));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn full_life_on_an_airflow_made_postgres_database() {
    if let Some(url) = airflow_fixture("EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL") {
        full_life(&Server::start_on(Some(
            DatabaseTarget::from_url(&url).unwrap(),
        )));
    }
}

#[test]
fn full_life_on_postgres_when_configured() {
    match std::env::var("EXECUTION_API_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let target = DatabaseTarget::from_url(&url).unwrap();
            full_life(&Server::start_on(Some(target)));
            eprintln!("full_life_on_postgres_when_configured: ran on PostgreSQL");
        }
        _ => eprintln!(
            "full_life_on_postgres_when_configured: EXECUTION_API_TEST_POSTGRES_URL unset, ran on SQLite only"
        ),
    }
}

fn full_life(server: &Server) {
    let dag = format!("life_dag_{}", Uuid::new_v4().simple());
    let id = server.queued_with(NewTaskInstance {
        run_id: Some("scheduled__2026-01-01".into()),
        max_tries: 2,
        ..NewTaskInstance::new(&dag, "extract")
    });
    server
        .rt
        .block_on(server.store.set_variable("greeting", "hello", None))
        .unwrap();
    server
        .rt
        .block_on(server.store.upsert_connection(&NewConnection {
            conn_id: "warehouse".into(),
            conn_type: "postgres".into(),
            host: Some("db.internal".into()),
            port: Some(5432),
            login: Some("etl".into()),
            ..NewConnection::default()
        }))
        .unwrap();
    let workload = server.token(id, TokenType::Workload);

    // /run with the workload token: the run context and a fresh execution token.
    let reply = server.send(
        "PATCH",
        &format!("/task-instances/{id}/run"),
        &workload,
        run_body("worker-1", 4242),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let ctx = reply.json();
    assert_eq!(ctx["max_tries"], 2);
    assert_eq!(ctx["should_retry"], true);
    assert_eq!(ctx["task_reschedule_count"], 0);
    assert_eq!(ctx["xcom_keys_to_clear"], json!([]));
    let dag_run = &ctx["dag_run"];
    assert_eq!(dag_run["dag_id"], dag.as_str());
    assert_eq!(dag_run["run_id"], "scheduled__2026-01-01");
    assert_eq!(dag_run["run_type"], "scheduled");
    // /run leaves the DAG run's state to the scheduler, as Airflow's does.
    assert_eq!(dag_run["state"], "queued");
    assert_eq!(dag_run["consumed_asset_events"], json!([]));
    for field in [
        "logical_date",
        "data_interval_start",
        "data_interval_end",
        "start_date",
        "end_date",
        "partition_key",
        "run_after",
        "clear_number",
    ] {
        assert!(dag_run.get(field).is_some(), "dag_run.{field} missing");
    }
    let fresh = reply
        .header("refreshed-api-token")
        .expect("Refreshed-API-Token")
        .to_owned();
    let claims = server.validator.validate(&fresh).unwrap();
    assert_eq!(claims.sub, id);
    assert_eq!(claims.scope, TokenType::Execution);
    assert_eq!(server.state_of(id), "running");

    // The new token works on /heartbeat; the workload token does not.
    let heartbeat = format!("/task-instances/{id}/heartbeat");
    let beat = json!({"hostname": "worker-1", "pid": 4242});
    let reply = server.send("PUT", &heartbeat, &fresh, beat.clone());
    assert_eq!(reply.status, 204, "{}", reply.body);
    let reply = server.send("PUT", &heartbeat, &workload, beat.clone());
    assert_eq!(reply.status, 403);

    // Variables.
    let reply = server.get("/variables/greeting", Some(&fresh));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"key": "greeting", "value": "hello"}));
    let reply = server.send(
        "PUT",
        "/variables/answer",
        &fresh,
        json!({"val": "42", "description": "d"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"message": "Variable successfully set"})
    );
    assert_eq!(
        server.get("/variables/answer", Some(&fresh)).json()["value"],
        "42"
    );
    let reply = server.call("DELETE", "/variables/answer", Some(&fresh), None, &[]);
    assert_eq!(reply.status, 204);
    let reply = server.get("/variables/answer", Some(&fresh));
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.detail(),
        json!({"reason": "not_found", "message": "Variable with key 'answer' not found"})
    );

    // A NUL byte is stored by SQLite and refused by PostgreSQL: 201 or 422, never 500.
    let reply = server.send("PUT", "/variables/nul", &fresh, json!({"val": "a\u{0}b"}));
    assert!(
        matches!(reply.status, 201 | 422),
        "{}: {}",
        reply.status,
        reply.body
    );

    // Connections.
    let reply = server.get("/connections/warehouse", Some(&fresh));
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"conn_id": "warehouse", "conn_type": "postgres", "host": "db.internal",
               "schema": null, "login": "etl", "password": null, "port": 5432, "extra": null})
    );
    let reply = server.get("/connections/nope", Some(&fresh));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.detail()["reason"], "not_found");

    // XComs.
    let xcom = format!("/xcoms/{dag}/scheduled__2026-01-01/extract/return_value");
    let xcom = xcom.as_str();
    assert_eq!(server.get(xcom, Some(&fresh)).status, 404);
    let value = json!({"rows": [1, 2, 3], "nested": {"ok": true}});
    let reply = server.send("POST", xcom, &fresh, value.clone());
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = server.get(xcom, Some(&fresh));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"key": "return_value", "value": value}));
    // A mapped task instance's XCom (its row must exist: Airflow's foreign key).
    server.queued_with(NewTaskInstance {
        run_id: Some("scheduled__2026-01-01".into()),
        map_index: 2,
        ..NewTaskInstance::new(&dag, "extract")
    });
    let no_ti = format!("{xcom}?map_index=3");
    let reply = server.send("POST", &no_ti, &fresh, json!("three"));
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.detail()["reason"], "not_found");
    let mapped = format!("{xcom}?map_index=2");
    assert_eq!(server.get(&mapped, Some(&fresh)).status, 404);
    assert_eq!(
        server.send("POST", &mapped, &fresh, json!("two")).status,
        201
    );
    assert_eq!(server.get(&mapped, Some(&fresh)).json()["value"], "two");
    let reply = server.call("DELETE", &mapped, Some(&fresh), None, &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(server.get(&mapped, Some(&fresh)).status, 404);
    assert_eq!(server.get(xcom, Some(&fresh)).status, 200);
    let reply = server.send(
        "POST",
        &format!("/xcoms/{dag}/no_such_run/extract/k"),
        &fresh,
        json!(1),
    );
    assert_eq!(reply.status, 404);

    // Finish: 204, then the same again is 200, anything else 409.
    let state = format!("/task-instances/{id}/state");
    let success = json!({"state": "success", "end_date": "2026-01-01T11:00:00Z",
                         "task_outlets": [], "outlet_events": [], "rendered_map_index": null});
    let reply = server.send("PATCH", &state, &fresh, success.clone());
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(server.state_of(id), "success");
    assert_eq!(server.send("PATCH", &state, &fresh, success).status, 200);
    let reply = server.send(
        "PATCH",
        &state,
        &fresh,
        json!({"state": "failed", "end_date": "2026-01-01T11:00:00Z"}),
    );
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.detail(),
        json!({"reason": "invalid_state", "message": "TI was not in the running state so it cannot be updated", "previous_state": "success"})
    );
    let reply = server.send("PUT", &heartbeat, &fresh, beat);
    assert_eq!(reply.status, 409);
    assert_eq!(reply.detail()["reason"], "not_running");
    assert_eq!(reply.detail()["current_state"], "success");
    let reply = server.send(
        "PATCH",
        &format!("/task-instances/{id}/run"),
        &fresh,
        run_body("worker-1", 4242),
    );
    assert_eq!(reply.status, 409);
    assert_eq!(reply.detail()["reason"], "invalid_state");
    assert_eq!(reply.detail()["previous_state"], "success");
    assert_eq!(server.state_of(id), "success");
}

#[test]
fn state_machine_conflicts_and_not_found() {
    let server = Server::start();
    let id = server.queued("sm_dag", "t");
    let token = server.token(id, TokenType::Execution);
    let run = format!("/task-instances/{id}/run");
    let state = format!("/task-instances/{id}/state");
    let heartbeat = format!("/task-instances/{id}/heartbeat");
    let failed = json!({"state": "failed", "end_date": "2026-01-01T11:00:00Z"});

    // Not running yet: /state and /heartbeat refuse.
    let reply = server.send("PATCH", &state, &token, failed.clone());
    assert_eq!(reply.status, 409);
    assert_eq!(reply.detail()["previous_state"], "queued");
    let reply = server.send(
        "PUT",
        &heartbeat,
        &token,
        json!({"hostname": "h", "pid": 1}),
    );
    assert_eq!(reply.status, 409);

    assert_eq!(
        server.send("PATCH", &run, &token, run_body("h", 1)).status,
        200
    );
    // The same worker retrying /run gets 200 again; another worker gets 409
    // with the shape the SDK turns into TaskAlreadyRunningError.
    assert_eq!(
        server.send("PATCH", &run, &token, run_body("h", 1)).status,
        200
    );
    let reply = server.send("PATCH", &run, &token, run_body("other-host", 1));
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.detail(),
        json!({"reason": "invalid_state", "message": "TI was not in a state where it could be marked as running", "previous_state": "running"})
    );
    // A heartbeat from another pid.
    let reply = server.send(
        "PUT",
        &heartbeat,
        &token,
        json!({"hostname": "h", "pid": 2}),
    );
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.detail(),
        json!({"reason": "running_elsewhere", "message": "TI is already running elsewhere", "current_hostname": "h", "current_pid": 1})
    );
    // A deferral without its trigger's classpath is refused and changes nothing.
    let reply = server.send(
        "PATCH",
        &state,
        &token,
        json!({"state": "deferred", "next_method": "resume"}),
    );
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(server.state_of(id), "running");
    // Retry.
    let reply = server.send("PATCH", &state, &token, json!({"state": "up_for_retry", "end_date": "2026-01-01T11:00:00Z", "retry_reason": "flaky"}));
    assert_eq!(reply.status, 204, "{}", reply.body);
    // As in Airflow: the try moved to task_instance_history and the live row got a
    // new id, so the old one is 404 on /state and 410 on /heartbeat.
    assert!(
        server
            .rt
            .block_on(server.store.task_instance(id))
            .unwrap()
            .is_none()
    );
    let reply = server.send(
        "PATCH",
        &state,
        &token,
        json!({"state": "up_for_retry", "end_date": "2026-01-01T11:00:00Z"}),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = server.send(
        "PUT",
        &heartbeat,
        &token,
        json!({"hostname": "h", "pid": 1}),
    );
    assert_eq!(reply.status, 410, "{}", reply.body);
    assert_eq!(
        reply.detail(),
        json!({"reason": "not_found", "message": "Task Instance not found, it may have been moved to the Task Instance History table"})
    );

    // Unknown task instances: 404 on every route, never 500.
    let ghost = Uuid::new_v4();
    let ghost_token = server.token(ghost, TokenType::Execution);
    for (method, path, body) in [
        (
            "PATCH",
            format!("/task-instances/{ghost}/run"),
            run_body("h", 1),
        ),
        (
            "PATCH",
            format!("/task-instances/{ghost}/state"),
            failed.clone(),
        ),
        (
            "PUT",
            format!("/task-instances/{ghost}/heartbeat"),
            json!({"hostname": "h", "pid": 1}),
        ),
    ] {
        let reply = server.send(method, &path, &ghost_token, body);
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
        assert_eq!(
            reply.detail(),
            json!({"reason": "not_found", "message": "Task Instance not found"})
        );
    }
}

#[test]
fn malformed_requests_are_4xx_with_a_message_and_change_nothing() {
    let server = Server::start();
    let id = server.queued("bad_dag", "t");
    let token = server.token(id, TokenType::Execution);
    let run = format!("/task-instances/{id}/run");
    let state = format!("/task-instances/{id}/state");

    let cases: Vec<(&str, &str, &str, u16)> = vec![
        ("PATCH", run.as_str(), r#"{"hostname": "h"}"#, 422),
        ("PATCH", run.as_str(), "{not json", 422),
        (
            "PATCH",
            run.as_str(),
            r#"{"hostname":"h","unixname":"u","pid":1,"start_date":"2026-01-01T10:00:00Z","extra":1}"#,
            422,
        ),
        (
            "PATCH",
            run.as_str(),
            r#"{"hostname":"h","unixname":"u","pid":1,"start_date":"yesterday"}"#,
            422,
        ),
        (
            "PATCH",
            run.as_str(),
            r#"{"state":"success","hostname":"h","unixname":"u","pid":1,"start_date":"2026-01-01T10:00:00Z"}"#,
            422,
        ),
        ("PATCH", state.as_str(), r#"{"state": "exploded"}"#, 422),
        (
            "PATCH",
            state.as_str(),
            r#"{"end_date": "2026-01-01T10:00:00Z"}"#,
            422,
        ),
        (
            "PUT",
            "/variables/k",
            r#"{"vals": "wrong field name"}"#,
            422,
        ),
        ("PUT", "/variables/k", "[]", 422),
        ("PUT", "/variables/k", "{}", 422),
        ("PUT", "/variables/k", "[null, null]", 422),
        (
            "PATCH",
            state.as_str(),
            r#"{"state": "success", "end_date": "2026-01-01T10:00:00Z", "task_outlets": [null]}"#,
            422,
        ),
    ];
    for (method, path, body, status) in cases {
        let reply = server.call(method, path, Some(&token), Some(body), &[]);
        assert_eq!(
            reply.status, status,
            "{method} {path} {body}: {}",
            reply.body
        );
        let detail = reply.detail();
        let first = &detail[0];
        assert_eq!(first["loc"], json!(["body"]), "{body}");
        assert!(!first["msg"].as_str().unwrap().is_empty());
    }
    // Wrong content type.
    let reply = server.call(
        "PATCH",
        &run,
        Some(&token),
        Some(&run_body("h", 1).to_string()),
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(reply.status, 415);
    assert_eq!(reply.detail(), "expected `Content-Type: application/json`");
    // Bad query parameter.
    let reply = server.get("/xcoms/d/r/t/k?map_index=abc", Some(&token));
    assert_eq!(reply.status, 422);
    assert_eq!(reply.detail()[0]["loc"], json!(["query"]));
    // Unknown path and wrong method: JSON 404/405.
    let reply = server.get("/no/such/route", Some(&token));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.detail(), "Not Found");
    let reply = server.call("POST", "/variables/k", Some(&token), Some("{}"), &[]);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.detail(), "Method Not Allowed");

    assert_eq!(server.state_of(id), "queued");
    assert_eq!(server.get("/variables/k", Some(&token)).status, 404);
}

#[test]
fn execution_tokens_near_expiry_are_reissued() {
    let server = Server::start();
    let id = server.queued("reissue_dag", "t");
    // 600 s lifetime with 20 s left: inside the max(20 %, 30 s) window.
    let old = server
        .generator
        .generate_at(
            id,
            TokenType::Execution,
            Duration::from_secs(600),
            unix_now() - 580,
        )
        .unwrap();
    let reply = server.get("/variables/anything", Some(&old));
    assert_eq!(reply.status, 404);
    let fresh = reply
        .header("refreshed-api-token")
        .expect("reissued")
        .to_owned();
    let claims = server.validator.validate(&fresh).unwrap();
    assert_eq!(claims.sub, id);
    assert_eq!(claims.scope, TokenType::Execution);
    assert!(claims.exp > unix_now() + 500);
    // A fresh token is not reissued, nor is a workload token outside /run.
    let reply = server.get("/variables/anything", Some(&fresh));
    assert_eq!(reply.header("refreshed-api-token"), None);
    let workload = server
        .generator
        .generate_at(
            id,
            TokenType::Workload,
            Duration::from_secs(600),
            unix_now() - 580,
        )
        .unwrap();
    let reply = server.send(
        "PUT",
        &format!("/task-instances/{id}/heartbeat"),
        &workload,
        json!({"hostname": "h", "pid": 1}),
    );
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("refreshed-api-token"), None);
}

#[test]
fn openapi_describes_every_route_with_its_policy() {
    let server = Server::start();
    let reply = server.get("/openapi.json?version=2026-06-30", None);
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for route in app::routes() {
        let path = execution_api_server::versions::route_key(route.path);
        if !execution_api_server::versions::exists(
            execution_api_server::versions::ApiVersion::HEAD,
            route.method,
            &path,
        ) {
            continue;
        }
        let path = path.as_str();
        let op = &doc["paths"][path][route.method.to_ascii_lowercase()];
        assert!(op.is_object(), "{} {path} missing", route.method);
        assert_eq!(op["security"], json!([{"HTTPBearer": []}]));
        let tokens: Vec<&str> = route
            .policy
            .allowed_tokens()
            .iter()
            .map(|t| t.as_str())
            .collect();
        assert_eq!(op["x-token-policy"]["token_types"], json!(tokens), "{path}");
        assert!(op["responses"].as_object().unwrap().len() > 1, "{path}");
    }
    let run = &doc["paths"]["/task-instances/{task_instance_id}/run"]["patch"];
    assert_eq!(
        run["x-token-policy"],
        json!({"token_types": ["execution", "workload"], "bindings": ["ti:self"]})
    );
    assert!(doc["paths"]["/health/ping"]["get"].is_object());
}
