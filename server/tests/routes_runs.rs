//! The DAG-run and DAG routes over real HTTP against the `server` binary, on every backend
//! (`backends::Backend::all`). On Airflow's databases, Airflow's own route functions answer
//! the same requests on the same rows and must agree with us.

mod backends;
mod common;

use backends::{Backend, unique};
use common::http;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// `value` with every RFC 3339 datetime string rewritten in one form (pydantic omits zero
/// microseconds, we do not; both are the same instant).
fn normalize(value: Value) -> Value {
    match value {
        Value::String(text) => match OffsetDateTime::parse(&text, &Rfc3339) {
            Ok(t) => Value::String(format!("instant:{}", t.unix_timestamp_nanos())),
            Err(_) => Value::String(text),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}

/// Three runs of one DAG (`a` success 2024-01-01, `b` failed 2024-01-02, `c` running
/// 2024-01-03) and the DAG's metadata with two tags.
fn fixture(backend: &Backend) -> String {
    let dag = unique("runs");
    for run in ["a", "b", "c"] {
        backend.create_ti(&dag, "t", run, -1);
    }
    for (run, day, state) in [
        ("a", "01", "success"),
        ("b", "02", "failed"),
        ("c", "03", "running"),
    ] {
        let at = backend.at(&format!("2024-01-{day} 00:00:00"));
        let end = backend.at(&format!("2024-01-{day} 01:00:00"));
        backend.exec(&[&format!(
            "UPDATE dag_run SET logical_date = {at}, data_interval_start = {at}, \
             data_interval_end = {end}, run_after = {at}, start_date = {at}, state = '{state}', \
             conf = '{{\"day\": \"{day}\"}}' WHERE dag_id = '{dag}' AND run_id = '{run}'"
        )]);
    }
    backend.exec(&[
        &format!("UPDATE dag_run SET triggering_user_name = 'alice', end_date = {} WHERE dag_id = '{dag}' AND run_id = 'a'", backend.at("2024-01-01 02:00:00")),
        &format!(
            "UPDATE dag SET owners = 'alice,bob', relative_fileloc = 'team/{dag}.py', \
             bundle_version = 'v7', next_dagrun = {} WHERE dag_id = '{dag}'",
            backend.at("2024-02-01 00:00:00")
        ),
        &format!("INSERT INTO dag_tag (name, dag_id) VALUES ('zeta', '{dag}'), ('alpha', '{dag}')"),
    ]);
    dag
}

fn reads_on(backend: &Backend) {
    let dag = fixture(backend);
    let server = backend.serve();
    let token = backend.token(Uuid::new_v4());
    let get = |path: &str| {
        http(
            server.addr,
            "GET",
            &format!("/execution{path}"),
            Some(&token),
            None,
        )
    };
    let ok = |path: &str| {
        let res = get(path);
        assert_eq!(
            res.status, 200,
            "{}: GET {path}: {}",
            backend.name, res.body
        );
        res.json()
    };

    // GET /dag-runs/{dag_id}/{run_id}
    let run = ok(&format!("/dag-runs/{dag}/a"));
    assert_eq!(
        normalize(run.clone()),
        normalize(json!({
            "dag_id": dag, "run_id": "a",
            "logical_date": "2024-01-01T00:00:00Z",
            "data_interval_start": "2024-01-01T00:00:00Z",
            "data_interval_end": "2024-01-01T01:00:00Z",
            "run_after": "2024-01-01T00:00:00Z",
            "start_date": "2024-01-01T00:00:00Z",
            "end_date": "2024-01-01T02:00:00Z",
            "clear_number": 0, "run_type": "manual", "state": "success",
            "conf": {"day": "01"}, "triggering_user_name": "alice",
            "consumed_asset_events": [], "partition_key": null, "partition_date": null,
            "note": null, "team_name": null,
        })),
        "{}: {run}",
        backend.name
    );
    let missing = get(&format!("/dag-runs/{dag}/nope"));
    assert_eq!(missing.status, 404);
    let not_found = json!({"detail": {"reason": "not_found", "message": format!(
        "Dag run with dag_id '{dag}' and run_id 'nope' was not found")}});
    assert_eq!(missing.json(), not_found);

    // .../state
    assert_eq!(
        ok(&format!("/dag-runs/{dag}/b/state")),
        json!({"state": "failed"})
    );
    let missing = get(&format!("/dag-runs/{dag}/nope/state"));
    assert_eq!((missing.status, missing.json()), (404, not_found));

    // /count
    let count = |q: &str| ok(&format!("/dag-runs/count?dag_id={dag}{q}"));
    assert_eq!(count(""), json!(3));
    assert_eq!(count("&states=success&states=failed"), json!(2));
    assert_eq!(count("&run_ids=a&run_ids=c&states=running"), json!(1));
    assert_eq!(count("&logical_dates=2024-01-02T00:00:00Z"), json!(1));
    assert_eq!(
        count("&logical_dates=2024-01-02T01:00:00%2B01:00&logical_dates=2024-01-03T00:00:00Z"),
        json!(2)
    );
    assert_eq!(count("&run_ids=zzz"), json!(0));
    assert_eq!(ok("/dag-runs/count?dag_id=no_such_dag"), json!(0));
    assert_eq!(get("/dag-runs/count").status, 422);
    assert_eq!(
        get(&format!(
            "/dag-runs/count?dag_id={dag}&logical_dates=yesterday"
        ))
        .status,
        422
    );
    assert_eq!(
        get(&format!(
            "/dag-runs/count?dag_id={dag}&logical_dates=2024-01-02T00:00:00"
        ))
        .status,
        422,
        "naive"
    );

    // /previous
    let previous = |q: &str| ok(&format!("/dag-runs/previous?dag_id={dag}{q}"));
    assert_eq!(
        previous("&logical_date=2024-01-03T00:00:00Z")["run_id"],
        "b"
    );
    assert_eq!(
        previous("&logical_date=2024-01-03T00:00:00Z&state=success")["run_id"],
        "a"
    );
    assert_eq!(previous("&logical_date=2024-01-01T00:00:00Z"), Value::Null);
    assert_eq!(
        get(&format!(
            "/dag-runs/previous?dag_id={dag}&logical_date=2024-01-03T00:00:00Z&state=done"
        ))
        .status,
        422
    );
    assert_eq!(get(&format!("/dag-runs/previous?dag_id={dag}")).status, 422);
    // The legacy route, declared first as in Airflow: datetimes with +00:00.
    let legacy = ok(&format!(
        "/dag-runs/{dag}/previous?logical_date=2024-01-03T00:00:00Z"
    ));
    assert_eq!(legacy["run_id"], "b");
    assert!(
        legacy["logical_date"].as_str().unwrap().ends_with("+00:00"),
        "{legacy}"
    );

    // /dags/{dag_id}
    let got = ok(&format!("/dags/{dag}"));
    assert_eq!(
        normalize(got.clone()),
        normalize(json!({
            "dag_id": dag, "is_paused": false, "bundle_name": "dags-folder",
            "bundle_version": "v7", "relative_fileloc": format!("team/{dag}.py"),
            "owners": "alice,bob", "tags": ["alpha", "zeta"],
            "next_dagrun": "2024-02-01T00:00:00Z",
        })),
        "{got}"
    );
    let missing = get("/dags/no_such_dag");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({"detail": {"reason": "not_found", "message": "The Dag with dag_id: `no_such_dag` was not found"}})
    );

    if backend.is_airflow() {
        let cases = json!([
            {"route": "get", "dag_id": dag, "run_id": "a"},
            {"route": "get", "dag_id": dag, "run_id": "nope"},
            {"route": "state", "dag_id": dag, "run_id": "b"},
            {"route": "state", "dag_id": dag, "run_id": "nope"},
            {"route": "count", "dag_id": dag},
            {"route": "count", "dag_id": dag, "states": ["success", "failed"]},
            {"route": "count", "dag_id": dag, "run_ids": ["a", "c"], "states": ["running"]},
            {"route": "count", "dag_id": dag, "logical_dates": ["2024-01-02T01:00:00+01:00", "2024-01-03T00:00:00Z"]},
            {"route": "previous", "dag_id": dag, "logical_date": "2024-01-03T00:00:00Z"},
            {"route": "previous", "dag_id": dag, "logical_date": "2024-01-03T00:00:00Z", "state": "success"},
            {"route": "previous", "dag_id": dag, "logical_date": "2024-01-01T00:00:00Z"},
            {"route": "dag", "dag_id": dag},
            {"route": "dag", "dag_id": "no_such_dag"},
        ]);
        let ours = vec![
            json!({"ok": ok(&format!("/dag-runs/{dag}/a"))}),
            json!({"status": 404, "detail": get(&format!("/dag-runs/{dag}/nope")).json()["detail"]}),
            json!({"ok": ok(&format!("/dag-runs/{dag}/b/state"))}),
            json!({"status": 404, "detail": get(&format!("/dag-runs/{dag}/nope/state")).json()["detail"]}),
            json!({"ok": count("")}),
            json!({"ok": count("&states=success&states=failed")}),
            json!({"ok": count("&run_ids=a&run_ids=c&states=running")}),
            json!({"ok": count("&logical_dates=2024-01-02T01:00:00%2B01:00&logical_dates=2024-01-03T00:00:00Z")}),
            json!({"ok": previous("&logical_date=2024-01-03T00:00:00Z")}),
            json!({"ok": previous("&logical_date=2024-01-03T00:00:00Z&state=success")}),
            json!({"ok": previous("&logical_date=2024-01-01T00:00:00Z")}),
            json!({"ok": ok(&format!("/dags/{dag}"))}),
            json!({"status": 404, "detail": get("/dags/no_such_dag").json()["detail"]}),
        ];
        let theirs = backend.models(&["dag-run-routes", &cases.to_string()]);
        for ((case, ours), theirs) in cases
            .as_array()
            .unwrap()
            .iter()
            .zip(ours)
            .zip(theirs.as_array().unwrap())
        {
            assert_eq!(
                normalize(ours),
                normalize(theirs.clone()),
                "{}: {case}",
                backend.name
            );
        }
    }

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn dag_run_and_dag_reads_on_every_backend() {
    for backend in Backend::all("runs-reads") {
        eprintln!("backend {}", backend.name);
        reads_on(&backend);
    }
}
