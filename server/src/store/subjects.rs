//! The task instance a token names, for the policy's ownership scopes (`ti:running`,
//! `task:self`; see `policy_core::Subjects`).

use std::time::Duration;

use policy_core::{Subject, SubjectError, SubjectFuture, SubjectStore};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{parse_opt_time, sql, uuid_param};
use super::{Store, StoreError, now};

/// The states a worker itself leaves `running` for. A task's process goes on for a while
/// after reporting one of them: the Task SDK reports success and retry *before* it runs
/// `on_success_callback`/`on_retry_callback` and listeners, for up to `[core]
/// task_success_overtime`.
const LEFT_RUNNING: [&str; 7] = [
    "success",
    "failed",
    "skipped",
    "up_for_retry",
    "up_for_reschedule",
    "deferred",
    "awaiting_input",
];

impl Store {
    /// The task instance `id` as the ownership scopes see it: its identity, and whether it is
    /// live: `running`, or it left `running` for a state the worker reports (`success`,
    /// `failed`, `skipped`, `up_for_retry`, `up_for_reschedule`, `deferred`, `awaiting_input`)
    /// at most `grace` ago.
    ///
    /// A retry moves the old id to `task_instance_history` (the live row gets a new id);
    /// the old id is then found there, and is live while the live row is `up_for_retry`
    /// since at most `grace` (its `on_retry_callback` runs after the retry was reported).
    pub async fn subject(&self, id: Uuid, grace: Duration) -> Result<Option<Subject>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state, \
             CAST(ti.end_date AS TEXT) AS end_date, CAST(ti.updated_at AS TEXT) AS updated_at, \
             0 AS archived FROM task_instance ti WHERE ti.id = $1::uuid \
             UNION ALL \
             SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state, \
             CAST(ti.end_date AS TEXT) AS end_date, CAST(ti.updated_at AS TEXT) AS updated_at, \
             1 AS archived FROM task_instance_history h JOIN task_instance ti \
             ON ti.dag_id = h.dag_id AND ti.task_id = h.task_id AND ti.run_id = h.run_id \
             AND ti.map_index = h.map_index WHERE h.task_instance_id = $1::uuid \
             ORDER BY archived LIMIT 1"
                ))
                .bind(uuid_param(id))
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state: Option<String> = row.try_get("state")?;
        let archived = row.try_get::<i64, _>("archived")? != 0;
        let changed = [
            parse_opt_time(row.try_get("end_date")?)?,
            parse_opt_time(row.try_get("updated_at")?)?,
        ]
        .into_iter()
        .flatten()
        .max();
        let recent = changed.is_some_and(|at| within(at, now(), grace));
        let live = match state.as_deref() {
            _ if archived => state.as_deref() == Some("up_for_retry") && recent,
            Some("running") => true,
            Some(s) => LEFT_RUNNING.contains(&s) && recent,
            None => false,
        };
        Ok(Some(Subject {
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            task_id: row.try_get("task_id")?,
            map_index: i64::from(row.try_get::<i32, _>("map_index")?),
            state: if archived {
                Some("archived".into())
            } else {
                state
            },
            live,
        }))
    }
}

/// Whether `at` is at most `grace` before `now` (a timestamp in the future counts).
fn within(at: OffsetDateTime, now: OffsetDateTime, grace: Duration) -> bool {
    (now - at) <= grace
}

/// The store as `policy_core::Subjects` asks it.
#[derive(Clone, Debug)]
pub struct TaskInstanceSubjects {
    store: Store,
    grace: Duration,
}

impl TaskInstanceSubjects {
    /// Task instances of `store`, live for `grace` after they stop running.
    pub fn new(store: Store, grace: Duration) -> TaskInstanceSubjects {
        TaskInstanceSubjects { store, grace }
    }
}

impl SubjectStore for TaskInstanceSubjects {
    fn resolve(&self, sub: Uuid) -> SubjectFuture {
        let (store, grace) = (self.store.clone(), self.grace);
        Box::pin(async move {
            store
                .subject(sub, grace)
                .await
                .map_err(|e| SubjectError(e.to_string()))
        })
    }
}
