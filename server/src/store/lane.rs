//! PostgreSQL: single-statement reads and write transactions without the pool's two pings.
//!
//! sqlx's pool sends a `Sync` round trip to the server before it lends a
//! connection out (`test_before_acquire`) and another one when the connection
//! comes back (always, to find connections left mid-query by a cancelled
//! future). For a request that is itself one indexed `SELECT` (a variable, a
//! connection), that is three round trips, and three wake-ups of a PostgreSQL
//! backend, where one does the work.
//!
//! A lane keeps a few connections of its own. The store has two: one for
//! single-statement reads, one for write transactions, so that writes waiting
//! on row locks never hold up reads.
//!
//! Reads: one statement, no transaction. A connection goes back to the lane
//! only after its statement completed, so it is never left mid-query (a
//! cancelled request drops its connection, which closes it); it is never
//! pinged. A connection that went stale while idle (the database restarted,
//! the network cut it) is found by the read itself: an I/O error on a reused
//! connection drops it, and the other idle ones with it, and the read runs
//! once more on a fresh connection. A read can be repeated safely. The only
//! writes run this way are single autocommitted statements that write the
//! same rows again when repeated (the PostgreSQL XCom upsert, the rendered
//! fields): a repeat changes at most a timestamp.
//!
//! Transactions ([`LaneTx`]): `BEGIN` finds a stale connection the same way
//! (nothing has run yet, so it is simply sent again on a fresh one); after
//! `COMMIT` or `ROLLBACK` the connection goes back. One dropped unfinished is
//! rolled back by a spawned task before its connection is lent again.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Connection as _, Executor as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use super::StoreError;

/// How long a read waits for a free connection (as the pool's acquire timeout).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A few PostgreSQL connections for single-statement reads.
pub(super) struct Lane {
    options: AnyConnectOptions,
    idle: Mutex<Vec<AnyConnection>>,
    permits: Arc<Semaphore>,
    /// The most connections open at once.
    size: usize,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("size", &self.size)
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Lane {
    /// At most `size` connections, opened on first use.
    pub(super) fn new(options: AnyConnectOptions, size: usize) -> Lane {
        Lane {
            options,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Runs the read `make` builds and returns its first row. On a reused
    /// connection that fails with a connection error, the read runs once more
    /// on a fresh connection.
    pub(super) async fn fetch_optional<'q>(
        &self,
        make: impl Fn() -> Query<'q, Any, AnyArguments>,
    ) -> Result<Option<AnyRow>, StoreError> {
        Ok(self.fetch(make, Rows::First).await?.pop())
    }

    /// Runs the read `make` builds and returns all its rows, as
    /// [`Lane::fetch_optional`] does.
    pub(super) async fn fetch_all<'q>(
        &self,
        make: impl Fn() -> Query<'q, Any, AnyArguments>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        self.fetch(make, Rows::All).await
    }

    async fn fetch<'q>(
        &self,
        make: impl Fn() -> Query<'q, Any, AnyArguments>,
        rows: Rows,
    ) -> Result<Vec<AnyRow>, StoreError> {
        self.checkout().await?.fetch(make, rows).await
    }

    /// A connection in hand (waiting for a free one first), for one statement.
    pub(super) async fn checkout(&self) -> Result<Checkout<'_>, StoreError> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = self.take_idle();
        let fresh = reused.is_none();
        let conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Checkout {
            lane: self,
            _permit: permit,
            conn,
            fresh,
        })
    }

    /// Takes every permit, so that no statement starts until it is dropped.
    #[cfg(test)]
    pub(super) async fn hold(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.permits)
            .acquire_many_owned(self.size as u32)
            .await
            .unwrap()
    }

    /// Starts a transaction on a lane connection (`BEGIN`). A reused connection
    /// that fails `BEGIN` with a connection error is replaced (and the other
    /// idle ones dropped) and `BEGIN` sent once more: nothing had happened yet.
    pub(super) async fn begin(self: &Arc<Self>) -> Result<LaneTx, StoreError> {
        let permit =
            tokio::time::timeout(ACQUIRE_TIMEOUT, Arc::clone(&self.permits).acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = self.take_idle();
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match conn.execute("BEGIN").await {
            Ok(_) => {}
            Err(e) if !fresh && is_connection_error(&e) => {
                drop(conn);
                self.drop_idle();
                tracing::debug!(error = %e, "write lane: a stale connection, reconnecting");
                conn = self.connect().await?;
                conn.execute("BEGIN").await?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(LaneTx {
            lane: Arc::clone(self),
            conn: Some(conn),
            permit: Some(permit),
        })
    }

    /// Closes the idle connections (graceful shutdown); later reads reconnect.
    pub(super) async fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in idle {
            let _ = conn.close().await;
        }
    }

    /// Drops (closes) every idle connection: one went stale, and the others
    /// idled as long.
    fn drop_idle(&self) {
        let stale = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        drop(stale);
    }

    fn take_idle(&self) -> Option<AnyConnection> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put_idle(&self, conn: AnyConnection) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    /// A new connection, set up as the pool's are.
    async fn connect(&self) -> Result<AnyConnection, StoreError> {
        let connecting = async {
            let mut conn = AnyConnection::connect_with(&self.options).await?;
            for statement in super::POSTGRES_SESSION {
                conn.execute(*statement).await?;
            }
            Ok::<_, sqlx::Error>(conn)
        };
        Ok(tokio::time::timeout(ACQUIRE_TIMEOUT, connecting)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??)
    }
}

/// A lane connection in hand, from [`Lane::checkout`]: one statement runs on it.
pub(super) struct Checkout<'l> {
    lane: &'l Lane,
    _permit: SemaphorePermit<'l>,
    conn: AnyConnection,
    fresh: bool,
}

impl Checkout<'_> {
    /// Runs the statement `make` builds and returns all its rows, once more on
    /// a fresh connection if a reused one fails with a connection error.
    pub(super) async fn fetch_all<'q>(
        self,
        make: impl Fn() -> Query<'q, Any, AnyArguments>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        self.fetch(make, Rows::All).await
    }

    async fn fetch<'q>(
        mut self,
        make: impl Fn() -> Query<'q, Any, AnyArguments>,
        rows: Rows,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let lane = self.lane;
        match rows.fetch(make(), &mut self.conn).await {
            Ok(rows) => {
                lane.put_idle(self.conn);
                Ok(rows)
            }
            Err(e) if !self.fresh && is_connection_error(&e) => {
                // The others idled as long: the database may have restarted.
                drop(self.conn);
                lane.drop_idle();
                tracing::debug!(error = %e, "lane: a stale connection, reconnecting");
                let mut conn = lane.connect().await?;
                let rows = rows.fetch(make(), &mut conn).await?;
                lane.put_idle(conn);
                Ok(rows)
            }
            // The connection is dropped (closed): it may be in any state.
            Err(e) => Err(e.into()),
        }
    }
}

/// How many rows a lane read wants.
#[derive(Clone, Copy, Debug)]
enum Rows {
    First,
    All,
}

impl Rows {
    async fn fetch<'q>(
        self,
        query: Query<'q, Any, AnyArguments>,
        conn: &mut AnyConnection,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        match self {
            Rows::First => Ok(query.fetch_optional(conn).await?.into_iter().collect()),
            Rows::All => query.fetch_all(conn).await,
        }
    }
}

/// A transaction on a lane connection, from [`Lane::begin`]; it derefs to the
/// connection, so statements run on `&mut *tx` as on a sqlx transaction.
///
/// [`LaneTx::commit`] and [`LaneTx::rollback`] end it and give the connection
/// back to the lane, unpinged: it has just answered. Dropped unfinished (an
/// error returned early, a cancelled request), it is rolled back as sqlx's own
/// transactions are, in a task spawned on the current runtime that keeps the
/// lane's permit until then: sqlx first reads whatever answer a cancelled
/// statement left on the connection, then `ROLLBACK` runs, and only a
/// connection that answered it goes back to the lane. Without a runtime, or
/// on any error, the connection is closed instead, which also ends the
/// transaction.
pub(super) struct LaneTx {
    lane: Arc<Lane>,
    conn: Option<AnyConnection>,
    /// The lane's permit for `conn`, handed to the rollback task on drop.
    permit: Option<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for LaneTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneTx").finish_non_exhaustive()
    }
}

impl LaneTx {
    /// `COMMIT`; the connection goes back to the lane once it succeeded.
    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    /// `ROLLBACK`; the connection goes back to the lane once it succeeded.
    pub(super) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("a transaction ends once");
        // On an error the connection is dropped here: its state is unknown.
        conn.execute(statement).await?;
        self.lane.put_idle(conn);
        Ok(())
    }
}

impl Deref for LaneTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn
            .as_ref()
            .expect("a live transaction has its connection")
    }
}

impl DerefMut for LaneTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn
            .as_mut()
            .expect("a live transaction has its connection")
    }
}

impl Drop for LaneTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let lane = Arc::clone(&self.lane);
        // The connection still counts against the lane until the task is done.
        let permit = self.permit.take();
        runtime.spawn(async move {
            let mut conn = conn;
            match tokio::time::timeout(ACQUIRE_TIMEOUT, conn.execute("ROLLBACK")).await {
                Ok(Ok(_)) => lane.put_idle(conn),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "write lane: rollback failed, connection closed")
                }
                Err(_) => tracing::debug!("write lane: rollback timed out, connection closed"),
            }
            drop(permit);
        });
    }
}

/// Whether `err` says the connection itself is gone (not the statement).
fn is_connection_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions, and the server shutting the session down.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    use crate::store::testing::stores;

    /// A lane connection the server ended while idle: the next read reconnects.
    #[tokio::test]
    async fn a_read_survives_its_connection_ended_while_idle() {
        for store in stores("a_read_survives_its_connection_ended_while_idle").await {
            let Some(lane) = store.lane.clone() else {
                continue;
            };
            let key = format!("lane_{}", uuid::Uuid::new_v4().simple());
            store.set_variable(&key, "v", None).await.unwrap();
            let backend_pid = || async {
                let row = lane
                    .fetch_optional(|| sqlx::query("SELECT pg_backend_pid() AS pid"))
                    .await
                    .unwrap()
                    .unwrap();
                row.try_get::<i32, _>("pid").unwrap()
            };
            let first = backend_pid().await;
            // One idle connection, reused.
            assert_eq!(backend_pid().await, first);
            let ended: bool = sqlx::query("SELECT pg_terminate_backend($1) AS ended")
                .bind(first)
                .fetch_one(&store.pool)
                .await
                .unwrap()
                .try_get("ended")
                .unwrap();
            assert!(ended);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let value = store.variable(&key).await.unwrap().unwrap().value;
            assert_eq!(value, "v");
            assert_ne!(backend_pid().await, first);
        }
    }

    async fn pid(conn: &mut sqlx::AnyConnection) -> i32 {
        sqlx::query("SELECT pg_backend_pid() AS pid")
            .fetch_one(conn)
            .await
            .unwrap()
            .try_get("pid")
            .unwrap()
    }

    async fn count(store: &crate::store::Store, table: &str) -> i64 {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
    }

    /// Idle connections of `lane`, once every rollback task spawned by a drop
    /// has given its connection back (or closed it).
    async fn settled_idle(lane: &super::Lane, size: usize) -> usize {
        for _ in 0..200 {
            if lane.permits.available_permits() == size {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(lane.permits.available_permits(), size, "a permit leaked");
        lane.idle.lock().unwrap().len()
    }

    /// Committed and rolled-back transactions keep their effects (or not) and
    /// give their connection back; an unfinished one, dropped, is rolled back
    /// and its connection reused; a statement cancelled mid-way leaves a
    /// connection the next transaction uses cleanly.
    #[tokio::test]
    async fn write_transactions_end_and_give_their_connection_back() {
        for store in stores("write_transactions_end_and_give_their_connection_back").await {
            let Some(lane) = store.write_lane.clone() else {
                continue;
            };
            let table = format!("lane_tx_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} (n INTEGER)"
            )))
            .execute(&store.pool)
            .await
            .unwrap();
            let insert = format!("INSERT INTO {table} VALUES (1)");

            let mut tx = lane.begin().await.unwrap();
            let first = pid(&mut tx).await;
            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(count(&store, &table).await, 1);

            let mut tx = lane.begin().await.unwrap();
            assert_eq!(
                pid(&mut tx).await,
                first,
                "the committed connection is reused"
            );
            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&store, &table).await, 1);

            // Dropped unfinished: rolled back in the background, connection back.
            let mut tx = lane.begin().await.unwrap();
            assert_eq!(pid(&mut tx).await, first);
            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .execute(&mut *tx)
                .await
                .unwrap();
            drop(tx);
            assert_eq!(settled_idle(&lane, lane.size).await, 1);
            assert_eq!(count(&store, &table).await, 1);
            let mut tx = lane.begin().await.unwrap();
            assert_eq!(
                pid(&mut tx).await,
                first,
                "the rolled-back connection is reused"
            );
            tx.rollback().await.unwrap();

            // Cancelled mid-statement (a client gone): the transaction is rolled
            // back once the statement's answer has been read.
            let mut tx = lane.begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .execute(&mut *tx)
                .await
                .unwrap();
            let slow = sqlx::query("SELECT pg_sleep(0.3)").execute(&mut *tx);
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(50), slow)
                    .await
                    .is_err()
            );
            drop(tx);
            settled_idle(&lane, lane.size).await;
            assert_eq!(count(&store, &table).await, 1);
            let mut tx = lane.begin().await.unwrap();
            let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM {table}"
            )))
            .fetch_one(&mut *tx)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
            assert_eq!(n, 1, "the next transaction reads its own answer");
            tx.commit().await.unwrap();

            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                .execute(&store.pool)
                .await
                .unwrap();
        }
    }

    /// A write-lane connection the server ended while idle: `BEGIN` fails on
    /// it, and the transaction starts on a new connection.
    #[tokio::test]
    async fn a_transaction_survives_its_connection_ended_while_idle() {
        for store in stores("a_transaction_survives_its_connection_ended_while_idle").await {
            let Some(lane) = store.write_lane.clone() else {
                continue;
            };
            let mut tx = lane.begin().await.unwrap();
            let first = pid(&mut tx).await;
            tx.commit().await.unwrap();
            let ended: bool = sqlx::query("SELECT pg_terminate_backend($1) AS ended")
                .bind(first)
                .fetch_one(&store.pool)
                .await
                .unwrap()
                .try_get("ended")
                .unwrap();
            assert!(ended);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let mut tx = lane.begin().await.unwrap();
            assert_ne!(pid(&mut tx).await, first);
            tx.commit().await.unwrap();
        }
    }
}
