//! The real `server` binary: serving from a fresh data directory, the one-shot commands, their
//! errors, and tokens minted by the CLI working against a running server.

mod common;

use std::path::Path;

use common::{ServerProcess, TempDir, assert_clean_failure, http, run, run_ok};
use uuid::Uuid;

const RUN_BODY: &str = r#"{"state":"running","hostname":"worker-1","unixname":"airflow","pid":4242,"start_date":"2026-01-01T00:00:00Z"}"#;
const HEARTBEAT_BODY: &str = r#"{"hostname":"worker-1","pid":4242}"#;

fn data_dir_args(dir: &std::path::Path) -> Vec<String> {
    vec!["--data-dir".into(), dir.to_str().unwrap().into()]
}

/// `server <args> --data-dir DIR`, which must succeed; its stdout.
fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let dir_args = data_dir_args(dir);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(dir_args.iter().map(String::as_str));
    run_ok(&all, &[])
}

fn create_ti(dir: &std::path::Path, dag_id: &str) -> Uuid {
    let stdout = cli(
        dir,
        &["ti", "create", "--dag-id", dag_id, "--task-id", "t1"],
    );
    let line = stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no newline: {stdout:?}"));
    line.parse()
        .unwrap_or_else(|e| panic!("`ti create` printed {stdout:?}, not a UUID: {e}"))
}

fn mint(dir: &std::path::Path, sub: Uuid, scope: &str) -> String {
    let stdout = cli(
        dir,
        &["token", "mint", "--sub", &sub.to_string(), "--scope", scope],
    );
    let token = stdout.trim().to_owned();
    assert_eq!(token.matches('.').count(), 2, "not a JWT: {stdout:?}");
    token
}

#[test]
fn fresh_data_dir_serves_cli_data_and_cli_tokens() {
    let tmp = TempDir::new("cli-fresh");
    // Not created yet: `serve` makes it.
    let data = tmp.path().join("nested/data");
    let dir_args = data_dir_args(&data);
    let dir_args: Vec<&str> = dir_args.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&dir_args, &[]);

    // The dev secret exists, private, and the log says it is a development secret.
    let secret_path = data.join("dev-jwt-secret");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secret_path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "dev secret mode {mode:o}");
    let log = server.wait_log("signing with the development secret");
    assert!(
        log.contains("WARN") && log.contains("signing with the development secret"),
        "no dev-secret warning:\n{log}"
    );

    let ping = http(server.addr, "GET", "/execution/health/ping", None, None);
    assert_eq!(ping.status, 200, "{ping:?}");

    // A task instance created by the CLI, started with a workload token minted by the CLI.
    let ti = create_ti(&data, "cli_dag");
    let workload = mint(&data, ti, "workload");
    let run_path = format!("/execution/task-instances/{ti}/run");
    let started = http(
        server.addr,
        "PATCH",
        &run_path,
        Some(&workload),
        Some(RUN_BODY),
    );
    assert_eq!(started.status, 200, "{started:?}");
    assert_eq!(started.json()["dag_run"]["dag_id"], "cli_dag");
    let execution = started
        .header("refreshed-api-token")
        .expect("Refreshed-API-Token on /run")
        .to_owned();
    assert_ne!(execution, workload);

    let heartbeat_path = format!("/execution/task-instances/{ti}/heartbeat");
    let beat = http(
        server.addr,
        "PUT",
        &heartbeat_path,
        Some(&execution),
        Some(HEARTBEAT_BODY),
    );
    assert_eq!(beat.status, 204, "{beat:?}");
    // The workload token is for /run only.
    let beat = http(
        server.addr,
        "PUT",
        &heartbeat_path,
        Some(&workload),
        Some(HEARTBEAT_BODY),
    );
    assert_eq!(beat.status, 403, "{beat:?}");
    // An execution token minted by the CLI works too.
    let minted_execution = mint(&data, ti, "execution");
    let beat = http(
        server.addr,
        "PUT",
        &heartbeat_path,
        Some(&minted_execution),
        Some(HEARTBEAT_BODY),
    );
    assert_eq!(beat.status, 204, "{beat:?}");

    // Variables and connections written by the CLI are served.
    cli(
        &data,
        &[
            "variable",
            "set",
            "greeting",
            "hello world",
            "--description",
            "from the CLI",
        ],
    );
    let variable = http(
        server.addr,
        "GET",
        "/execution/variables/greeting",
        Some(&execution),
        None,
    );
    assert_eq!(variable.status, 200, "{variable:?}");
    assert_eq!(
        variable.json(),
        serde_json::json!({"key": "greeting", "value": "hello world"})
    );

    cli(
        &data,
        &[
            "connection",
            "add",
            "warehouse",
            "--conn-type",
            "postgres",
            "--host",
            "db",
            "--port",
            "5432",
            "--extra",
            r#"{"a":1}"#,
        ],
    );
    let connection = http(
        server.addr,
        "GET",
        "/execution/connections/warehouse",
        Some(&execution),
        None,
    );
    assert_eq!(connection.status, 200, "{connection:?}");
    let connection = connection.json();
    assert_eq!(
        (
            connection["conn_type"].as_str(),
            connection["host"].as_str()
        ),
        (Some("postgres"), Some("db"))
    );
    assert_eq!(connection["port"], 5432);
    assert_eq!(connection["extra"], r#"{"a":1}"#);

    // Private on disk: the data directory, the database and its WAL files, and the
    // generated Fernet key; secrets are encrypted at rest with that key.
    let mode = |path: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "data dir");
    for file in [
        "execution-api.db",
        "execution-api.db-wal",
        "execution-api.db-shm",
        "dev-fernet-key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let db = std::fs::read(data.join("execution-api.db")).unwrap();
    let wal = std::fs::read(data.join("execution-api.db-wal")).unwrap();
    for bytes in [&db, &wal] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("hello world"),
            "variable stored in plaintext"
        );
    }

    // Graceful shutdown on SIGTERM, logged.
    let (status, log) = server.terminate();
    assert!(status.success(), "exit status {status}\n{log}");
    assert!(
        log.contains("SIGTERM") && log.contains("shutting down gracefully"),
        "{log}"
    );
    assert!(log.contains("server stopped"), "{log}");
    // The pool was closed: SQLite checkpointed and removed its write-ahead log.
    assert!(data.join("execution-api.db").exists());
    assert!(
        !data.join("execution-api.db-wal").exists(),
        "WAL left behind: pool not closed"
    );
}

#[test]
fn dev_secret_is_reused_across_restarts() {
    let tmp = TempDir::new("cli-restart");
    let data = tmp.path().join("data");
    let dir_args = data_dir_args(&data);
    let dir_args: Vec<&str> = dir_args.iter().map(String::as_str).collect();

    // The CLI may run before the server ever did: `token mint` creates the secret.
    cli(&data, &["variable", "set", "k", "v"]);
    let token = mint(&data, Uuid::new_v4(), "execution");
    let secret = std::fs::read_to_string(data.join("dev-jwt-secret")).unwrap();

    for _ in 0..2 {
        let server = ServerProcess::start(&dir_args, &[]);
        let response = http(
            server.addr,
            "GET",
            "/execution/variables/k",
            Some(&token),
            None,
        );
        assert_eq!(response.status, 200, "{response:?}\n{}", server.stderr());
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
        assert_eq!(
            std::fs::read_to_string(data.join("dev-jwt-secret")).unwrap(),
            secret
        );
    }

    // A token from another data dir (another dev secret) is refused.
    let other = TempDir::new("cli-other");
    let foreign = mint(other.path(), Uuid::new_v4(), "execution");
    let server = ServerProcess::start(&dir_args, &[]);
    let response = http(
        server.addr,
        "GET",
        "/execution/variables/k",
        Some(&foreign),
        None,
    );
    assert_eq!(response.status, 403, "{response:?}");
}

#[test]
fn configured_secret_from_airflow_env_replaces_the_dev_secret() {
    let tmp = TempDir::new("cli-env-secret");
    let data = tmp.path().join("data");
    let data_str = data.to_str().unwrap();
    let secret = "x".repeat(64);
    let env = [
        ("AIRFLOW__API_AUTH__JWT_SECRET", secret.as_str()),
        ("AIRFLOW__API_AUTH__JWT_ISSUER", "tests"),
    ];
    let server = ServerProcess::start(&["--data-dir", data_str], &env);
    assert!(!data.join("dev-jwt-secret").exists());

    run_ok(&["variable", "set", "k", "v", "--data-dir", data_str], &env);
    let sub = Uuid::new_v4().to_string();
    let token = run_ok(
        &[
            "token",
            "mint",
            "--sub",
            &sub,
            "--scope",
            "execution",
            "--data-dir",
            data_str,
        ],
        &env,
    );
    let response = http(
        server.addr,
        "GET",
        "/execution/variables/k",
        Some(token.trim()),
        None,
    );
    assert_eq!(response.status, 200, "{response:?}");

    // Same secret but no issuer: the server requires `iss`, so the token is refused.
    let no_issuer = run_ok(
        &[
            "token",
            "mint",
            "--sub",
            &sub,
            "--scope",
            "execution",
            "--data-dir",
            data_str,
        ],
        &[("AIRFLOW__API_AUTH__JWT_SECRET", secret.as_str())],
    );
    let response = http(
        server.addr,
        "GET",
        "/execution/variables/k",
        Some(no_issuer.trim()),
        None,
    );
    assert_eq!(response.status, 403, "{response:?}");
}

#[test]
fn airflow_cfg_in_airflow_home_is_read() {
    let tmp = TempDir::new("cli-config");
    let data = tmp.path().join("data");
    let home = tmp.path().join("airflow-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("airflow.cfg"),
        format!(
            "[api_auth]\njwt_secret = {}\njwt_algorithm = HS256\n",
            "y".repeat(32)
        ),
    )
    .unwrap();
    let home_str = home.to_str().unwrap();
    let data_str = data.to_str().unwrap();
    let sub = Uuid::new_v4().to_string();
    let token = run_ok(
        &[
            "token",
            "mint",
            "--sub",
            &sub,
            "--scope",
            "workload",
            "--data-dir",
            data_str,
        ],
        &[("AIRFLOW_HOME", home_str)],
    );
    let header = token.trim().split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(&base64_url_decode(header)).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert!(!data.join("dev-jwt-secret").exists());
    // Workload tokens live `[scheduler] task_queued_timeout` by default, as Airflow's do.
    let claims = token.trim().split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&base64_url_decode(claims)).unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );

    // The data directory's old config.toml is refused rather than silently ignored.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("config.toml"), "[api_auth]\n").unwrap();
    let output = run(
        &["routes", "--data-dir", data_str],
        &[("AIRFLOW_HOME", home_str)],
    );
    assert_clean_failure(&output, "is no longer read");
}

/// `server config --json --show-secrets` in `home` (as AIRFLOW_HOME) with `env`: option name
/// (`section.key`) to `(value, source)`.
fn config_json(
    home: &std::path::Path,
    env: &[(&str, &str)],
) -> std::collections::HashMap<String, (serde_json::Value, String)> {
    let mut all = vec![("AIRFLOW_HOME", home.to_str().unwrap())];
    all.extend_from_slice(env);
    let data = home.join("data");
    let stdout = run_ok(
        &[
            "config",
            "--json",
            "--show-secrets",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &all,
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    json["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                format!(
                    "{}.{}",
                    o["section"].as_str().unwrap(),
                    o["key"].as_str().unwrap()
                ),
                (o["value"].clone(), o["source"].as_str().unwrap().to_owned()),
            )
        })
        .collect()
}

#[test]
fn config_prints_values_and_sources_with_secrets_masked() {
    let tmp = TempDir::new("cli-config-print");
    let home = tmp.path();
    let cfg = home.join("airflow.cfg");
    std::fs::write(
        &cfg,
        "[database]\nsql_alchemy_conn = postgresql://airflow:hunter2@db/airflow\n\
         [core]\nfernet_key = 81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=\nmax_map_length = 7\n\
         [api_auth]\njwt_secret = file-secret-file-secret-file-secret\n\
         [execution_api_server]\ntoken_cache_size = 3\n",
    )
    .unwrap();
    let home_str = home.to_str().unwrap();
    let data = home.join("data");
    let stdout = run_ok(
        &["config", "--data-dir", data.to_str().unwrap()],
        &[
            ("AIRFLOW_HOME", home_str),
            ("AIRFLOW__CORE__MAX_MAP_LENGTH", "9"),
        ],
    );
    let cfg_str = cfg.to_str().unwrap();
    for line in [
        format!("[database] sql_alchemy_conn = postgresql://airflow:***@db/airflow  ({cfg_str})"),
        format!("[core] fernet_key = ***  ({cfg_str})"),
        format!("[api_auth] jwt_secret = ***  ({cfg_str})"),
        "[core] max_map_length = 9  (AIRFLOW__CORE__MAX_MAP_LENGTH)".to_owned(),
        "[core] multi_team = False  (default)".to_owned(),
        format!("[execution_api_server] token_cache_size = 3  ({cfg_str})"),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no line `{line}` in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("file-secret") && !stdout.contains("81Hq"),
        "{stdout}"
    );
}

#[test]
fn config_environment_only_file_only_and_both() {
    let tmp = TempDir::new("cli-config-precedence");
    let home = tmp.path();
    // Missing file: defaults.
    let values = config_json(home, &[]);
    assert_eq!(
        values["core.max_map_length"],
        ("1024".into(), "default".into())
    );
    assert_eq!(
        values["database.sql_alchemy_conn"].0,
        serde_json::Value::Null
    );
    // Environment only.
    let values = config_json(home, &[("AIRFLOW__CORE__MULTI_TEAM", "True")]);
    assert_eq!(
        values["core.multi_team"],
        ("True".into(), "AIRFLOW__CORE__MULTI_TEAM".into())
    );
    // File only.
    let cfg = home.join("airflow.cfg");
    std::fs::write(&cfg, "[core]\nmulti_team = t\nmax_map_length = 5\n").unwrap();
    let cfg_str = cfg.to_str().unwrap().to_owned();
    let values = config_json(home, &[]);
    assert_eq!(values["core.multi_team"], ("t".into(), cfg_str.clone()));
    // Both: the environment wins.
    let values = config_json(home, &[("AIRFLOW__CORE__MULTI_TEAM", "False")]);
    assert_eq!(
        values["core.multi_team"],
        ("False".into(), "AIRFLOW__CORE__MULTI_TEAM".into())
    );
    assert_eq!(values["core.max_map_length"], ("5".into(), cfg_str));
    // AIRFLOW_CONFIG names another file; --config wins over both.
    let other = home.join("other.cfg");
    std::fs::write(&other, "[core]\nmax_map_length = 6\n").unwrap();
    let values = config_json(home, &[("AIRFLOW_CONFIG", other.to_str().unwrap())]);
    assert_eq!(values["core.max_map_length"].0, "6");
}

#[test]
fn config_cmd_and_secret_variants() {
    let tmp = TempDir::new("cli-config-cmd");
    let home = tmp.path();
    let cfg = home.join("airflow.cfg");
    std::fs::write(
        &cfg,
        "[core]\nfernet_key_cmd = printf %%s 81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=\n\
         [api_auth]\njwt_secret_secret = airflow/jwt\n",
    )
    .unwrap();
    let values = config_json(
        home,
        &[(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
            "printf 'sqlite:////tmp/from cmd.db'",
        )],
    );
    let cfg_str = cfg.to_str().unwrap();
    assert_eq!(
        values["core.fernet_key"],
        (
            "81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=".into(),
            format!("{cfg_str} [core] fernet_key_cmd")
        )
    );
    assert_eq!(
        values["database.sql_alchemy_conn"],
        (
            "sqlite:////tmp/from cmd.db".into(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD".into()
        )
    );
    // No secrets backend: `_secret` yields nothing, as in Airflow.
    assert_eq!(values["api_auth.jwt_secret"], ("".into(), "default".into()));

    // A custom backend is refused, naming it.
    let output = run(
        &["config", "--data-dir", home.join("data").to_str().unwrap()],
        &[
            ("AIRFLOW_HOME", home.to_str().unwrap()),
            ("AIRFLOW__SECRETS__BACKEND", "my.company.VaultBackend"),
        ],
    );
    assert_clean_failure(&output, "my.company.VaultBackend");
    // A failing command names the setting.
    let output = run(
        &["config", "--data-dir", home.join("data").to_str().unwrap()],
        &[
            ("AIRFLOW_HOME", home.to_str().unwrap()),
            ("AIRFLOW__API_AUTH__JWT_SECRET_CMD", "false"),
        ],
    );
    assert_clean_failure(&output, "AIRFLOW__API_AUTH__JWT_SECRET_CMD");
}

#[test]
fn config_file_errors_name_the_file() {
    let tmp = TempDir::new("cli-config-errors");
    let home = tmp.path();
    let data = home.join("data");
    let data_str = data.to_str().unwrap();
    let home_env = [("AIRFLOW_HOME", home.to_str().unwrap())];
    let cfg = home.join("airflow.cfg");

    // Syntax error.
    std::fs::write(&cfg, "[core]\nthis is not an option\n").unwrap();
    let output = run(&["config", "--data-dir", data_str], &home_env);
    assert_clean_failure(&output, cfg.to_str().unwrap());
    assert_clean_failure(&output, "line 2");

    // Bad value.
    std::fs::write(&cfg, "[core]\nmulti_team = sometimes\n").unwrap();
    let output = run(&["config", "--data-dir", data_str], &home_env);
    assert_clean_failure(&output, "invalid value `sometimes` for [core] multi_team");

    // Unreadable: a directory in place of the file (unreadable even as root).
    std::fs::remove_file(&cfg).unwrap();
    std::fs::create_dir(&cfg).unwrap();
    let output = run(&["config", "--data-dir", data_str], &home_env);
    assert_clean_failure(
        &output,
        &format!("cannot read configuration file `{}`", cfg.display()),
    );
    std::fs::remove_dir(&cfg).unwrap();

    // Unreadable by permissions: only meaningful when not root (root reads mode 000 files).
    std::fs::write(&cfg, "[core]\n").unwrap();
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let readable_anyway = std::fs::read(&cfg).is_ok();
    let output = run(&["config", "--data-dir", data_str], &home_env);
    if readable_anyway {
        // Running as root: the file is readable, so it is read.
        assert!(output.status.success(), "{output:?}");
    } else {
        assert_clean_failure(&output, "cannot read configuration file");
    }
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // An explicit --config that does not exist.
    let output = run(
        &[
            "config",
            "--config",
            home.join("nope.cfg").to_str().unwrap(),
            "--data-dir",
            data_str,
        ],
        &home_env,
    );
    assert_clean_failure(&output, "nope.cfg");
}

fn base64_url_decode(input: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in input.bytes() {
        let value = ALPHABET.iter().position(|&c| c == byte).expect("base64url") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

#[test]
fn ti_create_prints_only_the_uuid() {
    let tmp = TempDir::new("cli-ti");
    let stdout = cli(
        tmp.path(),
        &[
            "ti",
            "create",
            "--dag-id",
            "d",
            "--task-id",
            "t",
            "--run-id",
            "r1",
            "--map-index",
            "3",
            "--max-tries",
            "2",
        ],
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let id: Uuid = stdout.trim_end_matches('\n').parse().expect("a UUID");
    assert_eq!(stdout, format!("{id}\n"));
    // A second task in the same run gets another id.
    let other = cli(
        tmp.path(),
        &[
            "ti",
            "create",
            "--dag-id",
            "d",
            "--task-id",
            "t2",
            "--run-id",
            "r1",
        ],
    );
    assert_ne!(other.trim(), id.to_string());
}

#[test]
fn bad_input_fails_cleanly() {
    let tmp = TempDir::new("cli-errors");
    let dir = tmp.path().to_str().unwrap();

    let output = run(&["--bogus"], &[]);
    assert_clean_failure(&output, "unexpected argument '--bogus'");
    assert_eq!(output.status.code(), Some(2));

    let output = run(
        &[
            "token",
            "mint",
            "--sub",
            "not-a-uuid",
            "--scope",
            "workload",
            "--data-dir",
            dir,
        ],
        &[],
    );
    assert_clean_failure(&output, "invalid value 'not-a-uuid' for '--sub <UUID>'");

    let sub = Uuid::new_v4().to_string();
    let output = run(
        &[
            "token",
            "mint",
            "--sub",
            &sub,
            "--scope",
            "admin",
            "--data-dir",
            dir,
        ],
        &[],
    );
    assert_clean_failure(&output, "[possible values: execution, workload]");

    let output = run(
        &[
            "connection",
            "add",
            "c",
            "--conn-type",
            "http",
            "--extra",
            "{not json",
            "--data-dir",
            dir,
        ],
        &[],
    );
    assert_clean_failure(&output, "not valid JSON");

    let output = run(&["ti", "create", "--dag-id", "d", "--data-dir", dir], &[]);
    assert_clean_failure(&output, "--task-id <TASK_ID>");

    let output = run(&["serve", "--bind", "nowhere", "--data-dir", dir], &[]);
    assert_clean_failure(&output, "invalid value 'nowhere' for '--bind <ADDR>'");

    let output = run(
        &[
            "token",
            "mint",
            "--sub",
            &sub,
            "--scope",
            "workload",
            "--data-dir",
            dir,
        ],
        &[
            ("AIRFLOW__API_AUTH__JWT_SECRET", &"s".repeat(64)),
            ("AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH", "/k.pem"),
        ],
    );
    assert_clean_failure(&output, "mutually exclusive");
    assert_eq!(output.status.code(), Some(1));

    let output = run(
        &[
            "token",
            "mint",
            "--sub",
            &sub,
            "--scope",
            "workload",
            "--data-dir",
            dir,
        ],
        &[("AIRFLOW__API_AUTH__JWT_SECRET", "short")],
    );
    assert_clean_failure(&output, "too short");

    let output = run(
        &[
            "token",
            "mint",
            "--sub",
            &sub,
            "--scope",
            "workload",
            "--data-dir",
            dir,
        ],
        &[("AIRFLOW__API_AUTH__JWT_LEEWAY", "soon")],
    );
    assert_clean_failure(&output, "AIRFLOW__API_AUTH__JWT_LEEWAY");

    let missing = tmp.path().join("missing.toml");
    let output = run(&["routes", "--config", missing.to_str().unwrap()], &[]);
    assert_clean_failure(&output, "cannot read configuration file");

    let output = run(
        &[
            "variable",
            "set",
            "k",
            "v",
            "--database-url",
            "mysql://localhost/db",
            "--data-dir",
            dir,
        ],
        &[],
    );
    assert_clean_failure(&output, "unsupported database URL");

    // Port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run(&["serve", "--bind", &addr, "--data-dir", dir], &[]);
    assert_clean_failure(&output, &format!("cannot serve on {addr}"));
}

#[test]
fn routes_prints_every_route_with_its_merged_policy() {
    let stdout = run_ok(&["routes"], &[]);
    let header = stdout.lines().next().unwrap();
    assert!(
        header.starts_with("METHOD") && header.contains("PATH") && header.contains("TOKENS"),
        "{stdout}"
    );
    let run_line = stdout
        .lines()
        .find(|line| line.contains("/execution/task-instances/{task_instance_id}/run"))
        .unwrap_or_else(|| panic!("no /run route:\n{stdout}"));
    let columns: Vec<&str> = run_line.split_whitespace().collect();
    assert_eq!(columns[0], "PATCH", "{run_line}");
    assert_eq!(columns[2], "execution,workload", "{run_line}");
    assert_eq!(columns[3], "ti:self", "{run_line}");

    let heartbeat = stdout
        .lines()
        .find(|line| line.contains("/execution/task-instances/{task_instance_id}/heartbeat"))
        .unwrap_or_else(|| panic!("no heartbeat route:\n{stdout}"));
    let columns: Vec<&str> = heartbeat.split_whitespace().collect();
    assert_eq!(
        (columns[0], columns[2], columns[3]),
        ("PUT", "execution", "ti:self"),
        "{heartbeat}"
    );

    let variables = stdout
        .lines()
        .filter(|line| line.contains("/execution/variables/{variable_key"))
        .count();
    assert_eq!(variables, 3, "GET, PUT, DELETE variables:\n{stdout}");
}
