//! The DAG-run and DAG routes over real HTTP against the `server` binary, on every backend
//! (`backends::Backend::all`). On Airflow's databases, Airflow's own route functions answer
//! the same requests on the same rows and must agree with us.

mod backends;
mod common;

use backends::{Backend, normalize, unique};
use common::http;
use serde_json::{Value, json};
use uuid::Uuid;

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
    // The legacy route, declared first as in Airflow, for the versions that have it
    // (2025-08-10 to before 2026-04-06): datetimes with +00:00. At the newest version the
    // path is the run named `previous`.
    let legacy_path =
        format!("/execution/dag-runs/{dag}/previous?logical_date=2024-01-03T00:00:00Z");
    let auth = format!("Bearer {token}");
    let legacy = common::request(
        server.addr,
        "GET",
        &legacy_path,
        &[
            ("Authorization", &auth),
            ("Airflow-API-Version", "2025-11-05"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(legacy.status, 200, "{}: {}", backend.name, legacy.body);
    let legacy = legacy.json();
    assert_eq!(get(&legacy_path["/execution".len()..]).status, 404);
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

/// Bad triggers on any database: 4xx with a JSON detail, nothing written.
fn trigger_refusals_on(backend: &Backend) {
    let dag = unique("plain");
    let caller = backend.create_ti(&dag, "t", "r", -1);
    let server = backend.serve();
    let token = backend.token(caller);
    let post = |path: &str, body: &str| {
        http(
            server.addr,
            "POST",
            &format!("/execution/dag-runs/{path}"),
            Some(&token),
            Some(body),
        )
    };
    let runs = || {
        backend.scalar(&format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM dag_run WHERE dag_id = '{dag}'"
        ))
    };
    let before = runs();
    let res = post("no_such_dag/x", "{}");
    assert_eq!(res.status, 404, "{}", res.body);
    assert_eq!(
        res.json(),
        json!({"detail": {"reason": "not_found", "message": "Dag with dag_id: 'no_such_dag' not found"}})
    );
    // A DAG Airflow never serialized.
    let res = post(&format!("{dag}/x"), "{}");
    assert_eq!(res.status, 404, "{}", res.body);
    for body in [
        r#"{"bogus": 1}"#,
        r#"{"conf": null}"#,
        r#"{"conf": [1]}"#,
        r#"{"logical_date": "2024-01-01T00:00:00"}"#,
        "[]",
        "nope",
    ] {
        let res = post(&format!("{dag}/x"), body);
        assert_eq!(res.status / 100, 4, "{body}: {}", res.body);
        assert!(res.json().get("detail").is_some(), "{body}: {}", res.body);
    }
    backend.exec(&[&format!(
        "UPDATE dag SET is_stale = true WHERE dag_id = '{dag}'"
    )]);
    assert_eq!(post(&format!("{dag}/x"), "{}").status, 404);
    backend.exec(&[&format!(
        "UPDATE dag SET is_stale = false, has_import_errors = true WHERE dag_id = '{dag}'"
    )]);
    let res = post(&format!("{dag}/x"), "{}");
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["detail"]["reason"], "import_errors");
    backend.exec(&[&format!(
        "UPDATE dag SET has_import_errors = false, allowed_run_types = '[\"manual\"]' WHERE dag_id = '{dag}'"
    )]);
    let res = post(&format!("{dag}/x"), "{}");
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json()["detail"],
        json!({"reason": "denied_run_type", "message": format!("Dag with dag_id '{dag}' does not allow operator-triggered runs")})
    );
    assert_eq!(
        runs(),
        before,
        "{}: a refused trigger wrote a run",
        backend.name
    );

    // Clear: import errors, an unknown run, a run whose DAG Airflow never serialized.
    let history = || {
        backend.scalar(&format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM task_instance_history WHERE dag_id = '{dag}'"
        ))
    };
    backend.exec(&[&format!(
        "UPDATE dag SET has_import_errors = true WHERE dag_id = '{dag}'"
    )]);
    let res = post(&format!("{dag}/nope/clear"), "");
    assert_eq!(
        res.status, 400,
        "import errors first, as in Airflow: {}",
        res.body
    );
    backend.exec(&[&format!(
        "UPDATE dag SET has_import_errors = false WHERE dag_id = '{dag}'"
    )]);
    let res = post(&format!("{dag}/nope/clear"), "");
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json()["detail"],
        json!({"reason": "not_found", "message": "Dag run with run_id: 'nope' not found"})
    );
    let res = post(&format!("{dag}/r/clear"), "");
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json(),
        json!({"detail": format!("The Dag with ID: `{dag}` was not found")})
    );
    assert_eq!(post("no_such_dag/r/clear", "").status, 404);
    assert_eq!(
        history().as_deref(),
        Some("0"),
        "a refused clear archived rows"
    );
    assert_eq!(
        backend
            .scalar(&format!(
                "SELECT CAST(id AS TEXT) FROM task_instance WHERE dag_id = '{dag}'"
            ))
            .map(|id| id.replace('-', "")),
        Some(caller.simple().to_string()),
        "a refused clear changed an id"
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// A run we trigger next to one Airflow's own `trigger_dag` creates for the same serialized
/// DAG: Airflow's models read both alike (same task instances, columns and priorities).
fn trigger_on_airflow(backend: &Backend) {
    let prefix = unique("runs");
    let env = [("RUNS_DAG_PREFIX", prefix.as_str())];
    backend.venv_with("airflow", &["dags", "reserialize"], &env);
    let caller_dag = unique("caller");
    let caller = backend.create_ti(&caller_dag, "t", "r", -1);
    backend.exec(&[&format!(
        "UPDATE dag_run SET triggering_user_name = 'carol' WHERE dag_id = '{caller_dag}'"
    )]);
    let server = backend.serve();
    let token = backend.token(caller);
    let post = |path: &str, body: &str| {
        http(
            server.addr,
            "POST",
            &format!("/execution/dag-runs/{path}"),
            Some(&token),
            Some(body),
        )
    };

    let res = post(
        &format!("{prefix}/ours"),
        r#"{"logical_date": "2024-03-01T00:00:00Z", "conf": {"k": 1}, "note": "from us"}"#,
    );
    assert_eq!(res.status, 204, "{}: {}", backend.name, res.body);
    backend.models_with(
        &[
            "trigger",
            &prefix,
            "theirs",
            "2024-03-02T00:00:00+00:00",
            r#"{"k": 1}"#,
        ],
        &env,
    );
    let mut ours = backend.models_with(&["run-rows", &prefix, "ours"], &env);
    let mut theirs = backend.models_with(&["run-rows", &prefix, "theirs"], &env);
    assert_eq!(ours["note"], "from us");
    assert_eq!(theirs["note"], "from airflow");
    assert_eq!(ours["logical_date"], "2024-03-01T00:00:00+00:00");
    assert_eq!(ours["verify_integrity_added"], 0, "{ours}");
    assert_eq!(
        ours["tis"].as_array().unwrap().len(),
        7,
        "a, b, numbers, again, 3 x double: {ours}"
    );
    for side in [&mut ours, &mut theirs] {
        for key in ["note", "logical_date"] {
            side.as_object_mut().unwrap().remove(key);
        }
    }
    assert_eq!(
        ours, theirs,
        "{}: our run differs from Airflow's",
        backend.name
    );
    assert_eq!(
        backend.scalar(&format!("SELECT triggering_user_name FROM dag_run WHERE dag_id = '{prefix}' AND run_id = 'ours'")).as_deref(),
        Some("carol"),
        "inherited from the calling task's run"
    );

    // Conflicts: the run id, then the logical date.
    let res = post(&format!("{prefix}/ours"), "{}");
    assert_eq!(res.status, 409);
    assert_eq!(
        res.json()["detail"],
        json!({"reason": "already_exists", "message": format!("A run already exists for Dag '{prefix}' with run_id 'ours'")})
    );
    let res = post(
        &format!("{prefix}/again"),
        r#"{"logical_date": "2024-03-02T00:00:00Z"}"#,
    );
    assert_eq!(res.status, 409, "{}", res.body);
    // No logical date: no data interval, any timetable.
    assert_eq!(post(&format!("{prefix}/nodate"), "{}").status, 204);
    let nodate = backend.models_with(&["run-rows", &prefix, "nodate"], &env);
    assert_eq!(nodate["logical_date"], Value::Null);
    assert_eq!(nodate["conf"], json!({}));
    assert_eq!(post(&format!("{prefix}_cron/nodate"), "{}").status, 204);
    // Refusals, each naming its reason, nothing written.
    for (path, body, reason) in [
        (
            format!("{prefix}_cron/dated"),
            r#"{"logical_date": "2024-03-01T00:00:00Z"}"#,
            "unsupported_timetable",
        ),
        (
            format!("{prefix}/typed"),
            r#"{"conf": {"q": 5}}"#,
            "value_error",
        ),
        (
            format!("{prefix}/parted"),
            r#"{"partition_key": "p1"}"#,
            "not_partitioned",
        ),
        (format!("{prefix}/a..b"), "{}", "value_error"),
        (format!("{prefix}/has%20space"), "{}", "value_error"),
        (
            format!("{prefix}/early"),
            r#"{"logical_date": "2023-01-01T00:00:00Z"}"#,
            "value_error",
        ),
    ] {
        let res = post(&path, body);
        assert_eq!(res.status, 400, "{path} {body}: {}", res.body);
        assert_eq!(
            res.json()["detail"]["reason"],
            reason,
            "{path}: {}",
            res.body
        );
    }
    let count = backend.scalar(&format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM dag_run WHERE dag_id IN ('{prefix}', '{prefix}_cron')"
    ));
    assert_eq!(
        count.as_deref(),
        Some("4"),
        "ours, theirs and the two undated runs only"
    );

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// A run we clear next to the same run Airflow's own `clear_dag_run` clears: Airflow's models
/// read both alike (history rows, new ids, states, max_tries, the run queued again).
fn clear_on_airflow(backend: &Backend) {
    let prefix = unique("clear");
    let env = [("RUNS_DAG_PREFIX", prefix.as_str())];
    backend.venv_with("airflow", &["dags", "reserialize"], &env);
    for (run, day) in [("ours", "01"), ("theirs", "02")] {
        backend.models_with(
            &[
                "trigger",
                &prefix,
                run,
                &format!("2024-03-{day}T00:00:00+00:00"),
                "{}",
            ],
            &env,
        );
    }
    // The same history on both: `a` succeeded on try 1, `double[0]` is running, `b` was
    // deferred; the run finished.
    let started = backend.at("2024-03-03 00:00:00");
    let ended = backend.at("2024-03-03 00:01:00");
    backend.exec(&[
        &format!(
            "UPDATE task_instance SET state = 'success', try_number = 1, start_date = {started}, \
             end_date = {ended}, duration = 60 WHERE dag_id = '{prefix}' AND task_id = 'a'"
        ),
        &format!(
            "UPDATE task_instance SET state = 'running', try_number = 1, start_date = {started} \
             WHERE dag_id = '{prefix}' AND task_id = 'double' AND map_index = 0"
        ),
        &format!(
            "UPDATE task_instance SET state = 'deferred', try_number = 2, next_method = 'resume', \
             start_date = {started} WHERE dag_id = '{prefix}' AND task_id = 'b'"
        ),
        &format!(
            "UPDATE dag_run SET state = 'success', start_date = {started}, \
             last_scheduling_decision = {ended} WHERE dag_id = '{prefix}'"
        ),
    ]);
    let old_ours = backend.models_with(&["ti-ids", &prefix, "ours"], &env);
    let old_theirs = backend.models_with(&["ti-ids", &prefix, "theirs"], &env);

    let server = backend.serve();
    let token = backend.token(Uuid::new_v4());
    let post = |path: &str| {
        http(
            server.addr,
            "POST",
            &format!("/execution/dag-runs/{path}"),
            Some(&token),
            Some(""),
        )
    };
    let res = post(&format!("{prefix}/ours/clear"));
    assert_eq!(res.status, 204, "{}: {}", backend.name, res.body);
    let theirs_clear = backend.models_with(&["clear", &prefix, "theirs"], &env);
    assert_eq!(theirs_clear, json!({"ok": null}));

    let ours = backend.models_with(&["run-rows", &prefix, "ours", &old_ours.to_string()], &env);
    let theirs = backend.models_with(
        &["run-rows", &prefix, "theirs", &old_theirs.to_string()],
        &env,
    );
    assert_eq!(ours["state"], "queued", "{ours}");
    assert_eq!(ours["clear_number"], 1);
    assert_eq!(ours["history"].as_array().unwrap().len(), 7, "{ours}");
    let strip = |mut side: Value| {
        side.as_object_mut().unwrap().remove("logical_date");
        side
    };
    assert_eq!(
        strip(ours.clone()),
        strip(theirs),
        "{}: our clear differs from Airflow's",
        backend.name
    );
    let b = ours["tis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == "b")
        .unwrap()
        .clone();
    assert_eq!(
        (
            b["max_tries"].clone(),
            b["state"].clone(),
            b["id_is_old"].clone()
        ),
        (json!(4), Value::Null, json!(false))
    );

    // Refusals: unknown run, unknown DAG.
    let res = post(&format!("{prefix}/nope/clear"));
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json()["detail"],
        json!({"reason": "not_found", "message": "Dag run with run_id: 'nope' not found"})
    );
    assert_eq!(post("no_such_dag/x/clear").status, 404);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn clears_on_airflow_backends() {
    for backend in Backend::all("runs-clear") {
        if backend.is_airflow() {
            eprintln!("backend {}", backend.name);
            clear_on_airflow(&backend);
        }
    }
}

#[test]
fn triggers_on_every_backend() {
    for backend in Backend::all("runs-trigger") {
        eprintln!("backend {}", backend.name);
        trigger_refusals_on(&backend);
        if backend.is_airflow() {
            trigger_on_airflow(&backend);
        }
    }
}

#[test]
fn dag_run_and_dag_reads_on_every_backend() {
    for backend in Backend::all("runs-reads") {
        eprintln!("backend {}", backend.name);
        reads_on(&backend);
    }
}
