//! The task-instance lifecycle routes over real HTTP against the `server` binary, on every
//! database it runs on: the embedded SQLite and PostgreSQL schemas, and the SQLite and
//! PostgreSQL databases made by Airflow 3.3.2's own `airflow db migrate`. On the latter two,
//! Airflow's own models (`tests/airflow/lifecycle_side.py`) read what the server wrote:
//! the triggerer's `Trigger.bulk_fetch`, `TaskReschedule`, `TaskInstanceHistory`,
//! `RenderedTaskInstanceFields`, `AssetEvent` and `AssetDagRunQueue`.
//!
//! - `PATCH /state`: `deferred` (a `trigger` row), `awaiting_input` (parked, or resumed when
//!   a human already answered), `up_for_reschedule` (a `task_reschedule` row, counted by the
//!   next `/run`, dated by `/task-reschedules/.../start_date`), `up_for_retry` (archived and
//!   re-keyed; the old id answers 404 on `/state`, 410 on `/heartbeat` and `/rtif`), `success`
//!   with asset outlets and events (asset events, alias rows, the queue of the consumer DAGs;
//!   partition-aware consumers refused), `[state_store] clear_on_success`, `scheduled`/
//!   `queued`/`restarting` (Airflow ends them `failed`), and the `log` rows of each;
//! - `PUT /rtif`: redacted, upserted, pruned to `[core] num_dag_runs_to_retain_rendered_fields`;
//! - `PATCH /rendered-map-index` and `PATCH /skip-downstream`;
//! - refused requests answer 4xx with a JSON `detail` and change nothing.
//!
//! `source /tmp/devenv.sh NAME` (or `.ci/airflow-env`) provides the databases; without them
//! these tests fail, saying so.

mod common;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{ServerProcess, TempDir, run_ok};
use serde_json::{Value, json};
use uuid::Uuid;

const JWT_SECRET: &str = "lifecycle-secret-0123456789abcdef0123";

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is unset: run `source /tmp/devenv.sh NAME` or `.ci/airflow-env` first")
        })
}

/// One database the server runs on, with the configuration its processes share.
struct Db {
    label: &'static str,
    /// `AIRFLOW_HOME` and the data directory, removed on drop.
    _home: TempDir,
    env: Vec<(String, String)>,
    /// sqlx URL of the database, for the test's own reads and fixtures.
    url: String,
    /// Made by `airflow db migrate`: Airflow's models can read it.
    airflow: bool,
}

fn backends(test: &str) -> Vec<Db> {
    let fernet = required("EXECUTION_API_TEST_AIRFLOW_FERNET_KEY");
    let base = |home: &TempDir| {
        vec![
            ("AIRFLOW_HOME".to_owned(), home.path().display().to_string()),
            (
                "AIRFLOW__API_AUTH__JWT_SECRET".to_owned(),
                JWT_SECRET.into(),
            ),
            ("AIRFLOW__CORE__LOAD_EXAMPLES".to_owned(), "False".into()),
            (
                "EXECUTION_API_DATA_DIR".to_owned(),
                home.path().join("data").display().to_string(),
            ),
        ]
    };
    let mut dbs = Vec::new();

    let home = TempDir::new(&format!("{test}-embedded-sqlite"));
    let env = base(&home);
    let url = format!(
        "sqlite://{}",
        home.path().join("data/execution-api.db").display()
    );
    dbs.push(Db {
        label: "embedded SQLite",
        _home: home,
        env,
        url,
        airflow: false,
    });

    let pg = required("EXECUTION_API_TEST_POSTGRES_URL");
    let home = TempDir::new(&format!("{test}-embedded-postgres"));
    let mut env = base(&home);
    env.push(("EXECUTION_API_DATABASE_URL".into(), pg.clone()));
    dbs.push(Db {
        label: "embedded PostgreSQL",
        _home: home,
        env,
        url: pg,
        airflow: false,
    });

    let template = required("EXECUTION_API_TEST_AIRFLOW_SQLITE");
    let home = TempDir::new(&format!("{test}-airflow-sqlite"));
    let copy = home.path().join("airflow.db");
    std::fs::copy(&template, &copy).expect("copy the Airflow database");
    let mut env = base(&home);
    env.push((
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN".into(),
        format!("sqlite:///{}", copy.display()),
    ));
    env.push(("AIRFLOW__CORE__FERNET_KEY".into(), fernet.clone()));
    dbs.push(Db {
        label: "airflow SQLite",
        _home: home,
        env,
        url: format!("sqlite://{}", copy.display()),
        airflow: true,
    });

    let pg = required("EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL");
    let home = TempDir::new(&format!("{test}-airflow-postgres"));
    let mut env = base(&home);
    env.push((
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN".into(),
        pg.replacen("postgres://", "postgresql+psycopg2://", 1),
    ));
    env.push(("AIRFLOW__CORE__FERNET_KEY".into(), fernet));
    dbs.push(Db {
        label: "airflow PostgreSQL",
        _home: home,
        env,
        url: pg,
        airflow: true,
    });
    dbs
}

/// A unique id for DAGs and runs (the PostgreSQL databases are shared).
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12])
}

impl Db {
    fn env_refs<'a>(&'a self, extra: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra);
        env
    }

    fn cli(&self, args: &[&str]) -> String {
        run_ok(args, &self.env_refs(&[])).trim().to_owned()
    }

    fn serve(&self, extra: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::start(&[], &self.env_refs(extra))
    }

    /// `server ti create`: a queued task instance in run `run_id` (created if new).
    fn create_ti(&self, dag_id: &str, task_id: &str, run_id: &str) -> Uuid {
        let out = self.cli(&[
            "ti",
            "create",
            "--dag-id",
            dag_id,
            "--task-id",
            task_id,
            "--run-id",
            run_id,
        ]);
        out.parse()
            .unwrap_or_else(|e| panic!("`ti create` printed {out:?}: {e}"))
    }

    fn token(&self, id: Uuid) -> String {
        self.cli(&[
            "token",
            "mint",
            "--sub",
            &id.to_string(),
            "--scope",
            "execution",
        ])
    }

    /// Runs statements on the database (fixtures a scheduler or a DAG file would write).
    fn exec(&self, statements: &[&str]) {
        let url = self.url.clone();
        support::runtime().block_on(async move {
            let mut conn = support::connect(&url).await;
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        });
    }

    /// Rows of a query whose columns are all text (`CAST(... AS TEXT)`).
    fn rows(&self, query: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row as _;
        let url = self.url.clone();
        support::runtime().block_on(async move {
            let mut conn = support::connect(&url).await;
            let rows = sqlx::query(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_all(&mut conn)
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

    fn one(&self, query: &str) -> Vec<Option<String>> {
        let mut rows = self.rows(query);
        assert_eq!(rows.len(), 1, "{}: {query}: {rows:?}", self.label);
        rows.remove(0)
    }

    /// A task instance's state.
    fn state(&self, dag_id: &str, task_id: &str) -> Option<String> {
        self.one(&format!(
            "SELECT state FROM task_instance WHERE dag_id = '{dag_id}' AND task_id = '{task_id}'"
        ))[0]
            .clone()
    }

    /// The `log` events of a DAG, oldest first.
    fn log_events(&self, dag_id: &str) -> Vec<String> {
        self.rows(&format!(
            "SELECT event FROM log WHERE dag_id = '{dag_id}' ORDER BY id"
        ))
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
    }

    /// Airflow's own CLI on this database (its DAGs folder: `tests/airflow/lifecycle_dags`).
    fn airflow_cli(&self, args: &[&str]) -> String {
        let venv = required("EXECUTION_API_TEST_AIRFLOW_VENV");
        // Two `airflow dags reserialize` on one database at once race to
        // insert the same `dag` rows (Airflow's own unique violation).
        static RESERIALIZE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = (args.starts_with(&["dags", "reserialize"]))
            .then(|| RESERIALIZE.lock().unwrap_or_else(|e| e.into_inner()));
        let dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/lifecycle_dags");
        let output = Command::new(Path::new(&venv).join("bin/airflow"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AIRFLOW__CORE__DAGS_FOLDER", &dags)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run airflow");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{}: airflow {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
            self.label,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `lifecycle_side.py` with Airflow's models, parsed.
    fn airflow_reads(&self, args: &[&str]) -> Value {
        let venv = required("EXECUTION_API_TEST_AIRFLOW_VENV");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/lifecycle_side.py");
        let output = Command::new(Path::new(&venv).join("bin/python"))
            .arg(&script)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run python");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: lifecycle_side.py {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
            self.label,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("lifecycle_side.py printed {stdout:?}: {e}"))
    }
}

/// A started server and a running task instance on it.
struct Running {
    server: ServerProcess,
    id: Uuid,
    token: String,
}

const RUN_BODY: &str = r#"{"state":"running","hostname":"worker-1","unixname":"airflow","pid":4242,"start_date":"2026-01-01T10:00:00Z"}"#;

impl Running {
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> common::Response {
        common::http(
            self.server.addr,
            method,
            &format!("/execution{path}"),
            Some(&self.token),
            body,
        )
    }

    fn ti(&self, method: &str, route: &str, body: Option<&str>) -> common::Response {
        self.call(
            method,
            &format!("/task-instances/{}/{route}", self.id),
            body,
        )
    }
}

/// Starts the task instance (`/run`) on `server`.
fn start(db: &Db, server: ServerProcess, id: Uuid) -> Running {
    let running = Running {
        server,
        id,
        token: db.token(id),
    };
    let run = running.ti("PATCH", "run", Some(RUN_BODY));
    assert_eq!(run.status, 200, "{}: /run: {}", db.label, run.body);
    running
}

/// What the scheduler does before the next try: queue the task instance again.
fn requeue(db: &Db, dag_id: &str, task_id: &str) {
    db.exec(&[&format!(
        "UPDATE task_instance SET state = 'queued' WHERE dag_id = '{dag_id}' AND task_id = '{task_id}'"
    )]);
}

#[test]
fn deferred_writes_a_trigger_the_triggerer_loads() {
    for db in backends("deferred") {
        let dag = unique("defer");
        let run_id = "manual__defer";
        let id = db.create_ti(&dag, "wait", run_id);
        let ti = start(&db, db.serve(&[]), id);
        // As SDK 1.3.2 sends it: serde-serialized kwargs, an ISO 8601 timeout.
        let body = json!({
            "state": "deferred",
            "classpath": "airflow.providers.standard.triggers.temporal.DateTimeTrigger",
            "trigger_kwargs": {
                "moment": {"__classname__": "pendulum.datetime.DateTime", "__version__": 2,
                           "__data__": {"timestamp": 1767261600.0,
                                        "tz": {"__classname__": "builtins.tuple", "__version__": 1,
                                               "__data__": ["UTC", "pendulum.tz.timezone.Timezone", 1, true]}}},
                "end_from_trigger": false
            },
            "trigger_timeout": "PT1H",
            "next_method": "execute_complete",
            "next_kwargs": {"n": 1},
            "rendered_map_index": "ignored"
        })
        .to_string();
        let resp = ti.ti("PATCH", "state", Some(&body));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        let row = db.one(&format!(
            "SELECT t.classpath, t.kwargs, CAST(t.triggerer_id AS TEXT), t.queue, \
             ti.state, ti.next_method, CAST(ti.next_kwargs AS TEXT), \
             CAST(ti.trigger_timeout AS TEXT), ti.rendered_map_index, CAST(ti.end_date AS TEXT) \
             FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id WHERE ti.dag_id = '{dag}'"
        ));
        assert_eq!(
            row[0].as_deref(),
            Some("airflow.providers.standard.triggers.temporal.DateTimeTrigger")
        );
        // `json.dumps` of the dict: plaintext, which the triggerer reads as such.
        let kwargs = row[1].clone().unwrap();
        assert!(
            kwargs.starts_with('{') && kwargs.contains("\"end_from_trigger\": false"),
            "{kwargs}"
        );
        assert_eq!(row[2], None);
        assert_eq!(row[3], None);
        assert_eq!(row[4].as_deref(), Some("deferred"));
        assert_eq!(row[5].as_deref(), Some("execute_complete"));
        assert_eq!(
            serde_json::from_str::<Value>(row[6].as_deref().unwrap()).unwrap(),
            json!({"n": 1})
        );
        assert!(row[7].is_some(), "{}: no trigger_timeout", db.label);
        // Airflow throws the base update away for a deferral.
        assert_eq!(row[8], None);
        assert_eq!(row[9], None);
        assert_eq!(db.log_events(&dag), ["running", "deferred"]);
        // A repeated request: 200, nothing more written.
        let again = ti.ti("PATCH", "state", Some(&body));
        assert_eq!(again.status, 200, "{}: {}", db.label, again.body);
        assert_eq!(again.body, "");
        assert_eq!(
            db.one(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM trigger t JOIN task_instance ti \
                 ON ti.trigger_id = t.id WHERE ti.dag_id = '{dag}'"
            ))[0]
                .as_deref(),
            Some("1")
        );
        if db.airflow {
            let trigger = db.airflow_reads(&["trigger", &id.to_string()]);
            assert_eq!(
                trigger["classpath"],
                "airflow.providers.standard.triggers.temporal.DateTimeTrigger"
            );
            assert_eq!(trigger["task_instance"], id.to_string());
            assert_eq!(trigger["ti_state"], "deferred");
            assert_eq!(trigger["next_kwargs"], json!({"n": 1}));
            // `Trigger.kwargs` decodes the serde form: the datetime comes back a datetime.
            assert_eq!(trigger["kwargs"]["end_from_trigger"], false, "{trigger}");
            assert_eq!(
                trigger["kwargs"]["moment"], "2026-01-01T10:00:00+00:00",
                "{trigger}"
            );
            assert_eq!(trigger["kwarg_types"]["moment"], "DateTime", "{trigger}");
            assert!(trigger["trigger_timeout"].is_string(), "{trigger}");
        }
        // The triggerer fired; the scheduler queued it; the worker resumes.
        requeue(&db, &dag, "wait");
        let resumed = ti.ti("PATCH", "run", Some(RUN_BODY));
        assert_eq!(resumed.status, 200, "{}: {}", db.label, resumed.body);
        let context = resumed.json();
        assert_eq!(context["next_method"], "execute_complete");
        assert_eq!(context["next_kwargs"], json!({"n": 1}));
        assert_eq!(context["xcom_keys_to_clear"], json!([]));
    }
}

#[test]
fn awaiting_input_parks_or_resumes_an_answered_request() {
    for db in backends("awaiting") {
        let server = db.serve(&[]);
        let dag = unique("hitl");
        let parked = db.create_ti(&dag, "parked", "manual__hitl");
        let answered = db.create_ti(&dag, "answered", "manual__hitl");
        let a = start(&db, server, parked);
        let body = r#"{"state":"awaiting_input","timeout":3600,"next_method":"execute_complete","next_kwargs":{"k":"v"}}"#;
        let resp = a.ti("PATCH", "state", Some(body));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        let row = db.one(&format!(
            "SELECT state, CAST(trigger_id AS TEXT), next_method, CAST(next_kwargs AS TEXT), \
             CAST(trigger_timeout AS TEXT) FROM task_instance WHERE dag_id = '{dag}' \
             AND task_id = 'parked'"
        ));
        assert_eq!(row[0].as_deref(), Some("awaiting_input"));
        assert_eq!(row[1], None);
        assert_eq!(row[2].as_deref(), Some("execute_complete"));
        assert_eq!(
            serde_json::from_str::<Value>(row[3].as_deref().unwrap()).unwrap(),
            json!({"k": "v"})
        );
        assert!(row[4].is_some());

        // The race: a human answered before the worker parked the task.
        let b = Running {
            id: answered,
            token: db.token(answered),
            server: a.server,
        };
        assert_eq!(b.ti("PATCH", "run", Some(RUN_BODY)).status, 200);
        let ti_id = if db.url.starts_with("postgres") {
            format!("'{answered}'")
        } else {
            format!("'{}'", answered.simple())
        };
        db.exec(&[&format!(
            "INSERT INTO hitl_detail (ti_id, options, subject, params, created_at, responded_at, \
             responded_by, chosen_options, params_input) VALUES ({ti_id}, '[\"yes\", \"no\"]', \
             'Go?', '{{}}', '2026-01-01 10:00:00', '2026-01-02 03:04:05.123456', \
             '{{\"id\": \"7\", \"name\": \"ann\"}}', '[\"yes\"]', '{{}}')"
        )]);
        let resp = b.ti("PATCH", "state", Some(body));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        let row = db.one(&format!(
            "SELECT state, next_method, CAST(next_kwargs AS TEXT), \
             CAST(scheduled_dttm AS TEXT) FROM task_instance WHERE dag_id = '{dag}' \
             AND task_id = 'answered'"
        ));
        assert_eq!(row[0].as_deref(), Some("scheduled"), "{}", db.label);
        assert_eq!(row[1].as_deref(), Some("execute_complete"));
        let kwargs: Value = serde_json::from_str(row[2].as_deref().unwrap()).unwrap();
        assert_eq!(
            kwargs,
            json!({"k": "v", "event": {
                "chosen_options": ["yes"], "params_input": {},
                "responded_at": {"__classname__": "datetime.datetime", "__version__": 2,
                    "__data__": {"timestamp": 1767323045.123456, "tz": {
                        "__classname__": "builtins.tuple", "__version__": 1,
                        "__data__": ["UTC", "pendulum.tz.timezone.Timezone", 1, true]}}},
                "responded_by_user": {"id": "7", "name": "ann"}, "timedout": false}}),
            "{}",
            db.label
        );
        assert!(row[3].is_some());
        assert_eq!(
            db.log_events(&dag),
            ["running", "awaiting_input", "running", "scheduled"]
        );
    }
}

#[test]
fn reschedules_are_recorded_counted_and_dated() {
    for db in backends("reschedule") {
        let dag = unique("sensor");
        let id = db.create_ti(&dag, "poke", "manual__sensor");
        let ti = start(&db, db.serve(&[]), id);
        let none = ti.call(
            "GET",
            &format!("/task-reschedules/{id}/start_date?try_number=1"),
            None,
        );
        assert_eq!(none.status, 200, "{}", none.body);
        assert_eq!(none.json(), Value::Null);
        let body = r#"{"state":"up_for_reschedule","reschedule_date":"2026-01-01T10:05:00Z","end_date":"2026-01-01T10:00:03Z"}"#;
        let resp = ti.ti("PATCH", "state", Some(body));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        assert_eq!(db.state(&dag, "poke").as_deref(), Some("up_for_reschedule"));
        let first = ti.call("GET", &format!("/task-reschedules/{id}/start_date"), None);
        assert_eq!(first.status, 200, "{}", first.body);
        let first_date = first.json();
        assert!(
            first_date.as_str().is_some_and(|d| d.ends_with('Z')),
            "{first_date}"
        );
        // Another id's token is refused (`ti:self`).
        let other = common::http(
            ti.server.addr,
            "GET",
            &format!("/execution/task-reschedules/{}/start_date", Uuid::new_v4()),
            Some(&ti.token),
            None,
        );
        assert_eq!(other.status, 403, "{}", other.body);
        requeue(&db, &dag, "poke");
        let run = ti.ti("PATCH", "run", Some(RUN_BODY));
        assert_eq!(run.status, 200, "{}", run.body);
        assert_eq!(run.json()["task_reschedule_count"], 1);
        let resp = ti.ti("PATCH", "state", Some(body));
        assert_eq!(resp.status, 204, "{}", resp.body);
        // Still the first reschedule's start date.
        let again = ti.call("GET", &format!("/task-reschedules/{id}/start_date"), None);
        assert_eq!(again.json(), first_date);
        assert_eq!(
            db.log_events(&dag),
            [
                "running",
                "up_for_reschedule",
                "running",
                "up_for_reschedule"
            ]
        );
        if db.airflow {
            let rows = db.airflow_reads(&["reschedules", &id.to_string()]);
            let rows = rows.as_array().unwrap();
            assert_eq!(rows.len(), 2, "{rows:?}");
            assert_eq!(rows[0]["reschedule_date"], "2026-01-01T10:05:00+00:00");
            assert_eq!(rows[0]["end_date"], "2026-01-01T10:00:03+00:00");
            assert!(rows[0]["duration"].as_i64().unwrap() < 0, "{rows:?}");
        }
    }
}

#[test]
fn retry_archives_the_try_and_the_old_id_is_gone() {
    for db in backends("retry") {
        let dag = unique("retry");
        let id = db.create_ti(&dag, "flaky", "manual__retry");
        let ti = start(&db, db.serve(&[]), id);
        let body = r#"{"state":"up_for_retry","end_date":"2026-01-01T10:00:02.5Z","rendered_map_index":"r","retry_delay_seconds":30,"retry_reason":"flaky"}"#;
        let resp = ti.ti("PATCH", "state", Some(body));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        let live = db.one(&format!(
            "SELECT CAST(id AS TEXT), state, rendered_map_index, CAST(duration AS TEXT) \
             FROM task_instance WHERE dag_id = '{dag}'"
        ));
        let new_id: Uuid = live[0].as_deref().unwrap().parse().unwrap();
        assert_ne!(new_id, id);
        assert_eq!(live[1].as_deref(), Some("up_for_retry"));
        assert_eq!(live[2].as_deref(), Some("r"));
        assert_eq!(
            live[3].as_deref().map(|d| d.parse::<f64>().unwrap()),
            Some(2.5)
        );
        // The old id: 404 on /state, 410 on /heartbeat and /rtif.
        let state = ti.ti("PATCH", "state", Some(body));
        assert_eq!(state.status, 404, "{}", state.body);
        assert_eq!(
            state.json(),
            json!({"detail": {"reason": "not_found", "message": "Task Instance not found"}})
        );
        let beat = ti.ti(
            "PUT",
            "heartbeat",
            Some(r#"{"hostname":"worker-1","pid":4242}"#),
        );
        assert_eq!(beat.status, 410, "{}", beat.body);
        let rtif = ti.ti("PUT", "rtif", Some(r#"{"bash_command":"echo"}"#));
        assert_eq!(rtif.status, 410, "{}", rtif.body);
        assert_eq!(
            rtif.json()["detail"]["message"],
            "Task Instance not found, it may have been moved to the Task Instance History table"
        );
        assert_eq!(db.log_events(&dag), ["running", "up_for_retry"]);
        if db.airflow {
            let read = db.airflow_reads(&["history", &dag, "manual__retry", "flaky"]);
            assert_eq!(read["live"]["id"], new_id.to_string());
            assert_eq!(read["live"]["state"], "up_for_retry");
            assert_eq!(read["live"]["retry_delay_override"], 30.0);
            let history = read["history"].as_array().unwrap();
            assert_eq!(history.len(), 1, "{read}");
            assert_eq!(history[0]["task_instance_id"], id.to_string());
            assert_eq!(history[0]["state"], "failed");
            assert_eq!(history[0]["try_number"], 1);
            assert_eq!(history[0]["duration"], 2.5);
            assert_eq!(history[0]["retry_reason"], "flaky");
            assert_eq!(history[0]["hostname"], "worker-1");
        }
    }
}

/// An active asset, and DAG `consumer` scheduled on it (unpaused).
fn asset_fixture(db: &Db, name: &str, uri: &str, consumer: &str, partitioned: bool) {
    db.create_ti(consumer, "c", &format!("manual__{consumer}"));
    let flag = if partitioned { "true" } else { "false" };
    let flag = if db.url.starts_with("sqlite") {
        if partitioned { "1" } else { "0" }
    } else {
        flag
    };
    db.exec(&[
        &format!(
            "INSERT INTO asset (name, uri, \"group\", extra, created_at, updated_at) VALUES \
             ('{name}', '{uri}', 'asset', '{{}}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        ),
        &format!("INSERT INTO asset_active (name, uri) VALUES ('{name}', '{uri}')"),
        &format!(
            "INSERT INTO dag_schedule_asset_reference (asset_id, dag_id, allow_global_producers, \
             created_at, updated_at) SELECT id, '{consumer}', {t}, '2026-01-01 00:00:00', \
             '2026-01-01 00:00:00' FROM asset WHERE name = '{name}'",
            t = if db.url.starts_with("sqlite") {
                "1"
            } else {
                "true"
            }
        ),
        &format!("UPDATE dag SET timetable_partitioned = {flag} WHERE dag_id = '{consumer}'"),
    ]);
}

#[test]
fn success_records_asset_events_and_queues_the_consumers() {
    for db in backends("assets") {
        let dag = unique("producer");
        let consumer = unique("consumer");
        let asset = unique("orders");
        let uri = format!("s3://bucket/{asset}");
        asset_fixture(&db, &asset, &uri, &consumer, false);
        let alias_asset = unique("dyn");
        let alias = unique("alias");
        let id = db.create_ti(&dag, "emit", "manual__assets");
        let ti = start(&db, db.serve(&[]), id);
        let body = json!({
            "state": "success",
            "end_date": "2026-01-01T10:00:01Z",
            "task_outlets": [
                {"name": asset, "uri": uri, "type": "Asset"},
                {"name": "not-active", "uri": "s3://nowhere", "type": "Asset"},
                {"name": alias, "type": "AssetAlias"}
            ],
            "outlet_events": [
                {"dest_asset_key": {"name": asset, "uri": uri}, "extra": {"rows": 3}},
                {"dest_asset_key": {"name": alias_asset, "uri": format!("s3://dyn/{alias_asset}")},
                 "source_alias_name": alias, "extra": {"from": "alias"}, "dest_asset_extra": {}}
            ],
            "rendered_map_index": null
        })
        .to_string();
        let resp = ti.ti("PATCH", "state", Some(&body));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        assert_eq!(db.state(&dag, "emit").as_deref(), Some("success"));
        let events = db.rows(&format!(
            "SELECT a.name, CAST(e.extra AS TEXT), e.source_task_id, CAST(e.source_map_index AS TEXT) \
             FROM asset_event e JOIN asset a ON a.id = e.asset_id \
             WHERE e.source_dag_id = '{dag}' ORDER BY e.id"
        ));
        assert_eq!(events.len(), 2, "{}: {events:?}", db.label);
        assert_eq!(events[0][0].as_deref(), Some(asset.as_str()));
        assert_eq!(
            serde_json::from_str::<Value>(events[0][1].as_deref().unwrap()).unwrap(),
            json!({"rows": 3})
        );
        assert_eq!(events[0][2].as_deref(), Some("emit"));
        assert_eq!(events[0][3].as_deref(), Some("-1"));
        assert_eq!(events[1][0].as_deref(), Some(alias_asset.as_str()));
        // The alias and its link to the asset it resolved to are new rows.
        let linked = db.one(&format!(
            "SELECT a.name, al.\"group\" FROM asset_alias al \
             JOIN asset_alias_asset l ON l.alias_id = al.id JOIN asset a ON a.id = l.asset_id \
             WHERE al.name = '{alias}'"
        ));
        assert_eq!(linked[0].as_deref(), Some(alias_asset.as_str()));
        let queued = db.rows(&format!(
            "SELECT target_dag_id FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id \
             WHERE a.name = '{asset}'"
        ));
        assert_eq!(queued, vec![vec![Some(consumer.clone())]], "{}", db.label);
        if db.airflow {
            let read = db.airflow_reads(&["asset-events", &dag, "manual__assets"]);
            assert_eq!(read["events"][0]["asset"], json!([asset, uri]));
            assert_eq!(read["events"][0]["extra"], json!({"rows": 3}));
            assert_eq!(read["events"][0]["aliases"], json!([]));
            assert_eq!(read["events"][1]["aliases"], json!([alias]));
            assert_eq!(read["events"][1]["extra"], json!({"from": "alias"}));
            assert_eq!(read["queued"], json!([[asset, consumer]]));
        }
    }
}

#[test]
fn partition_aware_consumers_and_bad_events_are_refused_unchanged() {
    for db in backends("partitions") {
        let dag = unique("producer");
        let consumer = unique("pconsumer");
        let asset = unique("parts");
        let uri = format!("s3://bucket/{asset}");
        asset_fixture(&db, &asset, &uri, &consumer, true);
        let id = db.create_ti(&dag, "emit", "manual__parts");
        let ti = start(&db, db.serve(&[]), id);
        let with_key = |pk: Value| {
            json!({
                "state": "success",
                "end_date": "2026-01-01T10:00:01Z",
                "task_outlets": [{"name": asset, "uri": uri, "type": "Asset"}],
                "outlet_events": [{"dest_asset_key": {"name": asset, "uri": uri},
                                   "extra": {}, "partition_key": pk}]
            })
            .to_string()
        };
        // A partition key for a partition-aware consumer needs its partition mapper (Python).
        let resp = ti.ti("PATCH", "state", Some(&with_key(json!("2026-01-01"))));
        assert_eq!(resp.status, 422, "{}: {}", db.label, resp.body);
        assert_eq!(
            resp.json()["detail"]["reason"],
            "partition_mapper_unsupported"
        );
        assert!(
            resp.json()["detail"]["message"]
                .as_str()
                .unwrap()
                .contains(&consumer)
        );
        // Blank keys are Airflow's 422 `invalid_partition_key`.
        let resp = ti.ti("PATCH", "state", Some(&with_key(json!("  "))));
        assert_eq!(resp.status, 422, "{}", resp.body);
        assert_eq!(
            resp.json()["detail"],
            json!({"reason": "invalid_partition_key",
                   "message": "partition_key in outlet event must not be empty or whitespace-only; got '  '."})
        );
        // An event without `dest_asset_key`.
        let bad = r#"{"state":"success","end_date":"2026-01-01T10:00:01Z","outlet_events":[{"extra":{}}]}"#;
        let resp = ti.ti("PATCH", "state", Some(bad));
        assert_eq!(resp.status, 422, "{}", resp.body);
        // Unknown fields, a bad state, a bad date: 422 with a JSON detail.
        for body in [
            r#"{"state":"deferred","classpath":"x","next_method":"m","bogus":1}"#,
            r#"{"state":"running"}"#,
            r#"{"state":"failed","end_date":"yesterday"}"#,
            r#"{"state":"deferred","classpath":"x","next_method":"m","trigger_timeout":"soon"}"#,
            r#"["success"]"#,
        ] {
            let resp = ti.ti("PATCH", "state", Some(body));
            assert_eq!(resp.status, 422, "{body}: {}", resp.body);
            assert!(resp.json().get("detail").is_some(), "{}", resp.body);
        }
        // Nothing of it was written.
        assert_eq!(db.state(&dag, "emit").as_deref(), Some("running"));
        assert_eq!(
            db.one(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM asset_event WHERE source_dag_id = '{dag}'"
            ))[0]
                .as_deref(),
            Some("0")
        );
        assert_eq!(db.log_events(&dag), ["running"]);
        // Without a partition key Airflow only logs the miss; the run is not queued.
        let none = with_key(Value::Null);
        let resp = ti.ti("PATCH", "state", Some(&none));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        assert_eq!(
            db.log_events(&dag),
            ["running", "missing partition key", "success"]
        );
        assert_eq!(
            db.rows(&format!(
                "SELECT target_dag_id FROM asset_dag_run_queue WHERE target_dag_id = '{consumer}'"
            )),
            Vec::<Vec<Option<String>>>::new()
        );
    }
}

#[test]
fn success_clears_the_task_state_store_when_configured() {
    for db in backends("clear") {
        let dag = unique("stateful");
        let id = db.create_ti(&dag, "t", "manual__clear");
        let ti = start(
            &db,
            db.serve(&[("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")]),
            id,
        );
        db.exec(&[&format!(
            "INSERT INTO task_state_store (dag_run_id, task_id, map_index, key, dag_id, run_id, \
             value, updated_at) SELECT id, 't', -1, 'cursor', '{dag}', 'manual__clear', '1', \
             '2026-01-01 00:00:00' FROM dag_run WHERE dag_id = '{dag}'"
        )]);
        let resp = ti.ti(
            "PATCH",
            "state",
            Some(r#"{"state":"success","end_date":"2026-01-01T10:00:01Z"}"#),
        );
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        assert_eq!(
            db.one(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM task_state_store WHERE dag_id = '{dag}'"
            ))[0]
                .as_deref(),
            Some("0")
        );
    }
}

#[test]
fn intermediate_states_end_the_task_failed() {
    for db in backends("intermediate") {
        let dag = unique("odd");
        let id = db.create_ti(&dag, "t", "manual__odd");
        let ti = start(&db, db.serve(&[]), id);
        let resp = ti.ti("PATCH", "state", Some(r#"{"state":"queued"}"#));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        let row = db.one(&format!(
            "SELECT state, CAST(end_date AS TEXT) FROM task_instance WHERE dag_id = '{dag}'"
        ));
        assert_eq!(row[0].as_deref(), Some("failed"));
        assert!(row[1].is_some());
        assert_eq!(db.log_events(&dag), ["running", "failed"]);
        let again = ti.ti("PATCH", "state", Some(r#"{"state":"queued"}"#));
        assert_eq!(again.status, 409, "{}", again.body);
        assert_eq!(again.json()["detail"]["previous_state"], "failed");
    }
}

#[test]
fn rendered_fields_are_redacted_upserted_and_pruned() {
    for db in backends("rtif") {
        let server = db.serve(&[("AIRFLOW__CORE__NUM_DAG_RUNS_TO_RETAIN_RENDERED_FIELDS", "1")]);
        let dag = unique("render");
        let old = db.create_ti(&dag, "t", "manual__1");
        let old_ti = start(&db, server, old);
        let fields = r#"{"bash_command":"echo hi","env":{"DB_PASSWORD":"hunter2","HOME":"/h"},"api_key":["a",1]}"#;
        let resp = old_ti.ti("PUT", "rtif", Some(fields));
        assert_eq!(resp.status, 201, "{}: {}", db.label, resp.body);
        assert_eq!(
            resp.json(),
            json!({"message": "Rendered task instance fields successfully set"})
        );
        let stored = |run: &str| {
            db.rows(&format!(
                "SELECT CAST(rendered_fields AS TEXT), CAST(k8s_pod_yaml AS TEXT) \
                 FROM rendered_task_instance_fields WHERE dag_id = '{dag}' AND run_id = '{run}'"
            ))
        };
        let row = &stored("manual__1")[0];
        assert_eq!(
            serde_json::from_str::<Value>(row[0].as_deref().unwrap()).unwrap(),
            json!({"bash_command": "echo hi", "env": {"DB_PASSWORD": "***", "HOME": "/h"},
                   "api_key": ["***", 1]})
        );
        assert_eq!(row[1].as_deref(), Some("null"));
        // An upsert: the second PUT replaces the first.
        let resp = old_ti.ti("PUT", "rtif", Some(r#"{"bash_command":"echo again"}"#));
        assert_eq!(resp.status, 201, "{}", resp.body);
        assert_eq!(
            serde_json::from_str::<Value>(stored("manual__1")[0][0].as_deref().unwrap()).unwrap(),
            json!({"bash_command": "echo again"})
        );
        if db.airflow {
            let read = db.airflow_reads(&["rtif", &dag, "manual__1", "t"]);
            assert_eq!(read, json!({"bash_command": "echo again"}));
        }
        // Empty, not an object, unknown id: 4xx, nothing written.
        for (body, status) in [("{}", 422), ("[1]", 422), ("\"x\"", 422)] {
            let resp = old_ti.ti("PUT", "rtif", Some(body));
            assert_eq!(resp.status, status, "{body}: {}", resp.body);
        }
        // A newer run's fields prune the older run's (keep 1 run).
        let new = db.create_ti(&dag, "t", "manual__2");
        let new_ti = Running {
            id: new,
            token: db.token(new),
            server: old_ti.server,
        };
        let resp = new_ti.ti("PUT", "rtif", Some(r#"{"bash_command":"echo 2"}"#));
        assert_eq!(resp.status, 201, "{}", resp.body);
        assert_eq!(stored("manual__1").len(), 0, "{}: not pruned", db.label);
        assert_eq!(stored("manual__2").len(), 1);
        // The older run's task writes again: 201, and its row is pruned at once, as
        // Airflow's merge and then delete_old_records leave it; the newer run's stays.
        let resp = common::http(
            new_ti.server.addr,
            "PUT",
            &format!("/execution/task-instances/{old}/rtif"),
            Some(&db.token(old)),
            Some(r#"{"bash_command":"echo late"}"#),
        );
        assert_eq!(resp.status, 201, "{}", resp.body);
        assert_eq!(
            stored("manual__1").len(),
            0,
            "{}: kept a pruned run",
            db.label
        );
        assert_eq!(stored("manual__2").len(), 1);
        let missing = Uuid::new_v4();
        let resp = common::http(
            new_ti.server.addr,
            "PUT",
            &format!("/execution/task-instances/{missing}/rtif"),
            Some(&db.token(missing)),
            Some(r#"{"a":"b"}"#),
        );
        assert_eq!(resp.status, 404, "{}", resp.body);
    }
}

#[test]
fn rendered_map_index_and_skip_downstream() {
    for db in backends("skip") {
        let dag = unique("branch");
        let run = "manual__branch";
        let id = db.create_ti(&dag, "choose", run);
        for task in ["left", "right", "busy", "done"] {
            db.create_ti(&dag, task, run);
        }
        let ti = start(&db, db.serve(&[]), id);
        let resp = ti.ti("PATCH", "rendered-map-index", Some(r#""label one""#));
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        assert_eq!(
            db.one(&format!(
                "SELECT rendered_map_index FROM task_instance WHERE dag_id = '{dag}' \
                 AND task_id = 'choose'"
            ))[0]
                .as_deref(),
            Some("label one")
        );
        let empty = ti.ti("PATCH", "rendered-map-index", Some(r#""""#));
        assert_eq!(empty.status, 422, "{}", empty.body);
        assert_eq!(
            empty.json(),
            json!({"detail": "rendered_map_index cannot be empty"})
        );
        let not_string = ti.ti("PATCH", "rendered-map-index", Some("{}"));
        assert_eq!(not_string.status, 422, "{}", not_string.body);
        let missing = Uuid::new_v4();
        let resp = common::http(
            ti.server.addr,
            "PATCH",
            &format!("/execution/task-instances/{missing}/rendered-map-index"),
            Some(&db.token(missing)),
            Some(r#""x""#),
        );
        assert_eq!(resp.status, 404, "{}", resp.body);
        assert_eq!(resp.json(), json!({"detail": "Task Instance not found"}));

        db.exec(&[
            &format!("UPDATE task_instance SET state = 'running' WHERE dag_id = '{dag}' AND task_id = 'busy'"),
            &format!("UPDATE task_instance SET state = 'success' WHERE dag_id = '{dag}' AND task_id = 'done'"),
        ]);
        let resp = ti.ti(
            "PATCH",
            "skip-downstream",
            Some(r#"{"tasks":["left",["right",-1],"busy","done",["nope",3]]}"#),
        );
        assert_eq!(resp.status, 204, "{}", resp.body);
        for (task, state) in [
            ("left", "skipped"),
            ("right", "skipped"),
            ("busy", "running"),
            ("done", "success"),
            ("choose", "running"),
        ] {
            assert_eq!(
                db.state(&dag, task).as_deref(),
                Some(state),
                "{}: {task}",
                db.label
            );
        }
        let bad = ti.ti("PATCH", "skip-downstream", Some(r#"{"tasks":[1]}"#));
        assert_eq!(bad.status, 422, "{}", bad.body);
        let resp = common::http(
            ti.server.addr,
            "PATCH",
            &format!("/execution/task-instances/{missing}/skip-downstream"),
            Some(&db.token(missing)),
            Some(r#"{"tasks":[]}"#),
        );
        assert_eq!(resp.status, 404, "{}", resp.body);
        assert_eq!(
            resp.json(),
            json!({"detail": {"reason": "not_found", "message": "Task Instance not found"}})
        );
        // Neither route writes a log row.
        assert_eq!(db.log_events(&dag), ["running"]);
    }
}

#[test]
fn failed_with_fail_fast_stops_the_rest_of_the_run() {
    for db in backends("failfast") {
        let run_id = unique("manual__ff");
        let dag = if db.airflow {
            // A DAG run Airflow made from a DAG it serialized: `fail_fast`, a teardown task.
            db.airflow_cli(&["dags", "reserialize"]);
            db.airflow_cli(&[
                "dags",
                "trigger",
                "lifecycle_fail_fast",
                "--run-id",
                &run_id,
            ]);
            "lifecycle_fail_fast".to_owned()
        } else {
            // No serialized DAG: Airflow's `get_dag_for_run` finds none and stops nothing.
            let dag = unique("ff");
            for task in ["fails", "sibling", "later", "done", "cleanup"] {
                db.create_ti(&dag, task, &run_id);
            }
            let yes = if db.url.starts_with("sqlite") {
                "1"
            } else {
                "true"
            };
            db.exec(&[&format!(
                "UPDATE dag SET fail_fast = {yes} WHERE dag_id = '{dag}'"
            )]);
            dag
        };
        let scoped =
            |task: &str| format!("dag_id = '{dag}' AND run_id = '{run_id}' AND task_id = '{task}'");
        db.exec(&[
            &format!(
                "UPDATE task_instance SET state = 'queued', try_number = 1 WHERE {}",
                scoped("fails")
            ),
            &format!(
                "UPDATE task_instance SET state = 'running' WHERE {}",
                scoped("sibling")
            ),
            &format!(
                "UPDATE task_instance SET state = 'success' WHERE {}",
                scoped("done")
            ),
            &format!(
                "UPDATE task_instance SET state = NULL WHERE {}",
                scoped("later")
            ),
            &format!(
                "UPDATE task_instance SET state = NULL WHERE {}",
                scoped("cleanup")
            ),
        ]);
        let id: Uuid = db.one(&format!(
            "SELECT CAST(id AS TEXT) FROM task_instance WHERE {}",
            scoped("fails")
        ))[0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        let ti = start(&db, db.serve(&[]), id);
        let resp = ti.ti(
            "PATCH",
            "state",
            Some(
                r#"{"state":"failed","end_date":"2026-01-01T10:00:01Z","rendered_map_index":null}"#,
            ),
        );
        assert_eq!(resp.status, 204, "{}: {}", db.label, resp.body);
        let state = |task: &str| {
            db.one(&format!(
                "SELECT state FROM task_instance WHERE {}",
                scoped(task)
            ))[0]
                .clone()
        };
        assert_eq!(state("fails").as_deref(), Some("failed"));
        assert_eq!(state("done").as_deref(), Some("success"));
        assert_eq!(
            state("cleanup"),
            None,
            "{}: a teardown task is left alone",
            db.label
        );
        let events: Vec<(String, String, Option<String>)> = db
            .rows(&format!(
                "SELECT task_id, event, extra FROM log WHERE dag_id = '{dag}' \
                 AND run_id = '{run_id}' ORDER BY id"
            ))
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap(), r[2].clone()))
            .collect();
        if db.airflow {
            assert_eq!(state("sibling").as_deref(), Some("failed"), "{}", db.label);
            assert_eq!(state("later").as_deref(), Some("skipped"), "{}", db.label);
            let skipped = db.one(&format!(
                "SELECT CAST(start_date AS TEXT), CAST(end_date AS TEXT) FROM task_instance WHERE {}",
                scoped("later")
            ));
            assert!(skipped[0].is_some() && skipped[1].is_some(), "{skipped:?}");
            let stops: Vec<_> = events.iter().filter(|e| e.1 != "running").collect();
            assert_eq!(stops.len(), 3, "{events:?}");
            assert!(stops.contains(&&(
                "sibling".to_owned(),
                "fail task".to_owned(),
                Some("Forcing task to fail due to dag's `fail_fast` setting.".to_owned())
            )));
            assert!(stops.contains(&&(
                "later".to_owned(),
                "skip task".to_owned(),
                Some("Skipping task due to dag's `fail_fast` setting.".to_owned())
            )));
            assert_eq!(
                stops.iter().find(|e| e.0 == "fails").map(|e| e.1.as_str()),
                Some("failed")
            );
            let state =
                db.airflow_cli(&["tasks", "state", "lifecycle_fail_fast", "later", &run_id]);
            assert_eq!(state.trim().lines().last(), Some("skipped"), "{state}");
        } else {
            assert_eq!(state("sibling").as_deref(), Some("running"), "{}", db.label);
            assert_eq!(state("later"), None);
            assert_eq!(
                events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
                ["running", "failed"]
            );
        }
    }
}

#[test]
fn the_task_sdk_drives_the_lifecycle_routes() {
    for db in backends("sdk") {
        let dag = unique("sdk");
        let run = "manual__sdk";
        let server = db.serve(&[]);
        let ids: Vec<Uuid> = ["deferrer", "sensor", "brancher", "flaky"]
            .iter()
            .map(|task| db.create_ti(&dag, task, run))
            .collect();
        db.create_ti(&dag, "other", run);
        db.cli(&[
            "ti",
            "create",
            "--dag-id",
            &dag,
            "--task-id",
            "mapped",
            "--run-id",
            run,
            "--map-index",
            "0",
        ]);
        let mut args = vec![server.url("/execution/")];
        for id in &ids {
            args.push(id.to_string());
            args.push(db.token(*id));
        }
        let venv = required("EXECUTION_API_TEST_AIRFLOW_VENV");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/lifecycle_sdk.py");
        let output = Command::new(Path::new(&venv).join("bin/python"))
            .arg(&script)
            .args(&args)
            .envs(db.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run python");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: lifecycle_sdk.py failed\nstdout:\n{stdout}\nstderr:\n{}\nserver:\n{}",
            db.label,
            String::from_utf8_lossy(&output.stderr),
            server.stderr()
        );
        let out: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(out["deferred"], "deferred");
        assert!(out["reschedule_start"].is_string(), "{out}");

        let row = db.one(&format!(
            "SELECT ti.state, t.classpath, t.kwargs, CAST(ti.next_kwargs AS TEXT), \
             CAST(ti.trigger_timeout AS TEXT), ti.rendered_map_index FROM task_instance ti \
             JOIN trigger t ON t.id = ti.trigger_id WHERE ti.dag_id = '{dag}' \
             AND ti.task_id = 'deferrer'"
        ));
        assert_eq!(row[0].as_deref(), Some("deferred"));
        assert_eq!(
            row[1].as_deref(),
            Some("airflow.providers.standard.triggers.temporal.DateTimeTrigger")
        );
        assert!(row[2].as_deref().unwrap().starts_with('{'), "{row:?}");
        let next: Value = serde_json::from_str(row[3].as_deref().unwrap()).unwrap();
        assert_eq!(next["attempt"], 1, "{next}");
        assert_eq!(next["when"]["__classname__"], "datetime.datetime", "{next}");
        assert!(row[4].is_some());
        assert_eq!(row[5].as_deref(), Some("first"));
        let rtif: Value = serde_json::from_str(
            db.one(&format!(
                "SELECT CAST(rendered_fields AS TEXT) FROM rendered_task_instance_fields \
                 WHERE dag_id = '{dag}' AND task_id = 'deferrer'"
            ))[0]
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(rtif, json!({"bash_command": "sleep 1", "password": "***"}));
        for (task, state) in [
            ("sensor", "up_for_reschedule"),
            ("brancher", "success"),
            ("other", "skipped"),
            ("mapped", "skipped"),
            ("flaky", "up_for_retry"),
        ] {
            assert_eq!(
                db.state(&dag, task).as_deref(),
                Some(state),
                "{}: {task}",
                db.label
            );
        }
        if db.airflow {
            let trigger = db.airflow_reads(&["trigger", &ids[0].to_string()]);
            assert_eq!(trigger["kwarg_types"]["moment"], "DateTime", "{trigger}");
            assert_eq!(
                trigger["kwargs"]["moment"], "2026-01-01T10:00:00+00:00",
                "{trigger}"
            );
            let read = db.airflow_reads(&["history", &dag, run, "flaky"]);
            assert_eq!(read["live"]["retry_delay_override"], 12.5, "{read}");
            assert_eq!(read["history"][0]["task_instance_id"], ids[3].to_string());
        }
    }
}
