//! Interop with the real client: the Airflow Task SDK (`apache-airflow-task-sdk==1.3.2`, installed
//! from PyPI into a cached virtualenv `target/interop-venv`) drives two task instances through
//! their whole lives on our real server binary, using only the CLI to set things up.
//!
//! Runs on SQLite always, and on PostgreSQL too when `EXECUTION_API_TEST_POSTGRES_URL` is set
//! (`.ci/test` sets it). If Python, the virtualenv or pip fails, the test fails: it never passes
//! without having talked to the SDK.
//!
//! Environment: `EXECUTION_API_TEST_PYTHON` picks the interpreter used to create the virtualenv
//! (default `python3`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use common::{ServerProcess, TempDir, run_ok};
use uuid::Uuid;

const SDK_REQUIREMENT: &str = "apache-airflow-task-sdk==1.3.2";
const SDK_VERSION: &str = "1.3.2";

/// The venv's python, creating the venv and installing the SDK on first use.
///
/// The venv is built in a private staging directory and renamed into place, so concurrent test
/// processes never see (or delete) a half-built one.
fn venv_python() -> PathBuf {
    static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut cached = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(python) = cached.as_ref() {
        return python.clone();
    }
    // `.ci/test` makes one virtualenv per run (`.ci/airflow-env`) for every test.
    if let Ok(venv) = std::env::var("EXECUTION_API_TEST_AIRFLOW_VENV") {
        let python = Path::new(&venv).join("bin").join("python");
        assert!(
            has_sdk(&python),
            "interop: EXECUTION_API_TEST_AIRFLOW_VENV={venv} has no {SDK_REQUIREMENT}"
        );
        *cached = Some(python.clone());
        return python;
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let venv = target.join("interop-venv");
    let python = venv.join("bin").join("python");
    if !has_sdk(&python) {
        eprintln!(
            "interop: creating {} with {SDK_REQUIREMENT} (cached for later runs)",
            venv.display()
        );
        let staging = target.join(format!("interop-venv.tmp-{}", Uuid::new_v4().simple()));
        let staged_python = staging.join("bin").join("python");
        let base =
            std::env::var("EXECUTION_API_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        must_run(
            Command::new(&base).args(["-m", "venv"]).arg(&staging),
            &format!("`{base} -m venv` (is Python 3.10+ with venv installed?)"),
        );
        must_run(
            Command::new(&staged_python).args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                SDK_REQUIREMENT,
            ]),
            &format!("`pip install {SDK_REQUIREMENT}` (needs network access to PyPI)"),
        );
        assert!(
            has_sdk(&staged_python),
            "interop: {SDK_REQUIREMENT} installed but `airflow.sdk.api.client` does not import"
        );
        // A broken leftover goes; a good one another process just made wins.
        if venv.exists() && !has_sdk(&python) {
            let _ = std::fs::remove_dir_all(&venv);
        }
        if std::fs::rename(&staging, &venv).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        assert!(
            has_sdk(&python),
            "interop: no usable virtualenv at {}",
            venv.display()
        );
    }
    *cached = Some(python.clone());
    python
}

/// Whether `python` exists, has the SDK at the right version, and can import its client.
fn has_sdk(python: &Path) -> bool {
    if !python.exists() {
        return false;
    }
    let check = format!(
        "import importlib.metadata as m, sys\n\
         assert m.version('apache-airflow-task-sdk') == '{SDK_VERSION}', m.version('apache-airflow-task-sdk')\n\
         import airflow.sdk.api.client"
    );
    let home = TempDir::new("interop-check");
    Command::new(python)
        .args(["-c", &check])
        .env("AIRFLOW_HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must_run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("interop setup failed: cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "interop setup failed: {what} exited with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The whole scenario against one database; `database_url` `None` is SQLite in the data dir.
fn scenario(database_url: Option<&str>) {
    let python = venv_python();
    let tmp = TempDir::new("interop");
    let data = tmp.path().join("data");
    let mut location: Vec<String> = vec!["--data-dir".into(), data.to_str().unwrap().into()];
    if let Some(url) = database_url {
        location.extend(["--database-url".into(), url.into()]);
    }
    let location: Vec<&str> = location.iter().map(String::as_str).collect();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&location);
        run_ok(&all, &[]).trim().to_owned()
    };

    // The strict default: the Task SDK's calls must pass the ownership scopes.
    let server = ServerProcess::start(&location, &[("EXECUTION_API_OWNERSHIP", "strict")]);
    let base_url = server.url("/execution/");

    // Unique names: a PostgreSQL database may be shared with other tests and runs.
    let tag = Uuid::new_v4().simple().to_string();
    let dag_id = format!("interop_{}", &tag[..12]);
    let conn_id = format!("warehouse_{}", &tag[..12]);
    cli(&[
        "connection",
        "add",
        &conn_id,
        "--conn-type",
        "postgres",
        "--host",
        "db.example.com",
        "--port",
        "5432",
        "--login",
        "airflow",
        "--password",
        "s3cret",
        "--schema",
        "analytics",
        "--extra",
        r#"{"sslmode": "require"}"#,
    ]);

    for (task_id, outcome) in [("extract", "success"), ("load", "failed")] {
        let ti = cli(&[
            "ti",
            "create",
            "--dag-id",
            &dag_id,
            "--task-id",
            task_id,
            "--max-tries",
            "1",
        ]);
        let ti: Uuid = ti
            .parse()
            .unwrap_or_else(|e| panic!("`ti create` printed {ti:?}: {e}"));
        let token = cli(&[
            "token",
            "mint",
            "--sub",
            &ti.to_string(),
            "--scope",
            "workload",
            "--ttl",
            "3600",
        ]);

        let airflow_home = tmp.path().join(format!("airflow-home-{task_id}"));
        std::fs::create_dir_all(&airflow_home).unwrap();
        let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/drive_task.py");
        let output = Command::new(&python)
            .arg(&driver)
            .args([
                "--base-url",
                &base_url,
                "--ti-id",
                &ti.to_string(),
                "--token",
                &token,
            ])
            .args([
                "--dag-id",
                &dag_id,
                "--task-id",
                task_id,
                "--conn-id",
                &conn_id,
                "--outcome",
                outcome,
            ])
            .env("AIRFLOW_HOME", &airflow_home)
            // No retries: every SDK call must succeed the first time.
            .env("AIRFLOW__WORKERS__EXECUTION_API_RETRIES", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("PYTHONPATH")
            .stdin(Stdio::null())
            .output()
            .expect("run the Task SDK driver");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "Task SDK driver failed for {task_id} ({outcome}) on {}: {}\n--- driver stdout:\n{stdout}\n--- driver stderr:\n{stderr}\n--- server log:\n{}",
            database_url.map_or("SQLite", |_| "PostgreSQL"),
            output.status,
            server.stderr()
        );
        let summary = stdout
            .lines()
            .find_map(|line| line.strip_prefix("INTEROP-OK "))
            .unwrap_or_else(|| panic!("driver printed no summary:\n{stdout}\n{stderr}"));
        let summary: serde_json::Value = serde_json::from_str(summary).expect("summary JSON");
        assert_eq!(summary["ti_id"], ti.to_string());
        let steps: Vec<&str> = summary["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        assert_eq!(
            steps,
            [
                "start",
                "token-exchanged",
                "already-running-409",
                "heartbeat",
                "variables",
                "connections",
                "xcoms",
                outcome,
                "terminal-409"
            ]
        );
    }

    let (status, log) = server.terminate();
    assert!(status.success(), "server exit {status}\n{log}");
}

#[test]
fn task_sdk_drives_task_instances_on_sqlite() {
    scenario(None);
}

/// On a copy of the SQLite database Airflow's `airflow db migrate` made (`.ci/airflow-env`).
#[test]
fn task_sdk_drives_task_instances_on_airflow_sqlite() {
    let Some(template) = airflow_fixture("EXECUTION_API_TEST_AIRFLOW_SQLITE") else {
        return;
    };
    let dir = TempDir::new("interop-airflow-sqlite");
    let copy = dir.path().join("airflow.db");
    std::fs::copy(&template, &copy).expect("copy the Airflow database");
    scenario(Some(&format!("sqlite://{}", copy.display())));
}

/// On the PostgreSQL database Airflow's `airflow db migrate` made.
#[test]
fn task_sdk_drives_task_instances_on_airflow_postgres() {
    if let Some(url) = airflow_fixture("EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL") {
        scenario(Some(&url));
    }
}

/// An Airflow-made database from `.ci/airflow-env`; required under `.ci/test`.
fn airflow_fixture(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("EXECUTION_API_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "{name} is unset but EXECUTION_API_TEST_REQUIRE_ALL=1"
            );
            eprintln!("interop: {name} unset (source .ci/airflow-env), not run");
            None
        }
    }
}

#[test]
fn task_sdk_drives_task_instances_on_postgres() {
    match std::env::var("EXECUTION_API_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => scenario(Some(&url)),
        // `.ci/test` always sets it; a bare `cargo test` without PostgreSQL runs SQLite only.
        _ => eprintln!("interop on PostgreSQL not run: EXECUTION_API_TEST_POSTGRES_URL is not set"),
    }
}
