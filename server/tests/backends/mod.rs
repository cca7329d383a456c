//! The four databases the route tests run on, each with the real `server` binary configured
//! for it: the embedded SQLite default, PostgreSQL with the embedded schema, and SQLite and
//! PostgreSQL made by Airflow's own `airflow db migrate` (`.ci/airflow-env`), where Airflow's
//! models (`tests/airflow/runs_side.py`) run on the same database.
//!
//! Needs `EXECUTION_API_TEST_POSTGRES_URL` and `.ci/airflow-env`'s variables; without them
//! the tests fail, saying so (they never pass unchecked).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use sqlx::Row as _;
use uuid::Uuid;

use crate::common::{ServerProcess, TempDir, run_ok};

/// The servers' signing secret (`[api_auth] jwt_secret`).
pub const JWT_SECRET: &str = "routes-secret-0123456789abcdef0123";

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is unset: run `source .ci/airflow-env` first (`.ci/test` does)")
        })
}

/// Airflow's side of an `airflow db migrate` database.
struct Airflow {
    venv: PathBuf,
    sql_alchemy_conn: String,
    fernet_key: String,
}

/// One database, the server's configuration for it, and (for Airflow's databases) Airflow.
pub struct Backend {
    /// `embedded-sqlite`, `embedded-postgres`, `airflow-sqlite` or `airflow-postgres`.
    pub name: &'static str,
    home: TempDir,
    env: Vec<(String, String)>,
    /// The sqlx URL of the database.
    pub db_url: String,
    airflow: Option<Airflow>,
}

impl Backend {
    /// Every backend, each with a fresh home directory (SQLite files are fresh copies; the
    /// PostgreSQL databases are shared, so tests use unique DAG ids).
    pub fn all(label: &str) -> Vec<Backend> {
        let mut all = Vec::new();
        // Embedded SQLite: the data directory's default database.
        let home = TempDir::new(&format!("{label}-embedded-sqlite"));
        let data = home.path().join("data");
        all.push(Backend {
            name: "embedded-sqlite",
            db_url: format!("sqlite://{}", data.join("execution-api.db").display()),
            env: vec![("EXECUTION_API_DATA_DIR".into(), data.display().to_string())],
            home,
            airflow: None,
        });
        // Embedded PostgreSQL.
        let url = required("EXECUTION_API_TEST_POSTGRES_URL");
        let home = TempDir::new(&format!("{label}-embedded-postgres"));
        all.push(Backend {
            name: "embedded-postgres",
            env: vec![
                (
                    "EXECUTION_API_DATA_DIR".into(),
                    home.path().join("data").display().to_string(),
                ),
                ("EXECUTION_API_DATABASE_URL".into(), url.clone()),
            ],
            db_url: url,
            home,
            airflow: None,
        });
        // Airflow's SQLite (a copy of the migrated file) and PostgreSQL.
        let venv = PathBuf::from(required("EXECUTION_API_TEST_AIRFLOW_VENV"));
        let fernet_key = required("EXECUTION_API_TEST_AIRFLOW_FERNET_KEY");
        let home = TempDir::new(&format!("{label}-airflow-sqlite"));
        let copy = home.path().join("airflow.db");
        std::fs::copy(required("EXECUTION_API_TEST_AIRFLOW_SQLITE"), &copy)
            .expect("copy the Airflow database");
        all.push(Backend::airflow(
            "airflow-sqlite",
            home,
            format!("sqlite:///{}", copy.display()),
            format!("sqlite://{}", copy.display()),
            venv.clone(),
            fernet_key.clone(),
        ));
        let url = required("EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL");
        all.push(Backend::airflow(
            "airflow-postgres",
            TempDir::new(&format!("{label}-airflow-postgres")),
            url.replacen("postgres://", "postgresql+psycopg2://", 1),
            url,
            venv,
            fernet_key,
        ));
        all
    }

    fn airflow(
        name: &'static str,
        home: TempDir,
        sql_alchemy_conn: String,
        db_url: String,
        venv: PathBuf,
        fernet_key: String,
    ) -> Backend {
        let dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/dags");
        std::fs::write(
            home.path().join("airflow.cfg"),
            format!(
                "[core]\ndags_folder = {}\nload_examples = False\n",
                dags.display()
            ),
        )
        .unwrap();
        let airflow = Airflow {
            venv,
            sql_alchemy_conn,
            fernet_key,
        };
        Backend {
            name,
            env: Vec::new(),
            db_url,
            home,
            airflow: Some(airflow),
        }
        .with_airflow_env()
    }

    fn with_airflow_env(mut self) -> Backend {
        let airflow = self.airflow.as_ref().expect("an Airflow backend");
        self.env = vec![
            (
                "AIRFLOW_HOME".into(),
                self.home.path().display().to_string(),
            ),
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN".into(),
                airflow.sql_alchemy_conn.clone(),
            ),
            (
                "AIRFLOW__CORE__FERNET_KEY".into(),
                airflow.fernet_key.clone(),
            ),
            ("AIRFLOW__CORE__LOAD_EXAMPLES".into(), "False".into()),
            (
                "EXECUTION_API_DATA_DIR".into(),
                self.home.path().join("data").display().to_string(),
            ),
        ];
        self
    }

    /// Whether the database is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.db_url.starts_with("postgres")
    }

    /// A UTC time (`YYYY-MM-DD HH:MM:SS`) as an SQL literal in the form Airflow stores it
    /// (naive text on SQLite, an explicit UTC offset on PostgreSQL).
    pub fn at(&self, time: &str) -> String {
        if self.is_postgres() {
            format!("'{time}+00'")
        } else {
            format!("'{time}.000000'")
        }
    }

    /// Whether Airflow's models run on this database.
    pub fn is_airflow(&self) -> bool {
        self.airflow.is_some()
    }

    fn server_env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("AIRFLOW__API_AUTH__JWT_SECRET".into(), JWT_SECRET.into()));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }

    /// `server serve` on this database, with extra environment.
    pub fn serve_with(&self, extra: &[(&str, &str)]) -> ServerProcess {
        let env = self.server_env(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ServerProcess::start(&[], &env)
    }

    /// `server serve` on this database.
    pub fn serve(&self) -> ServerProcess {
        self.serve_with(&[])
    }

    /// A `server` CLI command on this database, which must succeed; its stdout trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let env = self.server_env(&[]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_ok(args, &env).trim().to_owned()
    }

    /// An execution token for `sub`.
    pub fn token(&self, sub: Uuid) -> String {
        self.cli(&[
            "token",
            "mint",
            "--sub",
            &sub.to_string(),
            "--scope",
            "execution",
        ])
    }

    /// `server ti create`: a queued task instance (with its DAG and run when new).
    pub fn create_ti(&self, dag_id: &str, task_id: &str, run_id: &str, map_index: i64) -> Uuid {
        let map_index = map_index.to_string();
        let out = self.cli(&[
            "ti",
            "create",
            "--dag-id",
            dag_id,
            "--task-id",
            task_id,
            "--run-id",
            run_id,
            "--map-index",
            &map_index,
        ]);
        out.parse()
            .unwrap_or_else(|e| panic!("`ti create` printed {out:?}: {e}"))
    }

    /// Runs statements on the database (outside the server).
    pub fn exec(&self, statements: &[&str]) {
        let url = self.db_url.clone();
        let statements: Vec<String> = statements.iter().map(|s| (*s).to_owned()).collect();
        runtime().block_on(async move {
            let mut conn = connect(&url).await;
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        });
    }

    /// Rows of a query whose columns are all text (cast them), `None` for NULL.
    pub fn rows(&self, query: &str) -> Vec<Vec<Option<String>>> {
        let url = self.db_url.clone();
        let query = query.to_owned();
        runtime().block_on(async move {
            let mut conn = connect(&url).await;
            let rows = sqlx::query(sqlx::AssertSqlSafe(query.clone()))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            rows.iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| {
                            row.try_get::<Option<String>, _>(i)
                                .unwrap_or_else(|e| panic!("{query}: column {i}: {e}"))
                        })
                        .collect()
                })
                .collect()
        })
    }

    /// One text value (the first column of the first row).
    pub fn scalar(&self, query: &str) -> Option<String> {
        self.rows(query)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no row: {query}"))
            .into_iter()
            .next()
            .flatten()
    }

    /// `tests/airflow/runs_side.py ARGS` with Airflow's models on this database: the JSON it
    /// prints last. Only on Airflow's databases.
    pub fn models(&self, args: &[&str]) -> Value {
        self.models_with(args, &[])
    }

    /// [`Backend::models`] with extra environment.
    pub fn models_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/runs_side.py");
        let mut all = vec![script.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.venv_with("python", &all, extra);
        let last = out.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("runs_side.py printed {out:?}: {e}"))
    }

    /// Runs a program of the Airflow venv (`airflow`, `python`) that must succeed; its stdout.
    pub fn venv(&self, program: &str, args: &[&str]) -> String {
        self.venv_with(program, args, &[])
    }

    /// [`Backend::venv`] with extra environment.
    pub fn venv_with(&self, program: &str, args: &[&str], extra: &[(&str, &str)]) -> String {
        let airflow = self.airflow.as_ref().expect("an Airflow backend");
        // Two `airflow dags reserialize` on one database at once race to
        // insert the same `dag` rows (Airflow's own unique violation): one at
        // a time in this process (test binaries run one after the other).
        static RESERIALIZE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = (args.starts_with(&["dags", "reserialize"]))
            .then(|| RESERIALIZE.lock().unwrap_or_else(|e| e.into_inner()));
        let output = Command::new(airflow.venv.join("bin").join(program))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
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
}

/// A unique DAG id.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// `value` with every RFC 3339 datetime string rewritten in one form (pydantic omits zero
/// microseconds, we do not; both are the same instant).
pub fn normalize(value: Value) -> Value {
    match value {
        Value::String(text) => {
            match time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            {
                Ok(t) => Value::String(format!("instant:{}", t.unix_timestamp_nanos())),
                Err(_) => Value::String(text),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}
