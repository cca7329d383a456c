//! The XCom routes over real HTTP against the `server` binary, on every backend
//! (`backends::Backend::all`): item, slice, HEAD, GET with `offset` and
//! `include_prior_dates`, POST with `mapped_length` (`task_map`), keys with `/`, and
//! Airflow's declaration order. On Airflow's databases, Airflow's own route functions and
//! models answer the same questions on the same rows, and read what we wrote.

mod backends;
mod common;

use backends::{Backend, unique};
use common::{ServerProcess, http};
use serde_json::{Value, json};
use uuid::Uuid;

struct Client<'a> {
    server: &'a ServerProcess,
    token: String,
    base: String,
}

impl Client<'_> {
    fn call(&self, method: &str, tail: &str, body: Option<&str>) -> common::Response {
        if method == "HEAD" {
            return head(self.server, &format!("{}{tail}", self.base), &self.token);
        }
        http(
            self.server.addr,
            method,
            &format!("{}{tail}", self.base),
            Some(&self.token),
            body,
        )
    }

    fn ok(&self, tail: &str) -> Value {
        let res = self.call("GET", tail, None);
        assert_eq!(res.status, 200, "GET {tail}: {}", res.body);
        res.json()
    }
}

/// A HEAD request: the status and headers (a HEAD response has no body, whatever its
/// `Content-Length` says).
fn head(server: &ServerProcess, path: &str, token: &str) -> common::Response {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
    write!(
        stream,
        "HEAD {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read HEAD response");
    let mut lines = raw.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {raw:?}"));
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    common::Response {
        status,
        headers,
        body,
    }
}

/// Values pushed by the mapped task `m` of run `r1`, by map index.
fn r1_values() -> Vec<&'static str> {
    vec![
        r#"{"a": 1}"#,
        "null",
        r#"{"big": 12345678901234567890123}"#,
        r#""s""#,
        "[1, 2]",
    ]
}

/// `start`, `stop`, `step` and the indexes CPython's slice picks.
type SliceCase = (Option<i64>, Option<i64>, Option<i64>, Vec<usize>);

/// `list[start:stop:step]` cases, with CPython's answers over five items.
fn slice_cases() -> Vec<SliceCase> {
    vec![
        (None, None, None, vec![0, 1, 2, 3, 4]),
        (Some(1), Some(3), None, vec![1, 2]),
        (Some(-2), None, None, vec![3, 4]),
        (None, Some(-2), None, vec![0, 1, 2]),
        (None, Some(2), None, vec![0, 1]),
        (None, None, Some(2), vec![0, 2, 4]),
        (None, None, Some(-1), vec![4, 3, 2, 1, 0]),
        (Some(3), None, Some(-2), vec![3, 1]),
        (Some(-1), Some(-4), Some(-1), vec![4, 3, 2]),
        (Some(1), Some(-1), None, vec![1, 2, 3]),
        (Some(-4), Some(3), None, vec![1, 2]),
        (Some(4), Some(1), Some(-1), vec![4, 3, 2]),
        (None, Some(1), Some(-1), vec![4, 3, 2]),
        (None, Some(-2), Some(-1), vec![4]),
        (Some(10), None, None, vec![]),
        (None, None, Some(0), vec![0, 1, 2, 3, 4]),
    ]
}

fn query(pairs: &[(&str, Option<i64>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn xcoms_on(backend: &Backend) {
    let dag = unique("xcoms");
    let key = "nested/key";
    for map_index in 0..5 {
        backend.create_ti(&dag, "m", "r1", map_index);
    }
    for map_index in 0..3 {
        backend.create_ti(&dag, "m", "r2", map_index);
    }
    backend.create_ti(&dag, "t", "r1", -1);
    let server = backend.serve();
    let token = backend.token(Uuid::new_v4());
    let r1 = Client {
        server: &server,
        token: token.clone(),
        base: format!("/execution/xcoms/{dag}/r1/m/{key}"),
    };
    let r2 = Client {
        server: &server,
        token,
        base: format!("/execution/xcoms/{dag}/r2/m/{key}"),
    };

    // Writes, one with mapped_length (task_map).
    for (map_index, value) in r1_values().into_iter().enumerate() {
        let extra = if map_index == 0 {
            "&mapped_length=5"
        } else {
            ""
        };
        let res = r1.call(
            "POST",
            &format!("?map_index={map_index}{extra}"),
            Some(value),
        );
        assert_eq!(res.status, 201, "{}: {}", backend.name, res.body);
        assert_eq!(res.json(), json!({"message": "XCom successfully set"}));
    }
    for map_index in 0..2 {
        let res = r2.call(
            "POST",
            &format!("?map_index={map_index}"),
            Some(&format!("\"r2-{map_index}\"")),
        );
        assert_eq!(res.status, 201, "{}", res.body);
    }
    let task_map = || {
        backend.rows(&format!(
            "SELECT CAST(length AS TEXT), CAST(keys AS TEXT) FROM task_map WHERE dag_id = '{dag}'"
        ))
    };
    assert_eq!(
        task_map(),
        vec![vec![Some("5".to_owned()), Some("null".to_owned())]]
    );

    // mapped_length past [core] max_map_length (1024): 400, nothing written.
    let before = backend.rows(&format!(
        "SELECT CAST(value AS TEXT) FROM xcom WHERE dag_id = '{dag}' ORDER BY run_id, map_index"
    ));
    let res = r1.call("POST", "?map_index=0&mapped_length=1025", Some("1"));
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(
        res.json(),
        json!({"detail": {"reason": "unmappable_return_value_length",
                          "message": "pushed value is too large to map as a downstream's dependency"}})
    );
    let res = r1.call("POST", "?map_index=0&mapped_length=-1", Some("1"));
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(res.json()["detail"].is_array(), "{}", res.body);
    let res = r1.call("POST", "?map_index=0&mapped_length=x", Some("1"));
    assert_eq!(res.status, 422, "{}", res.body);
    assert_eq!(task_map()[0][0].as_deref(), Some("5"));
    let after = backend.rows(&format!(
        "SELECT CAST(value AS TEXT) FROM xcom WHERE dag_id = '{dag}' ORDER BY run_id, map_index"
    ));
    assert_eq!(
        before, after,
        "{}: a refused write changed rows",
        backend.name
    );

    // HEAD: the count over every map index; map_index refused.
    let head = r1.call("HEAD", "", None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-range"), Some("map_indexes 5"));
    assert_eq!(head.body, "");
    assert_eq!(
        r2.call("HEAD", "", None).header("content-range"),
        Some("map_indexes 2")
    );
    assert_eq!(r1.call("HEAD", "?map_index=0", None).status, 400);

    // item/{offset}: a bare JSON value, negative from the end.
    let values: Vec<Value> = r1_values()
        .iter()
        .map(|v| serde_json::from_str(v).unwrap())
        .collect();
    assert_eq!(r1.ok("/item/0"), values[0]);
    assert_eq!(r1.ok("/item/-1"), values[4]);
    assert_eq!(r1.ok("/item/1"), Value::Null);
    let big = r1.call("GET", "/item/2", None);
    assert!(
        big.body.contains("12345678901234567890123"),
        "exact beyond 64 bits: {}",
        big.body
    );
    let missing = r1.call("GET", "/item/5", None);
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({"detail": {"reason": "not_found", "message": format!(
            "XCom with key='{key}' offset=5 not found for task 'm' in DAG run 'r1' of '{dag}'")}})
    );
    assert_eq!(r1.call("GET", "/item/abc", None).status, 422);

    // slice: Python's slice semantics.
    for (start, stop, step, expected) in slice_cases() {
        let q = query(&[("start", start), ("stop", stop), ("step", step)]);
        let got = r1.ok(&format!("/slice{q}"));
        let want: Vec<Value> = expected.iter().map(|&i| values[i].clone()).collect();
        assert_eq!(got, Value::Array(want), "{}: slice{q}", backend.name);
    }
    assert!(
        r1.call("GET", "/slice", None)
            .body
            .contains("12345678901234567890123")
    );
    assert_eq!(
        r2.ok("/slice?include_prior_dates=true")
            .as_array()
            .unwrap()
            .len(),
        7,
        "r2 sees r1's values too"
    );
    assert_eq!(
        r1.ok("/slice?include_prior_dates=true")
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // GET: map_index, offset (non-NULL rows by map index), include_prior_dates.
    assert_eq!(r1.ok("?map_index=3"), json!({"key": key, "value": "s"}));
    assert_eq!(r1.ok("?offset=1"), json!({"key": key, "value": null}));
    assert_eq!(r1.ok("?offset=-1"), json!({"key": key, "value": [1, 2]}));
    let res = r1.call("GET", "?offset=9", None);
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json()["detail"]["message"],
        format!("XCom with key='{key}' offset=9 not found for task 'm' in DAG run 'r1' of '{dag}'")
    );
    let res = r2.call("GET", "?map_index=3", None);
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json()["detail"]["message"],
        format!(
            "XCom with key='{key}' map_index=3 not found for task 'm' in DAG run 'r2' of '{dag}'"
        )
    );
    assert_eq!(
        r2.ok("?map_index=3&include_prior_dates=true"),
        json!({"key": key, "value": "s"})
    );
    assert_eq!(
        r2.ok("?map_index=0&include_prior_dates=true"),
        json!({"key": key, "value": "r2-0"}),
        "the newest run's value first"
    );
    assert_eq!(
        r1.call("GET", "?map_index=0&include_prior_dates=true", None)
            .json()["value"],
        json!({"a": 1}),
        "a later run is not a prior date"
    );

    // Declaration order: a key ending in `/slice` is stored but reads as a slice of `x`.
    let t = Client {
        server: &server,
        token: r1.token.clone(),
        base: format!("/execution/xcoms/{dag}/r1/t"),
    };
    assert_eq!(t.call("POST", "/x/slice", Some("7")).status, 201);
    assert_eq!(
        backend
            .scalar(&format!(
                "SELECT key FROM xcom WHERE dag_id = '{dag}' AND task_id = 't'"
            ))
            .as_deref(),
        Some("x/slice")
    );
    assert_eq!(t.ok("/x/slice"), json!([]));
    assert_eq!(
        t.call("HEAD", "/x/slice", None).header("content-range"),
        Some("map_indexes 1")
    );
    // An empty key is refused, as FastAPI's min_length=1 refuses it.
    assert_eq!(t.call("GET", "/", None).status, 422);
    assert_eq!(t.call("POST", "/", Some("1")).status, 422);
    // DELETE a key with a slash.
    let res = t.call("DELETE", "/x/slice", None);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json(),
        json!({"message": "XCom with key: x/slice successfully deleted."})
    );

    if backend.is_airflow() {
        airflow_agrees(backend, &dag, key, &r1, &r2);
    }

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// Airflow's route functions answer the same questions identically; its models read our
/// `task_map`, and we read an XCom its model wrote.
fn airflow_agrees(backend: &Backend, dag: &str, key: &str, r1: &Client<'_>, r2: &Client<'_>) {
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for (start, stop, step, _) in slice_cases() {
        cases.push(json!({"route": "slice", "start": start, "stop": stop, "step": step}));
        let q = query(&[("start", start), ("stop", stop), ("step", step)]);
        ours.push(json!({"ok": r1.ok(&format!("/slice{q}"))}));
    }
    for offset in [0, 1, 4, -1, -5, 5, -6] {
        cases.push(json!({"route": "item", "offset": offset}));
        let res = r1.call("GET", &format!("/item/{offset}"), None);
        ours.push(if res.status == 200 {
            json!({"ok": res.json()})
        } else {
            json!({"status": res.status, "detail": res.json()["detail"]})
        });
    }
    for (map_index, offset) in [
        (Some(0), None),
        (Some(3), None),
        (Some(7), None),
        (None, Some(1)),
        (None, Some(-2)),
        (None, Some(8)),
    ] {
        let mut case = json!({"route": "get"});
        if let Some(m) = map_index {
            case["map_index"] = json!(m);
        }
        if let Some(o) = offset {
            case["offset"] = json!(o);
        }
        cases.push(case);
        let q = query(&[("map_index", map_index), ("offset", offset)]);
        let res = r1.call("GET", &q, None);
        ours.push(if res.status == 200 {
            json!({"ok": res.json()})
        } else {
            json!({"status": res.status, "detail": res.json()["detail"]})
        });
    }
    cases.push(json!({"route": "head"}));
    ours.push(json!({"ok": r1.call("HEAD", "", None).header("content-range")}));
    let theirs = backend.models(&[
        "xcom-routes",
        dag,
        "r1",
        "m",
        key,
        &Value::Array(cases.clone()).to_string(),
    ]);
    for ((case, ours), theirs) in cases.iter().zip(&ours).zip(theirs.as_array().unwrap()) {
        assert_eq!(ours, theirs, "{}: {case}", backend.name);
    }

    // include_prior_dates, from the later run.
    let cases = json!([
        {"route": "slice", "include_prior_dates": true, "stop": 100},
        {"route": "get", "map_index": 3, "include_prior_dates": true},
        {"route": "get", "map_index": 0, "include_prior_dates": true},
    ]);
    let theirs = backend.models(&["xcom-routes", dag, "r2", "m", key, &cases.to_string()]);
    let mut slice_theirs: Vec<String> = theirs[0]["ok"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    let mut slice_ours: Vec<String> = r2
        .ok("/slice?include_prior_dates=true&stop=100")
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    // Equal map indexes of two runs have no order in Airflow's query either.
    slice_theirs.sort();
    slice_ours.sort();
    assert_eq!(slice_ours, slice_theirs);
    assert_eq!(
        theirs[1]["ok"],
        r2.ok("?map_index=3&include_prior_dates=true")
    );
    assert_eq!(
        theirs[2]["ok"],
        r2.ok("?map_index=0&include_prior_dates=true")
    );

    // Airflow's TaskMap reads our merge.
    assert_eq!(
        backend.models(&["task-map", dag, "r1", "m", "0"]),
        json!({"length": 5, "keys": null})
    );
    // An XCom Airflow's model writes, read by item, slice and HEAD.
    backend.models(&[
        "xcom-set",
        dag,
        "r2",
        "m",
        key,
        "2",
        r#"{"from": "airflow"}"#,
    ]);
    assert_eq!(r2.ok("/item/-1"), json!({"from": "airflow"}));
    assert_eq!(r2.ok("/slice?start=2"), json!([{"from": "airflow"}]));
    assert_eq!(
        r2.call("HEAD", "", None).header("content-range"),
        Some("map_indexes 3")
    );
}

#[test]
fn xcom_routes_on_every_backend() {
    for backend in Backend::all("xcoms") {
        eprintln!("backend {}", backend.name);
        xcoms_on(&backend);
    }
}
