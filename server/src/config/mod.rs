//! Server configuration, read as Airflow reads its own: `airflow.cfg` plus
//! `AIRFLOW__{SECTION}__{KEY}` environment variables, so one environment configures Airflow and
//! this server.
//!
//! **The file** is `--config FILE` (which must exist), else `$AIRFLOW_CONFIG`, else
//! `$AIRFLOW_HOME/airflow.cfg` (`AIRFLOW_HOME` defaults to `~/airflow`). A missing file means
//! defaults (we never create one, unlike Airflow). It is parsed as Python's `configparser` does
//! (see `config/ini.rs`): no inline comments, `%(name)s` interpolation and `%%`, indented continuation
//! lines, case-sensitive names.
//!
//! **Precedence** for each Airflow option, highest first (Airflow's `conf.get`, see `config/lookup.rs`):
//! `AIRFLOW__S__K`, `AIRFLOW__S__K_CMD`, `AIRFLOW__S__K_SECRET`, `[s] k` in the file,
//! `[s] k_cmd`, `[s] k_secret`, the default. `_CMD`/`_SECRET` only work for the options Airflow
//! lists as sensitive (of ours: `[database] sql_alchemy_conn`, `[core] fernet_key`,
//! `[api_auth] jwt_secret`). `_SECRET` consults `[secrets] backend`: with none configured (or
//! Airflow's environment-variable or metastore backend, which hold no configuration) it yields
//! nothing and the lookup goes on, as in Airflow; any other backend is refused.
//!
//! **Our own settings** keep their `EXECUTION_API_*` variables and may also be written in
//! `airflow.cfg` under `[execution_api_server]`: `bind`, `database_url`, `token_cache_size`, `token_cache_bytes`,
//! `workload_token_ttl`, `jwks_refresh_interval`, `jwks_min_refresh_interval`, `ownership`. The variable wins
//! over the file; an empty variable counts as unset. `--database-url`,
//! `EXECUTION_API_DATABASE_URL` or `[execution_api_server] database_url` win over
//! `[database] sql_alchemy_conn`.
//!
//! Resolution is pure: [`Config::resolve`] takes the file's text, the environment as a map and a
//! [`CommandRunner`]. [`Config::load`] is the thin wrapper over the real file, environment and
//! processes. Every resolved value is recorded with where it came from ([`Config::report`]),
//! which `server config` prints.

pub mod database;
mod ini;
mod lookup;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use database::DatabaseUrlError;
pub use lookup::{CommandRunner, SystemCommandRunner, expand_env_var, shlex_split};

use crate::store::DatabaseTarget;
use ini::Ini;
use lookup::{Lookup, OptionSpec, env_var_name};

/// Default listening address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// The configuration file name inside `AIRFLOW_HOME`.
pub const CONFIG_FILE_NAME: &str = "airflow.cfg";
/// The TOML file earlier versions read from the data directory; refused now, so that settings
/// in it are not silently dropped.
pub const OBSOLETE_CONFIG_FILE_NAME: &str = "config.toml";
/// Our section in `airflow.cfg`.
pub const SERVER_SECTION: &str = "execution_api_server";
/// Airflow's default Execution API audience.
pub const DEFAULT_AUDIENCE: &str = "urn:airflow.apache.org:task";
/// Airflow's default execution-token lifetime (`[execution_api] jwt_expiration_time`).
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(600);
/// Airflow's default `[scheduler] task_queued_timeout`: the lifetime of workload tokens.
pub const DEFAULT_TASK_QUEUED_TIMEOUT: Duration = Duration::from_secs(600);
/// Airflow's default clock leeway (`[api_auth] jwt_leeway`).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);
/// Default period of the background JWKS refresh.
pub const DEFAULT_JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Default minimum time between two refreshes triggered by an unknown `kid`.
pub const DEFAULT_JWKS_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Default capacity of the cross-request verified-token cache.
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 10_000;
/// Default byte budget of the verified-token cache (64 MiB): large tokens evict sooner.
pub const DEFAULT_TOKEN_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Environment variable naming the Airflow home (default `~/airflow`).
pub const ENV_AIRFLOW_HOME: &str = "AIRFLOW_HOME";
/// Environment variable naming the configuration file (default `$AIRFLOW_HOME/airflow.cfg`).
pub const ENV_AIRFLOW_CONFIG: &str = "AIRFLOW_CONFIG";
/// Environment variable setting the background JWKS refresh period (seconds).
pub const ENV_JWKS_REFRESH_INTERVAL: &str = "EXECUTION_API_JWKS_REFRESH_INTERVAL";
/// Environment variable setting the minimum time between unknown-`kid` refreshes (seconds).
pub const ENV_JWKS_MIN_REFRESH_INTERVAL: &str = "EXECUTION_API_JWKS_MIN_REFRESH_INTERVAL";
/// Environment variable naming the data directory (same as `--data-dir`).
pub const ENV_DATA_DIR: &str = "EXECUTION_API_DATA_DIR";
/// Environment variable naming the database URL (same as `--database-url`).
pub const ENV_DATABASE_URL: &str = "EXECUTION_API_DATABASE_URL";
/// Environment variable naming the listening address (same as `serve --bind`).
pub const ENV_BIND: &str = "EXECUTION_API_BIND";
/// Environment variable setting the verified-token cache capacity.
pub const ENV_TOKEN_CACHE_SIZE: &str = "EXECUTION_API_TOKEN_CACHE_SIZE";
/// Environment variable setting the verified-token cache's byte budget.
pub const ENV_TOKEN_CACHE_BYTES: &str = "EXECUTION_API_TOKEN_CACHE_BYTES";
/// Environment variable overriding the workload-token lifetime of `token mint` (seconds;
/// default: `[scheduler] task_queued_timeout`).
pub const ENV_WORKLOAD_TOKEN_TTL: &str = "EXECUTION_API_WORKLOAD_TOKEN_TTL";
/// How the ownership scopes (`ti:running`, `task:self`) are enforced: `strict` or `permissive`.
pub const ENV_OWNERSHIP: &str = "EXECUTION_API_OWNERSHIP";

/// How the routes' ownership scopes are enforced (`EXECUTION_API_OWNERSHIP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// `strict` (the default): data routes need a token whose task instance is running
    /// (`ti:running`), and XCom writes and deletes need the token's own task instance
    /// (`task:self`); a finished task's tokens are not refreshed.
    Strict,
    /// `permissive`: Airflow 3.3.2's behaviour; any valid execution token may use them.
    Permissive,
}

/// The resolved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Signing and validation settings.
    pub auth: AuthConfig,
    /// Address `serve` listens on.
    pub bind: SocketAddr,
    /// The database: `--database-url`/`EXECUTION_API_DATABASE_URL`/`[execution_api_server]
    /// database_url`, else `[database] sql_alchemy_conn`; `None` when nothing is configured
    /// (the embedded SQLite database in the data directory).
    pub database: Option<DatabaseTarget>,
    /// `[core] fernet_key` as configured: comma-separated keys, `None` for none (values are
    /// then stored in plain text, as Airflow does). See [`crate::crypto::Fernet::from_config`].
    pub fernet_key: Option<String>,
    /// Capacity of the verified-token cache (entries).
    pub token_cache_size: usize,
    /// Byte budget of the verified-token cache (token and claims of every entry).
    pub token_cache_bytes: usize,
    /// Default lifetime of workload tokens minted by the CLI: `EXECUTION_API_WORKLOAD_TOKEN_TTL`,
    /// else `[execution_api_server] workload_token_ttl`, else [`Config::task_queued_timeout`].
    pub workload_token_ttl: Duration,
    /// `[scheduler] task_queued_timeout` (600 s): how long Airflow's workload tokens live.
    pub task_queued_timeout: Duration,
    /// `[core] multi_team` (false).
    pub multi_team: bool,
    /// `[core] max_map_length` (1024): limit for an XCom's `mapped_length`.
    pub max_map_length: u64,
    /// `[core] num_dag_runs_to_retain_rendered_fields` (30); 0 or less keeps every run's.
    pub num_dag_runs_to_retain_rendered_fields: i64,
    /// `[state_store] clear_on_success` (false).
    pub clear_on_success: bool,
    /// `[core] task_success_overtime` (20 s): how long a task's process may go on after it
    /// reported its final state (callbacks, listeners) before its supervisor kills it. Under
    /// strict ownership its tokens keep working that long, plus `[api_auth] jwt_leeway`.
    pub task_success_overtime: Duration,
    /// `EXECUTION_API_OWNERSHIP` or `[execution_api_server] ownership` (`strict`).
    pub ownership: Ownership,
    /// `[api] expose_stacktrace` (false). True only for the exact text `True`: Airflow compares
    /// the string (`conf.get(...) == "True"`), so `true` or `1` mean false there too.
    pub expose_stacktrace: bool,
    /// The `airflow.cfg` that was read, if any.
    pub file: Option<PathBuf>,
    /// Every option with its value and where it came from, in display order.
    pub report: Vec<ConfigEntry>,
    /// Settings that work, but not quite as Airflow's would (e.g. a relative SQLite path).
    pub warnings: Vec<String>,
}

/// Signing and validation settings, named after Airflow's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// Shared HMAC secret (`[api_auth] jwt_secret`).
    pub jwt_secret: Option<String>,
    /// Algorithm name (`[api_auth] jwt_algorithm`); `None` means infer it from the key.
    pub jwt_algorithm: Option<String>,
    /// PEM private key used for signing (`[api_auth] jwt_private_key_path`).
    pub jwt_private_key_path: Option<PathBuf>,
    /// JWKS used for validation, a file path or an http(s) URL (`[api_auth] trusted_jwks_url`).
    pub trusted_jwks_url: Option<String>,
    /// Required and emitted `iss` (`[api_auth] jwt_issuer`).
    pub jwt_issuer: Option<String>,
    /// Clock leeway for time claims (`[api_auth] jwt_leeway`).
    pub jwt_leeway: Duration,
    /// `kid` header of generated tokens (`[api_auth] jwt_kid`); `None` means the key's default.
    pub jwt_kid: Option<String>,
    /// Required and emitted `aud`: the first entry of `[execution_api] jwt_audience` (a
    /// comma-separated list in Airflow, whose generator also uses the first).
    pub jwt_audience: String,
    /// Lifetime of execution tokens (`[execution_api] jwt_expiration_time`).
    pub jwt_expiration_time: Duration,
    /// Period of the background JWKS refresh (`[execution_api_server] jwks_refresh_interval`).
    pub jwks_refresh_interval: Duration,
    /// Minimum time between refreshes an unknown `kid` triggers
    /// (`[execution_api_server] jwks_min_refresh_interval`).
    pub jwks_min_refresh_interval: Duration,
}

/// One resolved option, for `server config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    /// `airflow.cfg` section.
    pub section: String,
    /// Option name.
    pub key: String,
    /// The value as Airflow's `conf.get` would return it (`None`: not set).
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
    /// How to hide it when printing.
    pub secrecy: Secrecy,
}

/// How a value is shown by `server config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrecy {
    /// Shown as is.
    Public,
    /// Shown as `***`.
    Secret,
    /// A URL whose password is shown as `***`.
    Url,
}

impl ConfigEntry {
    /// The value for display: secrets masked unless `show_secrets`.
    pub fn display_value(&self, show_secrets: bool) -> Option<String> {
        let value = self.value.as_deref()?;
        Some(match self.secrecy {
            _ if show_secrets => value.to_owned(),
            Secrecy::Public => value.to_owned(),
            Secrecy::Secret if value.is_empty() => String::new(),
            Secrecy::Secret => "***".to_owned(),
            Secrecy::Url => database::redact(value),
        })
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Airflow's (or our) default.
    Default,
    /// `[section] key` in the file.
    File {
        /// The file.
        path: PathBuf,
        /// `[section] key`.
        key: String,
    },
    /// The output of `[section] key_cmd` in the file.
    FileCmd {
        /// The file.
        path: PathBuf,
        /// `[section] key_cmd`.
        key: String,
    },
    /// The secrets backend, at the path `[section] key_secret` names.
    FileSecret {
        /// The file.
        path: PathBuf,
        /// `[section] key_secret`.
        key: String,
    },
    /// An environment variable.
    Env(String),
    /// The output of the command in an `..._CMD` environment variable.
    EnvCmd(String),
    /// The secrets backend, at the path an `..._SECRET` environment variable names.
    EnvSecret(String),
    /// A command-line flag.
    Flag(String),
}

impl Source {
    /// A short machine-readable kind: `default`, `file`, `file_cmd`, `file_secret`, `env`,
    /// `env_cmd`, `env_secret`, `flag`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File { .. } => "file",
            Source::FileCmd { .. } => "file_cmd",
            Source::FileSecret { .. } => "file_secret",
            Source::Env(_) => "env",
            Source::EnvCmd(_) => "env_cmd",
            Source::EnvSecret(_) => "env_secret",
            Source::Flag(_) => "flag",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, .. } => write!(f, "{}", path.display()),
            Source::FileCmd { path, key } => write!(f, "{} {key}", path.display()),
            Source::FileSecret { path, key } => write!(f, "{} {key}", path.display()),
            Source::Env(name) | Source::EnvCmd(name) | Source::EnvSecret(name) => f.write_str(name),
            Source::Flag(flag) => f.write_str(flag),
        }
    }
}

/// Why a configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid `airflow.cfg` syntax, or a value cannot be
    /// interpolated.
    #[error("invalid configuration file `{path}`: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number.
        message: String,
    },
    /// The TOML file earlier versions read exists.
    #[error(
        "`{path}` is no longer read: configuration now comes from airflow.cfg \
         ($AIRFLOW_CONFIG, $AIRFLOW_HOME/airflow.cfg or --config) and AIRFLOW__* variables; \
         move its settings there (our own under [execution_api_server]) and delete it"
    )]
    ObsoleteFile {
        /// The file.
        path: PathBuf,
    },
    /// A setting has a value of the wrong shape.
    #[error("invalid value `{value}` for {name}: {reason}")]
    Invalid {
        /// The option and where it came from.
        name: String,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A `_CMD`/`_cmd` command failed.
    #[error("cannot run the command of {setting} (`{command}`): {reason}")]
    Command {
        /// The variable or `[section] key_cmd`.
        setting: String,
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
    /// A `_SECRET`/`_secret` lookup needs a secrets backend we cannot run.
    #[error(
        "{setting} asks the secrets backend for `{path}`, but [secrets] backend is `{backend}`, \
         a Python class this server cannot run; set the option itself (or its _CMD variant) instead"
    )]
    SecretsBackend {
        /// The variable or `[section] key_secret`.
        setting: String,
        /// The secret's path.
        path: String,
        /// The configured backend class.
        backend: String,
    },
    /// The database URL cannot be used.
    #[error("{setting}: {source}")]
    Database {
        /// The option and where it came from.
        setting: String,
        /// Why.
        source: DatabaseUrlError,
    },
    /// Both a shared secret and a private key were configured.
    #[error(
        "jwt_secret and jwt_private_key_path are mutually exclusive: configure either a shared \
         secret (AIRFLOW__API_AUTH__JWT_SECRET) or a private key (AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH), not both"
    )]
    SecretAndPrivateKey,
}

const fn airflow(
    section: &'static str,
    key: &'static str,
    default: Option<&'static str>,
) -> OptionSpec {
    OptionSpec {
        section,
        key,
        default,
        sensitive: false,
        deprecated: None,
    }
}

const fn sensitive(spec: OptionSpec) -> OptionSpec {
    OptionSpec {
        sensitive: true,
        ..spec
    }
}

// Airflow 3.3.2's options, defaults as `conf.get` returns them, sensitivity from its
// `sensitive_config_values`, renames from its `deprecated_options`.
// Airflow's default for sql_alchemy_conn is `sqlite:///{AIRFLOW_HOME}/airflow.db`; ours is
// "unset" (the embedded database), hence `None`.
const SQL_ALCHEMY_CONN: OptionSpec = OptionSpec {
    deprecated: Some(("core", "sql_alchemy_conn")),
    ..sensitive(airflow("database", "sql_alchemy_conn", None))
};
const FERNET_KEY: OptionSpec = sensitive(airflow("core", "fernet_key", Some("")));
const JWT_SECRET: OptionSpec = sensitive(airflow("api_auth", "jwt_secret", Some("")));
const JWT_ALGORITHM: OptionSpec = airflow("api_auth", "jwt_algorithm", None);
const JWT_PRIVATE_KEY_PATH: OptionSpec = airflow("api_auth", "jwt_private_key_path", None);
const TRUSTED_JWKS_URL: OptionSpec = airflow("api_auth", "trusted_jwks_url", None);
const JWT_ISSUER: OptionSpec = airflow("api_auth", "jwt_issuer", None);
const JWT_LEEWAY: OptionSpec = airflow("api_auth", "jwt_leeway", Some("10"));
const JWT_KID: OptionSpec = airflow("api_auth", "jwt_kid", None);
const JWT_AUDIENCE: OptionSpec = airflow("execution_api", "jwt_audience", Some(DEFAULT_AUDIENCE));
const JWT_EXPIRATION_TIME: OptionSpec =
    airflow("execution_api", "jwt_expiration_time", Some("600"));
const TASK_QUEUED_TIMEOUT: OptionSpec = airflow("scheduler", "task_queued_timeout", Some("600.0"));
const MULTI_TEAM: OptionSpec = airflow("core", "multi_team", Some("False"));
const MAX_MAP_LENGTH: OptionSpec = airflow("core", "max_map_length", Some("1024"));
const NUM_DAG_RUNS_TO_RETAIN_RENDERED_FIELDS: OptionSpec = OptionSpec {
    deprecated: Some(("core", "max_num_rendered_ti_fields_per_task")),
    ..airflow("core", "num_dag_runs_to_retain_rendered_fields", Some("30"))
};
const CLEAR_ON_SUCCESS: OptionSpec = airflow("state_store", "clear_on_success", Some("False"));
const TASK_SUCCESS_OVERTIME: OptionSpec = airflow("core", "task_success_overtime", Some("20"));
const EXPOSE_STACKTRACE: OptionSpec = airflow("api", "expose_stacktrace", Some("False"));

/// The Airflow options we read, in `server config` order: `(section, key)`.
pub const AIRFLOW_OPTIONS: &[(&str, &str)] = &[
    ("database", "sql_alchemy_conn"),
    ("core", "fernet_key"),
    ("core", "multi_team"),
    ("core", "max_map_length"),
    ("core", "num_dag_runs_to_retain_rendered_fields"),
    ("core", "task_success_overtime"),
    ("api_auth", "jwt_secret"),
    ("api_auth", "jwt_algorithm"),
    ("api_auth", "jwt_private_key_path"),
    ("api_auth", "trusted_jwks_url"),
    ("api_auth", "jwt_issuer"),
    ("api_auth", "jwt_leeway"),
    ("api_auth", "jwt_kid"),
    ("execution_api", "jwt_audience"),
    ("execution_api", "jwt_expiration_time"),
    ("scheduler", "task_queued_timeout"),
    ("state_store", "clear_on_success"),
    ("api", "expose_stacktrace"),
    ("secrets", "backend"),
];

/// Collects values and their sources while resolving.
struct Resolver<'a> {
    lookup: Lookup<'a>,
    report: Vec<ConfigEntry>,
}

impl Resolver<'_> {
    /// `conf.get` for an Airflow option, recorded.
    fn airflow(&mut self, spec: &OptionSpec, secrecy: Secrecy) -> Result<Raw, ConfigError> {
        let found = self.lookup.get(spec)?;
        self.report.push(ConfigEntry {
            section: spec.section.to_owned(),
            key: spec.key.to_owned(),
            value: found.value.clone(),
            source: found.source.clone(),
            secrecy,
        });
        Ok(Raw {
            label: label(spec.section, spec.key, &found.source),
            value: found.value,
        })
    }

    /// One of our settings: `EXECUTION_API_*` (non-empty), else `[execution_api_server] key`.
    fn ours(
        &mut self,
        key: &str,
        env_name: &str,
        default: Option<&str>,
        secrecy: Secrecy,
    ) -> Result<Raw, ConfigError> {
        let env = self.lookup.env;
        let (value, source) =
            match env.get(env_name).filter(|v| !v.trim().is_empty()) {
                Some(value) => (Some(value.clone()), Source::Env(env_name.to_owned())),
                None => match self.lookup.ini.get(SERVER_SECTION, key).map_err(|e| {
                    ConfigError::File {
                        path: self.lookup.file.map(Path::to_path_buf).unwrap_or_default(),
                        message: e.to_string(),
                    }
                })? {
                    Some(value) if !value.trim().is_empty() => (
                        Some(expand_env_var(&value, env)),
                        Source::File {
                            path: self.lookup.file.map(Path::to_path_buf).unwrap_or_default(),
                            key: format!("[{SERVER_SECTION}] {key}"),
                        },
                    ),
                    _ => (default.map(str::to_owned), Source::Default),
                },
            };
        self.report.push(ConfigEntry {
            section: SERVER_SECTION.to_owned(),
            key: key.to_owned(),
            value: value.clone(),
            source: source.clone(),
            secrecy,
        });
        Ok(Raw {
            label: label(SERVER_SECTION, key, &source),
            value,
        })
    }
}

fn label(section: &str, key: &str, source: &Source) -> String {
    match source {
        Source::Default => format!("[{section}] {key} (default)"),
        source => format!("[{section}] {key} (from {source})"),
    }
}

/// A looked-up value with the label errors use.
struct Raw {
    label: String,
    value: Option<String>,
}

impl Raw {
    fn invalid(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            name: self.label.clone(),
            value: self.value.clone().unwrap_or_default(),
            reason: reason.into(),
        }
    }

    /// The value, `None` when unset or empty (Airflow's `if value:`).
    fn non_empty(&self) -> Option<String> {
        self.value.clone().filter(|v| !v.is_empty())
    }

    /// `conf.getint`: Python's `int()`, else an integral `float()`.
    fn int(&self) -> Result<Option<i64>, ConfigError> {
        let Some(value) = &self.value else {
            return Ok(None);
        };
        py_int(value)
            .or_else(|| {
                py_float(value)
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| self.invalid("expected an integer"))
    }

    /// A non-negative `getint`.
    fn count(&self) -> Result<Option<u64>, ConfigError> {
        match self.int()? {
            Some(n) if n < 0 => Err(self.invalid("expected a non-negative integer")),
            other => Ok(other.map(|n| n as u64)),
        }
    }

    /// Whole seconds (Python `int()` only, as for `jwt_leeway`'s `converter=int`).
    fn seconds(&self) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = &self.value else {
            return Ok(None);
        };
        match py_int(value) {
            Some(n) if n >= 0 => Ok(Some(Duration::from_secs(n as u64))),
            _ => Err(self.invalid("expected a whole number of seconds")),
        }
    }

    /// `conf.getint` as seconds, at least 1.
    fn positive_seconds(&self) -> Result<Option<Duration>, ConfigError> {
        match self.int()? {
            Some(n) if n < 1 => Err(self.invalid("must be at least 1 second")),
            other => Ok(other.map(|n| Duration::from_secs(n as u64))),
        }
    }

    /// `conf.getfloat` as a positive duration.
    fn float_seconds(&self) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = &self.value else {
            return Ok(None);
        };
        match py_float(value) {
            Some(f) if f.is_finite() && f > 0.0 && f < 1e12 => Ok(Some(Duration::from_secs_f64(f))),
            _ => Err(self.invalid("expected a positive number of seconds")),
        }
    }

    /// `conf.getboolean`: `t`/`true`/`1` or `f`/`false`/`0`, any case; text after `#` ignored.
    fn boolean(&self) -> Result<Option<bool>, ConfigError> {
        let Some(value) = &self.value else {
            return Ok(None);
        };
        let lowered = value.to_lowercase();
        let mut v = lowered.trim();
        if let Some((before, _)) = v.split_once('#') {
            v = before.trim();
        }
        match v {
            "t" | "true" | "1" => Ok(Some(true)),
            "f" | "false" | "0" => Ok(Some(false)),
            _ => Err(self.invalid("expected a boolean: true/false, t/f or 1/0")),
        }
    }
}

/// Python's `int(str)`: surrounding whitespace, a sign, digits with single `_` between them.
fn py_int(value: &str) -> Option<i64> {
    let v = value.trim();
    let (negative, digits) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let n: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -n } else { n })
}

/// Python's `float(str)` (close enough: `_` between digits, `inf`/`nan` in any case).
fn py_float(value: &str) -> Option<f64> {
    let v = value.trim();
    if v.is_empty() || v.contains("__") || v.starts_with('_') || v.ends_with('_') {
        return None;
    }
    v.replace('_', "").to_lowercase().parse().ok()
}

impl Config {
    /// Resolves the configuration from an `airflow.cfg` (`Some((path, text))`; `None`: no
    /// file), an environment map and a command runner for `_CMD` settings.
    pub fn resolve(
        file: Option<(&Path, &str)>,
        env: &HashMap<String, String>,
        runner: &dyn CommandRunner,
    ) -> Result<Config, ConfigError> {
        let ini = match file {
            Some((path, text)) => Ini::parse(text).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?,
            None => Ini::default(),
        };
        let mut r = Resolver {
            lookup: Lookup {
                ini: &ini,
                file: file.map(|(path, _)| path),
                env,
                runner,
            },
            report: Vec::new(),
        };
        let mut warnings = Vec::new();

        // Airflow's options, in report order.
        let sql_alchemy_conn = r.airflow(&SQL_ALCHEMY_CONN, Secrecy::Url)?;
        let fernet_key = r.airflow(&FERNET_KEY, Secrecy::Secret)?;
        let multi_team = r.airflow(&MULTI_TEAM, Secrecy::Public)?;
        let max_map_length = r.airflow(&MAX_MAP_LENGTH, Secrecy::Public)?;
        let num_rtif = r.airflow(&NUM_DAG_RUNS_TO_RETAIN_RENDERED_FIELDS, Secrecy::Public)?;
        let task_success_overtime = r.airflow(&TASK_SUCCESS_OVERTIME, Secrecy::Public)?;
        let jwt_secret = r.airflow(&JWT_SECRET, Secrecy::Secret)?;
        let jwt_algorithm = r.airflow(&JWT_ALGORITHM, Secrecy::Public)?;
        let jwt_private_key_path = r.airflow(&JWT_PRIVATE_KEY_PATH, Secrecy::Public)?;
        let trusted_jwks_url = r.airflow(&TRUSTED_JWKS_URL, Secrecy::Public)?;
        let jwt_issuer = r.airflow(&JWT_ISSUER, Secrecy::Public)?;
        let jwt_leeway = r.airflow(&JWT_LEEWAY, Secrecy::Public)?;
        let jwt_kid = r.airflow(&JWT_KID, Secrecy::Public)?;
        let jwt_audience = r.airflow(&JWT_AUDIENCE, Secrecy::Public)?;
        let jwt_expiration_time = r.airflow(&JWT_EXPIRATION_TIME, Secrecy::Public)?;
        let task_queued_timeout = r.airflow(&TASK_QUEUED_TIMEOUT, Secrecy::Public)?;
        let clear_on_success = r.airflow(&CLEAR_ON_SUCCESS, Secrecy::Public)?;
        let expose_stacktrace = r.airflow(&EXPOSE_STACKTRACE, Secrecy::Public)?;
        r.airflow(&lookup::SECRETS_BACKEND, Secrecy::Public)?;

        // Ours.
        let bind = r.ours("bind", ENV_BIND, Some(DEFAULT_BIND), Secrecy::Public)?;
        let database_url = r.ours("database_url", ENV_DATABASE_URL, None, Secrecy::Url)?;
        let token_cache_size = r.ours(
            "token_cache_size",
            ENV_TOKEN_CACHE_SIZE,
            Some("10000"),
            Secrecy::Public,
        )?;
        let token_cache_bytes = r.ours(
            "token_cache_bytes",
            ENV_TOKEN_CACHE_BYTES,
            Some("67108864"),
            Secrecy::Public,
        )?;
        let workload_token_ttl = r.ours(
            "workload_token_ttl",
            ENV_WORKLOAD_TOKEN_TTL,
            None,
            Secrecy::Public,
        )?;
        let jwks_refresh_interval = r.ours(
            "jwks_refresh_interval",
            ENV_JWKS_REFRESH_INTERVAL,
            Some("300"),
            Secrecy::Public,
        )?;
        let jwks_min_refresh_interval = r.ours(
            "jwks_min_refresh_interval",
            ENV_JWKS_MIN_REFRESH_INTERVAL,
            Some("30"),
            Secrecy::Public,
        )?;
        let ownership = r.ours("ownership", ENV_OWNERSHIP, Some("strict"), Secrecy::Public)?;

        // Airflow rewrites these schemes on load (`_upgrade_postgres_metastore_conn`).
        if let Some(entry) = r
            .report
            .iter_mut()
            .find(|e| e.section == "database" && e.key == "sql_alchemy_conn")
            && let Some(value) = &mut entry.value
        {
            for old in ["postgres+psycopg2://", "postgres://"] {
                if let Some(rest) = value.strip_prefix(old) {
                    *value = format!("postgresql://{rest}");
                    break;
                }
            }
        }

        let database = match (database_url.non_empty(), sql_alchemy_conn.non_empty()) {
            (Some(url), _) => {
                let t = database::from_sqlx_url(url.trim()).map_err(|source| {
                    ConfigError::Database {
                        setting: database_url.label.clone(),
                        source,
                    }
                })?;
                warnings.extend(t.warnings);
                Some(t.target)
            }
            (None, Some(url)) => {
                let t = database::from_sqlalchemy_url(url.trim()).map_err(|source| {
                    ConfigError::Database {
                        setting: sql_alchemy_conn.label.clone(),
                        source,
                    }
                })?;
                warnings.extend(t.warnings);
                Some(t.target)
            }
            (None, None) => None,
        };

        let jwt_secret_value = jwt_secret.non_empty();
        let jwt_private_key_path_value = jwt_private_key_path.non_empty().map(PathBuf::from);
        if jwt_secret_value.is_some() && jwt_private_key_path_value.is_some() {
            return Err(ConfigError::SecretAndPrivateKey);
        }
        let audiences: Vec<String> = jwt_audience
            .value
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|a| a.trim().to_owned())
            .collect();
        let Some(first_audience) = audiences.first().filter(|a| !a.is_empty()).cloned() else {
            return Err(jwt_audience.invalid("expected at least one audience"));
        };
        if audiences.len() > 1 {
            warnings.push(format!(
                "[execution_api] jwt_audience lists {} audiences; only the first, `{first_audience}`, \
                 is emitted and accepted (Airflow accepts any of them)",
                audiences.len()
            ));
        }
        let jwt_expiration_time = jwt_expiration_time
            .positive_seconds()?
            .unwrap_or(DEFAULT_EXPIRATION);
        let jwks_refresh_interval_value = jwks_refresh_interval
            .seconds()?
            .unwrap_or(DEFAULT_JWKS_REFRESH_INTERVAL);
        if jwks_refresh_interval_value.is_zero() {
            return Err(jwks_refresh_interval.invalid("must be at least 1 second"));
        }
        let auth = AuthConfig {
            jwt_secret: jwt_secret_value,
            jwt_algorithm: jwt_algorithm
                .non_empty()
                .filter(|alg| !alg.eq_ignore_ascii_case("GUESS")),
            jwt_private_key_path: jwt_private_key_path_value,
            trusted_jwks_url: trusted_jwks_url.non_empty(),
            jwt_issuer: jwt_issuer.non_empty(),
            jwt_leeway: jwt_leeway.seconds()?.unwrap_or(DEFAULT_LEEWAY),
            jwt_kid: jwt_kid.non_empty(),
            jwt_audience: first_audience,
            jwt_expiration_time,
            jwks_refresh_interval: jwks_refresh_interval_value,
            jwks_min_refresh_interval: jwks_min_refresh_interval
                .seconds()?
                .unwrap_or(DEFAULT_JWKS_MIN_REFRESH_INTERVAL),
        };

        let bind_text = bind
            .value
            .clone()
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = parse_bind(&bind_text).map_err(|reason| bind.invalid(reason))?;
        let task_queued_timeout = task_queued_timeout
            .float_seconds()?
            .unwrap_or(DEFAULT_TASK_QUEUED_TIMEOUT);
        let workload_token_ttl = workload_token_ttl
            .positive_seconds()?
            .unwrap_or(task_queued_timeout);

        Ok(Config {
            auth,
            bind,
            database,
            fernet_key: fernet_key.non_empty(),
            token_cache_size: token_cache_size
                .count()?
                .map_or(DEFAULT_TOKEN_CACHE_SIZE, |n| n as usize),
            token_cache_bytes: token_cache_bytes
                .count()?
                .map_or(DEFAULT_TOKEN_CACHE_BYTES, |n| n as usize),
            workload_token_ttl,
            task_queued_timeout,
            multi_team: multi_team.boolean()?.unwrap_or(false),
            max_map_length: max_map_length.count()?.unwrap_or(1024),
            num_dag_runs_to_retain_rendered_fields: num_rtif.int()?.unwrap_or(30),
            clear_on_success: clear_on_success.boolean()?.unwrap_or(false),
            task_success_overtime: task_success_overtime
                .float_seconds()?
                .unwrap_or(Duration::from_secs(20)),
            ownership: match ownership.value.as_deref().map(str::trim) {
                None | Some("strict") => Ownership::Strict,
                Some("permissive") => Ownership::Permissive,
                Some(_) => return Err(ownership.invalid("expected `strict` or `permissive`")),
            },
            expose_stacktrace: expose_stacktrace.value.as_deref() == Some("True"),
            file: file.map(|(path, _)| path.to_path_buf()),
            report: r.report,
            warnings,
        })
    }

    /// Reads the configuration file and the process environment, running `_CMD` commands, then
    /// [`resolve`](Config::resolve)s them.
    ///
    /// The file is `config_file` (which must exist), else `$AIRFLOW_CONFIG`, else
    /// `$AIRFLOW_HOME/airflow.cfg`; those two may be missing (defaults). `data_dir` is only
    /// checked for the obsolete `config.toml`.
    pub fn load(config_file: Option<&Path>, data_dir: &Path) -> Result<Config, ConfigError> {
        let obsolete = data_dir.join(OBSOLETE_CONFIG_FILE_NAME);
        if obsolete.exists() {
            return Err(ConfigError::ObsoleteFile { path: obsolete });
        }
        let env: HashMap<String, String> = std::env::vars().collect();
        let (path, required) = match config_file {
            Some(path) => (path.to_path_buf(), true),
            None => (config_path(&env), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let file = text.as_deref().map(|text| (path.as_path(), text));
        Config::resolve(file, &env, &SystemCommandRunner)
    }

    /// Applies `--database-url` (sqlx's spelling), which wins over every configured database.
    pub fn set_database_url(&mut self, url: &str) -> Result<(), ConfigError> {
        let flag = "--database-url";
        let t = database::from_sqlx_url(url).map_err(|source| ConfigError::Database {
            setting: flag.to_owned(),
            source,
        })?;
        self.database = Some(t.target);
        self.warnings.extend(t.warnings);
        if let Some(entry) = self
            .report
            .iter_mut()
            .find(|e| e.section == SERVER_SECTION && e.key == "database_url")
        {
            entry.value = Some(url.to_owned());
            entry.source = Source::Flag(flag.to_owned());
        }
        Ok(())
    }

    /// `server config`'s text: one line per option, `[section] key = value  (source)`, secrets
    /// masked unless `show_secrets` (an empty value is `""`, newlines are `\n`), then the
    /// warnings.
    pub fn format_report(&self, show_secrets: bool) -> String {
        let mut out = String::new();
        match &self.file {
            Some(path) => out.push_str(&format!("# configuration file: {}\n", path.display())),
            None => out.push_str("# configuration file: none (defaults and environment only)\n"),
        }
        for entry in &self.report {
            let value = match entry.display_value(show_secrets) {
                // One line per option: an empty value is visible, a multi-line one escaped.
                Some(value) if value.is_empty() => "\"\"".to_owned(),
                Some(value) => value.replace('\\', "\\\\").replace('\n', "\\n"),
                None if entry.section == "database" => {
                    "(unset: the embedded SQLite database in the data directory)".to_owned()
                }
                None => "(unset)".to_owned(),
            };
            out.push_str(&format!(
                "[{}] {} = {}  ({})\n",
                entry.section, entry.key, value, entry.source
            ));
        }
        for warning in &self.warnings {
            out.push_str(&format!("# warning: {warning}\n"));
        }
        out
    }

    /// `server config --json`: `{"file": ..., "options": [{"section", "key", "value",
    /// "source", "source_kind", "env"}], "effective": {...typed values...}, "warnings": [...]}`.
    pub fn report_json(&self, show_secrets: bool) -> serde_json::Value {
        let options: Vec<serde_json::Value> = self
            .report
            .iter()
            .map(|entry| {
                serde_json::json!({
                    "section": entry.section,
                    "key": entry.key,
                    "value": entry.display_value(show_secrets),
                    "source": entry.source.to_string(),
                    "source_kind": entry.source.kind(),
                    "env": if entry.section == SERVER_SECTION { None } else { Some(env_var_name(&entry.section, &entry.key)) },
                })
            })
            .collect();
        serde_json::json!({
            "file": self.file.as_ref().map(|p| p.display().to_string()),
            "options": options,
            // The typed values the server uses, as Airflow's getboolean/getint/getfloat read them.
            "effective": {
                "multi_team": self.multi_team,
                "clear_on_success": self.clear_on_success,
                "expose_stacktrace": self.expose_stacktrace,
                "max_map_length": self.max_map_length,
                "num_dag_runs_to_retain_rendered_fields": self.num_dag_runs_to_retain_rendered_fields,
                "task_queued_timeout": self.task_queued_timeout.as_secs_f64(),
                "workload_token_ttl": self.workload_token_ttl.as_secs_f64(),
                "database": self.database.as_ref().map(|d| match d {
                    DatabaseTarget::Sqlite(path) => format!("sqlite:{}", path.display()),
                    DatabaseTarget::Postgres(url) if show_secrets => url.clone(),
                    DatabaseTarget::Postgres(url) => database::redact(url),
                }),
                "fernet_keys": self.fernet_key.as_deref().map_or(0, |k| k.split(',').count()),
            },
            "warnings": self.warnings,
        })
    }
}

/// `$AIRFLOW_CONFIG`, else `$AIRFLOW_HOME/airflow.cfg` (`AIRFLOW_HOME` default `~/airflow`),
/// both expanded as Airflow expands them.
pub fn config_path(env: &HashMap<String, String>) -> PathBuf {
    if let Some(path) = env.get(ENV_AIRFLOW_CONFIG) {
        return PathBuf::from(expand_env_var(path, env));
    }
    let home = env
        .get(ENV_AIRFLOW_HOME)
        .map_or("~/airflow", String::as_str);
    PathBuf::from(expand_env_var(home, env)).join(CONFIG_FILE_NAME)
}

/// Parses `host:port`, accepting `localhost` for the loopback address.
pub fn parse_bind(raw: &str) -> Result<SocketAddr, &'static str> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse() {
        return Ok(addr);
    }
    match raw.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|_| "expected a port number after `localhost:`"),
        None => Err("expected an IP address and port such as `127.0.0.1:8080` or `0.0.0.0:8080`"),
    }
}

#[cfg(test)]
mod tests;
