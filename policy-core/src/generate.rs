//! Token generation, mirroring the validator's configuration.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Header;
use serde::Serialize;
use uuid::Uuid;

use crate::config::GeneratorConfig;
use crate::keys::SigningKey;
use crate::scope::TokenType;
use crate::validate::unix_now;

/// Why a token could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The signing backend refused.
    #[error("cannot sign token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// The lifetime does not fit in a timestamp.
    #[error("token lifetime {0:?} is too long")]
    Ttl(Duration),
}

/// Makes signed tokens: `jti` (UUID v4), `iat`, `nbf`, `exp`, `aud`, `iss` (if
/// configured), `sub`, `scope`, and a `kid` header. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TokenGenerator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    key: SigningKey,
    header: Header,
    config: GeneratorConfig,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    jti: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    sub: Uuid,
    scope: &'static str,
}

impl TokenGenerator {
    /// A generator signing with `key`.
    pub fn new(key: SigningKey, config: GeneratorConfig) -> TokenGenerator {
        let mut header = Header::new(key.algorithm());
        header.kid = key.kid().map(str::to_owned);
        TokenGenerator {
            inner: Arc::new(Inner {
                key,
                header,
                config,
            }),
        }
    }

    /// A token for `sub` of type `scope`, valid from now for `ttl`.
    pub fn generate(
        &self,
        sub: Uuid,
        scope: TokenType,
        ttl: Duration,
    ) -> Result<String, GenerateError> {
        self.generate_at(sub, scope, ttl, unix_now())
    }

    /// Like [`generate`](Self::generate) with an explicit clock (seconds since
    /// the Unix epoch) for `iat` and `nbf`.
    pub fn generate_at(
        &self,
        sub: Uuid,
        scope: TokenType,
        ttl: Duration,
        now: i64,
    ) -> Result<String, GenerateError> {
        let secs = i64::try_from(ttl.as_secs()).map_err(|_| GenerateError::Ttl(ttl))?;
        let exp = now.checked_add(secs).ok_or(GenerateError::Ttl(ttl))?;
        let config = &self.inner.config;
        let claims = Outgoing {
            jti: Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp,
            aud: &config.audience,
            iss: config.issuer.as_deref(),
            sub,
            scope: scope.as_str(),
        };
        Ok(jsonwebtoken::encode(
            &self.inner.header,
            &claims,
            self.inner.key.encoding_key(),
        )?)
    }

    /// The configured lifetime of execution tokens (default 600 s).
    pub fn default_ttl(&self) -> Duration {
        self.inner.config.default_ttl
    }

    /// The signing key (its algorithm, `kid`, public JWK).
    pub fn signing_key(&self) -> &SigningKey {
        &self.inner.key
    }

    /// The configuration.
    pub fn config(&self) -> &GeneratorConfig {
        &self.inner.config
    }
}
