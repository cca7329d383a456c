//! Task instances and their DAG runs: creation and the state machine.

use sqlx::Row as _;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Store, StoreError, now, timestamp};
use crate::models::{DagRun, TIEnterRunningPayload, TIRunContext, TIStateUpdate};

/// A task instance to create in state `queued` (its DAG run is created if new).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTaskInstance {
    /// DAG id.
    pub dag_id: String,
    /// Task id.
    pub task_id: String,
    /// Run id; `manual__<now>` when `None`.
    pub run_id: Option<String>,
    /// Map index, `-1` for an unmapped task.
    pub map_index: i64,
    /// Maximum number of tries (Airflow's `retries`).
    pub max_tries: i64,
}

impl NewTaskInstance {
    /// An unmapped task instance with no retries, in a new manual run.
    pub fn new(dag_id: impl Into<String>, task_id: impl Into<String>) -> Self {
        NewTaskInstance {
            dag_id: dag_id.into(),
            task_id: task_id.into(),
            run_id: None,
            map_index: -1,
            max_tries: 0,
        }
    }
}

/// A task instance as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInstanceRecord {
    /// Its UUID (the token `sub`).
    pub id: Uuid,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// Map index.
    pub map_index: i64,
    /// Current try.
    pub try_number: i64,
    /// Maximum number of tries.
    pub max_tries: i64,
    /// State, e.g. `queued`, `running`, `success`.
    pub state: String,
    /// Host given to `/run`.
    pub hostname: Option<String>,
    /// Unix user given to `/run`.
    pub unixname: Option<String>,
    /// Pid given to `/run`.
    pub pid: Option<i64>,
    /// Start time given to `/run`.
    pub start_date: Option<String>,
    /// End time given to `/state`.
    pub end_date: Option<String>,
    /// Last heartbeat (or start) time.
    pub last_heartbeat_at: Option<String>,
    /// Rendered map index given to `/state`.
    pub rendered_map_index: Option<String>,
}

/// What `/run` found.
#[derive(Clone, Debug, PartialEq)]
pub enum StartOutcome {
    /// Now running (or already running for the same host, user and pid: a retried request).
    Started(Box<TIRunContext>),
    /// No such task instance.
    NotFound,
    /// Not queued.
    InvalidState {
        /// The state it is in.
        previous_state: String,
    },
}

/// What `/state` found.
#[derive(Clone, Debug, PartialEq)]
pub enum StateOutcome {
    /// Moved to the requested state.
    Updated,
    /// Already in the requested state: nothing changed.
    AlreadyInState,
    /// No such task instance.
    NotFound,
    /// Not running, so it cannot be updated.
    NotRunning {
        /// The state it is in.
        previous_state: String,
    },
    /// A valid request for a transition this server does not implement.
    Unsupported,
}

/// What `/heartbeat` found.
#[derive(Clone, Debug, PartialEq)]
pub enum HeartbeatOutcome {
    /// Heartbeat recorded.
    Alive,
    /// No such task instance.
    NotFound,
    /// Running for another host or pid.
    RunningElsewhere {
        /// The host it runs on.
        hostname: Option<String>,
        /// The pid it runs as.
        pid: Option<i64>,
    },
    /// Not running any more.
    NotRunning {
        /// The state it is in.
        state: String,
    },
}

pub(super) const SELECT_TI: &str = "SELECT id, dag_id, run_id, task_id, map_index, try_number, max_tries, \
     state, hostname, unixname, pid, start_date, end_date, last_heartbeat_at, rendered_map_index \
     FROM task_instances WHERE id = $1";

pub(super) fn ti_from_row(row: &AnyRow) -> Result<TaskInstanceRecord, StoreError> {
    let id: String = row.try_get("id")?;
    Ok(TaskInstanceRecord {
        id: Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt(format!("task instance id `{id}`: {e}")))?,
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        map_index: row.try_get("map_index")?,
        try_number: row.try_get("try_number")?,
        max_tries: row.try_get("max_tries")?,
        state: row.try_get("state")?,
        hostname: row.try_get("hostname")?,
        unixname: row.try_get("unixname")?,
        pid: row.try_get("pid")?,
        start_date: row.try_get("start_date")?,
        end_date: row.try_get("end_date")?,
        last_heartbeat_at: row.try_get("last_heartbeat_at")?,
        rendered_map_index: row.try_get("rendered_map_index")?,
    })
}

fn dag_run_from_row(row: &AnyRow) -> Result<DagRun, StoreError> {
    let conf: Option<String> = row.try_get("conf")?;
    let conf = conf
        .map(|c| serde_json::from_str(&c))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("dag run conf: {e}")))?;
    Ok(DagRun {
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        logical_date: row.try_get("logical_date")?,
        data_interval_start: row.try_get("data_interval_start")?,
        data_interval_end: row.try_get("data_interval_end")?,
        run_after: row.try_get("run_after")?,
        start_date: row.try_get("start_date")?,
        end_date: row.try_get("end_date")?,
        clear_number: row.try_get("clear_number")?,
        run_type: row.try_get("run_type")?,
        state: row.try_get("state")?,
        conf,
        triggering_user_name: row.try_get("triggering_user_name")?,
        consumed_asset_events: Vec::new(),
        partition_key: None,
    })
}

/// The run type Airflow encodes in a run id's prefix (`scheduled__...`).
fn run_type_of(run_id: &str) -> &'static str {
    const TYPES: [&str; 6] = [
        "backfill",
        "scheduled",
        "manual",
        "operator_triggered",
        "asset_triggered",
        "asset_materialization",
    ];
    TYPES
        .into_iter()
        .find(|t| {
            run_id
                .strip_prefix(t)
                .is_some_and(|rest| rest.starts_with("__"))
        })
        .unwrap_or("manual")
}

/// Airflow's `should_retry`: a failure is retried while tries remain.
fn is_eligible_to_retry(try_number: i64, max_tries: i64) -> bool {
    max_tries != 0 && try_number <= max_tries
}

impl Store {
    /// Creates a queued task instance (and its DAG run if new); returns its id.
    pub async fn create_task_instance(&self, new: &NewTaskInstance) -> Result<Uuid, StoreError> {
        let now = now();
        let stamp = timestamp(now);
        let run_id = match &new.run_id {
            Some(run_id) => run_id.clone(),
            None => format!("manual__{}", airflow_run_stamp(now)),
        };
        let id = Uuid::new_v4();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO dag_runs (dag_id, run_id, logical_date, run_after, run_type, state, \
             clear_number, created_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6) \
             ON CONFLICT (dag_id, run_id) DO NOTHING",
        )
        .bind(&new.dag_id)
        .bind(&run_id)
        .bind(&stamp)
        .bind(&stamp)
        .bind(run_type_of(&run_id))
        .bind(&stamp)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO task_instances (id, dag_id, run_id, task_id, map_index, try_number, \
             max_tries, state, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, 'queued', $7) \
             ON CONFLICT (dag_id, run_id, task_id, map_index) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(&new.dag_id)
        .bind(&run_id)
        .bind(&new.task_id)
        .bind(new.map_index)
        .bind(new.max_tries)
        .bind(&stamp)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "task instance dag_id={} run_id={run_id} task_id={} map_index={}",
                new.dag_id, new.task_id, new.map_index
            )));
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Reads one task instance.
    pub async fn task_instance(&self, id: Uuid) -> Result<Option<TaskInstanceRecord>, StoreError> {
        let row = sqlx::query(SELECT_TI)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ti_from_row).transpose()
    }

    /// `/run`: queued -> running, and the run context the worker needs.
    pub async fn start_task_instance(
        &self,
        id: Uuid,
        payload: &TIEnterRunningPayload,
    ) -> Result<StartOutcome, StoreError> {
        let stamp = timestamp(now());
        let key = id.to_string();
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE task_instances SET state = 'running', hostname = $2, unixname = $3, pid = $4, \
             start_date = $5, end_date = NULL, last_heartbeat_at = $6, retry_delay_seconds = NULL, \
             retry_reason = NULL, updated_at = $6 WHERE id = $1 AND state = 'queued'",
        )
        .bind(&key)
        .bind(&payload.hostname)
        .bind(&payload.unixname)
        .bind(payload.pid)
        .bind(timestamp(payload.start_date))
        .bind(&stamp)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(SELECT_TI)
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(ti) = row.as_ref().map(ti_from_row).transpose()? else {
            return Ok(StartOutcome::NotFound);
        };
        if updated.rows_affected() == 0 {
            // A retried request from the same worker (lost response) gets the same answer.
            let same_worker = ti.state == "running"
                && ti.hostname.as_deref() == Some(payload.hostname.as_str())
                && ti.unixname.as_deref() == Some(payload.unixname.as_str())
                && ti.pid == Some(payload.pid);
            if !same_worker {
                return Ok(StartOutcome::InvalidState {
                    previous_state: ti.state,
                });
            }
        }
        sqlx::query(
            "UPDATE dag_runs SET state = 'running', start_date = COALESCE(start_date, $3) \
             WHERE dag_id = $1 AND run_id = $2 AND state = 'queued'",
        )
        .bind(&ti.dag_id)
        .bind(&ti.run_id)
        .bind(&stamp)
        .execute(&mut *tx)
        .await?;
        let dag_run = sqlx::query("SELECT * FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
            .bind(&ti.dag_id)
            .bind(&ti.run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "dag run dag_id={} run_id={} of task instance {id} is missing",
                    ti.dag_id, ti.run_id
                ))
            })?;
        let dag_run = dag_run_from_row(&dag_run)?;
        let xcom_keys: Vec<String> = if ti.map_index < 0 {
            sqlx::query(
                "SELECT DISTINCT key FROM xcoms WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 \
                 ORDER BY key",
            )
            .bind(&ti.dag_id)
            .bind(&ti.run_id)
            .bind(&ti.task_id)
            .fetch_all(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "SELECT DISTINCT key FROM xcoms WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 \
                 AND map_index = $4 ORDER BY key",
            )
            .bind(&ti.dag_id)
            .bind(&ti.run_id)
            .bind(&ti.task_id)
            .bind(ti.map_index)
            .fetch_all(&mut *tx)
            .await?
        }
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
        let task_reschedule_count: i64 =
            sqlx::query("SELECT COUNT(*) FROM task_reschedules WHERE ti_id = $1")
                .bind(&key)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        tx.commit().await?;
        Ok(StartOutcome::Started(Box::new(TIRunContext {
            dag_run,
            task_reschedule_count,
            max_tries: ti.max_tries,
            variables: Vec::new(),
            connections: Vec::new(),
            xcom_keys_to_clear: xcom_keys,
            should_retry: is_eligible_to_retry(ti.try_number, ti.max_tries),
        })))
    }

    /// `/state`: running -> the requested state.
    pub async fn update_task_instance_state(
        &self,
        id: Uuid,
        update: &TIStateUpdate,
    ) -> Result<StateOutcome, StoreError> {
        let stamp = timestamp(now());
        let key = id.to_string();
        let target = update.state();
        let mut tx = self.begin_write().await?;
        let updated = match update {
            TIStateUpdate::Success(p) => {
                self.finish(
                    &mut tx,
                    &key,
                    target,
                    p.end_date,
                    p.rendered_map_index.as_deref(),
                    &stamp,
                )
                .await?
            }
            TIStateUpdate::Failed(p)
            | TIStateUpdate::Skipped(p)
            | TIStateUpdate::Removed(p)
            | TIStateUpdate::UpstreamFailed(p) => {
                self.finish(
                    &mut tx,
                    &key,
                    target,
                    p.end_date,
                    p.rendered_map_index.as_deref(),
                    &stamp,
                )
                .await?
            }
            TIStateUpdate::UpForRetry(p) => {
                let reason: Option<String> = p
                    .retry_reason
                    .as_ref()
                    .map(|r| r.chars().take(500).collect());
                sqlx::query(
                    "UPDATE task_instances SET state = 'up_for_retry', end_date = $2, \
                     rendered_map_index = COALESCE($3, rendered_map_index), \
                     retry_delay_seconds = $4, retry_reason = $5, updated_at = $6 \
                     WHERE id = $1 AND state = 'running'",
                )
                .bind(&key)
                .bind(timestamp(p.end_date))
                .bind(p.rendered_map_index.as_deref())
                .bind(p.retry_delay_seconds)
                .bind(reason)
                .bind(&stamp)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
            TIStateUpdate::UpForReschedule(p) => {
                let updated = sqlx::query(
                    "UPDATE task_instances SET state = 'up_for_reschedule', end_date = $2, \
                     updated_at = $3 WHERE id = $1 AND state = 'running'",
                )
                .bind(&key)
                .bind(timestamp(p.end_date))
                .bind(&stamp)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if updated {
                    sqlx::query(
                        "INSERT INTO task_reschedules (id, ti_id, try_number, start_date, end_date, \
                         reschedule_date) SELECT $1, id, try_number, start_date, $2, $3 \
                         FROM task_instances WHERE id = $4",
                    )
                    .bind(Uuid::new_v4().to_string())
                    .bind(timestamp(p.end_date))
                    .bind(timestamp(p.reschedule_date))
                    .bind(&key)
                    .execute(&mut *tx)
                    .await?;
                }
                updated
            }
            TIStateUpdate::Deferred(_) | TIStateUpdate::AwaitingInput(_) => false,
        };
        if updated {
            tx.commit().await?;
            return Ok(StateOutcome::Updated);
        }
        let state: Option<String> = sqlx::query("SELECT state FROM task_instances WHERE id = $1")
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
        Ok(match state {
            None => StateOutcome::NotFound,
            Some(state) if state == target => StateOutcome::AlreadyInState,
            Some(state) if state != "running" => StateOutcome::NotRunning {
                previous_state: state,
            },
            Some(_) => StateOutcome::Unsupported,
        })
    }

    async fn finish(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        key: &str,
        state: &str,
        end_date: time::OffsetDateTime,
        rendered_map_index: Option<&str>,
        stamp: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE task_instances SET state = $2, end_date = $3, \
             rendered_map_index = COALESCE($4, rendered_map_index), updated_at = $5 \
             WHERE id = $1 AND state = 'running'",
        )
        .bind(key)
        .bind(state)
        .bind(timestamp(end_date))
        .bind(rendered_map_index)
        .bind(stamp)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1)
    }
}

/// Airflow's run-id time format: `2024-05-01T10:00:00.123456+00:00`.
fn airflow_run_stamp(t: time::OffsetDateTime) -> String {
    let stamp = timestamp(t);
    format!("{}+00:00", stamp.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{TIHeartbeatInfo, TIStateUpdate};
    use crate::store::testing::stores;

    fn unique(prefix: &str) -> String {
        format!("{prefix}_{}", Uuid::new_v4().simple())
    }

    fn running(host: &str, pid: i64) -> TIEnterRunningPayload {
        serde_json::from_value(serde_json::json!({
            "hostname": host, "unixname": "airflow", "pid": pid,
            "start_date": "2024-05-01T10:00:00+00:00"
        }))
        .unwrap()
    }

    fn state(body: serde_json::Value) -> TIStateUpdate {
        serde_json::from_value(body).unwrap()
    }

    #[tokio::test]
    async fn lifecycle() {
        for store in stores("lifecycle").await {
            let dag = unique("dag");
            let mut new = NewTaskInstance::new(&dag, "extract");
            new.max_tries = 2;
            let id = store.create_task_instance(&new).await.unwrap();
            let ti = store.task_instance(id).await.unwrap().unwrap();
            assert_eq!(ti.state, "queued");
            assert!(ti.run_id.starts_with("manual__"), "{}", ti.run_id);
            // Same identity twice is refused.
            let dup = NewTaskInstance {
                run_id: Some(ti.run_id.clone()),
                ..new.clone()
            };
            assert!(matches!(
                store.create_task_instance(&dup).await,
                Err(StoreError::AlreadyExists(_))
            ));

            let StartOutcome::Started(ctx) = store
                .start_task_instance(id, &running("h1", 7))
                .await
                .unwrap()
            else {
                panic!("not started")
            };
            assert_eq!(ctx.max_tries, 2);
            assert!(ctx.should_retry);
            assert_eq!(ctx.dag_run.dag_id, dag);
            assert_eq!(ctx.dag_run.state, "running");
            assert_eq!(ctx.dag_run.run_type, "manual");
            // The same worker retrying gets the context again; another gets 409.
            assert!(matches!(
                store
                    .start_task_instance(id, &running("h1", 7))
                    .await
                    .unwrap(),
                StartOutcome::Started(_)
            ));
            assert_eq!(
                store
                    .start_task_instance(id, &running("h2", 7))
                    .await
                    .unwrap(),
                StartOutcome::InvalidState {
                    previous_state: "running".into()
                }
            );

            let beat = |host: &str, pid| TIHeartbeatInfo {
                hostname: host.into(),
                pid,
            };
            assert_eq!(
                store.heartbeat(id, &beat("h1", 7)).await.unwrap(),
                HeartbeatOutcome::Alive
            );
            assert_eq!(
                store.heartbeat(id, &beat("h1", 8)).await.unwrap(),
                HeartbeatOutcome::RunningElsewhere {
                    hostname: Some("h1".into()),
                    pid: Some(7)
                }
            );

            let success = state(
                serde_json::json!({"state": "success", "end_date": "2024-05-01T11:00:00Z", "rendered_map_index": "a"}),
            );
            assert_eq!(
                store
                    .update_task_instance_state(id, &success)
                    .await
                    .unwrap(),
                StateOutcome::Updated
            );
            assert_eq!(
                store
                    .update_task_instance_state(id, &success)
                    .await
                    .unwrap(),
                StateOutcome::AlreadyInState
            );
            let failed =
                state(serde_json::json!({"state": "failed", "end_date": "2024-05-01T11:00:00Z"}));
            assert_eq!(
                store.update_task_instance_state(id, &failed).await.unwrap(),
                StateOutcome::NotRunning {
                    previous_state: "success".into()
                }
            );
            assert_eq!(
                store.heartbeat(id, &beat("h1", 7)).await.unwrap(),
                HeartbeatOutcome::NotRunning {
                    state: "success".into()
                }
            );
            let ti = store.task_instance(id).await.unwrap().unwrap();
            assert_eq!(ti.state, "success");
            assert_eq!(ti.end_date.as_deref(), Some("2024-05-01T11:00:00.000000Z"));
            assert_eq!(ti.rendered_map_index.as_deref(), Some("a"));
            assert_eq!(
                store
                    .start_task_instance(id, &running("h1", 7))
                    .await
                    .unwrap(),
                StartOutcome::InvalidState {
                    previous_state: "success".into()
                }
            );
        }
    }

    #[tokio::test]
    async fn unknown_task_instance() {
        for store in stores("unknown_task_instance").await {
            let id = Uuid::new_v4();
            assert_eq!(
                store
                    .start_task_instance(id, &running("h", 1))
                    .await
                    .unwrap(),
                StartOutcome::NotFound
            );
            let failed =
                state(serde_json::json!({"state": "failed", "end_date": "2024-05-01T11:00:00Z"}));
            assert_eq!(
                store.update_task_instance_state(id, &failed).await.unwrap(),
                StateOutcome::NotFound
            );
            let info = TIHeartbeatInfo {
                hostname: "h".into(),
                pid: 1,
            };
            assert_eq!(
                store.heartbeat(id, &info).await.unwrap(),
                HeartbeatOutcome::NotFound
            );
            assert_eq!(store.task_instance(id).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn retry_reschedule_and_unsupported() {
        for store in stores("retry_reschedule_and_unsupported").await {
            let dag = unique("dag");
            let a = store
                .create_task_instance(&NewTaskInstance::new(&dag, "a"))
                .await
                .unwrap();
            let b = store
                .create_task_instance(&NewTaskInstance::new(&dag, "b"))
                .await
                .unwrap();
            let c = store
                .create_task_instance(&NewTaskInstance::new(&dag, "c"))
                .await
                .unwrap();
            for id in [a, b, c] {
                assert!(matches!(
                    store.start_task_instance(id, &running("h", 1)).await.unwrap(),
                    StartOutcome::Started(ctx) if !ctx.should_retry
                ));
            }
            let retry = state(
                serde_json::json!({"state": "up_for_retry", "end_date": "2024-05-01T11:00:00Z", "retry_delay_seconds": 1.5, "retry_reason": "flaky"}),
            );
            assert_eq!(
                store.update_task_instance_state(a, &retry).await.unwrap(),
                StateOutcome::Updated
            );
            assert_eq!(
                store.task_instance(a).await.unwrap().unwrap().state,
                "up_for_retry"
            );

            let resched = state(
                serde_json::json!({"state": "up_for_reschedule", "end_date": "2024-05-01T11:00:00Z", "reschedule_date": "2024-05-01T12:00:00Z"}),
            );
            assert_eq!(
                store.update_task_instance_state(b, &resched).await.unwrap(),
                StateOutcome::Updated
            );
            assert_eq!(
                store.task_instance(b).await.unwrap().unwrap().state,
                "up_for_reschedule"
            );

            let defer = state(
                serde_json::json!({"state": "deferred", "classpath": "x.Y", "next_method": "go"}),
            );
            assert_eq!(
                store.update_task_instance_state(c, &defer).await.unwrap(),
                StateOutcome::Unsupported
            );
            assert_eq!(
                store.task_instance(c).await.unwrap().unwrap().state,
                "running"
            );
        }
    }

    #[tokio::test]
    async fn concurrent_starts_have_one_winner() {
        for store in stores("concurrent_starts_have_one_winner").await {
            let id = store
                .create_task_instance(&NewTaskInstance::new(unique("dag"), "t"))
                .await
                .unwrap();
            let runs: Vec<_> = (0..4).map(|pid| running("h", pid)).collect();
            let outcomes = futures_join_all(&store, id, &runs).await;
            let started = outcomes
                .iter()
                .filter(|o| matches!(o, StartOutcome::Started(_)))
                .count();
            assert_eq!(started, 1, "{outcomes:?}");
        }
    }

    #[tokio::test]
    async fn two_stores_on_one_sqlite_file_have_one_winner() {
        // Like the CLI and a server, or two processes, on one data directory.
        let target = crate::store::testing::temp_sqlite();
        let (a, b) = (
            Store::open(&target).await.unwrap(),
            Store::open(&target).await.unwrap(),
        );
        for round in 0..5 {
            let id = a
                .create_task_instance(&NewTaskInstance::new(unique("dag"), format!("t{round}")))
                .await
                .unwrap();
            let (run_a, run_b) = (running("a", 1), running("b", 2));
            let (one, two) = tokio::join!(
                a.start_task_instance(id, &run_a),
                b.start_task_instance(id, &run_b),
            );
            let started = [one.unwrap(), two.unwrap()]
                .iter()
                .filter(|o| matches!(o, StartOutcome::Started(_)))
                .count();
            assert_eq!(started, 1);
            assert_eq!(b.task_instance(id).await.unwrap().unwrap().state, "running");
        }
    }

    async fn futures_join_all(
        store: &Store,
        id: Uuid,
        runs: &[TIEnterRunningPayload],
    ) -> Vec<StartOutcome> {
        let (a, b, c, d) = tokio::join!(
            store.start_task_instance(id, &runs[0]),
            store.start_task_instance(id, &runs[1]),
            store.start_task_instance(id, &runs[2]),
            store.start_task_instance(id, &runs[3]),
        );
        vec![a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()]
    }

    #[test]
    fn run_types() {
        assert_eq!(run_type_of("scheduled__2024"), "scheduled");
        assert_eq!(run_type_of("asset_triggered__x"), "asset_triggered");
        assert_eq!(run_type_of("my-run"), "manual");
    }
}
