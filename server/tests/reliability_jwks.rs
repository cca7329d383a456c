//! JWKS outage against the real `server` binary, which validates with
//! `AIRFLOW__API_AUTH__TRUSTED_JWKS_URL` pointing at a JWKS served by this test on loopback:
//!
//! - the JWKS goes down after start-up: tokens signed with known keys keep working, also after
//!   a refresh attempt (triggered by an unknown `kid`) failed;
//! - the JWKS comes back with the old key removed and a new one rotated in: the new `kid` is
//!   accepted once the refresh runs, and the removed key stops working, including a token of
//!   it that the verified-token cache had already accepted.
//!
//! The server keeps its default 300 s background refresh, so every refresh here is one an
//! unknown `kid` triggers; `EXECUTION_API_JWKS_MIN_REFRESH_INTERVAL=1` shortens the rate limit
//! on those from 30 s to 1 s, and the test polls (bounded) through one window.

mod common;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ServerProcess, TempDir};
use policy_core::{GeneratorConfig, SigningKey, TokenGenerator, TokenType};
use support::{call, cli, wait_for};
use uuid::Uuid;

/// Safety net: many unknown-`kid` rate-limit windows (1 s each); not a timing assertion.
const ROTATION_LIMIT: Duration = Duration::from_secs(60);

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy-core/src/testdata")
        .join(name)
}

fn key(name: &str) -> SigningKey {
    SigningKey::from_pem(std::fs::read(testdata(name)).unwrap()).unwrap()
}

fn jwks_of(keys: &[&SigningKey]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| serde_json::to_value(k.public_jwk().expect("public JWK")).unwrap())
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// A JWKS on loopback: serves `document`, or, while it is `None`, drops every connection.
struct JwksServer {
    url: String,
    document: Arc<Mutex<Option<String>>>,
    /// Requests received (served or dropped).
    requests: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(document: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let document = Arc::new(Mutex::new(Some(document)));
        let requests = Arc::new(AtomicUsize::new(0));
        let (doc, count) = (Arc::clone(&document), Arc::clone(&requests));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // Read the request head.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                count.fetch_add(1, Ordering::SeqCst);
                let current = doc.lock().unwrap().clone();
                if let Some(body) = current {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                // Outage: the connection is dropped without an answer.
            }
        });
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            document,
            requests,
        }
    }

    fn set(&self, document: Option<String>) {
        *self.document.lock().unwrap() = document;
    }
}

fn token(key: &SigningKey, ti: Uuid) -> String {
    TokenGenerator::new(key.clone(), GeneratorConfig::default())
        .generate(ti, TokenType::Execution, Duration::from_secs(3600))
        .unwrap()
}

#[test]
fn jwks_outage_rotation_and_removal() {
    let old = key("rsa_private.pem");
    let new = key("ed25519_private.pem");
    assert_ne!(old.kid(), new.kid());
    let jwks = JwksServer::start(jwks_of(&[&old]));

    let dir = TempDir::new("reliability-jwks");
    cli(dir.path(), None, &["variable", "set", "probe", "here"], &[]);
    let private = testdata("rsa_private.pem");
    let server = ServerProcess::start(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[
            (
                "AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH",
                private.to_str().unwrap(),
            ),
            ("AIRFLOW__API_AUTH__TRUSTED_JWKS_URL", &jwks.url),
            ("EXECUTION_API_JWKS_MIN_REFRESH_INTERVAL", "1"),
        ],
    );
    let addr = server.addr;
    assert!(
        jwks.requests.load(Ordering::SeqCst) >= 1,
        "loaded at start-up"
    );
    let status = |token: &str| {
        let reply = call(addr, "GET", "/execution/variables/probe", token, None)
            .unwrap_or_else(|e| panic!("server stopped answering: {e}"));
        match reply.status {
            200 => assert_eq!(reply.json()["value"], "here"),
            // An unknown kid while the refresh it asked for is pending: the SDK retries.
            503 => assert_eq!(
                reply.json()["detail"],
                "Token signing keys are being refreshed; retry"
            ),
            _ => {
                assert_eq!(reply.status, 403, "{}", reply.body);
                assert_eq!(reply.json()["detail"], "Invalid auth token");
            }
        }
        reply.status
    };

    let ti = Uuid::new_v4();
    let cached_old = token(&old, ti);
    let new_token = token(&new, ti);
    assert_eq!(status(&cached_old), 200, "known key before the outage");

    // Outage. Known keys keep working, cached or not.
    jwks.set(None);
    assert_eq!(status(&cached_old), 200, "cached token during the outage");
    assert_eq!(
        status(&token(&old, ti)),
        200,
        "fresh token during the outage"
    );
    // An unknown kid asks for a refresh (the first since start-up, so not rate-limited) and
    // is answered at once, 503, without waiting for it. The refresh fails (the JWKS is down)
    // and the last good set stays.
    let before = jwks.requests.load(Ordering::SeqCst);
    assert_eq!(status(&new_token), 503, "unknown kid during the outage");
    wait_for(
        "the unknown kid's refresh to reach the JWKS",
        ROTATION_LIMIT,
        || (jwks.requests.load(Ordering::SeqCst) > before).then_some(()),
    );
    assert_eq!(
        jwks.requests.load(Ordering::SeqCst),
        before + 1,
        "one refresh for the unknown kid"
    );
    assert_eq!(status(&cached_old), 200, "after a failed refresh");
    assert_eq!(
        status(&token(&old, ti)),
        200,
        "fresh token after a failed refresh"
    );

    // Back, rotated: the old key removed, the new one in.
    jwks.set(Some(jwks_of(&[&new])));
    // Until the next refresh the server judges with the keys it has; the old key's cached
    // token keeps working exactly as long as the new kid is refused. (The refresh may land
    // between the two requests of one poll: then the new kid is accepted when asked again.)
    let polls = std::cell::Cell::new(0u32);
    wait_for("the rotated-in kid to be accepted", ROTATION_LIMIT, || {
        polls.set(polls.get() + 1);
        if status(&new_token) == 200 {
            return Some(());
        }
        let old_status = status(&cached_old);
        if old_status != 200 {
            assert_eq!(
                status(&new_token),
                200,
                "the old key was refused ({old_status}) while the new kid still was"
            );
            return Some(());
        }
        None
    });
    let fetched_during = jwks.requests.load(Ordering::SeqCst) - before;
    assert!(fetched_during >= 2, "the server went back to the JWKS");
    eprintln!(
        "jwks: rotated-in kid accepted after {} polls; {fetched_during} JWKS requests since the outage began",
        polls.get()
    );

    // The removed key is gone, and so is its token from the verified-token cache.
    assert_eq!(status(&cached_old), 403, "cached token of a removed key");
    assert_eq!(
        status(&token(&old, ti)),
        403,
        "fresh token of a removed key"
    );
    assert_eq!(
        status(&token(&new, ti)),
        200,
        "another token of the new key"
    );
    assert_eq!(status(&new_token), 200);

    // A second outage changes nothing for the new key.
    jwks.set(None);
    assert_eq!(status(&new_token), 200, "new key during a second outage");

    let (exit, log) = server.terminate();
    assert!(!log.contains("panicked"), "server panicked:\n{log}");
    assert!(exit.success(), "{exit:?}:\n{log}");
    assert!(
        log.contains("JWKS refresh failed"),
        "the failed refresh is logged:\n{log}"
    );
}
