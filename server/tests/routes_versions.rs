//! The answers Airflow shapes per API version, replayed against Airflow's own Execution API
//! (its Cadwyn app, in process: `tests/airflow/queries_side.py calls`) and against ours, on the
//! two databases made by `airflow db migrate`, at the head version and at every older version
//! the Task SDK 1.1.x, 1.2.x and 1.3.x send: `PATCH /run` (the `TIRunContext` and its DAG run,
//! whose fields come and go by version), the DAG-run, DAG, previous-run and XCom reads, and the
//! asset-event reads. Both sides answer the same rows; statuses and bodies must be equal
//! (datetimes compared as instants).

mod backends;
mod common;

use backends::{Backend, normalize, unique};
use common::request;
use serde_json::{Value, json};
use uuid::Uuid;

/// The head version and the older ones the Task SDK 1.1.x, 1.2.x and 1.3.x send.
const VERSIONS: [&str; 5] = [
    "head",
    "2025-09-23",
    "2025-10-27",
    "2025-11-05",
    "2026-04-06",
];

const RUN_BODY: &str = r#"{"state":"running","hostname":"worker-v","unixname":"airflow","pid":31,"start_date":"2026-01-05T10:00:00Z"}"#;

/// One request of the replay (its path under `/execution`, where Airflow's in-process app
/// has its root).
struct Call {
    version: &'static str,
    method: &'static str,
    path: String,
    body: Option<&'static str>,
    /// SQL run before the request (on both sides).
    before: Vec<String>,
}

/// Two runs of one DAG (`r0` succeeded on 2024-01-01, `r1` running on 2024-01-02 with a NULL
/// `conf` and a triggering user) with one task each, an XCom of `r1`'s task; returns the DAG
/// id and `r1`'s task instance.
fn fixture(backend: &Backend) -> (String, Uuid) {
    let dag = unique("versions");
    backend.create_ti(&dag, "t", "r0", -1);
    let ti = backend.create_ti(&dag, "t", "r1", -1);
    let (day0, day1) = (
        backend.at("2024-01-01 00:00:00"),
        backend.at("2024-01-02 00:00:00"),
    );
    backend.exec(&[
        &format!(
            "UPDATE dag_run SET state = 'success', logical_date = {day0}, run_after = {day0}, \
             start_date = {day0}, end_date = {day0} WHERE dag_id = '{dag}' AND run_id = 'r0'"
        ),
        &format!(
            "UPDATE dag_run SET state = 'running', logical_date = {day1}, run_after = {day1}, \
             start_date = {day1}, conf = NULL, triggering_user_name = 'carol' \
             WHERE dag_id = '{dag}' AND run_id = 'r1'"
        ),
        &format!(
            "INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, \
             timestamp) SELECT id, 't', -1, 'answer', dag_id, run_id, '{{\"a\": [1, 2]}}', {day1} \
             FROM dag_run WHERE dag_id = '{dag}' AND run_id = 'r1'"
        ),
    ]);
    (dag, ti)
}

/// The task instance queued again, as before its first `/run`.
fn requeue(ti: Uuid, postgres: bool) -> String {
    let id = if postgres {
        ti.to_string()
    } else {
        ti.simple().to_string()
    };
    format!(
        "UPDATE task_instance SET state = 'queued', hostname = '', unixname = 'airflow', \
         pid = NULL, start_date = NULL, end_date = NULL, last_heartbeat_at = NULL \
         WHERE id = '{id}'"
    )
}

fn calls(backend: &Backend, dag: &str, ti: Uuid) -> Vec<Call> {
    let mut calls = Vec::new();
    for version in VERSIONS {
        let get = |path: String| Call {
            version,
            method: "GET",
            path,
            body: None,
            before: Vec::new(),
        };
        calls.push(Call {
            version,
            method: "PATCH",
            path: format!("/task-instances/{ti}/run"),
            body: Some(RUN_BODY),
            before: vec![requeue(ti, backend.is_postgres())],
        });
        calls.extend([
            get(format!("/dag-runs/{dag}/r1")),
            get(format!("/dag-runs/{dag}/r0/state")),
            get(format!(
                "/dag-runs/{dag}/previous?logical_date=2024-01-02T00:00:00Z"
            )),
            get(format!(
                "/dag-runs/previous?dag_id={dag}&logical_date=2024-01-02T00:00:00Z"
            )),
            get(format!("/dag-runs/count?dag_id={dag}")),
            get(format!("/dags/{dag}")),
            get(format!("/task-instances/{ti}/previous-successful-dagrun")),
            get(format!("/xcoms/{dag}/r1/t/answer")),
            get(format!("/xcoms/{dag}/r1/t/answer/item/0")),
            get("/asset-events/by-asset?name=versions-none".to_owned()),
            get("/asset-events/by-asset?name=versions-none&uri=".to_owned()),
            get("/asset-events/by-asset?name=&uri=".to_owned()),
            get("/asset-events/by-asset-alias?name=versions-none".to_owned()),
            get("/variables/keys?limit=1".to_owned()),
        ]);
    }
    calls
}

/// Airflow's answers, in order. Its in-process app skips the token check only at the head
/// version (Cadwyn's older routes keep the JWT dependency), so every request carries `token`,
/// which Airflow verifies with the servers' secret.
fn theirs(backend: &Backend, calls: &[Call], token: &str) -> Vec<Value> {
    let requests: Vec<Value> = calls
        .iter()
        .map(|c| {
            json!({"version": c.version, "method": c.method, "path": c.path, "body": c.body,
                   "before": c.before, "token": token})
        })
        .collect();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/queries_side.py");
    let out = backend.venv_with(
        "python",
        &[
            script.to_str().unwrap(),
            "calls",
            &Value::from(requests).to_string(),
        ],
        &[("AIRFLOW__API_AUTH__JWT_SECRET", backends::JWT_SECRET)],
    );
    // Airflow's structlog writes its own lines to stdout too.
    out.lines()
        .filter(|line| line.starts_with("{\"status\""))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

#[test]
fn versioned_answers_are_airflows_at_every_sdk_version() {
    let airflow: Vec<Backend> = Backend::all("versions")
        .into_iter()
        .filter(Backend::is_airflow)
        .collect();
    assert_eq!(airflow.len(), 2, "both Airflow databases");
    for backend in airflow {
        let (dag, ti) = fixture(&backend);
        let calls = calls(&backend, &dag, ti);
        let token = backend.token(ti);
        let theirs = theirs(&backend, &calls, &token);
        assert_eq!(
            theirs.len(),
            calls.len(),
            "{}: an answer per call",
            backend.name
        );
        let server = backend.serve();
        let auth = format!("Bearer {token}");
        for (call, theirs) in calls.iter().zip(theirs) {
            let before: Vec<&str> = call.before.iter().map(String::as_str).collect();
            backend.exec(&before);
            let mut headers = vec![
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            if call.version != "head" {
                headers.push(("Airflow-API-Version", call.version));
            }
            let path = format!("/execution{}", call.path);
            let ours =
                request(server.addr, call.method, &path, &headers, call.body).expect("request");
            let ours = json!({
                "status": ours.status,
                "body": if ours.body.is_empty() { Value::Null } else { ours.json() },
            });
            assert_eq!(
                normalize(ours.clone()),
                normalize(theirs.clone()),
                "{}: {} {} at API version {}\n ours: {ours}\n Airflow's: {theirs}",
                backend.name,
                call.method,
                call.path,
                call.version
            );
        }
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}
