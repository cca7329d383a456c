//! The database busy or gone, under the real `server` binary: writes answer a clear 503 with
//! `Retry-After` and a `detail`, nothing panics, and the same process recovers by itself once
//! the database is back (no restart).
//!
//! SQLite: the test holds the write lock (`BEGIN EXCLUSIVE`) from its own connection for
//! longer than the server's busy timeout. PostgreSQL (when `EXECUTION_API_TEST_POSTGRES_URL`
//! is set): the server reaches the database through a TCP proxy in the test, which is cut
//! (every open connection shut, new ones dropped) and then restored.

mod common;
mod support;

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{Response, ServerProcess, TempDir, request};
use policy_core::{Algorithm, GeneratorConfig, SigningKey, TokenGenerator, TokenType};
use sqlx::Executor as _;
use support::{call, create_ti};
use uuid::Uuid;

const SECRET: &str = "database-secret-0123456789abcdef0123456789abcdef0123456789abcdef";
const RUN_BODY: &str = r#"{"state":"running","hostname":"worker-1","unixname":"airflow","pid":4242,"start_date":"2026-01-01T00:00:00Z"}"#;

fn token(ti: Uuid) -> String {
    TokenGenerator::new(
        SigningKey::from_secret(SECRET.as_bytes(), Algorithm::HS512, None).unwrap(),
        GeneratorConfig::default(),
    )
    .generate(
        ti,
        TokenType::Execution,
        std::time::Duration::from_secs(600),
    )
    .unwrap()
}

fn assert_unavailable(what: &str, reply: &Response) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.body);
    let retry_after = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After: {:?}", reply.headers));
    assert!(
        retry_after.parse::<u32>().is_ok_and(|s| s > 0),
        "{what}: Retry-After {retry_after:?}"
    );
    let detail = reply.json()["detail"].clone();
    assert!(
        detail.as_str().is_some_and(|d| !d.is_empty()),
        "{what}: detail {detail}"
    );
}

fn put_variable(addr: SocketAddr, token: &str, key: &str, value: &str) -> Response {
    let body = serde_json::json!({ "val": value }).to_string();
    call(
        addr,
        "PUT",
        &format!("/execution/variables/{key}"),
        token,
        Some(&body),
    )
    .unwrap()
}

fn get_variable(addr: SocketAddr, token: &str, key: &str) -> Response {
    call(
        addr,
        "GET",
        &format!("/execution/variables/{key}"),
        token,
        None,
    )
    .unwrap()
}

fn start_ti(addr: SocketAddr, token: &str, ti: Uuid) -> Response {
    call(
        addr,
        "PATCH",
        &format!("/execution/task-instances/{ti}/run"),
        token,
        Some(RUN_BODY),
    )
    .unwrap()
}

fn heartbeat(addr: SocketAddr, token: &str, ti: Uuid) -> Response {
    call(
        addr,
        "PUT",
        &format!("/execution/task-instances/{ti}/heartbeat"),
        token,
        Some(r#"{"hostname":"worker-1","pid":4242}"#),
    )
    .unwrap()
}

fn no_panics(server: ServerProcess) {
    let (status, log) = server.terminate();
    assert!(!log.contains("panicked"), "server panicked:\n{log}");
    assert!(status.success(), "exit {status:?}:\n{log}");
}

#[test]
fn sqlite_locked_past_the_busy_timeout_is_503_then_recovers() {
    let dir = TempDir::new("reliability-db-busy");
    let ti = create_ti(dir.path(), None, "busy_dag", "t");
    let server = ServerProcess::start(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[("AIRFLOW__API_AUTH__JWT_SECRET", SECRET)],
    );
    let addr = server.addr;
    let token = token(ti);
    assert_eq!(put_variable(addr, &token, "k", "before").status, 201);

    let rt = support::runtime();
    let mut holder = rt.block_on(support::connect(&support::sqlite_url(dir.path())));
    rt.block_on(holder.execute("BEGIN EXCLUSIVE")).unwrap();

    // Writes wait out the busy timeout, then 503 + Retry-After; no panic, no 500.
    assert_unavailable(
        "PUT variable while locked",
        &put_variable(addr, &token, "k", "during"),
    );
    assert_unavailable("PATCH /run while locked", &start_ti(addr, &token, ti));
    // Readers are not blocked (WAL), and the server is alive.
    let reply = get_variable(addr, &token, "k");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["value"], "before");
    let ping = request(addr, "GET", "/execution/health/ping", &[], None).unwrap();
    assert_eq!(ping.status, 200, "{}", ping.body);

    rt.block_on(holder.execute("ROLLBACK")).unwrap();
    drop(holder);

    // Same process, no restart: the writes now go through.
    assert_eq!(put_variable(addr, &token, "k", "after").status, 201);
    assert_eq!(get_variable(addr, &token, "k").json()["value"], "after");
    let reply = start_ti(addr, &token, ti);
    assert_eq!(reply.status, 200, "{}", reply.body);
    no_panics(server);
    assert_eq!(support::sqlite_integrity(dir.path()), "ok");
}

/// A TCP proxy that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (Arc::clone(&up), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut open = open2.lock().unwrap();
                for stream in [&client, &server] {
                    open.push(stream.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db` -> (host:port resolved, the URL with the proxy's address).
fn through(url: &str, proxy: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let path = hostpart.find(['/', '?']).map_or("", |i| &hostpart[i..]);
    format!("{scheme}://{userinfo}{proxy}{path}")
}

fn upstream(url: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").unwrap().1;
    let hostpart = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = &hostpart[..hostpart.find(['/', '?']).unwrap_or(hostpart.len())];
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    hostport
        .to_socket_addrs()
        .unwrap()
        .next()
        .expect("PostgreSQL address")
}

#[test]
fn postgres_unreachable_is_503_then_recovers_when_configured() {
    let Some(url) = support::postgres_url() else {
        eprintln!(
            "postgres_unreachable_is_503_then_recovers_when_configured: EXECUTION_API_TEST_POSTGRES_URL unset, not run"
        );
        return;
    };
    let dir = TempDir::new("reliability-db-pg");
    let dag = format!("pg_down_{}", Uuid::new_v4().simple());
    let ti = create_ti(dir.path(), Some(&url), &dag, "t");
    let proxy = Proxy::start(upstream(&url));
    let proxied = through(&url, proxy.addr);
    let server = ServerProcess::start(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            &proxied,
        ],
        &[("AIRFLOW__API_AUTH__JWT_SECRET", SECRET)],
    );
    let addr = server.addr;
    let token = token(ti);
    let key = format!("pg_down_{}", Uuid::new_v4().simple());
    assert_eq!(put_variable(addr, &token, &key, "before").status, 201);
    // Every kind of connection in use before the cut: reads, write
    // transactions, the heartbeat collector's.
    assert_eq!(get_variable(addr, &token, &key).status, 200);
    assert_eq!(start_ti(addr, &token, ti).status, 200);
    assert_eq!(heartbeat(addr, &token, ti).status, 204);

    proxy.cut();
    assert_unavailable(
        "PUT variable, database gone",
        &put_variable(addr, &token, &key, "during"),
    );
    assert_unavailable(
        "GET variable, database gone",
        &get_variable(addr, &token, &key),
    );
    assert_unavailable("PATCH /run, database gone", &start_ti(addr, &token, ti));
    assert_unavailable("heartbeat, database gone", &heartbeat(addr, &token, ti));
    let ping = request(addr, "GET", "/execution/health/ping", &[], None).unwrap();
    assert_eq!(ping.status, 503, "{}", ping.body);
    assert!(ping.header("retry-after").is_some(), "{:?}", ping.headers);
    assert_eq!(ping.json()["failing"]["database"], "unavailable");

    proxy.restore();
    // Same process: the pool reconnects on the next request.
    let reply = put_variable(addr, &token, &key, "after");
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(get_variable(addr, &token, &key).json()["value"], "after");
    // The same worker's /run again: Airflow's duplicate check answers 200.
    let reply = start_ti(addr, &token, ti);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = heartbeat(addr, &token, ti);
    assert_eq!(reply.status, 204, "{}", reply.body);
    no_panics(server);
}

#[test]
fn postgres_rows_locked_past_lock_timeout_are_503_then_recover_when_configured() {
    let Some(url) = support::postgres_url() else {
        eprintln!(
            "postgres_rows_locked_past_lock_timeout_are_503_then_recover_when_configured: EXECUTION_API_TEST_POSTGRES_URL unset, not run"
        );
        return;
    };
    let dir = TempDir::new("reliability-db-pg-lock");
    let dag = format!("pg_lock_{}", Uuid::new_v4().simple());
    let ti = create_ti(dir.path(), Some(&url), &dag, "t");
    let server = ServerProcess::start(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            &url,
        ],
        &[("AIRFLOW__API_AUTH__JWT_SECRET", SECRET)],
    );
    let addr = server.addr;
    let token = token(ti);
    // Only this test's rows are locked: other tests share the database.
    let key = format!("pg_lock_{}", Uuid::new_v4().simple());
    assert_eq!(put_variable(addr, &token, &key, "before").status, 201);

    let rt = support::runtime();
    let mut holder = rt.block_on(support::connect(&url));
    rt.block_on(holder.execute("BEGIN")).unwrap();
    for (sql, id) in [
        (
            "SELECT key FROM variable WHERE key = $1 FOR UPDATE",
            key.clone(),
        ),
        (
            "SELECT CAST(id AS TEXT) FROM task_instance WHERE id = CAST($1 AS uuid) FOR UPDATE",
            ti.to_string(),
        ),
    ] {
        let locked = rt
            .block_on(sqlx::query(sql).bind(id).fetch_all(&mut holder))
            .unwrap();
        assert_eq!(locked.len(), 1, "{sql}");
    }

    // Writes wait out lock_timeout, then 503 + Retry-After (before the fix they hung).
    assert_unavailable(
        "PUT variable, row locked",
        &put_variable(addr, &token, &key, "during"),
    );
    assert_unavailable("PATCH /run, row locked", &start_ti(addr, &token, ti));
    // Reads do not wait on row locks.
    assert_eq!(get_variable(addr, &token, &key).json()["value"], "before");

    rt.block_on(holder.execute("ROLLBACK")).unwrap();
    drop(holder);

    assert_eq!(put_variable(addr, &token, &key, "after").status, 201);
    assert_eq!(get_variable(addr, &token, &key).json()["value"], "after");
    let reply = start_ti(addr, &token, ti);
    assert_eq!(reply.status, 200, "{}", reply.body);
    no_panics(server);
}
