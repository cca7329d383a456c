//! Storage on Airflow's own metadata schema: one code path over sqlx's `Any`
//! driver for SQLite (Airflow's, or the embedded default) and PostgreSQL
//! (Airflow's, shared by several replicas).
//!
//! The tables are Airflow 3.3.2's (`task_instance`, `dag_run`, `variable`,
//! `connection`, `xcom`, ...), read and written with Airflow's semantics, so the
//! scheduler, UI and CLI see every change we make. [`schema`] tells the three kinds
//! of database apart (Airflow-managed, embedded, empty) and refuses the others.
//! `sql.rs` holds the one dialect difference we need: parameter casts.
//!
//! Every state transition is one transaction whose first statement is a
//! conditional `UPDATE ... WHERE state = <expected>`: concurrent replicas
//! cannot both win it, and on SQLite the write lock is taken before any read so
//! a busy database waits (`busy_timeout`) instead of failing. SQLite runs in
//! WAL mode with `synchronous = FULL`, so an acknowledged write survives a
//! `kill -9` and a power cut.

mod asset_changes;
mod assets;
mod batch;
pub mod columns;
mod connection_tests;
mod connections;
mod dag_runs;
mod heartbeats;
mod hitl;
mod lane;
pub mod pyjson;
mod rtif;
pub mod schema;
mod serialized_dag;
pub(crate) mod sql;
mod state;
mod state_stores;
mod subjects;
mod task_instance_queries;
mod task_instances;
mod task_reschedules;
mod teams;
mod triggers;
mod variables;
mod xcom_batch;
mod xcoms;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor as _};
use time::OffsetDateTime;

use crate::crypto::{CryptoError, Fernet};
pub use asset_changes::{AssetOutlets, AssetProfile};
pub use assets::{Asset, AssetEvent, ConsumedAssetEvent, EventDagRun, EventQuery, EventSource};
pub use connection_tests::{ConnectionTestFetch, ConnectionTestFinish, ConnectionTestResult};
pub use connections::{Connection, NewConnection};
pub use dag_runs::{
    ClearOutcome, Dag, DagRunFilter, DagTriggerInfo, NeedsPython, NewDagRun, NewRunTask,
    TriggerOutcome, plan_task_instances,
};
pub use heartbeats::Beat;
pub use hitl::{HitlDetail, HitlRespond, HitlUpsert, NewHitlDetail};
pub use rtif::RtifOutcome;
pub use schema::{DatabaseKind, SchemaError};
pub use serialized_dag::{AssetKey, AssetLike, SerializedDag, SerializedTask, TaskGroup};
use sql::Backend;
pub use state::{TiState, UnknownState};
pub use state_stores::{AssetRef, AssetStateOutcome, AssetWriter, TaskScope, TaskStateOutcome};
pub use subjects::TaskInstanceSubjects;
pub use task_instance_queries::{
    Breadcrumb, PreviousTaskInstance, RunDates, TiFilter, TiPlace, TiStateRow,
};
pub use task_instances::{
    DagRun, Deferral, HeartbeatOutcome, NewTaskInstance, RunContext, StartOutcome, StartRequest,
    StateChange, StateOutcome, TaskInstance, TerminalState, TriggerKwargs,
};
pub use variables::Variable;
pub use xcoms::{TaskMapLength, XComKey, XComPick, XComSeries, XComWrite};

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// An SQLite database file (created with its directories on first use).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl DatabaseTarget {
    /// Reads `sqlite://PATH` (`sqlite:///abs/path` or `sqlite://rel/path`,
    /// `sqlite:PATH`) or `postgres://...` / `postgresql://...`.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseTarget::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(StoreError::UnsupportedUrl {
                    url: url.to_owned(),
                    why: "an SQLite URL needs a file path (in-memory databases are not shared between connections)",
                });
            }
            return Ok(DatabaseTarget::Sqlite(PathBuf::from(path)));
        }
        Err(StoreError::UnsupportedUrl {
            url: url.to_owned(),
            why: "expected `sqlite://PATH`, `postgres://...` or `postgresql://...`",
        })
    }

    /// The embedded SQLite file for a data directory: `DIR/execution-api.db`.
    pub fn in_data_dir(dir: &Path) -> Self {
        DatabaseTarget::Sqlite(dir.join("execution-api.db"))
    }

    /// A description safe to log (a PostgreSQL password is hidden).
    pub fn redacted(&self) -> String {
        match self {
            DatabaseTarget::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseTarget::Postgres(url) => redact_password(url),
        }
    }
}

fn redact_password(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one we understand.
    #[error("unsupported database URL `{url}`: {why}")]
    UnsupportedUrl {
        /// The URL as given.
        url: String,
        /// What is expected instead.
        why: &'static str,
    },
    /// The directory of the SQLite file could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A row with the same identity exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A row that must exist is missing (e.g. an XCom's DAG run).
    #[error("{0}")]
    NotFound(String),
    /// The database refused a value (PostgreSQL: a NUL byte in text, a number
    /// out of range; SQLite: a value too big).
    #[error("value refused by the database: {0}")]
    InvalidValue(String),
    /// A stored value does not parse (written by something else).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database is not one we can use as it is.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A stored secret does not decrypt.
    #[error("{what}: {source}")]
    Decrypt {
        /// What was being decrypted.
        what: String,
        /// Why it failed.
        source: CryptoError,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &err {
            let code = db.code().unwrap_or_default();
            // PostgreSQL class 22 (data exception), SQLite 18 (SQLITE_TOOBIG).
            if code.starts_with("22") || code == "18" {
                return StoreError::InvalidValue(db.message().to_owned());
            }
        }
        StoreError::Database(err)
    }
}

impl StoreError {
    /// Whether retrying later may succeed: the database is busy, locked,
    /// unreachable or the pool is exhausted. The API answers 503 with `Retry-After`.
    pub fn is_transient(&self) -> bool {
        let StoreError::Database(err) = self else {
            return false;
        };
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED and their extended codes
                // (low byte). PostgreSQL: serialization failure, deadlock,
                // lock not available (55P03, lock_timeout), connection
                // exceptions (08*), insufficient resources (53*), operator
                // intervention (57*).
                let sqlite_busy = code
                    .parse::<i64>()
                    .map(|c| matches!(c & 0xff, 5 | 6))
                    .unwrap_or(false);
                sqlite_busy
                    || code == "40001"
                    || code == "40P01"
                    || code == "55P03"
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57")
            }
            _ => false,
        }
    }
}

/// The database handle: connection pools, cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads and writes on SQLite; on PostgreSQL what neither lane takes (see [`lane`]).
    pool: AnyPool,
    /// Writes. On SQLite a pool of one connection: SQLite has one writer at a
    /// time anyway, and writers queueing here (FIFO, bounded by the acquire
    /// timeout) beat writers sleeping and retrying in `busy_timeout`, which
    /// gave half-second tail latencies under load. Other processes (Airflow's
    /// scheduler, the CLI) still meet `busy_timeout`. On PostgreSQL the same
    /// pool as `pool`.
    writer: AnyPool,
    /// The group commit of heartbeats (see [`heartbeats`]); `None` when it
    /// could not start.
    heartbeats: Option<heartbeats::HeartbeatBatcher>,
    /// Heartbeats in flight in this process (with the store's clones): one
    /// alone is written at once, others go to the collector.
    heartbeat_writes: Arc<std::sync::atomic::AtomicUsize>,
    /// The group commit of XCom writes made while others are in flight (see
    /// [`batch`]); `None` when it could not start.
    xcom_batch: Option<batch::Batcher<xcom_batch::XComBatch>>,
    /// XCom writes in flight in this process (with the store's clones).
    xcom_writes: Arc<std::sync::atomic::AtomicUsize>,
    /// The group commit of rendered-fields writes made while others are in
    /// flight; `None` when it could not start.
    rtif_batch: Option<batch::Batcher<rtif::RtifBatch>>,
    /// Rendered-fields writes in flight in this process.
    rtif_writes: Arc<std::sync::atomic::AtomicUsize>,
    /// On PostgreSQL, the connections of hot single-statement reads (see
    /// [`lane`]); `None` on SQLite.
    lane: Option<Arc<lane::Lane>>,
    /// On PostgreSQL, the connections of write transactions (see [`lane`]:
    /// no pings around them); `None` on SQLite.
    write_lane: Option<Arc<lane::Lane>>,
    /// How to connect (for the pools of [`Store::for_worker`]).
    options: Arc<AnyConnectOptions>,
    backend: Backend,
    kind: DatabaseKind,
    fernet: Fernet,
    transitions: TransitionSettings,
    /// `[core] max_map_length`: the largest `mapped_length` an XCom may record.
    max_map_length: u64,
}

/// How the store treats what it reads and writes.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Encrypts variables and connections (`[core] fernet_key`).
    pub fernet: Fernet,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            fernet: Fernet::from_config(None).expect("the null fernet needs no key"),
        }
    }
}

/// Airflow options the task-instance transitions follow (Airflow's defaults by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionSettings {
    /// Rendered fields are kept for this many runs of a DAG, newest first
    /// (`[core] num_dag_runs_to_retain_rendered_fields`; 0 or less keeps all).
    pub rendered_fields_runs_to_keep: i64,
    /// A task's state store is cleared when it succeeds (`[state_store] clear_on_success`).
    pub clear_on_success: bool,
    /// Deferred triggers carry their DAG's team (`[core] multi_team`).
    pub multi_team: bool,
}

impl Default for TransitionSettings {
    fn default() -> Self {
        TransitionSettings {
            rendered_fields_runs_to_keep: 30,
            clear_on_success: false,
            multi_team: false,
        }
    }
}

impl Store {
    /// Opens with the null Fernet (plaintext secrets); see [`Store::open_with`].
    pub async fn open(target: &DatabaseTarget) -> Result<Store, StoreError> {
        Store::open_with(target, StoreSettings::default()).await
    }

    /// Opens the database: tells what kind it is first, reading only (an
    /// unsupported database is refused before anything is written, so it stays
    /// byte for byte as it was), then opens the pools, creating the embedded
    /// schema in an empty database.
    pub async fn open_with(
        target: &DatabaseTarget,
        settings: StoreSettings,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend, max_connections) = match target {
            DatabaseTarget::Sqlite(path) => {
                prepare_sqlite_file(path)?;
                (sqlite_url(path, "rwc"), Backend::Sqlite, 4)
            }
            DatabaseTarget::Postgres(url) => (url.clone(), Backend::Postgres, POSTGRES_CONNECTIONS),
        };
        let detected = detect(target, backend).await?;
        let options: AnyConnectOptions = url.parse()?;
        let pool = pool_options(backend)
            .max_connections(max_connections)
            .connect_with(options.clone())
            .await?;
        let lane = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Arc::new(lane::Lane::new(options.clone(), LANE_CONNECTIONS))),
        };
        let write_lane = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Arc::new(lane::Lane::new(
                options.clone(),
                WRITE_LANE_CONNECTIONS,
            ))),
        };
        let writer = match backend {
            Backend::Sqlite => {
                pool_options(backend)
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await?
            }
            Backend::Postgres => pool.clone(),
        };
        let mut store = Store {
            pool,
            writer,
            heartbeats: None,
            heartbeat_writes: Arc::default(),
            xcom_batch: None,
            xcom_writes: Arc::default(),
            rtif_batch: None,
            rtif_writes: Arc::default(),
            lane,
            write_lane,
            options: Arc::new(options),
            backend,
            kind: detected.clone(),
            fernet: settings.fernet,
            transitions: TransitionSettings::default(),
            max_map_length: 1024,
        };
        if detected == DatabaseKind::Empty {
            store.kind = store.create_embedded().await?;
        }
        // Each collector on PostgreSQL has connections of its own; on SQLite
        // they all write through the one writer connection.
        let writer = |connections| match &store.write_lane {
            Some(_) => batch::Writer::Postgres(Arc::new(lane::Lane::new(
                AnyConnectOptions::clone(&store.options),
                connections,
            ))),
            None => batch::Writer::Sqlite(store.writer.clone()),
        };
        let (heartbeats, xcoms, rtif) = (
            writer(HEARTBEAT_CONNECTIONS),
            writer(batch::BATCHES_IN_FLIGHT),
            writer(batch::BATCHES_IN_FLIGHT),
        );
        store.heartbeats = heartbeats::HeartbeatBatcher::start(heartbeats);
        store.xcom_batch = batch::Batcher::start(xcoms);
        store.rtif_batch = batch::Batcher::start(rtif);
        Ok(store)
    }

    /// This store with PostgreSQL connections of the calling thread's own, for an
    /// actix-web worker (SQLite: the same store).
    ///
    /// Each actix-web worker is a thread running a runtime of its own, and a socket
    /// is served by the runtime that opened it: a connection opened on another
    /// thread (the main one at start-up, another worker) has every round trip
    /// noticed by that thread, which then wakes this one, two context switches
    /// where none is needed. Per worker, the pool and the read lane (`store/lane.rs`) are opened
    /// lazily here, share nothing with other threads, and together hold the
    /// server's connections divided among the workers (as many workers as cores,
    /// actix-web's default).
    pub fn for_worker(&self) -> Store {
        if self.backend == Backend::Sqlite {
            return self.clone();
        }
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = |total: usize| total.div_ceil(workers).max(2);
        let pool = pool_options(self.backend)
            .max_connections(share(POSTGRES_CONNECTIONS as usize) as u32)
            .connect_lazy_with(AnyConnectOptions::clone(&self.options));
        Store {
            writer: pool.clone(),
            pool,
            lane: Some(Arc::new(lane::Lane::new(
                AnyConnectOptions::clone(&self.options),
                share(LANE_CONNECTIONS),
            ))),
            write_lane: Some(Arc::new(lane::Lane::new(
                AnyConnectOptions::clone(&self.options),
                share(WRITE_LANE_CONNECTIONS),
            ))),
            ..self.clone()
        }
    }

    /// The store with these transition settings.
    pub fn with_transitions(mut self, transitions: TransitionSettings) -> Store {
        self.transitions = transitions;
        self
    }

    /// Sets `[core] max_map_length` (default 1024, Airflow's).
    pub fn with_max_map_length(mut self, max_map_length: u64) -> Store {
        self.max_map_length = max_map_length;
        self
    }

    /// `[core] max_map_length`: the largest `mapped_length` an XCom may record.
    pub fn max_map_length(&self) -> u64 {
        self.max_map_length
    }

    /// Which backend this is: `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// What kind of database this is.
    pub fn kind(&self) -> &DatabaseKind {
        &self.kind
    }

    /// Checks that the database answers (`/health/ping`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use (graceful shutdown).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
        for lane in [&self.lane, &self.write_lane].into_iter().flatten() {
            lane.close().await;
        }
    }

    /// A single-statement read's first row: on PostgreSQL through the [`lane`]
    /// (one round trip), on SQLite through the pool.
    async fn read_optional<'q>(
        &self,
        make: impl Fn() -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<Option<sqlx::any::AnyRow>, StoreError> {
        match &self.lane {
            Some(lane) => lane.fetch_optional(make).await,
            None => Ok(make().fetch_optional(&self.pool).await?),
        }
    }

    /// A single-statement read's rows: on PostgreSQL through the [`lane`]
    /// (one round trip), on SQLite through the pool.
    async fn read_all<'q>(
        &self,
        make: impl Fn() -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        match &self.lane {
            Some(lane) => lane.fetch_all(make).await,
            None => Ok(make().fetch_all(&self.pool).await?),
        }
    }

    /// A single-statement read that always has a row (`COUNT(*)`, say), as
    /// [`Store::read_optional`]; no row is sqlx's `RowNotFound`.
    async fn read_one<'q>(
        &self,
        make: impl Fn() -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<sqlx::any::AnyRow, StoreError> {
        self.read_optional(make)
            .await?
            .ok_or_else(|| sqlx::Error::RowNotFound.into())
    }

    /// A transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: the
    /// write lock is taken (waiting up to `busy_timeout`) before any read, so a
    /// read-then-write can never fail with `SQLITE_BUSY` half-way. On
    /// PostgreSQL it runs on the write [`lane`], without the pool's pings.
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(match &self.write_lane {
            Some(lane) => WriteTx::Lane(lane.begin().await?),
            None => WriteTx::Pool(self.writer.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Creates the embedded schema, unless another process did it first (the
    /// check is repeated under the write lock: replicas may start together).
    async fn create_embedded(&self) -> Result<DatabaseKind, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query(
                "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(7274201)) AS schema_lock",
            )
            .execute(&mut *tx)
            .await?;
        }
        let kind = schema::detect(&mut tx, self.backend).await?;
        if kind != DatabaseKind::Empty {
            tx.rollback().await?;
            return Ok(kind);
        }
        schema::create_embedded(&mut tx, self.backend, &sql::time_param(now())).await?;
        tx.commit().await?;
        tracing::info!(
            tables = schema::embedded_tables().len(),
            "created the embedded Airflow-shaped schema"
        );
        Ok(DatabaseKind::Embedded {
            version: schema::EMBEDDED_VERSION,
        })
    }
}

/// A write transaction: sqlx's on SQLite's writer, a [`lane::LaneTx`] on
/// PostgreSQL. Statements run on `&mut *tx`; dropped unfinished, it rolls back.
#[derive(Debug)]
enum WriteTx {
    Pool(sqlx::Transaction<'static, sqlx::Any>),
    Lane(lane::LaneTx),
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Pool(tx) => tx.commit().await,
            WriteTx::Lane(tx) => tx.commit().await,
        }
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Pool(tx) => tx.rollback().await,
            WriteTx::Lane(tx) => tx.rollback().await,
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            WriteTx::Pool(tx) => tx,
            WriteTx::Lane(tx) => tx,
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteTx::Pool(tx) => tx,
            WriteTx::Lane(tx) => tx,
        }
    }
}

/// What every PostgreSQL connection runs first.
const POSTGRES_SESSION: &[&str] = &[
    // PostgreSQL's counterpart of busy_timeout: a row or table lock held
    // elsewhere fails the statement (55P03, a 503) instead of holding the
    // request forever.
    "SET lock_timeout = '5s'",
    // Timestamps are bound and read as UTC text.
    "SET TIME ZONE 'UTC'",
];

/// PostgreSQL connections of the read [`lane`]: every single-statement read.
const LANE_CONNECTIONS: usize = 10;

/// PostgreSQL connections of write transactions (the write [`lane`]).
const WRITE_LANE_CONNECTIONS: usize = 8;

/// PostgreSQL connections of the pool (of the workers' pools together, see
/// [`Store::for_worker`]): what is neither a single-statement read nor a
/// write transaction (`/health/ping`, the variable keys' two reads).
const POSTGRES_CONNECTIONS: u32 = 4;

/// PostgreSQL connections of the heartbeat collector (it writes one batch at a time).
const HEARTBEAT_CONNECTIONS: usize = 2;

/// The pool settings of both backends.
fn pool_options(backend: Backend) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        // An SQLite connection is a file handle that cannot go stale, so the
        // ping sqlx sends before lending one out is a wasted round trip to
        // its worker thread. PostgreSQL keeps it: a connection cut by the
        // network is found and replaced before a request uses it.
        .test_before_acquire(backend == Backend::Postgres)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; FULL syncs the WAL
                    // on every commit, so an acknowledged write is on disk.
                    // Airflow's own processes open the same file and follow the
                    // journal mode recorded in it.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    // As Airflow sets it on every SQLite connection.
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                } else {
                    for statement in POSTGRES_SESSION {
                        conn.execute(*statement).await?;
                    }
                }
                Ok(())
            })
        })
}

/// Reads the database's kind on a connection of its own, without the pools'
/// pragmas (SQLite: read-only, so a refused file is not even touched).
async fn detect(target: &DatabaseTarget, backend: Backend) -> Result<DatabaseKind, StoreError> {
    let url = match target {
        DatabaseTarget::Sqlite(path) => {
            let empty = std::fs::metadata(path)
                .map(|m| m.len() == 0)
                .unwrap_or(true);
            if empty {
                return Ok(DatabaseKind::Empty);
            }
            sqlite_url(path, "ro")
        }
        DatabaseTarget::Postgres(url) => url.clone(),
    };
    let options: AnyConnectOptions = url.parse()?;
    let mut conn = sqlx::AnyConnection::connect_with(&options).await?;
    let kind = schema::detect(&mut conn, backend).await;
    let _ = conn.close().await;
    kind
}

/// Makes the SQLite file's directory, and on first use the file itself, private
/// (0700, 0600): it holds connection passwords. SQLite gives its `-wal` and
/// `-shm` files the database file's permissions.
fn prepare_sqlite_file(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
    }
    if !path.exists() {
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        match file.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(StoreError::CreateDir {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(())
}

fn sqlite_url(path: &Path, mode: &str) -> String {
    // sqlx percent-decodes the path, so `%`, `?` and `#` must be encoded.
    let mut encoded = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    format!("sqlite://{encoded}?mode={mode}")
}

/// The current time.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Renders a time as the API sends it: UTC, microseconds, `Z`
/// (`2024-05-01T10:00:00.123456Z`), which pydantic parses.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = sql::clamp_utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
pub(crate) mod testing {
    //! Backends for the storage tests, every kind of database the server runs on:
    //!
    //! - a fresh embedded SQLite file, always;
    //! - a copy of an SQLite database made by Airflow's own `airflow db migrate`
    //!   (`EXECUTION_API_TEST_AIRFLOW_SQLITE`: the file to copy);
    //! - PostgreSQL with the embedded schema (`EXECUTION_API_TEST_POSTGRES_URL`);
    //! - PostgreSQL made by `airflow db migrate` (`EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL`).
    //!
    //! `.ci/test` sets all of them and `EXECUTION_API_TEST_REQUIRE_ALL=1`, which
    //! makes a missing one fail the test instead of being skipped.

    use super::*;
    use crate::temp_dir::TempDir;

    /// A database to test on, and the temporary directory that holds it when it is an SQLite
    /// file: removed when the target is dropped, after the stores opened on it.
    #[derive(Debug)]
    pub(crate) struct TestTarget {
        target: DatabaseTarget,
        _dir: Option<TempDir>,
    }

    impl std::ops::Deref for TestTarget {
        type Target = DatabaseTarget;

        fn deref(&self) -> &DatabaseTarget {
            &self.target
        }
    }

    /// A store under test, which keeps its database's temporary directory until it is dropped.
    pub(crate) struct TestStore {
        // Fields drop in order: the store before its directory.
        store: Store,
        _target: TestTarget,
    }

    impl std::ops::Deref for TestStore {
        type Target = Store;

        fn deref(&self) -> &Store {
            &self.store
        }
    }

    impl std::ops::DerefMut for TestStore {
        fn deref_mut(&mut self) -> &mut Store {
            &mut self.store
        }
    }

    impl TestStore {
        /// [`Store::with_transitions`], keeping the database's directory.
        pub(crate) fn with_transitions(self, settings: TransitionSettings) -> TestStore {
            TestStore {
                store: self.store.with_transitions(settings),
                _target: self._target,
            }
        }
    }

    /// A fresh embedded SQLite file in a temporary directory of its own.
    pub(crate) fn temp_sqlite() -> TestTarget {
        let dir = TempDir::new("store");
        TestTarget {
            target: DatabaseTarget::in_data_dir(dir.path()),
            _dir: Some(dir),
        }
    }

    /// The backends whose environment variable is set, as targets.
    pub(crate) fn targets(test: &str) -> Vec<TestTarget> {
        let require = std::env::var("EXECUTION_API_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1");
        let var = |name: &str| match std::env::var(name) {
            Ok(value) if !value.is_empty() => Some(value),
            _ => {
                assert!(
                    !require,
                    "{test}: {name} is unset but EXECUTION_API_TEST_REQUIRE_ALL=1"
                );
                eprintln!("{test}: {name} unset, that backend is not run");
                None
            }
        };
        let mut targets = vec![temp_sqlite()];
        if let Some(template) = var("EXECUTION_API_TEST_AIRFLOW_SQLITE") {
            let dir = TempDir::new("store-airflow");
            let copy = dir.path().join("airflow.db");
            std::fs::copy(&template, &copy).expect("copy the airflow db migrate database");
            targets.push(TestTarget {
                target: DatabaseTarget::Sqlite(copy),
                _dir: Some(dir),
            });
        }
        for name in [
            "EXECUTION_API_TEST_POSTGRES_URL",
            "EXECUTION_API_TEST_AIRFLOW_POSTGRES_URL",
        ] {
            if let Some(url) = var(name) {
                targets.push(TestTarget {
                    target: DatabaseTarget::from_url(&url).expect("postgres URL"),
                    _dir: None,
                });
            }
        }
        targets
    }

    /// Opens every backend under test (null Fernet) and says which ones ran.
    pub(crate) async fn stores(test: &str) -> Vec<TestStore> {
        stores_with(test, None).await
    }

    /// Opens every backend under test with this `[core] fernet_key`.
    pub(crate) async fn stores_with(test: &str, fernet_key: Option<&str>) -> Vec<TestStore> {
        let mut stores = Vec::new();
        for target in targets(test) {
            let settings = StoreSettings {
                fernet: Fernet::from_config(fernet_key).expect("fernet key"),
            };
            let store = Store::open_with(&target, settings)
                .await
                .unwrap_or_else(|e| panic!("open {}: {e}", target.redacted()));
            stores.push(TestStore {
                store,
                _target: target,
            });
        }
        let names: Vec<_> = stores
            .iter()
            .map(|s| format!("{} ({})", s.backend_name(), s.kind().describe()))
            .collect();
        eprintln!("{test}: backends run: {}", names.join(", "));
        stores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            DatabaseTarget::from_url("sqlite:///var/lib/x.db").unwrap(),
            DatabaseTarget::Sqlite("/var/lib/x.db".into())
        );
        assert_eq!(
            DatabaseTarget::from_url("sqlite://data/x.db?mode=rwc").unwrap(),
            DatabaseTarget::Sqlite("data/x.db".into())
        );
        assert_eq!(
            DatabaseTarget::from_url("sqlite:x.db").unwrap(),
            DatabaseTarget::Sqlite("x.db".into())
        );
        assert!(matches!(
            DatabaseTarget::from_url("postgresql://u:p@h/db").unwrap(),
            DatabaseTarget::Postgres(_)
        ));
        assert!(DatabaseTarget::from_url("sqlite::memory:").is_err());
        assert!(DatabaseTarget::from_url("mysql://h/db").is_err());
        assert_eq!(
            DatabaseTarget::Postgres("postgres://u:secret@h/db".into()).redacted(),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn timestamps_are_utc_micros() {
        let t = OffsetDateTime::parse(
            "2024-05-01T12:00:00.1234567+02:00",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(timestamp(t), "2024-05-01T10:00:00.123456Z");
        let edge = OffsetDateTime::parse(
            "9999-12-31T23:59:59-23:00",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(timestamp(edge).starts_with("9999-12-31T23:59:59"));
    }

    #[tokio::test]
    async fn a_locked_database_is_a_transient_error() {
        // Another process holds the write lock past busy_timeout: the write
        // fails as transient (the API's 503 + Retry-After), nothing panics,
        // and the write succeeds once the lock is gone.
        let target = testing::temp_sqlite();
        let holder = Store::open(&target).await.unwrap();
        let store = Store::open(&target).await.unwrap();
        let mut lock = holder.pool.begin_with("BEGIN EXCLUSIVE").await.unwrap();
        let err = store.set_variable("k", "v", None).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        sqlx::query("INSERT INTO variable (key, val, is_encrypted) VALUES ('other', 'x', 0)")
            .execute(&mut *lock)
            .await
            .unwrap();
        lock.rollback().await.unwrap();
        store.set_variable("k", "v", None).await.unwrap();
        assert_eq!(store.variable("other").await.unwrap(), None);
        assert_eq!(store.variable("k").await.unwrap().unwrap().value, "v");
    }

    /// Creates an SQLite file holding `statements`, outside any store.
    async fn sqlite_file_with(statements: &[&'static str]) -> (testing::TestTarget, PathBuf) {
        let target = testing::temp_sqlite();
        let DatabaseTarget::Sqlite(path) = &*target else {
            unreachable!()
        };
        let path = path.clone();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let options: AnyConnectOptions = sqlite_url(&path, "rwc").parse().unwrap();
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect_with(&options).await.unwrap();
        for statement in statements {
            sqlx::query(*statement).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
        (target, path)
    }

    #[tokio::test]
    async fn databases_we_do_not_own_are_refused_untouched() {
        let cases: [(&[&'static str], &str); 4] = [
            (
                &[
                    "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT)",
                    "CREATE TABLE task_instances (id TEXT PRIMARY KEY)",
                    "CREATE TABLE variables (key TEXT PRIMARY KEY, val TEXT)",
                    "INSERT INTO variables VALUES ('kept', 'yes')",
                ],
                "earlier schema",
            ),
            (
                &[
                    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)",
                    "INSERT INTO alembic_version VALUES ('29ce7909c52b')",
                ],
                "`29ce7909c52b`",
            ),
            (
                &["CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"],
                "holding 0 revisions",
            ),
            (&["CREATE TABLE invoices (id INTEGER)"], "invoices"),
        ];
        for (statements, needle) in cases {
            let (_target, path) = sqlite_file_with(statements).await;
            let before = std::fs::read(&path).unwrap();
            let err = Store::open(&DatabaseTarget::Sqlite(path.clone()))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
            assert!(err.to_string().contains(needle), "{err}");
            assert!(err.to_string().contains("Nothing was changed"), "{err}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                before,
                "{needle}: file changed"
            );
            let wal = PathBuf::from(format!("{}-wal", path.display()));
            assert!(!wal.exists(), "{needle}: a WAL was created");
        }
    }

    #[tokio::test]
    async fn open_creates_directories_and_is_idempotent() {
        let target = testing::temp_sqlite();
        let store = Store::open(&target).await.unwrap();
        store.ping().await.unwrap();
        store.close().await;
        // A second open finds the schema in place.
        let again = Store::open(&target).await.unwrap();
        again.ping().await.unwrap();
        let DatabaseTarget::Sqlite(path) = &*target else {
            unreachable!()
        };
        assert!(path.exists());
    }
}
