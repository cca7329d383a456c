//! Cross-check against Airflow itself: for each scenario (an `airflow.cfg` and environment
//! variables), what Airflow 3.3.2's `conf.get` returns (`tests/airflow/config_probe.py`, run with
//! a real Airflow virtualenv's Python) must be what `server config --json --show-secrets`
//! reports, option by option, plus the typed values (`getboolean`, `getint`, `getfloat`).
//! And Fernet tokens both ways with the venv's `cryptography`.
//!
//! Needs `EXECUTION_API_TEST_AIRFLOW_VENV`, the path of a virtualenv with
//! `apache-airflow-core==3.3.2` (CI's `.ci/test` sets it). Without it the test **fails**: it
//! never passes without checking.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, bin};
use serde_json::Value;

const VENV_VAR: &str = "EXECUTION_API_TEST_AIRFLOW_VENV";
const PROBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/airflow/config_probe.py");

const KEY_1: &str = "81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=";
const KEY_2: &str = "y1Qq2IYX1D9KHzG9rxWMUEwxwxr7nNzFtKDlKFGxZ3Y=";

fn python() -> PathBuf {
    let Some(venv) = std::env::var_os(VENV_VAR) else {
        panic!(
            "{VENV_VAR} is not set: point it at a virtualenv with apache-airflow-core==3.3.2 \
             (e.g. `{VENV_VAR}=$PWD/target/airflow-venv cargo test -p execution-api-server --test \
             config_airflow`; create one with `python3 -m venv target/airflow-venv && \
             target/airflow-venv/bin/pip install apache-airflow-core==3.3.2`). This test compares \
             our configuration with Airflow's and must not pass without doing so."
        )
    };
    let python = Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "{VENV_VAR}={} has no bin/python",
        python.display()
    );
    python
}

/// One scenario: files to write under a fresh AIRFLOW_HOME, and environment variables
/// (`{home}` in a value is replaced by the AIRFLOW_HOME path).
struct Scenario {
    name: &'static str,
    cfg: Option<&'static str>,
    env: &'static [(&'static str, &'static str)],
    /// Both sides must refuse it (else both must accept it): keeps the comparison honest.
    refused: bool,
}

/// What one side said: `Err` when it refused the configuration.
type Values = Result<BTreeMap<String, Value>, String>;

fn base_env(command: &mut Command, home: &Path, scenario: &Scenario) {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.join("user-home"))
        .env("LANG", "C.UTF-8")
        .env("AIRFLOW_HOME", home);
    for (key, value) in scenario.env {
        command.env(key, value.replace("{home}", home.to_str().unwrap()));
    }
}

fn airflow_values(python: &Path, home: &Path, scenario: &Scenario) -> Values {
    let mut command = Command::new(python);
    command.arg(PROBE);
    base_env(&mut command, home, scenario);
    let output = command.output().expect("run the Airflow probe");
    assert!(
        output.status.success(),
        "[{}] probe failed: {}\n{}",
        scenario.name,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "[{}] probe printed no JSON ({e}): {}\n{}",
            scenario.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    if let Some(error) = json.get("error") {
        return Err(error.as_str().unwrap_or_default().to_owned());
    }
    Ok(serde_json::from_value(json).unwrap())
}

fn our_values(home: &Path, scenario: &Scenario) -> Values {
    let data = home.join("data");
    let mut command = Command::new(bin());
    command.args([
        "config",
        "--json",
        "--show-secrets",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    base_env(&mut command, home, scenario);
    let output = command.output().expect("run server config");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let json: Value = serde_json::from_slice(&output.stdout).expect("server config --json");
    let mut values = BTreeMap::new();
    for option in json["options"].as_array().unwrap() {
        let name = format!(
            "{}.{}",
            option["section"].as_str().unwrap(),
            option["key"].as_str().unwrap()
        );
        values.insert(name, option["value"].clone());
        values.insert(
            format!("source.{}", option["key"].as_str().unwrap()),
            option["source_kind"].clone(),
        );
    }
    let effective = &json["effective"];
    for key in [
        "multi_team",
        "clear_on_success",
        "max_map_length",
        "task_queued_timeout",
        "expose_stacktrace",
    ] {
        values.insert(format!("typed.{key}"), effective[key].clone());
    }
    Ok(values)
}

fn check(python: &Path, scenario: &Scenario) -> Vec<String> {
    let tmp = TempDir::new(&format!("config-airflow-{}", scenario.name));
    let home = tmp.path().join("airflow-home");
    std::fs::create_dir_all(home.join("user-home")).unwrap();
    if let Some(cfg) = scenario.cfg {
        std::fs::write(home.join("airflow.cfg"), cfg).unwrap();
    }
    let theirs = airflow_values(python, &home, scenario);
    let ours = our_values(&home, scenario);
    let mut problems = Vec::new();
    match (&theirs, &ours) {
        (Err(_), Err(_)) if scenario.refused => {}
        (Err(theirs), Err(ours)) => problems.push(format!(
            "[{}] both refuse a configuration meant to be valid: Airflow: {theirs}; ours: {ours}",
            scenario.name
        )),
        (Ok(_), Ok(_)) if scenario.refused => problems.push(format!(
            "[{}] both accept a configuration meant to be refused",
            scenario.name
        )),
        (Err(e), Ok(_)) => problems.push(format!(
            "[{}] Airflow refuses the configuration ({e}) but we accept it",
            scenario.name
        )),
        (Ok(_), Err(e)) => problems.push(format!(
            "[{}] Airflow accepts the configuration but we refuse it: {e}",
            scenario.name
        )),
        (Ok(theirs), Ok(ours)) => {
            for (name, their_value) in theirs {
                let our_value = ours.get(name).cloned().unwrap_or(Value::Null);
                if name == "database.sql_alchemy_conn"
                    && ours.get("source.sql_alchemy_conn") == Some(&Value::from("default"))
                {
                    // Unconfigured: Airflow's default is `sqlite:///$AIRFLOW_HOME/airflow.db`,
                    // ours is the embedded database (never Airflow's file by accident).
                    let expected = format!("sqlite:///{}/airflow.db", home.display());
                    if their_value.as_str() != Some(expected.as_str()) || !our_value.is_null() {
                        problems.push(format!(
                            "[{}] unconfigured sql_alchemy_conn: Airflow {their_value}, expected \
                             {expected}; ours {our_value}, expected null",
                            scenario.name
                        ));
                    }
                    continue;
                }
                let equal = match (their_value, &our_value) {
                    (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                    (a, b) => a == b,
                };
                if !equal {
                    problems.push(format!(
                        "[{}] {name}: Airflow {their_value}, ours {our_value}",
                        scenario.name
                    ));
                }
            }
        }
    }
    problems
}

const RICH_CFG: &str = r#"# A comment line
; another
[DEFAULT]
airflow_root = /srv/airflow

[core]
fernet_key = 81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=,y1Qq2IYX1D9KHzG9rxWMUEwxwxr7nNzFtKDlKFGxZ3Y=
multi_team = T
max_map_length = 2_048
num_dag_runs_to_retain_rendered_fields = 0

[database]
sql_alchemy_conn = postgresql+psycopg2://airflow:p%%40ss%%2Fw@db.example:5433/airflow?sslmode=require

[api_auth]
jwt_issuer = airflow # not a comment
jwt_leeway = 5
jwt_kid = first
  second

  third
jwt_private_key_path = %(airflow_root)s/keys/$KEY_NAME.pem
trusted_jwks_url = ~/jwks.json

[execution_api]
jwt_audience = urn:a , urn:b
jwt_expiration_time = 300

[scheduler]
task_queued_timeout = 1800.5

[state_store]
clear_on_success = 1

[api]
expose_stacktrace = true
"#;

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "nothing",
        cfg: None,
        env: &[],
        refused: false,
    },
    Scenario {
        name: "file-only",
        cfg: Some(RICH_CFG),
        env: &[("KEY_NAME", "signing")],
        refused: false,
    },
    Scenario {
        name: "env-only",
        cfg: None,
        env: &[
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "postgres://u:secret@h/db",
            ),
            ("AIRFLOW__CORE__FERNET_KEY", KEY_1),
            ("AIRFLOW__CORE__MULTI_TEAM", "false"),
            ("AIRFLOW__API_AUTH__JWT_SECRET", "env-secret"),
            ("AIRFLOW__API_AUTH__JWT_ALGORITHM", "HS256"),
            ("AIRFLOW__EXECUTION_API__JWT_AUDIENCE", "aud-from-env"),
            ("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "60"),
            ("AIRFLOW__API__EXPOSE_STACKTRACE", "True"),
            ("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "f"),
            ("AIRFLOW__CORE__MAX_MAP_LENGTH", "12.0"),
        ],
        refused: false,
    },
    Scenario {
        name: "env-wins",
        cfg: Some(RICH_CFG),
        env: &[
            ("KEY_NAME", "signing"),
            ("AIRFLOW__CORE__FERNET_KEY", KEY_2),
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "sqlite:///{home}/env.db",
            ),
            ("AIRFLOW__API_AUTH__JWT_ISSUER", ""),
            ("AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH", ""),
            ("AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", "42"),
        ],
        refused: false,
    },
    Scenario {
        name: "commands",
        cfg: Some(
            "[api_auth]\njwt_secret_cmd = printf '%%s\\n' 'from file cmd'\njwt_issuer_cmd = printf ignored\n\
             [core]\nfernet_key_cmd = printf ''\n",
        ),
        env: &[
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
                "printf sqlite:///{home}/cmd.db",
            ),
            ("AIRFLOW__API_AUTH__JWT_KID_CMD", "printf not-sensitive"),
            ("AIRFLOW__CORE__FERNET_KEY_CMD", "echo $HOME"),
        ],
        refused: false,
    },
    Scenario {
        name: "secrets-without-backend",
        cfg: Some(
            "[core]\nfernet_key_secret = airflow/fernet\n[api_auth]\njwt_secret = file-secret\n",
        ),
        env: &[
            ("AIRFLOW__API_AUTH__JWT_SECRET_SECRET", "airflow/jwt"),
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET", "airflow/db"),
        ],
        refused: false,
    },
    Scenario {
        name: "deprecated-names",
        cfg: Some(
            "[core]\nsql_alchemy_conn = sqlite:////old/airflow.db\nmax_num_rendered_ti_fields_per_task = 9\n",
        ),
        env: &[],
        refused: false,
    },
    Scenario {
        name: "airflow-config-elsewhere",
        cfg: Some("[core]\nmax_map_length = 1\n"),
        env: &[
            ("AIRFLOW_CONFIG", "{home}/elsewhere.cfg"),
            ("AIRFLOW__CORE__MULTI_TEAM", "TRUE"),
        ],
        refused: false,
    },
    Scenario {
        name: "case-and-sections",
        cfg: Some("[Core]\nmax_map_length = 5\n[core]\nMULTI_TEAM = True\nclear = x\n"),
        env: &[],
        refused: false,
    },
    Scenario {
        name: "bad-interpolation",
        cfg: Some("[core]\nfernet_key = 100%\n"),
        env: &[],
        refused: true,
    },
    Scenario {
        name: "bad-boolean",
        cfg: Some("[core]\nmulti_team = yes\n"),
        env: &[],
        refused: true,
    },
];

#[test]
fn our_configuration_is_airflows() {
    let python = python();
    let problems: Vec<String> = SCENARIOS
        .iter()
        .flat_map(|scenario| check(&python, scenario))
        .collect();
    assert!(
        problems.is_empty(),
        "{} difference(s) from Airflow:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Fernet both ways with Python's `cryptography` (the venv Airflow uses): Python decrypts what
/// we encrypt with a rotated key list, and we decrypt what Python encrypts.
#[test]
fn fernet_tokens_interoperate_with_python() {
    use execution_api_server::crypto::Fernet;

    let python = python();
    let ours = Fernet::from_config(Some(&format!("{KEY_1},{KEY_2}"))).unwrap();
    let plaintext = "p\u{e4}ss=w0rd, with \"quotes\"";
    let our_token = ours.encrypt(plaintext);
    let script = r#"
import sys
from cryptography.fernet import Fernet, MultiFernet
k1, k2, token, plaintext = sys.argv[1:5]
assert Fernet(k1.encode()).decrypt(token.encode()).decode() == plaintext, "python cannot decrypt ours"
print(MultiFernet([Fernet(k2.encode())]).encrypt(plaintext.encode()).decode())
"#;
    let output = Command::new(&python)
        .args(["-c", script, KEY_1, KEY_2, &our_token, plaintext])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let python_token = String::from_utf8(output.stdout).unwrap();
    // Encrypted with the second key only: our MultiFernet decrypts it with the second key.
    assert_eq!(ours.decrypt(python_token.trim()).unwrap(), plaintext);
}
