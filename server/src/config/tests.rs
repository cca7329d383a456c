use std::cell::RefCell;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Answers commands from a table and records what it ran.
#[derive(Default)]
struct FakeRunner {
    outputs: Vec<(&'static str, Result<&'static str, &'static str>)>,
    ran: RefCell<Vec<String>>,
}

impl CommandRunner for FakeRunner {
    fn run(&self, command: &str) -> Result<String, String> {
        self.ran.borrow_mut().push(command.to_owned());
        match self.outputs.iter().find(|(c, _)| *c == command) {
            Some((_, Ok(out))) => Ok((*out).to_owned()),
            Some((_, Err(e))) => Err((*e).to_owned()),
            None => Err(format!("unexpected command `{command}`")),
        }
    }
}

const CFG: &str = "/etc/airflow/airflow.cfg";

fn resolve(file: Option<&str>, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::resolve(
        file.map(|t| (Path::new(CFG), t)),
        &env(pairs),
        &FakeRunner::default(),
    )
}

fn resolve_with(
    file: Option<&str>,
    pairs: &[(&str, &str)],
    runner: &FakeRunner,
) -> Result<Config, ConfigError> {
    Config::resolve(file.map(|t| (Path::new(CFG), t)), &env(pairs), runner)
}

fn entry<'a>(config: &'a Config, section: &str, key: &str) -> &'a ConfigEntry {
    config
        .report
        .iter()
        .find(|e| e.section == section && e.key == key)
        .unwrap_or_else(|| panic!("no [{section}] {key} in the report"))
}

#[test]
fn defaults_with_nothing_configured() {
    let config = resolve(None, &[]).unwrap();
    assert_eq!(config.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.database, None);
    assert_eq!(config.fernet_key, None);
    assert_eq!(config.token_cache_size, DEFAULT_TOKEN_CACHE_SIZE);
    assert_eq!(config.task_queued_timeout, Duration::from_secs(600));
    assert_eq!(config.workload_token_ttl, Duration::from_secs(600));
    assert!(!config.multi_team);
    assert_eq!(config.max_map_length, 1024);
    assert_eq!(config.num_dag_runs_to_retain_rendered_fields, 30);
    assert!(!config.clear_on_success);
    assert!(!config.expose_stacktrace);
    assert_eq!(config.file, None);
    assert!(config.warnings.is_empty());
    let auth = &config.auth;
    assert_eq!(auth.jwt_secret, None);
    assert_eq!(auth.jwt_private_key_path, None);
    assert_eq!(auth.jwt_algorithm, None);
    assert_eq!(auth.jwt_audience, "urn:airflow.apache.org:task");
    assert_eq!(auth.jwt_expiration_time, Duration::from_secs(600));
    assert_eq!(auth.jwt_leeway, Duration::from_secs(10));
    assert!(config.report.iter().all(|e| e.source == Source::Default));
    // Airflow's default strings, so `server config` agrees with `airflow config get-value`.
    assert_eq!(
        entry(&config, "scheduler", "task_queued_timeout")
            .value
            .as_deref(),
        Some("600.0")
    );
    assert_eq!(
        entry(&config, "core", "multi_team").value.as_deref(),
        Some("False")
    );
}

const FULL_FILE: &str = "\
[database]
sql_alchemy_conn = postgresql+psycopg2://airflow:p%%40ss@db:5432/airflow?sslmode=require

[core]
fernet_key = 81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=
multi_team = True
max_map_length = 2048
num_dag_runs_to_retain_rendered_fields = 5

[api_auth]
jwt_secret = from-file
jwt_algorithm = HS256
jwt_issuer = airflow
jwt_leeway = 3
jwt_kid = k1
trusted_jwks_url = https://example.test/jwks.json

[execution_api]
jwt_audience = aud, second
jwt_expiration_time = 120

[scheduler]
task_queued_timeout = 90.5

[state_store]
clear_on_success = t

[api]
expose_stacktrace = True

[execution_api_server]
bind = 0.0.0.0:9000
token_cache_size = 5
jwks_refresh_interval = 60
jwks_min_refresh_interval = 5
";

#[test]
fn airflow_cfg_only() {
    let config = resolve(Some(FULL_FILE), &[]).unwrap();
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Postgres(
            "postgres://airflow:p%40ss@db:5432/airflow?sslmode=require".into()
        ))
    );
    assert_eq!(
        config.fernet_key.as_deref(),
        Some("81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=")
    );
    assert!(config.multi_team);
    assert_eq!(config.max_map_length, 2048);
    assert_eq!(config.num_dag_runs_to_retain_rendered_fields, 5);
    assert!(config.clear_on_success);
    assert!(config.expose_stacktrace);
    assert_eq!(config.task_queued_timeout, Duration::from_secs_f64(90.5));
    assert_eq!(config.workload_token_ttl, Duration::from_secs_f64(90.5));
    let auth = &config.auth;
    assert_eq!(auth.jwt_secret.as_deref(), Some("from-file"));
    assert_eq!(auth.jwt_algorithm.as_deref(), Some("HS256"));
    assert_eq!(auth.jwt_issuer.as_deref(), Some("airflow"));
    assert_eq!(auth.jwt_leeway, Duration::from_secs(3));
    assert_eq!(auth.jwt_kid.as_deref(), Some("k1"));
    assert_eq!(
        auth.trusted_jwks_url.as_deref(),
        Some("https://example.test/jwks.json")
    );
    assert_eq!(auth.jwt_audience, "aud");
    assert!(
        config.warnings[0].contains("2 audiences"),
        "{:?}",
        config.warnings
    );
    assert_eq!(auth.jwt_expiration_time, Duration::from_secs(120));
    assert_eq!(auth.jwks_refresh_interval, Duration::from_secs(60));
    assert_eq!(auth.jwks_min_refresh_interval, Duration::from_secs(5));
    assert_eq!(config.bind, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(config.token_cache_size, 5);
    assert_eq!(config.file.as_deref(), Some(Path::new(CFG)));
    let fernet = entry(&config, "core", "fernet_key");
    assert_eq!(
        fernet.source,
        Source::File {
            path: CFG.into(),
            key: "[core] fernet_key".into()
        }
    );
}

#[test]
fn environment_only() {
    let config = resolve(
        None,
        &[
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "sqlite:////var/lib/airflow/airflow.db",
            ),
            ("AIRFLOW__CORE__FERNET_KEY", "k"),
            ("AIRFLOW__CORE__MULTI_TEAM", "1"),
            ("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "3600"),
            ("AIRFLOW__API_AUTH__JWT_SECRET", "from-env"),
            ("AIRFLOW__API__EXPOSE_STACKTRACE", "true"),
            (ENV_TOKEN_CACHE_SIZE, "0"),
            (ENV_BIND, "localhost:0"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Sqlite("/var/lib/airflow/airflow.db".into()))
    );
    assert_eq!(config.fernet_key.as_deref(), Some("k"));
    assert!(config.multi_team);
    assert_eq!(config.workload_token_ttl, Duration::from_secs(3600));
    assert_eq!(config.auth.jwt_secret.as_deref(), Some("from-env"));
    // Airflow compares the string with "True".
    assert!(!config.expose_stacktrace);
    assert_eq!(config.token_cache_size, 0);
    assert_eq!(config.bind, "127.0.0.1:0".parse().unwrap());
    assert_eq!(
        entry(&config, "core", "fernet_key").source,
        Source::Env("AIRFLOW__CORE__FERNET_KEY".into())
    );
}

#[test]
fn environment_overrides_file() {
    let config = resolve(
        Some(FULL_FILE),
        &[
            ("AIRFLOW__API_AUTH__JWT_SECRET", "from-env"),
            ("AIRFLOW__API_AUTH__JWT_LEEWAY", "7"),
            ("AIRFLOW__EXECUTION_API__JWT_AUDIENCE", "env-aud"),
            ("AIRFLOW__CORE__MAX_MAP_LENGTH", "10"),
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////x.db"),
            (ENV_BIND, "127.0.0.1:1"),
            (ENV_JWKS_MIN_REFRESH_INTERVAL, "0"),
        ],
    )
    .unwrap();
    assert_eq!(config.auth.jwt_secret.as_deref(), Some("from-env"));
    assert_eq!(config.auth.jwt_leeway, Duration::from_secs(7));
    assert_eq!(config.auth.jwt_audience, "env-aud");
    assert_eq!(config.max_map_length, 10);
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Sqlite("/x.db".into()))
    );
    assert_eq!(config.bind, "127.0.0.1:1".parse().unwrap());
    assert_eq!(config.auth.jwks_min_refresh_interval, Duration::ZERO);
    // Not overridden: from the file.
    assert_eq!(config.auth.jwt_issuer.as_deref(), Some("airflow"));
    assert_eq!(config.token_cache_size, 5);
}

#[test]
fn an_empty_airflow_variable_is_a_value_as_in_airflow() {
    // `AIRFLOW__API_AUTH__JWT_SECRET=` hides the file's secret (Airflow checks presence).
    let config = resolve(Some(FULL_FILE), &[("AIRFLOW__API_AUTH__JWT_SECRET", "")]).unwrap();
    assert_eq!(config.auth.jwt_secret, None);
    // Ours: empty means unset.
    let config = resolve(Some(FULL_FILE), &[(ENV_BIND, "")]).unwrap();
    assert_eq!(config.bind, "0.0.0.0:9000".parse().unwrap());
}

#[test]
fn env_cmd_for_sensitive_options() {
    let runner = FakeRunner {
        outputs: vec![
            ("cat /run/secrets/fernet", Ok("env-cmd-key\n")),
            ("get-conn", Ok("sqlite:////from/cmd.db")),
        ],
        ..FakeRunner::default()
    };
    let config = resolve_with(
        Some("[core]\nfernet_key = file-key\n"),
        &[
            ("AIRFLOW__CORE__FERNET_KEY_CMD", "cat /run/secrets/fernet"),
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", "get-conn"),
            // Not sensitive: Airflow ignores `_CMD` for it.
            ("AIRFLOW__API_AUTH__JWT_ISSUER_CMD", "never-run"),
        ],
        &runner,
    )
    .unwrap();
    // Output used as is (Airflow does not strip it); the Fernet module trims each key.
    assert_eq!(config.fernet_key.as_deref(), Some("env-cmd-key\n"));
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Sqlite("/from/cmd.db".into()))
    );
    assert_eq!(config.auth.jwt_issuer, None);
    assert!(!runner.ran.borrow().iter().any(|c| c == "never-run"));
    assert_eq!(
        entry(&config, "core", "fernet_key").source,
        Source::EnvCmd("AIRFLOW__CORE__FERNET_KEY_CMD".into())
    );
    // The plain variable wins and the command is not run.
    let runner = FakeRunner::default();
    let config = resolve_with(
        None,
        &[
            ("AIRFLOW__CORE__FERNET_KEY", "plain"),
            ("AIRFLOW__CORE__FERNET_KEY_CMD", "boom"),
        ],
        &runner,
    )
    .unwrap();
    assert_eq!(config.fernet_key.as_deref(), Some("plain"));
    assert!(runner.ran.borrow().is_empty());
}

#[test]
fn file_cmd_comes_after_the_file_value() {
    let runner = FakeRunner {
        outputs: vec![("vault read jwt", Ok("cmd-secret")), ("empty", Ok(""))],
        ..FakeRunner::default()
    };
    let config = resolve_with(
        Some("[api_auth]\njwt_secret_cmd = vault read jwt\n[core]\nfernet_key_cmd = empty\n"),
        &[],
        &runner,
    )
    .unwrap();
    assert_eq!(config.auth.jwt_secret.as_deref(), Some("cmd-secret"));
    assert_eq!(
        entry(&config, "api_auth", "jwt_secret").source,
        Source::FileCmd {
            path: CFG.into(),
            key: "[api_auth] jwt_secret_cmd".into()
        }
    );
    // An empty output falls through to the default.
    assert_eq!(config.fernet_key, None);
    assert_eq!(entry(&config, "core", "fernet_key").source, Source::Default);
    // The plain file value wins over the file's command.
    let runner = FakeRunner::default();
    let config = resolve_with(
        Some("[api_auth]\njwt_secret = plain\njwt_secret_cmd = boom\n"),
        &[],
        &runner,
    )
    .unwrap();
    assert_eq!(config.auth.jwt_secret.as_deref(), Some("plain"));
    assert!(runner.ran.borrow().is_empty());
    // But an environment _CMD wins over the file value.
    let runner = FakeRunner {
        outputs: vec![("env-cmd", Ok("from-env-cmd"))],
        ..FakeRunner::default()
    };
    let config = resolve_with(
        Some("[api_auth]\njwt_secret = plain\n"),
        &[("AIRFLOW__API_AUTH__JWT_SECRET_CMD", "env-cmd")],
        &runner,
    )
    .unwrap();
    assert_eq!(config.auth.jwt_secret.as_deref(), Some("from-env-cmd"));
}

#[test]
fn failing_commands_name_the_setting() {
    let runner = FakeRunner {
        outputs: vec![("false", Err("exited with exit status: 1"))],
        ..FakeRunner::default()
    };
    let err =
        resolve_with(None, &[("AIRFLOW__CORE__FERNET_KEY_CMD", "false")], &runner).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("AIRFLOW__CORE__FERNET_KEY_CMD"),
        "{message}"
    );
    assert!(message.contains("exit status: 1"), "{message}");
    let err = resolve_with(Some("[core]\nfernet_key_cmd = false\n"), &[], &runner).unwrap_err();
    assert!(err.to_string().contains("[core] fernet_key_cmd"), "{err}");
}

#[test]
fn secret_without_a_backend_is_skipped_as_in_airflow() {
    let config = resolve(
        Some("[core]\nfernet_key_secret = airflow/fernet\n[api_auth]\njwt_secret = file\n"),
        &[
            ("AIRFLOW__API_AUTH__JWT_SECRET_SECRET", "airflow/jwt"),
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET", "airflow/db"),
        ],
    )
    .unwrap();
    assert_eq!(config.fernet_key, None);
    assert_eq!(config.database, None);
    // The environment _SECRET yields nothing, so the file value is next.
    assert_eq!(config.auth.jwt_secret.as_deref(), Some("file"));
    // Airflow's own backends have no configuration either.
    let config = resolve(
        None,
        &[
            (
                "AIRFLOW__SECRETS__BACKEND",
                "airflow.secrets.environment_variables.EnvironmentVariablesBackend",
            ),
            ("AIRFLOW__CORE__FERNET_KEY_SECRET", "airflow/fernet"),
        ],
    )
    .unwrap();
    assert_eq!(config.fernet_key, None);
}

#[test]
fn secret_with_a_custom_backend_is_refused() {
    let backend = "airflow.providers.hashicorp.secrets.vault.VaultBackend";
    let err = resolve(
        Some(&format!(
            "[secrets]\nbackend = {backend}\n[core]\nfernet_key_secret = airflow/fernet\n"
        )),
        &[],
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ConfigError::SecretsBackend { .. }), "{err:?}");
    assert!(message.contains(backend), "{message}");
    assert!(message.contains("[core] fernet_key_secret"), "{message}");
    let err = resolve(
        None,
        &[
            ("AIRFLOW__SECRETS__BACKEND", backend),
            ("AIRFLOW__API_AUTH__JWT_SECRET_SECRET", "jwt"),
        ],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("AIRFLOW__API_AUTH__JWT_SECRET_SECRET"),
        "{err}"
    );
    // A backend alone, with no _secret setting to look up, is fine.
    assert!(resolve(None, &[("AIRFLOW__SECRETS__BACKEND", backend)]).is_ok());
}

#[test]
fn deprecated_names_are_read_after_the_new_ones() {
    let config = resolve(
        Some("[core]\nsql_alchemy_conn = sqlite:////old.db\nmax_num_rendered_ti_fields_per_task = 7\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Sqlite("/old.db".into()))
    );
    assert_eq!(config.num_dag_runs_to_retain_rendered_fields, 7);
    let config = resolve(
        Some("[core]\nsql_alchemy_conn = sqlite:////old.db\n[database]\nsql_alchemy_conn = sqlite:////new.db\n"),
        &[("AIRFLOW__CORE__SQL_ALCHEMY_CONN", "sqlite:////old-env.db")],
    )
    .unwrap();
    // Environment (even the old name) before the file.
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Sqlite("/old-env.db".into()))
    );
}

#[test]
fn values_are_interpolated_and_expanded() {
    let config = resolve(
        Some("[DEFAULT]\nroot = /srv\n[database]\nsql_alchemy_conn = sqlite:///%(root)s/$DB_NAME.db\n[api_auth]\njwt_private_key_path = ~/keys/k.pem\n"),
        &[("DB_NAME", "airflow"), ("HOME", "/home/af")],
    )
    .unwrap();
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Sqlite("/srv/airflow.db".into()))
    );
    assert_eq!(
        config.auth.jwt_private_key_path,
        Some(PathBuf::from("/home/af/keys/k.pem"))
    );
}

#[test]
fn postgres_scheme_is_upgraded_in_the_report_as_airflow_does() {
    let config = resolve(
        None,
        &[(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "postgres://u:pw@h/db",
        )],
    )
    .unwrap();
    let e = entry(&config, "database", "sql_alchemy_conn");
    assert_eq!(e.value.as_deref(), Some("postgresql://u:pw@h/db"));
    assert_eq!(
        e.display_value(false).as_deref(),
        Some("postgresql://u:***@h/db")
    );
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Postgres("postgres://u:pw@h/db".into()))
    );
}

#[test]
fn our_database_url_wins_over_sql_alchemy_conn() {
    let file = "[database]\nsql_alchemy_conn = sqlite:////airflow.db\n";
    let config = resolve(Some(file), &[(ENV_DATABASE_URL, "sqlite:///tmp/x.db")]).unwrap();
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Sqlite("/tmp/x.db".into()))
    );
    let mut config = resolve(
        Some(&format!(
            "{file}[execution_api_server]\ndatabase_url = sqlite://ours.db\n"
        )),
        &[],
    )
    .unwrap();
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Sqlite("ours.db".into()))
    );
    config.set_database_url("postgres://u:p@h/db").unwrap();
    assert_eq!(
        config.database,
        Some(DatabaseTarget::Postgres("postgres://u:p@h/db".into()))
    );
    assert_eq!(
        entry(&config, SERVER_SECTION, "database_url").source,
        Source::Flag("--database-url".into())
    );
    let err = config.set_database_url("mysql://h/db").unwrap_err();
    assert!(
        err.to_string().contains("unsupported database URL"),
        "{err}"
    );
}

#[test]
fn bad_values_name_the_option_the_value_and_what_is_expected() {
    for (pairs, needles) in [
        (
            vec![("AIRFLOW__API_AUTH__JWT_LEEWAY", "ten")],
            vec![
                "[api_auth] jwt_leeway",
                "AIRFLOW__API_AUTH__JWT_LEEWAY",
                "`ten`",
                "seconds",
            ],
        ),
        (
            vec![("AIRFLOW__CORE__MULTI_TEAM", "yes")],
            vec!["[core] multi_team", "`yes`", "boolean"],
        ),
        (
            vec![("AIRFLOW__CORE__MAX_MAP_LENGTH", "-1")],
            vec!["[core] max_map_length", "`-1`", "non-negative"],
        ),
        (
            vec![("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "soon")],
            vec![
                "task_queued_timeout",
                "`soon`",
                "positive number of seconds",
            ],
        ),
        (
            vec![("AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", "0")],
            vec!["jwt_expiration_time", "at least 1 second"],
        ),
        (
            vec![("AIRFLOW__EXECUTION_API__JWT_AUDIENCE", "")],
            vec!["jwt_audience", "at least one audience"],
        ),
        (
            vec![(ENV_BIND, "not-an-address")],
            vec!["`not-an-address`", ENV_BIND],
        ),
        (
            vec![(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "mysql://u:secret@h/db",
            )],
            vec!["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "MySQL"],
        ),
    ] {
        let err = resolve(None, &pairs).unwrap_err();
        let message = err.to_string();
        for needle in needles {
            assert!(
                message.contains(needle),
                "{pairs:?}: `{needle}` not in: {message}"
            );
        }
        assert!(!message.contains("secret@"), "{message}");
    }
    let err = resolve(Some("[core]\nmulti_team = maybe\n"), &[]).unwrap_err();
    assert!(err.to_string().contains(CFG), "{err}");
}

#[test]
fn python_number_and_boolean_parsing() {
    assert_eq!(py_int(" 1_024 "), Some(1024));
    assert_eq!(py_int("-3"), Some(-3));
    assert_eq!(py_int("1__0"), None);
    assert_eq!(py_int("0x10"), None);
    assert_eq!(py_float("600.0"), Some(600.0));
    assert_eq!(py_float("1e3"), Some(1000.0));
    let ok = |pairs: &[(&str, &str)]| resolve(None, pairs).unwrap();
    assert_eq!(
        ok(&[("AIRFLOW__CORE__MAX_MAP_LENGTH", "2048.0")]).max_map_length,
        2048
    );
    for (text, expected) in [
        ("TRUE", true),
        ("t", true),
        ("1", true),
        (" False ", false),
        ("true # yes", true),
    ] {
        assert_eq!(
            ok(&[("AIRFLOW__CORE__MULTI_TEAM", text)]).multi_team,
            expected,
            "{text}"
        );
    }
    assert!(resolve(None, &[("AIRFLOW__CORE__MULTI_TEAM", "")]).is_err());
}

#[test]
fn guess_algorithm_means_infer() {
    let config = resolve(None, &[("AIRFLOW__API_AUTH__JWT_ALGORITHM", "GUESS")]).unwrap();
    assert_eq!(config.auth.jwt_algorithm, None);
}

#[test]
fn secret_and_private_key_are_mutually_exclusive() {
    let err = resolve(
        Some("[api_auth]\njwt_private_key_path = /k.pem\n"),
        &[("AIRFLOW__API_AUTH__JWT_SECRET", "s")],
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::SecretAndPrivateKey), "{err:?}");
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let err = resolve(Some("[core]\nfernet_key\n"), &[]).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(CFG) && message.contains("line 2"),
        "{message}"
    );
    let err = resolve(Some("[core]\nfernet_key = 100%\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("%%"), "{err}");
}

#[test]
fn report_masks_secrets() {
    let config = resolve(Some(FULL_FILE), &[]).unwrap();
    let text = config.format_report(false);
    assert!(
        text.contains("[api_auth] jwt_secret = ***  (/etc/airflow/airflow.cfg)"),
        "{text}"
    );
    assert!(text.contains("[core] fernet_key = ***  ("), "{text}");
    assert!(
        text.contains("[database] sql_alchemy_conn = postgresql+psycopg2://airflow:***@db:5432/airflow?sslmode=require  ("),
        "{text}"
    );
    assert!(
        !text.contains("from-file") && !text.contains("p%40ss") && !text.contains("81Hq"),
        "{text}"
    );
    assert!(
        text.contains("[core] max_map_length = 2048  (/etc/airflow/airflow.cfg)"),
        "{text}"
    );
    assert!(
        text.contains("[execution_api_server] bind = 0.0.0.0:9000  ("),
        "{text}"
    );
    assert!(
        text.contains("[execution_api_server] database_url = (unset)  (default)"),
        "{text}"
    );
    let shown = config.format_report(true);
    assert!(shown.contains("jwt_secret = from-file"), "{shown}");
    let json = config.report_json(false);
    let options = json["options"].as_array().unwrap();
    let secret = options.iter().find(|o| o["key"] == "jwt_secret").unwrap();
    assert_eq!(secret["value"], "***");
    assert_eq!(secret["source_kind"], "file");
    assert_eq!(secret["env"], "AIRFLOW__API_AUTH__JWT_SECRET");
}

#[test]
fn config_path_follows_airflow() {
    let p = |pairs: &[(&str, &str)]| config_path(&env(pairs));
    assert_eq!(
        p(&[("HOME", "/root")]),
        PathBuf::from("/root/airflow/airflow.cfg")
    );
    assert_eq!(
        p(&[("AIRFLOW_HOME", "/opt/af")]),
        PathBuf::from("/opt/af/airflow.cfg")
    );
    assert_eq!(
        p(&[
            ("AIRFLOW_HOME", "/opt/af"),
            ("AIRFLOW_CONFIG", "$AIRFLOW_HOME/other.cfg")
        ]),
        PathBuf::from("/opt/af/other.cfg")
    );
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let temp = crate::temp_dir::TempDir::new("config-load");
    let dir = temp.path().to_path_buf();
    // An explicit --config that does not exist is an error.
    let missing = dir.join("missing.cfg");
    let err = Config::load(Some(&missing), &dir).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.cfg"), "{err}");
    // A directory where the file should be (unreadable even as root).
    let err = Config::load(Some(&dir), &dir).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    // A real file.
    let cfg = dir.join("airflow.cfg");
    std::fs::write(&cfg, "[core]\nmax_map_length = 7\n").unwrap();
    // (The process environment could override max_map_length; tests do not set it.)
    let config = Config::load(Some(&cfg), &dir).unwrap();
    assert_eq!(config.file.as_deref(), Some(cfg.as_path()));
    // Non-UTF-8 text.
    std::fs::write(&cfg, b"[core]\nfernet_key = \xff\n").unwrap();
    assert!(matches!(
        Config::load(Some(&cfg), &dir),
        Err(ConfigError::Read { .. })
    ));
    // The obsolete TOML file is refused rather than ignored.
    std::fs::write(dir.join(OBSOLETE_CONFIG_FILE_NAME), "[server]\n").unwrap();
    let err = Config::load(None, &dir).unwrap_err();
    assert!(err.to_string().contains("no longer read"), "{err}");
}
