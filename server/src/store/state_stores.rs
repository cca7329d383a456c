//! The task and asset state stores on Airflow's `task_state_store` and
//! `asset_state_store` tables, with the effects of Airflow's `MetastoreBackend`
//! (`airflow/state/metastore.py`): values are `json.dumps` text, writes are
//! upserts that set `updated_at`, and an asset write records who made it
//! (`last_updated_by_kind` `task` with the task instance's coordinates, or
//! `watcher` with none).

use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{sql, time_param, uuid_param};
use super::{Store, StoreError, now};

/// A task instance's coordinates: the scope of its state store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskScope {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// Map index.
    pub map_index: i64,
}

/// What a task state store operation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskStateOutcome<T> {
    /// No task instance with that id.
    NoTaskInstance,
    /// Done; for a read, the stored value if the key exists.
    Done(T),
}

/// An asset, named the way the route names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssetRef<'a> {
    /// The active asset with this name.
    Name(&'a str),
    /// The active asset with this URI.
    Uri(&'a str),
}

/// Who writes an asset state store value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssetWriter {
    /// A task instance (the token's subject).
    Task(Uuid),
    /// An asset watcher (the null subject of Airflow's in-process API).
    Watcher,
}

/// What an asset state store operation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssetStateOutcome<T> {
    /// No active asset by that name or URI.
    NoAsset,
    /// The writing task instance does not exist.
    NoTaskInstance,
    /// Done; for a read, the stored value if the key exists.
    Done(T),
}

impl Store {
    async fn task_scope(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
    ) -> Result<Option<TaskScope>, StoreError> {
        let row = sqlx::query(sql!(
            self.backend,
            "SELECT dag_id, run_id, task_id, map_index FROM task_instance WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok(TaskScope {
                dag_id: row.try_get("dag_id")?,
                run_id: row.try_get("run_id")?,
                task_id: row.try_get("task_id")?,
                map_index: row.try_get("map_index")?,
            })
        })
        .transpose()
    }

    /// Reads a task state store value (JSON text); expiry is not checked, as in Airflow.
    pub async fn task_state(
        &self,
        id: Uuid,
        key: &str,
    ) -> Result<TaskStateOutcome<Option<String>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some(scope) = self.task_scope(&mut conn, id).await? else {
            return Ok(TaskStateOutcome::NoTaskInstance);
        };
        let value = sqlx::query(sql!(
            self.backend,
            "SELECT value FROM task_state_store WHERE dag_id = $1 AND run_id = $2 \
             AND task_id = $3 AND map_index = $4 AND key = $5"
        ))
        .bind(&scope.dag_id)
        .bind(&scope.run_id)
        .bind(&scope.task_id)
        .bind(scope.map_index)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get::<String, _>("value"))
        .transpose()?;
        Ok(TaskStateOutcome::Done(value))
    }

    /// Creates or replaces a task state store value (`value` is the JSON text to store).
    pub async fn put_task_state(
        &self,
        id: Uuid,
        key: &str,
        value: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<TaskStateOutcome<()>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(scope) = self.task_scope(&mut tx, id).await? else {
            return Ok(TaskStateOutcome::NoTaskInstance);
        };
        let dag_run_id: Option<i64> = sqlx::query(sql!(
            self.backend,
            "SELECT id FROM dag_run WHERE dag_id = $1 AND run_id = $2"
        ))
        .bind(&scope.dag_id)
        .bind(&scope.run_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        // Airflow raises (a 500) here; a task instance always has its run
        // (a foreign key), so this is a row deleted under us.
        let Some(dag_run_id) = dag_run_id else {
            return Ok(TaskStateOutcome::NoTaskInstance);
        };
        sqlx::query(sql!(
            self.backend,
            "INSERT INTO task_state_store (dag_run_id, dag_id, run_id, task_id, map_index, key, \
             value, updated_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, $9::timestamptz) \
             ON CONFLICT (dag_run_id, task_id, map_index, key) DO UPDATE SET \
             value = excluded.value, updated_at = excluded.updated_at, \
             expires_at = excluded.expires_at"
        ))
        .bind(dag_run_id)
        .bind(&scope.dag_id)
        .bind(&scope.run_id)
        .bind(&scope.task_id)
        .bind(scope.map_index)
        .bind(key)
        .bind(value)
        .bind(time_param(now()))
        .bind(expires_at.map(time_param))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TaskStateOutcome::Done(()))
    }

    /// Deletes one key of a task instance's state store (`None` for every key
    /// of that map index).
    pub async fn delete_task_state(
        &self,
        id: Uuid,
        key: Option<&str>,
    ) -> Result<TaskStateOutcome<()>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(scope) = self.task_scope(&mut tx, id).await? else {
            return Ok(TaskStateOutcome::NoTaskInstance);
        };
        let delete = match key {
            Some(key) => sqlx::query(sql!(
                self.backend,
                "DELETE FROM task_state_store WHERE dag_id = $1 AND run_id = $2 \
                 AND task_id = $3 AND map_index = $4 AND key = $5"
            ))
            .bind(&scope.dag_id)
            .bind(&scope.run_id)
            .bind(&scope.task_id)
            .bind(scope.map_index)
            .bind(key),
            None => sqlx::query(sql!(
                self.backend,
                "DELETE FROM task_state_store WHERE dag_id = $1 AND run_id = $2 \
                 AND task_id = $3 AND map_index = $4"
            ))
            .bind(&scope.dag_id)
            .bind(&scope.run_id)
            .bind(&scope.task_id)
            .bind(scope.map_index),
        };
        delete.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(TaskStateOutcome::Done(()))
    }

    async fn active_asset_id(
        &self,
        conn: &mut sqlx::AnyConnection,
        asset: AssetRef<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let query = match asset {
            AssetRef::Name(name) => sqlx::query(sql!(
                self.backend,
                "SELECT a.id FROM asset a WHERE a.name = $1 AND EXISTS (SELECT 1 FROM \
                 asset_active aa WHERE aa.name = a.name AND aa.uri = a.uri) LIMIT 1"
            ))
            .bind(name),
            AssetRef::Uri(uri) => sqlx::query(sql!(
                self.backend,
                "SELECT a.id FROM asset a WHERE a.uri = $1 AND EXISTS (SELECT 1 FROM \
                 asset_active aa WHERE aa.name = a.name AND aa.uri = a.uri) LIMIT 1"
            ))
            .bind(uri),
        };
        Ok(query
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?)
    }

    /// Reads an asset state store value (JSON text).
    pub async fn asset_state(
        &self,
        asset: AssetRef<'_>,
        key: &str,
    ) -> Result<AssetStateOutcome<Option<String>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some(asset_id) = self.active_asset_id(&mut conn, asset).await? else {
            return Ok(AssetStateOutcome::NoAsset);
        };
        let value = sqlx::query(sql!(
            self.backend,
            "SELECT value FROM asset_state_store WHERE asset_id = $1 AND key = $2"
        ))
        .bind(asset_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get::<String, _>("value"))
        .transpose()?;
        Ok(AssetStateOutcome::Done(value))
    }

    /// Creates or replaces an asset state store value, recording its writer.
    pub async fn put_asset_state(
        &self,
        asset: AssetRef<'_>,
        key: &str,
        value: &str,
        writer: AssetWriter,
    ) -> Result<AssetStateOutcome<()>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(asset_id) = self.active_asset_id(&mut tx, asset).await? else {
            return Ok(AssetStateOutcome::NoAsset);
        };
        let (kind, scope) = match writer {
            AssetWriter::Watcher => ("watcher", None),
            AssetWriter::Task(id) => match self.task_scope(&mut tx, id).await? {
                Some(scope) => ("task", Some(scope)),
                None => return Ok(AssetStateOutcome::NoTaskInstance),
            },
        };
        sqlx::query(sql!(
            self.backend,
            "INSERT INTO asset_state_store (asset_id, key, value, updated_at, \
             last_updated_by_kind, last_updated_by_dag_id, last_updated_by_run_id, \
             last_updated_by_task_id, last_updated_by_map_index) \
             VALUES ($1, $2, $3, $4::timestamptz, $5, $6, $7, $8, $9) \
             ON CONFLICT (asset_id, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at, last_updated_by_kind = excluded.last_updated_by_kind, \
             last_updated_by_dag_id = excluded.last_updated_by_dag_id, \
             last_updated_by_run_id = excluded.last_updated_by_run_id, \
             last_updated_by_task_id = excluded.last_updated_by_task_id, \
             last_updated_by_map_index = excluded.last_updated_by_map_index"
        ))
        .bind(asset_id)
        .bind(key)
        .bind(value)
        .bind(time_param(now()))
        .bind(kind)
        .bind(scope.as_ref().map(|s| s.dag_id.as_str()))
        .bind(scope.as_ref().map(|s| s.run_id.as_str()))
        .bind(scope.as_ref().map(|s| s.task_id.as_str()))
        .bind(scope.as_ref().map(|s| s.map_index))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AssetStateOutcome::Done(()))
    }

    /// Deletes one key of an asset's state store (`None` for every key).
    pub async fn delete_asset_state(
        &self,
        asset: AssetRef<'_>,
        key: Option<&str>,
    ) -> Result<AssetStateOutcome<()>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(asset_id) = self.active_asset_id(&mut tx, asset).await? else {
            return Ok(AssetStateOutcome::NoAsset);
        };
        let delete = match key {
            Some(key) => sqlx::query(sql!(
                self.backend,
                "DELETE FROM asset_state_store WHERE asset_id = $1 AND key = $2"
            ))
            .bind(asset_id)
            .bind(key),
            None => sqlx::query(sql!(
                self.backend,
                "DELETE FROM asset_state_store WHERE asset_id = $1"
            ))
            .bind(asset_id),
        };
        delete.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(AssetStateOutcome::Done(()))
    }
}
