//! Every route of Airflow 3.3.2's Execution API, with Airflow's policy, at every API version:
//! checked against Airflow's own app (`airflow/routes_probe.py` reads its router and its
//! per-version OpenAPI documents through the virtualenv `.ci/airflow-env` makes).
//!
//! - the newest version: the same method+path pairs, the same token types and bindings per
//!   route (plus our ownership scopes, where README's "Ownership" says), and, where two routes
//!   could match one request, Airflow's order;
//! - every older version: the same method+path pairs as Airflow's document for that version.

use std::collections::BTreeSet;
use std::process::Command;

use execution_api_server::versions::{ApiVersion, exists, route_key};
use serde_json::Value;

/// The probe's answer, run once for both tests.
fn airflow_routes() -> &'static Value {
    static PROBE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    PROBE.get_or_init(probe)
}

fn probe() -> Value {
    let venv = std::env::var("EXECUTION_API_TEST_AIRFLOW_VENV")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "EXECUTION_API_TEST_AIRFLOW_VENV is unset: run `source .ci/airflow-env` first (`.ci/test` does)"
            )
        });
    let probe = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/airflow/routes_probe.py");
    let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("routes-probe-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut command = Command::new(format!("{venv}/bin/python"));
    command.arg(probe).env("AIRFLOW_HOME", &home);
    for version in ApiVersion::ALL {
        command.arg(version.as_str());
    }
    let output = command.output().expect("run routes_probe.py");
    assert!(
        output.status.success(),
        "routes_probe.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("probe prints JSON")
}

/// Ours: (method, path under /execution) in registration order, with the policy as scopes.
fn ours() -> Vec<(String, String, BTreeSet<String>)> {
    execution_api_server::app::routes()
        .iter()
        .map(|route| {
            let mut scopes: BTreeSet<String> = route
                .policy
                .bindings()
                .iter()
                .map(|b| b.scope().to_owned())
                .collect();
            scopes.extend(
                route
                    .policy
                    .allowed_tokens()
                    .iter()
                    .map(|t| format!("token:{}", t.as_str())),
            );
            (route.method.to_owned(), route_key(route.path), scopes)
        })
        .collect()
}

/// Airflow's scopes as a policy: no `token:*` scope means execution tokens only.
fn policy(scopes: &[Value]) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = scopes
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .filter(|s| s.starts_with("token:") || s == "ti:self" || s == "ct:self")
        .collect();
    if !set.iter().any(|s| s.starts_with("token:")) {
        set.insert("token:execution".into());
    }
    set
}

/// Whether one request could match both patterns (same segment count; each pair of segments
/// equal or one a parameter). `{key}` of XComs spans segments in Airflow (`{key:path}`), which
/// only matters for the routes with a tail after the key: those are compared by hand below.
fn overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x == y || x.starts_with('{') || y.starts_with('{'))
}

#[test]
fn every_route_of_airflow_with_its_policy_and_order() {
    let airflow = airflow_routes();
    // The newest version's routes (Airflow's router also holds the routes of older versions).
    let at_head: BTreeSet<(&str, &str)> = airflow["versions"][ApiVersion::HEAD.as_str()]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| (pair[0].as_str().unwrap(), pair[1].as_str().unwrap()))
        .collect();
    let head: Vec<(String, String, BTreeSet<String>)> = airflow["head"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| at_head.contains(&(r["method"].as_str().unwrap(), r["path"].as_str().unwrap())))
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
                policy(r["scopes"].as_array().unwrap()),
            )
        })
        .collect();
    let ours: Vec<_> = ours()
        .into_iter()
        .filter(|(m, p, _)| exists(ApiVersion::HEAD, m, p))
        .collect();

    let theirs_set: BTreeSet<(&str, &str)> = head
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    let ours_set: BTreeSet<(&str, &str)> = ours
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    let missing: Vec<_> = theirs_set.difference(&ours_set).collect();
    let extra: Vec<_> = ours_set.difference(&theirs_set).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes differ from Airflow 3.3.2's at {}:\n  missing here: {missing:?}\n  not in Airflow: {extra:?}",
        ApiVersion::HEAD
    );
    // 55 method+path pairs in all; `/health` and `/health/ping` (no token) are served
    // beside the router and checked in server_api.rs.
    assert_eq!(
        head.len(),
        53,
        "Airflow's head version has 53 authenticated method+path pairs"
    );

    // Airflow's scopes, plus our ownership scopes (README "Ownership"): `ti:running` on every
    // route that is not bound to the token's own task instance or connection test, and
    // `task:self` on XCom writes and deletes.
    const OWNERSHIP: [&str; 2] = ["ti:running", "task:self"];
    for (method, path, scopes) in &head {
        let (_, _, mine) = ours
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .unwrap();
        let airflows: BTreeSet<String> = mine
            .iter()
            .filter(|s| !OWNERSHIP.contains(&s.as_str()))
            .cloned()
            .collect();
        assert_eq!(&airflows, scopes, "policy of {method} {path}");
        let bound = scopes.contains("ti:self") || scopes.contains("ct:self");
        assert_eq!(
            mine.contains("ti:running"),
            !bound,
            "`ti:running` on {method} {path}: {mine:?}"
        );
        let xcom_write = path.starts_with("/xcoms/") && (method == "POST" || method == "DELETE");
        assert_eq!(
            mine.contains("task:self"),
            xcom_write,
            "`task:self` on {method} {path}: {mine:?}"
        );
    }

    // Order: for two routes of one method that could match the same request, Airflow's first
    // must be ours first.
    let position = |m: &str, p: &str| ours.iter().position(|(om, op, _)| om == m && op == p);
    for (i, (m1, p1, _)) in head.iter().enumerate() {
        for (m2, p2, _) in &head[i + 1..] {
            if m1 == m2 && overlap(p1, p2) {
                assert!(
                    position(m1, p1) < position(m2, p2),
                    "{m1} {p1} must be declared before {m2} {p2}, as in Airflow"
                );
            }
        }
    }
    // `{key:path}` spans segments: these tails must be matched before the plain key.
    let xcom = "/xcoms/{dag_id}/{run_id}/{task_id}/{key}";
    for tail in ["/item/{offset}", "/slice"] {
        assert!(
            position("GET", &format!("{xcom}{tail}")) < position("GET", xcom),
            "GET {xcom}{tail} must be declared before GET {xcom}, as in Airflow"
        );
    }
}

#[test]
fn every_version_has_airflows_routes() {
    let airflow = airflow_routes();
    let all = ours();
    for version in ApiVersion::ALL {
        let theirs: BTreeSet<(String, String)> = airflow["versions"][version.as_str()]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mine: BTreeSet<(String, String)> = all
            .iter()
            .filter(|(m, p, _)| exists(version, m, p))
            .map(|(m, p, _)| (m.clone(), p.clone()))
            .collect();
        assert_eq!(
            mine.difference(&theirs).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "routes we serve at {version} that Airflow does not"
        );
        assert_eq!(
            theirs.difference(&mine).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "routes Airflow serves at {version} that we do not"
        );
    }
}

/// The field names of a body schema in our document, with whether each is
/// required: through `$ref` and the members of `oneOf`/`anyOf` (a field is
/// required when every member that has it requires it).
fn fields(doc: &Value, schema: &Value) -> std::collections::BTreeMap<String, bool> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return fields(doc, &doc["components"]["schemas"][name]);
    }
    let mut found = std::collections::BTreeMap::new();
    for key in ["oneOf", "anyOf"] {
        for member in schema[key].as_array().into_iter().flatten() {
            for (name, required) in fields(doc, member) {
                let entry = found.entry(name).or_insert(true);
                *entry = *entry && required;
            }
        }
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for name in schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        found.insert(name.clone(), required.contains(&name.as_str()));
    }
    found
}

/// Our request schemas of the key routes accept and require the field names
/// Airflow's head-version document does.
#[test]
fn request_bodies_have_airflows_fields() {
    let theirs = &airflow_routes()["bodies"];
    let ours = execution_api_server::openapi::document();
    for (method, path) in [
        ("PATCH", "/task-instances/{task_instance_id}/run"),
        ("PATCH", "/task-instances/{task_instance_id}/state"),
        ("PUT", "/task-instances/{task_instance_id}/heartbeat"),
        (
            "PATCH",
            "/task-instances/{task_instance_id}/skip-downstream",
        ),
        ("PUT", "/variables/{variable_key}"),
        ("POST", "/dag-runs/{dag_id}/{run_id}"),
        ("PATCH", "/connection-tests/{connection_test_id}"),
    ] {
        let schema = &ours["paths"][path][method.to_ascii_lowercase()]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert!(!schema.is_null(), "{method} {path}: no request schema");
        let mut ours = fields(&ours, schema);
        let theirs: std::collections::BTreeMap<String, bool> =
            serde_json::from_value(theirs[format!("{method} {path}")].clone())
                .unwrap_or_else(|_| panic!("{method} {path}: not in Airflow's document"));
        // Airflow's document marks `state` required, but its model defaults it
        // to `running` (and so do we): our document says what is accepted.
        if path.ends_with("/run") {
            ours.insert("state".into(), true);
        }
        assert_eq!(ours, theirs, "{method} {path}: fields (name: required)");
    }
}

#[test]
fn query_parameters_are_airflows() {
    let theirs = airflow_routes()["queries"].clone();
    let theirs = theirs.as_object().expect("queries");
    assert!(
        theirs.len() >= 10,
        "Airflow's document lists queries: {theirs:?}"
    );
    let ours = execution_api_server::openapi::document();
    let (mut checked, mut differ) = (0, Vec::new());
    for (operation, params) in theirs {
        let (method, path) = operation.split_once(' ').unwrap();
        let op = &ours["paths"][path][method.to_ascii_lowercase()];
        assert!(!op.is_null(), "{operation}: not in our document");
        let mine: std::collections::BTreeMap<String, bool> = op["parameters"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|p| p["in"] == "query")
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap().to_owned(),
                            p["required"] == true,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let theirs: std::collections::BTreeMap<String, bool> =
            serde_json::from_value(params.clone()).unwrap();
        if mine != theirs {
            differ.push(format!("{operation}: ours {mine:?}, Airflow's {theirs:?}"));
        }
        checked += 1;
    }
    assert!(
        differ.is_empty(),
        "query parameters (name: required) differ from Airflow's:\n{}",
        differ.join("\n")
    );
    eprintln!("{checked} operations' query parameters equal Airflow's");
}
