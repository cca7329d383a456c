//! The group commit of XCom writes (see [`super::batch`]).
//!
//! On SQLite each member runs the single write's statement in the batch's
//! transaction, in arrival order. On PostgreSQL the batch statement is the single write's over every member at once (the
//! members passed as one JSON parameter, `json_to_recordset`): each member's
//! DAG run and task instance are looked up, its `task_map` row merged when it
//! records a `mapped_length`, its XCom upserted on the primary key, and the
//! statement returns, per member, whether its run and its task instance exist
//! (stored, no such run, no such task instance). Two members writing the same
//! XCom (or the same `task_map` row) are written once, the later one's value
//! winning. A value PostgreSQL's `jsonb` refuses (a `\u0000` escape) never
//! joins a batch: the single statement reports it on its own.

use std::collections::HashMap;

use super::batch::{Batch, Written};
use super::lane::Checkout;
use sqlx::AnyConnection;

use super::sql::{Backend, time_param};
use super::xcoms::{XComKey, XComWrite, set_xcom_sqlite};
use super::{StoreError, now};

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
    /// Whether a batch can take it: PostgreSQL's `jsonb` refuses the NUL
    /// character, which the single statement reports on its own.
    pub(super) fn batchable(&self, backend: Backend) -> bool {
        backend == Backend::Sqlite || !self.value.contains("\\u0000")
    }

    fn key(&self) -> XComKey<'_> {
        XComKey {
            dag_id: &self.dag_id,
            run_id: &self.run_id,
            task_id: &self.task_id,
            key: &self.key,
            map_index: self.map_index,
        }
    }
}

/// XCom writes, batched.
pub(super) struct XComBatch;

impl Batch for XComBatch {
    type Row = XComRow;
    type Outcome = XComWrite;
    const THREAD: &'static str = "xcom-commit";

    fn write<'a>(conn: Checkout<'a>, rows: Vec<&'a XComRow>) -> Written<'a, XComWrite> {
        Box::pin(write(conn, rows))
    }

    fn write_sqlite<'a>(
        conn: &'a mut AnyConnection,
        rows: Vec<&'a XComRow>,
    ) -> Written<'a, XComWrite> {
        Box::pin(async move {
            let stamp = time_param(now());
            let mut outcomes = HashMap::with_capacity(rows.len());
            for (i, row) in rows.into_iter().enumerate() {
                let outcome = set_xcom_sqlite(
                    conn,
                    row.key(),
                    &row.value,
                    row.dag_result,
                    row.mapped_length,
                    &stamp,
                )
                .await?;
                outcomes.insert(i, outcome);
            }
            Ok(outcomes)
        })
    }
}

/// The batch statement; each member's outcome by its index.
async fn write(
    conn: Checkout<'_>,
    members: Vec<&XComRow>,
) -> Result<HashMap<usize, XComWrite>, StoreError> {
    let rows: Vec<serde_json::Value> = members
        .iter()
        .enumerate()
        .map(|(i, row)| {
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
    super::batch::outcomes(&answers, ["has_run", "has_ti"], |has_run, has_ti| {
        match (has_run, has_ti) {
            (false, _) => XComWrite::NoDagRun,
            (true, false) => XComWrite::NoTaskInstance,
            (true, true) => XComWrite::Stored,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Row as _;

    use crate::store::sql::Backend;
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
        let _busy = super::super::batch::InFlight::enter(&store.xcom_writes);
        let held = batcher.writer.hold().await;
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
            let queued = batcher.queued();
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
                    // In a list: a bare number in SQLite's `JSON` column (NUMERIC
                    // affinity) is stored as a number, as Airflow's own writes are.
                    w("b", "r", -1, "[18446744073709551616]", Some(3)),
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
                Some("[18446744073709551616]")
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

    /// A batch that fails (a member's negative mapped length, which
    /// `task_map`'s check refuses): every member writes alone and gets its own
    /// answer; on PostgreSQL a value with a NUL escape never joins a batch.
    #[tokio::test]
    async fn a_failed_batch_lets_each_member_write_alone() {
        for store in stores("a_failed_batch_lets_each_member_write_alone").await {
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
            let row = |task: &str, value: &str, length: Option<i64>| super::XComRow {
                dag_id: dag.clone(),
                run_id: "r".into(),
                task_id: task.into(),
                map_index: -1,
                key: "k".into(),
                value: value.into(),
                dag_result: false,
                mapped_length: length,
            };
            assert!(!row("a", r#""\u0000""#, None).batchable(Backend::Postgres));
            assert!(row("a", r#""\u0001""#, None).batchable(Backend::Postgres));
            assert!(row("a", r#""\u0000""#, None).batchable(Backend::Sqlite));
            let batcher = store.xcom_batch.clone().unwrap();
            let held = batcher.writer.hold().await;
            let submit = |row: super::XComRow| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(row).await })
            };
            let good = submit(row("a", "1", None));
            let bad = submit(row("b", "2", Some(-1)));
            let other = submit(row("c", "3", None));
            for _ in 0..500 {
                if batcher.queued() >= 2 {
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
                    .set_xcom(at("b"), "2", false, Some(TaskMapLength(-1)))
                    .await
                    .is_err()
            );
            assert_eq!(value(&store, &dag, "a", -1).await.as_deref(), Some("1"));
            assert_eq!(value(&store, &dag, "b", -1).await, None);
        }
    }
}
