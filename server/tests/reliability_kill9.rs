//! kill -9: a writer drives task instances through `/run`, heartbeats, variable puts, XCom
//! posts and `/state`, while the real `server` binary is SIGKILLed and restarted four times.
//! Afterwards every write the server acknowledged with a 2xx is in the database, and SQLite's
//! `PRAGMA integrity_check` says `ok`. On PostgreSQL too when `EXECUTION_API_TEST_POSTGRES_URL`
//! is set.
//!
//! A second test sends heartbeats from many workers at once, so that SQLite writes them in
//! shared transactions (group commit), and kills the server in the middle three times: every
//! task instance's `last_heartbeat_at` is then no earlier than the moment its last
//! acknowledged heartbeat was sent.

mod common;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ServerProcess, TempDir};
use execution_api_server::store::{TiState, XComKey};
use policy_core::{Algorithm, GeneratorConfig, SigningKey, TokenGenerator, TokenType};
use serde_json::{Value, json};
use support::{call, create_ti, wait_for};
use uuid::Uuid;

const SECRET: &str = "kill9-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123";
const RUN_ID: &str = "manual__reliability";
const RUN_BODY: &str = r#"{"state":"running","hostname":"worker-1","unixname":"airflow","pid":4242,"start_date":"2026-01-01T00:00:00Z"}"#;
const HEARTBEAT_BODY: &str = r#"{"hostname":"worker-1","pid":4242}"#;
const SUCCESS_BODY: &str = r#"{"state":"success","end_date":"2026-01-01T01:00:00Z"}"#;
const TASK_INSTANCES: usize = 12;
const KILLS: usize = 4;
/// Acknowledged writes between two kills.
const WRITES_PER_LIFE: usize = 25;
/// Safety net for a hung test; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(120);

/// One write and what it must leave behind once acknowledged.
#[derive(Clone, Debug)]
enum Write {
    Run(Uuid),
    Heartbeat(Uuid),
    Variable {
        key: String,
        value: String,
    },
    XCom {
        task_id: String,
        key: String,
        value: Value,
    },
    Success(Uuid),
}

impl Write {
    /// Method, path and body.
    fn request(&self, dag: &str) -> (&'static str, String, String) {
        match self {
            Write::Run(ti) => (
                "PATCH",
                format!("/execution/task-instances/{ti}/run"),
                RUN_BODY.into(),
            ),
            Write::Heartbeat(ti) => (
                "PUT",
                format!("/execution/task-instances/{ti}/heartbeat"),
                HEARTBEAT_BODY.into(),
            ),
            Write::Variable { key, value } => (
                "PUT",
                format!("/execution/variables/{key}"),
                json!({"val": value}).to_string(),
            ),
            Write::XCom {
                task_id,
                key,
                value,
            } => (
                "POST",
                format!("/execution/xcoms/{dag}/{RUN_ID}/{task_id}/{key}"),
                value.to_string(),
            ),
            Write::Success(ti) => (
                "PATCH",
                format!("/execution/task-instances/{ti}/state"),
                SUCCESS_BODY.into(),
            ),
        }
    }
}

/// What the writer saw.
#[derive(Default)]
struct Log {
    acknowledged: Vec<Write>,
    /// Requests cut off by a kill (no complete response).
    interrupted: usize,
    /// Anything that was neither a 2xx nor a cut connection.
    unexpected: Vec<String>,
}

/// The plan: per task instance, start, then heartbeats, variables and XComs interleaved, then
/// success. Each task instance's writes use its own token.
fn plan(tis: &[(Uuid, String)], tag: &str) -> Vec<(Uuid, Write)> {
    let mut writes = Vec::new();
    for (i, (ti, task_id)) in tis.iter().enumerate() {
        writes.push((*ti, Write::Run(*ti)));
        for n in 0..3 {
            writes.push((*ti, Write::Heartbeat(*ti)));
            writes.push((
                *ti,
                Write::Variable {
                    key: format!("kill9_{tag}_{i}_{n}"),
                    value: format!("value-{i}-{n}-{}", Uuid::new_v4().simple()),
                },
            ));
            writes.push((
                *ti,
                Write::XCom {
                    task_id: task_id.clone(),
                    key: format!("x{n}"),
                    value: json!({"ti": i, "n": n, "nonce": Uuid::new_v4().to_string()}),
                },
            ));
        }
        writes.push((*ti, Write::Success(*ti)));
    }
    writes
}

fn kill9(database_url: Option<&str>) {
    let dir = TempDir::new("reliability-kill9");
    let tag = Uuid::new_v4().simple().to_string();
    let dag = format!("kill9_{tag}");
    let tis: Vec<(Uuid, String)> = (0..TASK_INSTANCES)
        .map(|i| {
            let task_id = format!("t{i}");
            (create_ti(dir.path(), database_url, &dag, &task_id), task_id)
        })
        .collect();
    let generator = TokenGenerator::new(
        SigningKey::from_secret(SECRET.as_bytes(), Algorithm::HS512, None).unwrap(),
        GeneratorConfig::default(),
    );
    let tokens: std::collections::HashMap<Uuid, String> = tis
        .iter()
        .map(|(ti, _)| {
            let token = generator
                .generate(*ti, TokenType::Execution, Duration::from_secs(3600))
                .unwrap();
            (*ti, token)
        })
        .collect();
    let writes = plan(&tis, &tag);
    let total = writes.len();

    let mut args = vec!["--data-dir", dir.path().to_str().unwrap()];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let env = [("AIRFLOW__API_AUTH__JWT_SECRET", SECRET)];
    let current: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
    let log = Arc::new(Mutex::new(Log::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    // The writer pauses once this many writes are acknowledged, until the next life
    // raises it: it stays busy when a kill comes, and cannot finish before the last one.
    let pause_at = Arc::new(AtomicUsize::new(usize::MAX));
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let (current, log, acked, pause_at, done, dag) = (
            Arc::clone(&current),
            Arc::clone(&log),
            Arc::clone(&acked),
            Arc::clone(&pause_at),
            Arc::clone(&done),
            dag.clone(),
        );
        std::thread::spawn(move || {
            for (ti, write) in writes {
                wait_for("the next life", LIMIT, || {
                    (acked.load(Ordering::SeqCst) < pause_at.load(Ordering::SeqCst)).then_some(())
                });
                let (method, path, body) = write.request(&dag);
                loop {
                    let addr = wait_for("a running server", LIMIT, || *current.lock().unwrap());
                    match call(addr, method, &path, &tokens[&ti], Some(&body)) {
                        Ok(reply) if (200..300).contains(&reply.status) => {
                            log.lock().unwrap().acknowledged.push(write.clone());
                            acked.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Ok(reply) => {
                            log.lock()
                                .unwrap()
                                .unexpected
                                .push(format!("{method} {path}: {} {}", reply.status, reply.body));
                            break;
                        }
                        // Cut off by a kill: the write may or may not have happened; retry it
                        // (every write here is idempotent for the same worker).
                        Err(_) => {
                            log.lock().unwrap().interrupted += 1;
                            // Do not spin on a dead address while the server restarts.
                            let dead = addr;
                            wait_for("a restarted server", LIMIT, || {
                                (*current.lock().unwrap() != Some(dead)).then_some(())
                            });
                        }
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let mut deaths = Vec::new();
    for life in 0..KILLS {
        // Each life acknowledges at least one write, even when the writer ran ahead of
        // the schedule in the previous life, and at most half a life's more than planned.
        let target = ((life + 1) * WRITES_PER_LIFE).max(deaths.last().map_or(0, |d| d + 1));
        pause_at.store(target + WRITES_PER_LIFE / 2, Ordering::SeqCst);
        let server = ServerProcess::start(&args, &env);
        *current.lock().unwrap() = Some(server.addr);
        wait_for("acknowledged writes", LIMIT, || {
            (acked.load(Ordering::SeqCst) >= target.min(total - 1)).then_some(())
        });
        let log_so_far = server.stderr();
        // Drop is SIGKILL (std's Child::kill), in the middle of the writer's stream.
        drop(server);
        *current.lock().unwrap() = None;
        assert!(
            !log_so_far.contains("panicked"),
            "server panicked:\n{log_so_far}"
        );
        deaths.push(acked.load(Ordering::SeqCst));
    }
    // A last life in which the writer finishes, then a clean stop.
    pause_at.store(usize::MAX, Ordering::SeqCst);
    let server = ServerProcess::start(&args, &env);
    *current.lock().unwrap() = Some(server.addr);
    wait_for("the writer to finish", LIMIT, || {
        done.load(Ordering::SeqCst).then_some(())
    });
    writer.join().expect("writer thread");
    let (_, server_log) = server.terminate();
    assert!(
        !server_log.contains("panicked"),
        "server panicked:\n{server_log}"
    );

    let log = log.lock().unwrap();
    assert!(
        log.unexpected.is_empty(),
        "non-2xx answers: {:#?}",
        log.unexpected
    );
    assert_eq!(
        log.acknowledged.len(),
        total,
        "every write was finally acknowledged"
    );
    eprintln!(
        "kill -9 on {}: {total} writes acknowledged, {} requests cut off, acknowledged count at each kill: {deaths:?}",
        database_url.map_or("SQLite", |_| "PostgreSQL"),
        log.interrupted
    );
    assert!(
        deaths.windows(2).all(|w| w[0] < w[1]),
        "the writer advanced between kills: {deaths:?}"
    );

    verify(dir.path(), database_url, &dag, &log.acknowledged);
    if database_url.is_none() {
        assert_eq!(support::sqlite_integrity(dir.path()), "ok");
    }
}

/// Every acknowledged write is in the database.
fn verify(dir: &Path, database_url: Option<&str>, dag: &str, acknowledged: &[Write]) {
    support::runtime().block_on(async {
        let store = support::open_store(dir, database_url).await;
        for write in acknowledged {
            match write {
                Write::Run(ti) | Write::Heartbeat(ti) => {
                    let record = store.task_instance(*ti).await.unwrap().expect("ti");
                    assert!(
                        matches!(record.state, Some(TiState::Running | TiState::Success)),
                        "{write:?}: {record:?}"
                    );
                    assert_eq!(record.hostname.as_deref(), Some("worker-1"), "{write:?}");
                    if matches!(write, Write::Heartbeat(_)) {
                        assert!(record.last_heartbeat_at.is_some(), "{write:?}: {record:?}");
                    }
                }
                Write::Variable { key, value } => {
                    let stored = store.variable(key).await.unwrap();
                    assert_eq!(
                        stored.map(|v| v.value).as_deref(),
                        Some(value.as_str()),
                        "{write:?}"
                    );
                }
                Write::XCom {
                    task_id,
                    key,
                    value,
                } => {
                    let stored = store
                        .xcom(XComKey {
                            dag_id: dag,
                            run_id: RUN_ID,
                            task_id,
                            key,
                            map_index: -1,
                        })
                        .await
                        .unwrap();
                    let stored: Option<Value> =
                        stored.map(|text| serde_json::from_str(&text).expect("stored JSON"));
                    assert_eq!(stored.as_ref(), Some(value), "{write:?}");
                }
                Write::Success(ti) => {
                    let record = store.task_instance(*ti).await.unwrap().expect("ti");
                    assert_eq!(record.state, Some(TiState::Success), "{write:?}");
                    assert!(record.end_date.is_some(), "{write:?}");
                }
            }
        }
        store.close().await;
    });
}

#[test]
fn acknowledged_writes_survive_kill_9_on_sqlite() {
    kill9(None);
}

#[test]
fn acknowledged_writes_survive_kill_9_on_postgres_when_configured() {
    match support::postgres_url() {
        Some(url) => kill9(Some(&url)),
        None => eprintln!(
            "acknowledged_writes_survive_kill_9_on_postgres_when_configured: EXECUTION_API_TEST_POSTGRES_URL unset, ran on SQLite only"
        ),
    }
}

/// Task instances and concurrent workers of the group-commit test (two workers per task
/// instance, as when a worker and its retry overlap; both send the same host and pid).
const HEARTBEAT_TIS: usize = 8;
const HEARTBEAT_WORKERS: usize = 16;
/// Acknowledged heartbeats per life before the kill.
const HEARTBEATS_PER_LIFE: usize = 400;

fn concurrent_heartbeats(database_url: Option<&str>) {
    let dir = TempDir::new("reliability-kill9-heartbeats");
    let dag = format!("kill9_hb_{}", Uuid::new_v4().simple());
    let tis: Vec<Uuid> = (0..HEARTBEAT_TIS)
        .map(|i| create_ti(dir.path(), database_url, &dag, &format!("t{i}")))
        .collect();
    let generator = TokenGenerator::new(
        SigningKey::from_secret(SECRET.as_bytes(), Algorithm::HS512, None).unwrap(),
        GeneratorConfig::default(),
    );
    let tokens: Vec<String> = tis
        .iter()
        .map(|ti| {
            generator
                .generate(*ti, TokenType::Execution, Duration::from_secs(3600))
                .unwrap()
        })
        .collect();
    let mut args = vec!["--data-dir", dir.path().to_str().unwrap()];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let env = [("AIRFLOW__API_AUTH__JWT_SECRET", SECRET)];

    // Per task instance: when its latest acknowledged heartbeat was sent.
    let latest: Arc<Mutex<Vec<Option<time::OffsetDateTime>>>> =
        Arc::new(Mutex::new(vec![None; HEARTBEAT_TIS]));
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut acknowledged_at_kills = Vec::new();
    let acked = Arc::new(AtomicUsize::new(0));
    for life in 0..3 {
        let server = ServerProcess::start(&args, &env);
        if life == 0 {
            for (ti, token) in tis.iter().zip(&tokens) {
                let path = format!("/execution/task-instances/{ti}/run");
                let reply = call(server.addr, "PATCH", &path, token, Some(RUN_BODY)).unwrap();
                assert_eq!(reply.status, 200, "{path}: {}", reply.body);
            }
        }
        let workers: Vec<_> = (0..HEARTBEAT_WORKERS)
            .map(|w| {
                let i = w % HEARTBEAT_TIS;
                let (addr, ti, token) = (server.addr, tis[i], tokens[i].clone());
                let (latest, unexpected, acked) = (
                    Arc::clone(&latest),
                    Arc::clone(&unexpected),
                    Arc::clone(&acked),
                );
                std::thread::spawn(move || {
                    let path = format!("/execution/task-instances/{ti}/heartbeat");
                    loop {
                        let sent = time::OffsetDateTime::now_utc();
                        match call(addr, "PUT", &path, &token, Some(HEARTBEAT_BODY)) {
                            Ok(reply) if reply.status == 204 => {
                                let mut latest = latest.lock().unwrap();
                                if latest[i].is_none_or(|l| l < sent) {
                                    latest[i] = Some(sent);
                                }
                                acked.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(reply) => {
                                unexpected
                                    .lock()
                                    .unwrap()
                                    .push(format!("{path}: {} {}", reply.status, reply.body));
                                return;
                            }
                            // The server was killed.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        let target = (life + 1) * HEARTBEATS_PER_LIFE;
        wait_for("acknowledged heartbeats", LIMIT, || {
            (acked.load(Ordering::SeqCst) >= target || !unexpected.lock().unwrap().is_empty())
                .then_some(())
        });
        let log_so_far = server.stderr();
        drop(server); // SIGKILL, with heartbeats in flight
        for worker in workers {
            worker.join().expect("heartbeat worker");
        }
        assert!(
            !log_so_far.contains("panicked"),
            "server panicked:\n{log_so_far}"
        );
        acknowledged_at_kills.push(acked.load(Ordering::SeqCst));
    }
    let unexpected = unexpected.lock().unwrap();
    assert!(unexpected.is_empty(), "non-204 answers: {unexpected:#?}");
    eprintln!(
        "kill -9 during concurrent heartbeats on {}: acknowledged count at each kill: {acknowledged_at_kills:?}",
        database_url.map_or("SQLite", |_| "PostgreSQL")
    );

    let latest = latest.lock().unwrap().clone();
    support::runtime().block_on(async {
        let store = support::open_store(dir.path(), database_url).await;
        for (ti, sent) in tis.iter().zip(latest) {
            let sent = sent.expect("every task instance had a heartbeat acknowledged");
            let record = store.task_instance(*ti).await.unwrap().expect("ti");
            assert_eq!(record.state, Some(TiState::Running), "{ti}");
            let stored = record.last_heartbeat_at.expect("last_heartbeat_at");
            assert!(
                stored >= sent,
                "{ti}: stored last_heartbeat_at {stored} is older than an acknowledged heartbeat sent at {sent}"
            );
        }
        store.close().await;
    });
    if database_url.is_none() {
        assert_eq!(support::sqlite_integrity(dir.path()), "ok");
    }
}

#[test]
fn acknowledged_concurrent_heartbeats_survive_kill_9_on_sqlite() {
    concurrent_heartbeats(None);
}

#[test]
fn acknowledged_concurrent_heartbeats_survive_kill_9_on_postgres_when_configured() {
    match support::postgres_url() {
        Some(url) => concurrent_heartbeats(Some(&url)),
        None => eprintln!(
            "acknowledged_concurrent_heartbeats_survive_kill_9_on_postgres_when_configured: EXECUTION_API_TEST_POSTGRES_URL unset, ran on SQLite only"
        ),
    }
}
