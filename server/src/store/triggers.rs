//! Airflow's `trigger` table: the rows a deferred task instance waits on, which
//! the triggerer loads (`Trigger.bulk_fetch`) and runs.

use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::sql::{Backend, sql, time_param, uuid_param};

/// A trigger row to insert.
pub(super) struct NewTrigger<'a> {
    /// The trigger's class path.
    pub(super) classpath: &'a str,
    /// `trigger.kwargs` as stored: `json.dumps` text (the triggerer reads text
    /// starting with `{` as plain JSON) or a Fernet token the worker made.
    pub(super) kwargs: &'a str,
    /// When it was created.
    pub(super) created_date: OffsetDateTime,
    /// The triggerer queue.
    pub(super) queue: Option<&'a str>,
    /// The DAG's team (`[core] multi_team`).
    pub(super) team_name: Option<&'a str>,
}

/// Inserts a trigger (no triggerer yet); returns its id.
pub(super) async fn insert_trigger(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    trigger: &NewTrigger<'_>,
) -> Result<i64, StoreError> {
    let row = sqlx::query(sql!(
        backend,
        "INSERT INTO trigger (classpath, kwargs, created_date, triggerer_id, queue, team_name) \
         VALUES ($1, $2, $3::timestamptz, NULL, $4, $5) RETURNING id"
    ))
    .bind(trigger.classpath)
    .bind(trigger.kwargs)
    .bind(time_param(trigger.created_date))
    .bind(trigger.queue)
    .bind(trigger.team_name)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get(0)?)
}

/// The team of a task instance's DAG: `task_instance -> dag -> dag_bundle_team`
/// (Airflow's `get_team_name_for_ti`).
pub(super) async fn team_name_for_ti(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(sql!(
        backend,
        "SELECT dbt.team_name FROM task_instance ti \
         JOIN dag ON dag.dag_id = ti.dag_id \
         JOIN dag_bundle_team dbt ON dbt.dag_bundle_name = dag.bundle_name \
         WHERE ti.id = $1::uuid"
    ))
    .bind(uuid_param(id))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}
