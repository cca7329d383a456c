//! PostgreSQL: hot single-statement reads without the pool's two pings.
//!
//! sqlx's pool sends a `Sync` round trip to the server before it lends a
//! connection out (`test_before_acquire`) and another one when the connection
//! comes back (always, to find connections left mid-query by a cancelled
//! future). For a request that is itself one indexed `SELECT` (a variable, a
//! connection), that is three round trips, and three wake-ups of a PostgreSQL
//! backend, where one does the work.
//!
//! The lane keeps a few connections of its own and uses them for such reads:
//! one statement, no transaction. A connection goes back to the lane only
//! after its statement completed, so it is never left mid-query (a cancelled
//! request drops its connection, which closes it); it is never pinged. A
//! connection that went stale while idle (the database restarted, the network
//! cut it) is found by the read itself: an I/O error on a reused connection
//! drops it, and the other idle ones with it, and the read runs once more on a
//! fresh connection. A read can be repeated safely. Writes stay on the pool,
//! except a single autocommitted statement that writes the same row again when
//! repeated (the PostgreSQL XCom upsert): a repeat changes at most a timestamp.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Connection as _, Executor as _};
use tokio::sync::Semaphore;

use super::StoreError;

/// How long a read waits for a free connection (as the pool's acquire timeout).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A few PostgreSQL connections for single-statement reads.
pub(super) struct Lane {
    options: AnyConnectOptions,
    idle: Mutex<Vec<AnyConnection>>,
    permits: Semaphore,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
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
            permits: Semaphore::new(size),
        }
    }

    /// Runs the read `make` builds and returns its first row. On a reused
    /// connection that fails with a connection error, the read runs once more
    /// on a fresh connection.
    pub(super) async fn fetch_optional<'q>(
        &self,
        make: impl Fn() -> Query<'q, Any, AnyArguments>,
    ) -> Result<Option<AnyRow>, StoreError> {
        let _permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = self.take_idle();
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match make().fetch_optional(&mut conn).await {
            Ok(row) => {
                self.put_idle(conn);
                Ok(row)
            }
            Err(e) if !fresh && is_connection_error(&e) => {
                // The others idled as long: the database may have restarted.
                drop(conn);
                let stale =
                    std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
                drop(stale);
                tracing::debug!(error = %e, "read lane: a stale connection, reconnecting");
                let mut conn = self.connect().await?;
                let row = make().fetch_optional(&mut conn).await?;
                self.put_idle(conn);
                Ok(row)
            }
            // The connection is dropped (closed): it may be in any state.
            Err(e) => Err(e.into()),
        }
    }

    /// Closes the idle connections (graceful shutdown); later reads reconnect.
    pub(super) async fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in idle {
            let _ = conn.close().await;
        }
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
}
