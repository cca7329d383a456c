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
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{ServerProcess, TempDir, http, request};
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

    /// Statements through Airflow's own engine in one transaction: each one's first row.
    fn sql_all(&self, statements: &[String]) -> Vec<Value> {
        let mut args = vec!["sql"];
        args.extend(statements.iter().map(String::as_str));
        let rows = self.side(&args);
        assert_eq!(rows.len(), statements.len(), "{rows:?}");
        rows
    }

    /// Airflow's own Execution API's answers to `GET path` for each path.
    /// Airflow's answers to `GET path` for each path, at the head API version or at `version`.
    fn airflow_answers(&self, paths: &[String], version: Option<&str>) -> Vec<Value> {
        let mut args = vec!["api"];
        if let Some(version) = version {
            args.extend(["--version", version]);
        }
        args.extend(paths.iter().map(String::as_str));
        let answers = self.side(&args);
        assert_eq!(answers.len(), paths.len(), "{answers:?}");
        answers
    }

    fn reserialize(&self) {
        self.airflow("airflow", &["dags", "reserialize"]);
    }

    fn trigger(&self, dag_id: &str, run_id: &str, logical_date: &str) {
        self.airflow(
            "airflow",
            &[
                "dags",
                "trigger",
                dag_id,
                "--run-id",
                run_id,
                "--logical-date",
                logical_date,
            ],
        );
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

    fn serve(&self) -> ServerProcess {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ServerProcess::start(&[], &env)
    }

    /// A token minted by our CLI for this deployment.
    fn token(&self, sub: Uuid) -> String {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        common::run_ok(
            &[
                "token",
                "mint",
                "--sub",
                &sub.to_string(),
                "--scope",
                "execution",
            ],
            &env,
        )
        .trim()
        .to_owned()
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

// ---------------------------------------------------------------------------------------------
// The routes, compared with Airflow's own Execution API on Airflow-made data.

/// `value` with what may legitimately differ from Airflow's rendering made equal: datetimes
/// (we always write microseconds) become Unix nanoseconds, validation errors keep their `type`
/// and `loc` (pydantic's wording of a bad datetime varies), and the inactive assets (a Python
/// set in Airflow) are sorted.
fn normalized(value: &Value) -> Value {
    match value {
        Value::String(s) => {
            let rfc3339 = &time::format_description::well_known::Rfc3339;
            match time::OffsetDateTime::parse(s, rfc3339) {
                Ok(t) if s.len() >= 20 => json!(t.unix_timestamp_nanos().to_string()),
                _ => value.clone(),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let v = match (k.as_str(), v) {
                    ("detail", Value::Array(errors)) => Value::Array(
                        errors
                            .iter()
                            .map(|e| json!({"type": e["type"], "loc": e["loc"]}))
                            .collect(),
                    ),
                    ("inactive_assets", Value::Array(assets)) => {
                        let mut assets = assets.clone();
                        assets.sort_by_key(|a| a.to_string());
                        Value::Array(assets)
                    }
                    _ => normalized(v),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        _ => value.clone(),
    }
}

/// The versions older than the head that the Task SDK 1.1.x, 1.2.x and 1.3.x send.
const OLDER_SDK_VERSIONS: [&str; 4] = ["2025-09-23", "2025-10-27", "2025-11-05", "2026-04-06"];

/// Ask Airflow and us the same questions, at the head API version or with `Airflow-API-Version:
/// version`; every answer must agree. Returns our answers.
fn ask_both(
    deployment: &Deployment,
    server: &ServerProcess,
    questions: &[(String, Uuid)],
    version: Option<&str>,
) -> Vec<Value> {
    let paths: Vec<String> = questions.iter().map(|(p, _)| p.clone()).collect();
    let theirs = deployment.airflow_answers(&paths, version);
    let mut ours = Vec::new();
    let mut tokens = std::collections::HashMap::new();
    for ((path, sub), theirs) in questions.iter().zip(theirs) {
        let token = tokens
            .entry(*sub)
            .or_insert_with(|| deployment.token(*sub))
            .clone();
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(version) = version {
            headers.push(("Airflow-API-Version", version));
        }
        let response = request(
            server.addr,
            "GET",
            &format!("/execution{path}"),
            &headers,
            None,
        )
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let body: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("{path}: body {:?}: {e}", response.body));
        let mine = json!({"status": response.status, "body": body});
        assert_eq!(
            normalized(&mine),
            normalized(&theirs),
            "GET {path} at API version {}\n ours: {mine}\n Airflow's: {theirs}",
            version.unwrap_or("head")
        );
        ours.push(mine);
    }
    ours
}

fn routes_answer_as_airflow_does(deployment: &Deployment) {
    let id = deployment.dag_id.clone();
    deployment.reserialize();
    let runs = ["r1", "r2", "r3"].map(|r| format!("{id}_{r}"));
    for (run, day) in runs.iter().zip(["01", "02", "03"]) {
        deployment.trigger(&id, run, &format!("2024-01-{day}T00:00:00+00:00"));
    }
    let fail_fast = format!("{id}_fail_fast");
    deployment.trigger(&fail_fast, &runs[0], "2024-01-01T00:00:00+00:00");
    // The scheduler's part: states, durations, run outcomes. (The mapped task over a
    // literal list was expanded by Airflow when the runs were made: map indexes 0 to 2.)
    deployment.sql_all(&[
        format!(
            "UPDATE task_instance SET state = 'success', duration = 1.5, \
         start_date = '2024-01-01 00:01:00', end_date = '2024-01-01 00:01:01.5' \
         WHERE dag_id = '{id}' AND run_id = '{}'",
            runs[0]
        ),
        format!(
            "UPDATE task_instance SET state = 'failed', duration = 2 WHERE dag_id = '{id}' \
         AND run_id = '{}' AND task_id IN ('extract', 'group.first')",
            runs[1]
        ),
        format!(
            "UPDATE task_instance SET state = 'skipped' WHERE dag_id = '{id}' \
         AND run_id = '{}' AND task_id = 'group.double' AND map_index = 1",
            runs[1]
        ),
        format!(
            "UPDATE task_instance SET state = 'running' WHERE dag_id = '{id}' \
         AND run_id = '{}' AND task_id = 'setup'",
            runs[1]
        ),
        format!(
            "UPDATE dag_run SET state = 'success', start_date = '2024-01-01 00:00:30', \
         end_date = '2024-01-01 00:05:00' WHERE dag_id = '{id}' AND run_id = '{}'",
            runs[0]
        ),
        format!(
            "UPDATE dag_run SET state = 'failed' WHERE dag_id = '{id}' AND run_id = '{}'",
            runs[1]
        ),
        // One asset the scheduler has since retired.
        format!("DELETE FROM asset_active WHERE name = '{id}_retired'"),
    ]);
    let places = [
        (&runs[2], "extract"),
        (&runs[0], "extract"),
        (&runs[1], "group.inner.second"),
        (&runs[2], "setup"),
    ];
    let statements: Vec<String> = places
        .iter()
        .map(|(run, task)| {
            format!(
                "SELECT id FROM task_instance WHERE dag_id = '{id}' AND run_id = '{run}' \
                 AND task_id = '{task}'"
            )
        })
        .collect();
    let ids: Vec<Uuid> = deployment
        .sql_all(&statements)
        .iter()
        .map(|row| row[0].as_str().unwrap().parse().unwrap())
        .collect();
    let [extract3, extract1, second2, setup3] = ids[..] else {
        panic!("{ids:?}")
    };
    let missing = Uuid::new_v4();
    let any = Uuid::new_v4();

    let count = format!("/task-instances/count?dag_id={id}");
    let states = format!("/task-instances/states?dag_id={id}");
    let previous = format!("/task-instances/previous/{id}");
    let (r1, r2, r3) = (&runs[0], &runs[1], &runs[2]);
    let questions: Vec<(String, Uuid)> = [
        count.clone(),
        format!("{count}&states=success"),
        format!("{count}&states=null"),
        format!("{count}&states=null&states=failed"),
        format!("{count}&states="),
        format!("{count}&task_ids=extract&task_ids=setup"),
        format!("{count}&map_index=1"),
        format!("{count}&map_index=-1&run_ids={r1}&run_ids={r2}"),
        format!("{count}&logical_dates=2024-01-02T00:00:00%2B00:00&logical_dates=2024-01-03T01:00:00%2B01:00"),
        format!("{count}&task_group_id=group"),
        format!("{count}&task_group_id=group.inner&states=failed"),
        format!("{count}&task_group_id=group&task_ids=extract&run_ids={r2}"),
        format!("{count}&task_group_id=nope"),
        format!("{count}&task_group_id="),
        "/task-instances/count?dag_id=no_such_dag&task_group_id=group".to_owned(),
        "/task-instances/count".to_owned(),
        format!("{count}&map_index=one"),
        format!("{count}&logical_dates=2024-01-02T00:00:00"),
        format!("{count}&logical_dates=soon"),
        states.clone(),
        format!("{states}&run_ids={r2}"),
        format!("{states}&map_index=0"),
        format!("{states}&task_group_id=group&run_ids={r1}"),
        format!("{states}&task_group_id=group.inner&task_ids=setup&run_ids={r1}"),
        format!("{states}&task_group_id=nope"),
        format!("{states}&logical_dates=2024-01-01T00:00:00Z"),
        "/task-instances/states?dag_id=no_such_dag&task_group_id=group".to_owned(),
        "/task-instances/states".to_owned(),
        format!("/task-instances/breadcrumbs?dag_id={id}&run_id={r1}"),
        format!("/task-instances/breadcrumbs?dag_id={id}&run_id={r2}"),
        format!("/task-instances/breadcrumbs?dag_id={id}&run_id={r3}"),
        format!("/task-instances/breadcrumbs?dag_id={id}"),
        format!("{previous}/extract"),
        format!("{previous}/extract?logical_date=2024-01-03T00:00:00%2B00:00"),
        format!("{previous}/extract?logical_date=2024-01-02T00:00:00Z&state=success"),
        format!("{previous}/extract?state=running"),
        format!("{previous}/group.double?map_index=1"),
        format!("{previous}/group.double?map_index=2&state=success"),
        format!("{previous}/no_such_task"),
        format!("{previous}/extract?state=bogus"),
        format!("{previous}/extract?logical_date=2024-01-03"),
        format!("{previous}/extract?map_index=x"),
        format!("{previous}%2Fx/extract"),
    ]
    .into_iter()
    .map(|path| (path, any))
    .chain([
        (format!("/task-instances/{extract3}/previous-successful-dagrun"), extract3),
        (format!("/task-instances/{extract1}/previous-successful-dagrun"), extract1),
        (format!("/task-instances/{missing}/previous-successful-dagrun"), missing),
        (format!("/task-instances/{extract3}/validate-inlets-and-outlets"), extract3),
        (format!("/task-instances/{second2}/validate-inlets-and-outlets"), second2),
        (format!("/task-instances/{setup3}/validate-inlets-and-outlets"), setup3),
        (format!("/task-instances/{missing}/validate-inlets-and-outlets"), missing),
    ])
    .collect();

    let server = deployment.serve();
    let ours = ask_both(deployment, &server, &questions, None);
    // The same questions at each older version the Task SDK sends.
    for version in OLDER_SDK_VERSIONS {
        ask_both(deployment, &server, &questions, Some(version));
    }
    // The answers say something: spot checks beyond agreement.
    let answer = |path: &str| -> &Value {
        let at = questions.iter().position(|(p, _)| p == path).unwrap();
        &ours[at]["body"]
    };
    assert_eq!(*answer(&count), json!(24), "3 runs of 5 tasks and 3 mapped");
    assert_eq!(*answer(&format!("{count}&states=null")), json!(12));
    assert_eq!(*answer(&format!("{count}&task_group_id=group")), json!(15));
    let inactive = answer(&format!(
        "/task-instances/{second2}/validate-inlets-and-outlets"
    ));
    assert_eq!(
        *inactive,
        json!({"inactive_assets": [{"name": format!("{id}_retired"), "uri": format!("file:///tmp/{id}/retired"), "type": "Asset"}]})
    );
    let before = answer(&format!(
        "/task-instances/{extract3}/previous-successful-dagrun"
    ));
    assert_eq!(
        before["end_date"], "2024-01-01T00:05:00.000000Z",
        "{before}"
    );
    let crumbs = answer(&format!(
        "/task-instances/breadcrumbs?dag_id={id}&run_id={r2}"
    ));
    assert_eq!(
        crumbs["breadcrumbs"].as_array().unwrap().len(),
        3,
        "{crumbs}"
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn task_instance_queries_answer_as_airflow_on_sqlite() {
    routes_answer_as_airflow_does(&Deployment::sqlite(false));
}

#[test]
fn task_instance_queries_answer_as_airflow_on_postgres() {
    routes_answer_as_airflow_does(&Deployment::postgres(true));
}

/// `/variables/keys` and keys holding `/`, and `/connections/{id}`'s one-segment id, against
/// Airflow's answers; `PUT` with `value` (Airflow's field name) read back by Airflow's CLI.
fn variables_and_connections_answer_as_airflow_does(deployment: &Deployment) {
    let id = deployment.dag_id.clone();
    let keys = [
        format!("{id}/a"),
        format!("{id}/b_c"),
        format!("{id}/bxc"),
        format!("{id}/dir/sub"),
        format!("{id}_x"),
        format!("{id}%y"),
    ];
    let mut args = vec!["variables".to_owned()];
    for key in keys {
        args.push(format!("value of {key}"));
        args.insert(args.len() - 1, key);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    deployment.side(&args);
    let conn = format!("{id}_conn");
    deployment.airflow(
        "airflow",
        &[
            "connections",
            "add",
            &conn,
            "--conn-type",
            "http",
            "--conn-host",
            "example.com",
        ],
    );
    let keys = "/variables/keys";
    let any = Uuid::new_v4();
    let questions: Vec<(String, Uuid)> = [
        format!("{keys}?prefix={id}/"),
        format!("{keys}?prefix={id}/b_"),
        format!("{keys}?prefix={id}_"),
        format!("{keys}?prefix={id}%25"),
        format!("{keys}?prefix={id}/&limit=2&offset=1"),
        format!("{keys}?prefix={id}/&offset=10"),
        format!("{keys}?prefix={id}/&limit=10000"),
        format!("{keys}?limit=0"),
        format!("{keys}?limit=10001"),
        format!("{keys}?offset=-1"),
        format!("{keys}?limit=abc&offset=x"),
        format!("/variables/{id}/dir/sub"),
        format!("/variables/{id}%2Fdir%2Fsub"),
        format!("/variables/{id}/a"),
        format!("/variables/{id}/missing"),
        "/variables/".to_owned(),
        format!("/connections/{conn}"),
        format!("/connections/{conn}%2Fx"),
        format!("/connections/{conn}/x"),
        "/connections/".to_owned(),
    ]
    .into_iter()
    .map(|path| (path, any))
    .collect();
    let server = deployment.serve();
    let ours = ask_both(deployment, &server, &questions, None);
    // The same questions at each older version the Task SDK sends.
    for version in OLDER_SDK_VERSIONS {
        ask_both(deployment, &server, &questions, Some(version));
    }
    assert_eq!(
        ours[0]["body"],
        json!({"keys": [format!("{id}/a"), format!("{id}/b_c"), format!("{id}/bxc"), format!("{id}/dir/sub")], "total_entries": 4})
    );
    assert_eq!(ours[1]["body"]["keys"], json!([format!("{id}/b_c")]));
    assert_eq!(ours[11]["body"]["value"], format!("value of {id}/dir/sub"));

    // PUT with `value` (and with `val`) on a key holding `/`; Airflow reads both.
    let token = deployment.token(any);
    for (field, key) in [
        ("value", format!("{id}/put/value")),
        ("val", format!("{id}/put/val")),
    ] {
        let put = http(
            server.addr,
            "PUT",
            &format!("/execution/variables/{key}"),
            Some(&token),
            Some(&json!({field: format!("set with {field}")}).to_string()),
        );
        assert_eq!(put.status, 201, "{}", put.body);
        let got = deployment.airflow("airflow", &["variables", "get", &key]);
        assert_eq!(got.trim(), format!("set with {field}"));
    }
    let both = http(
        server.addr,
        "PUT",
        &format!("/execution/variables/{id}/put/both"),
        Some(&token),
        Some(r#"{"val": "a", "value": "b"}"#),
    );
    assert_eq!(both.status, 422, "{}", both.body);
    let empty = http(
        server.addr,
        "PUT",
        "/execution/variables/",
        Some(&token),
        Some(r#"{"val": "a"}"#),
    );
    assert_eq!(empty.status, 422, "{}", empty.body);
    let deleted = http(
        server.addr,
        "DELETE",
        &format!("/execution/variables/{id}/put/val"),
        Some(&token),
        None,
    );
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let gone = deployment.sql(&format!(
        "SELECT COUNT(*) FROM variable WHERE key LIKE '{id}/put/%'"
    ));
    assert_eq!(gone, json!([1]));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn variables_and_connections_answer_as_airflow_on_sqlite() {
    variables_and_connections_answer_as_airflow_does(&Deployment::sqlite(false));
}

#[test]
fn variables_and_connections_answer_as_airflow_on_postgres() {
    variables_and_connections_answer_as_airflow_does(&Deployment::postgres(false));
}

// ---------------------------------------------------------------------------------------------
// The embedded databases: rows from our CLI and plain SQL, a serialized DAG written as Airflow
// writes one (zlib-compressed on SQLite, plain JSON on PostgreSQL).

/// A serialized DAG in Airflow 3.3.2's form: `extract` (inlet `<dag>_in`, outlet `<dag>_out`)
/// and a group `group` holding `group.first` and the mapped `group.double`.
fn serialized_document(dag: &str) -> Value {
    let asset = |name: String| json!({"__type": "asset", "__var": {"name": name, "uri": format!("file:///{name}"), "group": "asset", "extra": {}}});
    json!({"__version": 3, "dag": {
        "dag_id": dag,
        "timetable": {"__type": "airflow.timetables.simple.NullTimetable", "__var": {}},
        "task_group": {"_group_id": null, "prefix_group_id": true, "children": {
            "extract": ["operator", "extract"],
            "group": ["taskgroup", {"_group_id": "group", "prefix_group_id": true, "children": {
                "group.first": ["operator", "group.first"],
                "group.double": ["operator", "group.double"],
            }, "upstream_group_ids": [], "downstream_group_ids": [], "upstream_task_ids": [], "downstream_task_ids": []}],
        }, "upstream_group_ids": [], "downstream_group_ids": [], "upstream_task_ids": [], "downstream_task_ids": []},
        "tasks": [
            {"__type": "operator", "__var": {"task_id": "extract", "task_type": "EmptyOperator",
                "inlets": [asset(format!("{dag}_in"))], "outlets": [asset(format!("{dag}_out"))]}},
            {"__type": "operator", "__var": {"task_id": "group.first", "task_type": "EmptyOperator"}},
            {"__type": "operator", "__var": {"task_id": "group.double", "task_type": "_PythonDecoratedOperator",
                "_operator_name": "@task", "_is_mapped": true}},
        ],
    }})
}

fn embedded_databases_answer_the_queries(database_url: Option<String>) {
    use sqlx::Executor as _;

    let dir = TempDir::new("queries-embedded");
    let dag = format!("e_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let url = database_url.as_deref();
    let create = |task: &str, run: &str, map_index: i64| -> Uuid {
        let out = support::cli(
            dir.path(),
            url,
            &[
                "ti",
                "create",
                "--dag-id",
                &dag,
                "--task-id",
                task,
                "--run-id",
                run,
                "--map-index",
                &map_index.to_string(),
            ],
            &[],
        );
        out.parse()
            .unwrap_or_else(|e| panic!("`ti create` printed {out:?}: {e}"))
    };
    let (r1, r2) = (format!("{dag}_r1"), format!("{dag}_r2"));
    let extract1 = create("extract", &r1, -1);
    let extract2 = create("extract", &r2, -1);
    create("group.first", &r1, -1);
    create("group.double", &r1, 0);
    create("group.double", &r1, 1);

    let postgres = url.is_some();
    let db_url = url.map_or_else(|| support::sqlite_url(dir.path()), str::to_owned);
    let rt = support::runtime();
    rt.block_on(async {
        let mut conn = support::connect(&db_url).await;
        let q = |text: &str| -> String {
            if postgres { text.to_owned() } else { text.replace("::timestamptz", "").replace("::uuid", "").replace("::json", "") }
        };
        // Timestamps as SQLAlchemy writes them on SQLite (microseconds always).
        for statement in [
            format!("UPDATE dag_run SET logical_date = '2024-01-01 00:00:00.000000', state = 'success', \
                     start_date = '2024-01-01 00:00:05.000000', end_date = '2024-01-01 00:09:00.000000', \
                     data_interval_start = '2023-12-31 00:00:00.000000', data_interval_end = '2024-01-01 00:00:00.000000' \
                     WHERE dag_id = '{dag}' AND run_id = '{r1}'"),
            format!("UPDATE dag_run SET logical_date = '2024-01-02 00:00:00.000000', state = 'running' \
                     WHERE dag_id = '{dag}' AND run_id = '{r2}'"),
            format!("UPDATE task_instance SET state = 'success', duration = 2.5 WHERE dag_id = '{dag}' \
                     AND run_id = '{r1}' AND task_id = 'extract'"),
            format!("UPDATE task_instance SET state = 'failed' WHERE dag_id = '{dag}' AND run_id = '{r2}'"),
            format!("UPDATE task_instance SET state = NULL WHERE dag_id = '{dag}' AND task_id = 'group.first'"),
            format!("UPDATE task_instance SET state = 'success', operator = '@task' WHERE dag_id = '{dag}' \
                     AND task_id = 'group.double' AND map_index = 1"),
            format!("INSERT INTO asset (name, uri, \"group\", extra, created_at, updated_at) VALUES \
                     ('{dag}_in', 'file:///{dag}_in', 'asset', '{{}}', '2024-01-01 00:00:00.000000', '2024-01-01 00:00:00.000000')"),
            format!("INSERT INTO asset_active (name, uri) VALUES ('{dag}_in', 'file:///{dag}_in')"),
        ] {
            conn.execute(sqlx::AssertSqlSafe(q(&statement))).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        let version = Uuid::now_v7();
        let version_param = if postgres { version.to_string() } else { version.simple().to_string() };
        sqlx::query(sqlx::AssertSqlSafe(q(
            "INSERT INTO dag_version (id, version_number, dag_id, bundle_name, created_at, last_updated) \
             VALUES ($1::uuid, 1, $2, 'dags-folder', '2024-01-01 00:00:00.000000'::timestamptz, '2024-01-01 00:00:00.000000'::timestamptz)",
        )))
        .bind(&version_param)
        .bind(&dag)
        .execute(&mut conn)
        .await
        .unwrap();
        let document = serialized_document(&dag).to_string();
        // Compressed on SQLite (`data` then holds JSON null, as Airflow writes it).
        let (data, compressed) = if postgres {
            (document, None)
        } else {
            ("null".to_owned(), Some(miniz_oxide::deflate::compress_to_vec_zlib(document.as_bytes(), 6)))
        };
        let row_id = if postgres { Uuid::now_v7().to_string() } else { Uuid::now_v7().simple().to_string() };
        sqlx::query(sqlx::AssertSqlSafe(q(
            "INSERT INTO serialized_dag (id, dag_id, data, data_compressed, created_at, last_updated, dag_hash, dag_version_id) \
             VALUES ($1::uuid, $2, $3::json, $4, '2024-01-01 00:00:00.000000'::timestamptz, '2024-01-01 00:00:00.000000'::timestamptz, 'h', $5::uuid)",
        )))
        .bind(&row_id)
        .bind(&dag)
        .bind(&data)
        .bind(compressed)
        .bind(&version_param)
        .execute(&mut conn)
        .await
        .unwrap();
    });

    let mut args = vec!["--data-dir", dir.path().to_str().unwrap()];
    if let Some(url) = url {
        args.extend(["--database-url", url]);
    }
    let env = [("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET)];
    let server = ServerProcess::start(&args, &env);
    let token_for = |sub: Uuid| {
        support::cli(
            dir.path(),
            url,
            &[
                "token",
                "mint",
                "--sub",
                &sub.to_string(),
                "--scope",
                "execution",
            ],
            &env,
        )
    };
    let any = token_for(Uuid::new_v4());
    let get = |path: &str, token: &str| -> (u16, Value) {
        let response = http(
            server.addr,
            "GET",
            &format!("/execution{path}"),
            Some(token),
            None,
        );
        let body = serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("{path}: {e}"));
        (response.status, body)
    };
    let count = format!("/task-instances/count?dag_id={dag}");
    assert_eq!(get(&count, &any), (200, json!(5)));
    assert_eq!(get(&format!("{count}&states=null"), &any), (200, json!(1)));
    assert_eq!(
        get(&format!("{count}&states=null&states=failed"), &any),
        (200, json!(2))
    );
    assert_eq!(
        get(&format!("{count}&task_ids=extract&run_ids={r1}"), &any),
        (200, json!(1))
    );
    assert_eq!(get(&format!("{count}&map_index=1"), &any), (200, json!(1)));
    assert_eq!(
        get(
            &format!("{count}&logical_dates=2024-01-02T01:00:00%2B01:00"),
            &any
        ),
        (200, json!(1))
    );
    assert_eq!(
        get(&format!("{count}&task_group_id=group"), &any),
        (200, json!(3))
    );
    assert_eq!(
        get(&format!("{count}&task_group_id=group&states=success"), &any),
        (200, json!(1))
    );
    let (status, body) = get(&format!("{count}&task_group_id=nope"), &any);
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["detail"]["message"],
        format!("Task group nope not found in DAG {dag}")
    );
    let (status, body) = get("/task-instances/count?dag_id=x", &any);
    assert_eq!((status, body), (200, json!(0)));
    let (status, body) = get("/task-instances/count?dag_ids=x", &any);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "dag_id"]));

    let (status, body) = get(
        &format!("/task-instances/states?dag_id={dag}&run_ids={r1}"),
        &any,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"task_states": {&r1: {"extract": "success", "group.first": null, "group.double_0": "queued", "group.double_1": "success"}}})
    );
    let (_, body) = get(
        &format!(
            "/task-instances/states?dag_id={dag}&task_group_id=group&task_ids=extract&map_index=-1"
        ),
        &any,
    );
    assert_eq!(
        body,
        json!({"task_states": {&r1: {"extract": "success", "group.first": null}, &r2: {"extract": "failed"}}})
    );

    let (_, body) = get(
        &format!("/task-instances/breadcrumbs?dag_id={dag}&run_id={r1}"),
        &any,
    );
    assert_eq!(
        body,
        json!({"breadcrumbs": [
            {"task_id": "extract", "map_index": -1, "state": "success", "operator": "EmptyOperator", "duration": 2.5},
            {"task_id": "group.double", "map_index": 1, "state": "success", "operator": "@task", "duration": null},
        ]})
    );

    let previous = format!("/task-instances/previous/{dag}/extract");
    let (_, body) = get(&previous, &any);
    assert_eq!(
        (body["run_id"].as_str(), body["state"].as_str()),
        (Some(r2.as_str()), Some("failed")),
        "{body}"
    );
    assert_eq!(body["logical_date"], "2024-01-02T00:00:00.000000Z");
    let (_, body) = get(&format!("{previous}?state=success"), &any);
    assert_eq!(body["run_id"], r1.as_str());
    assert_eq!(body["duration"], 2.5);
    let (_, body) = get(
        &format!("{previous}?logical_date=2024-01-01T00:00:00Z"),
        &any,
    );
    assert_eq!(body, Value::Null);
    let (status, body) = get(&format!("{previous}?state=done"), &any);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["type"], "enum");

    let (_, body) = get(
        &format!("/task-instances/{extract2}/previous-successful-dagrun"),
        &token_for(extract2),
    );
    assert_eq!(
        body,
        json!({"data_interval_start": "2023-12-31T00:00:00.000000Z", "data_interval_end": "2024-01-01T00:00:00.000000Z",
               "start_date": "2024-01-01T00:00:05.000000Z", "end_date": "2024-01-01T00:09:00.000000Z"})
    );
    let (status, body) = get(
        &format!("/task-instances/{extract1}/previous-successful-dagrun"),
        &token_for(extract1),
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data_interval_start": null, "data_interval_end": null, "start_date": null, "end_date": null})
    );
    // ti:self: another task instance's token is refused.
    let (status, _) = get(
        &format!("/task-instances/{extract1}/previous-successful-dagrun"),
        &any,
    );
    assert_eq!(status, 403);

    let (_, body) = get(
        &format!("/task-instances/{extract2}/validate-inlets-and-outlets"),
        &token_for(extract2),
    );
    assert_eq!(
        body,
        json!({"inactive_assets": [{"name": format!("{dag}_out"), "uri": format!("file:///{dag}_out"), "type": "Asset"}]})
    );
    let nobody = Uuid::new_v4();
    let (status, body) = get(
        &format!("/task-instances/{nobody}/validate-inlets-and-outlets"),
        &token_for(nobody),
    );
    assert_eq!(
        (status, body),
        (
            404,
            json!({"detail": {"reason": "not_found", "message": "Task Instance not found"}})
        )
    );

    // Variables: keys with `/`, listed by prefix.
    for key in ["a", "dir/b", "dir/c_d"] {
        let put = http(
            server.addr,
            "PUT",
            &format!("/execution/variables/{dag}/{key}"),
            Some(&any),
            Some(r#"{"value": "v"}"#),
        );
        assert_eq!(put.status, 201, "{}", put.body);
    }
    let (_, body) = get(
        &format!("/variables/keys?prefix={dag}/dir/&limit=1&offset=1"),
        &any,
    );
    assert_eq!(
        body,
        json!({"keys": [format!("{dag}/dir/c_d")], "total_entries": 2})
    );
    let (_, body) = get(&format!("/variables/{dag}/dir/b"), &any);
    assert_eq!(body, json!({"key": format!("{dag}/dir/b"), "value": "v"}));
    let (status, body) = get("/variables/keys?limit=100000", &any);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["ctx"], json!({"le": 10000}));
    let (status, _) = get("/variables/", &any);
    assert_eq!(status, 422);
    // Only GET has its own `/keys` route: other methods reach the variable named `keys`.
    let put = http(
        server.addr,
        "PUT",
        "/execution/variables/keys",
        Some(&any),
        Some(r#"{"val": "a variable"}"#),
    );
    assert_eq!(put.status, 201, "{}", put.body);
    let listed = |body: Value| body["keys"].as_array().unwrap().contains(&json!("keys"));
    let (_, body) = get("/variables/keys?prefix=keys&limit=10000", &any);
    assert!(listed(body.clone()), "{body}");
    let delete = http(
        server.addr,
        "DELETE",
        "/execution/variables/keys",
        Some(&any),
        None,
    );
    assert_eq!(delete.status, 204, "{}", delete.body);
    let (_, body) = get("/variables/keys?prefix=keys&limit=10000", &any);
    assert!(!listed(body.clone()), "{body}");

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn embedded_sqlite_answers_the_queries() {
    embedded_databases_answer_the_queries(None);
}

#[test]
fn embedded_postgres_answers_the_queries() {
    let url = required("EXECUTION_API_TEST_POSTGRES_URL");
    embedded_databases_answer_the_queries(Some(url));
}
