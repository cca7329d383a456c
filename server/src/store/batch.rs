//! The group commit of writes (XComs, rendered fields).
//!
//! Each such write alone is one commit, and a commit waits for the database's
//! flush to disk (SQLite's `synchronous = FULL`, PostgreSQL's WAL flush);
//! PostgreSQL's concurrent writes of one row also wait for each other's commit
//! on its row lock. Under concurrent writes those costs, not our CPU, bound the
//! throughput. As the heartbeats do (see [`super::heartbeats`]), a write that
//! arrives while another of its kind is in flight therefore goes to a
//! *collector* that writes whatever is queued when one of its
//! [`BATCHES_IN_FLIGHT`] batch writers is free (at most [`MAX_BATCH`]) with
//! one commit, and answers each caller once that commit succeeded: an
//! acknowledged write is committed exactly as before. A lone write runs at
//! once on the caller's own connection, without the hop to the collector's
//! thread.
//!
//! On PostgreSQL a batch is one autocommitted statement (the [`Batch`] kind's
//! [`Batch::write`]) on connections of the collector's own (a [`Lane`]). On
//! SQLite it is one `BEGIN IMMEDIATE ... COMMIT` on the store's one writer
//! connection, in which the kind's [`Batch::write_sqlite`] runs each member's
//! statements in turn.
//!
//! Each member is answered with the outcome it would have had alone; members
//! that write one row are written once, the later one winning, as if they had
//! run one after the other. A batch that fails (its statement, any member's
//! statement on SQLite, the commit) is rolled back and answers `None` to every
//! member, who then writes alone and gets its own answer or error: one member
//! can never fail the others. The collector runs on its own thread and
//! runtime; if it is gone, callers write alone.
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row as _};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::lane::{Checkout, Lane};

/// The most writes one statement takes.
const MAX_BATCH: usize = 128;

/// Batches written at once (the collector's connections): while one batch's
/// statement waits for its commit (its WAL flush), the next forms and is
/// written, and PostgreSQL flushes their commits together.
pub(super) const BATCHES_IN_FLIGHT: usize = 2;

/// Writes waiting for the collector; senders wait when it is full.
const QUEUE_CAPACITY: usize = 1024;

/// A batch statement's future.
pub(super) type Written<'a, O> =
    Pin<Box<dyn Future<Output = Result<HashMap<usize, O>, StoreError>> + Send + 'a>>;

/// A kind of write the collector batches.
pub(super) trait Batch: 'static {
    /// One write, owned (it crosses to the collector's thread).
    type Row: Send + Sync + 'static;
    /// What a write found.
    type Outcome: Copy + Send + 'static;
    /// The collector thread's name.
    const THREAD: &'static str;
    /// PostgreSQL: writes every row with one statement on `conn`; each row's
    /// outcome by its index in `rows`.
    fn write<'a>(conn: Checkout<'a>, rows: Vec<&'a Self::Row>) -> Written<'a, Self::Outcome>;
    /// SQLite: writes every row on `conn`, inside the batch's transaction
    /// (which the collector commits, or rolls back if this fails); each row's
    /// outcome by its index in `rows`.
    fn write_sqlite<'a>(
        conn: &'a mut AnyConnection,
        rows: Vec<&'a Self::Row>,
    ) -> Written<'a, Self::Outcome>;
}

/// What a collector writes through.
#[derive(Clone, Debug)]
pub(super) enum Writer {
    /// SQLite: the single writer connection, shared with every other write.
    Sqlite(AnyPool),
    /// PostgreSQL: a [`Lane`] of its own (no pings around a batch), opened
    /// lazily so that the collector's runtime serves its sockets.
    Postgres(Arc<Lane>),
}

/// What [`Writer::hold`] holds (the tests).
#[cfg(test)]
#[allow(dead_code)] // held only to be dropped
pub(super) enum Holding {
    Pool(Vec<sqlx::pool::PoolConnection<sqlx::Any>>),
    Lane(tokio::sync::OwnedSemaphorePermit),
}

#[cfg(test)]
impl Writer {
    /// Every connection this writer could write with, held until the
    /// answer is dropped: the SQLite writer, or the whole PostgreSQL lane.
    pub(super) async fn hold(&self) -> Holding {
        match self {
            Writer::Sqlite(pool) => {
                let mut held = Vec::new();
                for _ in 0..pool.options().get_max_connections() {
                    held.push(pool.acquire().await.unwrap());
                }
                Holding::Pool(held)
            }
            Writer::Postgres(lane) => Holding::Lane(lane.hold().await),
        }
    }
}

/// A batch writer's hold on the database, taken before the batch forms.
enum Held<'a> {
    /// PostgreSQL: a connection for the batch statement.
    Statement(Checkout<'a>),
    /// SQLite: the write lock (`BEGIN IMMEDIATE`).
    Transaction(sqlx::Transaction<'static, sqlx::Any>),
}

impl Writer {
    async fn claim(&self) -> Result<Held<'_>, StoreError> {
        Ok(match self {
            Writer::Postgres(lane) => Held::Statement(lane.checkout().await?),
            Writer::Sqlite(pool) => Held::Transaction(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }
}

impl Held<'_> {
    /// Writes the batch and commits it.
    async fn write<B: Batch>(
        self,
        rows: Vec<&B::Row>,
    ) -> Result<HashMap<usize, B::Outcome>, StoreError> {
        match self {
            Held::Statement(conn) => B::write(conn, rows).await,
            Held::Transaction(mut tx) => {
                // An error drops `tx`, which rolls it back.
                let outcomes = B::write_sqlite(&mut tx, rows).await?;
                tx.commit().await?;
                Ok(outcomes)
            }
        }
    }
}

/// Reads a batch statement's answer: one row per member, with the member's
/// index `i` and the two flags named in `flags`, each member's outcome by its
/// index.
pub(super) fn outcomes<O>(
    answers: &[AnyRow],
    flags: [&str; 2],
    outcome: impl Fn(bool, bool) -> O,
) -> Result<HashMap<usize, O>, StoreError> {
    answers
        .iter()
        .map(|row| {
            let i: i32 = row.try_get("i")?;
            let found = outcome(row.try_get(flags[0])?, row.try_get(flags[1])?);
            Ok((i as usize, found))
        })
        .collect()
}

struct Request<B: Batch> {
    row: B::Row,
    reply: oneshot::Sender<Option<B::Outcome>>,
}

/// The handle on a collector: cheap to clone, one per store.
pub(super) struct Batcher<B: Batch> {
    queue: mpsc::Sender<Request<B>>,
    /// What the collector writes through (held by the tests).
    #[cfg(test)]
    pub(super) writer: Writer,
}

impl<B: Batch> Clone for Batcher<B> {
    fn clone(&self) -> Self {
        Batcher {
            queue: self.queue.clone(),
            #[cfg(test)]
            writer: self.writer.clone(),
        }
    }
}

impl<B: Batch> std::fmt::Debug for Batcher<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("thread", &B::THREAD)
            .finish_non_exhaustive()
    }
}

impl<B: Batch> Batcher<B> {
    /// Starts the collector writing through `writer` on a thread of its own;
    /// `None` if the thread cannot start (writes then go alone).
    pub(super) fn start(writer: Writer) -> Option<Batcher<B>> {
        let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
        #[cfg(test)]
        let held = writer.clone();
        let spawned = std::thread::Builder::new()
            .name(B::THREAD.into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::warn!(error = %e, thread = B::THREAD, "group commit disabled: no runtime");
                        return;
                    }
                };
                runtime.block_on(collect::<B>(writer, requests));
            });
        match spawned {
            Ok(_) => Some(Batcher {
                queue,
                #[cfg(test)]
                writer: held,
            }),
            Err(e) => {
                tracing::warn!(error = %e, thread = B::THREAD, "group commit disabled: no thread");
                None
            }
        }
    }

    /// Hands a write to the collector and waits for its answer; `None` when
    /// the collector is gone or the batch failed (the caller writes alone).
    pub(super) async fn submit(&self, row: B::Row) -> Option<B::Outcome> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Request { row, reply }).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Writes waiting in the queue (for the tests).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

/// The collector: [`BATCHES_IN_FLIGHT`] batch writers taking turns at the
/// queue, until every store handle is dropped.
async fn collect<B: Batch>(writer: Writer, requests: mpsc::Receiver<Request<B>>) {
    let requests = Arc::new(tokio::sync::Mutex::new(requests));
    let writers: Vec<_> = (0..BATCHES_IN_FLIGHT)
        .map(|_| {
            let (writer, requests) = (writer.clone(), Arc::clone(&requests));
            tokio::spawn(async move { write_batches::<B>(&writer, &requests).await })
        })
        .collect();
    for writer in writers {
        let _ = writer.await;
    }
}

/// One batch writer: takes the queue, a connection (on SQLite, the write
/// lock) and whatever is queued, lets go of the queue, writes, answers; again.
/// On SQLite the second batch writer waits at the one writer connection with
/// the queue in hand, so the writes queued meanwhile join its batch.
async fn write_batches<B: Batch>(
    writer: &Writer,
    requests: &tokio::sync::Mutex<mpsc::Receiver<Request<B>>>,
) {
    loop {
        let (held, mut members) = {
            let mut queue = requests.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            // A connection in hand first: writes queued meanwhile join this batch.
            let held = match writer.claim().await {
                Ok(held) => held,
                Err(e) => {
                    tracing::debug!(error = %e, thread = B::THREAD, "no connection, members write alone");
                    continue;
                }
            };
            let mut members = vec![first];
            while members.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(request) => members.push(request),
                    Err(_) => break,
                }
            }
            (held, members)
        };
        // A cancelled caller is not written: nobody would hear the answer.
        members.retain(|request| !request.reply.is_closed());
        if members.is_empty() {
            continue;
        }
        let rows = members.iter().map(|request| &request.row).collect();
        match held.write::<B>(rows).await {
            Ok(outcomes) => {
                for (i, request) in members.into_iter().enumerate() {
                    let _ = request.reply.send(outcomes.get(&i).copied());
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, size = members.len(), thread = B::THREAD, "batch failed, members write alone");
                for request in members {
                    let _ = request.reply.send(None);
                }
            }
        }
    }
}

/// Counts a write in flight for as long as it lives: whether it goes to a
/// collector depends on the others.
pub(super) struct InFlight<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    /// Writes in flight when this one came.
    pub(super) others: usize,
}

impl<'a> InFlight<'a> {
    pub(super) fn enter(count: &'a std::sync::atomic::AtomicUsize) -> InFlight<'a> {
        let others = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight { count, others }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
