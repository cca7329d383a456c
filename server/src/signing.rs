//! From [`AuthConfig`] to the validator and generator the app and the CLI share.
//!
//! Modes (mutually exclusive, checked by [`crate::config`]):
//! - `jwt_secret`: HMAC, HS512 unless `jwt_algorithm` says HS256/HS384;
//! - `jwt_private_key_path`: PEM private key, algorithm guessed from the key (RSA -> RS256,
//!   Ed25519 -> EdDSA, P-256 -> ES256), validation with its public half, or with
//!   `trusted_jwks_url` when set;
//! - neither: a random development secret, generated once and persisted with mode 0600 as
//!   `<data-dir>/dev-jwt-secret`, so the CLI and the server agree on it. A warning is logged.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use policy_core::{
    Algorithm, GeneratorConfig, JwksConfig, KeyError, KeySource, SigningKey, TokenGenerator,
    TokenValidator, ValidationConfig,
};

use crate::config::AuthConfig;
use crate::private_files::{create_private_dir, publish_once, warn_if_readable_by_others};

/// File name of the development secret inside the data directory.
pub const DEV_SECRET_FILE: &str = "dev-jwt-secret";

/// The validator and generator built from one configuration.
#[derive(Clone, Debug)]
pub struct Signing {
    /// Validates incoming tokens.
    pub validator: TokenValidator,
    /// Mints tokens (CLI, `/run` exchange, reissue middleware).
    pub generator: TokenGenerator,
    /// The development secret's file, when no key is configured.
    pub dev_secret: Option<PathBuf>,
}

/// Why keys could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// `jwt_algorithm` is not a JWS algorithm name.
    #[error(
        "unknown jwt_algorithm `{0}`; expected HS256, HS384, HS512, RS256, ES256, EdDSA, ... or GUESS"
    )]
    UnknownAlgorithm(String),
    /// `jwt_algorithm` does not fit the configured key.
    #[error("jwt_algorithm `{alg:?}` cannot be used with {with}")]
    AlgorithmMismatch {
        /// The configured algorithm.
        alg: Algorithm,
        /// What it was combined with.
        with: &'static str,
    },
    /// The private key file could not be read.
    #[error("cannot read jwt_private_key_path `{path}`: {source}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key material was refused.
    #[error("{context}: {source}{hint}")]
    Key {
        /// Which setting.
        context: &'static str,
        /// policy-core's reason.
        source: KeyError,
        /// What to do about it.
        hint: &'static str,
    },
    /// A JWKS can validate but not sign: the server must mint execution tokens.
    #[error(
        "trusted_jwks_url alone cannot sign tokens, but the server mints execution tokens on /run: \
         also set jwt_private_key_path (AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH)"
    )]
    JwksWithoutSigningKey,
    /// A shared secret with a JWKS makes no sense (a JWKS publishes public keys).
    #[error(
        "trusted_jwks_url cannot be combined with jwt_secret; use jwt_private_key_path with a JWKS"
    )]
    JwksWithSecret,
    /// The development secret could not be created or read.
    #[error("development secret `{path}`: {reason}")]
    DevSecret {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Builds the validator and generator for `auth`; `data_dir` holds the development secret when
/// no key is configured.
pub fn build(
    auth: &AuthConfig,
    data_dir: &Path,
    cache_capacity: usize,
    cache_bytes: usize,
) -> Result<Signing, SigningError> {
    let alg = auth
        .jwt_algorithm
        .as_deref()
        .map(|name| {
            Algorithm::from_str(name).map_err(|_| SigningError::UnknownAlgorithm(name.to_owned()))
        })
        .transpose()?;
    let validation = ValidationConfig {
        audience: auth.jwt_audience.clone(),
        issuer: auth.jwt_issuer.clone(),
        leeway: auth.jwt_leeway,
        cache_capacity,
        cache_bytes,
    };
    let generation = GeneratorConfig {
        audience: auth.jwt_audience.clone(),
        issuer: auth.jwt_issuer.clone(),
        default_ttl: auth.jwt_expiration_time,
    };

    let mut dev_secret_path = None;
    let (key, source) = if let Some(path) = &auth.jwt_private_key_path {
        let pem = std::fs::read(path).map_err(|source| SigningError::ReadKey {
            path: path.clone(),
            source,
        })?;
        let key = SigningKey::from_pem(&pem).map_err(|source| SigningError::Key {
            context: "jwt_private_key_path",
            source,
            hint: "",
        })?;
        if let Some(alg) = alg.filter(|alg| *alg != key.algorithm()) {
            return Err(SigningError::AlgorithmMismatch {
                alg,
                with: "this private key",
            });
        }
        let key = match &auth.jwt_kid {
            Some(kid) => key.with_kid(Some(kid.clone())),
            None => key,
        };
        let source = match &auth.trusted_jwks_url {
            Some(url) => {
                let mut jwks = JwksConfig::new(url);
                jwks.refresh_interval = auth.jwks_refresh_interval;
                jwks.min_refresh_interval = auth.jwks_min_refresh_interval;
                KeySource::Jwks(jwks)
            }
            None => KeySource::signing_key(&key),
        };
        (key, source)
    } else {
        if auth.trusted_jwks_url.is_some() {
            return Err(match auth.jwt_secret {
                Some(_) => SigningError::JwksWithSecret,
                None => SigningError::JwksWithoutSigningKey,
            });
        }
        let (secret, context) = match &auth.jwt_secret {
            Some(secret) => (secret.clone(), "jwt_secret"),
            None => {
                dev_secret_path = Some(data_dir.join(DEV_SECRET_FILE));
                (dev_secret(data_dir)?, "development secret")
            }
        };
        let alg = alg.unwrap_or(Algorithm::HS512);
        if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(SigningError::AlgorithmMismatch {
                alg,
                with: "jwt_secret (use HS256, HS384 or HS512)",
            });
        }
        let key = SigningKey::from_secret(secret.as_bytes(), alg, auth.jwt_kid.clone()).map_err(
            |source| SigningError::Key {
                context,
                source,
                hint: "; generate one with `openssl rand -hex 64`",
            },
        )?;
        let source = KeySource::signing_key(&key);
        (key, source)
    };

    let validator =
        TokenValidator::new(source, validation).map_err(|source| SigningError::Key {
            context: "trusted_jwks_url",
            source,
            hint: "",
        })?;
    Ok(Signing {
        validator,
        generator: TokenGenerator::new(key, generation),
        dev_secret: dev_secret_path,
    })
}

/// Reads `<data_dir>/dev-jwt-secret`, creating it (mode 0600) with 64 random bytes, hex-encoded,
/// if missing. `serve` warns whenever it signs with it: this is for development only.
pub fn dev_secret(data_dir: &Path) -> Result<String, SigningError> {
    let path = data_dir.join(DEV_SECRET_FILE);
    let err = |reason: String| SigningError::DevSecret {
        path: path.clone(),
        reason,
    };
    let created = match read_secret(&path) {
        Ok(Some(_)) => false,
        Ok(None) => {
            create_private_dir(data_dir)
                .map_err(|e| err(format!("cannot create {}: {e}", data_dir.display())))?;
            publish_once(&path, &random_secret()).map_err(|e| err(e.to_string()))?
        }
        Err(e) => return Err(err(e)),
    };
    let secret = read_secret(&path)
        .map_err(&err)?
        .ok_or_else(|| err("disappeared after creation".into()))?;
    if created {
        tracing::info!(path = %path.display(), "no jwt_secret or jwt_private_key_path configured: generated a development secret");
    } else {
        tracing::debug!(path = %path.display(), "using the development secret");
    }
    Ok(secret)
}

/// `Ok(None)` when the file does not exist.
fn read_secret(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.is_empty() {
                return Err("file is empty; delete it to generate a new one".into());
            }
            warn_if_readable_by_others(path);
            Ok(Some(secret.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// 64 random bytes (from four v4 UUIDs: 488 random bits), hex-encoded.
fn random_secret() -> String {
    let mut secret = String::with_capacity(128);
    for _ in 0..4 {
        secret.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    secret
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use policy_core::TokenType;
    use uuid::Uuid;

    use super::*;
    use crate::config::Config;

    use crate::temp_dir::TempDir;

    fn auth(pairs: &[(&str, &str)]) -> AuthConfig {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::resolve(None, &env, &crate::config::SystemCommandRunner)
            .unwrap()
            .auth
    }

    fn round_trip(signing: &Signing) -> policy_core::Claims {
        let sub = Uuid::new_v4();
        let token = signing
            .generator
            .generate(sub, TokenType::Workload, Duration::from_secs(60))
            .unwrap();
        let claims = signing.validator.validate(&token).unwrap();
        assert_eq!(claims.sub, sub);
        assert_eq!(claims.scope, TokenType::Workload);
        (*claims).clone()
    }

    #[test]
    fn dev_secret_is_created_private_and_reused() {
        let dir = TempDir::new("signing");
        let data_dir = dir.path().join("nested/data");
        let first = build(&auth(&[]), &data_dir, 10, 1 << 20).unwrap();
        let path = data_dir.join(DEV_SECRET_FILE);
        assert_eq!(first.dev_secret.as_deref(), Some(path.as_path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let secret = std::fs::read_to_string(&path).unwrap();
        assert_eq!(secret.trim().len(), 128);

        // A second build (a restart, or the CLI) reads the same secret: tokens cross over.
        let second = build(&auth(&[]), &data_dir, 10, 1 << 20).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
        let token = first
            .generator
            .generate(
                Uuid::new_v4(),
                TokenType::Execution,
                Duration::from_secs(60),
            )
            .unwrap();
        second.validator.validate(&token).unwrap();
        assert_eq!(second.generator.signing_key().algorithm(), Algorithm::HS512);
        // No stray temporary files.
        assert_eq!(std::fs::read_dir(&data_dir).unwrap().count(), 1);
    }

    #[test]
    fn empty_dev_secret_file_is_an_error() {
        let dir = TempDir::new("signing");
        std::fs::write(dir.path().join(DEV_SECRET_FILE), "\n").unwrap();
        let err = build(&auth(&[]), dir.path(), 10, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn configured_secret_signs_and_validates_without_touching_the_data_dir() {
        let dir = TempDir::new("signing");
        let secret = "s".repeat(64);
        let signing = build(
            &auth(&[
                ("AIRFLOW__API_AUTH__JWT_SECRET", &secret),
                ("AIRFLOW__API_AUTH__JWT_ISSUER", "me"),
                ("AIRFLOW__EXECUTION_API__JWT_AUDIENCE", "aud"),
            ]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap();
        let claims = round_trip(&signing);
        assert_eq!(claims.iss.as_deref(), Some("me"));
        assert!(claims.has_audience("aud"));
        assert!(!dir.path().join(DEV_SECRET_FILE).exists());
        assert_eq!(signing.dev_secret, None);
    }

    #[test]
    fn algorithm_is_checked_against_the_secret() {
        let dir = TempDir::new("signing");
        let secret = "s".repeat(32);
        let signing = build(
            &auth(&[
                ("AIRFLOW__API_AUTH__JWT_SECRET", &secret),
                ("AIRFLOW__API_AUTH__JWT_ALGORITHM", "HS256"),
            ]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            signing.generator.signing_key().algorithm(),
            Algorithm::HS256
        );
        round_trip(&signing);

        let err = build(
            &auth(&[
                ("AIRFLOW__API_AUTH__JWT_SECRET", &secret),
                ("AIRFLOW__API_AUTH__JWT_ALGORITHM", "RS256"),
            ]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap_err();
        assert!(
            matches!(err, SigningError::AlgorithmMismatch { .. }),
            "{err}"
        );
        let err = build(
            &auth(&[
                ("AIRFLOW__API_AUTH__JWT_SECRET", &secret),
                ("AIRFLOW__API_AUTH__JWT_ALGORITHM", "XX1"),
            ]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown jwt_algorithm `XX1`"),
            "{err}"
        );
        // HS512 (the default) needs 64 bytes: the message says how to make one.
        let err = build(
            &auth(&[("AIRFLOW__API_AUTH__JWT_SECRET", "short")]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap_err();
        assert!(err.to_string().contains("openssl rand"), "{err}");
    }

    #[test]
    fn private_key_signs_with_its_guessed_algorithm() {
        let dir = TempDir::new("signing");
        let path = dir.path().join("ed25519.pem");
        // An Ed25519 test key (RFC 8410 example).
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let path_str = path.to_str().unwrap();
        let signing = build(
            &auth(&[("AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH", path_str)]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            signing.generator.signing_key().algorithm(),
            Algorithm::EdDSA
        );
        round_trip(&signing);

        let signing = build(
            &auth(&[
                ("AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH", path_str),
                ("AIRFLOW__API_AUTH__JWT_KID", "k-1"),
            ]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap();
        assert_eq!(signing.generator.signing_key().kid(), Some("k-1"));
        round_trip(&signing);

        let err = build(
            &auth(&[
                ("AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH", path_str),
                ("AIRFLOW__API_AUTH__JWT_ALGORITHM", "RS256"),
            ]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap_err();
        assert!(
            matches!(err, SigningError::AlgorithmMismatch { .. }),
            "{err}"
        );

        let missing = dir.path().join("missing.pem");
        let err = build(
            &auth(&[(
                "AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH",
                missing.to_str().unwrap(),
            )]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap_err();
        assert!(matches!(err, SigningError::ReadKey { .. }), "{err}");
    }

    #[test]
    fn jwks_needs_a_private_key() {
        let dir = TempDir::new("signing");
        let err = build(
            &auth(&[("AIRFLOW__API_AUTH__TRUSTED_JWKS_URL", "/nope.json")]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap_err();
        assert!(matches!(err, SigningError::JwksWithoutSigningKey), "{err}");
        let err = build(
            &auth(&[
                ("AIRFLOW__API_AUTH__TRUSTED_JWKS_URL", "/nope.json"),
                ("AIRFLOW__API_AUTH__JWT_SECRET", &"s".repeat(64)),
            ]),
            dir.path(),
            10,
            1 << 20,
        )
        .unwrap_err();
        assert!(matches!(err, SigningError::JwksWithSecret), "{err}");
    }
}
