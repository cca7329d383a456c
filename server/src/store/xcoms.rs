//! XComs: JSON values keyed by (dag, run, task, map index, key).

use sqlx::Row as _;

use super::{Store, StoreError, now, timestamp};

/// Which XCom.
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
    /// Map index (`-1` for unmapped).
    pub map_index: i64,
}

/// Result of writing an XCom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XComWrite {
    /// Stored.
    Stored,
    /// The DAG run does not exist.
    NoDagRun,
}

impl Store {
    /// Reads an XCom's JSON value.
    pub async fn xcom(&self, at: XComKey<'_>) -> Result<Option<serde_json::Value>, StoreError> {
        let row = sqlx::query(
            "SELECT value FROM xcoms WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 \
             AND map_index = $4 AND key = $5",
        )
        .bind(at.dag_id)
        .bind(at.run_id)
        .bind(at.task_id)
        .bind(at.map_index)
        .bind(at.key)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => {
                let text: String = row.try_get(0)?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(format!("xcom value: {e}")))
            }
            None => Ok(None),
        }
    }

    /// Creates or replaces an XCom; its DAG run must exist (like Airflow).
    pub async fn set_xcom(
        &self,
        at: XComKey<'_>,
        value: &serde_json::Value,
    ) -> Result<XComWrite, StoreError> {
        let mut tx = self.begin_write().await?;
        // A write first, so SQLite takes its write lock before reading.
        let stored = sqlx::query(
            "INSERT INTO xcoms (dag_id, run_id, task_id, map_index, key, value, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 FROM dag_runs WHERE dag_id = $1 AND run_id = $2 \
             ON CONFLICT (dag_id, run_id, task_id, map_index, key) DO UPDATE \
             SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(at.dag_id)
        .bind(at.run_id)
        .bind(at.task_id)
        .bind(at.map_index)
        .bind(at.key)
        .bind(value.to_string())
        .bind(timestamp(now()))
        .execute(&mut *tx)
        .await?;
        if stored.rows_affected() == 0 {
            return Ok(XComWrite::NoDagRun);
        }
        tx.commit().await?;
        Ok(XComWrite::Stored)
    }

    /// Deletes an XCom; returns whether it existed.
    pub async fn delete_xcom(&self, at: XComKey<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM xcoms WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 \
             AND map_index = $4 AND key = $5",
        )
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

    #[tokio::test]
    async fn xcoms_round_trip() {
        for store in stores("xcoms_round_trip").await {
            let dag = format!("dag_{}", uuid::Uuid::new_v4().simple());
            let id = store
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
            let value = serde_json::json!({"rows": [1, 2, 3], "ok": true, "none": null});
            assert_eq!(store.set_xcom(at, &value).await.unwrap(), XComWrite::Stored);
            assert_eq!(store.xcom(at).await.unwrap(), Some(value));
            assert_eq!(
                store.set_xcom(at, &serde_json::Value::Null).await.unwrap(),
                XComWrite::Stored
            );
            assert_eq!(store.xcom(at).await.unwrap(), Some(serde_json::Value::Null));
            let mapped = XComKey { map_index: 3, ..at };
            assert_eq!(store.xcom(mapped).await.unwrap(), None);
            let other_run = XComKey {
                run_id: "nope",
                ..at
            };
            assert_eq!(
                store
                    .set_xcom(other_run, &serde_json::json!(1))
                    .await
                    .unwrap(),
                XComWrite::NoDagRun
            );
            // A later try of the task is told which keys to clear.
            let payload = serde_json::from_value(serde_json::json!({
                "hostname": "h", "unixname": "u", "pid": 1,
                "start_date": "2024-05-01T10:00:00Z"
            }))
            .unwrap();
            let crate::store::StartOutcome::Started(ctx) =
                store.start_task_instance(id, &payload).await.unwrap()
            else {
                panic!("not started")
            };
            assert_eq!(ctx.xcom_keys_to_clear, ["return_value"]);
            assert!(store.delete_xcom(at).await.unwrap());
            assert!(!store.delete_xcom(at).await.unwrap());
            assert_eq!(store.xcom(at).await.unwrap(), None);
        }
    }
}
