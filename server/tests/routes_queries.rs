//! The read-only routes that answer from Airflow's tables, and the serialized-DAG reader,
//! on what Airflow itself wrote: DAGs serialized by `airflow dags reserialize` (zlib-compressed
//! under `[core] compress_serialized_dags` and not), runs made by `airflow dags trigger`.
//!
//! Where Airflow's data is involved, every answer of ours over HTTP is compared with the answer
//! of Airflow's own Execution API (its FastAPI app run in process by `queries_side.py`) to the
//! same request on the same database. The embedded databases (SQLite and PostgreSQL) get rows
//! through our CLI and plain SQL.
//!
//! The databases come from `.ci/airflow-env`; without it these tests fail, saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::TempDir;
use execution_api_server::crypto::Fernet;
use execution_api_server::store::{
    AssetKey, AssetLike, DatabaseTarget, SerializedDag, Store, StoreSettings,
};
use serde_json::{Value, json};
use uuid::Uuid;

const JWT_SECRET: &str = "queries-secret-0123456789abcdef0123";

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is unset: run `source .ci/airflow-env` first (`.ci/test` does)")
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Which database an Airflow deployment runs on.
enum Database {
    /// A copy of the `airflow db migrate` SQLite file.
    Sqlite(PathBuf),
    /// The shared `airflow db migrate` PostgreSQL database (`postgres://` URL).
    Postgres(String),
}

/// One Airflow deployment whose DAG folder holds `queries.py` alone, its DAGs and assets
/// named after a prefix of their own, so that deployments sharing one database never meet.
struct Deployment {
    venv: PathBuf,
    home: TempDir,
    database: Database,
    fernet_key: String,
    compress: bool,
    /// The DAG id (and the prefix of the other DAG's id and of the assets' names).
    dag_id: String,
}

impl Deployment {
    fn sqlite(compress: bool) -> Deployment {
        let template = required("EXECUTION_API_TEST_AIRFLOW_SQLITE");
        let home = TempDir::new("queries-sqlite");
        let copy = home.path().join("airflow.db");
        std::fs::copy(&template, &copy).expect("copy the Airflow database");
        Deployment::new(home, Database::Sqlite(copy), compress)
    }

    fn postgres(compress: bool) -> Deployment {
        let url = required("EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL");
        Deployment::new(
            TempDir::new("queries-postgres"),
            Database::Postgres(url),
            compress,
        )
    }

    fn new(home: TempDir, database: Database, compress: bool) -> Deployment {
        let dags = home.path().join("dags");
        std::fs::create_dir_all(&dags).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/dags/queries.py");
        std::fs::copy(source, dags.join("queries.py")).unwrap();
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
            database,
            fernet_key: required("EXECUTION_API_TEST_AIRFLOW_FERNET_KEY"),
            compress,
            dag_id: format!("q_{}", &Uuid::new_v4().simple().to_string()[..12]),
        }
    }

    fn sql_alchemy_conn(&self) -> String {
        match &self.database {
            Database::Sqlite(path) => format!("sqlite:///{}", path.display()),
            Database::Postgres(url) => url.replacen("postgres://", "postgresql+psycopg2://", 1),
        }
    }

    /// The environment of every process of the deployment, ours included.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AIRFLOW_HOME", self.home.path().display().to_string()),
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                self.sql_alchemy_conn(),
            ),
            ("AIRFLOW__CORE__FERNET_KEY", self.fernet_key.clone()),
            ("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET.to_owned()),
            ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".to_owned()),
            (
                "AIRFLOW__CORE__COMPRESS_SERIALIZED_DAGS",
                if self.compress { "True" } else { "False" }.to_owned(),
            ),
            ("QUERIES_DAG_PREFIX", self.dag_id.clone()),
            (
                "EXECUTION_API_DATA_DIR",
                self.home.path().join("data").display().to_string(),
            ),
        ]
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

    /// `queries_side.py` with these arguments: its JSON lines.
    fn side(&self, args: &[&str]) -> Vec<Value> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow/queries_side.py");
        let mut all = vec![script.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.airflow("python", &all);
        out.lines()
            .filter(|l| l.starts_with('{') || l.starts_with('['))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    /// One statement through Airflow's own engine: its first row.
    fn sql(&self, statement: &str) -> Value {
        self.side(&["sql", statement]).pop().expect("a row")
    }

    fn reserialize(&self) {
        self.airflow("airflow", &["dags", "reserialize"]);
    }

    async fn store(&self) -> Store {
        let target = match &self.database {
            Database::Sqlite(path) => DatabaseTarget::Sqlite(path.clone()),
            Database::Postgres(url) => DatabaseTarget::from_url(url).unwrap(),
        };
        let settings = StoreSettings {
            fernet: Fernet::from_config(Some(&self.fernet_key)).unwrap(),
        };
        Store::open_with(&target, settings)
            .await
            .expect("open the Airflow database")
    }
}

// ---------------------------------------------------------------------------------------------
// The serialized-DAG reader.

fn asset(name: String, uri: String, group: &str) -> AssetLike {
    AssetLike::Asset(AssetKey {
        name,
        uri,
        group: group.to_owned(),
    })
}

/// Reads what `airflow dags reserialize` wrote and checks it against the DAG file.
fn serialized_dags_read_as_airflow_wrote_them(deployment: &Deployment) {
    deployment.reserialize();
    let id = &deployment.dag_id;
    // Stored the way the setting says (Python's `None` in a JSON column is the text `null`).
    let row = deployment.sql(&format!(
        "SELECT data IS NULL OR CAST(data AS TEXT) = 'null', data_compressed IS NULL \
         FROM serialized_dag WHERE dag_id = '{id}'"
    ));
    let truthy = |v: &Value| *v == json!(true) || *v == json!(1);
    assert_eq!(
        (truthy(&row[0]), truthy(&row[1])),
        (deployment.compress, !deployment.compress),
        "{row}"
    );

    let (dag, fail_fast, missing) = runtime().block_on(async {
        let store = deployment.store().await;
        let dag = store
            .latest_serialized_dag(id)
            .await
            .unwrap()
            .expect("serialized");
        let fail_fast = store
            .latest_serialized_dag(&format!("{id}_fail_fast"))
            .await
            .unwrap()
            .expect("serialized");
        let missing = store.latest_serialized_dag("no_such_dag").await.unwrap();
        (dag, fail_fast, missing)
    });
    assert!(missing.is_none());
    check_queries_dag(&dag, id);
    assert!(fail_fast.fail_fast);
    assert_eq!(fail_fast.task_group.all_task_ids(), ["only"]);

    // The version is the one Airflow's SerializedDagModel.get picks.
    let version = deployment.sql(&format!(
        "SELECT v.id, v.version_number FROM dag_version v WHERE v.dag_id = '{id}' \
         ORDER BY v.version_number DESC"
    ));
    let version_id: Uuid = version[0].as_str().unwrap().parse().unwrap();
    assert_eq!(dag.dag_version_id, version_id);
    assert_eq!(json!(dag.version_number), version[1]);
}

fn check_queries_dag(dag: &SerializedDag, id: &str) {
    assert_eq!(dag.dag_id, id);
    assert!(!dag.fail_fast);
    assert_eq!(
        dag.timetable.as_ref().unwrap()["__type"],
        "airflow.timetables.simple.NullTimetable"
    );
    let ids: Vec<&str> = dag.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "setup",
            "extract",
            "group.first",
            "group.inner.second",
            "group.double",
            "teardown"
        ]
    );
    let extract = dag.task("extract").unwrap();
    assert_eq!(extract.operator_name, "EmptyOperator");
    assert_eq!(
        extract.inlets,
        [asset(
            format!("{id}_raw"),
            format!("file:///tmp/{id}/raw.csv"),
            "asset"
        )]
    );
    assert_eq!(
        extract.outlets,
        [asset(
            format!("{id}_clean"),
            format!("s3://bucket/{id}/clean.parquet"),
            "tables"
        )]
    );
    let double = dag.task("group.double").unwrap();
    assert_eq!(double.operator_name, "@task");
    assert!(double.is_mapped);
    assert!(dag.task("teardown").unwrap().is_teardown);
    assert!(dag.task("setup").unwrap().is_setup);
    assert!(!dag.task("extract").unwrap().is_teardown);

    let root = &dag.task_group;
    assert_eq!(root.all_task_ids().len(), 6);
    let mut group = root.find("group").unwrap().all_task_ids();
    group.sort_unstable();
    assert_eq!(group, ["group.double", "group.first", "group.inner.second"]);
    assert_eq!(
        root.find("group.inner").unwrap().all_task_ids(),
        ["group.inner.second"]
    );
    assert!(root.find("inner").is_none());
}

#[test]
fn serialized_dags_airflow_wrote_read_on_sqlite() {
    serialized_dags_read_as_airflow_wrote_them(&Deployment::sqlite(false));
}

#[test]
fn serialized_dags_airflow_compressed_read_on_sqlite() {
    serialized_dags_read_as_airflow_wrote_them(&Deployment::sqlite(true));
}

#[test]
fn serialized_dags_airflow_wrote_read_on_postgres() {
    serialized_dags_read_as_airflow_wrote_them(&Deployment::postgres(false));
}

#[test]
fn serialized_dags_airflow_compressed_read_on_postgres() {
    serialized_dags_read_as_airflow_wrote_them(&Deployment::postgres(true));
}
