//! JSON Web Key Sets: where they come from, how they are parsed (one bad key is
//! skipped, not fatal), and the store that swaps them in without ever making a
//! request wait on a fetch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak, mpsc};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use crate::keys::{KeyError, KeySet, VerifyingKey};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: u64 = 1024 * 1024;

/// Where a JWKS lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksLocation {
    /// A local file, re-read on every refresh.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl JwksLocation {
    /// `http(s)://...` is a URL, `file://...` or anything else a path.
    pub fn parse(location: &str) -> JwksLocation {
        let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            JwksLocation::Url(location.to_owned())
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            JwksLocation::File(PathBuf::from(path))
        }
    }
}

impl std::fmt::Display for JwksLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksLocation::File(p) => write!(f, "{}", p.display()),
            JwksLocation::Url(u) => f.write_str(u),
        }
    }
}

/// How a validator gets its keys from a JWKS.
#[derive(Clone, Debug)]
pub struct JwksConfig {
    /// File path or URL.
    pub location: JwksLocation,
    /// How often a background thread re-reads the set (default 5 minutes).
    pub refresh_interval: Duration,
    /// At most one refresh triggered by an unknown `kid` per this interval
    /// (default 30 s), so a flood of forged `kid`s cannot hammer the source.
    /// The request that triggers it performs that one fetch itself (bounded
    /// by `fetch_timeout`); requests arriving meanwhile never wait on it: they
    /// are judged with the keys already in force.
    pub min_refresh_interval: Duration,
    /// Time limit of one HTTP fetch (default 5 s).
    pub fetch_timeout: Duration,
}

impl JwksConfig {
    /// Defaults for `location` (a path, `file://` path, or `http(s)://` URL).
    pub fn new(location: &str) -> JwksConfig {
        JwksConfig {
            location: JwksLocation::parse(location),
            refresh_interval: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// Parses a JWKS document. Keys we cannot use (unknown type, symmetric, not
/// for signing, malformed) are skipped with a warning; a document with no
/// `keys` array is an error.
pub fn parse_jwks(document: &[u8]) -> Result<KeySet, KeyError> {
    let value: Value =
        serde_json::from_slice(document).map_err(|e| KeyError::Jwks(e.to_string()))?;
    let Some(Value::Array(items)) = value.get("keys") else {
        return Err(KeyError::Jwks("no `keys` array".into()));
    };
    let mut keys = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let parsed = serde_json::from_value::<Jwk>(item.clone())
            .map_err(|e| KeyError::Jwks(e.to_string()))
            .and_then(|jwk| VerifyingKey::from_jwk(&jwk));
        match parsed {
            Ok(key) => keys.push(key),
            Err(e) => tracing::warn!(index = i, error = %e, "skipping unusable JWKS key"),
        }
    }
    Ok(KeySet::new(keys))
}

/// The blocking fetcher: reads the file or GETs the URL.
#[derive(Clone, Debug)]
struct Fetcher {
    location: JwksLocation,
    agent: Option<ureq::Agent>,
}

impl Fetcher {
    fn new(config: &JwksConfig) -> Fetcher {
        let agent = match &config.location {
            JwksLocation::File(_) => None,
            JwksLocation::Url(_) => Some(http_agent(config.fetch_timeout)),
        };
        Fetcher {
            location: config.location.clone(),
            agent,
        }
    }

    fn fetch(&self) -> Result<KeySet, KeyError> {
        let fail = |reason: String| KeyError::Fetch {
            location: self.location.to_string(),
            reason,
        };
        let bytes = match (&self.location, &self.agent) {
            (JwksLocation::File(path), _) => {
                std::fs::read(path).map_err(|e| fail(e.to_string()))?
            }
            (JwksLocation::Url(url), Some(agent)) => agent
                .get(url)
                .header("Accept", "application/json")
                .call()
                .and_then(|mut res| {
                    res.body_mut()
                        .with_config()
                        .limit(MAX_JWKS_BYTES)
                        .read_to_vec()
                })
                .map_err(|e| fail(e.to_string()))?,
            (JwksLocation::Url(_), None) => return Err(fail("no HTTP agent".into())),
        };
        parse_jwks(&bytes)
    }
}

/// A ureq agent speaking TLS through rustls with the aws-lc-rs provider (the
/// backend jsonwebtoken already uses) and Mozilla's root certificates.
fn http_agent(timeout: Duration) -> ureq::Agent {
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::WebPki)
        .unversioned_rustls_crypto_provider(crypto)
        .build();
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .tls_config(tls)
        .build()
        .new_agent()
}

/// The current key set and its generation, swapped as one.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub(crate) keys: Arc<KeySet>,
    pub(crate) generation: u64,
}

/// The keys a validator trusts: fixed, or a JWKS refreshed in the background.
///
/// Readers clone an `Arc` under a read lock held for nanoseconds; a refresh
/// fetches with no lock held and only takes the write lock to swap.
#[derive(Debug)]
pub(crate) struct KeyStore {
    current: RwLock<Snapshot>,
    source: Option<Source>,
}

#[derive(Debug)]
struct Source {
    fetcher: Fetcher,
    min_refresh_interval: Duration,
    refresh_interval: Duration,
    last_attempt: Mutex<Option<Instant>>,
    in_flight: AtomicBool,
    fetches: AtomicU64,
}

impl KeyStore {
    /// Fixed keys.
    pub(crate) fn fixed(keys: KeySet) -> KeyStore {
        KeyStore {
            current: RwLock::new(Snapshot {
                keys: Arc::new(keys),
                generation: 0,
            }),
            source: None,
        }
    }

    /// A JWKS, loaded once now (an error if that fails).
    pub(crate) fn jwks(config: &JwksConfig) -> Result<KeyStore, KeyError> {
        let fetcher = Fetcher::new(config);
        let keys = fetcher.fetch()?;
        Ok(KeyStore {
            current: RwLock::new(Snapshot {
                keys: Arc::new(keys),
                generation: 0,
            }),
            source: Some(Source {
                fetcher,
                min_refresh_interval: config.min_refresh_interval,
                refresh_interval: config.refresh_interval,
                // The start-up load does not count against the unknown-`kid` limit.
                last_attempt: Mutex::new(None),
                in_flight: AtomicBool::new(false),
                fetches: AtomicU64::new(1),
            }),
        })
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many fetches ran (0 for fixed keys).
    pub(crate) fn fetches(&self) -> u64 {
        self.source
            .as_ref()
            .map_or(0, |s| s.fetches.load(Ordering::Relaxed))
    }

    /// Whether this store refreshes from a JWKS, and every how long.
    pub(crate) fn refresh_interval(&self) -> Option<Duration> {
        self.source.as_ref().map(|s| s.refresh_interval)
    }

    /// Fetches now (periodic refresh) unless a fetch is in flight. Returns the
    /// new generation when the key set changed. On failure the last good set
    /// stays in force.
    pub(crate) fn refresh(&self) -> Option<u64> {
        let source = self.source.as_ref()?;
        self.refresh_from(source)
    }

    /// The refresh an unknown `kid` triggers: at most one per
    /// `min_refresh_interval`, never while another fetch is in flight (the
    /// caller then just fails with the keys it has rather than wait).
    pub(crate) fn refresh_for_unknown_kid(&self) -> Option<u64> {
        let source = self.source.as_ref()?;
        {
            let last = source
                .last_attempt
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|t| t.elapsed() < source.min_refresh_interval) {
                return None;
            }
        }
        self.refresh_from(source)
    }

    fn refresh_from(&self, source: &Source) -> Option<u64> {
        if source.in_flight.swap(true, Ordering::AcqRel) {
            return None;
        }
        *source
            .last_attempt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        source.fetches.fetch_add(1, Ordering::Relaxed);
        // No lock is held across the fetch.
        let fetched = source.fetcher.fetch();
        let changed = match fetched {
            Ok(keys) => {
                let mut current = self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if current.keys.same_as(&keys) {
                    None
                } else {
                    tracing::info!(keys = keys.keys().len(), "JWKS key set changed");
                    current.keys = Arc::new(keys);
                    current.generation += 1;
                    Some(current.generation)
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good key set");
                None
            }
        };
        source.in_flight.store(false, Ordering::Release);
        changed
    }
}

/// Runs `refresh` on `target` every `interval` on a background thread, until
/// the returned handle is dropped or `target` is gone.
pub(crate) fn spawn_refresher<T, F>(
    target: Weak<T>,
    interval: Duration,
    refresh: F,
) -> RefresherHandle
where
    T: Send + Sync + 'static,
    F: Fn(&T) + Send + 'static,
{
    let (stop, stopped) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("policy-core-jwks".into())
        .spawn(move || {
            // A disconnected channel (handle dropped) ends the loop at once.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                match target.upgrade() {
                    Some(t) => refresh(&t),
                    None => break,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the JWKS refresh thread");
    }
    RefresherHandle { _stop: stop }
}

/// Stops the refresh thread when dropped.
#[derive(Debug)]
pub(crate) struct RefresherHandle {
    _stop: mpsc::Sender<()>,
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::keys::SigningKey;
    use crate::keys::testdata::*;
    use crate::scope::TokenType;
    use crate::testutil::{NOW, TI, generator, token};
    use crate::{KeySource, TokenValidator, ValidationConfig};

    fn jwks_of(keys: &[&SigningKey]) -> String {
        let keys: Vec<_> = keys
            .iter()
            .map(|k| serde_json::to_value(k.public_jwk().unwrap()).unwrap())
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    fn keys() -> (SigningKey, SigningKey, SigningKey) {
        (
            SigningKey::from_pem(RSA_PRIVATE).unwrap(),
            SigningKey::from_pem(ED25519_PRIVATE).unwrap(),
            SigningKey::from_pem(P256_PRIVATE).unwrap(),
        )
    }

    /// Rate limit and refresh period long enough that only the test triggers fetches.
    fn config(location: &str) -> JwksConfig {
        JwksConfig {
            refresh_interval: Duration::from_secs(3600),
            min_refresh_interval: Duration::from_secs(3600),
            ..JwksConfig::new(location)
        }
    }

    fn is_invalid(v: &TokenValidator, token: &str) -> bool {
        v.validate_at(token, NOW)
            .is_err_and(|e| e.to_string() == "Invalid auth token")
    }

    #[test]
    fn location_parsing() {
        assert_eq!(
            JwksLocation::parse("https://idp.example/jwks.json"),
            JwksLocation::Url("https://idp.example/jwks.json".into())
        );
        assert_eq!(
            JwksLocation::parse("HTTP://x"),
            JwksLocation::Url("HTTP://x".into())
        );
        assert_eq!(
            JwksLocation::parse("file:///etc/jwks.json"),
            JwksLocation::File("/etc/jwks.json".into())
        );
        assert_eq!(
            JwksLocation::parse("jwks.json"),
            JwksLocation::File("jwks.json".into())
        );
    }

    #[test]
    fn one_bad_key_is_skipped_not_fatal() {
        let good = SigningKey::from_pem(ED25519_PRIVATE).unwrap();
        let jwk = serde_json::to_value(good.public_jwk().unwrap()).unwrap();
        let mut wrong_alg = jwk.clone();
        wrong_alg["alg"] = "RS256".into();
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "n": 5},
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "weird"},
            "not an object",
            wrong_alg,
            jwk,
        ]});
        let set = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.keys()[0].kid(), good.kid());
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"not json").is_err());
    }

    #[test]
    fn jwks_file_rotation_unknown_kid_rate_limit_and_failed_refresh() {
        let (a, b, c) = keys();
        let path =
            std::env::temp_dir().join(format!("policy-core-jwks-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, jwks_of(&[&a])).unwrap();
        let v = TokenValidator::new(
            KeySource::Jwks(config(path.to_str().unwrap())),
            ValidationConfig::default(),
        )
        .unwrap();
        assert_eq!(v.jwks_fetches(), 1);
        let token_a = token(&a, TokenType::Execution);
        assert_eq!(v.validate_at(&token_a, NOW).unwrap().sub, TI);
        assert_eq!(v.cached_tokens(), 1);

        // Rotation: A is replaced by B. B's unknown kid triggers one refresh.
        std::fs::write(&path, jwks_of(&[&b])).unwrap();
        let token_b = token(&b, TokenType::Execution);
        assert_eq!(v.validate_at(&token_b, NOW).unwrap().sub, TI);
        assert_eq!(v.jwks_fetches(), 2);
        // The key set changed, so the cache was emptied: A's cached token is gone
        // and, A's kid now unknown and the refresh rate-limited, it is refused.
        assert_eq!(v.cached_tokens(), 1);
        assert!(is_invalid(&v, &token_a));
        // Another unknown kid right away: no second fetch.
        assert!(is_invalid(&v, &token(&c, TokenType::Execution)));
        assert_eq!(v.jwks_fetches(), 2);

        // A refresh that fails keeps the last good set; so does an unchanged set
        // (and it keeps the cache).
        std::fs::write(&path, "{ not json").unwrap();
        v.refresh_keys();
        std::fs::write(&path, jwks_of(&[&b])).unwrap();
        v.refresh_keys();
        assert_eq!(v.jwks_fetches(), 4);
        assert_eq!(v.cached_tokens(), 1);
        let verified = v.signature_verifications();
        assert!(v.validate_at(&token_b, NOW).is_ok());
        assert_eq!(v.signature_verifications(), verified);
        assert!(v.validate_at(&token(&b, TokenType::Execution), NOW).is_ok());

        // Missing file: refresh fails, keys stay.
        std::fs::remove_file(&path).unwrap();
        v.refresh_keys();
        assert!(v.validate_at(&token(&b, TokenType::Execution), NOW).is_ok());
        // And a validator cannot start from a missing file.
        assert!(matches!(
            TokenValidator::new(
                KeySource::Jwks(config(path.to_str().unwrap())),
                ValidationConfig::default()
            ),
            Err(KeyError::Fetch { .. })
        ));
    }

    /// A loopback HTTP server answering every request with the current
    /// `(status, body)`, counting requests and signalling each one.
    struct JwksServer {
        url: String,
        reply: Arc<Mutex<(u16, String)>>,
        hits: Arc<AtomicUsize>,
        served: mpsc::Receiver<()>,
        received: mpsc::Receiver<()>,
    }

    impl JwksServer {
        fn start(body: String) -> JwksServer {
            JwksServer::start_gated(body, None)
        }

        /// With a gate, every request after the first waits for a message on
        /// it before being answered (a fetch held in flight).
        fn start_gated(body: String, gate: Option<mpsc::Receiver<()>>) -> JwksServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!(
                "http://{}/.well-known/jwks.json",
                listener.local_addr().unwrap()
            );
            let reply = Arc::new(Mutex::new((200, body)));
            let hits = Arc::new(AtomicUsize::new(0));
            let (tx, served) = mpsc::channel();
            let (got, received) = mpsc::channel();
            let (r, h) = (Arc::clone(&reply), Arc::clone(&hits));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    // Read the head; a TLS ClientHello (first byte 0x16) gets its HTTP answer at once.
                    while !request.windows(4).any(|w| w == b"\r\n\r\n")
                        && request.first().is_none_or(u8::is_ascii_alphabetic)
                    {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = got.send(());
                    if let Some(gate) = &gate
                        && h.load(Ordering::SeqCst) > 0
                        && gate.recv().is_err()
                    {
                        break;
                    }
                    let (status, body) = r.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes());
                    drop(stream);
                    h.fetch_add(1, Ordering::SeqCst);
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
            JwksServer {
                url,
                reply,
                hits,
                served,
                received,
            }
        }

        fn set(&self, status: u16, body: String) {
            *self.reply.lock().unwrap() = (status, body);
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn jwks_over_http_rotation_unknown_kid_and_failures() {
        let (a, b, c) = keys();
        let server = JwksServer::start(jwks_of(&[&a]));
        let v = TokenValidator::new(
            KeySource::Jwks(config(&server.url)),
            ValidationConfig::default(),
        )
        .unwrap();
        assert_eq!(server.hits(), 1);
        assert!(v.validate_at(&token(&a, TokenType::Execution), NOW).is_ok());

        server.set(200, jwks_of(&[&a, &b]));
        assert!(v.validate_at(&token(&b, TokenType::Workload), NOW).is_ok());
        assert_eq!(server.hits(), 2);
        assert!(is_invalid(&v, &token(&c, TokenType::Execution)));
        assert_eq!(server.hits(), 2);

        for (status, body) in [
            (500, "oops".to_owned()),
            (200, "{\"keys\": 5}".to_owned()),
            (404, String::new()),
        ] {
            server.set(status, body);
            v.refresh_keys();
            assert!(v.validate_at(&token(&a, TokenType::Execution), NOW).is_ok());
            assert!(v.validate_at(&token(&b, TokenType::Execution), NOW).is_ok());
        }
        assert_eq!(server.hits(), 5);
    }

    #[test]
    fn requests_never_wait_on_a_fetch_in_flight() {
        let (a, b, c) = keys();
        let (release, gate) = mpsc::channel();
        let server = JwksServer::start_gated(jwks_of(&[&a]), Some(gate));
        // No rate limit: only the fetch in flight can stop a second refresh.
        let cfg = JwksConfig {
            min_refresh_interval: Duration::ZERO,
            fetch_timeout: Duration::from_secs(60),
            ..config(&server.url)
        };
        let v = TokenValidator::new(KeySource::Jwks(cfg), ValidationConfig::default()).unwrap();
        server.received.try_recv().unwrap(); // the start-up load, answered
        server.set(200, jwks_of(&[&a, &b]));
        let (v2, token_b) = (v.clone(), token(&b, TokenType::Execution));
        let waiting = std::thread::spawn(move || v2.validate_at(&token_b, NOW).map(|c| c.sub));
        // B's unknown kid started a fetch, which the server now holds.
        server
            .received
            .recv_timeout(Duration::from_secs(30))
            .unwrap();
        // A known kid is judged with the keys in force, without waiting.
        assert!(v.validate_at(&token(&a, TokenType::Execution), NOW).is_ok());
        // Another unknown kid neither waits nor starts a second fetch.
        assert!(is_invalid(&v, &token(&c, TokenType::Execution)));
        assert_eq!(v.jwks_fetches(), 2);
        assert_eq!(server.hits(), 1);
        release.send(()).unwrap();
        assert_eq!(waiting.join().unwrap().unwrap(), TI);
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn background_thread_refreshes_periodically() {
        let (a, b, _) = keys();
        let server = JwksServer::start(jwks_of(&[&a]));
        let cfg = JwksConfig {
            refresh_interval: Duration::from_millis(20),
            ..config(&server.url)
        };
        let v = TokenValidator::new(KeySource::Jwks(cfg), ValidationConfig::default()).unwrap();
        server.served.recv_timeout(Duration::from_secs(30)).unwrap(); // the start-up load
        server.set(200, jwks_of(&[&b]));
        // Two more fetches: the first of them served B and its swap completed
        // before the refresher started the second.
        for _ in 0..2 {
            server.served.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        // B is known without any unknown-kid refresh (which the periodic ones rate-limit anyway).
        assert!(v.validate_at(&token(&b, TokenType::Execution), NOW).is_ok());
        assert!(is_invalid(&v, &token(&a, TokenType::Execution)));
    }

    #[test]
    fn https_goes_through_rustls_with_aws_lc_and_fails_cleanly_on_a_plain_server() {
        let (a, _, _) = keys();
        let server = JwksServer::start(jwks_of(&[&a]));
        let url = server.url.replacen("http://", "https://", 1);
        let err = TokenValidator::new(KeySource::Jwks(config(&url)), ValidationConfig::default())
            .unwrap_err();
        assert!(matches!(err, KeyError::Fetch { .. }), "{err}");
    }

    #[test]
    fn token_without_kid_uses_the_key_of_its_algorithm() {
        let (a, b, _) = keys();
        let path =
            std::env::temp_dir().join(format!("policy-core-jwks-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, jwks_of(&[&a, &b])).unwrap();
        let v = TokenValidator::new(
            KeySource::Jwks(config(path.to_str().unwrap())),
            ValidationConfig::default(),
        )
        .unwrap();
        let anonymous = generator(&b.clone().with_kid(None));
        let t = anonymous
            .generate_at(TI, TokenType::Execution, Duration::from_secs(60), NOW)
            .unwrap();
        assert!(v.validate_at(&t, NOW).is_ok());
        std::fs::remove_file(&path).unwrap();
    }
}
