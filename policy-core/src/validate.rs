//! Token validation: signature with an algorithm-pinned key, then claims, then
//! time, with a verified-token cache in front of the signature check.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::cache::VerifiedCache;
use crate::claims::Claims;
use crate::config::ValidationConfig;
use crate::error::{AuthError, InvalidToken};
use crate::jwks::{JwksConfig, KeyStore, RefresherHandle, spawn_refresher};
use crate::keys::{KeyError, KeySet, SigningKey, VerifyingKey, install_crypto_provider};

/// Tokens longer than this are refused unread (ours are well under 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where a validator's keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A fixed set of keys.
    Fixed(KeySet),
    /// A JWKS file or URL, refreshed in the background.
    Jwks(JwksConfig),
}

impl KeySource {
    /// A symmetric secret for `alg` (HS256, HS384, HS512).
    pub fn secret(secret: impl AsRef<[u8]>, alg: Algorithm) -> Result<KeySource, KeyError> {
        Ok(KeySource::Fixed(KeySet::new(vec![
            VerifyingKey::from_secret(secret, alg, None)?,
        ])))
    }

    /// A PEM public key (RSA, Ed25519, P-256 or P-384; algorithm guessed).
    pub fn public_pem(pem: impl AsRef<[u8]>) -> Result<KeySource, KeyError> {
        Ok(KeySource::Fixed(KeySet::new(vec![VerifyingKey::from_pem(
            pem,
        )?])))
    }

    /// The verifying half of a signing key (the same process signs and validates).
    pub fn signing_key(key: &SigningKey) -> KeySource {
        KeySource::Fixed(KeySet::new(vec![key.verifying_key()]))
    }

    /// A JWKS at `location` (path, `file://` path or `http(s)://` URL) with default intervals.
    pub fn jwks(location: &str) -> KeySource {
        KeySource::Jwks(JwksConfig::new(location))
    }
}

/// Validates tokens. Cheap to clone (an `Arc` inside); put one in the app with
/// `App::app_data(validator.clone())`.
#[derive(Clone, Debug)]
pub struct TokenValidator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: KeyStore,
    config: ValidationConfig,
    leeway: i64,
    cache: VerifiedCache,
    verifications: AtomicU64,
    /// Dropping it (with the last validator clone) stops the refresh thread.
    refresher: OnceLock<RefresherHandle>,
}

impl Inner {
    fn refresh_keys(&self) {
        if let Some(generation) = self.keys.refresh() {
            self.cache.flush(generation);
        }
    }
}

impl TokenValidator {
    /// A validator. A JWKS source is fetched once now (an error if that
    /// fails) and then refreshed by a background thread.
    pub fn new(keys: KeySource, config: ValidationConfig) -> Result<TokenValidator, KeyError> {
        install_crypto_provider();
        let keys = match keys {
            KeySource::Fixed(set) => KeyStore::fixed(set),
            KeySource::Jwks(jwks) => KeyStore::jwks(&jwks)?,
        };
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX / 4);
        let inner = Arc::new(Inner {
            keys,
            leeway,
            cache: VerifiedCache::new(config.cache_capacity),
            config,
            verifications: AtomicU64::new(0),
            refresher: OnceLock::new(),
        });
        if let Some(interval) = inner.keys.refresh_interval() {
            let handle = spawn_refresher(Arc::downgrade(&inner), interval, Inner::refresh_keys);
            let _ = inner.refresher.set(handle);
        }
        Ok(TokenValidator { inner })
    }

    /// Validates a token (the part after `Bearer `), using the verified-token cache.
    pub fn validate(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        self.validate_at(token, unix_now())
    }

    /// Like [`validate`](Self::validate) at an explicit time (seconds since the Unix epoch).
    pub fn validate_at(&self, token: &str, now: i64) -> Result<Arc<Claims>, AuthError> {
        self.check(token, now).map_err(|e| {
            tracing::debug!(reason = %e.reason(), "token refused");
            AuthError::InvalidToken(e)
        })
    }

    /// How many signature verifications really ran (cache hits and
    /// per-request reuse do not count).
    pub fn signature_verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }

    /// How many JWKS fetches ran (0 for fixed keys).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.keys.fetches()
    }

    /// Re-reads the JWKS now (what the background thread does periodically);
    /// the cache is emptied if the key set changed. No-op for fixed keys.
    pub fn refresh_keys(&self) {
        self.inner.refresh_keys();
    }

    /// Tokens currently in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// The configuration.
    pub fn config(&self) -> &ValidationConfig {
        &self.inner.config
    }

    fn check(&self, token: &str, now: i64) -> Result<Arc<Claims>, InvalidToken> {
        let inner = &*self.inner;
        if token.is_empty() {
            return Err(InvalidToken::Malformed("empty token"));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken::Malformed("token too large"));
        }
        if let Some(claims) = inner.cache.get(token) {
            return match self.check_time(&claims, now) {
                Ok(()) => Ok(claims),
                Err(e) => {
                    if e == InvalidToken::Expired {
                        inner.cache.remove(token);
                    }
                    Err(e)
                }
            };
        }

        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidToken::Malformed(
                "expected three dot-separated segments",
            ));
        };
        let header = decode_object(header_b64, "header")?;
        if header.contains_key("crit") {
            return Err(InvalidToken::Malformed("header has `crit` extensions"));
        }
        let alg_name = match header.get("alg") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(InvalidToken::Malformed("header has no `alg` string")),
        };
        let alg = Algorithm::from_str(alg_name)
            .map_err(|_| InvalidToken::Algorithm(alg_name.chars().take(32).collect()))?;
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(InvalidToken::Malformed("header `kid` is not a string")),
        };

        let mut snapshot = inner.keys.snapshot();
        let key = match snapshot.keys.select(kid, alg) {
            Some(key) => key.clone(),
            None => {
                // Perhaps the keys rotated: one rate-limited refresh, never a wait.
                if let Some(generation) = inner.keys.refresh_for_unknown_kid() {
                    inner.cache.flush(generation);
                }
                snapshot = inner.keys.snapshot();
                snapshot
                    .keys
                    .select(kid, alg)
                    .cloned()
                    .ok_or_else(|| InvalidToken::UnknownKey(kid.map(str::to_owned)))?
            }
        };
        // The key's algorithm is pinned: `alg: HS256` against an RSA key, say, stops here.
        if key.alg != alg {
            return Err(InvalidToken::Algorithm(alg_name.to_owned()));
        }
        let message = &token[..header_b64.len() + 1 + payload_b64.len()];
        inner.verifications.fetch_add(1, Ordering::Relaxed);
        match jsonwebtoken::crypto::verify(signature_b64, message.as_bytes(), &key.key, alg) {
            Ok(true) => {}
            _ => return Err(InvalidToken::Signature),
        }

        let claims = Claims::from_payload(decode_object(payload_b64, "payload")?)?;
        if !claims.has_audience(&inner.config.audience) {
            return Err(InvalidToken::Audience);
        }
        if let Some(issuer) = &inner.config.issuer
            && claims.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(InvalidToken::Issuer);
        }
        self.check_time(&claims, now)?;
        let claims = Arc::new(claims);
        inner
            .cache
            .insert(token, Arc::clone(&claims), snapshot.generation, now);
        Ok(claims)
    }

    /// RFC 7519 with leeway: valid while `now - leeway < exp`, and once
    /// `nbf <= now + leeway` and `iat <= now + leeway`.
    fn check_time(&self, claims: &Claims, now: i64) -> Result<(), InvalidToken> {
        let leeway = self.inner.leeway;
        if claims.exp <= now.saturating_sub(leeway) {
            return Err(InvalidToken::Expired);
        }
        if claims.nbf > now.saturating_add(leeway) || claims.iat > now.saturating_add(leeway) {
            return Err(InvalidToken::NotYetValid);
        }
        Ok(())
    }
}

/// Decodes one base64url (unpadded) segment holding a JSON object.
fn decode_object(segment: &str, what: &'static str) -> Result<Map<String, Value>, InvalidToken> {
    let malformed = |why| InvalidToken::Malformed(why);
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        malformed(if what == "header" {
            "header is not base64url"
        } else {
            "payload is not base64url"
        })
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(malformed(if what == "header" {
            "header is not a JSON object"
        } else {
            "payload is not a JSON object"
        })),
    }
}
