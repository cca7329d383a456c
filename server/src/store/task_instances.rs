//! Task instances on Airflow's `task_instance`, `dag_run`, `task_instance_history`,
//! `task_reschedule` and `log` tables: creation (`ti create`) and the state machine
//! of `/run` and `/state`, with the database effects Airflow 3.3.2's Execution API
//! has (`airflow/api_fastapi/execution_api/routes/task_instances.py`).

use sqlx::Row as _;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{
    Backend, json_or_none, parse_opt_time, parse_time, parse_uuid, sql, time_param, uuid_param,
};
use super::{Store, StoreError, TiState, now};

/// A task instance to create in state `queued`, with its DAG and DAG run when
/// they are new, as the scheduler would have written them for a manual run.
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
    /// Airflow's `max_tries` (the task's `retries`).
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
pub struct TaskInstance {
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
    /// State; `None` is Airflow's "no status".
    pub state: Option<TiState>,
    /// Host given to `/run`.
    pub hostname: Option<String>,
    /// Unix user given to `/run`.
    pub unixname: Option<String>,
    /// Pid given to `/run`.
    pub pid: Option<i64>,
    /// When the task started.
    pub start_date: Option<OffsetDateTime>,
    /// When the task ended.
    pub end_date: Option<OffsetDateTime>,
    /// Seconds between start and end.
    pub duration: Option<f64>,
    /// Last heartbeat (or start) time.
    pub last_heartbeat_at: Option<OffsetDateTime>,
    /// Rendered map index.
    pub rendered_map_index: Option<String>,
}

/// `/run`'s request, as the store needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartRequest {
    /// Host the task runs on.
    pub hostname: String,
    /// Unix user it runs as.
    pub unixname: String,
    /// Process id of the task runner.
    pub pid: i64,
    /// When it started.
    pub start_date: OffsetDateTime,
}

/// A DAG run as stored (`dag_run`).
#[derive(Clone, Debug, PartialEq)]
pub struct DagRun {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Logical date.
    pub logical_date: Option<OffsetDateTime>,
    /// Start of the data interval.
    pub data_interval_start: Option<OffsetDateTime>,
    /// End of the data interval.
    pub data_interval_end: Option<OffsetDateTime>,
    /// Earliest time the run may start.
    pub run_after: OffsetDateTime,
    /// When the run started.
    pub start_date: Option<OffsetDateTime>,
    /// When the run ended.
    pub end_date: Option<OffsetDateTime>,
    /// How often the run was cleared.
    pub clear_number: i64,
    /// `manual`, `scheduled`, `backfill`, ...
    pub run_type: String,
    /// `queued`, `running`, `success`, `failed`.
    pub state: Option<String>,
    /// The run's configuration, JSON text (`None` for SQL NULL or JSON null).
    pub conf: Option<String>,
    /// Who triggered the run.
    pub triggering_user_name: Option<String>,
    /// Partition key.
    pub partition_key: Option<String>,
    /// Partition date.
    pub partition_date: Option<OffsetDateTime>,
}

/// A task resuming after a deferral: what `/run` adds to its context.
#[derive(Clone, Debug, PartialEq)]
pub struct Resume {
    /// Method to call on resume.
    pub next_method: String,
    /// Its arguments, the stored JSON text.
    pub next_kwargs: Option<String>,
    /// The task instance's start date before this `/run`.
    pub start_date: Option<OffsetDateTime>,
}

/// What `/run` gives the worker (Airflow's `TIRunContext`, before wire shaping).
#[derive(Clone, Debug, PartialEq)]
pub struct RunContext {
    /// The task instance's DAG run.
    pub dag_run: DagRun,
    /// How often the task instance was rescheduled.
    pub task_reschedule_count: i64,
    /// Maximum number of tries.
    pub max_tries: i64,
    /// XCom keys left by an earlier try, which the worker clears.
    pub xcom_keys_to_clear: Vec<String>,
    /// Whether a failure should lead to a retry.
    pub should_retry: bool,
    /// Set when resuming from a deferral.
    pub resume: Option<Resume>,
}

/// What `/run` found.
#[derive(Clone, Debug, PartialEq)]
pub enum StartOutcome {
    /// Now running (or already running for the same host, user and pid: a retried request).
    Started(Box<RunContext>),
    /// No such task instance (or its DAG run or DAG is missing).
    NotFound,
    /// Not queued or restarting.
    InvalidState {
        /// The state it is in.
        previous_state: Option<TiState>,
    },
}

/// The states `/state` finishes a task instance in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminalState {
    /// `success`.
    Success,
    /// `failed`.
    Failed,
    /// `skipped`.
    Skipped,
    /// `removed`.
    Removed,
    /// `upstream_failed`.
    UpstreamFailed,
}

impl TerminalState {
    /// As a task-instance state.
    pub fn state(self) -> TiState {
        match self {
            TerminalState::Success => TiState::Success,
            TerminalState::Failed => TiState::Failed,
            TerminalState::Skipped => TiState::Skipped,
            TerminalState::Removed => TiState::Removed,
            TerminalState::UpstreamFailed => TiState::UpstreamFailed,
        }
    }
}

/// A `/state` request, as the store needs it. `rendered_map_index: None` means
/// the field was absent (nothing written); `Some(None)` writes NULL.
#[derive(Clone, Debug, PartialEq)]
pub enum StateChange {
    /// A terminal state.
    Terminal {
        /// Which.
        state: TerminalState,
        /// When the task ended.
        end_date: OffsetDateTime,
        /// Rendered map index to write.
        rendered_map_index: Option<Option<String>>,
    },
    /// `up_for_retry`: the try is archived to `task_instance_history` and the
    /// live row gets a new id, as Airflow does.
    Retry {
        /// When the try ended.
        end_date: OffsetDateTime,
        /// Rendered map index to write.
        rendered_map_index: Option<Option<String>>,
        /// Override of the task's retry delay.
        retry_delay_seconds: Option<f64>,
        /// Why (kept to 500 characters).
        retry_reason: Option<String>,
    },
    /// `up_for_reschedule`: a `task_reschedule` row.
    Reschedule {
        /// When the task should run again.
        reschedule_date: OffsetDateTime,
        /// When this try ended.
        end_date: OffsetDateTime,
    },
    /// A valid request for a state this server does not implement yet.
    Unsupported(TiState),
}

impl StateChange {
    /// The state asked for.
    pub fn target(&self) -> TiState {
        match self {
            StateChange::Terminal { state, .. } => state.state(),
            StateChange::Retry { .. } => TiState::UpForRetry,
            StateChange::Reschedule { .. } => TiState::UpForReschedule,
            StateChange::Unsupported(state) => *state,
        }
    }
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
        previous_state: Option<TiState>,
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
    /// The id is an earlier try's, archived in `task_instance_history` (410).
    Archived,
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
        state: Option<TiState>,
    },
}

/// The columns [`ti_from_row`] reads, after `SELECT` (a macro, so that queries
/// can `concat!` it into one literal).
macro_rules! ti_columns {
    () => {
        "CAST(id AS TEXT) AS id, dag_id, run_id, task_id, map_index, try_number, max_tries, \
         state, hostname, unixname, pid, CAST(start_date AS TEXT) AS start_date, \
         CAST(end_date AS TEXT) AS end_date, duration, \
         CAST(last_heartbeat_at AS TEXT) AS last_heartbeat_at, rendered_map_index"
    };
}
pub(super) use ti_columns;

pub(super) fn ti_from_row(row: &AnyRow) -> Result<TaskInstance, StoreError> {
    Ok(TaskInstance {
        id: parse_uuid(&row.try_get::<String, _>("id")?)?,
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        map_index: row.try_get("map_index")?,
        try_number: row.try_get("try_number")?,
        max_tries: row.try_get("max_tries")?,
        state: parse_state(row.try_get("state")?)?,
        hostname: row.try_get("hostname")?,
        unixname: row.try_get("unixname")?,
        pid: row.try_get("pid")?,
        start_date: parse_opt_time(row.try_get("start_date")?)?,
        end_date: parse_opt_time(row.try_get("end_date")?)?,
        duration: row.try_get("duration")?,
        last_heartbeat_at: parse_opt_time(row.try_get("last_heartbeat_at")?)?,
        rendered_map_index: row.try_get("rendered_map_index")?,
    })
}

pub(super) fn parse_state(state: Option<String>) -> Result<Option<TiState>, StoreError> {
    state
        .map(|s| {
            s.parse()
                .map_err(|e: super::UnknownState| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
}

/// The columns [`dag_run_from_row`] reads.
macro_rules! dag_run_columns {
    () => {
        "dag_id, run_id, CAST(logical_date AS TEXT) AS logical_date, \
         CAST(data_interval_start AS TEXT) AS data_interval_start, \
         CAST(data_interval_end AS TEXT) AS data_interval_end, CAST(run_after AS TEXT) AS run_after, \
         CAST(start_date AS TEXT) AS start_date, CAST(end_date AS TEXT) AS end_date, clear_number, \
         run_type, state, CAST(conf AS TEXT) AS conf, triggering_user_name, partition_key, \
         CAST(partition_date AS TEXT) AS partition_date"
    };
}

fn dag_run_from_row(row: &AnyRow) -> Result<DagRun, StoreError> {
    Ok(DagRun {
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        logical_date: parse_opt_time(row.try_get("logical_date")?)?,
        data_interval_start: parse_opt_time(row.try_get("data_interval_start")?)?,
        data_interval_end: parse_opt_time(row.try_get("data_interval_end")?)?,
        run_after: parse_time(&row.try_get::<String, _>("run_after")?)?,
        start_date: parse_opt_time(row.try_get("start_date")?)?,
        end_date: parse_opt_time(row.try_get("end_date")?)?,
        clear_number: row.try_get("clear_number")?,
        run_type: row.try_get("run_type")?,
        state: row.try_get("state")?,
        conf: json_or_none(row.try_get("conf")?),
        triggering_user_name: row.try_get("triggering_user_name")?,
        partition_key: row.try_get("partition_key")?,
        partition_date: parse_opt_time(row.try_get("partition_date")?)?,
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

/// Airflow's `_is_eligible_to_retry`.
fn is_eligible_to_retry(previous: Option<TiState>, try_number: i64, max_tries: i64) -> bool {
    previous == Some(TiState::Restarting) || (max_tries != 0 && try_number <= max_tries)
}

/// JSON text is "truthy" in Python's sense (`if ti.next_kwargs:`).
fn json_truthy(text: Option<&str>) -> bool {
    match text.map(str::trim) {
        None => false,
        Some(t) => !matches!(t, "null" | "{}" | "[]" | "\"\"" | "0" | "0.0" | "false"),
    }
}

/// Python's `json.dumps({"host_name": host})`, byte for byte (`ensure_ascii`).
fn host_name_extra(hostname: Option<&str>) -> Option<String> {
    let host = hostname.filter(|h| !h.is_empty())?;
    let mut out = String::from("{\"host_name\": \"");
    for c in host.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push_str("\"}");
    Some(out)
}

/// What the `log` row of a transition records.
struct LogEvent<'a> {
    event: &'a str,
    dag_id: &'a str,
    task_id: &'a str,
    run_id: &'a str,
    map_index: i64,
    try_number: i64,
    logical_date: Option<OffsetDateTime>,
    owner: Option<&'a str>,
    hostname: Option<&'a str>,
}

/// The task instance, its run's logical date and its DAG's owners, locked for
/// the transaction (Airflow's "load and lock").
struct Locked {
    ti: TaskInstance,
    next_method: Option<String>,
    next_kwargs: Option<String>,
    logical_date: Option<OffsetDateTime>,
    owners: Option<String>,
}

impl Store {
    /// Creates a queued task instance, with its DAG (and DAG bundle) and DAG run
    /// when new; returns its id (a UUID v7, as Airflow makes them).
    pub async fn create_task_instance(&self, new: &NewTaskInstance) -> Result<Uuid, StoreError> {
        let now = now();
        let stamp = time_param(now);
        let run_id = match &new.run_id {
            Some(run_id) => run_id.clone(),
            None => format!("manual__{}", airflow_run_stamp(now)),
        };
        let id = Uuid::now_v7();
        let b = self.backend;
        let mut tx = self.begin_write().await?;
        sqlx::query(sql!(
            b,
            "INSERT INTO dag_bundle (name, active) VALUES ('dags-folder', true) \
             ON CONFLICT (name) DO NOTHING"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(sql!(
            b,
            "INSERT INTO dag (dag_id, is_paused, is_stale, bundle_name, timetable_type, \
             partition_mapper_info, max_active_tasks, max_active_runs, \
             max_consecutive_failed_dag_runs, has_task_concurrency_limits, owners, fileloc) \
             VALUES ($1, false, false, 'dags-folder', '', '{}'::json, 16, 16, 0, false, 'airflow', '') \
             ON CONFLICT (dag_id) DO NOTHING"
        ))
        .bind(&new.dag_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sql!(
            b,
            "INSERT INTO dag_run (dag_id, run_id, logical_date, data_interval_start, \
             data_interval_end, run_after, queued_at, run_type, triggered_by, state, clear_number, \
             conf, created_at, updated_at, span_status) \
             VALUES ($1, $2, $3::timestamptz, $3::timestamptz, $3::timestamptz, $3::timestamptz, \
             $3::timestamptz, $4, 'CLI', 'queued', 0, '{}'::jsonb, $3::timestamptz, \
             $3::timestamptz, 'not_started') \
             ON CONFLICT (dag_id, run_id) DO NOTHING"
        ))
        .bind(&new.dag_id)
        .bind(&run_id)
        .bind(&stamp)
        .bind(run_type_of(&run_id))
        .execute(&mut *tx)
        .await?;
        let exists: i64 = sqlx::query(sql!(
            b,
            "SELECT COUNT(*) FROM task_instance WHERE dag_id = $1 AND run_id = $2 \
             AND task_id = $3 AND map_index = $4"
        ))
        .bind(&new.dag_id)
        .bind(&run_id)
        .bind(&new.task_id)
        .bind(new.map_index)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if exists > 0 {
            return Err(StoreError::AlreadyExists(format!(
                "task instance dag_id={} run_id={run_id} task_id={} map_index={}",
                new.dag_id, new.task_id, new.map_index
            )));
        }
        sqlx::query(sql!(
            b,
            "INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, try_number, \
             max_tries, state, pool, pool_slots, queue, priority_weight, operator, queued_dttm, \
             scheduled_dttm, updated_at, span_status, executor_config, next_kwargs) \
             VALUES ($1::uuid, $2, $3, $4, $5, 1, $6, 'queued', 'default_pool', 1, 'default', 1, \
             'EmptyOperator', $7::timestamptz, $7::timestamptz, $7::timestamptz, 'not_started', \
             NULL, 'null'::jsonb)"
        ))
        .bind(uuid_param(id))
        .bind(&new.task_id)
        .bind(&new.dag_id)
        .bind(&run_id)
        .bind(new.map_index)
        .bind(new.max_tries)
        .bind(&stamp)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Reads one task instance.
    pub async fn task_instance(&self, id: Uuid) -> Result<Option<TaskInstance>, StoreError> {
        let row = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                ti_columns!(),
                " FROM task_instance WHERE id = $1::uuid"
            )
        ))
        .bind(uuid_param(id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ti_from_row).transpose()
    }

    /// Loads and locks a task instance with its run's logical date and DAG's owners.
    async fn lock(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
    ) -> Result<Option<Locked>, StoreError> {
        let row = sqlx::query(sql!(
            self.backend,
            "SELECT CAST(ti.id AS TEXT) AS id, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, \
             ti.try_number, ti.max_tries, ti.state, ti.hostname, ti.unixname, ti.pid, \
             CAST(ti.start_date AS TEXT) AS start_date, CAST(ti.end_date AS TEXT) AS end_date, \
             ti.duration, CAST(ti.last_heartbeat_at AS TEXT) AS last_heartbeat_at, \
             ti.rendered_map_index, ti.next_method, CAST(ti.next_kwargs AS TEXT) AS next_kwargs, \
             CAST(dr.logical_date AS TEXT) AS logical_date, dag.owners \
             FROM task_instance ti \
             JOIN dag_run dr ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id \
             JOIN dag ON ti.dag_id = dag.dag_id \
             WHERE ti.id = $1::uuid FOR UPDATE OF ti"
        ))
        .bind(uuid_param(id))
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Locked {
            ti: ti_from_row(&row)?,
            next_method: row.try_get("next_method")?,
            next_kwargs: row.try_get("next_kwargs")?,
            logical_date: parse_opt_time(row.try_get("logical_date")?)?,
            owners: row.try_get("owners")?,
        }))
    }

    async fn insert_log(
        &self,
        conn: &mut sqlx::AnyConnection,
        log: &LogEvent<'_>,
    ) -> Result<(), StoreError> {
        sqlx::query(sql!(
            self.backend,
            "INSERT INTO log (dttm, dag_id, task_id, map_index, event, logical_date, run_id, \
             owner, owner_display_name, extra, try_number) \
             VALUES ($1::timestamptz, $2, $3, $4, $5, $6::timestamptz, $7, $8, NULL, $9, $10)"
        ))
        .bind(time_param(now()))
        .bind(log.dag_id)
        .bind(log.task_id)
        .bind(log.map_index)
        .bind(log.event)
        .bind(log.logical_date.map(time_param))
        .bind(log.run_id)
        .bind(log.owner)
        .bind(host_name_extra(log.hostname))
        .bind(log.try_number)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// `/run`: queued (or restarting) -> running, and the run context the worker
    /// needs. A retried request from the same worker (same host, user and pid)
    /// gets the context again.
    pub async fn start_task_instance(
        &self,
        id: Uuid,
        request: &StartRequest,
    ) -> Result<StartOutcome, StoreError> {
        let b = self.backend;
        let mut tx = self.begin_write().await?;
        let Some(locked) = self.lock(&mut tx, id).await? else {
            return Ok(StartOutcome::NotFound);
        };
        let ti = &locked.ti;
        let duplicate = ti.state == Some(TiState::Running)
            && ti.hostname.as_deref() == Some(request.hostname.as_str())
            && ti.unixname.as_deref() == Some(request.unixname.as_str())
            && ti.pid == Some(request.pid);
        if !duplicate {
            if !matches!(ti.state, Some(TiState::Queued | TiState::Restarting)) {
                return Ok(StartOutcome::InvalidState {
                    previous_state: ti.state,
                });
            }
            self.insert_log(
                &mut tx,
                &LogEvent {
                    event: "running",
                    dag_id: &ti.dag_id,
                    task_id: &ti.task_id,
                    run_id: &ti.run_id,
                    map_index: ti.map_index,
                    try_number: ti.try_number,
                    logical_date: locked.logical_date,
                    owner: locked.owners.as_deref(),
                    hostname: Some(&request.hostname),
                },
            )
            .await?;
        }
        // Resuming from a deferral keeps the original start date.
        let resuming = json_truthy(locked.next_kwargs.as_deref());
        let stamp = time_param(now());
        sqlx::query(sql!(
            b,
            "UPDATE task_instance SET start_date = CASE WHEN $2 THEN start_date \
             ELSE $3::timestamptz END, state = 'running', hostname = $4, unixname = $5, pid = $6, \
             end_date = NULL, last_heartbeat_at = $7::timestamptz, retry_delay_override = NULL, \
             retry_reason = NULL, updated_at = $7::timestamptz WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .bind(resuming)
        .bind(time_param(request.start_date))
        .bind(&request.hostname)
        .bind(&request.unixname)
        .bind(request.pid)
        .bind(&stamp)
        .execute(&mut *tx)
        .await?;
        let dag_run = sqlx::query(concat!(
            "SELECT ",
            dag_run_columns!(),
            " FROM dag_run WHERE dag_id = $1 AND run_id = $2"
        ))
        .bind(&ti.dag_id)
        .bind(&ti.run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(dag_run) = dag_run else {
            return Ok(StartOutcome::NotFound);
        };
        let dag_run = dag_run_from_row(&dag_run)?;
        let xcom_keys_to_clear: Vec<String> = if locked.next_method.is_some() {
            Vec::new()
        } else {
            sqlx::query(
                "SELECT key FROM xcom WHERE dag_id = $1 AND task_id = $2 AND run_id = $3 \
                 AND ($4 < 0 OR map_index = $4)",
            )
            .bind(&ti.dag_id)
            .bind(&ti.task_id)
            .bind(&ti.run_id)
            .bind(ti.map_index)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?
        };
        let task_reschedule_count: i64 = sqlx::query(sql!(
            b,
            "SELECT COUNT(id) FROM task_reschedule WHERE ti_id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        let resume = locked.next_method.clone().map(|next_method| Resume {
            next_method,
            next_kwargs: locked.next_kwargs.clone(),
            start_date: ti.start_date,
        });
        Ok(StartOutcome::Started(Box::new(RunContext {
            dag_run,
            task_reschedule_count,
            max_tries: ti.max_tries,
            xcom_keys_to_clear,
            should_retry: is_eligible_to_retry(ti.state, ti.try_number, ti.max_tries),
            resume,
        })))
    }

    /// `/state`: running -> the requested state, with Airflow's database effects.
    pub async fn update_task_instance_state(
        &self,
        id: Uuid,
        change: &StateChange,
    ) -> Result<StateOutcome, StoreError> {
        let target = change.target();
        let mut tx = self.begin_write().await?;
        let Some(locked) = self.lock(&mut tx, id).await? else {
            return Ok(StateOutcome::NotFound);
        };
        let ti = &locked.ti;
        if ti.state == Some(target) {
            return Ok(StateOutcome::AlreadyInState);
        }
        if ti.state != Some(TiState::Running) {
            return Ok(StateOutcome::NotRunning {
                previous_state: ti.state,
            });
        }
        let stamp = time_param(now());
        match change {
            StateChange::Terminal {
                end_date,
                rendered_map_index,
                ..
            } => {
                self.finish_try(&mut tx, id, target, *end_date, rendered_map_index, &stamp)
                    .await?;
            }
            StateChange::Retry {
                end_date,
                rendered_map_index,
                retry_delay_seconds,
                retry_reason,
            } => {
                self.finish_try(&mut tx, id, target, *end_date, rendered_map_index, &stamp)
                    .await?;
                let reason: Option<String> =
                    retry_reason.as_ref().map(|r| r.chars().take(500).collect());
                sqlx::query(sql!(
                    self.backend,
                    "UPDATE task_instance SET retry_delay_override = $2, retry_reason = $3 \
                     WHERE id = $1::uuid"
                ))
                .bind(uuid_param(id))
                .bind(*retry_delay_seconds)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            }
            StateChange::Reschedule {
                reschedule_date,
                end_date,
            } => {
                self.finish_try(&mut tx, id, target, *end_date, &None, &stamp)
                    .await?;
                // Airflow: `start_date` is the server's now and the duration is
                // `int((end_date - now).total_seconds())` (`models/taskreschedule.py`).
                let now = now();
                let duration = (*end_date - now).whole_seconds();
                sqlx::query(sql!(
                    self.backend,
                    "INSERT INTO task_reschedule (ti_id, start_date, end_date, duration, \
                     reschedule_date) VALUES ($1::uuid, $2::timestamptz, $3::timestamptz, $4, \
                     $5::timestamptz)"
                ))
                .bind(uuid_param(id))
                .bind(time_param(now))
                .bind(time_param(*end_date))
                .bind(duration)
                .bind(time_param(*reschedule_date))
                .execute(&mut *tx)
                .await?;
            }
            StateChange::Unsupported(_) => return Ok(StateOutcome::Unsupported),
        }
        self.insert_log(
            &mut tx,
            &LogEvent {
                event: target.as_str(),
                dag_id: &ti.dag_id,
                task_id: &ti.task_id,
                run_id: &ti.run_id,
                map_index: ti.map_index,
                try_number: ti.try_number,
                logical_date: locked.logical_date,
                owner: locked.owners.as_deref(),
                hostname: ti.hostname.as_deref(),
            },
        )
        .await?;
        if let StateChange::Retry { .. } = change {
            self.archive_try(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(StateOutcome::Updated)
    }

    /// The update every ending try gets: end date, duration (Airflow's SQL
    /// expression for the dialect), state, deferral fields cleared.
    async fn finish_try(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
        state: TiState,
        end_date: OffsetDateTime,
        rendered_map_index: &Option<Option<String>>,
        stamp: &str,
    ) -> Result<(), StoreError> {
        let query = match self.backend {
            Backend::Sqlite => {
                "UPDATE task_instance SET end_date = $2, \
                 duration = round((julianday($2) - julianday(start_date)) * 86400, 3), \
                 state = $3, next_method = NULL, next_kwargs = 'null', \
                 rendered_map_index = CASE WHEN $4 THEN $5 ELSE rendered_map_index END, \
                 updated_at = $6 WHERE id = $1"
            }
            Backend::Postgres => {
                "UPDATE task_instance SET end_date = $2::timestamptz, \
                 duration = EXTRACT(EPOCH FROM $2::timestamptz - start_date), \
                 state = $3, next_method = NULL, next_kwargs = 'null'::jsonb, \
                 rendered_map_index = CASE WHEN $4 THEN $5 ELSE rendered_map_index END, \
                 updated_at = $6::timestamptz WHERE id = $1::uuid"
            }
        };
        sqlx::query(query)
            .bind(uuid_param(id))
            .bind(time_param(end_date))
            .bind(state.as_str())
            .bind(rendered_map_index.is_some())
            .bind(rendered_map_index.clone().flatten())
            .bind(stamp)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// `up_for_retry`'s `prepare_db_for_next_try`: the try is copied to
    /// `task_instance_history` (state `failed`, as Airflow records it), its
    /// reschedules are deleted, and the live row gets a new id.
    async fn archive_try(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
    ) -> Result<(), StoreError> {
        const COLUMNS: &str = "task_id, dag_id, run_id, map_index, try_number, start_date, \
             end_date, duration, max_tries, hostname, unixname, pool, pool_slots, queue, \
             priority_weight, operator, custom_operator_name, queued_dttm, scheduled_dttm, \
             queued_by_job_id, pid, executor, executor_config, updated_at, rendered_map_index, \
             context_carrier, span_status, external_executor_id, trigger_id, trigger_timeout, \
             next_method, next_kwargs, task_display_name, dag_version_id, retry_delay_override, \
             retry_reason";
        let b = self.backend;
        let insert = format!(
            "INSERT INTO task_instance_history (task_instance_id, state, {COLUMNS}) \
             SELECT id, 'failed', {COLUMNS} FROM task_instance ti WHERE ti.id = $1{cast} \
             AND NOT EXISTS (SELECT 1 FROM task_instance_history h WHERE h.dag_id = ti.dag_id \
             AND h.task_id = ti.task_id AND h.run_id = ti.run_id AND h.map_index = ti.map_index \
             AND h.try_number = ti.try_number)",
            cast = if b == Backend::Postgres { "::uuid" } else { "" }
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(uuid_param(id))
            .execute(&mut *conn)
            .await?;
        const HITL: &str = "options, subject, body, defaults, multiple, params, assignees, \
             created_at, responded_at, responded_by, chosen_options, params_input";
        let hitl = format!(
            "INSERT INTO hitl_detail_history (ti_history_id, {HITL}) \
             SELECT ti_id, {HITL} FROM hitl_detail WHERE ti_id = $1{cast} \
             AND NOT EXISTS (SELECT 1 FROM hitl_detail_history WHERE ti_history_id = $1{cast})",
            cast = if b == Backend::Postgres { "::uuid" } else { "" }
        );
        sqlx::query(sqlx::AssertSqlSafe(hitl))
            .bind(uuid_param(id))
            .execute(&mut *conn)
            .await?;
        sqlx::query(sql!(
            b,
            "DELETE FROM task_reschedule WHERE ti_id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .execute(&mut *conn)
        .await?;
        sqlx::query(sql!(
            b,
            "UPDATE task_instance SET id = $2::uuid WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .bind(uuid_param(Uuid::now_v7()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Airflow's run-id time format: `2024-05-01T10:00:00.123456+00:00`.
fn airflow_run_stamp(t: OffsetDateTime) -> String {
    let stamp = super::timestamp(t);
    format!("{}+00:00", stamp.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests;
