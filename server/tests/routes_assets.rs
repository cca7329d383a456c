//! The asset, asset-event, state-store, HITL and connection-test routes over real HTTP against
//! the `server` binary, on every kind of database it runs on: the embedded schema on SQLite and
//! on PostgreSQL, and databases made by Airflow 3.3.2's own `airflow db migrate` on SQLite and on
//! PostgreSQL. On the Airflow databases, Airflow's own code takes part: assets and events its
//! models create are read through our routes and compared with what its own Execution API
//! (in process, on the same database) answers; its state backend and HITL model read what we
//! wrote; a connection test its model created is committed through our routes and read back by
//! `airflow connections get`.
//!
//! The databases come from `.ci/airflow-env` (`source /tmp/devenv.sh NAME` or `.ci/test`);
//! without them these tests fail, saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Response, ServerProcess, TempDir, http, run_ok};
use serde_json::{Value, json};
use sqlx::Row as _;
use uuid::Uuid;

const JWT_SECRET: &str = "routes-assets-secret-0123456789abcdef";

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is unset: run `source .ci/airflow-env` first (`.ci/test` does)")
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    EmbeddedSqlite,
    EmbeddedPostgres,
    AirflowSqlite,
    AirflowPostgres,
}

/// One database and the configuration every process using it gets (ours and Airflow's).
struct Backend {
    kind: Kind,
    home: TempDir,
    /// `[database] sql_alchemy_conn`.
    conn: String,
    /// The same database as an sqlx URL, for fixtures and checks.
    db_url: String,
    fernet_key: String,
}

impl Backend {
    fn all(label: &str) -> Vec<Backend> {
        [
            Kind::EmbeddedSqlite,
            Kind::EmbeddedPostgres,
            Kind::AirflowSqlite,
            Kind::AirflowPostgres,
        ]
        .into_iter()
        .map(|kind| Backend::new(label, kind))
        .collect()
    }

    fn airflow(label: &str) -> Vec<Backend> {
        [Kind::AirflowSqlite, Kind::AirflowPostgres]
            .into_iter()
            .map(|kind| Backend::new(label, kind))
            .collect()
    }

    fn new(label: &str, kind: Kind) -> Backend {
        let home = TempDir::new(&format!("{label}-{kind:?}"));
        let (conn, db_url) = match kind {
            Kind::EmbeddedSqlite => {
                let file = home.path().join("embedded.db");
                (
                    format!("sqlite:///{}", file.display()),
                    format!("sqlite://{}", file.display()),
                )
            }
            Kind::AirflowSqlite => {
                let file = home.path().join("airflow.db");
                std::fs::copy(required("EXECUTION_API_TEST_AIRFLOW_SQLITE"), &file)
                    .expect("copy the Airflow database");
                (
                    format!("sqlite:///{}", file.display()),
                    format!("sqlite://{}", file.display()),
                )
            }
            Kind::EmbeddedPostgres | Kind::AirflowPostgres => {
                let url = required(if kind == Kind::EmbeddedPostgres {
                    "EXECUTION_API_TEST_POSTGRES_URL"
                } else {
                    "EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL"
                });
                (
                    url.replacen("postgres://", "postgresql+psycopg2://", 1),
                    url,
                )
            }
        };
        std::fs::write(
            home.path().join("airflow.cfg"),
            "[core]\nload_examples = False\n",
        )
        .unwrap();
        let backend = Backend {
            kind,
            home,
            conn,
            db_url,
            fernet_key: required("EXECUTION_API_TEST_AIRFLOW_FERNET_KEY"),
        };
        // Opens the database once, which makes the embedded schema in an empty one.
        backend.create_ti("routes_assets_init", &Uuid::new_v4().simple().to_string());
        backend
    }

    fn is_airflow(&self) -> bool {
        matches!(self.kind, Kind::AirflowSqlite | Kind::AirflowPostgres)
    }

    fn is_sqlite(&self) -> bool {
        matches!(self.kind, Kind::EmbeddedSqlite | Kind::AirflowSqlite)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AIRFLOW_HOME", self.home.path().display().to_string()),
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", self.conn.clone()),
            ("AIRFLOW__CORE__FERNET_KEY", self.fernet_key.clone()),
            ("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET.to_owned()),
            ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".to_owned()),
            (
                "EXECUTION_API_DATA_DIR",
                self.home.path().join("data").display().to_string(),
            ),
        ]
    }

    fn cli(&self, args: &[&str]) -> String {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_ok(args, &env).trim().to_owned()
    }

    fn serve(&self) -> ServerProcess {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ServerProcess::start(&[], &env)
    }

    fn token(&self, sub: Uuid, scope: &str) -> String {
        self.cli(&["token", "mint", "--sub", &sub.to_string(), "--scope", scope])
    }

    /// `server ti create` in a new run `run_id` of `dag_id`.
    fn create_ti(&self, dag_id: &str, run_id: &str) -> Uuid {
        let out = self.cli(&[
            "ti",
            "create",
            "--dag-id",
            dag_id,
            "--task-id",
            "task",
            "--run-id",
            run_id,
        ]);
        out.parse()
            .unwrap_or_else(|e| panic!("`ti create` printed {out:?}: {e}"))
    }

    fn block_on<T>(&self, work: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> T) -> T {
        use sqlx::Connection as _;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                sqlx::any::install_default_drivers();
                let mut conn = sqlx::AnyConnection::connect(&self.db_url)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {}: {e}", self.db_url));
                work(&mut conn).await
            })
    }

    /// Runs statements (fixtures written in SQL both dialects share).
    fn exec(&self, statements: &[String]) {
        self.block_on(async |conn| {
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(&mut *conn)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        })
    }

    /// One `INSERT ... RETURNING id`.
    fn insert(&self, statement: String) -> i64 {
        self.block_on(async |conn| {
            sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                .fetch_one(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"))
                .try_get::<i64, _>(0)
                .unwrap()
        })
    }

    /// Rows of a query whose columns are all text (cast them).
    fn rows(&self, query: &str) -> Vec<Vec<Option<String>>> {
        self.block_on(async |conn| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            rows.iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| row.try_get::<Option<String>, _>(i).unwrap())
                        .collect()
                })
                .collect()
        })
    }

    fn count(&self, query: &str) -> i64 {
        self.block_on(async |conn| {
            sqlx::query(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_one(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"))
                .try_get::<i64, _>(0)
                .unwrap()
        })
    }

    /// A timestamp literal (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC) as each backend stores it.
    fn ts(&self, naive: &str) -> String {
        if self.is_sqlite() {
            format!("'{naive}'")
        } else {
            format!("'{naive}+00'")
        }
    }

    /// A UUID literal as each backend stores it.
    fn uuid(&self, id: Uuid) -> String {
        if self.is_sqlite() {
            format!("'{}'", id.simple())
        } else {
            format!("'{id}'")
        }
    }

    fn dag_run_id(&self, dag_id: &str, run_id: &str) -> i64 {
        self.count(&format!(
            "SELECT id FROM dag_run WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'"
        ))
    }

    /// Runs a program of the Airflow venv that must succeed; its stdout.
    fn venv(&self, program: &str, args: &[&str]) -> String {
        let venv = PathBuf::from(required("EXECUTION_API_TEST_AIRFLOW_VENV"));
        let output = Command::new(venv.join("bin").join(program))
            .args(args)
            .envs(self.env())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "`{program} {}` failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `assets_side.py` (Airflow's models and API), parsed.
    fn airflow_side(&self, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/assets_side.py");
        let mut all = vec![script.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.venv("python", &all);
        let last = out.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("assets_side.py printed {out:?}: {e}"))
    }
}

/// A query-string value, percent-encoded.
fn enc(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn tag() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_owned()
}

fn detail(response: &Response) -> Value {
    response.json()["detail"].clone()
}

/// Every datetime string rewritten to one form, so Airflow's (`...:00Z`, microseconds only
/// when non-zero) and ours (`...:00.000000Z`) compare equal when they are the same instant.
fn canon(value: &Value) -> Value {
    use time::format_description::well_known::Rfc3339;
    match value {
        Value::String(s) => match time::OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => Value::String(execution_api_server::store::timestamp(t)),
            Err(_) => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(canon).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), canon(v))).collect())
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Assets and asset events.

struct AssetFixture {
    a: String,
    a_uri: String,
    b: String,
    b_uri: String,
    alias: String,
    dag_id: String,
    run_id: String,
    events: [i64; 4],
}

/// Active asset A, inactive asset B, an alias of both, events e1, e2 (which created a run that
/// has not started), e3 (of B) and e4 (of A, through the alias).
fn asset_fixture(backend: &Backend) -> AssetFixture {
    let t = tag();
    let (a, b, alias) = (format!("a-{t}"), format!("b-{t}"), format!("alias-{t}"));
    let (a_uri, b_uri) = (format!("s3://x/{t}/a"), format!("s3://x/{t}/b"));
    let dag_id = format!("consumer_{t}");
    let run_id = format!("asset_triggered__{t}");
    backend.create_ti(&dag_id, &run_id);
    let now = backend.ts("2024-01-01 00:00:00.000000");
    let asset = |name: &str, uri: &str, group: &str, extra: &str| {
        backend.insert(format!(
            "INSERT INTO asset (name, uri, \"group\", extra, created_at, updated_at) \
             VALUES ('{name}', '{uri}', '{group}', '{extra}', {now}, {now}) RETURNING id"
        ))
    };
    let a_id = asset(&a, &a_uri, "asset", r#"{"k": [1, "\u00e9"]}"#);
    let b_id = asset(&b, &b_uri, "g", "{}");
    let alias_id = backend.insert(format!(
        "INSERT INTO asset_alias (name, \"group\") VALUES ('{alias}', 'asset') RETURNING id"
    ));
    let event = |asset_id: i64, hour: u8, extra: &str, source: &str| {
        backend.insert(format!(
            "INSERT INTO asset_event (asset_id, extra, timestamp, source_dag_id, source_task_id, \
             source_run_id, source_map_index, partition_key) VALUES ({asset_id}, '{extra}', {}, \
             {source}) RETURNING id",
            backend.ts(&format!("2024-03-01 {hour:02}:00:00.250000")),
        ))
    };
    let e1 = event(a_id, 1, "{}", "NULL, NULL, NULL, -1, NULL");
    let e2 = event(a_id, 2, r#"{"n": 1.5}"#, "'producer', 't', 'r', 3, 'p1'");
    let e3 = event(b_id, 3, "{}", "NULL, NULL, NULL, -1, NULL");
    let e4 = event(a_id, 4, r#"{"via": "alias"}"#, "NULL, NULL, NULL, -1, NULL");
    let dag_run = backend.dag_run_id(&dag_id, &run_id);
    backend.exec(&[
        format!("INSERT INTO asset_active (name, uri) VALUES ('{a}', '{a_uri}')"),
        format!("INSERT INTO asset_alias_asset (alias_id, asset_id) VALUES ({alias_id}, {a_id})"),
        format!("INSERT INTO asset_alias_asset (alias_id, asset_id) VALUES ({alias_id}, {b_id})"),
        format!(
            "INSERT INTO asset_alias_asset_event (alias_id, event_id) VALUES ({alias_id}, {e4})"
        ),
        format!("INSERT INTO dagrun_asset_event (dag_run_id, event_id) VALUES ({dag_run}, {e2})"),
    ]);
    AssetFixture {
        a,
        a_uri,
        b,
        b_uri,
        alias,
        dag_id,
        run_id,
        events: [e1, e2, e3, e4],
    }
}

fn event_ids(response: &Response) -> Vec<i64> {
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["asset_events"]
        .as_array()
        .unwrap_or_else(|| panic!("no asset_events: {}", response.body))
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn assets_and_asset_events_over_http_on_every_backend() {
    for backend in Backend::all("assets") {
        let f = asset_fixture(&backend);
        let [e1, e2, e3, e4] = f.events;
        let server = backend.serve();
        let token = backend.token(Uuid::new_v4(), "execution");
        let get = |path: String| http(server.addr, "GET", &path, Some(&token), None);
        let ctx = format!("{:?}", backend.kind);

        let asset_a =
            json!({"name": f.a, "uri": f.a_uri, "group": "asset", "extra": {"k": [1, "é"]}});
        let asset_b = json!({"name": f.b, "uri": f.b_uri, "group": "g", "extra": {}});

        // Assets: active ones only by name or URI; an alias resolves to all of its assets.
        let r = get(format!("/execution/assets/by-name?name={}", enc(&f.a)));
        assert_eq!((r.status, r.json()), (200, asset_a.clone()), "{ctx}");
        let r = get(format!("/execution/assets/by-name?name={}", enc(&f.b)));
        assert_eq!(r.status, 404, "{ctx}: {}", r.body);
        assert_eq!(
            detail(&r),
            json!({"reason": "not_found", "message": format!("Asset with name {} not found", f.b)})
        );
        let r = get(format!("/execution/assets/by-uri?uri={}", enc(&f.a_uri)));
        assert_eq!((r.status, r.json()), (200, asset_a.clone()), "{ctx}");
        let r = get(format!("/execution/assets/by-uri?uri={}", enc(&f.b_uri)));
        assert_eq!(
            (r.status, detail(&r)),
            (
                404,
                json!({"reason": "not_found", "message": format!("Asset with URI {} not found", f.b_uri)})
            ),
            "{ctx}"
        );
        let r = get(format!(
            "/execution/assets/by-alias?alias_name={}",
            enc(&f.alias)
        ));
        assert_eq!(
            (r.status, r.json()),
            (200, json!([asset_a, asset_b])),
            "{ctx}"
        );
        let r = get("/execution/assets/by-alias?alias_name=no-such-alias".into());
        assert_eq!((r.status, r.json()), (200, json!([])), "{ctx}");
        for path in [
            "/execution/assets/by-name",
            "/execution/assets/by-uri?name=x",
            "/execution/assets/by-alias",
        ] {
            let r = get(path.into());
            assert_eq!(r.status, 422, "{ctx} {path}: {}", r.body);
            assert!(detail(&r).is_array(), "{ctx} {path}: {}", r.body);
        }

        // Events by asset: both keys required; either may be empty (as the SDK sends them).
        let by_asset = |query: String| get(format!("/execution/asset-events/by-asset?{query}"));
        let r = by_asset(format!("name={}&uri=", enc(&f.a)));
        assert_eq!(event_ids(&r), [e1, e2, e4], "{ctx}");
        let events = r.json()["asset_events"].clone();
        assert_eq!(
            events[1],
            json!({
                "id": e2,
                "timestamp": "2024-03-01T02:00:00.250000Z",
                "extra": {"n": 1.5},
                "asset": asset_a,
                "created_dagruns": events[1]["created_dagruns"].clone(),
                "source_task_id": "t",
                "source_dag_id": "producer",
                "source_run_id": "r",
                "source_map_index": 3,
                "partition_key": "p1",
            }),
            "{ctx}"
        );
        let run = &events[1]["created_dagruns"][0];
        assert_eq!(run["dag_id"], f.dag_id.as_str(), "{ctx}");
        assert_eq!(run["run_id"], f.run_id.as_str(), "{ctx}");
        assert_eq!(run["state"], "queued", "{ctx}");
        // Not started: Airflow answers 500; we give its run_after, as Airflow's own
        // converter does for a DagRun without start_date.
        assert!(run["start_date"].is_string(), "{ctx}: {run}");
        assert_eq!(run["start_date"], run["logical_date"], "{ctx}: {run}");
        let mut keys: Vec<&str> = run
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "dag_id",
                "data_interval_end",
                "data_interval_start",
                "end_date",
                "logical_date",
                "partition_key",
                "run_id",
                "start_date",
                "state"
            ],
            "{ctx}: the SDK's DagRunAssetReference forbids other fields"
        );
        assert_eq!(events[0]["created_dagruns"], json!([]), "{ctx}");

        let r = by_asset(format!(
            "name=&uri={}&ascending=false&limit=2",
            enc(&f.a_uri)
        ));
        assert_eq!(event_ids(&r), [e4, e2], "{ctx}");
        let r = by_asset(format!(
            "name={}&uri={}&after={}&before={}",
            enc(&f.a),
            enc(&f.a_uri),
            enc("2024-03-01T02:00:00.250000+00:00"),
            enc("2024-03-01T05:00:00+02:00"),
        ));
        assert_eq!(event_ids(&r), [e2], "{ctx}");
        let r = by_asset(format!("name={}&uri=&limit=0&ascending=0", enc(&f.a)));
        assert_eq!(event_ids(&r), [e4, e2, e1], "{ctx}");
        // An inactive asset: not by name alone, but by name and URI together.
        let r = by_asset(format!("name={}&uri=", enc(&f.b)));
        assert_eq!(event_ids(&r), Vec::<i64>::new(), "{ctx}");
        let r = by_asset(format!("name={}&uri={}", enc(&f.b), enc(&f.b_uri)));
        assert_eq!(event_ids(&r), [e3], "{ctx}");
        let r = by_asset("name=&uri=".into());
        assert_eq!(
            (r.status, detail(&r)),
            (
                400,
                json!({"reason": "Missing parameter", "message": "name and uri cannot both be None"})
            ),
            "{ctx}"
        );
        for query in [
            format!("name={}", enc(&f.a)),
            format!("uri={}", enc(&f.a_uri)),
            format!("name={}&uri=&after=2024-03-01T00:00:00", enc(&f.a)),
            format!("name={}&uri=&before=yesterday", enc(&f.a)),
            format!("name={}&uri=&ascending=sideways", enc(&f.a)),
            format!("name={}&uri=&limit=-1", enc(&f.a)),
            format!("name={}&uri=&limit=two", enc(&f.a)),
        ] {
            let r = by_asset(query.clone());
            assert_eq!(r.status, 422, "{ctx} {query}: {}", r.body);
            assert!(detail(&r).is_array(), "{ctx} {query}: {}", r.body);
        }

        // Events by alias: the ones recorded through it.
        let r = get(format!(
            "/execution/asset-events/by-asset-alias?name={}",
            enc(&f.alias)
        ));
        assert_eq!(event_ids(&r), [e4], "{ctx}");
        let r = get("/execution/asset-events/by-asset-alias?name=nope".into());
        assert_eq!(event_ids(&r), Vec::<i64>::new(), "{ctx}");
        let r = get("/execution/asset-events/by-asset-alias".into());
        assert_eq!(r.status, 422, "{ctx}: {}", r.body);

        // Execution tokens only.
        let workload = backend.token(Uuid::new_v4(), "workload");
        let r = http(
            server.addr,
            "GET",
            &format!("/execution/assets/by-name?name={}", enc(&f.a)),
            Some(&workload),
            None,
        );
        assert_eq!(r.status, 403, "{ctx}: {}", r.body);
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}

#[test]
fn assets_and_events_airflow_made_read_as_airflow_answers_them() {
    for backend in Backend::airflow("assets-airflow") {
        let t = tag();
        let (dag_id, run_id) = (format!("af_consumer_{t}"), format!("af_run_{t}"));
        backend.create_ti(&dag_id, &run_id);
        let airflow = backend.airflow_side(&["asset-fixtures", &t, &dag_id, &run_id]);
        let server = backend.serve();
        let token = backend.token(Uuid::new_v4(), "execution");
        let requests = airflow["requests"].as_array().unwrap();
        assert!(requests.len() > 10);
        let mut events_seen = 0;
        for request in requests {
            let path = request[0].as_str().unwrap();
            let ours = http(
                server.addr,
                "GET",
                &format!("/execution{path}"),
                Some(&token),
                None,
            );
            assert_eq!(
                ours.status,
                request[1].as_u64().unwrap() as u16,
                "{:?} {path}: ours {} vs Airflow's {}",
                backend.kind,
                ours.body,
                request[2]
            );
            let (ours, theirs) = if ours.status < 300 {
                (canon(&ours.json()), canon(&request[2]))
            } else {
                (detail(&ours), request[2]["detail"].clone())
            };
            assert_eq!(ours, theirs, "{:?} {path}", backend.kind);
            events_seen += ours["asset_events"].as_array().map_or(0, Vec::len);
        }
        assert!(events_seen >= 8, "the comparison saw {events_seen} events");
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// Task and asset state stores.

#[test]
fn state_stores_over_http_on_every_backend() {
    for backend in Backend::all("state") {
        let ctx = format!("{:?}", backend.kind);
        let t = tag();
        let (dag_id, run_id) = (format!("stateful_{t}"), format!("run_{t}"));
        let ti = backend.create_ti(&dag_id, &run_id);
        let (asset, asset_uri) = (format!("state-asset-{t}"), format!("s3://state/{t}"));
        let (inactive, inactive_uri) = (format!("gone-{t}"), format!("s3://gone/{t}"));
        let now = backend.ts("2024-01-01 00:00:00.000000");
        for (name, uri) in [(&asset, &asset_uri), (&inactive, &inactive_uri)] {
            backend.exec(&[format!(
                "INSERT INTO asset (name, uri, \"group\", extra, created_at, updated_at) \
                 VALUES ('{name}', '{uri}', 'asset', '{{}}', {now}, {now})"
            )]);
        }
        backend.exec(&[format!(
            "INSERT INTO asset_active (name, uri) VALUES ('{asset}', '{asset_uri}')"
        )]);
        let server = backend.serve();
        let token = backend.token(ti, "execution");
        let call = |method: &str, path: String, token: &str, body: Option<&str>| {
            http(server.addr, method, &path, Some(token), body)
        };
        let ti_path = |key: &str| format!("/execution/store/ti/{ti}/{key}");
        let value =
            r#"{"cursor": {"page": 3, "seen": [1.0, 1e-5, "é"]}, "big": 1180591620717411303424}"#;
        let stored = r#"{"cursor": {"page": 3, "seen": [1.0, 1e-05, "\u00e9"]}, "big": 1180591620717411303424}"#;

        // Task state store: a missing key, then a value, its replacement, and deletes.
        let r = call("GET", ti_path("cursor"), &token, None);
        assert_eq!(
            (r.status, detail(&r)),
            (
                404,
                json!({"reason": "not_found", "message": "Task state store key 'cursor' not found"})
            ),
            "{ctx}"
        );
        let body = format!(r#"{{"value": {value}, "expires_at": "2030-01-01T00:00:00+01:00"}}"#);
        let r = call("PUT", ti_path("cursor"), &token, Some(&body));
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let r = call("PUT", ti_path("a/b"), &token, Some(r#"{"value": "first"}"#));
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let r = call(
            "PUT",
            ti_path("a/b"),
            &token,
            Some(r#"{"value": ["second"]}"#),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let r = call("GET", ti_path("cursor"), &token, None);
        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
        assert_eq!(
            r.json(),
            json!({"value": serde_json::from_str::<Value>(value).unwrap()}),
            "{ctx}"
        );
        assert!(
            r.body.contains("1180591620717411303424"),
            "{ctx}: {}",
            r.body
        );
        let r = call("GET", ti_path("a/b"), &token, None);
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"value": ["second"]})),
            "{ctx}"
        );
        let rows = backend.rows(&format!(
            "SELECT value, CAST(expires_at AS TEXT), CAST(dag_run_id AS TEXT), dag_id, run_id, \
             task_id, CAST(map_index AS TEXT), key FROM task_state_store \
             WHERE dag_id = '{dag_id}' ORDER BY key"
        ));
        let dag_run = backend.dag_run_id(&dag_id, &run_id).to_string();
        assert_eq!(rows.len(), 2, "{ctx}: {rows:?}");
        assert_eq!(rows[0][0].as_deref(), Some(r#"["second"]"#), "{ctx}");
        assert_eq!(rows[1][0].as_deref(), Some(stored), "{ctx}");
        assert!(
            rows[1][1]
                .as_deref()
                .unwrap()
                .starts_with("2029-12-31 23:00:00"),
            "{ctx}: {rows:?}"
        );
        assert_eq!(
            rows[1][2..],
            [
                Some(dag_run),
                Some(dag_id.clone()),
                Some(run_id.clone()),
                Some("task".into()),
                Some("-1".into()),
                Some("cursor".into())
            ],
            "{ctx}"
        );

        // The SDK quotes the key (`quote(key, safe='')`): `a%2Fb` is the key `a/b`.
        let r = call("GET", ti_path("a%2Fb"), &token, None);
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"value": ["second"]})),
            "{ctx}"
        );
        let r = call(
            "PUT",
            ti_path("sp%20ace%25%C3%A9"),
            &token,
            Some(r#"{"value": 1}"#),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        assert_eq!(
            backend.count(&format!(
                "SELECT COUNT(*) FROM task_state_store WHERE dag_id = '{dag_id}' AND key = 'sp ace%é'"
            )),
            1,
            "{ctx}"
        );

        // Bad input: 422 and nothing changes.
        for body in [
            r#"{"value": null}"#,
            r#"{"value": NaN}"#,
            r#"{"value": Infinity}"#,
            r#"{"value": 1e400}"#,
            r#"{}"#,
            r#"{"value": 1, "other": 2}"#,
            r#"{"value": 1, "expires_at": "2030-01-01T00:00:00"}"#,
            r#"[1]"#,
            r#"{"value": "#,
        ] {
            let r = call("PUT", ti_path("cursor"), &token, Some(body));
            assert_eq!(r.status, 422, "{ctx} {body}: {}", r.body);
            assert!(detail(&r).is_array(), "{ctx} {body}: {}", r.body);
        }
        let r = call("GET", ti_path("cursor"), &token, None);
        assert_eq!(r.json()["value"]["cursor"]["page"], 3, "{ctx}");

        // Another task instance's store: refused; a token for a task instance that does not exist: 404.
        let other = Uuid::new_v4();
        let r = call(
            "GET",
            ti_path("cursor"),
            &backend.token(other, "execution"),
            None,
        );
        assert_eq!(
            (r.status, detail(&r)),
            (403, json!("Token subject does not match task instance ID")),
            "{ctx}"
        );
        let ghost_token = backend.token(other, "execution");
        for (method, path, body) in [
            ("GET", format!("/execution/store/ti/{other}/k"), None),
            (
                "PUT",
                format!("/execution/store/ti/{other}/k"),
                Some(r#"{"value": 1}"#),
            ),
            ("DELETE", format!("/execution/store/ti/{other}/k"), None),
            ("DELETE", format!("/execution/store/ti/{other}"), None),
        ] {
            let r = call(method, path.clone(), &ghost_token, body);
            assert_eq!(
                (r.status, detail(&r)),
                (
                    404,
                    json!({"reason": "not_found", "message": format!("Task instance {other} not found")})
                ),
                "{ctx} {method} {path}"
            );
        }

        // Asset state store, by name and by URI: the writer is the token's task instance.
        let by_name = |what: &str, key: &str| {
            format!(
                "/execution/store/asset/by-name/{what}?name={}&key={key}",
                enc(&asset)
            )
        };
        let by_uri = |what: &str, key: &str| {
            format!(
                "/execution/store/asset/by-uri/{what}?uri={}&key={key}",
                enc(&asset_uri)
            )
        };
        let r = call(
            "PUT",
            by_name("value", "watermark"),
            &token,
            Some(&format!(r#"{{"value": {value}}}"#)),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let r = call("GET", by_uri("value", "watermark"), &token, None);
        assert_eq!(
            (r.status, r.json()),
            (
                200,
                json!({"value": serde_json::from_str::<Value>(value).unwrap()})
            ),
            "{ctx}"
        );
        let r = call(
            "PUT",
            by_uri("value", "other"),
            &token,
            Some(r#"{"value": 7}"#),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let writer_rows = |key: &str| {
            backend.rows(&format!(
                "SELECT s.value, s.last_updated_by_kind, s.last_updated_by_dag_id, \
                 s.last_updated_by_run_id, s.last_updated_by_task_id, \
                 CAST(s.last_updated_by_map_index AS TEXT) FROM asset_state_store s \
                 JOIN asset a ON a.id = s.asset_id WHERE a.name = '{asset}' AND s.key = '{key}'"
            ))
        };
        assert_eq!(
            writer_rows("watermark"),
            [[
                Some(stored.to_owned()),
                Some("task".into()),
                Some(dag_id.clone()),
                Some(run_id.clone()),
                Some("task".into()),
                Some("-1".into())
            ]],
            "{ctx}"
        );
        // The null subject (Airflow's in-process API: asset watchers) writes as `watcher`.
        let watcher = backend.token(Uuid::nil(), "execution");
        let r = call(
            "PUT",
            by_name("value", "watermark"),
            &watcher,
            Some(r#"{"value": {"w": true}}"#),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        assert_eq!(
            writer_rows("watermark"),
            [[
                Some(r#"{"w": true}"#.into()),
                Some("watcher".into()),
                None,
                None,
                None,
                None
            ]],
            "{ctx}"
        );
        // Query keys are decoded as any query value.
        let r = call(
            "PUT",
            format!(
                "/execution/store/asset/by-name/value?name={}&key={}",
                enc(&asset),
                enc("w/x&y")
            ),
            &token,
            Some(r#"{"value": "odd key"}"#),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        assert_eq!(
            writer_rows("w/x&y")[0][0].as_deref(),
            Some(r#""odd key""#),
            "{ctx}"
        );
        // A task instance that does not exist cannot write.
        let r = call(
            "PUT",
            by_name("value", "watermark"),
            &ghost_token,
            Some(r#"{"value": 1}"#),
        );
        assert_eq!(
            (r.status, detail(&r)),
            (
                404,
                json!({"reason": "not_found", "message": format!("Task instance UUID('{other}') not found")})
            ),
            "{ctx}"
        );
        // Unknown and inactive assets, empty and missing parameters, bad values.
        let r = call(
            "GET",
            format!(
                "/execution/store/asset/by-name/value?name={}&key=k",
                enc(&inactive)
            ),
            &token,
            None,
        );
        assert_eq!(
            (r.status, detail(&r)),
            (
                404,
                json!({"reason": "not_found", "message": format!("Asset with name='{inactive}' not found")})
            ),
            "{ctx}"
        );
        let r = call(
            "DELETE",
            format!(
                "/execution/store/asset/by-uri/clear?uri={}",
                enc(&inactive_uri)
            ),
            &token,
            None,
        );
        assert_eq!(
            (r.status, detail(&r)),
            (
                404,
                json!({"reason": "not_found", "message": format!("Asset with uri='{inactive_uri}' not found")})
            ),
            "{ctx}"
        );
        let r = call("GET", by_name("value", "nope"), &token, None);
        assert_eq!(
            (r.status, detail(&r)),
            (
                404,
                json!({"reason": "not_found", "message": "Asset state store key 'nope' not found"})
            ),
            "{ctx}"
        );
        for (method, path, body) in [
            (
                "GET",
                format!(
                    "/execution/store/asset/by-name/value?name={}&key=",
                    enc(&asset)
                ),
                None,
            ),
            (
                "GET",
                "/execution/store/asset/by-name/value?name=&key=k".to_owned(),
                None,
            ),
            (
                "GET",
                "/execution/store/asset/by-uri/value?key=k".to_owned(),
                None,
            ),
            (
                "DELETE",
                "/execution/store/asset/by-name/clear".to_owned(),
                None,
            ),
            (
                "PUT",
                by_name("value", "watermark"),
                Some(r#"{"value": null}"#),
            ),
            (
                "PUT",
                by_name("value", "watermark"),
                Some(r#"{"value": 1, "expires_at": null}"#),
            ),
        ] {
            let r = call(method, path.clone(), &token, body);
            assert_eq!(r.status, 422, "{ctx} {method} {path} {body:?}: {}", r.body);
        }

        // What we stored, read by Airflow's state backend; and what Airflow's own API stores
        // for the same value, byte for byte what we stored.
        if backend.is_airflow() {
            let r = call(
                "PUT",
                by_name("value", "watermark"),
                &token,
                Some(&format!(r#"{{"value": {value}}}"#)),
            );
            assert_eq!(r.status, 204, "{ctx}: {}", r.body);
            let read = backend.airflow_side(&[
                "state-read",
                &ti.to_string(),
                "cursor",
                &asset,
                "watermark",
                value,
            ]);
            let expected: Value = serde_json::from_str(value).unwrap();
            assert_eq!(read["task"], expected, "{ctx}: {read}");
            assert_eq!(read["asset"], expected, "{ctx}: {read}");
            assert_eq!(read["task_raw"], stored, "{ctx}");
            assert_eq!(read["airflow_task_raw"], read["task_raw"], "{ctx}");
            assert_eq!(read["airflow_asset_raw"], read["asset_raw"], "{ctx}");
            // Sorted here: the database's collation may order punctuation differently.
            let mut writers = read["writers"].as_array().unwrap().clone();
            writers.sort_by_key(|w| w[0].as_str().unwrap().to_owned());
            assert_eq!(
                Value::Array(writers),
                json!([
                    ["other", "task", dag_id, run_id, "task", -1],
                    ["w/x&y", "task", dag_id, run_id, "task", -1],
                    ["watermark", "task", dag_id, run_id, "task", -1],
                    ["watermark-airflow", "watcher", null, null, null, null],
                ]),
                "{ctx}"
            );
        }

        // Deletes: one key, then everything.
        let r = call("DELETE", by_name("value", "watermark"), &token, None);
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let r = call("GET", by_name("value", "watermark"), &token, None);
        assert_eq!(r.status, 404, "{ctx}: {}", r.body);
        let r = call(
            "DELETE",
            format!(
                "/execution/store/asset/by-uri/clear?uri={}",
                enc(&asset_uri)
            ),
            &token,
            None,
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        assert_eq!(
            backend.count(&format!(
                "SELECT COUNT(*) FROM asset_state_store s JOIN asset a ON a.id = s.asset_id \
                 WHERE a.name = '{asset}'"
            )),
            0,
            "{ctx}"
        );
        let r = call("DELETE", ti_path("cursor"), &token, None);
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let r = call("GET", ti_path("cursor"), &token, None);
        assert_eq!(r.status, 404, "{ctx}: {}", r.body);
        let r = call("GET", ti_path("a/b"), &token, None);
        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
        let r = call("DELETE", format!("/execution/store/ti/{ti}"), &token, None);
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        assert_eq!(
            backend.count(&format!(
                "SELECT COUNT(*) FROM task_state_store WHERE dag_id = '{dag_id}'"
            )),
            0,
            "{ctx}: every key goes (on Airflow's databases, Airflow's `cursor-airflow` too)"
        );
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// Human in the loop.

#[test]
fn hitl_details_over_http_on_every_backend() {
    for backend in Backend::all("hitl") {
        let ctx = format!("{:?}", backend.kind);
        let t = tag();
        let ti = backend.create_ti(&format!("hitl_{t}"), &format!("run_{t}"));
        let server = backend.serve();
        let token = backend.token(ti, "execution");
        let path = format!("/execution/hitlDetails/{ti}");
        let call =
            |method: &str, body: Option<&str>| http(server.addr, method, &path, Some(&token), body);
        let not_found = json!({
            "reason": "not_found",
            "message": "HITLDetail not found. This happens most likely due to clearing task instance before receiving response.",
        });
        let r = call("GET", None);
        assert_eq!((r.status, detail(&r)), (404, not_found.clone()), "{ctx}");
        let r = call(
            "PATCH",
            Some(&format!(
                r#"{{"ti_id": "{ti}", "chosen_options": ["Yes"]}}"#
            )),
        );
        assert_eq!((r.status, detail(&r)), (404, not_found.clone()), "{ctx}");

        // As the Task SDK sends it (with its own `type` tag, which Airflow ignores).
        let request = format!(
            r#"{{"ti_id":"{ti}","options":["Yes","Nö"],"subject":"Ship it?","body":null,"defaults":["Yes"],"multiple":false,"params":{{"n":{{"value":1,"description":null}}}},"assigned_users":[{{"id":"7","name":"Ann"}}],"type":"CreateHITLDetailPayload"}}"#
        );
        for bad in [
            format!(r#"{{"ti_id":"{ti}","options":[],"subject":"s"}}"#),
            format!(r#"{{"ti_id":"{ti}","options":["a"]}}"#),
            format!(r#"{{"ti_id":"{ti}","options":["a"],"subject":"s","params":null}}"#),
            format!(r#"{{"ti_id":"{ti}","options":["a"],"subject":"s","params":[1]}}"#),
            format!(r#"{{"ti_id":"{ti}","options":["a"],"subject":"s","assigned_users":null}}"#),
            r#"{"ti_id":"not-a-uuid","options":["a"],"subject":"s"}"#.to_owned(),
            "[]".to_owned(),
        ] {
            let r = call("POST", Some(&bad));
            assert_eq!(r.status, 422, "{ctx} {bad}: {}", r.body);
        }
        assert_eq!(
            backend.count(&format!(
                "SELECT COUNT(*) FROM hitl_detail WHERE ti_id = {}",
                backend.uuid(ti)
            )),
            0,
            "{ctx}: a refused request wrote nothing"
        );
        let expected_request = json!({
            "ti_id": ti.to_string(),
            "options": ["Yes", "Nö"],
            "subject": "Ship it?",
            "body": null,
            "defaults": ["Yes"],
            "multiple": false,
            "params": {"n": {"value": 1, "description": null}},
            "assigned_users": [{"id": "7", "name": "Ann"}],
        });
        let r = call("POST", Some(&request));
        assert_eq!(
            (r.status, r.json()),
            (201, expected_request.clone()),
            "{ctx}"
        );
        let rows = backend.rows(&format!(
            "SELECT CAST(options AS TEXT), CAST(defaults AS TEXT), CAST(params AS TEXT), \
             CAST(assignees AS TEXT), CAST(params_input AS TEXT), CAST(chosen_options AS TEXT), \
             CAST(responded_at AS TEXT) FROM hitl_detail WHERE ti_id = {}",
            backend.uuid(ti)
        ));
        assert_eq!(
            rows,
            [[
                Some(r#"["Yes", "N\u00f6"]"#.into()),
                Some(r#"["Yes"]"#.into()),
                Some(r#"{"n": {"value": 1, "description": null}}"#.into()),
                Some(r#"[{"id": "7", "name": "Ann"}]"#.into()),
                Some("{}".into()),
                None,
                None
            ]],
            "{ctx}: stored as SQLAlchemy stores them"
        );
        let r = call("GET", None);
        assert_eq!(
            (r.status, r.json()),
            (
                200,
                json!({"response_received": false, "responded_by_user": null, "responded_at": null, "chosen_options": [], "params_input": {}})
            ),
            "{ctx}"
        );
        // A second POST with other content keeps the stored request.
        let r = call(
            "POST",
            Some(&format!(
                r#"{{"ti_id":"{ti}","options":["Other"],"subject":"x"}}"#
            )),
        );
        assert_eq!(
            (r.status, r.json()),
            (201, expected_request.clone()),
            "{ctx}"
        );

        let answer = format!(
            r#"{{"ti_id":"{ti}","chosen_options":["Nö"],"params_input":{{"n":2}},"type":"UpdateHITLDetail"}}"#
        );
        let r = call(
            "PATCH",
            Some(&format!(r#"{{"ti_id":"{ti}","chosen_options":[]}}"#)),
        );
        assert_eq!(r.status, 422, "{ctx}: {}", r.body);
        let r = call("PATCH", Some(&answer));
        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
        let answered = r.json();
        assert_eq!(answered["response_received"], true, "{ctx}");
        assert_eq!(answered["responded_by_user"], Value::Null, "{ctx}");
        assert_eq!(answered["chosen_options"], json!(["Nö"]), "{ctx}");
        assert_eq!(answered["params_input"], json!({"n": 2}), "{ctx}");
        assert!(
            answered["responded_at"].as_str().unwrap().ends_with('Z'),
            "{ctx}"
        );
        let r = call("GET", None);
        assert_eq!((r.status, r.json()), (200, answered.clone()), "{ctx}");
        if backend.is_airflow() {
            let read = backend.airflow_side(&["hitl-read", &ti.to_string()]);
            assert_eq!(read["options"], json!(["Yes", "Nö"]), "{ctx}: {read}");
            assert_eq!(
                read["params"],
                json!({"n": {"value": 1, "description": null}}),
                "{ctx}"
            );
            assert_eq!(
                read["assigned_users"],
                json!([{"id": "7", "name": "Ann"}]),
                "{ctx}"
            );
            assert_eq!(read["multiple"], false, "{ctx}");
            assert_eq!(read["response_received"], true, "{ctx}");
            assert_eq!(read["chosen_options"], json!(["Nö"]), "{ctx}");
            assert_eq!(read["params_input"], json!({"n": 2}), "{ctx}");
            assert_eq!(read["responded_by_user"], Value::Null, "{ctx}");
            assert_eq!(
                canon(&json!(
                    read["responded_at"]
                        .as_str()
                        .unwrap()
                        .replace("+00:00", "Z")
                )),
                answered["responded_at"],
                "{ctx}"
            );
        }
        let r = call("PATCH", Some(&answer));
        assert_eq!(
            (r.status, detail(&r)),
            (
                409,
                json!(format!(
                    "Human-in-the-loop detail for Task Instance with id {ti} already exists."
                ))
            ),
            "{ctx}"
        );

        // A POST after an answer (a retry) clears the answer.
        let r = call("POST", Some(&request));
        assert_eq!(
            (r.status, r.json()),
            (201, expected_request.clone()),
            "{ctx}"
        );
        let rows = backend.rows(&format!(
            "SELECT CAST(chosen_options AS TEXT), CAST(params_input AS TEXT), \
             CAST(responded_at AS TEXT), CAST(responded_by AS TEXT) FROM hitl_detail \
             WHERE ti_id = {}",
            backend.uuid(ti)
        ));
        assert_eq!(
            rows,
            [[Some("null".into()), Some("{}".into()), None, None]],
            "{ctx}: JSON null, as SQLAlchemy writes None"
        );
        let r = call("GET", None);
        assert_eq!(r.json()["response_received"], false, "{ctx}");
        assert_eq!(r.json()["chosen_options"], json!([]), "{ctx}");
        // Concurrent answers: exactly one is recorded.
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let answers: Vec<_> = (0..5)
                .map(|_| scope.spawn(|| call("PATCH", Some(&answer)).status))
                .collect();
            answers.into_iter().map(|a| a.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [200, 409, 409, 409, 409], "{ctx}: {statuses:?}");

        // No task instance: Airflow fails on the foreign key; we answer 404.
        let ghost = Uuid::new_v4();
        let r = http(
            server.addr,
            "POST",
            &format!("/execution/hitlDetails/{ghost}"),
            Some(&backend.token(ghost, "execution")),
            Some(&request),
        );
        assert_eq!(
            (r.status, detail(&r)),
            (
                404,
                json!({"reason": "not_found", "message": "Task Instance not found"})
            ),
            "{ctx}"
        );
        let r = http(
            server.addr,
            "GET",
            &format!("/execution/hitlDetails/{ghost}"),
            Some(&token),
            None,
        );
        assert_eq!(
            (r.status, detail(&r)),
            (403, json!("Token subject does not match task instance ID")),
            "{ctx}"
        );
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// Connection tests.

/// A `connection_test_request` row as Airflow's model writes it (password and extra
/// Fernet-encrypted with their own flags; `active_connection_id` set while active).
fn insert_connection_test(
    backend: &Backend,
    conn_id: &str,
    password: Option<&str>,
    extra: Option<&str>,
    commit_on_success: bool,
) -> Uuid {
    let fernet =
        execution_api_server::crypto::Fernet::from_config(Some(&backend.fernet_key)).unwrap();
    let seal = |v: Option<&str>| match v {
        Some(v) if !v.is_empty() => (format!("'{}'", fernet.encrypt(v)), "true"),
        Some(v) => (format!("'{v}'"), "false"),
        None => ("NULL".to_owned(), "false"),
    };
    let (password, password_encrypted) = seal(password);
    let (extra, extra_encrypted) = seal(extra);
    let id = Uuid::now_v7();
    let now = backend.ts("2024-06-01 12:00:00.000000");
    backend.exec(&[format!(
        "INSERT INTO connection_test_request (id, token, connection_id, state, created_at, \
         updated_at, conn_type, host, login, schema, port, commit_on_success, is_encrypted, \
         is_extra_encrypted, active_connection_id, password, extra) VALUES ({}, '{}', '{conn_id}', \
         'pending', {now}, {now}, 'postgres', 'db.example.com', 'tester', 'analytics', 5432, \
         {commit_on_success}, {password_encrypted}, {extra_encrypted}, '{conn_id}', {password}, \
         {extra})",
        backend.uuid(id),
        Uuid::new_v4().simple(),
    )]);
    id
}

fn connection_test_row(backend: &Backend, id: Uuid) -> Vec<Option<String>> {
    backend
        .rows(&format!(
            "SELECT state, result_message, active_connection_id, CAST(updated_at AS TEXT) \
             FROM connection_test_request WHERE id = {}",
            backend.uuid(id)
        ))
        .remove(0)
}

#[test]
fn connection_tests_over_http_on_every_backend() {
    for backend in Backend::all("conntest") {
        let ctx = format!("{:?}", backend.kind);
        let t = tag();
        let conn_id = format!("tested_{t}");
        let id = insert_connection_test(
            &backend,
            &conn_id,
            Some("s3cr3t"),
            Some(r#"{"sslmode": "require"}"#),
            true,
        );
        let server = backend.serve();
        let workload = backend.token(id, "workload");
        let fetch = format!("/execution/connection-tests/{id}/connection");
        let patch = format!("/execution/connection-tests/{id}");

        // Workload tokens whose subject is the test, only.
        let r = http(
            server.addr,
            "GET",
            &fetch,
            Some(&backend.token(id, "execution")),
            None,
        );
        assert_eq!(
            (r.status, detail(&r)),
            (
                403,
                json!(
                    "Token type 'execution' not allowed for this endpoint. Allowed types: workload"
                )
            ),
            "{ctx}"
        );
        let r = http(
            server.addr,
            "GET",
            &fetch,
            Some(&backend.token(Uuid::new_v4(), "workload")),
            None,
        );
        assert_eq!(
            (r.status, detail(&r)),
            (
                403,
                json!("Token subject does not match connection test ID")
            ),
            "{ctx}"
        );
        assert_eq!(
            connection_test_row(&backend, id)[0].as_deref(),
            Some("pending"),
            "{ctx}"
        );

        // The credentials, decrypted, once.
        let r = http(server.addr, "GET", &fetch, Some(&workload), None);
        assert_eq!(
            (r.status, r.json()),
            (
                200,
                json!({
                    "conn_id": conn_id, "conn_type": "postgres", "host": "db.example.com",
                    "login": "tester", "password": "s3cr3t", "schema": "analytics", "port": 5432,
                    "extra": r#"{"sslmode": "require"}"#,
                })
            ),
            "{ctx}"
        );
        let row = connection_test_row(&backend, id);
        assert_eq!(row[0].as_deref(), Some("running"), "{ctx}");
        assert_eq!(row[2].as_deref(), Some(conn_id.as_str()), "{ctx}");
        assert!(
            !row[3].as_deref().unwrap().starts_with("2024-06-01"),
            "{ctx}: updated_at"
        );
        let r = http(server.addr, "GET", &fetch, Some(&workload), None);
        assert_eq!(
            (r.status, detail(&r)),
            (
                409,
                json!({"reason": "conflict", "message": format!("Connection test {id} is in state running; credentials can only be fetched once while PENDING or QUEUED.")})
            ),
            "{ctx}"
        );

        // Bad results: 422, nothing changes.
        for body in [
            r#"{"state": "running"}"#,
            r#"{"state": "exploded"}"#,
            r#"{"result_message": "x"}"#,
            r#"{"state": "success", "extra": 1}"#,
        ] {
            let r = http(server.addr, "PATCH", &patch, Some(&workload), Some(body));
            assert_eq!(r.status, 422, "{ctx} {body}: {}", r.body);
        }
        let long = format!(
            r#"{{"state": "failed", "result_message": "{}"}}"#,
            "x".repeat(2001)
        );
        let r = http(server.addr, "PATCH", &patch, Some(&workload), Some(&long));
        assert_eq!(r.status, 422, "{ctx}: {}", r.body);
        assert_eq!(
            connection_test_row(&backend, id)[0].as_deref(),
            Some("running"),
            "{ctx}"
        );
        assert_eq!(
            backend.count(&format!(
                "SELECT COUNT(*) FROM connection WHERE conn_id = '{conn_id}'"
            )),
            0,
            "{ctx}"
        );

        // Success with commit_on_success: the connection is written, encrypted.
        let r = http(
            server.addr,
            "PATCH",
            &patch,
            Some(&workload),
            Some(r#"{"state": "success", "result_message": "Connection successfully tested"}"#),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let row = connection_test_row(&backend, id);
        assert_eq!(
            row[..3],
            [
                Some("success".into()),
                Some("Connection successfully tested".into()),
                None
            ],
            "{ctx}"
        );
        let conn = backend.rows(&format!(
            "SELECT conn_type, host, login, schema, CAST(port AS TEXT), password, extra, \
             CAST(CAST(is_encrypted AS INTEGER) AS TEXT), \
             CAST(CAST(is_extra_encrypted AS INTEGER) AS TEXT) \
             FROM connection WHERE conn_id = '{conn_id}'"
        ));
        assert_eq!(conn.len(), 1, "{ctx}");
        assert!(
            conn[0][5].as_deref().unwrap().starts_with("gAAAAA"),
            "{ctx}: {conn:?}"
        );
        assert!(
            conn[0][6].as_deref().unwrap().starts_with("gAAAAA"),
            "{ctx}: {conn:?}"
        );
        assert_eq!(
            conn[0][..5],
            [
                Some("postgres".into()),
                Some("db.example.com".into()),
                Some("tester".into()),
                Some("analytics".into()),
                Some("5432".into())
            ],
            "{ctx}"
        );
        assert_eq!(conn[0][7..], [Some("1".into()), Some("1".into())], "{ctx}");
        // Read back through our connections route: decrypted.
        let r = http(
            server.addr,
            "GET",
            &format!("/execution/connections/{conn_id}"),
            Some(&backend.token(Uuid::new_v4(), "execution")),
            None,
        );
        assert_eq!(r.status, 200, "{ctx}: {}", r.body);
        assert_eq!(r.json()["password"], "s3cr3t", "{ctx}");
        let r = http(
            server.addr,
            "PATCH",
            &patch,
            Some(&workload),
            Some(r#"{"state": "failed"}"#),
        );
        assert_eq!(
            (r.status, detail(&r)),
            (
                409,
                json!({"reason": "conflict", "message": format!("Connection test {id} is already in terminal state: success")})
            ),
            "{ctx}"
        );

        // A second test of the same connection without a password, committed: the password
        // stays (Airflow's setter ignores an empty one); a failed one commits nothing.
        let again = insert_connection_test(&backend, &conn_id, None, Some(""), true);
        let again_token = backend.token(again, "workload");
        let r = http(
            server.addr,
            "PATCH",
            &format!("/execution/connection-tests/{again}"),
            Some(&again_token),
            Some(r#"{"state": "success"}"#),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        let conn = backend.rows(&format!(
            "SELECT password, extra, CAST(CAST(is_extra_encrypted AS INTEGER) AS TEXT) FROM connection \
             WHERE conn_id = '{conn_id}'"
        ));
        assert!(
            conn[0][0].as_deref().unwrap().starts_with("gAAAAA"),
            "{ctx}: {conn:?}"
        );
        assert_eq!(conn[0][1].as_deref(), Some(""), "{ctx}");
        assert_eq!(conn[0][2].as_deref(), Some("0"), "{ctx}");
        let failed_conn = format!("never_{t}");
        let failed = insert_connection_test(&backend, &failed_conn, Some("pw"), None, true);
        let r = http(
            server.addr,
            "PATCH",
            &format!("/execution/connection-tests/{failed}"),
            Some(&backend.token(failed, "workload")),
            Some(r#"{"state": "failed", "result_message": "refused"}"#),
        );
        assert_eq!(r.status, 204, "{ctx}: {}", r.body);
        assert_eq!(
            backend.count(&format!(
                "SELECT COUNT(*) FROM connection WHERE conn_id = '{failed_conn}'"
            )),
            0,
            "{ctx}"
        );
        // An extra Airflow's Connection model refuses: 422, and the test stays as it was.
        let bad_conn = format!("bad_extra_{t}");
        let bad = insert_connection_test(&backend, &bad_conn, None, Some("[1, 2]"), true);
        let r = http(
            server.addr,
            "PATCH",
            &format!("/execution/connection-tests/{bad}"),
            Some(&backend.token(bad, "workload")),
            Some(r#"{"state": "success"}"#),
        );
        assert_eq!(r.status, 422, "{ctx}: {}", r.body);
        assert_eq!(
            connection_test_row(&backend, bad)[0].as_deref(),
            Some("pending"),
            "{ctx}"
        );

        // Credentials are handed out once, also to concurrent fetches (the row is locked).
        let raced =
            insert_connection_test(&backend, &format!("raced_{t}"), Some("pw"), None, false);
        let raced_token = backend.token(raced, "workload");
        let raced_path = format!("/execution/connection-tests/{raced}/connection");
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let fetches: Vec<_> = (0..6)
                .map(|_| {
                    scope.spawn(|| {
                        http(server.addr, "GET", &raced_path, Some(&raced_token), None).status
                    })
                })
                .collect();
            fetches.into_iter().map(|f| f.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [200, 409, 409, 409, 409, 409],
            "{ctx}: {statuses:?}"
        );

        // Unknown tests.
        let ghost = Uuid::new_v4();
        let ghost_token = backend.token(ghost, "workload");
        for (method, path, body) in [
            (
                "GET",
                format!("/execution/connection-tests/{ghost}/connection"),
                None,
            ),
            (
                "PATCH",
                format!("/execution/connection-tests/{ghost}"),
                Some(r#"{"state": "failed"}"#),
            ),
        ] {
            let r = http(server.addr, method, &path, Some(&ghost_token), body);
            assert_eq!(
                (r.status, detail(&r)),
                (
                    404,
                    json!({"reason": "not_found", "message": format!("Connection test {ghost} not found")})
                ),
                "{ctx} {method}"
            );
        }

        // A test Airflow's own model created, run through our routes, committed, and read back
        // by `airflow connections get`.
        if backend.is_airflow() {
            let af_conn = format!("af_tested_{t}");
            let made = backend.airflow_side(&[
                "conn-test-create",
                &af_conn,
                "p@ss/word",
                r#"{"region": "eu"}"#,
                "1",
            ]);
            let af_id: Uuid = made["id"].as_str().unwrap().parse().unwrap();
            let af_token = backend.token(af_id, "workload");
            let r = http(
                server.addr,
                "GET",
                &format!("/execution/connection-tests/{af_id}/connection"),
                Some(&af_token),
                None,
            );
            assert_eq!(r.status, 200, "{ctx}: {}", r.body);
            assert_eq!(r.json()["password"], "p@ss/word", "{ctx}");
            assert_eq!(r.json()["extra"], r#"{"region": "eu"}"#, "{ctx}");
            let r = http(
                server.addr,
                "PATCH",
                &format!("/execution/connection-tests/{af_id}"),
                Some(&af_token),
                Some(r#"{"state": "success", "result_message": "ok"}"#),
            );
            assert_eq!(r.status, 204, "{ctx}: {}", r.body);
            let got = backend.venv(
                "airflow",
                &["connections", "get", &af_conn, "--output", "json"],
            );
            let start = got
                .find('[')
                .or_else(|| got.find('{'))
                .expect("JSON output");
            let parsed: Value = serde_json::from_str(&got[start..]).expect("connections get JSON");
            let parsed = if parsed.is_array() {
                parsed[0].clone()
            } else {
                parsed
            };
            assert_eq!(parsed["password"], "p@ss/word", "{ctx}: {parsed}");
            assert_eq!(parsed["login"], "tester", "{ctx}: {parsed}");
            assert_eq!(parsed["host"], "db.example.com", "{ctx}: {parsed}");
            assert_eq!(parsed["port"], "5432", "{ctx}: {parsed}");
            assert_eq!(
                parsed["extra_dejson"],
                json!({"region": "eu"}),
                "{ctx}: {parsed}"
            );
        }
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// The same requests, answered by Airflow's own Execution API.

/// Replaces every form of one UUID in a JSON value by another.
fn swap_id(value: &Value, from: Uuid, to: Uuid) -> Value {
    match value {
        Value::String(s) => Value::String(
            s.replace(&from.to_string(), &to.to_string())
                .replace(&from.simple().to_string(), &to.simple().to_string()),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| swap_id(v, from, to)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), swap_id(v, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `responded_at` is the time of the request: the same on neither side.
fn without_times(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(t) = value.get_mut("responded_at")
        && t.is_string()
    {
        *t = json!("<time>");
    }
    value
}

#[test]
fn hitl_and_state_store_requests_are_answered_as_airflow_answers_them() {
    for backend in Backend::airflow("replay") {
        let ctx = format!("{:?}", backend.kind);
        let t = tag();
        let dag_id = format!("replay_{t}");
        let ours = backend.create_ti(&dag_id, "ours");
        let theirs = backend.create_ti(&dag_id, "theirs");
        let (asset, asset_uri) = (format!("replay-{t}"), format!("s3://replay/{t}"));
        let (gone, gone_uri) = (format!("gone-{t}"), format!("s3://gone/{t}"));
        let now = backend.ts("2024-01-01 00:00:00.000000");
        for (name, uri) in [(&asset, &asset_uri), (&gone, &gone_uri)] {
            backend.exec(&[format!(
                "INSERT INTO asset (name, uri, \"group\", extra, created_at, updated_at) \
                 VALUES ('{name}', '{uri}', 'asset', '{{}}', {now}, {now})"
            )]);
        }
        backend.exec(&[format!(
            "INSERT INTO asset_active (name, uri) VALUES ('{asset}', '{asset_uri}')"
        )]);
        let (a, a_uri, g, g_uri) = (enc(&asset), enc(&asset_uri), enc(&gone), enc(&gone_uri));
        let create = r#"{"ti_id":"{ti}","options":["Yes","Nö"],"subject":"Ship it?","body":"b","defaults":null,"multiple":true,"params":{"z":{"value":1.0},"a":[]},"assigned_users":[{"id":"7","name":"Ann"}],"type":"CreateHITLDetailPayload"}"#;
        let answer = r#"{"ti_id":"{ti}","chosen_options":["Nö"],"params_input":{"n":2,"big":1180591620717411303424},"type":"UpdateHITLDetail"}"#;
        let requests: Vec<(&str, String, Option<&str>)> = vec![
            ("GET", "/hitlDetails/{ti}".into(), None),
            ("PATCH", "/hitlDetails/{ti}".into(), Some(answer)),
            (
                "POST",
                "/hitlDetails/{ti}".into(),
                Some(r#"{"ti_id":"{ti}","options":[],"subject":"s"}"#),
            ),
            (
                "POST",
                "/hitlDetails/{ti}".into(),
                Some(r#"{"ti_id":"{ti}","options":["a"],"subject":"s","params":null}"#),
            ),
            ("POST", "/hitlDetails/{ti}".into(), Some(create)),
            ("GET", "/hitlDetails/{ti}".into(), None),
            (
                "POST",
                "/hitlDetails/{ti}".into(),
                Some(r#"{"ti_id":"{ti}","options":["Other"],"subject":"x"}"#),
            ),
            (
                "PATCH",
                "/hitlDetails/{ti}".into(),
                Some(r#"{"ti_id":"{ti}","chosen_options":[]}"#),
            ),
            ("PATCH", "/hitlDetails/{ti}".into(), Some(answer)),
            ("GET", "/hitlDetails/{ti}".into(), None),
            ("PATCH", "/hitlDetails/{ti}".into(), Some(answer)),
            ("POST", "/hitlDetails/{ti}".into(), Some(create)),
            ("GET", "/hitlDetails/{ti}".into(), None),
            ("GET", "/store/ti/{ti}/k".into(), None),
            (
                "PUT",
                "/store/ti/{ti}/k".into(),
                Some(r#"{"value": {"b": 1, "a": [1.0, 1e-7, "é"]}}"#),
            ),
            ("GET", "/store/ti/{ti}/k".into(), None),
            (
                "PUT",
                "/store/ti/{ti}/a%2Fb".into(),
                Some(r#"{"value": [1], "expires_at": null}"#),
            ),
            ("GET", "/store/ti/{ti}/a%2Fb".into(), None),
            ("PUT", "/store/ti/{ti}/k".into(), Some(r#"{"value": null}"#)),
            ("PUT", "/store/ti/{ti}/k".into(), Some(r#"{"value": NaN}"#)),
            (
                "PUT",
                "/store/ti/{ti}/k".into(),
                Some(r#"{"value": 1, "ttl": 3}"#),
            ),
            ("PUT", "/store/ti/{ti}/k".into(), Some("{}")),
            ("DELETE", "/store/ti/{ti}/k".into(), None),
            ("GET", "/store/ti/{ti}/k".into(), None),
            ("DELETE", "/store/ti/{ti}".into(), None),
            ("GET", "/store/ti/{ti}/a%2Fb".into(), None),
            (
                "PUT",
                "/store/ti/{ti}/kept".into(),
                Some(r#"{"value": {"z": [true, null, -0, 2.50], "a": "\u00e9\n"}}"#),
            ),
            (
                "DELETE",
                format!("/store/asset/by-name/clear?name={a}"),
                None,
            ),
            (
                "GET",
                format!("/store/asset/by-name/value?name={a}&key=k"),
                None,
            ),
            (
                "PUT",
                format!("/store/asset/by-name/value?name={a}&key=k"),
                Some(r#"{"value": {"x": 1}}"#),
            ),
            (
                "GET",
                format!("/store/asset/by-uri/value?uri={a_uri}&key=k"),
                None,
            ),
            (
                "GET",
                format!("/store/asset/by-name/value?name={g}&key=k"),
                None,
            ),
            (
                "GET",
                format!("/store/asset/by-uri/value?uri={g_uri}&key=k"),
                None,
            ),
            (
                "PUT",
                format!("/store/asset/by-name/value?name={a}&key=k"),
                Some(r#"{"value": 1, "expires_at": null}"#),
            ),
            ("GET", "/store/asset/by-name/value?name=&key=k".into(), None),
            (
                "DELETE",
                format!("/store/asset/by-uri/value?uri={a_uri}&key=k"),
                None,
            ),
            (
                "GET",
                format!("/store/asset/by-uri/value?uri={a_uri}&key=k"),
                None,
            ),
            (
                "DELETE",
                format!("/store/asset/by-uri/clear?uri={g_uri}"),
                None,
            ),
            (
                "PUT",
                format!("/store/asset/by-uri/value?uri={a_uri}&key=last"),
                Some(r#"{"value": [3, "é"]}"#),
            ),
        ];
        let script =
            Value::Array(requests.iter().map(|(m, p, b)| json!([m, p, b])).collect()).to_string();
        let airflow = backend.airflow_side(&["replay", &theirs.to_string(), &script]);
        let theirs_answers = airflow["responses"].as_array().unwrap();
        assert_eq!(theirs_answers.len(), requests.len());

        let server = backend.serve();
        let ti_token = backend.token(ours, "execution");
        // Airflow's in-process API calls the asset routes with the null subject.
        let watcher = backend.token(Uuid::nil(), "execution");
        let ours_str = ours.to_string();
        for ((method, path, body), theirs_answer) in requests.iter().zip(theirs_answers) {
            let token = if path.starts_with("/store/asset") {
                &watcher
            } else {
                &ti_token
            };
            let path = path.replace("{ti}", &ours_str);
            let body = body.map(|b| b.replace("{ti}", &ours_str));
            let r = http(
                server.addr,
                method,
                &format!("/execution{path}"),
                Some(token),
                body.as_deref(),
            );
            let status = theirs_answer[0].as_u64().unwrap() as u16;
            if status == 500 {
                // Airflow fails (a NaN value: its 422 cannot render the NaN it echoes);
                // we refuse the request instead.
                assert_eq!(r.status, 422, "{ctx} {method} {path}: {}", r.body);
                continue;
            }
            assert_eq!(
                r.status, status,
                "{ctx} {method} {path}: ours {} vs Airflow's {}",
                r.body, theirs_answer[1]
            );
            // Validation errors are FastAPI's own wording; the status is the contract.
            if status != 422 {
                let ours_body = if r.body.is_empty() {
                    Value::Null
                } else {
                    r.json()
                };
                assert_eq!(
                    without_times(&canon(&ours_body)),
                    without_times(&canon(&swap_id(&theirs_answer[1], theirs, ours))),
                    "{ctx} {method} {path}"
                );
            }
        }
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");

        // What each side stored is byte for byte the same.
        let hitl = |ti: Uuid| {
            backend.rows(&format!(
                "SELECT CAST(options AS TEXT), subject, body, CAST(defaults AS TEXT), \
                 CAST(CAST(multiple AS INTEGER) AS TEXT), CAST(params AS TEXT), \
                 CAST(assignees AS TEXT), CAST(responded_by AS TEXT), \
                 CAST(chosen_options AS TEXT), CAST(params_input AS TEXT), \
                 CAST(responded_at AS TEXT) FROM hitl_detail WHERE ti_id = {}",
                backend.uuid(ti)
            ))
        };
        let (ours_row, theirs_row) = (hitl(ours), hitl(theirs));
        assert_eq!(ours_row.len(), 1, "{ctx}");
        assert_eq!(ours_row, theirs_row, "{ctx}: hitl_detail");
        let state = |ti: Uuid| {
            backend.rows(&format!(
                "SELECT s.key, s.value, CAST(s.expires_at AS TEXT) FROM task_state_store s \
                 JOIN task_instance ti ON ti.dag_id = s.dag_id AND ti.run_id = s.run_id \
                 AND ti.task_id = s.task_id AND ti.map_index = s.map_index \
                 WHERE ti.id = {} ORDER BY s.key",
                backend.uuid(ti)
            ))
        };
        let (ours_rows, theirs_rows) = (state(ours), state(theirs));
        assert_eq!(ours_rows.len(), 1, "{ctx}: {ours_rows:?}");
        assert_eq!(ours_rows, theirs_rows, "{ctx}: task_state_store");
    }
}

#[test]
fn connection_test_requests_are_answered_as_airflow_answers_them() {
    for backend in Backend::airflow("replay-ct") {
        let ctx = format!("{:?}", backend.kind);
        let conn_id = format!("replayed_{}", tag());
        let requests: Vec<(&str, &str, Option<&str>)> = vec![
            ("GET", "/connection-tests/{ti}/connection", None),
            ("GET", "/connection-tests/{ti}/connection", None),
            (
                "PATCH",
                "/connection-tests/{ti}",
                Some(r#"{"state": "running"}"#),
            ),
            (
                "PATCH",
                "/connection-tests/{ti}",
                Some(r#"{"state": "success", "result_message": "fine"}"#),
            ),
            (
                "PATCH",
                "/connection-tests/{ti}",
                Some(r#"{"state": "failed"}"#),
            ),
            ("GET", "/connection-tests/{ti}/connection", None),
        ];
        let script =
            Value::Array(requests.iter().map(|(m, p, b)| json!([m, p, b])).collect()).to_string();
        // One active test per connection at a time: Airflow's runs to its end first.
        let create = || -> Uuid {
            backend.airflow_side(&["conn-test-create", &conn_id, "pw", r#"{"a": 1}"#, "0"])["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        };
        let theirs = create();
        let airflow = backend.airflow_side(&["replay", &theirs.to_string(), &script, "workload"]);
        let theirs_answers = airflow["responses"].as_array().unwrap();
        assert_eq!(theirs_answers[0][0], 200, "{ctx}: {airflow}");
        let ours = create();
        let server = backend.serve();
        let token = backend.token(ours, "workload");
        for ((method, path, body), theirs_answer) in requests.iter().zip(theirs_answers) {
            let path = path.replace("{ti}", &ours.to_string());
            let r = http(
                server.addr,
                method,
                &format!("/execution{path}"),
                Some(&token),
                *body,
            );
            let status = theirs_answer[0].as_u64().unwrap() as u16;
            assert_eq!(
                r.status, status,
                "{ctx} {method} {path}: ours {} vs Airflow's {}",
                r.body, theirs_answer[1]
            );
            if status != 422 {
                let ours_body = if r.body.is_empty() {
                    Value::Null
                } else {
                    r.json()
                };
                assert_eq!(
                    ours_body,
                    swap_id(&theirs_answer[1], theirs, ours),
                    "{ctx} {method} {path}"
                );
            }
        }
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
        let row = |id: Uuid| {
            backend.rows(&format!(
                "SELECT state, result_message, active_connection_id FROM connection_test_request \
                 WHERE id = {}",
                backend.uuid(id)
            ))
        };
        assert_eq!(row(ours), row(theirs), "{ctx}");
        assert_eq!(row(ours)[0][0].as_deref(), Some("success"), "{ctx}");
    }
}

// ---------------------------------------------------------------------------------------------
// The real client.

#[test]
fn the_task_sdk_client_drives_every_route_group() {
    for backend in Backend::all("sdk") {
        let ctx = format!("{:?}", backend.kind);
        let f = asset_fixture(&backend);
        let t = tag();
        let ti = backend.create_ti(&format!("sdk_{t}"), &format!("run_{t}"));
        let ct =
            insert_connection_test(&backend, &format!("sdk_conn_{t}"), Some("pw"), None, false);
        let server = backend.serve();
        let base_url = server.url("/execution/");
        let out = backend.airflow_side(&[
            "sdk",
            &base_url,
            &backend.token(ti, "execution"),
            &ti.to_string(),
            &backend.token(ct, "workload"),
            &ct.to_string(),
            &f.a,
            &f.a_uri,
            &f.alias,
        ]);
        assert_eq!(out["asset"]["name"], f.a.as_str(), "{ctx}: {out}");
        assert_eq!(out["asset_by_uri"]["uri"], f.a_uri.as_str(), "{ctx}");
        assert_eq!(
            out["missing_asset"]["error"], "ASSET_NOT_FOUND",
            "{ctx}: {out}"
        );
        assert_eq!(out["by_alias"], 2, "{ctx}");
        let ids: Vec<i64> = out["events"]["asset_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        let [e1, e2, _, e4] = f.events;
        assert_eq!(ids, [e4, e2, e1], "{ctx}");
        assert_eq!(
            out["events"]["asset_events"][1]["created_dagruns"][0]["run_id"],
            f.run_id.as_str(),
            "{ctx}"
        );
        assert_eq!(out["alias_events"]["asset_events"][0]["id"], e4, "{ctx}");
        assert_eq!(
            out["task_value"]["value"],
            json!({"n": [1, 2.5, "é"]}),
            "{ctx}: {out}"
        );
        assert_eq!(
            out["task_missing"]["error"], "TASK_STORE_NOT_FOUND",
            "{ctx}: {out}"
        );
        assert_eq!(
            out["task_cleared"]["error"], "TASK_STORE_NOT_FOUND",
            "{ctx}"
        );
        assert_eq!(
            out["asset_value"]["value"],
            json!({"at": "2024"}),
            "{ctx}: {out}"
        );
        assert_eq!(
            out["asset_missing"]["error"], "ASSET_STORE_NOT_FOUND",
            "{ctx}"
        );
        assert_eq!(
            out["asset_cleared"]["error"], "ASSET_STORE_NOT_FOUND",
            "{ctx}"
        );
        assert_eq!(
            out["hitl_request"]["options"],
            json!(["Yes", "No"]),
            "{ctx}: {out}"
        );
        assert_eq!(
            out["hitl_request"]["assigned_users"],
            json!([{"id": "u1", "name": "Ann"}])
        );
        assert_eq!(out["hitl_pending"]["response_received"], false, "{ctx}");
        assert_eq!(out["hitl_answer"]["chosen_options"], json!(["No"]), "{ctx}");
        assert_eq!(out["hitl_answer"]["params_input"], json!({"p": 2}), "{ctx}");
        assert_eq!(out["ct_connection"]["password"], "pw", "{ctx}: {out}");
        assert_eq!(out["ct_connection"]["schema"], "analytics", "{ctx}: {out}");
        let row = connection_test_row(&backend, ct);
        assert_eq!(row[0].as_deref(), Some("success"), "{ctx}");
        assert_eq!(row[1].as_deref().map(str::len), Some(2000), "{ctx}");
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}
