//! Strings longer than the Airflow column they are written to, over real HTTP against the
//! binary, on every backend (`backends::Backend::all`: the embedded SQLite and PostgreSQL
//! schemas and the databases `airflow db migrate` made). Each is refused with 422 and a
//! `detail` naming the field and the limit, before anything is written: PostgreSQL would
//! refuse the write (or cut trailing spaces), SQLite would store it whole. A value of exactly
//! the limit is accepted and read back intact; the limit counts characters, as PostgreSQL's
//! `varchar(n)` does, so the values here mix 1- to 4-byte characters.

mod backends;
mod common;

use backends::{Backend, unique};
use common::{Response, http};
use serde_json::{Value, json};

/// `n` characters of 1, 2, 3 and 4 bytes in turn (`a`, `é`, `€`, `😀`).
fn mixed(n: usize) -> String {
    ['a', 'é', '€', '😀'].iter().cycle().take(n).collect()
}

/// `prefix` followed by [`mixed`] characters, `n` characters in all.
fn key(prefix: &str, n: usize) -> String {
    format!("{prefix}{}", mixed(n - prefix.chars().count()))
}

/// Every byte outside the unreserved set percent-encoded.
fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A 422 saying the string at `loc` is over `max` characters, without echoing it.
fn assert_too_long(db: &Backend, what: &str, resp: &Response, loc: Value, max: usize) {
    assert_eq!(resp.status, 422, "{}: {what}: {}", db.name, resp.body);
    assert!(
        resp.body.len() < 1024,
        "{}: {what}: the value is echoed back",
        db.name
    );
    let detail = &resp.json()["detail"][0];
    assert_eq!(detail["type"], "string_too_long", "{}: {what}", db.name);
    assert_eq!(detail["loc"], loc, "{}: {what}", db.name);
    assert_eq!(
        detail["msg"],
        format!("String should have at most {max} characters"),
        "{}: {what}",
        db.name
    );
    assert_eq!(detail["ctx"]["max_length"], max, "{}: {what}", db.name);
}

fn run_body(hostname: &str, unixname: &str) -> String {
    json!({
        "state": "running",
        "hostname": hostname,
        "unixname": unixname,
        "pid": 4242,
        "start_date": "2026-01-01T10:00:00Z",
    })
    .to_string()
}

fn count(db: &Backend, query: &str) -> i64 {
    db.scalar(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM {query}"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn strings_longer_than_their_columns_are_refused_and_write_nothing() {
    for db in Backend::all("bounds") {
        let server = db.serve();
        let dag = unique("bounds");
        let run_id = "manual__bounds";
        let id = db.create_ti(&dag, "t", run_id, -1);
        let token = db.token(id);
        let call = |method: &str, path: &str, body: Option<&str>| {
            http(server.addr, method, path, Some(&token), body)
        };
        let ti_row = || {
            db.rows(&format!(
                "SELECT state, hostname, unixname FROM task_instance WHERE dag_id = '{dag}'"
            ))
            .remove(0)
        };
        let logs = || count(&db, &format!("log WHERE dag_id = '{dag}'"));
        let logs_before = logs();
        let run = format!("/execution/task-instances/{id}/run");

        // `/run`: a 3 MB hostname, then one character over (trailing space: PostgreSQL would
        // have cut it silently), then over in unixname.
        let huge = "h".repeat(3 * 1024 * 1024);
        for (what, body, field) in [
            ("3 MB hostname", run_body(&huge, "u"), "hostname"),
            (
                "hostname + space",
                run_body(&format!("{} ", "a".repeat(1000)), "u"),
                "hostname",
            ),
            ("hostname 1001", run_body(&mixed(1001), "u"), "hostname"),
            ("unixname 1001", run_body("h", &mixed(1001)), "unixname"),
        ] {
            let resp = call("PATCH", &run, Some(&body));
            assert_too_long(&db, what, &resp, json!(["body", field]), 1000);
            assert_eq!(
                ti_row(),
                vec![Some("queued".into()), None, None],
                "{}: {what}",
                db.name
            );
            assert_eq!(logs(), logs_before, "{}: {what}", db.name);
        }
        // Exactly 1000 characters (2500 bytes) each: started, stored whole.
        let (hostname, unixname) = (mixed(1000), key("u", 1000));
        let resp = call("PATCH", &run, Some(&run_body(&hostname, &unixname)));
        assert_eq!(resp.status, 200, "{}: {}", db.name, resp.body);
        assert_eq!(
            ti_row(),
            vec![Some("running".into()), Some(hostname), Some(unixname)],
            "{}",
            db.name
        );

        // Variable keys: 250 characters.
        let variables = || count(&db, &format!("variable WHERE \"key\" LIKE '{dag}%'"));
        let body = Some(r#"{"val": "v"}"#);
        let over = key(&dag, 251);
        let path = format!("/execution/variables/{}", pct(&over));
        let resp = call("PUT", &path, body);
        assert_too_long(
            &db,
            "variable key 251",
            &resp,
            json!(["path", "variable_key"]),
            250,
        );
        assert_eq!(variables(), 0, "{}", db.name);
        assert_eq!(call("GET", &path, None).status, 404, "{}", db.name);
        let exact = key(&dag, 250);
        let path = format!("/execution/variables/{}", pct(&exact));
        let resp = call("PUT", &path, body);
        assert_eq!(resp.status, 201, "{}: {}", db.name, resp.body);
        let resp = call("GET", &path, None);
        assert_eq!(resp.status, 200, "{}: {}", db.name, resp.body);
        assert_eq!(resp.json()["key"], exact.as_str(), "{}", db.name);
        assert_eq!(variables(), 1, "{}", db.name);

        // XCom keys: 512 characters.
        let xcoms = || count(&db, &format!("xcom WHERE dag_id = '{dag}'"));
        let xcom = |k: &str| format!("/execution/xcoms/{dag}/{run_id}/t/{}", pct(k));
        let resp = call("POST", &xcom(&mixed(513)), Some("1"));
        assert_too_long(&db, "xcom key 513", &resp, json!(["path", "key"]), 512);
        assert_eq!(xcoms(), 0, "{}", db.name);
        let exact = mixed(512);
        let resp = call("POST", &xcom(&exact), Some("1"));
        assert_eq!(resp.status, 201, "{}: {}", db.name, resp.body);
        let resp = call("GET", &xcom(&exact), None);
        assert_eq!(resp.status, 200, "{}: {}", db.name, resp.body);
        assert_eq!(resp.json()["key"], exact.as_str(), "{}", db.name);
        assert_eq!(xcoms(), 1, "{}", db.name);

        // Task state store keys: 512 characters.
        let state_keys = || count(&db, &format!("task_state_store WHERE dag_id = '{dag}'"));
        let store = |k: &str| format!("/execution/store/ti/{id}/{}", pct(k));
        let value = Some(r#"{"value": 1}"#);
        let resp = call("PUT", &store(&mixed(513)), value);
        assert_too_long(
            &db,
            "state store key 513",
            &resp,
            json!(["path", "key"]),
            512,
        );
        assert_eq!(state_keys(), 0, "{}", db.name);
        let resp = call("PUT", &store(&mixed(512)), value);
        assert_eq!(resp.status, 204, "{}: {}", db.name, resp.body);
        assert_eq!(state_keys(), 1, "{}", db.name);

        // Rendered map index: 250 characters.
        let rmi = format!("/execution/task-instances/{id}/rendered-map-index");
        let resp = call("PATCH", &rmi, Some(&json!(mixed(251)).to_string()));
        assert_too_long(&db, "rendered map index 251", &resp, json!(["body"]), 250);
        let rendered = || {
            db.scalar(&format!(
                "SELECT rendered_map_index FROM task_instance WHERE dag_id = '{dag}'"
            ))
        };
        assert_eq!(rendered(), None, "{}", db.name);
        let resp = call("PATCH", &rmi, Some(&json!(mixed(250)).to_string()));
        assert_eq!(resp.status, 204, "{}: {}", db.name, resp.body);
        assert_eq!(rendered(), Some(mixed(250)), "{}", db.name);

        // `/state`: a deferral's classpath, a success's outlet event; the task stays running.
        let state = format!("/execution/task-instances/{id}/state");
        let deferral = json!({
            "state": "deferred",
            "classpath": mixed(1001),
            "next_method": "execute_complete",
        });
        let resp = call("PATCH", &state, Some(&deferral.to_string()));
        assert_too_long(
            &db,
            "classpath 1001",
            &resp,
            json!(["body", "deferred", "classpath"]),
            1000,
        );
        let success = json!({
            "state": "success",
            "end_date": "2026-01-01T10:05:00Z",
            "task_outlets": [],
            "outlet_events": [{"dest_asset_key": {"name": "n", "uri": "s3://n"},
                               "partition_key": mixed(251), "extra": {}}],
        });
        let resp = call("PATCH", &state, Some(&success.to_string()));
        assert_too_long(
            &db,
            "outlet event partition key 251",
            &resp,
            json!(["body", "success", "outlet_events", 0, "partition_key"]),
            250,
        );
        assert_eq!(
            ti_row()[0].as_deref(),
            Some("running"),
            "{}: the task instance changed",
            db.name
        );

        // A triggered run's id: 250 characters, checked before the DAG is looked up.
        let resp = call(
            "POST",
            &format!("/execution/dag-runs/{dag}/{}", "r".repeat(251)),
            Some("{}"),
        );
        assert_too_long(&db, "run_id 251", &resp, json!(["path", "run_id"]), 250);
        assert_eq!(
            count(&db, &format!("dag_run WHERE dag_id = '{dag}'")),
            1,
            "{}",
            db.name
        );
    }
}
