//! XComs on Airflow's `xcom` table, stored as Airflow stores them: the request
//! body verbatim as the JSON `value` (`XComModel.set(..., serialize=False)`),
//! keyed by the DAG run's integer id, task, map index and key, so that Airflow's
//! UI, CLI and models read ours and we read theirs.

use sqlx::Row as _;

use super::sql::{sql, time_param};
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

impl Store {
    /// Reads an XCom's value: its JSON text as stored (`null` for SQL NULL).
    pub async fn xcom(&self, at: XComKey<'_>) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(sql!(
            self.backend,
            "SELECT CAST(value AS TEXT) FROM xcom WHERE dag_id = $1 AND run_id = $2 \
             AND task_id = $3 AND map_index = $4 AND key = $5"
        ))
        .bind(at.dag_id)
        .bind(at.run_id)
        .bind(at.task_id)
        .bind(at.map_index)
        .bind(at.key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some(
                row.try_get::<Option<String>, _>(0)?
                    .unwrap_or_else(|| "null".to_owned()),
            ),
            None => None,
        })
    }

    /// Stores an XCom: `value` is JSON text, kept as sent. As Airflow does, the
    /// old row goes and a new one (with a new timestamp) comes.
    pub async fn set_xcom(
        &self,
        at: XComKey<'_>,
        value: &str,
        dag_result: bool,
    ) -> Result<XComWrite, StoreError> {
        let b = self.backend;
        let mut tx = self.begin_write().await?;
        let dag_run_id: Option<i64> = sqlx::query(sql!(
            b,
            "SELECT id FROM dag_run WHERE dag_id = $1 AND run_id = $2"
        ))
        .bind(at.dag_id)
        .bind(at.run_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        let Some(dag_run_id) = dag_run_id else {
            return Ok(XComWrite::NoDagRun);
        };
        let has_ti: i64 = sqlx::query(sql!(
            b,
            "SELECT COUNT(*) FROM task_instance WHERE dag_id = $1 AND run_id = $2 \
             AND task_id = $3 AND map_index = $4"
        ))
        .bind(at.dag_id)
        .bind(at.run_id)
        .bind(at.task_id)
        .bind(at.map_index)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if has_ti == 0 {
            return Ok(XComWrite::NoTaskInstance);
        }
        sqlx::query(sql!(
            b,
            "DELETE FROM xcom WHERE key = $1 AND run_id = $2 AND task_id = $3 AND dag_id = $4 \
             AND map_index = $5"
        ))
        .bind(at.key)
        .bind(at.run_id)
        .bind(at.task_id)
        .bind(at.dag_id)
        .bind(at.map_index)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sql!(
            b,
            "INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, \
             timestamp, dag_result) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::timestamptz, $9)"
        ))
        .bind(dag_run_id)
        .bind(at.task_id)
        .bind(at.map_index)
        .bind(at.key)
        .bind(at.dag_id)
        .bind(at.run_id)
        .bind(value)
        .bind(time_param(now()))
        .bind(dag_result)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(XComWrite::Stored)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewTaskInstance;
    use crate::store::testing::stores;

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
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
                store.set_xcom(at, value, false).await.unwrap(),
                XComWrite::Stored
            );
            let got = store.xcom(at).await.unwrap().unwrap();
            assert_eq!(json(&got), json(value));
            // Integers past 64 bits stay exact.
            assert!(got.contains("18446744073709551616"), "{got}");
            assert_eq!(
                store.set_xcom(at, "null", false).await.unwrap(),
                XComWrite::Stored
            );
            assert_eq!(store.xcom(at).await.unwrap().as_deref(), Some("null"));
            assert_eq!(
                store.set_xcom(at, "10", false).await.unwrap(),
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
                store.set_xcom(other_run, "1", false).await.unwrap(),
                XComWrite::NoDagRun
            );
            let other_task = XComKey {
                task_id: "nope",
                ..at
            };
            assert_eq!(
                store.set_xcom(other_task, "1", false).await.unwrap(),
                XComWrite::NoTaskInstance
            );
        }
    }
}
