//! Ownership, declared in the policy, over real HTTP against the `server` binary: the strict
//! default (`ti:running` on every data route, `task:self` on XCom writes and deletes, no
//! `Refreshed-API-Token` for a task that stopped running) and the documented permissive
//! setting (`EXECUTION_API_OWNERSHIP=permissive`, Airflow 3.3.2's behaviour), on the embedded
//! SQLite database and on PostgreSQL.

mod common;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Response, ServerProcess, TempDir};
use policy_core::{Algorithm, GeneratorConfig, SigningKey, TokenGenerator, TokenType};
use support::create_ti;
use uuid::Uuid;

const SECRET: &str = "ownership-secret-0123456789abcdef0123456789abcdef0123456789abcdef";
const RUN_BODY: &str = r#"{"state":"running","hostname":"worker-1","unixname":"airflow","pid":4242,"start_date":"2026-01-01T00:00:00Z"}"#;
const SUCCESS_BODY: &str = r#"{"state":"success","end_date":"2026-01-01T01:00:00Z"}"#;
const HEARTBEAT_BODY: &str = r#"{"hostname":"worker-1","pid":4242}"#;
/// `ti create`'s run id.
const RUN_ID: &str = "manual__reliability";
/// `[core] task_success_overtime` for these servers: a finished task's tokens work this long.
const OVERTIME_SECS: u64 = 3;
/// The server's cross-request memory of a live task instance (`SUBJECT_TTL` in `cli.rs`).
const SUBJECT_TTL: Duration = Duration::from_secs(2);

const NOT_RUNNING: &str = "Token's task instance is not running";
const NOT_OWN: &str = "Token's task instance is not the one named in the request";

fn token(ti: Uuid, token_type: TokenType, ttl_secs: u64) -> String {
    TokenGenerator::new(
        SigningKey::from_secret(SECRET.as_bytes(), Algorithm::HS512, None).unwrap(),
        GeneratorConfig::default(),
    )
    .generate(ti, token_type, Duration::from_secs(ttl_secs))
    .unwrap()
}

fn call(addr: SocketAddr, method: &str, path: &str, token: &str, body: Option<&str>) -> Response {
    support::call(addr, method, path, token, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[track_caller]
fn assert_refused(reply: &Response, detail: &str) {
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json()["detail"], detail, "{}", reply.body);
}

fn start(data: &str, database_url: Option<&str>, ownership: &str) -> ServerProcess {
    let mut args = vec!["--data-dir", data];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let overtime = OVERTIME_SECS.to_string();
    ServerProcess::start(
        &args,
        &[
            ("AIRFLOW__API_AUTH__JWT_SECRET", SECRET),
            ("AIRFLOW__API_AUTH__JWT_LEEWAY", "0"),
            ("AIRFLOW__CORE__TASK_SUCCESS_OVERTIME", &overtime),
            ("EXECUTION_API_OWNERSHIP", ownership),
        ],
    )
}

fn scenario(database_url: Option<&str>) {
    let dir = TempDir::new("ownership");
    let data = dir.path().to_str().unwrap();
    // Unique ids: a PostgreSQL database is shared with other tests and runs.
    let dag = format!("own_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let ti = create_ti(dir.path(), database_url, &dag, "writer");
    let other = create_ti(dir.path(), database_url, &dag, "other");
    let variable = format!("/execution/variables/{dag}_var");
    let xcom = |task: &str, query: &str| format!("/execution/xcoms/{dag}/{RUN_ID}/{task}/k{query}");

    let server = start(data, database_url, "strict");
    let addr = server.addr;
    let execution = token(ti, TokenType::Execution, 600);
    // Lifetime 20 s: always inside the re-issue window (the last 30 s).
    let expiring = token(ti, TokenType::Execution, 20);
    let stranger = token(Uuid::new_v4(), TokenType::Execution, 600);

    // Queued, not started: its execution token reads nothing.
    assert_refused(&call(addr, "GET", &variable, &execution, None), NOT_RUNNING);

    let run_path = format!("/execution/task-instances/{ti}/run");
    let workload = token(ti, TokenType::Workload, 600);
    let started = call(addr, "PATCH", &run_path, &workload, Some(RUN_BODY));
    assert_eq!(started.status, 200, "{}", started.body);

    // Running: the data routes answer.
    let put = call(addr, "PUT", &variable, &execution, Some(r#"{"val":"v"}"#));
    assert_eq!(put.status, 201, "{}", put.body);
    let got = call(addr, "GET", &variable, &execution, None);
    assert_eq!(got.status, 200, "{}", got.body);
    // A token whose task instance does not exist reads and writes nothing.
    assert_refused(&call(addr, "GET", &variable, &stranger, None), NOT_RUNNING);
    assert_refused(
        &call(addr, "PUT", &variable, &stranger, Some(r#"{"val":"x"}"#)),
        NOT_RUNNING,
    );
    assert_refused(
        &call(addr, "GET", "/execution/connections/any", &stranger, None),
        NOT_RUNNING,
    );
    let still = call(addr, "GET", &variable, &execution, None);
    assert_eq!(still.json()["value"], "v", "{}", still.body);

    // XComs: its own task instance only, for writes and deletes; reads stay open.
    let own = call(addr, "POST", &xcom("writer", ""), &execution, Some("1"));
    assert_eq!(own.status, 201, "{}", own.body);
    let own = call(
        addr,
        "POST",
        &xcom("writer", "?map_index=-1"),
        &execution,
        Some("2"),
    );
    assert_eq!(own.status, 201, "{}", own.body);
    assert_refused(
        &call(addr, "POST", &xcom("other", ""), &execution, Some("3")),
        NOT_OWN,
    );
    assert_refused(
        &call(
            addr,
            "POST",
            &xcom("writer", "?map_index=0"),
            &execution,
            Some("4"),
        ),
        NOT_OWN,
    );
    assert_refused(
        &call(
            addr,
            "POST",
            &xcom("writer", "?map_index=-1&map_index=0"),
            &execution,
            Some("5"),
        ),
        NOT_OWN,
    );
    assert_refused(
        &call(addr, "DELETE", &xcom("other", ""), &execution, None),
        NOT_OWN,
    );
    let other_dag = format!("/execution/xcoms/{dag}x/{RUN_ID}/writer/k");
    assert_refused(
        &call(addr, "POST", &other_dag, &execution, Some("6")),
        NOT_OWN,
    );
    // Nothing was written for the other task; its own value is the last one it wrote.
    let read = call(addr, "GET", &xcom("other", ""), &execution, None);
    assert_eq!(read.status, 404, "{}", read.body);
    let read = call(addr, "GET", &xcom("writer", ""), &execution, None);
    assert_eq!(read.json()["value"], 2, "{}", read.body);
    // The other task's own token may write its XComs once it runs... but it is queued.
    let other_token = token(other, TokenType::Execution, 600);
    assert_refused(
        &call(addr, "POST", &xcom("other", ""), &other_token, Some("7")),
        NOT_RUNNING,
    );

    // A running task's expiring token gets a successor.
    let renewed = call(addr, "GET", &variable, &expiring, None);
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert!(
        renewed.header("refreshed-api-token").is_some(),
        "{:?}",
        renewed.headers
    );

    // Success, then callbacks: for `[core] task_success_overtime` its tokens still work.
    let state_path = format!("/execution/task-instances/{ti}/state");
    let done = call(addr, "PATCH", &state_path, &execution, Some(SUCCESS_BODY));
    assert_eq!(done.status, 204, "{}", done.body);
    let callback = call(addr, "GET", &variable, &execution, None);
    assert_eq!(callback.status, 200, "{}", callback.body);

    // After the overtime (and the server's memory of it): refused, and no successor.
    std::thread::sleep(
        Duration::from_secs(OVERTIME_SECS) + SUBJECT_TTL + Duration::from_millis(500),
    );
    assert_refused(&call(addr, "GET", &variable, &execution, None), NOT_RUNNING);
    assert_refused(
        &call(addr, "POST", &xcom("writer", ""), &execution, Some("8")),
        NOT_RUNNING,
    );
    let beat_path = format!("/execution/task-instances/{ti}/heartbeat");
    let beat = call(addr, "PUT", &beat_path, &expiring, Some(HEARTBEAT_BODY));
    assert_eq!(beat.status, 409, "{}", beat.body);
    assert!(
        beat.header("refreshed-api-token").is_none(),
        "{:?}",
        beat.headers
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "server exit {status}\n{log}");

    // Permissive: Airflow 3.3.2's behaviour, any valid execution token.
    let server = start(data, database_url, "permissive");
    let addr = server.addr;
    let got = call(addr, "GET", &variable, &stranger, None);
    assert_eq!(got.status, 200, "{}", got.body);
    let cross = call(addr, "POST", &xcom("other", ""), &execution, Some("9"));
    assert_eq!(cross.status, 201, "{}", cross.body);
    let renewed = call(addr, "GET", &variable, &expiring, None);
    assert!(
        renewed.header("refreshed-api-token").is_some(),
        "{:?}",
        renewed.headers
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "server exit {status}\n{log}");
}

#[test]
fn ownership_on_embedded_sqlite() {
    scenario(None);
}

#[test]
fn ownership_on_postgres() {
    let url = support::postgres_url();
    if url.is_none() && std::env::var_os("EXECUTION_API_TEST_REQUIRE_ALL").is_some() {
        panic!(
            "EXECUTION_API_TEST_POSTGRES_URL is unset but EXECUTION_API_TEST_REQUIRE_ALL is set"
        );
    }
    match url {
        Some(url) => scenario(Some(&url)),
        None => eprintln!("ownership_on_postgres: EXECUTION_API_TEST_POSTGRES_URL unset, not run"),
    }
}

#[test]
fn an_unknown_ownership_setting_is_refused() {
    let dir = TempDir::new("ownership-bad");
    let output = common::run(
        &["config", "--data-dir", dir.path().to_str().unwrap()],
        &[("EXECUTION_API_OWNERSHIP", "lenient")],
    );
    common::assert_clean_failure(&output, "EXECUTION_API_OWNERSHIP");
}
