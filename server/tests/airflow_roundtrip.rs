//! Round trips with Airflow's own code, on one Airflow 3.3.2 metadata database and under
//! one Fernet key, configured the way Airflow is (`AIRFLOW__*`), for the server and for
//! Airflow's CLI and models alike:
//!
//! - a variable and a connection set with `airflow variables set` / `airflow connections add`
//!   read correctly through our API;
//! - ones written through our API read back with `airflow variables get` /
//!   `airflow connections get`, and are encrypted at rest;
//! - an XCom we store is read by Airflow's own model, and one Airflow stores is read by us;
//! - a DAG run whose task instances Airflow itself created (`airflow dags reserialize`,
//!   `airflow dags trigger`) is driven through `/run`, heartbeat and `/state` on our server,
//!   and `airflow tasks state` shows the result;
//! - an unknown alembic revision: the server exits non-zero naming it, and the database file
//!   is unchanged byte for byte.
//!
//! The databases come from `.ci/airflow-env` (one `airflow db migrate` per database per run);
//! `.ci/test` sources it. Without it these tests fail, saying so: they never pass unchecked.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{ServerProcess, TempDir, http, run, run_ok};
use serde_json::{Value, json};
use uuid::Uuid;

const JWT_SECRET: &str = "roundtrip-secret-0123456789abcdef";

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is unset: run `source .ci/airflow-env` first (`.ci/test` does)")
        })
}

/// One Airflow deployment's configuration: what Airflow's CLI and our server both get.
struct Deployment {
    venv: PathBuf,
    home: TempDir,
    /// `[database] sql_alchemy_conn`, SQLAlchemy style.
    sql_alchemy_conn: String,
    fernet_key: String,
}

impl Deployment {
    /// A copy of the `airflow db migrate` SQLite database.
    fn sqlite() -> Deployment {
        let template = required("EXECUTION_API_TEST_AIRFLOW_SQLITE");
        let home = TempDir::new("roundtrip-sqlite");
        let copy = home.path().join("airflow.db");
        std::fs::copy(&template, &copy).expect("copy the Airflow database");
        Deployment::new(home, format!("sqlite:///{}", copy.display()))
    }

    /// The shared `airflow db migrate` PostgreSQL database (tests use unique ids).
    fn postgres() -> Deployment {
        let url = required("EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL");
        let conn = url.replacen("postgres://", "postgresql+psycopg2://", 1);
        Deployment::new(TempDir::new("roundtrip-postgres"), conn)
    }

    fn new(home: TempDir, sql_alchemy_conn: String) -> Deployment {
        let dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/dags");
        std::fs::write(
            home.path().join("airflow.cfg"),
            format!(
                "[core]\ndags_folder = {}\nload_examples = False\n",
                dags.display()
            ),
        )
        .unwrap();
        Deployment {
            venv: PathBuf::from(required("EXECUTION_API_TEST_AIRFLOW_VENV")),
            home,
            sql_alchemy_conn,
            fernet_key: required("EXECUTION_API_TEST_AIRFLOW_FERNET_KEY"),
        }
    }

    /// The environment of every process of the deployment, ours included.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AIRFLOW_HOME", self.home.path().display().to_string()),
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                self.sql_alchemy_conn.clone(),
            ),
            ("AIRFLOW__CORE__FERNET_KEY", self.fernet_key.clone()),
            ("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET.to_owned()),
            ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".to_owned()),
        ]
    }

    fn server_env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.env();
        env.push((
            "EXECUTION_API_DATA_DIR",
            self.home.path().join("data").display().to_string(),
        ));
        env
    }

    /// Runs a program of the venv (`airflow`, `python`) that must succeed; its stdout.
    fn airflow(&self, program: &str, args: &[&str]) -> String {
        let output = Command::new(self.venv.join("bin").join(program))
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

    /// `airflow_side.py` (Airflow's models), parsed.
    fn models(&self, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/airflow_side.py");
        let mut all = vec![script.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.airflow("python", &all);
        let last = out.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("airflow_side.py printed {out:?}: {e}"))
    }

    fn cli(&self, args: &[&str]) -> String {
        let env = self.server_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_ok(args, &env)
    }

    fn serve(&self) -> ServerProcess {
        let env = self.server_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ServerProcess::start(&[], &env)
    }

    fn token(&self, sub: Uuid, scope: &str) -> String {
        self.cli(&["token", "mint", "--sub", &sub.to_string(), "--scope", scope])
            .trim()
            .to_owned()
    }

    /// A raw row value, through Airflow's own SQLAlchemy engine.
    fn sql_scalar(&self, query: &str) -> Value {
        let code = format!(
            "import json\nfrom sqlalchemy import text\nfrom airflow.utils.session import create_session\n\
             with create_session() as s:\n    r = s.execute(text({query:?})).first()\n\
             print(json.dumps([None if v is None else (v if isinstance(v, (int, float, str, bool)) else str(v)) for v in r]))"
        );
        let out = self.airflow("python", &["-c", &code]);
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    }
}

fn secrets_round_trip(deployment: &Deployment) {
    let tag = &Uuid::new_v4().simple().to_string()[..10];
    let (af_var, af_conn) = (format!("af_var_{tag}"), format!("af_conn_{tag}"));
    let (our_var, our_conn) = (format!("our_var_{tag}"), format!("our_conn_{tag}"));
    deployment.airflow("airflow", &["variables", "set", &af_var, "from airflow"]);
    deployment.airflow(
        "airflow",
        &[
            "connections",
            "add",
            &af_conn,
            "--conn-type",
            "postgres",
            "--conn-host",
            "db.example.com",
            "--conn-login",
            "alice",
            "--conn-password",
            "p@ss/word",
            "--conn-port",
            "5432",
            "--conn-schema",
            "analytics",
            "--conn-extra",
            r#"{"sslmode": "require"}"#,
        ],
    );
    let server = deployment.serve();
    let token = deployment.token(Uuid::new_v4(), "execution");

    // Airflow's writes, our reads.
    let var = http(
        server.addr,
        "GET",
        &format!("/execution/variables/{af_var}"),
        Some(&token),
        None,
    );
    assert_eq!(var.status, 200, "{}", var.body);
    assert_eq!(var.json(), json!({"key": af_var, "value": "from airflow"}));
    let conn = http(
        server.addr,
        "GET",
        &format!("/execution/connections/{af_conn}"),
        Some(&token),
        None,
    );
    assert_eq!(conn.status, 200, "{}", conn.body);
    let conn = conn.json();
    assert_eq!(conn["password"], "p@ss/word");
    assert_eq!(conn["login"], "alice");
    assert_eq!(conn["host"], "db.example.com");
    assert_eq!(conn["port"], 5432);
    assert_eq!(conn["schema"], "analytics");
    let extra: Value = serde_json::from_str(conn["extra"].as_str().unwrap()).unwrap();
    assert_eq!(extra, json!({"sslmode": "require"}));

    // Our writes, Airflow's reads: through the API and through our CLI.
    let put = http(
        server.addr,
        "PUT",
        &format!("/execution/variables/{our_var}"),
        Some(&token),
        Some(r#"{"val": "from us", "description": "set over the Execution API"}"#),
    );
    assert_eq!(put.status, 201, "{}", put.body);
    deployment.cli(&[
        "connection",
        "add",
        &our_conn,
        "--conn-type",
        "http",
        "--host",
        "api.example.com",
        "--login",
        "bob",
        "--password",
        "hunter2",
        "--extra",
        r#"{"region": "eu"}"#,
    ]);
    let got = deployment.airflow("airflow", &["variables", "get", &our_var]);
    assert_eq!(got.trim(), "from us");
    let got = deployment.airflow(
        "airflow",
        &["connections", "get", &our_conn, "--output", "json"],
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
    assert_eq!(parsed["password"], "hunter2", "{parsed}");
    assert_eq!(parsed["login"], "bob");
    assert_eq!(parsed["host"], "api.example.com");
    assert_eq!(parsed["extra_dejson"], json!({"region": "eu"}), "{parsed}");

    // Encrypted at rest, flags set as Airflow sets them.
    let row = deployment.sql_scalar(&format!(
        "SELECT val, is_encrypted FROM variable WHERE key = '{our_var}'"
    ));
    assert!(row[0].as_str().unwrap().starts_with("gAAAAA"), "{row}");
    assert!(row[1] == json!(true) || row[1] == json!(1), "{row}");
    let row = deployment.sql_scalar(&format!(
        "SELECT password, extra, is_encrypted, is_extra_encrypted FROM connection \
         WHERE conn_id = '{our_conn}'"
    ));
    assert!(row[0].as_str().unwrap().starts_with("gAAAAA"), "{row}");
    assert!(row[1].as_str().unwrap().starts_with("gAAAAA"), "{row}");

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

fn task_instances_round_trip(deployment: &Deployment) {
    let run_id = format!("roundtrip__{}", Uuid::new_v4().simple());
    deployment.airflow("airflow", &["dags", "reserialize"]);
    deployment.airflow(
        "airflow",
        &["dags", "trigger", "roundtrip", "--run-id", &run_id],
    );
    let ids = deployment.models(&["ti-ids", "roundtrip", &run_id]);
    let extract: Uuid = ids["extract"].as_str().unwrap().parse().unwrap();
    let load: Uuid = ids["load"].as_str().unwrap().parse().unwrap();
    // The scheduler's part: queue the task instance for an executor.
    deployment.sql_scalar(&format!(
        "UPDATE task_instance SET state = 'queued', try_number = 1 WHERE dag_id = 'roundtrip' \
         AND run_id = '{run_id}' RETURNING 1"
    ));

    let server = deployment.serve();
    let workload = deployment.token(extract, "workload");
    let start = http(
        server.addr,
        "PATCH",
        &format!("/execution/task-instances/{extract}/run"),
        Some(&workload),
        Some(
            r#"{"state":"running","hostname":"worker-1","unixname":"airflow","pid":4242,"start_date":"2026-01-01T10:00:00Z"}"#,
        ),
    );
    assert_eq!(start.status, 200, "{}", start.body);
    let context = start.json();
    assert_eq!(context["dag_run"]["dag_id"], "roundtrip");
    assert_eq!(context["dag_run"]["run_id"], run_id.as_str());
    let token = start
        .header("refreshed-api-token")
        .expect("execution token for the workload token")
        .to_owned();
    let beat = http(
        server.addr,
        "PUT",
        &format!("/execution/task-instances/{extract}/heartbeat"),
        Some(&token),
        Some(r#"{"hostname":"worker-1","pid":4242}"#),
    );
    assert_eq!(beat.status, 204, "{}", beat.body);

    // An XCom we store, read by Airflow's model; exact beyond 64 bits.
    let value = r#"{"rows": [1, 2, 3], "big": 1180591620717411303424, "name": "é"}"#;
    let post = http(
        server.addr,
        "POST",
        &format!("/execution/xcoms/roundtrip/{run_id}/extract/return_value"),
        Some(&token),
        Some(value),
    );
    assert_eq!(post.status, 201, "{}", post.body);
    let read = deployment.models(&["xcom-get", "roundtrip", &run_id, "extract", "return_value"]);
    assert_eq!(
        read["value"],
        serde_json::from_str::<Value>(value).unwrap(),
        "{read}"
    );
    // One Airflow stores, read by us.
    deployment.models(&[
        "xcom-set",
        "roundtrip",
        &run_id,
        "load",
        "from_airflow",
        r#"{"answer": 42, "list": ["a", null]}"#,
    ]);
    let got = http(
        server.addr,
        "GET",
        &format!("/execution/xcoms/roundtrip/{run_id}/load/from_airflow"),
        Some(&token),
        None,
    );
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(
        got.json(),
        json!({"key": "from_airflow", "value": {"answer": 42, "list": ["a", null]}})
    );

    let done = http(
        server.addr,
        "PATCH",
        &format!("/execution/task-instances/{extract}/state"),
        Some(&token),
        Some(r#"{"state":"success","end_date":"2026-01-01T10:00:30Z","rendered_map_index":null}"#),
    );
    assert_eq!(done.status, 204, "{}", done.body);
    let state = deployment.airflow(
        "airflow",
        &["tasks", "state", "roundtrip", "extract", &run_id],
    );
    assert_eq!(state.trim().lines().last(), Some("success"), "{state}");
    let state = deployment.airflow("airflow", &["tasks", "state", "roundtrip", "load", &run_id]);
    assert_eq!(state.trim().lines().last(), Some("queued"), "{state}");
    let _ = load;

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn airflow_and_the_server_share_secrets_on_sqlite() {
    secrets_round_trip(&Deployment::sqlite());
}

#[test]
fn airflow_and_the_server_share_secrets_on_postgres() {
    secrets_round_trip(&Deployment::postgres());
}

#[test]
fn airflow_made_task_instances_run_on_the_server_on_sqlite() {
    task_instances_round_trip(&Deployment::sqlite());
}

#[test]
fn airflow_made_task_instances_run_on_the_server_on_postgres() {
    task_instances_round_trip(&Deployment::postgres());
}

#[test]
fn an_unknown_alembic_revision_is_refused_and_the_database_is_untouched() {
    let deployment = Deployment::sqlite();
    let db = deployment.home.path().join("airflow.db");
    deployment.sql_scalar("UPDATE alembic_version SET version_num = '0123456789ab' RETURNING 1");
    let before = std::fs::read(&db).unwrap();
    let env = deployment.server_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for args in [
        &["serve", "--bind", "127.0.0.1:0"][..],
        &["variable", "set", "k", "v"],
    ] {
        let output = run(args, &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded:\n{stderr}");
        assert!(stderr.contains("0123456789ab"), "{stderr}");
        assert!(stderr.contains("d2f4e1b3c5a7"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database file changed"
    );
    // Airflow runs SQLite in WAL mode, where even a read-only reader needs the `-wal`
    // and `-shm` files; nothing may have been written to them.
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_len, 0, "{} holds writes", wal.display());
    let journal = PathBuf::from(format!("{}-journal", db.display()));
    assert!(!journal.exists(), "a rollback journal was created");
}
