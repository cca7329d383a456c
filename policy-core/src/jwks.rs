//! JSON Web Key Sets: where they come from, how they are parsed (one bad key is
//! skipped, not fatal), and the store that swaps them in without ever making a
//! request wait on a fetch.
//!
//! Every fetch after the start-up load runs on the background refresh thread.
//! A request whose `kid` is unknown only *asks* for a refresh (at most one per
//! `min_refresh_interval`) and is answered at once: 503 with `Retry-After`
//! while that refresh is pending, since the key may just have been rotated in
//! and the Task SDK retries 5xx answers (and only those); 403 `Invalid auth
//! token` once the refresh has run and the `kid` is still unknown, or while the
//! rate limit holds. So a slow or stalled JWKS endpoint never holds an actix
//! worker thread, at the price of one retried request per rotation.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak, mpsc};
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
    /// The background thread performs it; no request waits on it (the one
    /// that asked for it, and every other unknown `kid` until it has run, get
    /// 503 with `Retry-After`; known `kid`s are judged with the keys in force).
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
    /// When the last fetch started (the start-up load excepted).
    last_attempt: Mutex<Option<Instant>>,
    in_flight: AtomicBool,
    /// An unknown `kid` asked for a refresh that has not finished yet.
    requested: AtomicBool,
    fetches: AtomicU64,
    /// Refresh passes finished (the start-up load included), for tests to wait on.
    finished: (Mutex<u64>, Condvar),
}

/// What a request with an unknown `kid` may expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshAsked {
    /// Fixed keys: nothing will change.
    Never,
    /// The rate limit holds: no refresh soon.
    RateLimited,
    /// A refresh is pending already.
    Pending,
    /// This request asked for the refresh: wake the refresh thread.
    Wake,
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
                requested: AtomicBool::new(false),
                fetches: AtomicU64::new(1),
                finished: (Mutex::new(1), Condvar::new()),
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

    /// Fetches now (periodic refresh) unless a fetch is in flight. When the
    /// key set changed, `on_change` gets the new generation (to empty the
    /// caches built on the old one) before anyone can see the refresh as
    /// finished. On failure the last good set stays in force.
    pub(crate) fn refresh(&self, on_change: impl FnOnce(u64)) {
        if let Some(source) = self.source.as_ref() {
            self.refresh_from(source, on_change);
            source.pass_finished();
        }
    }

    /// Asks for the refresh an unknown `kid` triggers, never waiting: at most
    /// one per `min_refresh_interval`. On [`RefreshAsked::Wake`] the caller
    /// wakes the refresh thread, which runs [`KeyStore::refresh_requested`].
    pub(crate) fn ask_refresh(&self) -> RefreshAsked {
        let Some(source) = self.source.as_ref() else {
            return RefreshAsked::Never;
        };
        if source.requested.load(Ordering::Acquire) {
            return RefreshAsked::Pending;
        }
        let recent = source
            .last_attempt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|t| t.elapsed() < source.min_refresh_interval);
        if recent {
            RefreshAsked::RateLimited
        } else if source.requested.swap(true, Ordering::AcqRel) {
            RefreshAsked::Pending
        } else {
            RefreshAsked::Wake
        }
    }

    /// The refresh an unknown `kid` asked for (on the refresh thread). The
    /// request flag is cleared only after the new set is in place, so a
    /// request that sees no refresh pending also sees its result.
    pub(crate) fn refresh_requested(&self, on_change: impl FnOnce(u64)) {
        if let Some(source) = self.source.as_ref() {
            self.refresh_from(source, on_change);
            source.requested.store(false, Ordering::Release);
            source.pass_finished();
        }
    }

    /// Waits until `n` refresh passes (the start-up load included) have
    /// finished, or `limit` has passed (a guard against a hung test, not a
    /// timing check).
    #[cfg(test)]
    pub(crate) fn wait_for_refreshes(&self, n: u64, limit: Duration) -> bool {
        let Some(source) = self.source.as_ref() else {
            return false;
        };
        let (count, cv) = &source.finished;
        let guard = count.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, limit, |done| *done < n)
            .unwrap_or_else(|p| p.into_inner());
        *guard >= n
    }

    fn refresh_from(&self, source: &Source, on_change: impl FnOnce(u64)) {
        if source.in_flight.swap(true, Ordering::AcqRel) {
            return;
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
        if let Some(generation) = changed {
            on_change(generation);
        }
        source.in_flight.store(false, Ordering::Release);
    }
}

impl Source {
    fn pass_finished(&self) {
        let (count, cv) = &self.finished;
        *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        cv.notify_all();
    }
}

/// Why the refresh thread fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshCause {
    /// `refresh_interval` has passed.
    Periodic,
    /// A request with an unknown `kid` woke the thread.
    UnknownKid,
}

/// Runs `refresh` on `target` every `interval`, and whenever the returned
/// handle is [woken](RefresherHandle::wake), on a background thread, until the
/// handle is dropped or `target` is gone.
pub(crate) fn spawn_refresher<T, F>(
    target: Weak<T>,
    interval: Duration,
    refresh: F,
) -> RefresherHandle
where
    T: Send + Sync + 'static,
    F: Fn(&T, RefreshCause) + Send + 'static,
{
    // One slot: wake-ups that arrive while one is queued add nothing.
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("policy-core-jwks".into())
        .spawn(move || {
            // No periodic refresh if the interval does not fit an `Instant`.
            let mut next = Instant::now().checked_add(interval);
            loop {
                let woke = match next {
                    Some(at) => woken.recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => woken
                        .recv()
                        .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                };
                let cause = match woke {
                    Ok(()) => RefreshCause::UnknownKid,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        next = Instant::now().checked_add(interval);
                        RefreshCause::Periodic
                    }
                    // The handle is dropped: the validator is gone.
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                match target.upgrade() {
                    Some(t) => refresh(&t, cause),
                    None => break,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the JWKS refresh thread");
    }
    RefresherHandle { wake }
}

/// Wakes the refresh thread; stops it when dropped.
#[derive(Debug)]
pub(crate) struct RefresherHandle {
    wake: mpsc::SyncSender<()>,
}

impl RefresherHandle {
    /// Asks the thread for an [`RefreshCause::UnknownKid`] refresh; never blocks.
    pub(crate) fn wake(&self) {
        // Full: a wake-up is queued already. Disconnected: the thread could not start.
        let _ = self.wake.try_send(());
    }
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

    /// 503: the `kid` is unknown and a refresh is pending. Or accepted: the
    /// refresh thread may finish before the request has looked again.
    fn refreshing_or_accepted(v: &TokenValidator, token: &str) -> bool {
        match v.validate_at(token, NOW) {
            Ok(claims) => claims.sub == TI,
            Err(e) => e == crate::AuthError::KeysRefreshing,
        }
    }

    /// Safety net for waits on the refresh thread; not a timing assertion.
    const LIMIT: Duration = Duration::from_secs(30);

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

        // Rotation: A is replaced by B. B's unknown kid asks the refresh thread
        // for a refresh and is answered at once, 503; once it has run, B is in.
        std::fs::write(&path, jwks_of(&[&b])).unwrap();
        let token_b = token(&b, TokenType::Execution);
        assert!(refreshing_or_accepted(&v, &token_b));
        assert!(v.wait_for_refreshes(2, LIMIT));
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
                    // Counted before the answer leaves, so that a client
                    // that has its answer always sees the count include it.
                    h.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(response.as_bytes());
                    drop(stream);
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
        assert!(refreshing_or_accepted(&v, &token(&b, TokenType::Workload)));
        assert!(v.wait_for_refreshes(2, LIMIT));
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

    /// Validates on a thread of its own and waits (bounded) for the answer:
    /// a validation that waited for the stalled JWKS would not answer.
    fn answer(v: &TokenValidator, token: String) -> Result<uuid::Uuid, crate::AuthError> {
        let (tx, rx) = mpsc::channel();
        let v = v.clone();
        std::thread::spawn(move || tx.send(v.validate_at(&token, NOW).map(|c| c.sub)));
        rx.recv_timeout(LIMIT)
            .expect("answered without waiting for the JWKS fetch")
    }

    #[test]
    fn an_unknown_kid_never_waits_for_a_stalled_jwks() {
        let (a, b, c) = keys();
        let (release, gate) = mpsc::channel();
        // After the start-up load, the server holds every request until released.
        let server = JwksServer::start_gated(jwks_of(&[&a]), Some(gate));
        let cfg = JwksConfig {
            fetch_timeout: Duration::from_secs(600),
            ..config(&server.url)
        };
        let v = TokenValidator::new(KeySource::Jwks(cfg), ValidationConfig::default()).unwrap();
        server.received.try_recv().unwrap(); // the start-up load, answered
        server.set(200, jwks_of(&[&a, &b]));
        let (token_a, token_b, token_c) = (
            token(&a, TokenType::Execution),
            token(&b, TokenType::Execution),
            token(&c, TokenType::Execution),
        );

        // B, just rotated in: answered at once with 503, and the refresh it
        // asked for reaches the server, which stalls it.
        assert_eq!(
            answer(&v, token_b.clone()),
            Err(crate::AuthError::KeysRefreshing)
        );
        server.received.recv_timeout(LIMIT).unwrap();

        // During the stall: a known kid is accepted, unknown kids get 503, and
        // no second fetch starts.
        assert_eq!(answer(&v, token_a.clone()), Ok(TI));
        assert_eq!(
            answer(&v, token_b.clone()),
            Err(crate::AuthError::KeysRefreshing)
        );
        assert_eq!(
            answer(&v, token_c.clone()),
            Err(crate::AuthError::KeysRefreshing)
        );
        assert_eq!(server.hits(), 1, "every answer above came during the stall");
        assert_eq!(v.jwks_fetches(), 2);
        assert!(server.received.try_recv().is_err());

        // The server answers; once the refresh thread has the new set, B is
        // accepted. C is still unknown and the rate limit holds: 403, no fetch.
        release.send(()).unwrap();
        assert!(v.wait_for_refreshes(2, LIMIT));
        assert_eq!(answer(&v, token_b), Ok(TI));
        assert_eq!(answer(&v, token_a), Ok(TI));
        assert!(is_invalid(&v, &token_c));
        // The server counts a request once it has answered it.
        for _ in 0..2 {
            server.served.recv_timeout(LIMIT).unwrap();
        }
        assert_eq!((server.hits(), v.jwks_fetches()), (2, 2));
    }

    #[test]
    fn after_a_failed_refresh_the_next_unknown_kid_asks_again() {
        let (a, b, _) = keys();
        let server = JwksServer::start(jwks_of(&[&a]));
        let cfg = JwksConfig {
            min_refresh_interval: Duration::ZERO,
            ..config(&server.url)
        };
        let v = TokenValidator::new(KeySource::Jwks(cfg), ValidationConfig::default()).unwrap();
        server.set(500, "down".into());
        let token_b = token(&b, TokenType::Execution);
        assert_eq!(
            v.validate_at(&token_b, NOW).unwrap_err(),
            crate::AuthError::KeysRefreshing
        );
        assert!(v.wait_for_refreshes(2, LIMIT));
        // No rate limit: the next unknown kid asks again; this time the set has B.
        server.set(200, jwks_of(&[&a, &b]));
        assert!(refreshing_or_accepted(&v, &token_b));
        assert!(v.wait_for_refreshes(3, LIMIT));
        assert!(v.validate_at(&token_b, NOW).is_ok());
        assert_eq!(server.hits(), 3);
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
