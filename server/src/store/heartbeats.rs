//! Heartbeats, and their group commit.
//!
//! A heartbeat is one `UPDATE` of `last_heartbeat_at`, and every commit waits
//! for the database to sync it to disk: SQLite runs with `synchronous = FULL`,
//! and PostgreSQL's `synchronous_commit` (the operator's setting, `on` by
//! default) makes a commit wait for its WAL flush. One heartbeat per
//! transaction caps the whole server at one heartbeat per `fsync`, and on
//! PostgreSQL concurrent heartbeats of one task instance even queue behind
//! each other's row lock until that commit. Heartbeats therefore go to a
//! *collector* that writes whatever is queued when it is free (at most
//! [`MAX_BATCH`]) in one transaction, and answers each caller only once that
//! commit succeeded: one `fsync` for the whole batch, and an acknowledged
//! heartbeat is on disk exactly as before. There is no waiting for company: a
//! lone heartbeat (no other in flight in this process) is written at once, as
//! one autocommitted `UPDATE` on the caller's own connection, without the hop
//! to the collector's thread and back; batches form only because heartbeats
//! arrive while others are being written.
//!
//! # A heartbeat never moves `last_heartbeat_at` back
//!
//! Each write stamps the heartbeat with the server's clock before its
//! statement reaches the database, and on PostgreSQL writes of one row run on
//! several connections (a lone heartbeat on the read lane, a batch on the
//! collector's, the slow path on the pool): a heartbeat stamped earlier can
//! wait for the row lock of one stamped later and commit after it. Airflow,
//! which stamps with `timezone.utcnow()` the same way, would then store the
//! older time, and an acknowledged heartbeat would be lost (two workers
//! heartbeating one task instance, a worker and its retry, do this). Every
//! heartbeat `UPDATE` here keeps the stored time when it is later than the
//! stamp: the stored time is the latest acknowledged heartbeat's. (SQLite's
//! one writer already orders stamps as commits; the same statement runs there.)
//!
//! # SQLite: one `BEGIN IMMEDIATE ... COMMIT`
//!
//! Inside a batch each heartbeat runs its own `UPDATE` in arrival order, and
//! when it matched no row its classification `SELECT` (not found, running
//! elsewhere, not running) runs on the same transaction, so its outcome is the
//! one it would have had alone. If anything in the batch fails (the write lock
//! is busy, an I/O error, the commit), the transaction is rolled back and every
//! member gets the error (transient ones stay transient: the API answers 503
//! with `Retry-After`); nothing of that batch is acknowledged.
//!
//! # PostgreSQL: one statement
//!
//! A batch is one autocommitted statement (one round trip, one commit):
//! Airflow's fast-path conditional `UPDATE` for every member at once, the
//! members passed as one JSON parameter (`json_to_recordset`), the rows it
//! updated returned with their host and pid. It first locks the rows with
//! `FOR NO KEY UPDATE` and updates only those: a row another
//! transaction holds locked (the scheduler, another replica) is skipped
//! instead of waited for, so the collector never waits on a row lock (no head
//! of line blocking behind one busy row, no deadlock with a transaction that
//! locks several rows in another order). A member whose row was updated, with
//! its host and pid, is answered `Alive`. Every other member (not running,
//! another host or pid, no such row, a row locked elsewhere) is handed back
//! unanswered, and its caller runs Airflow's slow path on its own pool
//! connection, in a transaction, exactly as without a collector: the fast
//! `UPDATE` (waiting for the row lock, as Airflow does), then `SELECT ... FOR
//! UPDATE` and the 404 / 410 / 409 checks, and the `UPDATE` when the row turns
//! out to be running there after all. A member whose host name holds a NUL
//! character (which PostgreSQL text cannot hold, so the statement would fail)
//! is not batched: it gets the answer it gets alone. If the statement fails,
//! every member gets the error and nothing of that batch is acknowledged.
//!
//! # Design: a collector on its own thread
//!
//! Callers send a request through a bounded tokio `mpsc` channel and wait on a
//! `oneshot` reply. The collector is a task on a small current-thread runtime
//! of its own thread, started by [`Store::open`](super::Store::open), rather
//! than a task spawned on the caller's runtime or a leader/follower scheme:
//!
//! * A caller only waits; it never does work for others. A cancelled request
//!   (actix drops the handler when the client goes away) drops its reply
//!   receiver and nothing else: the collector skips it or its answer is
//!   discarded, and no other caller can be left without an answer. With
//!   leader/follower, a cancelled leader takes its followers' batch down with
//!   it, and every follower needs a take-over protocol.
//! * Its own thread means it does not depend on the runtime that opened the
//!   store being alive, or being driven: the CLI, the tests and actix open a
//!   store on one runtime and use it on others (actix workers each have their
//!   own). It ends when the last clone of the [`Store`](super::Store) is
//!   dropped (the channel closes).
//! * If the collector is gone anyway (its thread could not start, or it died
//!   with requests in hand), sending or receiving fails and the caller falls
//!   back to the unbatched path: one transaction of its own, as above. A
//!   heartbeat is idempotent, so writing it twice is harmless.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::{AnyConnection, AnyPool, Row as _};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub(super) use super::batch::Writer;
use super::lane::{Checkout, Lane};
use super::sql::{Backend, parse_uuid, sql, time_param, uuid_param};
use super::task_instances::{ti_columns, ti_from_row};
use super::{HeartbeatOutcome, Store, StoreError, TiState, now};

/// `/heartbeat`'s request, as the store needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beat {
    /// Host the task runs on; must match the one given to `/run`.
    pub hostname: String,
    /// Process id; must match the one given to `/run`.
    pub pid: i64,
}

/// The most heartbeats one transaction writes.
pub(super) const MAX_BATCH: usize = 256;

/// Heartbeats waiting for the collector; senders wait when it is full.
const QUEUE_CAPACITY: usize = 1024;

/// The collector's answer: the outcome, or (PostgreSQL) `None` when the batch
/// did not update the row and the caller is to find out why itself.
type Answer = Result<Option<HeartbeatOutcome>, StoreError>;

type Reply = oneshot::Sender<Answer>;

/// One heartbeat handed to the collector.
struct Request {
    id: Uuid,
    info: Beat,
    reply: Reply,
}

/// What the collector did, for the tests and for `tracing`.
#[derive(Debug, Default)]
struct Stats {
    /// Batch transactions committed.
    commits: AtomicU64,
    /// Heartbeats answered after a successful commit (on PostgreSQL, with
    /// those handed back to their caller).
    committed: AtomicU64,
    /// Batch transactions that failed (every member got the error).
    failed: AtomicU64,
    /// The largest batch committed.
    largest: AtomicU64,
}

/// The handle on the collector: cheap to clone, one per store.
#[derive(Clone, Debug)]
pub(super) struct HeartbeatBatcher {
    queue: mpsc::Sender<Request>,
    /// The collector's counters (read by the tests).
    #[cfg(test)]
    stats: Arc<Stats>,
    /// What the collector writes through (held by the tests).
    #[cfg(test)]
    writer: Writer,
}

impl HeartbeatBatcher {
    /// Starts the collector writing through `writer`. `None` if its thread
    /// cannot start: heartbeats are then written one by one.
    pub(super) fn start(writer: Writer) -> Option<HeartbeatBatcher> {
        let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(Stats::default());
        let batcher = HeartbeatBatcher {
            queue,
            #[cfg(test)]
            stats: Arc::clone(&stats),
            #[cfg(test)]
            writer: writer.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("heartbeat-commit".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        // Dropping `requests` makes every caller fall back.
                        tracing::warn!(error = %e, "heartbeat group commit disabled: no runtime");
                        return;
                    }
                };
                runtime.block_on(collect(writer, requests, stats));
            });
        match spawned {
            Ok(_) => Some(batcher),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat group commit disabled: no thread");
                None
            }
        }
    }

    /// Hands a heartbeat to the collector and waits for its answer; `None`
    /// when the collector is gone (the caller falls back).
    async fn submit(&self, id: Uuid, info: &Beat) -> Option<Answer> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            id,
            info: info.clone(),
            reply,
        };
        self.queue.send(request).await.ok()?;
        answer.await.ok()
    }
}

/// The collector: one batch at a time, until every store handle is dropped.
async fn collect(writer: Writer, mut requests: mpsc::Receiver<Request>, stats: Arc<Stats>) {
    while let Some(first) = requests.recv().await {
        match &writer {
            Writer::Sqlite(pool) => write_sqlite_batch(pool, &mut requests, first, &stats).await,
            Writer::Postgres(lane) => {
                write_postgres_batch(lane, &mut requests, first, &stats).await
            }
        }
    }
}

/// SQLite: writes `first` and whatever is queued once the write lock is held
/// (at most [`MAX_BATCH`] in all) in one transaction, then answers them all.
async fn write_sqlite_batch(
    writer: &AnyPool,
    requests: &mut mpsc::Receiver<Request>,
    first: Request,
    stats: &Stats,
) {
    let mut members: Vec<(Reply, Option<HeartbeatOutcome>)> = Vec::new();
    let mut tx = match writer.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            // Everyone who queued while the lock was awaited waited as long as
            // `first` did: they all get the error now instead of each waiting
            // for the lock again (batch size does not matter, nothing is written).
            fail_queued(first, requests, StoreError::from(e), stats);
            return;
        }
    };
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(request) = next.take() {
        taken += 1;
        // A cancelled caller is not written: nobody would hear the answer.
        if !request.reply.is_closed() {
            members.push((request.reply, None));
            match record(&mut tx, Backend::Sqlite, request.id, &request.info).await {
                Ok(outcome) => {
                    if let Some((_, slot)) = members.last_mut() {
                        *slot = Some(outcome);
                    }
                }
                Err(e) => {
                    // Dropping `tx` rolls back.
                    fail(members.into_iter().map(|(reply, _)| reply), e, stats);
                    return;
                }
            }
        }
        if taken < MAX_BATCH {
            next = requests.try_recv().ok();
        }
    }
    if let Err(e) = tx.commit().await {
        fail(
            members.into_iter().map(|(reply, _)| reply),
            StoreError::from(e),
            stats,
        );
        return;
    }
    committed(stats, members.len());
    for (reply, outcome) in members {
        if let Some(outcome) = outcome {
            // The caller may be gone by now: nothing to do about it.
            let _ = reply.send(Ok(Some(outcome)));
        }
    }
}

/// PostgreSQL: writes `first` and whatever is queued once a connection is in
/// hand (at most [`MAX_BATCH`] in all) with one statement, then answers them
/// all: `Alive` for the rows it updated, `None` (the caller's own slow path)
/// for the others.
async fn write_postgres_batch(
    writer: &Lane,
    requests: &mut mpsc::Receiver<Request>,
    first: Request,
    stats: &Stats,
) {
    let conn = match writer.checkout().await {
        Ok(conn) => conn,
        Err(e) => {
            fail_queued(first, requests, e, stats);
            return;
        }
    };
    let mut members = vec![first];
    while members.len() < MAX_BATCH {
        match requests.try_recv() {
            Ok(request) => members.push(request),
            Err(_) => break,
        }
    }
    // A cancelled caller is not written: nobody would hear the answer.
    members.retain(|request| !request.reply.is_closed());
    if members.is_empty() {
        return;
    }
    match update_running(conn, &members).await {
        Ok(updated) => {
            committed(stats, members.len());
            for request in members {
                let alive =
                    updated.contains(&(request.id, request.info.hostname, request.info.pid));
                let _ = request
                    .reply
                    .send(Ok(alive.then_some(HeartbeatOutcome::Alive)));
            }
        }
        Err(e) => fail(members.into_iter().map(|request| request.reply), e, stats),
    }
}

/// The PostgreSQL batch statement: Airflow's fast-path `UPDATE` for every
/// member, on the rows no other transaction holds locked; returns the rows it
/// updated as (id, hostname, pid).
async fn update_running(
    conn: Checkout<'_>,
    members: &[Request],
) -> Result<HashSet<(Uuid, String, i64)>, StoreError> {
    let beats: Vec<serde_json::Value> = members
        .iter()
        .map(|request| {
            serde_json::json!({
                "id": uuid_param(request.id),
                "hostname": request.info.hostname,
                "pid": request.info.pid,
            })
        })
        .collect();
    let beats = serde_json::Value::Array(beats).to_string();
    let stamp = time_param(now());
    // Repeated once on a fresh connection if the lane's was stale: a
    // heartbeat written twice is the same heartbeat.
    let rows = conn
        .fetch_all(|| {
            sqlx::query(
                "WITH beat AS ( \
             SELECT * FROM json_to_recordset($1::json) AS beat(id uuid, hostname text, pid bigint) \
         ), mine AS MATERIALIZED ( \
             SELECT id FROM task_instance WHERE id IN (SELECT id FROM beat) \
             FOR NO KEY UPDATE SKIP LOCKED \
         ) \
         UPDATE task_instance AS ti \
         SET \
         last_heartbeat_at = CASE WHEN last_heartbeat_at > $2::timestamptz \
             THEN last_heartbeat_at ELSE $2::timestamptz END, \
         updated_at = $2::timestamptz \
         FROM beat \
         WHERE ti.id = beat.id AND ti.id IN (SELECT id FROM mine) AND ti.state = 'running' \
         AND ti.hostname = beat.hostname AND ti.pid = beat.pid \
         RETURNING CAST(ti.id AS TEXT) AS id, ti.hostname, CAST(ti.pid AS BIGINT) AS pid",
            )
            .bind(beats.as_str())
            .bind(stamp.as_str())
        })
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                parse_uuid(&row.try_get::<String, _>("id")?)?,
                row.try_get("hostname")?,
                row.try_get("pid")?,
            ))
        })
        .collect()
}

/// Counts a committed batch of `size` members.
fn committed(stats: &Stats, size: usize) {
    let size = size as u64;
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.committed.fetch_add(size, Ordering::Relaxed);
    stats.largest.fetch_max(size, Ordering::Relaxed);
    tracing::trace!(size, "heartbeat batch committed");
}

/// The batch could not start: `first` and everyone queued behind it get `err`.
fn fail_queued(
    first: Request,
    requests: &mut mpsc::Receiver<Request>,
    err: StoreError,
    stats: &Stats,
) {
    let mut members = vec![first.reply];
    while let Ok(request) = requests.try_recv() {
        members.push(request.reply);
    }
    fail(members, err, stats);
}

/// Answers every member of a failed batch with (a copy of) `err`.
fn fail(members: impl IntoIterator<Item = Reply>, err: StoreError, stats: &Stats) {
    stats.failed.fetch_add(1, Ordering::Relaxed);
    let mut members = members.into_iter();
    let Some(first) = members.next() else {
        return;
    };
    let mut size = 1;
    for reply in members {
        size += 1;
        let _ = reply.send(Err(duplicate(&err)));
    }
    tracing::debug!(error = %err, size, "heartbeat batch failed");
    let _ = first.send(Err(err));
}

/// One heartbeat on `conn` (a transaction): Airflow's fast-path conditional
/// `UPDATE`, and when it matched nothing, its slow path: the row read
/// `FOR UPDATE` (PostgreSQL; on SQLite the transaction holds the write lock),
/// why it is not this worker's running row, or the `UPDATE` after all.
async fn record(
    conn: &mut AnyConnection,
    backend: Backend,
    id: Uuid,
    info: &Beat,
) -> Result<HeartbeatOutcome, StoreError> {
    if update_one(conn, backend, id, info).await? {
        return Ok(HeartbeatOutcome::Alive);
    }
    let key = uuid_param(id);
    let row = sqlx::query(sql!(
        backend,
        concat!(
            "SELECT ",
            ti_columns!(),
            " FROM task_instance WHERE id = $1::uuid FOR UPDATE"
        )
    ))
    .bind(&key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(ti) = row.as_ref().map(ti_from_row).transpose()? else {
        let archived: i64 = sqlx::query(sql!(
            backend,
            "SELECT COUNT(task_instance_id) FROM task_instance_history \
             WHERE task_instance_id = $1::uuid"
        ))
        .bind(&key)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        return Ok(if archived > 0 {
            HeartbeatOutcome::Archived
        } else {
            HeartbeatOutcome::NotFound
        });
    };
    // Airflow's order: a pid/host mismatch first, then the state.
    if ti.hostname.as_deref() != Some(info.hostname.as_str()) || ti.pid != Some(info.pid) {
        return Ok(HeartbeatOutcome::RunningElsewhere {
            hostname: ti.hostname,
            pid: ti.pid,
        });
    }
    if ti.state != Some(TiState::Running) {
        return Ok(HeartbeatOutcome::NotRunning { state: ti.state });
    }
    // Running here after all: it changed between the two statements (the
    // fast path ran on an older version of the row). Now that the row is
    // locked, the update holds, as in Airflow's slow path.
    update_one(conn, backend, id, info).await?;
    Ok(HeartbeatOutcome::Alive)
}

/// Airflow's fast path: `last_heartbeat_at` if the row is running on this
/// host and pid (never moved back, see the module's docs); whether it was.
async fn update_one(
    conn: &mut AnyConnection,
    backend: Backend,
    id: Uuid,
    info: &Beat,
) -> Result<bool, StoreError> {
    let stamp = time_param(now());
    let updated = sqlx::query(sql!(
        backend,
        "UPDATE task_instance SET \
         last_heartbeat_at = CASE WHEN last_heartbeat_at > $4::timestamptz \
             THEN last_heartbeat_at ELSE $4::timestamptz END, \
         updated_at = $4::timestamptz \
         WHERE id = $1::uuid AND state = 'running' AND hostname = $2 AND pid = $3"
    ))
    .bind(uuid_param(id))
    .bind(&info.hostname)
    .bind(info.pid)
    .bind(&stamp)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

impl Store {
    /// `/heartbeat`: records that the worker is alive. Concurrent heartbeats
    /// share one transaction (one `fsync`); the answer comes once it is
    /// committed.
    pub async fn heartbeat(&self, id: Uuid, info: &Beat) -> Result<HeartbeatOutcome, StoreError> {
        // PostgreSQL text cannot hold NUL: such a heartbeat would fail its whole batch.
        let batchable = self.backend == Backend::Sqlite || !info.hostname.contains('\0');
        let in_flight = super::batch::InFlight::enter(&self.heartbeat_writes);
        match &self.heartbeats {
            Some(batcher) if batchable && in_flight.others > 0 => {
                if let Some(answer) = batcher.submit(id, info).await
                    // `None` (PostgreSQL): the batch did not update the row; find out why.
                    && let Some(outcome) = answer?
                {
                    return Ok(outcome);
                }
            }
            // Alone: the fast path at once, on this worker's own connection.
            _ if batchable && self.update_alone(id, info).await? => {
                return Ok(HeartbeatOutcome::Alive);
            }
            _ => {}
        }
        // The slow path, or no collector: a transaction of its own.
        let mut tx = self.begin_write().await?;
        let outcome = record(&mut tx, self.backend, id, info).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

impl Store {
    /// A heartbeat with no other in flight: Airflow's fast-path `UPDATE` as
    /// one autocommitted statement on this worker's connection (PostgreSQL:
    /// its read lane, which takes such repeatable single-statement writes;
    /// SQLite: the writer), without the hop to the collector's thread and
    /// back. Whether it updated the row; when not, the caller's slow path
    /// finds out why. A repeat on a fresh connection (the lane's was stale)
    /// writes the same heartbeat again.
    async fn update_alone(&self, id: Uuid, info: &Beat) -> Result<bool, StoreError> {
        let Some(lane) = &self.lane else {
            return update_one(&mut *self.writer.acquire().await?, self.backend, id, info).await;
        };
        let (key, stamp) = (uuid_param(id), time_param(now()));
        let row = lane
            .fetch_optional(|| {
                sqlx::query(
                    "UPDATE task_instance SET \
                     last_heartbeat_at = CASE WHEN last_heartbeat_at > $4::timestamptz \
                         THEN last_heartbeat_at ELSE $4::timestamptz END, \
                     updated_at = $4::timestamptz \
                     WHERE id = $1::uuid AND state = 'running' AND hostname = $2 AND pid = $3 \
                     RETURNING 1",
                )
                .bind(key.as_str())
                .bind(info.hostname.as_str())
                .bind(info.pid)
                .bind(stamp.as_str())
            })
            .await?;
        Ok(row.is_some())
    }
}

/// An equivalent error for another member of a failed batch: same variant,
/// same message and database code, so the API maps it the same way (503 for a
/// transient error, 422 for a refused value...).
fn duplicate(err: &StoreError) -> StoreError {
    match err {
        StoreError::UnsupportedUrl { url, why } => StoreError::UnsupportedUrl {
            url: url.clone(),
            why,
        },
        StoreError::CreateDir { path, source } => StoreError::CreateDir {
            path: path.clone(),
            source: copy_io(source),
        },
        StoreError::Database(e) => StoreError::Database(duplicate_sqlx(e)),
        StoreError::AlreadyExists(what) => StoreError::AlreadyExists(what.clone()),
        StoreError::NotFound(what) => StoreError::NotFound(what.clone()),
        StoreError::InvalidValue(what) => StoreError::InvalidValue(what.clone()),
        StoreError::Corrupt(what) => StoreError::Corrupt(what.clone()),
        // Neither arises from a heartbeat; kept as their message.
        StoreError::Schema(_) | StoreError::Decrypt { .. } => StoreError::Corrupt(err.to_string()),
    }
}

fn duplicate_sqlx(err: &sqlx::Error) -> sqlx::Error {
    match err {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        sqlx::Error::RowNotFound => sqlx::Error::RowNotFound,
        sqlx::Error::Io(e) => sqlx::Error::Io(copy_io(e)),
        sqlx::Error::Tls(e) => sqlx::Error::Tls(e.to_string().into()),
        sqlx::Error::Database(db) => sqlx::Error::Database(Box::new(CopiedDatabaseError {
            message: db.message().to_owned(),
            code: db.code().map(Cow::into_owned),
            kind: copy_kind(&db.kind()),
        })),
        // Not transient, an internal error either way.
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

fn copy_io(err: &std::io::Error) -> std::io::Error {
    std::io::Error::new(err.kind(), err.to_string())
}

fn copy_kind(kind: &ErrorKind) -> ErrorKind {
    match kind {
        ErrorKind::UniqueViolation => ErrorKind::UniqueViolation,
        ErrorKind::ForeignKeyViolation => ErrorKind::ForeignKeyViolation,
        ErrorKind::NotNullViolation => ErrorKind::NotNullViolation,
        ErrorKind::CheckViolation => ErrorKind::CheckViolation,
        ErrorKind::ExclusionViolation => ErrorKind::ExclusionViolation,
        _ => ErrorKind::Other,
    }
}

/// A database error's message, code and kind, detached from its driver.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct CopiedDatabaseError {
    message: String,
    code: Option<String>,
    kind: ErrorKind,
}

impl DatabaseError for CopiedDatabaseError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.as_deref().map(Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        copy_kind(&self.kind)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::task_instances::{TIEnterRunningPayload, TIStateUpdate};
    use crate::store::testing::{stores, temp_sqlite};
    use crate::store::{NewTaskInstance, StartOutcome, StateOutcome};
    use time::OffsetDateTime;

    /// Older than any heartbeat a test writes.
    const OLD: &str = "2000-01-01 00:00:00.000000";

    fn old() -> OffsetDateTime {
        crate::store::sql::parse_time(OLD).unwrap()
    }

    fn beat(hostname: &str, pid: i64) -> Beat {
        Beat {
            hostname: hostname.into(),
            pid,
        }
    }

    fn stats(store: &Store) -> &Stats {
        &store.heartbeats.as_ref().expect("a collector").stats
    }

    fn commits(store: &Store) -> u64 {
        stats(store).commits.load(Ordering::Relaxed)
    }

    /// While held, every heartbeat goes to the collector: another one is in flight.
    fn batched(store: &Store) -> crate::store::batch::InFlight<'_> {
        crate::store::batch::InFlight::enter(&store.heartbeat_writes)
    }

    /// A task instance running on `hostname`/`pid`, its last heartbeat [`OLD`].
    async fn started(store: &Store, dag: &str, task: &str, hostname: &str, pid: i64) -> Uuid {
        let id = store
            .create_task_instance(&NewTaskInstance::new(dag, task))
            .await
            .unwrap();
        let payload: TIEnterRunningPayload = serde_json::from_value(serde_json::json!({
            "hostname": hostname, "unixname": "airflow", "pid": pid,
            "start_date": "2024-05-01T10:00:00+00:00"
        }))
        .unwrap();
        assert!(matches!(
            store
                .start_task_instance(id, &payload.to_request())
                .await
                .unwrap(),
            StartOutcome::Started(_)
        ));
        age(store, id).await;
        id
    }

    async fn age(store: &Store, id: Uuid) {
        sqlx::query(sql!(
            store.backend,
            "UPDATE task_instance SET last_heartbeat_at = $1::timestamptz WHERE id = $2::uuid"
        ))
        .bind(OLD)
        .bind(uuid_param(id))
        .execute(&store.writer)
        .await
        .unwrap();
    }

    async fn succeed(store: &Store, id: Uuid) {
        let success: TIStateUpdate = serde_json::from_value(
            serde_json::json!({"state": "success", "end_date": "2024-05-01T11:00:00Z"}),
        )
        .unwrap();
        assert_eq!(
            store
                .update_task_instance_state(id, &success.to_change())
                .await
                .unwrap(),
            StateOutcome::Updated
        );
    }

    async fn last_heartbeat(store: &Store, id: Uuid) -> Option<OffsetDateTime> {
        store
            .task_instance(id)
            .await
            .unwrap()
            .unwrap()
            .last_heartbeat_at
    }

    /// Waits until `n` heartbeats wait in the collector's queue.
    async fn wait_queued(store: &Store, n: usize) {
        let queue = &store.heartbeats.as_ref().expect("a collector").queue;
        for _ in 0..10_000 {
            if queue.max_capacity() - queue.capacity() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!(
            "{} heartbeats queued, expected {n}",
            queue.max_capacity() - queue.capacity()
        );
    }

    /// Every connection the collector could write with, held: the SQLite
    /// writer, or the collector's whole PostgreSQL lane.
    async fn hold_writer(store: &Store) -> crate::store::batch::Holding {
        store.heartbeats.as_ref().unwrap().writer.hold().await
    }

    /// Sends every heartbeat at once, each from its own task, and returns the
    /// answers in order. The connections the collector writes with are held
    /// until all are queued (the collector holds the first one, waiting for a
    /// connection), so the batches they form do not depend on timing.
    async fn heartbeat_all(
        store: &Store,
        requests: &[(Uuid, Beat)],
    ) -> Vec<Result<HeartbeatOutcome, StoreError>> {
        let held = match store.heartbeats {
            Some(_) => Some(hold_writer(store).await),
            None => None,
        };
        let _batched = batched(store);
        let tasks: Vec<_> = requests
            .iter()
            .map(|(id, info)| {
                let (store, id, info) = (store.clone(), *id, info.clone());
                tokio::spawn(async move { store.heartbeat(id, &info).await })
            })
            .collect();
        if let Some(held) = held {
            wait_queued(store, requests.len() - 1).await;
            drop(held);
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn concurrent_heartbeats_keep_their_own_outcomes() {
        for store in stores("concurrent_heartbeats_keep_their_own_outcomes").await {
            let dag = format!("dag_{}", Uuid::new_v4().simple());
            let alive = started(&store, &dag, "alive", "h1", 1).await;
            let elsewhere = started(&store, &dag, "elsewhere", "h2", 2).await;
            let done = started(&store, &dag, "done", "h3", 3).await;
            succeed(&store, done).await;
            age(&store, done).await;
            let queued = store
                .create_task_instance(&NewTaskInstance::new(&dag, "queued"))
                .await
                .unwrap();
            let missing = Uuid::new_v4();
            let kinds = [
                (alive, beat("h1", 1), HeartbeatOutcome::Alive, 120),
                (
                    elsewhere,
                    beat("h2", 7),
                    HeartbeatOutcome::RunningElsewhere {
                        hostname: Some("h2".into()),
                        pid: Some(2),
                    },
                    40,
                ),
                (
                    done,
                    beat("h3", 3),
                    HeartbeatOutcome::NotRunning {
                        state: Some(TiState::Success),
                    },
                    20,
                ),
                (
                    queued,
                    beat("h1", 1),
                    HeartbeatOutcome::RunningElsewhere {
                        hostname: None,
                        pid: None,
                    },
                    10,
                ),
                (missing, beat("h1", 1), HeartbeatOutcome::NotFound, 10),
                // The same row as the good ones, another pid.
                (
                    alive,
                    beat("h1", 9),
                    HeartbeatOutcome::RunningElsewhere {
                        hostname: Some("h1".into()),
                        pid: Some(1),
                    },
                    10,
                ),
            ];
            // Interleaved, so one batch holds every kind in turn.
            let mut cases = Vec::new();
            for round in 0..120 {
                for (id, info, expected, count) in &kinds {
                    if round < *count {
                        cases.push((*id, info.clone(), expected.clone()));
                    }
                }
            }
            assert_eq!(cases.len(), 210);
            let before = store.heartbeats.as_ref().map(|_| commits(&store));
            let requests: Vec<_> = cases.iter().map(|(id, i, _)| (*id, i.clone())).collect();
            let answers = heartbeat_all(&store, &requests).await;
            for ((id, info, expected), answer) in cases.iter().zip(answers) {
                assert_eq!(&answer.unwrap(), expected, "{id} {info:?}");
            }
            let written = last_heartbeat(&store, alive).await.unwrap();
            assert!(written > old(), "{written}");
            for untouched in [elsewhere, done] {
                assert_eq!(last_heartbeat(&store, untouched).await, Some(old()));
            }
            assert_eq!(last_heartbeat(&store, queued).await, None);
            if let Some(before) = before {
                // All 210 were queued when the writer became free: one batch,
                // one commit, every member answered from it (on PostgreSQL,
                // the misses then by their own slow path).
                let stats = stats(&store);
                assert_eq!(commits(&store) - before, 1);
                assert_eq!(stats.committed.load(Ordering::Relaxed), 210);
                assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
            }
        }
    }

    /// Later than any heartbeat a test writes: a heartbeat stamped after the
    /// one under test, committed first.
    const LATER: &str = "2100-01-01 00:00:00.000000";

    async fn set_heartbeat(conn: &mut AnyConnection, backend: Backend, id: Uuid, at: &str) {
        sqlx::query(sql!(
            backend,
            "UPDATE task_instance SET last_heartbeat_at = $1::timestamptz WHERE id = $2::uuid"
        ))
        .bind(at)
        .bind(uuid_param(id))
        .execute(conn)
        .await
        .unwrap();
    }

    /// A heartbeat whose write lands after one stamped later keeps the later
    /// time, on every path: alone, in a batch, and (PostgreSQL) the slow path
    /// waiting for the row lock of a transaction that writes the later time
    /// (the race of two workers heartbeating one task instance).
    #[tokio::test]
    async fn a_heartbeat_never_moves_the_last_heartbeat_back() {
        for store in stores("a_heartbeat_never_moves_the_last_heartbeat_back").await {
            let dag = format!("dag_{}", Uuid::new_v4().simple());
            let id = started(&store, &dag, "t", "h", 1).await;
            let later = Some(crate::store::sql::parse_time(LATER).unwrap());
            let mut conn = store.writer.acquire().await.unwrap();
            set_heartbeat(&mut conn, store.backend, id, LATER).await;
            drop(conn);
            assert_eq!(
                store.heartbeat(id, &beat("h", 1)).await.unwrap(),
                HeartbeatOutcome::Alive
            );
            assert_eq!(last_heartbeat(&store, id).await, later, "alone");
            {
                let _batched = batched(&store);
                assert_eq!(
                    store.heartbeat(id, &beat("h", 1)).await.unwrap(),
                    HeartbeatOutcome::Alive
                );
            }
            assert_eq!(last_heartbeat(&store, id).await, later, "in a batch");
            // An older time is still moved forward.
            age(&store, id).await;
            assert_eq!(
                store.heartbeat(id, &beat("h", 1)).await.unwrap(),
                HeartbeatOutcome::Alive
            );
            assert!(last_heartbeat(&store, id).await.unwrap() > old());

            if store.backend == Backend::Postgres {
                age(&store, id).await;
                let mut holder = store.pool.begin().await.unwrap();
                set_heartbeat(&mut holder, store.backend, id, LATER).await;
                let batched = batched(&store);
                let waiting = {
                    let store = store.clone();
                    tokio::spawn(async move { store.heartbeat(id, &beat("h", 1)).await })
                };
                // Skipped by the batch, it waits for the row lock on its own.
                tokio::time::sleep(Duration::from_millis(200)).await;
                assert!(!waiting.is_finished());
                holder.commit().await.unwrap();
                let answer = tokio::time::timeout(Duration::from_secs(3), waiting)
                    .await
                    .expect("answered once the lock was released")
                    .unwrap();
                drop(batched);
                assert_eq!(answer.unwrap(), HeartbeatOutcome::Alive);
                assert_eq!(last_heartbeat(&store, id).await, later, "slow path");
            }
        }
    }

    /// PostgreSQL: a row another transaction holds locked is skipped by the
    /// batch (its heartbeat then waits for the lock on its own, as Airflow's
    /// does), and the other members of that batch are answered meanwhile.
    #[tokio::test]
    async fn a_row_locked_elsewhere_does_not_hold_up_the_batch() {
        for store in stores("a_row_locked_elsewhere_does_not_hold_up_the_batch").await {
            if store.backend != Backend::Postgres {
                continue;
            }
            let dag = format!("dag_{}", Uuid::new_v4().simple());
            let locked = started(&store, &dag, "locked", "h1", 1).await;
            let free = started(&store, &dag, "free", "h2", 2).await;
            let before = commits(&store);
            let mut holder = store.pool.begin().await.unwrap();
            sqlx::query("SELECT 1 FROM task_instance WHERE id = $1::uuid FOR UPDATE")
                .bind(uuid_param(locked))
                .execute(&mut *holder)
                .await
                .unwrap();
            // Both in one batch: the collector's connections are held until
            // both are queued.
            let held = hold_writer(&store).await;
            let batched = batched(&store);
            let spawn = |id: Uuid, info: Beat| {
                let store = store.clone();
                tokio::spawn(async move { store.heartbeat(id, &info).await })
            };
            let waiting = spawn(locked, beat("h1", 1));
            let answered = spawn(free, beat("h2", 2));
            wait_queued(&store, 1).await;
            drop((held, batched));
            let answer = tokio::time::timeout(Duration::from_secs(3), answered)
                .await
                .expect("the batch waited for the locked row")
                .unwrap();
            assert_eq!(answer.unwrap(), HeartbeatOutcome::Alive);
            assert_eq!(commits(&store) - before, 1);
            assert!(last_heartbeat(&store, free).await.unwrap() > old());
            // The locked row's heartbeat waits for the lock, not answered yet.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!waiting.is_finished());
            assert_eq!(last_heartbeat(&store, locked).await, Some(old()));
            holder.rollback().await.unwrap();
            assert_eq!(waiting.await.unwrap().unwrap(), HeartbeatOutcome::Alive);
            assert!(last_heartbeat(&store, locked).await.unwrap() > old());
        }
    }

    /// A host name with a NUL character (PostgreSQL text cannot hold one)
    /// gets the answer it gets alone, and does not fail the others' batch.
    #[tokio::test]
    async fn a_nul_hostname_does_not_fail_the_others() {
        for store in stores("a_nul_hostname_does_not_fail_the_others").await {
            let dag = format!("dag_{}", Uuid::new_v4().simple());
            let id = started(&store, &dag, "t", "h", 1).await;
            let alone = format!("{:?}", store.heartbeat(id, &beat("h\0x", 1)).await);
            let (good, bad) = (beat("h", 1), beat("h\0x", 1));
            let (a, nul, b) = tokio::join!(
                store.heartbeat(id, &good),
                store.heartbeat(id, &bad),
                store.heartbeat(id, &good),
            );
            assert_eq!(a.unwrap(), HeartbeatOutcome::Alive);
            assert_eq!(b.unwrap(), HeartbeatOutcome::Alive);
            assert_eq!(format!("{nul:?}"), alone);
            assert!(last_heartbeat(&store, id).await.unwrap() > old());
        }
    }

    #[tokio::test]
    async fn a_batch_is_bounded() {
        let target = temp_sqlite();
        let store = Store::open(&target).await.unwrap();
        let id = started(&store, "dag", "t", "h", 1).await;
        let requests = vec![(id, beat("h", 1)); 300];
        let answers = heartbeat_all(&store, &requests).await;
        assert!(
            answers
                .into_iter()
                .all(|a| a.unwrap() == HeartbeatOutcome::Alive)
        );
        let stats = stats(&store);
        assert_eq!(commits(&store), 2);
        assert_eq!(stats.largest.load(Ordering::Relaxed), MAX_BATCH as u64);
        assert_eq!(stats.committed.load(Ordering::Relaxed), 300);
    }

    #[tokio::test]
    async fn a_heartbeat_after_success_is_not_running() {
        for store in stores("a_heartbeat_after_success_is_not_running").await {
            let dag = format!("dag_{}", Uuid::new_v4().simple());
            let id = started(&store, &dag, "t", "h", 1).await;
            assert_eq!(
                store.heartbeat(id, &beat("h", 1)).await.unwrap(),
                HeartbeatOutcome::Alive
            );
            let written = last_heartbeat(&store, id).await.unwrap();
            assert!(written > old(), "{written}");
            succeed(&store, id).await;
            assert_eq!(
                store.heartbeat(id, &beat("h", 1)).await.unwrap(),
                HeartbeatOutcome::NotRunning {
                    state: Some(TiState::Success)
                }
            );
            assert_eq!(last_heartbeat(&store, id).await, Some(written));
            if store.heartbeats.is_some() {
                // Each alone: neither went through the collector.
                assert_eq!(commits(&store), 0);
            }
        }
    }

    /// With no other heartbeat in flight, each is written at once on the
    /// caller's connection (the collector never sees it), with the outcome
    /// it has through the collector.
    #[tokio::test]
    async fn a_lone_heartbeat_skips_the_collector_and_keeps_its_outcome() {
        for store in stores("a_lone_heartbeat_skips_the_collector").await {
            let dag = format!("dag_{}", Uuid::new_v4().simple());
            let alive = started(&store, &dag, "alive", "h1", 1).await;
            let done = started(&store, &dag, "done", "h3", 3).await;
            succeed(&store, done).await;
            age(&store, done).await;
            // The collector's connections are held: a heartbeat sent there would wait.
            let held = hold_writer(&store).await;
            let alone = |id, info: Beat| {
                let store = store.clone();
                async move {
                    tokio::time::timeout(Duration::from_secs(3), store.heartbeat(id, &info))
                        .await
                        .expect("answered without the collector")
                        .unwrap()
                }
            };
            if store.backend == Backend::Postgres {
                assert_eq!(alone(alive, beat("h1", 1)).await, HeartbeatOutcome::Alive);
                assert!(last_heartbeat(&store, alive).await.unwrap() > old());
                assert_eq!(
                    alone(alive, beat("h1", 2)).await,
                    HeartbeatOutcome::RunningElsewhere {
                        hostname: Some("h1".into()),
                        pid: Some(1)
                    }
                );
                assert_eq!(
                    alone(done, beat("h3", 3)).await,
                    HeartbeatOutcome::NotRunning {
                        state: Some(TiState::Success)
                    }
                );
                assert_eq!(last_heartbeat(&store, done).await, Some(old()));
                assert_eq!(
                    alone(Uuid::new_v4(), beat("h1", 1)).await,
                    HeartbeatOutcome::NotFound
                );
                assert_eq!(commits(&store), 0);
            }
            // SQLite: the collector's connection is the one writer, so the
            // lone heartbeat waits for it too, then is written alone.
            drop(held);
            age(&store, alive).await;
            assert_eq!(alone(alive, beat("h1", 1)).await, HeartbeatOutcome::Alive);
            assert!(last_heartbeat(&store, alive).await.unwrap() > old());
            assert_eq!(
                alone(done, beat("h3", 3)).await,
                HeartbeatOutcome::NotRunning {
                    state: Some(TiState::Success)
                }
            );
            assert_eq!(commits(&store), 0);
        }
    }

    #[tokio::test]
    async fn a_failed_batch_answers_every_member_and_writes_nothing() {
        let target = temp_sqlite();
        let store = Store::open(&target).await.unwrap();
        let other_process = Store::open(&target).await.unwrap();
        let id = started(&store, "dag", "t", "h", 1).await;

        // Another process holds the write lock past (a short) busy_timeout.
        let mut held = store.writer.acquire().await.unwrap();
        sqlx::query("PRAGMA busy_timeout = 50")
            .execute(&mut *held)
            .await
            .unwrap();
        let lock = other_process
            .pool
            .begin_with("BEGIN EXCLUSIVE")
            .await
            .unwrap();
        let batched = batched(&store);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.heartbeat(id, &beat("h", 1)).await })
            })
            .collect();
        wait_queued(&store, 19).await;
        drop(held);
        for task in tasks {
            let err = task.await.unwrap().unwrap_err();
            assert!(err.is_transient(), "{err:?}");
        }
        drop(batched);
        assert_eq!(stats(&store).failed.load(Ordering::Relaxed), 1);
        assert_eq!(commits(&store), 0);
        lock.rollback().await.unwrap();
        assert_eq!(last_heartbeat(&store, id).await, Some(old()));

        // The lock is gone: the next heartbeat is written (alone, at once).
        assert_eq!(
            store.heartbeat(id, &beat("h", 1)).await.unwrap(),
            HeartbeatOutcome::Alive
        );
        assert!(last_heartbeat(&store, id).await.unwrap() > old());
        assert_eq!(commits(&store), 0);
    }

    #[tokio::test]
    async fn a_cancelled_caller_does_not_hurt_the_others() {
        let target = temp_sqlite();
        let store = Store::open(&target).await.unwrap();
        let id = started(&store, "dag", "t", "h", 1).await;
        let held = store.writer.acquire().await.unwrap();
        let _batched = batched(&store);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.heartbeat(id, &beat("h", 1)).await })
            })
            .collect();
        wait_queued(&store, 9).await;
        let mut kept = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            // The first one is in the collector's hands already.
            if i % 3 == 0 {
                task.abort();
                assert!(task.await.unwrap_err().is_cancelled());
            } else {
                kept.push(task);
            }
        }
        drop(held);
        for task in kept {
            assert_eq!(task.await.unwrap().unwrap(), HeartbeatOutcome::Alive);
        }
        assert_eq!(commits(&store), 1);
        assert_eq!(stats(&store).committed.load(Ordering::Relaxed), 6);
        assert!(last_heartbeat(&store, id).await.unwrap() > old());
    }

    #[tokio::test]
    async fn without_a_collector_heartbeats_are_written_one_by_one() {
        let target = temp_sqlite();
        let mut store = Store::open(&target).await.unwrap();
        let id = started(&store, "dag", "t", "h", 1).await;
        let stats = Arc::new(Stats::default());
        let writes = Arc::clone(&store.heartbeat_writes);
        let _batched = crate::store::batch::InFlight::enter(&writes);

        // The collector is gone: sending fails.
        let (queue, requests) = mpsc::channel(1);
        drop(requests);
        store.heartbeats = Some(HeartbeatBatcher {
            queue,
            stats: Arc::clone(&stats),
            writer: Writer::Sqlite(store.writer.clone()),
        });
        assert_eq!(
            store.heartbeat(id, &beat("h", 1)).await.unwrap(),
            HeartbeatOutcome::Alive
        );
        assert!(last_heartbeat(&store, id).await.unwrap() > old());

        // The collector dies with the request in hand: no answer comes.
        age(&store, id).await;
        let (queue, mut requests) = mpsc::channel::<Request>(1);
        let dying = tokio::spawn(async move {
            let request = requests.recv().await;
            drop(request);
        });
        store.heartbeats = Some(HeartbeatBatcher {
            queue,
            stats,
            writer: Writer::Sqlite(store.writer.clone()),
        });
        assert_eq!(
            store.heartbeat(id, &beat("h", 1)).await.unwrap(),
            HeartbeatOutcome::Alive
        );
        assert!(last_heartbeat(&store, id).await.unwrap() > old());
        assert_eq!(
            store
                .heartbeat(Uuid::new_v4(), &beat("h", 1))
                .await
                .unwrap(),
            HeartbeatOutcome::NotFound
        );
        dying.await.unwrap();
    }

    #[test]
    fn a_store_outlives_the_runtime_that_opened_it() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let opener = runtime();
        let target = temp_sqlite();
        let (store, id) = opener.block_on(async {
            let store = Store::open(&target).await.unwrap();
            let id = started(&store, "dag", "t", "h", 1).await;
            // sqlx returns a connection to its pool in a task spawned on the
            // runtime that used it: let this one finish them before going idle.
            for _ in 0..5_000 {
                if store.writer.num_idle() == 1
                    && store.pool.num_idle() == store.pool.size() as usize
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (store, id)
        });
        let _batched = batched(&store);
        // The opener's runtime is alive but idle, then gone: the collector
        // runs on its own thread either way.
        runtime().block_on(async {
            assert_eq!(
                store.heartbeat(id, &beat("h", 1)).await.unwrap(),
                HeartbeatOutcome::Alive
            );
        });
        drop(opener);
        runtime().block_on(async {
            assert_eq!(
                store.heartbeat(id, &beat("h", 2)).await.unwrap(),
                HeartbeatOutcome::RunningElsewhere {
                    hostname: Some("h".into()),
                    pid: Some(1)
                }
            );
            assert_eq!(
                store.heartbeat(id, &beat("h", 1)).await.unwrap(),
                HeartbeatOutcome::Alive
            );
        });
        assert_eq!(commits(&store), 3);
    }

    #[test]
    fn a_copied_error_maps_like_the_original() {
        let busy = StoreError::Database(sqlx::Error::Database(Box::new(CopiedDatabaseError {
            message: "database is locked".into(),
            code: Some("5".into()),
            kind: ErrorKind::Other,
        })));
        let errors = [
            busy,
            StoreError::Database(sqlx::Error::PoolTimedOut),
            StoreError::Database(sqlx::Error::Io(std::io::Error::other("reset"))),
            StoreError::Database(sqlx::Error::RowNotFound),
            StoreError::InvalidValue("NUL".into()),
            StoreError::Corrupt("bad".into()),
            StoreError::NotFound("gone".into()),
        ];
        for err in &errors {
            let copy = duplicate(err);
            assert_eq!(copy.is_transient(), err.is_transient(), "{err:?}");
            assert_eq!(
                std::mem::discriminant(&copy),
                std::mem::discriminant(err),
                "{err:?}"
            );
            assert_eq!(copy.to_string(), err.to_string(), "{err:?}");
        }
        // An error without a copy keeps its text and stays an internal error.
        let odd = StoreError::Database(sqlx::Error::ColumnNotFound("x".into()));
        let copy = duplicate(&odd);
        assert!(!copy.is_transient());
        assert!(matches!(copy, StoreError::Database(_)));
        assert!(
            copy.to_string().contains("no column found for name: x"),
            "{copy}"
        );
        let StoreError::Database(sqlx::Error::Database(db)) = duplicate(&errors[0]) else {
            panic!("not a database error")
        };
        assert_eq!(db.code().as_deref(), Some("5"));
        assert_eq!(db.message(), "database is locked");
    }
}
