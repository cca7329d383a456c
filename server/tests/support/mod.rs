//! Helpers for the reliability tests (on top of `common`): a fallible raw HTTP/1.1 client
//! (a killed server is an error, not a panic), bounded polling, hand-made HS256 tokens
//! (SHA-256 and HMAC written out here, so any header and payload can be signed), the CLI
//! against a data directory, and the database checks done after the fact.

#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::common::{Response, run_ok};

/// Safety net for one request against a server that may hang; not a timing assertion.
const IO_LIMIT: Duration = Duration::from_secs(60);

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

/// Sends raw bytes and reads the whole response (the request must say `Connection: close`).
/// Connection errors and truncated responses are `Err`.
pub fn send_raw(addr: SocketAddr, request: &[u8]) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(IO_LIMIT))?;
    stream.set_write_timeout(Some(IO_LIMIT))?;
    stream.write_all(request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

/// One request with `Connection: close`; extra headers as given; `body` sent as JSON.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> io::Result<Response> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    send_raw(addr, head.as_bytes())
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

fn truncated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("truncated response: {what}"),
    )
}

fn parse(raw: &[u8]) -> io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| truncated("no header block"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| truncated("no status"))?;
    let headers: std::collections::HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| truncated("chunk size"))?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .map_err(|_| truncated("chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(truncated("chunk"));
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body
    } else {
        if let Some(len) = headers.get("content-length") {
            let len: usize = len.parse().map_err(|_| truncated("content-length"))?;
            if rest.len() < len {
                return Err(truncated("body"));
            }
            rest = &rest[..len];
        }
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
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
