//! Server configuration: a TOML file overridden by environment variables with Airflow's names.
//!
//! Resolution is pure: [`Config::resolve`] takes the file's text and the environment as a map, so
//! tests never touch the process environment. [`Config::load`] is the thin impure wrapper that
//! reads the file and `std::env`.
//!
//! Precedence, highest first: command-line flags (applied by the CLI), environment variables, the
//! TOML file (`--config FILE`, or `<data-dir>/config.toml` when present), built-in defaults.
//!
//! ```toml
//! [api_auth]                      # Airflow's [api_auth] section
//! jwt_secret = "..."              # AIRFLOW__API_AUTH__JWT_SECRET
//! jwt_algorithm = "HS512"         # AIRFLOW__API_AUTH__JWT_ALGORITHM ("GUESS" = infer from the key)
//! jwt_private_key_path = "k.pem"  # AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH
//! trusted_jwks_url = "jwks.json"  # AIRFLOW__API_AUTH__TRUSTED_JWKS_URL (file path or http(s) URL)
//! jwt_issuer = "airflow"          # AIRFLOW__API_AUTH__JWT_ISSUER
//! jwt_leeway = 10                 # AIRFLOW__API_AUTH__JWT_LEEWAY (seconds)
//! jwt_kid = "my-key"              # AIRFLOW__API_AUTH__JWT_KID
//! jwks_refresh_interval = 300     # EXECUTION_API_JWKS_REFRESH_INTERVAL (seconds; ours)
//! jwks_min_refresh_interval = 30  # EXECUTION_API_JWKS_MIN_REFRESH_INTERVAL (seconds between
//!                                 #   refreshes an unknown `kid` may trigger; ours)
//!
//! [execution_api]                 # Airflow's [execution_api] section
//! jwt_audience = "urn:airflow.apache.org:task"  # AIRFLOW__EXECUTION_API__JWT_AUDIENCE
//! jwt_expiration_time = 600       # AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME (seconds)
//!
//! [server]                        # ours
//! bind = "127.0.0.1:8080"         # EXECUTION_API_BIND
//! database_url = "postgres://..." # EXECUTION_API_DATABASE_URL
//! token_cache_size = 10000        # EXECUTION_API_TOKEN_CACHE_SIZE
//! workload_token_ttl = 86400      # EXECUTION_API_WORKLOAD_TOKEN_TTL (seconds, default for `token mint`)
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Default listening address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Name of the optional configuration file inside the data directory.
pub const CONFIG_FILE_NAME: &str = "config.toml";
/// Airflow's default Execution API audience.
pub const DEFAULT_AUDIENCE: &str = "urn:airflow.apache.org:task";
/// Airflow's default execution-token lifetime (`[execution_api] jwt_expiration_time`).
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(600);
/// Default lifetime of workload tokens minted by `server token mint`.
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Airflow's default clock leeway (`[api_auth] jwt_leeway`).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);
/// Default period of the background JWKS refresh.
pub const DEFAULT_JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Default minimum time between two refreshes triggered by an unknown `kid`.
pub const DEFAULT_JWKS_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Environment variable setting the background JWKS refresh period (seconds).
pub const ENV_JWKS_REFRESH_INTERVAL: &str = "EXECUTION_API_JWKS_REFRESH_INTERVAL";
/// Environment variable setting the minimum time between unknown-`kid` refreshes (seconds).
pub const ENV_JWKS_MIN_REFRESH_INTERVAL: &str = "EXECUTION_API_JWKS_MIN_REFRESH_INTERVAL";
/// Default capacity of the cross-request verified-token cache.
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 10_000;

/// Environment variable naming the data directory (same as `--data-dir`).
pub const ENV_DATA_DIR: &str = "EXECUTION_API_DATA_DIR";
/// Environment variable naming the database URL (same as `--database-url`).
pub const ENV_DATABASE_URL: &str = "EXECUTION_API_DATABASE_URL";
/// Environment variable naming the listening address (same as `serve --bind`).
pub const ENV_BIND: &str = "EXECUTION_API_BIND";
/// Environment variable setting the verified-token cache capacity.
pub const ENV_TOKEN_CACHE_SIZE: &str = "EXECUTION_API_TOKEN_CACHE_SIZE";
/// Environment variable setting the default workload-token lifetime of `token mint`.
pub const ENV_WORKLOAD_TOKEN_TTL: &str = "EXECUTION_API_WORKLOAD_TOKEN_TTL";

/// The resolved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Signing and validation settings.
    pub auth: AuthConfig,
    /// Address `serve` listens on.
    pub bind: SocketAddr,
    /// Database URL; `None` means SQLite in the data directory.
    pub database_url: Option<String>,
    /// Capacity of the verified-token cache.
    pub token_cache_size: usize,
    /// Default lifetime of workload tokens minted by the CLI.
    pub workload_token_ttl: Duration,
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
    /// Required and emitted `aud` (`[execution_api] jwt_audience`).
    pub jwt_audience: String,
    /// Lifetime of execution tokens (`[execution_api] jwt_expiration_time`).
    pub jwt_expiration_time: Duration,
    /// Period of the background JWKS refresh (`[api_auth] jwks_refresh_interval`).
    pub jwks_refresh_interval: Duration,
    /// Minimum time between refreshes an unknown `kid` triggers
    /// (`[api_auth] jwks_min_refresh_interval`).
    pub jwks_min_refresh_interval: Duration,
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
    /// The configuration file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid configuration file{}: {message}", origin.as_ref().map(|p| format!(" `{}`", p.display())).unwrap_or_default())]
    Toml {
        /// The file, when known.
        origin: Option<PathBuf>,
        /// The parser's explanation.
        message: String,
    },
    /// A setting has a value of the wrong shape.
    #[error("invalid value `{value}` for {name}: {reason}")]
    Invalid {
        /// The environment variable or TOML key.
        name: String,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// Both a shared secret and a private key were configured.
    #[error(
        "jwt_secret and jwt_private_key_path are mutually exclusive: configure either a shared \
         secret (AIRFLOW__API_AUTH__JWT_SECRET) or a private key (AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH), not both"
    )]
    SecretAndPrivateKey,
}

/// The file's shape: Airflow's sections plus our `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    api_auth: FileApiAuth,
    #[serde(default)]
    execution_api: FileExecutionApi,
    #[serde(default)]
    server: FileServer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApiAuth {
    jwt_secret: Option<String>,
    jwt_algorithm: Option<String>,
    jwt_private_key_path: Option<PathBuf>,
    trusted_jwks_url: Option<String>,
    jwt_issuer: Option<String>,
    jwt_leeway: Option<u64>,
    jwt_kid: Option<String>,
    jwks_refresh_interval: Option<u64>,
    jwks_min_refresh_interval: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExecutionApi {
    jwt_audience: Option<String>,
    jwt_expiration_time: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    bind: Option<String>,
    database_url: Option<String>,
    token_cache_size: Option<usize>,
    workload_token_ttl: Option<u64>,
}

/// Where a setting came from, for error messages.
struct Setting<'a> {
    env: &'a HashMap<String, String>,
}

impl Setting<'_> {
    /// A non-empty environment value; an empty variable counts as unset.
    fn env(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn string(&self, name: &str, file: Option<String>) -> Option<String> {
        self.env(name)
            .map(str::to_owned)
            .or(file)
            .filter(|v| !v.is_empty())
    }

    /// The environment value parsed, else the file's (already typed by serde).
    fn parsed<T: FromStr>(
        &self,
        name: &str,
        file: Option<T>,
        reason: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        match self.env(name) {
            Some(raw) => raw
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ConfigError::Invalid {
                    name: name.to_owned(),
                    value: raw.to_owned(),
                    reason,
                }),
            None => Ok(file),
        }
    }
}

impl Config {
    /// Resolves the configuration from a TOML document (`None`: no file) and an environment map.
    ///
    /// `origin` only labels errors.
    pub fn resolve(
        toml_text: Option<&str>,
        origin: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file: FileConfig = match toml_text {
            Some(text) => toml::from_str(text).map_err(|e| ConfigError::Toml {
                origin: origin.map(Path::to_path_buf),
                message: e.to_string(),
            })?,
            None => FileConfig::default(),
        };
        let s = Setting { env };
        let FileConfig {
            api_auth: a,
            execution_api: x,
            server: srv,
        } = file;

        let jwt_secret = s.string("AIRFLOW__API_AUTH__JWT_SECRET", a.jwt_secret);
        let jwt_private_key_path = s
            .string(
                "AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH",
                a.jwt_private_key_path
                    .map(|p| p.to_string_lossy().into_owned()),
            )
            .map(PathBuf::from);
        if jwt_secret.is_some() && jwt_private_key_path.is_some() {
            return Err(ConfigError::SecretAndPrivateKey);
        }
        // Airflow's default is the literal "GUESS": infer from the key.
        let jwt_algorithm = s
            .string("AIRFLOW__API_AUTH__JWT_ALGORITHM", a.jwt_algorithm)
            .filter(|alg| !alg.eq_ignore_ascii_case("GUESS"));
        let jwt_leeway = s
            .parsed(
                "AIRFLOW__API_AUTH__JWT_LEEWAY",
                a.jwt_leeway,
                "expected a number of seconds",
            )?
            .map_or(DEFAULT_LEEWAY, Duration::from_secs);
        let jwt_expiration_time = s
            .parsed(
                "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME",
                x.jwt_expiration_time,
                "expected a number of seconds",
            )?
            .map_or(DEFAULT_EXPIRATION, Duration::from_secs);
        if jwt_expiration_time.is_zero() {
            return Err(ConfigError::Invalid {
                name: "jwt_expiration_time".into(),
                value: "0".into(),
                reason: "must be at least 1 second",
            });
        }

        let jwks_refresh_interval = s
            .parsed(
                ENV_JWKS_REFRESH_INTERVAL,
                a.jwks_refresh_interval,
                "expected a number of seconds",
            )?
            .map_or(DEFAULT_JWKS_REFRESH_INTERVAL, Duration::from_secs);
        let jwks_min_refresh_interval = s
            .parsed(
                ENV_JWKS_MIN_REFRESH_INTERVAL,
                a.jwks_min_refresh_interval,
                "expected a number of seconds",
            )?
            .map_or(DEFAULT_JWKS_MIN_REFRESH_INTERVAL, Duration::from_secs);
        if jwks_refresh_interval.is_zero() {
            return Err(ConfigError::Invalid {
                name: "jwks_refresh_interval".into(),
                value: "0".into(),
                reason: "must be at least 1 second",
            });
        }

        let auth = AuthConfig {
            jwt_secret,
            jwt_algorithm,
            jwt_private_key_path,
            trusted_jwks_url: s.string("AIRFLOW__API_AUTH__TRUSTED_JWKS_URL", a.trusted_jwks_url),
            jwt_issuer: s.string("AIRFLOW__API_AUTH__JWT_ISSUER", a.jwt_issuer),
            jwt_leeway,
            jwt_kid: s.string("AIRFLOW__API_AUTH__JWT_KID", a.jwt_kid),
            jwt_audience: s
                .string("AIRFLOW__EXECUTION_API__JWT_AUDIENCE", x.jwt_audience)
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            jwt_expiration_time,
            jwks_refresh_interval,
            jwks_min_refresh_interval,
        };

        let bind_raw = s
            .string(ENV_BIND, srv.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = parse_bind(&bind_raw).map_err(|reason| ConfigError::Invalid {
            name: "bind address".into(),
            value: bind_raw.clone(),
            reason,
        })?;
        let token_cache_size = s
            .parsed(
                ENV_TOKEN_CACHE_SIZE,
                srv.token_cache_size,
                "expected a number of entries",
            )?
            .unwrap_or(DEFAULT_TOKEN_CACHE_SIZE);
        let workload_token_ttl = s
            .parsed(
                ENV_WORKLOAD_TOKEN_TTL,
                srv.workload_token_ttl,
                "expected a number of seconds",
            )?
            .map_or(DEFAULT_WORKLOAD_TTL, Duration::from_secs);

        Ok(Config {
            auth,
            bind,
            database_url: s.string(ENV_DATABASE_URL, srv.database_url),
            token_cache_size,
            workload_token_ttl,
        })
    }

    /// Reads `config_file` (required to exist) or else `<data_dir>/config.toml` (if present),
    /// and the process environment, then [`resolve`](Config::resolve)s them.
    pub fn load(config_file: Option<&Path>, data_dir: &Path) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let (text, origin) = match config_file {
            Some(path) => (Some(read(path)?), Some(path.to_path_buf())),
            None => {
                let path = data_dir.join(CONFIG_FILE_NAME);
                match std::fs::read_to_string(&path) {
                    Ok(text) => (Some(text), Some(path)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
                    Err(source) => return Err(ConfigError::Read { path, source }),
                }
            }
        };
        Config::resolve(text.as_deref(), origin.as_deref(), &env)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
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
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn resolve(toml: Option<&str>, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::resolve(toml, None, &env(pairs))
    }

    #[test]
    fn defaults_with_nothing_configured() {
        let config = resolve(None, &[]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.database_url, None);
        assert_eq!(config.token_cache_size, DEFAULT_TOKEN_CACHE_SIZE);
        assert_eq!(config.workload_token_ttl, DEFAULT_WORKLOAD_TTL);
        let auth = config.auth;
        assert_eq!(auth.jwt_secret, None);
        assert_eq!(auth.jwt_private_key_path, None);
        assert_eq!(auth.jwt_algorithm, None);
        assert_eq!(auth.jwt_audience, "urn:airflow.apache.org:task");
        assert_eq!(auth.jwt_expiration_time, Duration::from_secs(600));
        assert_eq!(auth.jwt_leeway, Duration::from_secs(10));
    }

    #[test]
    fn file_values_are_read() {
        let toml = r#"
            [api_auth]
            jwt_secret = "from-file"
            jwt_algorithm = "HS256"
            jwt_issuer = "airflow"
            jwt_leeway = 3
            jwt_kid = "k1"
            trusted_jwks_url = "https://example.test/jwks.json"
            jwks_refresh_interval = 60
            jwks_min_refresh_interval = 5

            [execution_api]
            jwt_audience = "aud"
            jwt_expiration_time = 120

            [server]
            bind = "0.0.0.0:9000"
            database_url = "postgres://u@localhost/db"
            token_cache_size = 5
            workload_token_ttl = 60
        "#;
        let config = resolve(Some(toml), &[]).unwrap();
        assert_eq!(config.auth.jwt_secret.as_deref(), Some("from-file"));
        assert_eq!(config.auth.jwt_algorithm.as_deref(), Some("HS256"));
        assert_eq!(config.auth.jwt_issuer.as_deref(), Some("airflow"));
        assert_eq!(config.auth.jwt_leeway, Duration::from_secs(3));
        assert_eq!(config.auth.jwt_kid.as_deref(), Some("k1"));
        assert_eq!(
            config.auth.trusted_jwks_url.as_deref(),
            Some("https://example.test/jwks.json")
        );
        assert_eq!(config.auth.jwks_refresh_interval, Duration::from_secs(60));
        assert_eq!(
            config.auth.jwks_min_refresh_interval,
            Duration::from_secs(5)
        );
        assert_eq!(config.auth.jwt_audience, "aud");
        assert_eq!(config.auth.jwt_expiration_time, Duration::from_secs(120));
        assert_eq!(config.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(
            config.database_url.as_deref(),
            Some("postgres://u@localhost/db")
        );
        assert_eq!(config.token_cache_size, 5);
        assert_eq!(config.workload_token_ttl, Duration::from_secs(60));
    }

    #[test]
    fn environment_overrides_file() {
        let toml = "[api_auth]\njwt_secret = \"from-file\"\njwt_leeway = 3\n[execution_api]\njwt_audience = \"file-aud\"\n";
        let config = resolve(
            Some(toml),
            &[
                ("AIRFLOW__API_AUTH__JWT_SECRET", "from-env"),
                ("AIRFLOW__API_AUTH__JWT_LEEWAY", "7"),
                ("AIRFLOW__API_AUTH__JWT_ISSUER", "iss-env"),
                ("AIRFLOW__API_AUTH__JWT_KID", "kid-env"),
                ("AIRFLOW__API_AUTH__JWT_ALGORITHM", "HS384"),
                ("AIRFLOW__API_AUTH__TRUSTED_JWKS_URL", "/etc/jwks.json"),
                ("AIRFLOW__EXECUTION_API__JWT_AUDIENCE", "env-aud"),
                ("AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", "30"),
                (ENV_DATABASE_URL, "sqlite:///tmp/x.db"),
                (ENV_BIND, "localhost:0"),
                (ENV_TOKEN_CACHE_SIZE, "0"),
                (ENV_JWKS_REFRESH_INTERVAL, "2"),
                (ENV_JWKS_MIN_REFRESH_INTERVAL, "0"),
            ],
        )
        .unwrap();
        assert_eq!(config.auth.jwks_refresh_interval, Duration::from_secs(2));
        assert_eq!(config.auth.jwks_min_refresh_interval, Duration::ZERO);
        assert_eq!(config.auth.jwt_secret.as_deref(), Some("from-env"));
        assert_eq!(config.auth.jwt_leeway, Duration::from_secs(7));
        assert_eq!(config.auth.jwt_issuer.as_deref(), Some("iss-env"));
        assert_eq!(config.auth.jwt_kid.as_deref(), Some("kid-env"));
        assert_eq!(config.auth.jwt_algorithm.as_deref(), Some("HS384"));
        assert_eq!(
            config.auth.trusted_jwks_url.as_deref(),
            Some("/etc/jwks.json")
        );
        assert_eq!(config.auth.jwt_audience, "env-aud");
        assert_eq!(config.auth.jwt_expiration_time, Duration::from_secs(30));
        assert_eq!(config.database_url.as_deref(), Some("sqlite:///tmp/x.db"));
        assert_eq!(config.bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.token_cache_size, 0);
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let toml = "[api_auth]\njwt_secret = \"from-file\"\n";
        let config = resolve(Some(toml), &[("AIRFLOW__API_AUTH__JWT_SECRET", "")]).unwrap();
        assert_eq!(config.auth.jwt_secret.as_deref(), Some("from-file"));
    }

    #[test]
    fn guess_algorithm_means_infer() {
        let config = resolve(None, &[("AIRFLOW__API_AUTH__JWT_ALGORITHM", "GUESS")]).unwrap();
        assert_eq!(config.auth.jwt_algorithm, None);
    }

    #[test]
    fn secret_and_private_key_are_mutually_exclusive() {
        let err = resolve(
            Some("[api_auth]\njwt_private_key_path = \"/k.pem\"\n"),
            &[("AIRFLOW__API_AUTH__JWT_SECRET", "s")],
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::SecretAndPrivateKey), "{err:?}");
        assert!(err.to_string().contains("mutually exclusive"), "{err}");
    }

    #[test]
    fn private_key_alone_is_fine() {
        let config = resolve(
            None,
            &[("AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH", "/keys/k.pem")],
        )
        .unwrap();
        assert_eq!(
            config.auth.jwt_private_key_path,
            Some(PathBuf::from("/keys/k.pem"))
        );
    }

    #[test]
    fn malformed_numbers_name_the_variable() {
        let err = resolve(None, &[("AIRFLOW__API_AUTH__JWT_LEEWAY", "ten")]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("AIRFLOW__API_AUTH__JWT_LEEWAY"),
            "{message}"
        );
        assert!(message.contains("`ten`"), "{message}");

        let err = resolve(
            None,
            &[("AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", "0")],
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 1 second"), "{err}");
    }

    #[test]
    fn bad_bind_address_is_rejected() {
        let err = resolve(None, &[(ENV_BIND, "not-an-address")]).unwrap_err();
        assert!(err.to_string().contains("`not-an-address`"), "{err}");
        assert_eq!(
            parse_bind("localhost:8081"),
            Ok("127.0.0.1:8081".parse().unwrap())
        );
        assert!(parse_bind("localhost:http").is_err());
    }

    #[test]
    fn unknown_and_mistyped_file_keys_are_rejected() {
        let err = Config::resolve(
            Some("[api_auth]\njwt_secrett = \"x\"\n"),
            Some(Path::new("c.toml")),
            &env(&[]),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`c.toml`"), "{message}");
        assert!(message.contains("jwt_secrett"), "{message}");

        let err = resolve(Some("[api_auth]\njwt_leeway = \"ten\"\n"), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Toml { .. }), "{err:?}");
    }

    #[test]
    fn load_requires_an_explicit_file_but_not_the_data_dir_one() {
        let dir = std::env::temp_dir().join(format!("config-load-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.toml");
        assert!(matches!(
            Config::load(Some(&missing), &dir),
            Err(ConfigError::Read { .. })
        ));
        // No config.toml in the data dir: defaults (the process env may add to them).
        assert!(Config::load(None, &dir).is_ok());
        std::fs::write(dir.join(CONFIG_FILE_NAME), "[server]\nbogus = 1\n").unwrap();
        assert!(matches!(
            Config::load(None, &dir),
            Err(ConfigError::Toml { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
