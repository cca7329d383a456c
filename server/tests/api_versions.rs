//! API versions over real HTTP against the binary, as Airflow's Cadwyn app answers them: the
//! `Airflow-API-Version` header picks the routes and the response shapes, for the versions the
//! Task SDK 1.1.x, 1.2.x and 1.3.x send; a bad header is a 422; the OpenAPI document exists per
//! version.

mod common;
mod support;

use common::{Response, ServerProcess, TempDir, request};
use serde_json::{Value, json};
use support::{cli, create_ti};

fn mint(dir: &std::path::Path, sub: &str, scope: &str) -> String {
    cli(
        dir,
        None,
        &["token", "mint", "--sub", sub, "--scope", scope],
        &[],
    )
}

fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    version: Option<&str>,
    body: Option<&str>,
) -> Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(version) = version {
        headers.push(("Airflow-API-Version", version));
    }
    request(addr, method, path, &headers, body).expect("request")
}

const RUN_BODY: &str = r#"{"state":"running","hostname":"h","unixname":"u","pid":1,"start_date":"2026-01-01T00:00:00Z"}"#;

#[test]
fn versions_pick_routes_and_shapes() {
    let dir = TempDir::new("api-versions");
    cli(dir.path(), None, &["variable", "set", "v", "1"], &[]);
    let server = ServerProcess::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let addr = server.addr;
    let any = mint(dir.path(), &uuid::Uuid::new_v4().to_string(), "execution");

    // Not a date: 422 on the header, as pydantic words it; nothing else is looked at.
    let reply = call(
        addr,
        "GET",
        "/execution/variables/v",
        &any,
        Some("latest"),
        None,
    );
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(
        reply.json()["detail"][0]["loc"],
        json!(["header", "Airflow-API-Version"])
    );

    // Before the first version: no route exists.
    let reply = call(
        addr,
        "GET",
        "/execution/variables/v",
        &any,
        Some("2025-01-01"),
        None,
    );
    assert_eq!(reply.status, 404, "{}", reply.body);

    // A date between versions (2025-12-01 -> 2025-11-05), and the header echoed as sent.
    let reply = call(
        addr,
        "GET",
        "/execution/variables/v",
        &any,
        Some("2025-12-01"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("airflow-api-version"), Some("2025-12-01"));

    // `/variables/keys` came in 2026-06-30; before, it is the variable named `keys`.
    let reply = call(
        addr,
        "GET",
        "/execution/variables/keys",
        &any,
        Some("2026-06-30"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["keys"].is_array(), "{}", reply.body);
    let reply = call(
        addr,
        "GET",
        "/execution/variables/keys",
        &any,
        Some("2026-04-06"),
        None,
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(
        reply.json()["detail"]["message"],
        "Variable with key 'keys' not found"
    );
    cli(
        dir.path(),
        None,
        &["variable", "set", "keys", "named keys"],
        &[],
    );
    let reply = call(
        addr,
        "GET",
        "/execution/variables/keys",
        &any,
        Some("2025-11-05"),
        None,
    );
    assert_eq!(reply.json()["value"], "named keys", "{}", reply.body);

    // A route that came later is not there for older clients: 404, or 405 where the path
    // has other methods (the dag-run detail beside the trigger).
    let reply = call(
        addr,
        "GET",
        "/execution/dags/d",
        &any,
        Some("2025-11-05"),
        None,
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = call(
        addr,
        "GET",
        "/execution/dags/d",
        &any,
        Some("2026-04-06"),
        None,
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(
        reply.json()["detail"]["reason"],
        "not_found",
        "{}",
        reply.body
    );
    let reply = call(
        addr,
        "GET",
        "/execution/dag-runs/d/r",
        &any,
        Some("2025-11-05"),
        None,
    );
    assert_eq!(reply.status, 405, "{}", reply.body);
    assert_eq!(reply.header("allow"), Some("POST"));

    // The legacy previous-run route: only 2025-08-10 to before 2026-04-06; before, the path
    // has only the trigger (405); from 2026-04-06 on, it is the run named `previous` (404 here).
    let previous = "/execution/dag-runs/d/previous?logical_date=2026-01-01T00:00:00Z";
    let reply = call(addr, "GET", previous, &any, Some("2025-11-05"), None);
    assert_eq!((reply.status, reply.body.as_str()), (200, "null"));
    let reply = call(addr, "GET", previous, &any, Some("2025-05-20"), None);
    assert_eq!(reply.status, 405, "{}", reply.body);
    for version in ["2026-04-06", "2026-06-30"] {
        let reply = call(addr, "GET", previous, &any, Some(version), None);
        assert_eq!(reply.status, 404, "{version}: {}", reply.body);
        assert!(
            reply.json()["detail"]["message"]
                .as_str()
                .unwrap()
                .contains("'previous' was not found"),
            "{version}: {}",
            reply.body
        );
    }

    // `/run` shaped per version: one task instance per client version.
    let shapes = [
        // (version, team_name, note, triggering_user_name, upstream_map_indexes)
        ("2026-06-30", true, true, true, false),
        ("2026-04-06", false, true, true, false),
        ("2025-11-05", false, false, true, true),
        ("2025-10-27", false, false, false, true),
        ("2025-09-23", false, false, false, true),
    ];
    for (version, team, note, user, upstream) in shapes {
        let ti = create_ti(dir.path(), None, "versions_dag", &format!("t_{version}"));
        let token = mint(dir.path(), &ti.to_string(), "workload");
        let reply = call(
            addr,
            "PATCH",
            &format!("/execution/task-instances/{ti}/run"),
            &token,
            Some(version),
            Some(RUN_BODY),
        );
        assert_eq!(reply.status, 200, "{version}: {}", reply.body);
        let body: Value = reply.json();
        let run = &body["dag_run"];
        assert_eq!(run.get("team_name").is_some(), team, "{version}: {body}");
        assert_eq!(
            run.get("partition_date").is_some(),
            team,
            "{version}: {body}"
        );
        // Only a task resuming from a deferral gets a top-level `start_date` (Airflow answers
        // `/run` with `response_model_exclude_unset`).
        assert!(body.get("start_date").is_none(), "{version}: {body}");
        assert_eq!(run.get("note").is_some(), note, "{version}: {body}");
        assert_eq!(
            run.get("triggering_user_name").is_some(),
            user,
            "{version}: {body}"
        );
        assert_eq!(
            body.get("upstream_map_indexes"),
            upstream.then_some(&Value::Null),
            "{version}: {body}"
        );
        if !note {
            // Older clients need a start date on the run: `run_after` stands in.
            assert!(run["start_date"].is_string(), "{version}: {body}");
        }
        if !user {
            assert_eq!(run["conf"], json!({}), "{version}: {body}");
        }
        assert!(run["state"].is_string(), "{version}: {body}");
    }
}

#[test]
fn the_openapi_document_is_served_per_version() {
    let dir = TempDir::new("api-versions-openapi");
    let server = ServerProcess::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let addr = server.addr;
    let get = |path: &str| request(addr, "GET", path, &[], None).expect("request");

    let reply = get("/execution/openapi.json");
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("?version=")
    );

    for (asked, served) in [
        ("2026-06-30", "2026-06-30"),
        ("2025-12-01", "2025-11-05"),
        ("2030-01-01", "2026-06-30"),
    ] {
        let reply = get(&format!("/execution/openapi.json?version={asked}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let doc = reply.json();
        assert_eq!(doc["info"]["version"], served);
        assert!(
            doc["paths"]["/task-instances/{task_instance_id}/run"]["patch"].is_object(),
            "{asked}"
        );
    }
    assert_eq!(
        get("/execution/openapi.json?version=2020-01-01").status,
        404
    );
}
