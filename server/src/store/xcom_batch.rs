//! PostgreSQL: the group commit of XCom writes.
//!
//! An XCom write is one autocommitted upsert (`set_xcom_postgres`), and each
//! costs PostgreSQL a statement, a commit and a wake-up of its backend. Under
//! concurrent writes those costs, not our CPU, bound the throughput. As the
//! heartbeats do (see [`super::heartbeats`]), concurrent writes therefore go to
//! a *collector* that writes whatever is queued when one of its two batch
//! writers is free (at most [`MAX_BATCH`]) as one statement, and answers each
//! caller once that statement (and so its commit) succeeded: an acknowledged
//! XCom is committed exactly as before. Only writes that arrive while another
//! XCom write is in flight go there: a lone write runs at once on the caller's
//! own connection, without the hop to the collector's thread.
//!
//! The batch statement is the single write's, over every member at once (the
//! members passed as one JSON parameter, `json_to_recordset`): each member's
//! DAG run and task instance are looked up, its `task_map` row merged when it
//! records a `mapped_length`, its XCom upserted on the primary key, and the
//! statement returns, per member, whether its run and its task instance exist
//! (so each caller gets the answer it would have had alone: stored, no such
//! run, no such task instance). Two members writing the same XCom (or the same
//! `task_map` row) are written once, the later one's value winning, as if they
//! had run one after the other.
//!
//! Anything unusual goes the single way instead, so that one member can never
//! fail the others: a value PostgreSQL's `jsonb` refuses (a `\u0000` escape),
//! and every member of a batch whose statement failed (each then runs its own
//! statement and gets its own answer or error). The collector runs on its own
//! thread and runtime with connections of its own (a [`Lane`]), as the
//! heartbeats' does; if it is gone, callers write alone.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot};

use super::lane::Lane;
use super::sql::time_param;
use super::xcoms::XComWrite;
use super::{StoreError, now};

/// The most XComs one statement writes.
const MAX_BATCH: usize = 128;

/// Batches written at once (the collector's connections).
pub(super) const BATCHES_IN_FLIGHT: usize = 2;

/// Writes waiting for the collector; senders wait when it is full.
const QUEUE_CAPACITY: usize = 1024;

/// One XCom write, owned (it crosses to the collector's thread).
#[derive(Clone, Debug)]
pub(super) struct XComRow {
    pub(super) dag_id: String,
    pub(super) run_id: String,
    pub(super) task_id: String,
    pub(super) map_index: i64,
    pub(super) key: String,
    /// JSON text.
    pub(super) value: String,
    pub(super) dag_result: bool,
    pub(super) mapped_length: Option<i64>,
}

impl XComRow {
    /// Whether the batch statement can take it: PostgreSQL's `jsonb` refuses
    /// the NUL character, which the single statement reports on its own.
    pub(super) fn batchable(&self) -> bool {
        !self.value.contains("\\u0000")
    }
}

/// The collector's answer: the outcome, or `None` when the batch failed and
/// the caller is to write alone.
type Answer = Option<XComWrite>;

struct Request {
    row: XComRow,
    reply: oneshot::Sender<Answer>,
}

/// The handle on the collector: cheap to clone, one per store.
#[derive(Clone, Debug)]
pub(super) struct XComBatcher {
    queue: mpsc::Sender<Request>,
    /// The collector's connections (held by the tests).
    #[cfg(test)]
    lane: Arc<Lane>,
}

impl XComBatcher {
    /// Starts the collector writing through `lane` on a thread of its own;
    /// `None` if the thread cannot start (writes then go alone).
    pub(super) fn start(lane: Arc<Lane>) -> Option<XComBatcher> {
        let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
        #[cfg(test)]
        let held = Arc::clone(&lane);
        let spawned = std::thread::Builder::new()
            .name("xcom-commit".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::warn!(error = %e, "XCom group commit disabled: no runtime");
                        return;
                    }
                };
                runtime.block_on(collect(lane, requests));
            });
        match spawned {
            Ok(_) => Some(XComBatcher {
                queue,
                #[cfg(test)]
                lane: held,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "XCom group commit disabled: no thread");
                None
            }
        }
    }

    /// Hands a write to the collector and waits for its answer; `None` when
    /// the collector is gone or the batch failed (the caller writes alone).
    pub(super) async fn submit(&self, row: XComRow) -> Option<XComWrite> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Request { row, reply }).await.ok()?;
        answer.await.ok().flatten()
    }
}

/// The collector: [`BATCHES_IN_FLIGHT`] batch writers taking turns at the
/// queue, until every store handle is dropped. While one batch's statement
/// waits for its commit (its WAL flush), the next batch forms and is written:
/// PostgreSQL flushes their commits together.
async fn collect(lane: Arc<Lane>, requests: mpsc::Receiver<Request>) {
    let requests = Arc::new(tokio::sync::Mutex::new(requests));
    let writers: Vec<_> = (0..BATCHES_IN_FLIGHT)
        .map(|_| {
            let (lane, requests) = (Arc::clone(&lane), Arc::clone(&requests));
            tokio::spawn(async move { write_batches(&lane, &requests).await })
        })
        .collect();
    for writer in writers {
        let _ = writer.await;
    }
}

/// One batch writer: takes the queue, a connection and whatever is queued,
/// lets go of the queue, writes, answers; again.
async fn write_batches(lane: &Lane, requests: &tokio::sync::Mutex<mpsc::Receiver<Request>>) {
    loop {
        let (conn, mut members) = {
            let mut queue = requests.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            // A connection in hand first: writes queued meanwhile join this batch.
            let conn = match lane.checkout().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "XCom batch: no connection, members write alone");
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
            (conn, members)
        };
        // A cancelled caller is not written: nobody would hear the answer.
        members.retain(|request| !request.reply.is_closed());
        if members.is_empty() {
            continue;
        }
        match write(conn, &members).await {
            Ok(outcomes) => {
                for (i, request) in members.into_iter().enumerate() {
                    let _ = request.reply.send(outcomes.get(&i).copied());
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, size = members.len(), "XCom batch failed, members write alone");
                for request in members {
                    let _ = request.reply.send(None);
                }
            }
        }
    }
}

/// The batch statement; each member's outcome by its index.
async fn write(
    conn: super::lane::Checkout<'_>,
    members: &[Request],
) -> Result<HashMap<usize, XComWrite>, StoreError> {
    let rows: Vec<serde_json::Value> = members
        .iter()
        .enumerate()
        .map(|(i, request)| {
            let row = &request.row;
            serde_json::json!({
                "i": i,
                "dag_id": row.dag_id,
                "run_id": row.run_id,
                "task_id": row.task_id,
                "map_index": row.map_index,
                "key": row.key,
                "value": row.value,
                "dag_result": row.dag_result,
                "length": row.mapped_length,
            })
        })
        .collect();
    let rows = serde_json::Value::Array(rows).to_string();
    let stamp = time_param(now());
    // Repeated once on a fresh connection if the lane's was stale: each
    // repeat writes the same rows (at most a newer timestamp).
    let answers = conn
        .fetch_all(|| {
            sqlx::query(
                "WITH m AS MATERIALIZED ( \
                     SELECT * FROM json_to_recordset($1::json) AS m(i int, dag_id text, \
                     run_id text, task_id text, map_index int, key text, value text, \
                     dag_result bool, length bigint) \
                 ), dr AS MATERIALIZED ( \
                     SELECT m.i, dag_run.id FROM m JOIN dag_run \
                     ON dag_run.dag_id = m.dag_id AND dag_run.run_id = m.run_id \
                 ), ti AS MATERIALIZED ( \
                     SELECT m.i FROM m WHERE EXISTS (SELECT FROM task_instance t \
                     WHERE t.dag_id = m.dag_id AND t.run_id = m.run_id \
                     AND t.task_id = m.task_id AND t.map_index = m.map_index) \
                 ), ok AS MATERIALIZED ( \
                     SELECT m.*, dr.id AS dag_run_id FROM m JOIN dr ON dr.i = m.i \
                     JOIN ti ON ti.i = m.i \
                 ), mapped AS ( \
                     INSERT INTO task_map (dag_id, task_id, run_id, map_index, length, keys) \
                     SELECT DISTINCT ON (dag_id, task_id, run_id, map_index) \
                     dag_id, task_id, run_id, map_index, length, 'null'::jsonb FROM ok \
                     WHERE length IS NOT NULL \
                     ORDER BY dag_id, task_id, run_id, map_index, i DESC \
                     ON CONFLICT (dag_id, task_id, run_id, map_index) \
                     DO UPDATE SET length = excluded.length, keys = excluded.keys \
                 ), stored AS ( \
                     INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, \
                     value, timestamp, dag_result) \
                     SELECT DISTINCT ON (dag_run_id, task_id, map_index, key) \
                     dag_run_id, task_id, map_index, key, dag_id, run_id, value::jsonb, \
                     $2::timestamptz, dag_result FROM ok \
                     ORDER BY dag_run_id, task_id, map_index, key, i DESC \
                     ON CONFLICT (dag_run_id, task_id, map_index, key) DO UPDATE SET \
                     dag_id = excluded.dag_id, run_id = excluded.run_id, value = excluded.value, \
                     timestamp = excluded.timestamp, dag_result = excluded.dag_result \
                 ) \
                 SELECT m.i, EXISTS (SELECT FROM dr WHERE dr.i = m.i) AS has_run, \
                 EXISTS (SELECT FROM ti WHERE ti.i = m.i) AS has_ti FROM m",
            )
            .bind(rows.as_str())
            .bind(stamp.as_str())
        })
        .await?;
    answers
        .iter()
        .map(|row| {
            let i: i32 = row.try_get("i")?;
            let outcome = match (row.try_get::<bool, _>("has_run")?, row.try_get("has_ti")?) {
                (false, _) => XComWrite::NoDagRun,
                (true, false) => XComWrite::NoTaskInstance,
                (true, true) => XComWrite::Stored,
            };
            Ok((i as usize, outcome))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Row as _;

    use crate::store::testing::stores;
    use crate::store::xcoms::{TaskMapLength, XComKey, XComWrite};
    use crate::store::{NewTaskInstance, Store};

    /// Runs every write at once, each from its own task, with the collector's
    /// connections held until all are queued: one batch (the first write
    /// starts alone, on its own, while nothing else is in flight).
    async fn write_all(
        store: &Store,
        writes: Vec<(String, String, String, i64, String, Option<i64>)>,
    ) -> Vec<XComWrite> {
        let batcher = store.xcom_batch.as_ref().unwrap();
        // Counted as in flight, so that every write goes to the collector.
        let _busy = super::super::xcoms::InFlight::enter(&store.xcom_writes);
        let held = batcher.lane.hold().await;
        let tasks: Vec<_> = writes
            .into_iter()
            .map(|(dag, run, task, map_index, value, length)| {
                let store = store.clone();
                tokio::spawn(async move {
                    let at = XComKey {
                        dag_id: &dag,
                        run_id: &run,
                        task_id: &task,
                        key: "k",
                        map_index,
                    };
                    store
                        .set_xcom(at, &value, false, length.map(TaskMapLength))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let n = tasks.len();
        for _ in 0..500 {
            let queued = batcher.queue.max_capacity() - batcher.queue.capacity();
            if queued + 1 >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(held);
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    }

    async fn value(store: &Store, dag: &str, task: &str, map_index: i64) -> Option<String> {
        store
            .xcom(XComKey {
                dag_id: dag,
                run_id: "r",
                task_id: task,
                key: "k",
                map_index,
            })
            .await
            .unwrap()
    }

    /// One batch: each member gets the answer it would have had alone, the
    /// later of two writes of one XCom wins, a mapped length is recorded.
    #[tokio::test]
    async fn a_batch_answers_each_member_as_alone() {
        for store in stores("a_batch_answers_each_member_as_alone").await {
            if store.xcom_batch.is_none() {
                continue;
            }
            let dag = format!("dag_{}", uuid::Uuid::new_v4().simple());
            for (task, map_index) in [("a", -1), ("b", -1), ("m", 0), ("m", 1)] {
                store
                    .create_task_instance(&NewTaskInstance {
                        run_id: Some("r".into()),
                        map_index,
                        ..NewTaskInstance::new(&dag, task)
                    })
                    .await
                    .unwrap();
            }
            let w = |task: &str, run: &str, map_index: i64, value: &str, length: Option<i64>| {
                (
                    dag.clone(),
                    run.to_owned(),
                    task.to_owned(),
                    map_index,
                    value.to_owned(),
                    length,
                )
            };
            let answers = write_all(
                &store,
                vec![
                    w("a", "r", -1, r#"{"first": 1}"#, None),
                    w("b", "r", -1, "18446744073709551616", Some(3)),
                    w("a", "r", -1, r#"{"second": 2}"#, None),
                    w("m", "r", 0, "[0]", None),
                    w("m", "r", 1, "[1]", None),
                    w("a", "no_such_run", -1, "1", None),
                    w("nope", "r", -1, "1", None),
                ],
            )
            .await;
            use XComWrite::*;
            assert_eq!(
                answers,
                [
                    Stored,
                    Stored,
                    Stored,
                    Stored,
                    Stored,
                    NoDagRun,
                    NoTaskInstance
                ]
            );
            assert_eq!(
                value(&store, &dag, "a", -1).await.as_deref(),
                Some(r#"{"second": 2}"#)
            );
            assert_eq!(
                value(&store, &dag, "b", -1).await.as_deref(),
                Some("18446744073709551616")
            );
            assert_eq!(value(&store, &dag, "m", 1).await.as_deref(), Some("[1]"));
            let length: i64 = sqlx::query(
                "SELECT length FROM task_map WHERE dag_id = $1 AND task_id = 'b' AND run_id = 'r'",
            )
            .bind(&dag)
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
            assert_eq!(length, 3);
            let rows: i64 = sqlx::query("SELECT COUNT(*) FROM xcom WHERE dag_id = $1")
                .bind(&dag)
                .fetch_one(&store.pool)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(rows, 4, "one row per XCom, none for the refused members");
        }
    }

    /// A batch whose statement fails (a number `jsonb` cannot hold): every
    /// member writes alone and gets its own answer; a value with a NUL escape
    /// never joins a batch.
    #[tokio::test]
    async fn a_failed_batch_lets_each_member_write_alone() {
        for store in stores("a_failed_batch_lets_each_member_write_alone").await {
            if store.xcom_batch.is_none() {
                continue;
            }
            let dag = format!("dag_{}", uuid::Uuid::new_v4().simple());
            for task in ["a", "b", "c"] {
                store
                    .create_task_instance(&NewTaskInstance {
                        run_id: Some("r".into()),
                        ..NewTaskInstance::new(&dag, task)
                    })
                    .await
                    .unwrap();
            }
            let row = |task: &str, value: &str| super::XComRow {
                dag_id: dag.clone(),
                run_id: "r".into(),
                task_id: task.into(),
                map_index: -1,
                key: "k".into(),
                value: value.into(),
                dag_result: false,
                mapped_length: None,
            };
            assert!(!row("a", r#""\u0000""#).batchable());
            assert!(row("a", r#""\u0001""#).batchable());
            let batcher = store.xcom_batch.clone().unwrap();
            let held = batcher.lane.hold().await;
            let submit = |row: super::XComRow| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(row).await })
            };
            let good = submit(row("a", "1"));
            let bad = submit(row("b", "1e1000000"));
            let other = submit(row("c", "3"));
            for _ in 0..500 {
                if batcher.queue.max_capacity() - batcher.queue.capacity() >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            drop(held);
            // The batch failed: nobody got an answer from it, nothing was written.
            assert_eq!(good.await.unwrap(), None);
            assert_eq!(bad.await.unwrap(), None);
            assert_eq!(other.await.unwrap(), None);
            assert_eq!(value(&store, &dag, "a", -1).await, None);
            // What `set_xcom` then does: each alone.
            let at = |task: &'static str| XComKey {
                dag_id: &dag,
                run_id: "r",
                task_id: task,
                key: "k",
                map_index: -1,
            };
            assert_eq!(
                store.set_xcom(at("a"), "1", false, None).await.unwrap(),
                XComWrite::Stored
            );
            assert!(
                store
                    .set_xcom(at("b"), "1e1000000", false, None)
                    .await
                    .is_err()
            );
            assert_eq!(value(&store, &dag, "a", -1).await.as_deref(), Some("1"));
        }
    }
}
