//! Token validation: signature with an algorithm-pinned key, then claims, then
//! time, with a verified-token cache in front of the signature check.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;

use crate::cache::VerifiedCache;
use crate::claims::Claims;
use crate::config::ValidationConfig;
use crate::error::{AuthError, Escaped, InvalidToken};
use crate::json::{Field, read_object};
use crate::jwks::{
    JwksConfig, KeyStore, RefreshAsked, RefreshCause, RefresherHandle, spawn_refresher,
};
use crate::keys::{KeyError, KeySet, SigningKey, VerifyingKey, install_crypto_provider};

/// Tokens longer than this are refused unread, with 403 `Invalid auth token`
/// (Airflow's and ours are well under 1 KiB). Tokens up to this size are
/// accepted, but one whose claims parse into a cache entry above
/// [`MAX_CACHED_ENTRY_BYTES`](crate::MAX_CACHED_ENTRY_BYTES) is verified on
/// every request rather than cached.
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
        self.keys.refresh(|generation| self.cache.flush(generation));
    }

    /// What the refresh thread runs.
    fn background_refresh(&self, cause: RefreshCause) {
        let flush = |generation| self.cache.flush(generation);
        match cause {
            RefreshCause::Periodic => self.keys.refresh(flush),
            RefreshCause::UnknownKid => self.keys.refresh_requested(flush),
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
            cache: VerifiedCache::new(config.cache_capacity, config.cache_bytes),
            config,
            verifications: AtomicU64::new(0),
            refresher: OnceLock::new(),
        });
        if let Some(interval) = inner.keys.refresh_interval() {
            let handle =
                spawn_refresher(Arc::downgrade(&inner), interval, Inner::background_refresh);
            let _ = inner.refresher.set(handle);
        }
        Ok(TokenValidator { inner })
    }

    /// Validates a token (the part after `Bearer `), using the verified-token cache.
    pub fn validate(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        self.validate_at(token, unix_now())
    }

    /// Like [`validate`](Self::validate) at an explicit time (seconds since the Unix epoch).
    ///
    /// With a JWKS, a `kid` not in the current set never waits for a fetch:
    /// it asks the background thread for a refresh (at most one per
    /// [`JwksConfig::min_refresh_interval`]) and is refused at once, with
    /// [`AuthError::KeysRefreshing`] (503, so the Task SDK retries) while
    /// that refresh is pending, and with 403 `Invalid auth token` otherwise.
    pub fn validate_at(&self, token: &str, now: i64) -> Result<Arc<Claims>, AuthError> {
        self.check(token, now).inspect_err(|e| match e {
            AuthError::InvalidToken(why) => {
                tracing::debug!(reason = %why.reason(), "token refused")
            }
            other => tracing::debug!(reason = %other, "token refused"),
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

    /// Waits (bounded by `limit`, a guard against a hung test) until `n` JWKS
    /// refresh passes, the start-up load included, have finished.
    #[cfg(test)]
    pub(crate) fn wait_for_refreshes(&self, n: u64, limit: std::time::Duration) -> bool {
        self.inner.keys.wait_for_refreshes(n, limit)
    }

    /// Tokens currently in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// Bytes the verified-token cache is charged for its tokens (their text
    /// and an estimate of their claims' memory); at most
    /// [`ValidationConfig::cache_bytes`].
    pub fn cached_bytes(&self) -> usize {
        self.inner.cache.bytes()
    }

    /// The configuration.
    pub fn config(&self) -> &ValidationConfig {
        &self.inner.config
    }

    fn check(&self, token: &str, now: i64) -> Result<Arc<Claims>, AuthError> {
        let inner = &*self.inner;
        if token.is_empty() {
            return Err(InvalidToken::Malformed("empty token").into());
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken::Malformed("token too large").into());
        }
        if let Some(claims) = inner.cache.get(token) {
            return match self.check_time(&claims, now) {
                Ok(()) => Ok(claims),
                Err(e) => {
                    if e == InvalidToken::Expired {
                        inner.cache.remove(token);
                    }
                    Err(e.into())
                }
            };
        }

        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidToken::Malformed("expected three dot-separated segments").into());
        };
        let header_json = decode_segment(header_b64, "header is not base64url")?;
        let header = Header::read(&header_json)?;
        let alg_name = header.alg.as_ref();
        let alg = Algorithm::from_str(alg_name)
            .map_err(|_| InvalidToken::Algorithm(Escaped::new(alg_name)))?;
        let kid = header.kid.as_deref();

        let mut snapshot = inner.keys.snapshot();
        let mut asked = RefreshAsked::Never;
        if snapshot.keys.select(kid, alg).is_none() {
            // Perhaps the keys rotated: ask for a refresh, never wait for one.
            asked = inner.keys.ask_refresh();
            if asked == RefreshAsked::Wake
                && let Some(refresher) = inner.refresher.get()
            {
                refresher.wake();
            }
            // A refresh may have finished since the first look.
            snapshot = inner.keys.snapshot();
        }
        let Some(key) = snapshot.keys.select(kid, alg) else {
            return Err(match asked {
                RefreshAsked::Wake | RefreshAsked::Pending => AuthError::KeysRefreshing,
                RefreshAsked::Never | RefreshAsked::RateLimited => {
                    InvalidToken::UnknownKey(kid.map(Escaped::new)).into()
                }
            });
        };
        // The key's algorithm is pinned: `alg: HS256` against an RSA key, say, stops here.
        if key.alg != alg {
            return Err(InvalidToken::Algorithm(Escaped::new(alg_name)).into());
        }
        let message = &token[..header_b64.len() + 1 + payload_b64.len()];
        inner.verifications.fetch_add(1, Ordering::Relaxed);
        if !verify_signature(key, message.as_bytes(), signature_b64) {
            return Err(InvalidToken::Signature.into());
        }

        let claims = Claims::from_json(&decode_segment(payload_b64, "payload is not base64url")?)?;
        if !claims.has_audience(&inner.config.audience) {
            return Err(InvalidToken::Audience.into());
        }
        if let Some(issuer) = &inner.config.issuer
            && claims.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(InvalidToken::Issuer.into());
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

/// Decodes one base64url (unpadded) segment.
fn decode_segment(segment: &str, why: &'static str) -> Result<Vec<u8>, InvalidToken> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| InvalidToken::Malformed(why))
}

/// The JOSE header members the validator reads.
#[derive(Default)]
struct RawHeader<'a> {
    alg: Option<Field<'a>>,
    kid: Option<Field<'a>>,
    crit: bool,
}

/// A checked JOSE header: an `alg` string, a `kid` string or none, no `crit`.
struct Header<'a> {
    alg: Cow<'a, str>,
    kid: Option<Cow<'a, str>>,
}

impl<'a> Header<'a> {
    fn read(json: &'a [u8]) -> Result<Header<'a>, InvalidToken> {
        let raw = read_object(json, |h: &mut RawHeader<'a>, name, value| match &*name {
            "alg" => h.alg = Some(value),
            "kid" => h.kid = Some(value),
            // Present at all, whatever its value: we implement no extension.
            "crit" => h.crit = true,
            _ => {}
        })
        .ok_or(InvalidToken::Malformed("header is not a JSON object"))?;
        if raw.crit {
            return Err(InvalidToken::Malformed("header has `crit` extensions"));
        }
        let Some(Field::Str(alg)) = raw.alg else {
            return Err(InvalidToken::Malformed("header has no `alg` string"));
        };
        let kid = match raw.kid {
            None | Some(Field::Null) => None,
            Some(Field::Str(kid)) => Some(kid),
            Some(_) => return Err(InvalidToken::Malformed("header `kid` is not a string")),
        };
        Ok(Header { alg, kid })
    }
}

/// Checks the signature of `message` with a key whose algorithm already
/// matched the header. HMAC keys use their prebuilt state and compare in
/// constant time; the others go through jsonwebtoken's provider (aws-lc-rs).
fn verify_signature(key: &VerifyingKey, message: &[u8], signature_b64: &str) -> bool {
    match &key.hmac {
        Some(hmac_key) => {
            // The longest HMAC tag is 64 bytes (HS512); a longer signature
            // does not fit and is simply wrong.
            let mut tag = [0u8; 96];
            match URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut tag) {
                Ok(len) => aws_lc_rs::hmac::verify(hmac_key, message, &tag[..len]).is_ok(),
                Err(_) => false,
            }
        }
        None => matches!(
            jsonwebtoken::crypto::verify(signature_b64, message, &key.key, key.alg),
            Ok(true)
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::keys::testdata::*;
    use crate::scope::TokenType;
    use crate::testutil::*;
    use crate::{DEFAULT_AUDIENCE, GeneratorConfig, TokenGenerator};
    use uuid::Uuid;

    fn refused(v: &TokenValidator, token: &str, now: i64) -> String {
        v.validate_at(token, now).unwrap_err().to_string()
    }

    fn is_plain_invalid(v: &TokenValidator, token: &str, now: i64) {
        assert_eq!(refused(v, token, now), "Invalid auth token", "{token}");
    }

    #[test]
    fn hs512_signs_and_verifies_with_every_claim() {
        let key = hs512();
        let v = validator(&key);
        let token = token(&key, TokenType::Execution);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS512);
        assert_eq!(header.kid, None);
        let c = v.validate_at(&token, NOW).unwrap();
        assert_eq!((c.sub, c.scope), (TI, TokenType::Execution));
        assert_eq!((c.iat, c.nbf, c.exp), (NOW, NOW, NOW + 600));
        assert_eq!(c.aud.as_deref(), Some(&[DEFAULT_AUDIENCE.to_owned()][..]));
        let jti = Uuid::parse_str(c.jti.as_deref().unwrap()).unwrap();
        assert_eq!(jti.get_version_num(), 4);
        assert_eq!(c.iss, None);
        assert!(c.extra.is_empty());
        assert_eq!(v.signature_verifications(), 1);
    }

    #[test]
    fn every_asymmetric_mode_round_trips_through_its_public_key() {
        for (private, public, alg) in [
            (RSA_PRIVATE, RSA_PUBLIC, Algorithm::RS256),
            (ED25519_PRIVATE, ED25519_PUBLIC, Algorithm::EdDSA),
            (P256_PRIVATE, P256_PUBLIC, Algorithm::ES256),
            (P384_PRIVATE, P384_PUBLIC, Algorithm::ES384),
        ] {
            let key = SigningKey::from_pem(private).unwrap();
            let v =
                TokenValidator::new(KeySource::public_pem(public).unwrap(), uncached()).unwrap();
            let token = token(&key, TokenType::Workload);
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg);
            assert_eq!(header.kid.as_deref(), key.kid());
            let c = v.validate_at(&token, NOW).unwrap();
            assert_eq!(c.scope, TokenType::Workload);
            // Another key of the same kind does not verify it.
            let other = SigningKey::from_pem(RSA2_PRIVATE).unwrap();
            let forged = sign_claims(&other, &claims());
            assert!(v.validate_at(&forged, NOW).is_err());
        }
    }

    #[test]
    fn hs256_and_hs384_by_config_and_the_algorithm_is_pinned() {
        for alg in [Algorithm::HS256, Algorithm::HS384] {
            let key = SigningKey::from_secret(SECRET, alg, Some("k1".into())).unwrap();
            let v =
                TokenValidator::new(KeySource::secret(SECRET, alg).unwrap(), uncached()).unwrap();
            let t = token(&key, TokenType::Execution);
            assert_eq!(
                jsonwebtoken::decode_header(&t).unwrap().kid.as_deref(),
                Some("k1")
            );
            assert!(v.validate_at(&t, NOW).is_ok(), "{alg:?}");
            // Same secret, HS512 validator: refused before any HMAC runs.
            let hs512 = validator_with(&hs512(), uncached());
            is_plain_invalid(&hs512, &t, NOW);
            assert_eq!(hs512.signature_verifications(), 0);
        }
    }

    #[test]
    fn alg_none_is_refused_without_verifying() {
        let v = validator(&hs512());
        let body = b64(serde_json::Value::Object(claims()).to_string().as_bytes());
        for header in [
            json!({"alg": "none"}),
            json!({"alg": "None"}),
            json!({"alg": "HS999"}),
            json!({}),
        ] {
            let h = b64(header.to_string().as_bytes());
            for token in [format!("{h}.{body}."), format!("{h}.{body}.c2ln")] {
                is_plain_invalid(&v, &token, NOW);
            }
        }
        assert_eq!(v.signature_verifications(), 0);
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key_is_refused() {
        // The classic confusion attack: the public key PEM used as an HMAC secret.
        let v =
            TokenValidator::new(KeySource::public_pem(RSA_PUBLIC).unwrap(), uncached()).unwrap();
        let rsa = SigningKey::from_pem(RSA_PRIVATE).unwrap();
        let forger =
            SigningKey::from_secret(RSA_PUBLIC, Algorithm::HS256, rsa.kid().map(Into::into))
                .unwrap();
        let forged = sign_claims(&forger, &claims());
        is_plain_invalid(&v, &forged, NOW);
        assert_eq!(v.signature_verifications(), 0);
    }

    #[test]
    fn tampered_payload_and_wrong_secret_fail_the_signature() {
        let key = hs512();
        let v = validator(&key);
        let t = token(&key, TokenType::Execution);
        let mut parts: Vec<&str> = t.split('.').collect();
        let mut c = claims();
        c.insert("scope".into(), json!("workload"));
        let evil = b64(serde_json::Value::Object(c).to_string().as_bytes());
        parts[1] = &evil;
        is_plain_invalid(&v, &parts.join("."), NOW);
        let other = SigningKey::from_secret([1u8; 64], Algorithm::HS512, None).unwrap();
        is_plain_invalid(&v, &token(&other, TokenType::Execution), NOW);
        assert_eq!(v.signature_verifications(), 2);
    }

    #[test]
    fn leeway_edges_on_exp_nbf_and_iat() {
        let key = hs512();
        let v = validator_with(&key, uncached()); // leeway 10 s
        let t = token(&key, TokenType::Execution); // iat = nbf = NOW, exp = NOW + 600
        assert!(v.validate_at(&t, NOW + 600 + 9).is_ok());
        is_plain_invalid(&v, &t, NOW + 600 + 10);
        assert!(v.validate_at(&t, NOW - 10).is_ok());
        is_plain_invalid(&v, &t, NOW - 11);
        // iat alone in the future
        let mut c = claims();
        c.insert("nbf".into(), json!(NOW - 100));
        c.insert("iat".into(), json!(NOW + 11));
        let t = sign_claims(&key, &c);
        is_plain_invalid(&v, &t, NOW);
        assert!(v.validate_at(&t, NOW + 1).is_ok());
        // Zero leeway: expiry is exactly at exp.
        let strict = validator_with(
            &key,
            ValidationConfig {
                leeway: Duration::ZERO,
                ..uncached()
            },
        );
        let t = token(&key, TokenType::Execution);
        assert!(strict.validate_at(&t, NOW + 599).is_ok());
        is_plain_invalid(&strict, &t, NOW + 600);
        is_plain_invalid(&strict, &t, NOW - 1);
    }

    #[test]
    fn audience_and_issuer() {
        let key = hs512();
        let v = validator_with(&key, uncached());
        for aud in [json!("someone-else"), json!(["a", "b"]), json!([])] {
            let mut c = claims();
            c.insert("aud".into(), aud);
            is_plain_invalid(&v, &sign_claims(&key, &c), NOW);
        }
        let mut c = claims();
        c.remove("aud");
        is_plain_invalid(&v, &sign_claims(&key, &c), NOW);
        c.insert("aud".into(), json!(["x", DEFAULT_AUDIENCE]));
        assert!(v.validate_at(&sign_claims(&key, &c), NOW).is_ok());

        let with_iss = validator_with(
            &key,
            ValidationConfig {
                issuer: Some("airflow".into()),
                ..uncached()
            },
        );
        is_plain_invalid(&with_iss, &token(&key, TokenType::Execution), NOW);
        let g = TokenGenerator::new(
            key.clone(),
            GeneratorConfig {
                issuer: Some("airflow".into()),
                ..GeneratorConfig::default()
            },
        );
        let t = g
            .generate_at(TI, TokenType::Execution, Duration::from_secs(60), NOW)
            .unwrap();
        assert_eq!(
            with_iss.validate_at(&t, NOW).unwrap().iss.as_deref(),
            Some("airflow")
        );
        let g = TokenGenerator::new(
            key.clone(),
            GeneratorConfig {
                issuer: Some("mallory".into()),
                ..GeneratorConfig::default()
            },
        );
        let t = g
            .generate_at(TI, TokenType::Execution, Duration::from_secs(60), NOW)
            .unwrap();
        is_plain_invalid(&with_iss, &t, NOW);
    }

    #[test]
    fn wrong_claim_shapes_name_the_problem() {
        let key = hs512();
        let v = validator_with(&key, uncached());
        let cases = [
            (
                "sub",
                json!("task-1"),
                "Invalid auth token: claim `sub` must be a UUID, got \"task-1\"",
            ),
            (
                "scope",
                json!("admin"),
                "Invalid auth token: claim `scope` must be `execution` or `workload`, got \"admin\"",
            ),
            (
                "exp",
                json!("1750000600"),
                "Invalid auth token: claim `exp` must be a number of seconds",
            ),
        ];
        for (name, value, want) in cases {
            let mut c = claims();
            c.insert(name.into(), value);
            assert_eq!(refused(&v, &sign_claims(&key, &c), NOW), want);
        }
        let mut c = claims();
        c.remove("nbf");
        assert_eq!(
            refused(&v, &sign_claims(&key, &c), NOW),
            "Invalid auth token: missing required claim `nbf`"
        );
    }

    #[test]
    fn malformed_tokens_are_plain_invalid() {
        let key = hs512();
        let v = validator_with(&key, uncached());
        let good = token(&key, TokenType::Execution);
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let header = json!({"alg": "HS512"});
        let huge = format!("{h}.{}.{s}", "A".repeat(10 * 1024));
        let cases = [
            String::new(),
            "abc".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.{s}"),
            format!("{h}..{s}"),
            format!("!!!.{p}.{s}"),
            format!("{h}.{p}.!!!"),
            format!("{h}=.{p}.{s}"),
            format!("{}.{p}.{s}", b64(b"[1,2]")),
            format!("{}.{p}.{s}", b64(b"not json")),
            huge,
            sign_raw(&key, &header, &json!([1, 2, 3])),
            sign_raw(&key, &header, &json!("a string")),
            sign_raw(
                &key,
                &json!({"alg": "HS512", "crit": ["exp"]}),
                &serde_json::Value::Object(claims()),
            ),
            sign_raw(
                &key,
                &json!({"alg": "HS512", "kid": 5}),
                &serde_json::Value::Object(claims()),
            ),
        ];
        for token in cases {
            is_plain_invalid(&v, &token, NOW);
        }
    }

    #[test]
    fn signatures_of_the_wrong_length_or_encoding_fail() {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let key = SigningKey::from_secret(SECRET, alg, None).unwrap();
            let v = validator_with(&key, uncached());
            let good = token(&key, TokenType::Execution);
            v.validate_at(&good, NOW).unwrap();
            let (message, sig) = good.rsplit_once('.').unwrap();
            let tag = URL_SAFE_NO_PAD.decode(sig).unwrap();
            let longer = [&tag[..], &[0u8; 8]].concat();
            let cases = [
                format!("{message}."),
                format!("{message}.{}", &sig[..sig.len() - 2]),
                format!("{message}.{}", b64(&tag[..tag.len() - 1])),
                format!("{message}.{}", b64(&longer)),
                format!("{message}.{}", b64(&[&tag[..], &tag[..]].concat())),
                format!("{message}.{sig}="),
                format!("{message}.{sig}A"),
                format!("{message}.+{}", &sig[1..]),
            ];
            for bad in cases {
                is_plain_invalid(&v, &bad, NOW);
            }
            assert_eq!(v.signature_verifications(), 1 + 8, "{alg:?}");
        }
    }

    #[test]
    fn duplicate_header_and_claim_members_read_as_the_last_one() {
        let key = hs512();
        let v = validator_with(&key, uncached());
        let payload = serde_json::Value::Object(claims()).to_string();
        // The last `alg` is `none`: refused before any cryptography.
        let t = sign_text(&key, r#"{"alg":"HS512","alg":"none"}"#, &payload);
        is_plain_invalid(&v, &t, NOW);
        // The last `alg` is the key's: accepted.
        let t = sign_text(&key, r#"{"alg":"none","alg":"HS512"}"#, &payload);
        v.validate_at(&t, NOW).unwrap();
        // A `kid` of null is no `kid`; `crit` is refused whatever its value.
        let t = sign_text(&key, r#"{"alg":"HS512","kid":null}"#, &payload);
        v.validate_at(&t, NOW).unwrap();
        let t = sign_text(&key, r#"{"alg":"HS512","crit":null}"#, &payload);
        is_plain_invalid(&v, &t, NOW);
        // Escaped member names and values are read like plain ones.
        let t = sign_text(&key, r#"{"\u0061lg":"HS\u0035\u00312"}"#, &payload);
        v.validate_at(&t, NOW).unwrap();
        // Duplicate claims: the last `sub` and `scope` count.
        let other = Uuid::new_v4();
        let dup = format!(
            r#"{},"sub":"{other}","scope":"execution","scope":"workload"}}"#,
            payload.trim_end_matches('}')
        );
        let c = v
            .validate_at(&sign_text(&key, r#"{"alg":"HS512"}"#, &dup), NOW)
            .unwrap();
        assert_eq!((c.sub, c.scope), (other, TokenType::Workload));
    }

    /// No control character, one line, bounded: what an access log may print.
    fn assert_log_safe(text: &str, max: usize) {
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.len() <= max, "{} bytes: {text:?}", text.len());
    }

    #[test]
    fn crafted_kid_and_alg_reach_messages_escaped_and_bounded() {
        let key = SigningKey::from_secret(SECRET, Algorithm::HS512, Some("k1".into())).unwrap();
        let v = validator_with(&key, uncached());
        let payload = serde_json::Value::Object(claims());
        let hostile = |len: usize| format!("k\n\x1b[31mINFO forged line\r\n{}", "A".repeat(len));
        let refusal = |header: serde_json::Value| {
            let token = sign_raw(&key, &header, &payload);
            let err = v.validate_at(&token, NOW).unwrap_err();
            let AuthError::InvalidToken(why) = &err else {
                panic!("{err:?}")
            };
            (err.to_string(), format!("{err:?}"), why.reason())
        };

        // As long a kid as fits under the token size limit.
        let (display, debug, reason) = refusal(json!({"alg": "HS512", "kid": hostile(5 * 1024)}));
        assert_eq!(display, "Invalid auth token");
        assert!(
            reason.starts_with(r#"no key with kid "k\n\u{1b}[31mINFO forged line\r\nAAA"#),
            "{reason}"
        );
        assert!(reason.ends_with(" more bytes)\""), "{reason}");
        for text in [&display, &debug, &reason] {
            assert_log_safe(text, 200);
        }

        // The same in `alg`: refused before any key is looked up.
        let (_, debug, reason) = refusal(json!({"alg": hostile(5 * 1024)}));
        assert!(
            reason.starts_with(r#"algorithm "k\n\u{1b}[31m"#),
            "{reason}"
        );
        assert_log_safe(&debug, 200);
        assert_log_safe(&reason, 200);

        // And in a claim value quoted by a claims error (the response detail too).
        let mut c = claims();
        c.insert("sub".into(), json!(hostile(5 * 1024)));
        let err = v.validate_at(&sign_claims(&key, &c), NOW).unwrap_err();
        assert!(
            err.to_string().starts_with(
                r#"Invalid auth token: claim `sub` must be a UUID, got "k\n\u{1b}[31m"#
            ),
            "{err}"
        );
        assert_log_safe(&err.to_string(), 200);
        assert_log_safe(&format!("{err:?}"), 300);

        // A 10 KB kid makes the token too large: refused unread, the message static.
        let verified = v.signature_verifications();
        let token = sign_raw(
            &key,
            &json!({"alg": "HS512", "kid": hostile(10 * 1024)}),
            &payload,
        );
        let err = v.validate_at(&token, NOW).unwrap_err();
        let AuthError::InvalidToken(why) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(why.reason(), "malformed token: token too large");
        assert_eq!(v.signature_verifications(), verified);
    }

    #[test]
    fn cache_hit_skips_the_signature_but_not_the_clock() {
        let key = hs512();
        let v = validator(&key);
        let t = token(&key, TokenType::Execution);
        let first = v.validate_at(&t, NOW).unwrap();
        let again = v.validate_at(&t, NOW + 1).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(v.signature_verifications(), 1);
        assert_eq!(v.cached_tokens(), 1);
        // Not yet valid is re-checked on a hit, and the entry stays.
        is_plain_invalid(&v, &t, NOW - 11);
        assert_eq!(v.cached_tokens(), 1);
        // Expired on a hit: refused and dropped, without verifying again.
        is_plain_invalid(&v, &t, NOW + 610);
        assert_eq!(v.cached_tokens(), 0);
        assert_eq!(v.signature_verifications(), 1);
        // A different token string (same claims, other jti) is verified anew.
        let t2 = token(&key, TokenType::Execution);
        v.validate_at(&t2, NOW).unwrap();
        assert_eq!(v.signature_verifications(), 2);
        // Refused tokens are never cached.
        let mut c = claims();
        c.insert("aud".into(), json!("other"));
        let bad = sign_claims(&key, &c);
        is_plain_invalid(&v, &bad, NOW);
        is_plain_invalid(&v, &bad, NOW);
        assert_eq!(v.signature_verifications(), 4);
    }

    #[test]
    fn big_tokens_keep_the_cache_under_its_byte_budget() {
        let key = hs512();
        let budget = 64 * 1024;
        let v = validator_with(
            &key,
            ValidationConfig {
                cache_bytes: budget,
                ..ValidationConfig::default()
            },
        );
        // Tokens of about 7 KiB: a 5 KiB custom claim.
        let big = |i: usize| {
            let mut c = claims();
            c.insert("jti".into(), json!(format!("j{i}")));
            c.insert("blob".into(), json!("x".repeat(5 * 1024)));
            sign_claims(&key, &c)
        };
        for i in 0..40 {
            let token = big(i);
            assert!(token.len() > 6 * 1024 && token.len() <= MAX_TOKEN_BYTES);
            v.validate_at(&token, NOW).unwrap();
            assert!(
                v.cached_bytes() <= budget,
                "{} bytes after {i}",
                v.cached_bytes()
            );
        }
        assert!(
            v.cached_tokens() >= 2 && v.cached_tokens() < 10,
            "{}",
            v.cached_tokens()
        );
        // The newest is cached: a second look verifies nothing.
        let verified = v.signature_verifications();
        v.validate_at(&big(39), NOW).unwrap();
        assert_eq!(v.signature_verifications(), verified);

        // Under the 8 KiB limit, but tiny claims that parse into far more than
        // `MAX_CACHED_ENTRY_BYTES`: accepted, verified every time, never cached.
        let mut c = claims();
        for i in 0..600 {
            c.insert(format!("{i:x}"), json!(0));
        }
        let dense = sign_claims(&key, &c);
        assert!(dense.len() <= MAX_TOKEN_BYTES, "{}", dense.len());
        let before = (v.cached_tokens(), v.cached_bytes());
        for _ in 0..2 {
            v.validate_at(&dense, NOW).unwrap();
        }
        assert_eq!(v.signature_verifications(), verified + 2);
        assert_eq!((v.cached_tokens(), v.cached_bytes()), before);
    }

    #[test]
    fn an_airflow_shaped_token_costs_the_cache_under_1_kib() {
        // What `TokenGenerator` makes, as Airflow does: HS512, no extra claims.
        let key = hs512();
        let v = validator(&key);
        let token = token(&key, TokenType::Execution);
        v.validate_at(&token, NOW).unwrap();
        let cost = v.cached_bytes();
        println!("token {} bytes, cache entry {cost} bytes", token.len());
        assert!(cost < 1024, "{cost}");
    }

    #[test]
    fn cache_off_verifies_every_time() {
        let key = hs512();
        let v = validator_with(&key, uncached());
        let t = token(&key, TokenType::Execution);
        for _ in 0..3 {
            v.validate_at(&t, NOW).unwrap();
        }
        assert_eq!(v.signature_verifications(), 3);
        assert_eq!(v.cached_tokens(), 0);
    }

    #[test]
    fn real_clock_validate() {
        let key = hs512();
        let v = validator(&key);
        let t = generator(&key)
            .generate(TI, TokenType::Execution, Duration::from_secs(60))
            .unwrap();
        assert_eq!(v.validate(&t).unwrap().sub, TI);
        is_plain_invalid(&v, &token(&key, TokenType::Execution), unix_now() + 10_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_strings_never_panic(s in ".{0,600}") {
            let v = validator(&hs512());
            prop_assert!(v.validate_at(&s, NOW).is_err());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let v = validator(&hs512());
            let s = String::from_utf8_lossy(&bytes);
            prop_assert!(v.validate_at(&s, NOW).is_err());
        }

        #[test]
        fn random_segments_never_panic(
            h in proptest::collection::vec(any::<u8>(), 0..80),
            p in proptest::collection::vec(any::<u8>(), 0..200),
            s in "[A-Za-z0-9_-]{0,100}",
        ) {
            let v = validator(&hs512());
            let token = format!("{}.{}.{s}", b64(&h), b64(&p));
            prop_assert!(v.validate_at(&token, NOW).is_err());
        }

        #[test]
        fn random_json_claims_never_panic(value in arb_json()) {
            let key = hs512();
            let v = validator(&key);
            let token = sign_raw(&key, &json!({"alg": "HS512"}), &value);
            // Whatever the claims, a result and no panic; errors read as designed.
            if let Err(e) = v.validate_at(&token, NOW) {
                prop_assert!(e.to_string().starts_with("Invalid auth token"));
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,20}".prop_map(serde_json::Value::from),
        ];
        let leaf = leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("sub".to_owned()),
                        Just("exp".to_owned()),
                        Just("scope".to_owned()),
                        Just("aud".to_owned()),
                        ".{0,5}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        // Mostly objects with the real claim names, to reach the claim checks.
        (leaf, any::<bool>()).prop_map(|(v, base)| {
            if base && let serde_json::Value::Object(extra) = &v {
                let mut c = claims();
                c.extend(extra.clone());
                serde_json::Value::Object(c)
            } else {
                v
            }
        })
    }
}
