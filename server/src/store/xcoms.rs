//! XComs on Airflow's `xcom` table, stored as Airflow stores them: the request
//! body verbatim as the JSON `value` (`XComModel.set(..., serialize=False)`),
//! keyed by the DAG run's integer id, task, map index and key, so that Airflow's
//! UI, CLI and models read ours and we read theirs.

use sqlx::Row as _;

use super::sql::{Backend, sql, time_param};
use super::{Store, StoreError, now};

/// Where an XCom lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XComKey<'a> {
    /// DAG id.
    pub dag_id: &'a str,
    /// Run id.
    pub run_id: &'a str,
    /// Task id.
    pub task_id: &'a str,
    /// XCom key.
    pub key: &'a str,
    /// Map index, `-1` for an unmapped task.
    pub map_index: i64,
}

/// The XComs one task pushed under one key in one DAG run, over all map
/// indexes (the item, slice and count reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XComSeries<'a> {
    /// DAG id.
    pub dag_id: &'a str,
    /// Run id.
    pub run_id: &'a str,
    /// Task id.
    pub task_id: &'a str,
    /// XCom key.
    pub key: &'a str,
}

/// Which row a single-XCom read picks (`GET .../{key}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XComPick {
    /// The row of this map index (`?map_index=`, default -1).
    MapIndex(i64),
    /// The `n`th non-NULL row by map index (`?offset=`; negative counts from
    /// the end, as a Python index does).
    Offset(i64),
}

/// A `?mapped_length=` to record in `task_map` with the XCom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskMapLength(pub i64);

/// What an XCom write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XComWrite {
    /// Stored.
    Stored,
    /// No such DAG run.
    NoDagRun,
    /// The DAG run exists but the task instance does not (Airflow's foreign key
    /// refuses the row: a 500 there, a 404 here).
    NoTaskInstance,
}

/// [`Store::set_xcom`] on PostgreSQL in one autocommitted statement, one round
/// trip on the [`lane`](super::lane) instead of a transaction of four
/// statements: the DAG run and the task instance are looked up, and the XCom
/// (with its `task_map` row) is written only where both exist. The row is
/// replaced by an upsert on the primary key, which leaves the same row as
/// Airflow's delete and insert, and lets two writers of one key both succeed
/// (the later wins) where a delete and insert can fail on the key. Repeating
/// it (the lane does once, on a connection found dead) writes the same row.
async fn set_xcom_postgres(
    lane: &super::lane::Lane,
    at: XComKey<'_>,
    value: &str,
    dag_result: bool,
    mapped_length: Option<TaskMapLength>,
) -> Result<XComWrite, StoreError> {
    let stamp = time_param(now());
    let length = mapped_length.map(|TaskMapLength(length)| length);
    let row = lane
        .fetch_optional(|| {
            sqlx::query(
                "WITH dr AS (SELECT id FROM dag_run WHERE dag_id = $1 AND run_id = $2), \
                 ti AS (SELECT FROM task_instance WHERE dag_id = $1 AND run_id = $2 \
                 AND task_id = $3 AND map_index = $4), \
                 mapped AS (INSERT INTO task_map (dag_id, task_id, run_id, map_index, length, keys) \
                 SELECT $1, $3, $2, $4, $9, 'null'::jsonb \
                 WHERE $9::bigint IS NOT NULL AND EXISTS (SELECT FROM dr) AND EXISTS (SELECT FROM ti) \
                 ON CONFLICT (dag_id, task_id, run_id, map_index) \
                 DO UPDATE SET length = excluded.length, keys = excluded.keys), \
                 stored AS (INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, \
                 value, timestamp, dag_result) \
                 SELECT dr.id, $3, $4, $5, $1, $2, $6::jsonb, $7::timestamptz, $8 FROM dr \
                 WHERE EXISTS (SELECT FROM ti) \
                 ON CONFLICT (dag_run_id, task_id, map_index, key) DO UPDATE SET \
                 dag_id = excluded.dag_id, run_id = excluded.run_id, value = excluded.value, \
                 timestamp = excluded.timestamp, dag_result = excluded.dag_result) \
                 SELECT EXISTS (SELECT FROM dr), EXISTS (SELECT FROM ti)",
            )
            .bind(at.dag_id)
            .bind(at.run_id)
            .bind(at.task_id)
            .bind(at.map_index)
            .bind(at.key)
            .bind(value)
            .bind(&stamp)
            .bind(dag_result)
            .bind(length)
        })
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let (has_run, has_ti): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
    Ok(match (has_run, has_ti) {
        (false, _) => XComWrite::NoDagRun,
        (true, false) => XComWrite::NoTaskInstance,
        (true, true) => XComWrite::Stored,
    })
}

/// [`Store::set_xcom`] on SQLite, on `conn` in a write transaction (alone,
/// or one member of a batch: [`super::xcom_batch`]). The XCom is upserted on
/// its primary key (the DAG run's id stands for `dag_id` and `run_id`) where
/// its run and task instance exist, which leaves the same row as Airflow's
/// delete and insert; one statement, and the lookups that tell a missing run
/// from a missing task instance only when nothing was written.
pub(super) async fn set_xcom_sqlite(
    conn: &mut sqlx::AnyConnection,
    at: XComKey<'_>,
    value: &str,
    dag_result: bool,
    mapped_length: Option<i64>,
    stamp: &str,
) -> Result<XComWrite, StoreError> {
    if let Some(length) = mapped_length {
        // `session.merge(TaskMap(...))`: one row per task instance.
        sqlx::query(
            "INSERT INTO task_map (dag_id, task_id, run_id, map_index, length, keys) \
             SELECT $1, $2, $3, $4, $5, 'null' \
             WHERE EXISTS (SELECT 1 FROM task_instance WHERE dag_id = $1 AND run_id = $3 \
             AND task_id = $2 AND map_index = $4) \
             ON CONFLICT (dag_id, task_id, run_id, map_index) \
             DO UPDATE SET length = excluded.length, keys = excluded.keys",
        )
        .bind(at.dag_id)
        .bind(at.task_id)
        .bind(at.run_id)
        .bind(at.map_index)
        .bind(length)
        .execute(&mut *conn)
        .await?;
    }
    // (`WHERE` before `ON CONFLICT` is also what tells SQLite's parser the
    // upsert from a join constraint.)
    let written = sqlx::query(
        "INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, \
         timestamp, dag_result) \
         SELECT dag_run.id, $3, $4, $5, $1, $2, $6, $7, $8 FROM dag_run \
         WHERE dag_run.dag_id = $1 AND dag_run.run_id = $2 \
         AND EXISTS (SELECT 1 FROM task_instance WHERE dag_id = $1 AND run_id = $2 \
         AND task_id = $3 AND map_index = $4) \
         ON CONFLICT (dag_run_id, task_id, map_index, key) DO UPDATE SET \
         dag_id = excluded.dag_id, run_id = excluded.run_id, value = excluded.value, \
         timestamp = excluded.timestamp, dag_result = excluded.dag_result",
    )
    .bind(at.dag_id)
    .bind(at.run_id)
    .bind(at.task_id)
    .bind(at.map_index)
    .bind(at.key)
    .bind(value)
    .bind(stamp)
    .bind(dag_result)
    .execute(&mut *conn)
    .await?;
    if written.rows_affected() > 0 {
        return Ok(XComWrite::Stored);
    }
    let row =
        sqlx::query("SELECT EXISTS (SELECT 1 FROM dag_run WHERE dag_id = $1 AND run_id = $2)")
            .bind(at.dag_id)
            .bind(at.run_id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(if row.try_get::<i64, _>(0)? != 0 {
        XComWrite::NoTaskInstance
    } else {
        XComWrite::NoDagRun
    })
}

impl Store {
    /// Reads an XCom's value: its JSON text as stored (`null` for SQL NULL).
    pub async fn xcom(&self, at: XComKey<'_>) -> Result<Option<String>, StoreError> {
        let query = values_sql(
            self.backend,
            "SELECT CAST(xcom.value AS TEXT) FROM xcom WHERE dag_id = $1 AND run_id = $2 \
             AND task_id = $3 AND map_index = $4 AND key = $5",
        );
        let row = self
            .read_optional(|| {
                sqlx::query(sqlx::AssertSqlSafe(&*query))
                    .bind(at.dag_id)
                    .bind(at.run_id)
                    .bind(at.task_id)
                    .bind(at.map_index)
                    .bind(at.key)
            })
            .await?;
        row.map(|row| value_text(&row, self.backend)).transpose()
    }

    /// Reads the XCom `GET .../{key}` answers with (Airflow's
    /// `XComModel.get_many` then `.first()`): by map index, newest logical date
    /// and timestamp first; or by offset over the map indexes. With
    /// `include_prior_dates`, rows of every run of the DAG whose
    /// `coalesce(logical_date, run_after)` is not after this run's count too.
    pub async fn xcom_pick(
        &self,
        at: XComSeries<'_>,
        pick: XComPick,
        include_prior_dates: bool,
    ) -> Result<Option<String>, StoreError> {
        // The four shapes of one query, as SQLAlchemy renders Airflow's.
        const BASE: &str = "SELECT CAST(xcom.value AS TEXT) FROM xcom \
             JOIN dag_run ON xcom.dag_run_id = dag_run.id \
             WHERE xcom.key = $1 AND xcom.task_id = $2 AND xcom.dag_id = $3 AND ";
        const THIS_RUN: &str = "xcom.run_id = $4";
        const PRIOR: &str = "COALESCE(dag_run.logical_date, dag_run.run_after) <= \
             (SELECT COALESCE(prior.logical_date, prior.run_after) FROM dag_run prior \
             WHERE prior.run_id = $4 AND prior.dag_id = xcom.dag_id)";
        let runs = if include_prior_dates { PRIOR } else { THIS_RUN };
        let (tail, n) = match pick {
            XComPick::MapIndex(map_index) => (
                " AND xcom.map_index = $5 \
                 ORDER BY dag_run.logical_date DESC, xcom.timestamp DESC LIMIT 1",
                map_index,
            ),
            XComPick::Offset(offset) if offset >= 0 => (
                " AND xcom.value IS NOT NULL ORDER BY xcom.map_index ASC LIMIT 1 OFFSET $5",
                offset,
            ),
            XComPick::Offset(offset) => (
                " AND xcom.value IS NOT NULL ORDER BY xcom.map_index DESC LIMIT 1 OFFSET $5",
                -1 - offset,
            ),
        };
        let text = values_sql(self.backend, &format!("{BASE}{runs}{tail}")).into_owned();
        let row = self
            .read_optional(|| {
                sqlx::query(sqlx::AssertSqlSafe(text.as_str()))
                    .bind(at.key)
                    .bind(at.task_id)
                    .bind(at.dag_id)
                    .bind(at.run_id)
                    .bind(n)
            })
            .await?;
        row.map(|row| value_text(&row, self.backend)).transpose()
    }

    /// The value at a Python-style index over the run's XComs ordered by map
    /// index (`GET .../{key}/item/{offset}`), SQL NULL read as `null`.
    pub async fn xcom_item(
        &self,
        at: XComSeries<'_>,
        offset: i64,
    ) -> Result<Option<String>, StoreError> {
        // A negative offset counts from the end: the same query, read backwards.
        let (direction, skip) = if offset >= 0 {
            ("ASC", offset)
        } else {
            ("DESC", -1 - offset)
        };
        let query = format!(
            "SELECT CAST(xcom.value AS TEXT) FROM xcom JOIN dag_run ON xcom.dag_run_id = dag_run.id \
             WHERE xcom.key = $1 AND xcom.task_id = $2 AND xcom.dag_id = $3 AND xcom.run_id = $4 \
             ORDER BY xcom.map_index {direction} LIMIT 1 OFFSET $5"
        );
        let query = values_sql(self.backend, &query);
        let row = self
            .read_optional(|| {
                sqlx::query(sqlx::AssertSqlSafe(&*query))
                    .bind(at.key)
                    .bind(at.task_id)
                    .bind(at.dag_id)
                    .bind(at.run_id)
                    .bind(skip)
            })
            .await?;
        row.map(|row| value_text(&row, self.backend)).transpose()
    }

    /// Every value of the series ordered by map index (SQL NULL read as
    /// `null`), of this run or, with `include_prior_dates`, of this and
    /// earlier runs of the DAG: what `.../slice` slices.
    pub async fn xcom_values(
        &self,
        at: XComSeries<'_>,
        include_prior_dates: bool,
    ) -> Result<Vec<String>, StoreError> {
        let query = if include_prior_dates {
            "SELECT CAST(xcom.value AS TEXT) FROM xcom JOIN dag_run ON xcom.dag_run_id = dag_run.id \
             WHERE xcom.key = $1 AND xcom.task_id = $2 AND xcom.dag_id = $3 \
             AND COALESCE(dag_run.logical_date, dag_run.run_after) <= \
             (SELECT COALESCE(prior.logical_date, prior.run_after) FROM dag_run prior \
             WHERE prior.run_id = $4 AND prior.dag_id = xcom.dag_id) \
             ORDER BY xcom.map_index ASC"
        } else {
            "SELECT CAST(xcom.value AS TEXT) FROM xcom JOIN dag_run ON xcom.dag_run_id = dag_run.id \
             WHERE xcom.key = $1 AND xcom.task_id = $2 AND xcom.dag_id = $3 AND xcom.run_id = $4 \
             ORDER BY xcom.map_index ASC"
        };
        let query = values_sql(self.backend, query);
        let rows = self
            .read_all(|| {
                sqlx::query(sqlx::AssertSqlSafe(&*query))
                    .bind(at.key)
                    .bind(at.task_id)
                    .bind(at.dag_id)
                    .bind(at.run_id)
            })
            .await?;
        rows.iter()
            .map(|row| value_text(row, self.backend))
            .collect()
    }

    /// How many XComs the series has, over all map indexes (`HEAD .../{key}`).
    pub async fn xcom_count(&self, at: XComSeries<'_>) -> Result<i64, StoreError> {
        Ok(self
            .read_one(|| {
                sqlx::query(
                    "SELECT COUNT(*) FROM xcom JOIN dag_run ON xcom.dag_run_id = dag_run.id \
             WHERE xcom.key = $1 AND xcom.task_id = $2 AND xcom.dag_id = $3 AND xcom.run_id = $4",
                )
                .bind(at.key)
                .bind(at.task_id)
                .bind(at.dag_id)
                .bind(at.run_id)
            })
            .await?
            .try_get(0)?)
    }

    /// Stores an XCom: `value` is JSON text, kept as sent. As Airflow does, the
    /// old row goes and a new one (with a new timestamp) comes. With
    /// `mapped_length`, the task's `task_map` row is merged too (`length`,
    /// `keys` JSON null), in the same transaction.
    pub async fn set_xcom(
        &self,
        at: XComKey<'_>,
        value: &str,
        dag_result: bool,
        mapped_length: Option<TaskMapLength>,
    ) -> Result<XComWrite, StoreError> {
        let length = mapped_length.map(|TaskMapLength(length)| length);
        // Alone, the write runs at once on this worker's connection; arriving
        // while others are in flight, it joins the collector's next batch.
        let in_flight = super::batch::InFlight::enter(&self.xcom_writes);
        if let Some(batcher) = &self.xcom_batch
            && in_flight.others > 0
        {
            let row = super::xcom_batch::XComRow {
                dag_id: at.dag_id.to_owned(),
                run_id: at.run_id.to_owned(),
                task_id: at.task_id.to_owned(),
                map_index: at.map_index,
                key: at.key.to_owned(),
                value: value.to_owned(),
                dag_result,
                mapped_length: length,
            };
            if row.batchable(self.backend)
                && let Some(outcome) = batcher.submit(row).await
            {
                return Ok(outcome);
            }
        }
        if let Some(lane) = &self.lane {
            return set_xcom_postgres(lane, at, value, dag_result, mapped_length).await;
        }
        let mut tx = self.begin_write().await?;
        let stored =
            set_xcom_sqlite(&mut tx, at, value, dag_result, length, &time_param(now())).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Deletes an XCom; whether a row was deleted.
    pub async fn delete_xcom(&self, at: XComKey<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(sql!(
            self.backend,
            "DELETE FROM xcom WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 \
             AND map_index = $4 AND key = $5"
        ))
        .bind(at.dag_id)
        .bind(at.run_id)
        .bind(at.task_id)
        .bind(at.map_index)
        .bind(at.key)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// How the XCom reads select the value, as written for PostgreSQL.
const VALUE_COLUMN: &str = "CAST(xcom.value AS TEXT)";

/// The same on SQLite. Its `JSON` column has NUMERIC affinity: a value that is
/// a bare number is stored as a number (by Airflow's writes and ours alike),
/// and `CAST` of a REAL to text keeps 15 significant digits
/// (0.30000000000000004 would read 0.3). `printf('%!.17g')` keeps every digit
/// of the double; [`value_text`] then writes its shortest form.
const SQLITE_VALUE_COLUMN: &str = "CASE typeof(xcom.value) WHEN 'real' \
     THEN printf('%!.17g', xcom.value) ELSE CAST(xcom.value AS TEXT) END";

/// An XCom read's query for `backend`.
fn values_sql(backend: Backend, query: &str) -> std::borrow::Cow<'_, str> {
    match backend {
        Backend::Postgres => query.into(),
        Backend::Sqlite => query.replace(VALUE_COLUMN, SQLITE_VALUE_COLUMN).into(),
    }
}

/// An XCom value column as JSON text, SQL NULL read as `null`; on SQLite a
/// REAL's 17 digits in the shortest form that reads back the same double (as
/// Python writes a float), an infinite one as a literal JSON parsers read as
/// infinite (`1e999`).
fn value_text(row: &sqlx::any::AnyRow, backend: Backend) -> Result<String, StoreError> {
    let text = row
        .try_get::<Option<String>, _>(0)?
        .unwrap_or_else(|| "null".to_owned());
    if backend == Backend::Sqlite
        && text.starts_with(|c: char| c == '-' || c.is_ascii_digit() || c == 'I')
        && text.contains(['.', 'e', 'E', 'I', 'n'])
        && let Ok(number) = text.parse::<f64>()
    {
        return Ok(match number {
            f64::INFINITY => "1e999".to_owned(),
            f64::NEG_INFINITY => "-1e999".to_owned(),
            number => format!("{number:?}"),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewTaskInstance;
    use crate::store::testing::stores;

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }

    /// A value that is a bare number reads back as the same number on every
    /// backend, through every read (SQLite stores it as a number: see
    /// [`SQLITE_VALUE_COLUMN`]); on PostgreSQL as written.
    #[tokio::test]
    async fn bare_numbers_read_back_the_same() {
        for store in stores("bare_numbers_read_back_the_same").await {
            let dag = format!("dag_{}", uuid::Uuid::new_v4().simple());
            store
                .create_task_instance(&NewTaskInstance {
                    run_id: Some("r".into()),
                    ..NewTaskInstance::new(&dag, "t")
                })
                .await
                .unwrap();
            for (i, (value, sqlite)) in [
                ("0.30000000000000004", "0.30000000000000004"),
                ("0.1", "0.1"),
                ("-2.5e-300", "-2.5e-300"),
                ("1.7976931348623157e308", "1.7976931348623157e308"),
                ("3.0", "3"),
                ("123456789012345678", "123456789012345678"),
                ("18446744073709551616", "1.8446744073709552e19"),
                ("1e400", "1e999"),
                ("-1e400", "-1e999"),
                ("[0.30000000000000004]", "[0.30000000000000004]"),
                ("\"1.5\"", "\"1.5\""),
            ]
            .into_iter()
            .enumerate()
            {
                let key = format!("k{i}");
                let at = XComKey {
                    dag_id: &dag,
                    run_id: "r",
                    task_id: "t",
                    key: &key,
                    map_index: -1,
                };
                store.set_xcom(at, value, false, None).await.unwrap();
                let want = match store.backend {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => value,
                };
                let series = XComSeries {
                    dag_id: &dag,
                    run_id: "r",
                    task_id: "t",
                    key: &key,
                };
                let reads = [
                    store.xcom(at).await.unwrap(),
                    store
                        .xcom_pick(series, XComPick::MapIndex(-1), false)
                        .await
                        .unwrap(),
                    store.xcom_item(series, 0).await.unwrap(),
                    store.xcom_values(series, false).await.unwrap().pop(),
                ];
                for got in reads {
                    let got = got.unwrap();
                    // PostgreSQL's jsonb writes numbers its own way (1e400 in
                    // full); beyond a double's range, both read as infinite.
                    match (got.parse::<f64>(), want.parse::<f64>()) {
                        (Ok(got), Ok(want)) => assert_eq!(got, want, "{value}"),
                        _ => assert_eq!(json(&got), json(want), "{value}: {got}"),
                    }
                    if value.contains("0.30000000000000004") {
                        assert!(got.contains("0.30000000000000004"), "{got}");
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn xcoms_round_trip() {
        for store in stores("xcoms_round_trip").await {
            let dag = format!("dag_{}", uuid::Uuid::new_v4().simple());
            store
                .create_task_instance(&NewTaskInstance {
                    run_id: Some("r1".into()),
                    ..NewTaskInstance::new(&dag, "t")
                })
                .await
                .unwrap();
            let at = XComKey {
                dag_id: &dag,
                run_id: "r1",
                task_id: "t",
                key: "return_value",
                map_index: -1,
            };
            assert_eq!(store.xcom(at).await.unwrap(), None);
            let value =
                r#"{"rows": [1, 2, 3], "ok": true, "none": null, "big": 18446744073709551616}"#;
            assert_eq!(
                store.set_xcom(at, value, false, None).await.unwrap(),
                XComWrite::Stored
            );
            let got = store.xcom(at).await.unwrap().unwrap();
            assert_eq!(json(&got), json(value));
            // Integers past 64 bits stay exact.
            assert!(got.contains("18446744073709551616"), "{got}");
            assert_eq!(
                store.set_xcom(at, "null", false, None).await.unwrap(),
                XComWrite::Stored
            );
            assert_eq!(store.xcom(at).await.unwrap().as_deref(), Some("null"));
            assert_eq!(
                store.set_xcom(at, "10", false, None).await.unwrap(),
                XComWrite::Stored
            );
            assert_eq!(store.xcom(at).await.unwrap().as_deref(), Some("10"));
            assert!(store.delete_xcom(at).await.unwrap());
            assert!(!store.delete_xcom(at).await.unwrap());
            let other_run = XComKey {
                run_id: "nope",
                ..at
            };
            assert_eq!(
                store.set_xcom(other_run, "1", false, None).await.unwrap(),
                XComWrite::NoDagRun
            );
            let other_task = XComKey {
                task_id: "nope",
                ..at
            };
            assert_eq!(
                store.set_xcom(other_task, "1", false, None).await.unwrap(),
                XComWrite::NoTaskInstance
            );
        }
    }

    #[tokio::test]
    async fn mapped_series_read_by_item_slice_count_and_prior_dates() {
        for store in stores("mapped_series").await {
            let dag = format!("dag_{}", uuid::Uuid::new_v4().simple());
            for (run, map_index) in [("r1", 0), ("r1", 1), ("r1", 2), ("r2", 0), ("r2", 1)] {
                store
                    .create_task_instance(&NewTaskInstance {
                        run_id: Some(run.into()),
                        map_index,
                        ..NewTaskInstance::new(&dag, "t")
                    })
                    .await
                    .unwrap();
            }
            let at = |run_id, map_index| XComKey {
                dag_id: &dag,
                run_id,
                task_id: "t",
                key: "a/b",
                map_index,
            };
            for (run, map_index, value) in [
                ("r1", 2, "\"r1-2\""),
                ("r1", 0, "\"r1-0\""),
                ("r1", 1, "null"),
                ("r2", 1, "\"r2-1\""),
            ] {
                let length = (map_index == 0).then_some(TaskMapLength(3));
                assert_eq!(
                    store
                        .set_xcom(at(run, map_index), value, false, length)
                        .await
                        .unwrap(),
                    XComWrite::Stored
                );
            }
            let r1 = XComSeries {
                dag_id: &dag,
                run_id: "r1",
                task_id: "t",
                key: "a/b",
            };
            let r2 = XComSeries { run_id: "r2", ..r1 };
            assert_eq!(store.xcom_count(r1).await.unwrap(), 3);
            assert_eq!(store.xcom_count(r2).await.unwrap(), 1);
            assert_eq!(
                store.xcom_values(r1, false).await.unwrap(),
                ["\"r1-0\"", "null", "\"r1-2\""]
            );
            assert_eq!(store.xcom_item(r1, 0).await.unwrap().unwrap(), "\"r1-0\"");
            assert_eq!(store.xcom_item(r1, -1).await.unwrap().unwrap(), "\"r1-2\"");
            assert_eq!(store.xcom_item(r1, 3).await.unwrap(), None);
            // JSON null is a value (only SQL NULL is skipped by offset reads).
            assert_eq!(
                store
                    .xcom_pick(r1, XComPick::Offset(1), false)
                    .await
                    .unwrap()
                    .unwrap(),
                "null"
            );
            assert_eq!(
                store
                    .xcom_pick(r1, XComPick::MapIndex(2), false)
                    .await
                    .unwrap()
                    .unwrap(),
                "\"r1-2\""
            );
            // r2 is the later run: with prior dates it sees r1's map index 2.
            assert_eq!(
                store
                    .xcom_pick(r2, XComPick::MapIndex(2), false)
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(
                store
                    .xcom_pick(r2, XComPick::MapIndex(2), true)
                    .await
                    .unwrap()
                    .unwrap(),
                "\"r1-2\""
            );
            assert_eq!(store.xcom_values(r2, true).await.unwrap().len(), 4);
            assert_eq!(
                store
                    .xcom_pick(r1, XComPick::MapIndex(1), true)
                    .await
                    .unwrap()
                    .unwrap(),
                "null"
            );
            // task_map: merged, keys JSON null.
            let rows = sqlx::query(
                "SELECT run_id, map_index, length, CAST(keys AS TEXT) FROM task_map \
                 WHERE dag_id = $1 ORDER BY run_id, map_index",
            )
            .bind(&dag)
            .fetch_all(&store.pool)
            .await
            .unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].try_get::<i64, _>(2).unwrap(), 3);
            assert_eq!(rows[0].try_get::<String, _>(3).unwrap(), "null");
            store
                .set_xcom(at("r1", 0), "1", false, Some(TaskMapLength(5)))
                .await
                .unwrap();
            let length: i64 = sqlx::query("SELECT length FROM task_map WHERE dag_id = $1")
                .bind(&dag)
                .fetch_one(&store.pool)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(length, 5);
        }
    }
}
