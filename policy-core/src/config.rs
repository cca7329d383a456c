//! Validator and generator settings, with Airflow's defaults.

use std::time::Duration;

/// The audience Airflow puts on (and requires of) Execution API tokens.
pub const DEFAULT_AUDIENCE: &str = "urn:airflow.apache.org:task";

/// How tokens are validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationConfig {
    /// Required `aud` (default `urn:airflow.apache.org:task`).
    pub audience: String,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 10 s).
    pub leeway: Duration,
    /// Verified-token cache size in tokens (default 10 000); 0 turns it off.
    pub cache_capacity: usize,
    /// Verified-token cache size in bytes (default 64 MiB): the token text plus
    /// an estimate of what its claims hold. Whichever bound is reached first
    /// evicts. 0 turns the cache off. A token whose entry alone would take more
    /// than [`MAX_CACHED_ENTRY_BYTES`](crate::MAX_CACHED_ENTRY_BYTES) is
    /// verified on every request instead of cached.
    pub cache_bytes: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            audience: DEFAULT_AUDIENCE.to_owned(),
            issuer: None,
            leeway: Duration::from_secs(10),
            cache_capacity: 10_000,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// How tokens are generated. The `kid` header comes from the
/// [`SigningKey`](crate::SigningKey) (see [`SigningKey::with_kid`](crate::SigningKey::with_kid)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// `aud` of generated tokens (default `urn:airflow.apache.org:task`).
    pub audience: String,
    /// `iss` of generated tokens, if set.
    pub issuer: Option<String>,
    /// Lifetime of tokens made by [`TokenGenerator::default_ttl`](crate::TokenGenerator::default_ttl)
    /// users such as the reissue middleware (default 600 s, Airflow's `jwt_expiration_time`).
    pub default_ttl: Duration,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            audience: DEFAULT_AUDIENCE.to_owned(),
            issuer: None,
            default_ttl: Duration::from_secs(600),
        }
    }
}
