//! Helpers for the reliability tests (on top of `common`, whose HTTP client they reuse):
//! bounded polling, hand-made HS256 tokens (any header and payload text, signed with
//! jsonwebtoken's HMAC), the CLI against a data directory, and the database checks done after
//! the fact.

#![allow(dead_code, unreachable_pub)]

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use execution_api_server::crypto::{Fernet, dev_fernet_key};
use execution_api_server::store::{DatabaseTarget, Store, StoreSettings};
use uuid::Uuid;

use crate::common::request;
use crate::common::{Response, run_ok};

/// Polls `probe` until it returns `Some`, panicking with `what` after `limit`.
/// The interval is only pacing; the deadline is a safety net against a hung test.
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`request`] with a bearer token.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> io::Result<Response> {
    let auth = format!("Bearer {token}");
    request(addr, method, path, &[("Authorization", &auth)], body)
}

/// `server <args> --data-dir DIR [--database-url URL]`, which must succeed; its stdout trimmed.
pub fn cli(dir: &Path, database_url: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--data-dir", dir.to_str().expect("utf-8 path")]);
    if let Some(url) = database_url {
        all.extend(["--database-url", url]);
    }
    run_ok(&all, env).trim().to_owned()
}

/// `server ti create` on that data directory / database: the new task instance's id.
pub fn create_ti(dir: &Path, database_url: Option<&str>, dag_id: &str, task_id: &str) -> Uuid {
    let out = cli(
        dir,
        database_url,
        &[
            "ti",
            "create",
            "--dag-id",
            dag_id,
            "--task-id",
            task_id,
            "--run-id",
            "manual__reliability",
        ],
        &[],
    );
    out.parse()
        .unwrap_or_else(|e| panic!("`ti create` printed {out:?}: {e}"))
}

/// The PostgreSQL URL CI provides, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("EXECUTION_API_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A current-thread tokio runtime for the in-test database checks.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Opens a plain sqlx connection (`sqlite://...` or `postgres://...`).
pub async fn connect(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// The URL of the SQLite file of a data directory.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("execution-api.db").display())
}

/// `PRAGMA integrity_check` on a data directory's SQLite file: `"ok"` when sound.
pub fn sqlite_integrity(dir: &Path) -> String {
    runtime().block_on(async {
        let mut conn = connect(&sqlite_url(dir)).await;
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .expect("integrity_check");
        rows.join("\n")
    })
}

// ---------------------------------------------------------------------------------------------
// Hand-made tokens.

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `b64(header).b64(payload).b64(HMAC-SHA256(secret, signing input))`, the raw texts as given
/// (so duplicate keys and odd number formats survive). Signed by jsonwebtoken's own HMAC on
/// aws-lc-rs, the backend the server verifies with.
pub fn hs256(secret: &[u8], header: &str, payload: &str) -> String {
    // Err: already installed by an earlier call.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("HS256 signing");
    format!("{input}.{signature}")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Opens the database a server with `--data-dir dir [--database-url url]` and no other
/// configuration uses, with the Fernet key it uses: the data directory's generated
/// `dev-fernet-key` for the embedded default, none for a configured database.
pub async fn open_store(dir: &Path, database_url: Option<&str>) -> Store {
    let (target, key) = match database_url {
        Some(url) => (DatabaseTarget::from_url(url).unwrap(), None),
        None => (
            DatabaseTarget::in_data_dir(dir),
            Some(dev_fernet_key(dir).expect("the data dir's Fernet key")),
        ),
    };
    let settings = StoreSettings {
        fernet: Fernet::from_config(key.as_deref()).unwrap(),
    };
    Store::open_with(&target, settings)
        .await
        .expect("open store")
}
