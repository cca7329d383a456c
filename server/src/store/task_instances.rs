//! Task instances on Airflow's `task_instance`, `dag_run`, `task_instance_history`,
//! `task_reschedule` and `log` tables: creation (`ti create`) and the state machine
//! of `/run` and `/state`, with the database effects Airflow 3.3.2's Execution API
//! has (`airflow/api_fastapi/execution_api/routes/task_instances.py`).

use sqlx::Row as _;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::asset_changes::AssetOutlets;
use super::pyjson::{PyJson, python_float};
use super::sql::{
    Backend, flag, json_or_none, parse_opt_time, parse_time, parse_uuid, sql, time_param,
    uuid_param,
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
    /// The task instance's task id (its DAG and run ids are the run's).
    pub task_id: String,
    /// The task instance's map index (`-1` when not mapped).
    pub map_index: i64,
    /// The asset events that DAG run consumed, oldest first.
    pub consumed_asset_events: Vec<super::ConsumedAssetEvent>,
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
    /// A terminal state (for `success` without asset outlets).
    Terminal {
        /// Which.
        state: TerminalState,
        /// When the task ended.
        end_date: OffsetDateTime,
        /// Rendered map index to write.
        rendered_map_index: Option<Option<String>>,
    },
    /// `success`, with the asset events the task emitted.
    Success {
        /// When the task ended.
        end_date: OffsetDateTime,
        /// Rendered map index to write.
        rendered_map_index: Option<Option<String>>,
        /// The task's outlets and outlet events.
        outlets: AssetOutlets,
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
    /// `deferred`: a `trigger` row for the triggerer.
    Deferred(Deferral),
    /// `awaiting_input`: parked for a human (no trigger).
    AwaitingInput {
        /// Response deadline, relative to now.
        timeout: Option<time::Duration>,
        /// Method to resume with.
        next_method: String,
        /// Its arguments (serde-serialized by the worker).
        next_kwargs: PyJson,
    },
    /// `scheduled`, `queued` or `restarting`: valid requests Airflow's handler
    /// has no branch for, so they end the task instance as `failed`.
    Intermediate(TiState),
}

/// What a `deferred` request carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Deferral {
    /// The trigger's class path.
    pub classpath: String,
    /// Its arguments: a JSON object stored as `json.dumps` text, or a string the
    /// client encrypted, stored verbatim.
    pub trigger_kwargs: TriggerKwargs,
    /// How long the trigger may run, relative to now.
    pub trigger_timeout: Option<time::Duration>,
    /// The triggerer queue.
    pub queue: Option<String>,
    /// Method to resume with.
    pub next_method: String,
    /// Its arguments (serde-serialized by the worker).
    pub next_kwargs: PyJson,
}

/// `trigger_kwargs` of a deferral.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerKwargs {
    /// A JSON object.
    Json(PyJson),
    /// A string (the client encrypted it).
    Encrypted(String),
}

impl StateChange {
    /// The state asked for.
    pub fn target(&self) -> TiState {
        match self {
            StateChange::Terminal { state, .. } => state.state(),
            StateChange::Success { .. } => TiState::Success,
            StateChange::Retry { .. } => TiState::UpForRetry,
            StateChange::Reschedule { .. } => TiState::UpForReschedule,
            StateChange::Deferred(_) => TiState::Deferred,
            StateChange::AwaitingInput { .. } => TiState::AwaitingInput,
            StateChange::Intermediate(state) => *state,
        }
    }

    /// A finish with no effect beyond the task instance's row and its log
    /// row: a terminal state other than `failed` (whose DAG may fail fast), or
    /// `success` with no asset outlets. Its state, end date and rendered map
    /// index.
    fn plain_finish(&self) -> Option<(TiState, OffsetDateTime, &Option<Option<String>>)> {
        match self {
            StateChange::Terminal {
                state,
                end_date,
                rendered_map_index,
            } if *state != TerminalState::Failed => {
                Some((state.state(), *end_date, rendered_map_index))
            }
            StateChange::Success {
                end_date,
                rendered_map_index,
                outlets,
            } if outlets.task_outlets.is_empty() && outlets.outlet_events.is_empty() => {
                Some((TiState::Success, *end_date, rendered_map_index))
            }
            _ => None,
        }
    }
}

/// What `/state` found.
#[derive(Clone, Debug, PartialEq)]
pub enum StateOutcome {
    /// Moved to the requested state (or, as Airflow does, to `failed` for an
    /// intermediate state, or to `scheduled` for an already answered input request).
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
    /// The request cannot be carried out; nothing changed (422 with this reason and message).
    Refused {
        /// Airflow's reason (`invalid_partition_key`, ...).
        reason: &'static str,
        /// What is wrong.
        message: String,
    },
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

pub(super) use dag_run_columns;

pub(super) fn dag_run_from_row(row: &AnyRow) -> Result<DagRun, StoreError> {
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

/// JSON text is "truthy" in Python's sense (`if ti.next_kwargs:`, on the
/// decoded value): not null, false, zero, nor an empty string, list or object.
/// Text that is not JSON counts as a value (truthy).
fn json_truthy(text: Option<&str>) -> bool {
    use serde_json::Value;
    let Some(text) = text else { return false };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) => false,
        Ok(Value::Bool(b)) => b,
        Ok(Value::Number(n)) => n.as_f64() != Some(0.0),
        Ok(Value::String(s)) => !s.is_empty(),
        Ok(Value::Array(a)) => !a.is_empty(),
        Ok(Value::Object(o)) => !o.is_empty(),
        Err(_) => true,
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

/// A datetime as `airflow.sdk.serde.serialize` encodes an aware UTC one read
/// from the database (`UtcDateTime` gives it pendulum's UTC timezone).
fn serde_datetime(t: OffsetDateTime) -> PyJson {
    let micros = (t - OffsetDateTime::UNIX_EPOCH).whole_microseconds();
    let tz = PyJson::Object(vec![
        ("__classname__".into(), PyJson::Str("builtins.tuple".into())),
        ("__version__".into(), PyJson::Number("1".into())),
        (
            "__data__".into(),
            PyJson::Array(vec![
                PyJson::Str("UTC".into()),
                PyJson::Str("pendulum.tz.timezone.Timezone".into()),
                PyJson::Number("1".into()),
                PyJson::Bool(true),
            ]),
        ),
    ]);
    PyJson::Object(vec![
        (
            "__classname__".into(),
            PyJson::Str("datetime.datetime".into()),
        ),
        ("__version__".into(), PyJson::Number("2".into())),
        (
            "__data__".into(),
            PyJson::Object(vec![
                (
                    "timestamp".into(),
                    PyJson::Number(python_float(micros as f64 / 1e6)),
                ),
                ("tz".into(), tz),
            ]),
        ),
    ])
}

/// What the `log` row of a transition records.
pub(super) struct LogEvent<'a> {
    pub(super) event: &'a str,
    pub(super) dag_id: &'a str,
    pub(super) task_id: &'a str,
    pub(super) run_id: &'a str,
    pub(super) map_index: i64,
    pub(super) try_number: i64,
    pub(super) logical_date: Option<OffsetDateTime>,
    pub(super) owner: Option<&'a str>,
    /// The `extra` text (`{"host_name": ...}` for transitions).
    pub(super) extra: Option<String>,
}

/// Binds the ten parameters of a `log` row's INSERT, in [`Store::insert_log`]'s
/// order (the event's time is now).
fn bind_log<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    log: &'q LogEvent<'q>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(time_param(now()))
        .bind(log.dag_id)
        .bind(log.task_id)
        .bind(log.map_index)
        .bind(log.event)
        .bind(log.logical_date.map(time_param))
        .bind(log.run_id)
        .bind(log.owner)
        .bind(log.extra.as_deref())
        .bind(log.try_number)
}

/// PostgreSQL: `statement` (parameters `$1` to `$params`) with a `log` row's
/// INSERT in front of it as a CTE, whose parameters follow (bound by
/// [`bind_log`]): the transition and its log row in one round trip.
fn with_log_cte(statement: &str, params: usize) -> String {
    let p = |i: usize| format!("${}", params + i);
    format!(
        "WITH log_row AS (INSERT INTO log (dttm, dag_id, task_id, map_index, event, \
         logical_date, run_id, owner, owner_display_name, extra, try_number) \
         VALUES ({}::timestamptz, {}, {}, {}, {}, {}::timestamptz, {}, {}, NULL, {}, {})) {statement}",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9),
        p(10)
    )
}

/// The task-instance columns of [`Locked`], on `ti`.
macro_rules! locked_columns {
    () => {
        "CAST(ti.id AS TEXT) AS id, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, \
         ti.try_number, ti.max_tries, ti.state, ti.hostname, ti.unixname, ti.pid, \
         CAST(ti.start_date AS TEXT) AS start_date, CAST(ti.end_date AS TEXT) AS end_date, \
         ti.duration, CAST(ti.last_heartbeat_at AS TEXT) AS last_heartbeat_at, \
         ti.rendered_map_index, ti.next_method, CAST(ti.next_kwargs AS TEXT) AS next_kwargs"
    };
}

/// A transition's claim, as written for PostgreSQL (with `RETURNING` the
/// [`Locked`] row and whether its run and DAG rows exist, as the inner joins
/// of the SQLite read ask) and for SQLite. The condition names the task
/// instance's columns unqualified (SQLite's `UPDATE` has no alias here).
macro_rules! claim_texts {
    ($condition:literal) => {
        (
            concat!(
                "UPDATE task_instance AS ti SET updated_at = $2::timestamptz \
                 WHERE ti.id = $1::uuid AND ",
                $condition,
                " RETURNING ",
                locked_columns!(),
                ", (SELECT CAST(dr.logical_date AS TEXT) FROM dag_run dr \
                 WHERE dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id) AS logical_date, \
                 (SELECT dag.owners FROM dag WHERE dag.dag_id = ti.dag_id) AS owners, \
                 EXISTS (SELECT 1 FROM dag_run dr JOIN dag ON dag.dag_id = dr.dag_id \
                 WHERE dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id) AS joined"
            ),
            concat!(
                "UPDATE task_instance SET updated_at = $2 WHERE id = $1 AND ",
                $condition
            ),
        )
    };
}

/// Which transition claims the task instance (see [`Store::claim`]).
#[derive(Clone, Copy)]
enum Claiming {
    /// `/run`: queued or restarting, or running for the same worker (`$3`
    /// host, `$4` unix name, `$5` pid: a repeated request).
    Run,
    /// `/state`: running.
    State,
}

impl Claiming {
    /// The claim's text for PostgreSQL and for SQLite.
    fn texts(self) -> (&'static str, &'static str) {
        match self {
            Claiming::Run => claim_texts!(
                "(state IN ('queued', 'restarting') OR (state = 'running' \
                 AND hostname = $3 AND unixname = $4 AND pid = $5))"
            ),
            Claiming::State => claim_texts!("state = 'running'"),
        }
    }
}

/// What a transition's claim found.
enum Claim {
    /// The `UPDATE` matched nothing: no such task instance (`None`), or it
    /// may not make this transition from its state (read in the same
    /// transaction). Nothing was changed.
    Refused(Option<Option<TiState>>),
    /// Claimed, but its run or DAG row is missing: read as not found (the
    /// transaction is rolled back).
    Orphan,
    /// Claimed and locked.
    Locked(Box<Locked>),
}

/// A statement being built on the `Any` driver.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn locked_from_row(row: &AnyRow) -> Result<Locked, StoreError> {
    Ok(Locked {
        ti: ti_from_row(row)?,
        next_method: row.try_get("next_method")?,
        next_kwargs: row.try_get("next_kwargs")?,
        logical_date: parse_opt_time(row.try_get("logical_date")?)?,
        owners: row.try_get("owners")?,
    })
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

impl Locked {
    /// The `log` row of a transition of this task instance to `event`, by a
    /// worker on `host` (`{"host_name": ...}` as Airflow writes it).
    fn log_event<'a>(&'a self, event: &'a str, host: Option<&str>) -> LogEvent<'a> {
        let ti = &self.ti;
        LogEvent {
            event,
            dag_id: &ti.dag_id,
            task_id: &ti.task_id,
            run_id: &ti.run_id,
            map_index: ti.map_index,
            try_number: ti.try_number,
            logical_date: self.logical_date,
            owner: self.owners.as_deref(),
            extra: host_name_extra(host),
        }
    }
}

/// `/run` on PostgreSQL in one statement (`$1` the task instance, `$2` now,
/// `$3` host, `$4` unix name, `$5` pid, `$6` the requested start date, `$7`
/// the log row's `extra`). `old` locks the row and keeps its values before
/// the start (a concurrent change is waited for and read as committed);
/// `claimed` starts it only if it is queued or restarting, or running for
/// the same worker (a repeated request), and its run and DAG rows exist;
/// `log_row` logs a start that is not a repeat; the row then carries the
/// task instance as it was, whether it was claimed, and the run context,
/// read as Airflow reads it after the start. No row: no such task instance.
const START_POSTGRES: &str = concat!(
    "WITH old AS (SELECT id, dag_id, run_id, task_id, map_index, try_number, max_tries, state, \
     hostname, unixname, pid, start_date, next_method, next_kwargs \
     FROM task_instance WHERE id = $1::uuid FOR UPDATE), \
     eligible AS (SELECT old.state IN ('queued', 'restarting') OR (old.state = 'running' \
     AND old.hostname = $3 AND old.unixname = $4 AND old.pid = $5) AS eligible FROM old), \
     parent AS (SELECT dr.id AS dag_run_id, dr.logical_date, dag.owners FROM old \
     JOIN dag_run dr ON dr.dag_id = old.dag_id AND dr.run_id = old.run_id \
     JOIN dag ON dag.dag_id = dr.dag_id), \
     claimed AS (UPDATE task_instance AS ti SET start_date = CASE WHEN old.next_kwargs IS NULL \
     OR old.next_kwargs IN ('null'::jsonb, '{}'::jsonb, '[]'::jsonb, '\"\"'::jsonb, '0'::jsonb, \
     'false'::jsonb) THEN $6::timestamptz ELSE ti.start_date END, state = 'running', \
     hostname = $3, unixname = $4, pid = $5, end_date = NULL, \
     last_heartbeat_at = $2::timestamptz, retry_delay_override = NULL, retry_reason = NULL, \
     updated_at = $2::timestamptz FROM old, eligible, parent \
     WHERE ti.id = old.id AND eligible.eligible RETURNING ti.id), \
     log_row AS (INSERT INTO log (dttm, dag_id, task_id, map_index, event, logical_date, \
     run_id, owner, owner_display_name, extra, try_number) \
     SELECT $2::timestamptz, old.dag_id, old.task_id, old.map_index, 'running', \
     parent.logical_date, old.run_id, parent.owners, NULL, $7, old.try_number \
     FROM claimed, old, parent WHERE old.state <> 'running'), \
     run AS (SELECT id, ",
    dag_run_columns!(),
    " FROM dag_run WHERE id = (SELECT dag_run_id FROM parent)) \
     SELECT old.task_id AS ti_task_id, old.map_index AS ti_map_index, \
     old.try_number, old.max_tries, old.state AS ti_state, \
     CAST(old.start_date AS TEXT) AS ti_start_date, old.next_method, \
     CAST(old.next_kwargs AS TEXT) AS next_kwargs, \
     EXISTS (SELECT 1 FROM claimed) AS claimed, EXISTS (SELECT 1 FROM parent) AS joined, \
     COALESCE((SELECT eligible FROM eligible), false) AS eligible, run.*, \
     (SELECT COUNT(id) FROM task_reschedule WHERE ti_id = old.id) AS task_reschedule_count, \
     (SELECT CAST(json_agg(x.key) AS TEXT) FROM xcom x WHERE x.dag_id = old.dag_id \
     AND x.task_id = old.task_id AND x.run_id = old.run_id \
     AND (old.map_index < 0 OR x.map_index = old.map_index)) AS xcom_keys, \
     EXISTS (SELECT 1 FROM dagrun_asset_event dae WHERE dae.dag_run_id = run.id) \
     AS consumes_asset_events \
     FROM old LEFT JOIN run ON true"
);

/// A plain finish on PostgreSQL in one statement (see
/// [`StateChange::plain_finish`]; `$1` the task instance, `$2` the end date,
/// `$3` the state, `$4` whether `$5` is a rendered map index to write, `$6`
/// now). `old` locks the row and keeps its values before the change;
/// `claimed` ends the try if it is running, its run and DAG rows exist and
/// its host name needs no escaping beyond PostgreSQL's `to_json` (ASCII
/// without DEL: then `to_json` writes what Python's `json.dumps` does);
/// `log_row` writes the transition's log row. No row: no such task instance.
const FINISH_POSTGRES: &str = "WITH old AS (SELECT id, dag_id, run_id, task_id, map_index, \
     try_number, state, hostname, (hostname IS NULL OR (octet_length(hostname) = \
     char_length(hostname) AND strpos(hostname, chr(127)) = 0)) AS plain_host \
     FROM task_instance WHERE id = $1::uuid FOR UPDATE), \
     parent AS (SELECT dr.logical_date, dag.owners FROM old \
     JOIN dag_run dr ON dr.dag_id = old.dag_id AND dr.run_id = old.run_id \
     JOIN dag ON dag.dag_id = dr.dag_id), \
     claimed AS (UPDATE task_instance AS ti SET end_date = $2::timestamptz, \
     duration = EXTRACT(EPOCH FROM $2::timestamptz - ti.start_date), state = $3, \
     next_method = NULL, next_kwargs = 'null'::jsonb, \
     rendered_map_index = CASE WHEN $4 THEN $5 ELSE ti.rendered_map_index END, \
     updated_at = $6::timestamptz FROM old, parent \
     WHERE ti.id = old.id AND old.state = 'running' AND old.plain_host RETURNING ti.id), \
     log_row AS (INSERT INTO log (dttm, dag_id, task_id, map_index, event, logical_date, \
     run_id, owner, owner_display_name, extra, try_number) \
     SELECT $6::timestamptz, old.dag_id, old.task_id, old.map_index, $3, \
     parent.logical_date, old.run_id, parent.owners, NULL, \
     CASE WHEN old.hostname <> '' THEN '{\"host_name\": ' || CAST(to_json(old.hostname) AS TEXT) \
     || '}' END, old.try_number FROM claimed, old, parent) \
     SELECT old.state AS ti_state, old.plain_host, EXISTS (SELECT 1 FROM claimed) AS claimed, \
     EXISTS (SELECT 1 FROM parent) AS joined FROM old";

/// The task instance as `/run` found it, before it started: what the run
/// context needs of it besides the run.
struct Started {
    task_id: String,
    map_index: i64,
    state: Option<TiState>,
    try_number: i64,
    max_tries: i64,
    start_date: Option<OffsetDateTime>,
    next_method: Option<String>,
    next_kwargs: Option<String>,
}

impl Started {
    /// The run context, from `row` (the run's columns, `task_reschedule_count`
    /// and `xcom_keys`) and the run's consumed asset events.
    fn context(
        self,
        row: &AnyRow,
        consumed_asset_events: Vec<super::ConsumedAssetEvent>,
    ) -> Result<StartOutcome, StoreError> {
        let task_reschedule_count: i64 = row.try_get("task_reschedule_count")?;
        // A resumed deferral keeps its XComs.
        let xcom_keys_to_clear: Vec<String> = match row.try_get::<Option<String>, _>("xcom_keys")? {
            Some(keys) if self.next_method.is_none() => serde_json::from_str(&keys)
                .map_err(|e| StoreError::Corrupt(format!("XCom keys: {e}")))?,
            _ => Vec::new(),
        };
        let should_retry = is_eligible_to_retry(self.state, self.try_number, self.max_tries);
        let resume = self.next_method.map(|next_method| Resume {
            next_method,
            next_kwargs: self.next_kwargs,
            start_date: self.start_date,
        });
        Ok(StartOutcome::Started(Box::new(RunContext {
            dag_run: dag_run_from_row(row)?,
            task_id: self.task_id,
            map_index: self.map_index,
            consumed_asset_events,
            task_reschedule_count,
            max_tries: self.max_tries,
            xcom_keys_to_clear,
            should_retry,
            resume,
        })))
    }
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
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    concat!(
                        "SELECT ",
                        ti_columns!(),
                        " FROM task_instance WHERE id = $1::uuid"
                    )
                ))
                .bind(uuid_param(id))
            })
            .await?;
        row.as_ref().map(ti_from_row).transpose()
    }

    /// A transition's first statement: the conditional `UPDATE` `claim` (its
    /// `$1` the task instance, `$2` the time, then what `bind` adds), which
    /// changes nothing unless the task instance may make the transition, and
    /// the row it claimed, locked, with its run's logical date and its DAG's
    /// owners (Airflow's "load and lock"). On PostgreSQL one statement (the
    /// `UPDATE` locks the row and returns it); on SQLite, whose transaction
    /// holds the write lock, the `UPDATE` then the read.
    async fn claim<'q>(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
        claim: Claiming,
        bind: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> Result<Claim, StoreError> {
        let (postgres, sqlite) = claim.texts();
        let query = sqlx::query(match self.backend {
            Backend::Postgres => postgres,
            Backend::Sqlite => sqlite,
        })
        .bind(uuid_param(id));
        let query = bind(query);
        if self.backend == Backend::Postgres {
            let Some(row) = query.fetch_optional(&mut *conn).await? else {
                return self.refused(conn, id).await;
            };
            if !flag(&row, "joined")? {
                return Ok(Claim::Orphan);
            }
            return Ok(Claim::Locked(Box::new(locked_from_row(&row)?)));
        }
        if query.execute(&mut *conn).await?.rows_affected() == 0 {
            return self.refused(conn, id).await;
        }
        let row = sqlx::query(sql!(
            self.backend,
            concat!(
                "SELECT ",
                locked_columns!(),
                ", CAST(dr.logical_date AS TEXT) AS logical_date, dag.owners \
                 FROM task_instance ti \
                 JOIN dag_run dr ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id \
                 JOIN dag ON ti.dag_id = dag.dag_id \
                 WHERE ti.id = $1::uuid"
            )
        ))
        .bind(uuid_param(id))
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match row {
            Some(row) => Claim::Locked(Box::new(locked_from_row(&row)?)),
            None => Claim::Orphan,
        })
    }

    /// A refused claim, with the task instance's state if it exists.
    async fn refused(&self, conn: &mut sqlx::AnyConnection, id: Uuid) -> Result<Claim, StoreError> {
        let state: Option<Option<String>> = sqlx::query(sql!(
            self.backend,
            "SELECT state FROM task_instance WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        Ok(Claim::Refused(state.map(parse_state).transpose()?))
    }

    pub(super) async fn insert_log(
        &self,
        conn: &mut sqlx::AnyConnection,
        log: &LogEvent<'_>,
    ) -> Result<(), StoreError> {
        bind_log(
            sqlx::query(sql!(
                self.backend,
                "INSERT INTO log (dttm, dag_id, task_id, map_index, event, logical_date, run_id, \
                 owner, owner_display_name, extra, try_number) \
                 VALUES ($1::timestamptz, $2, $3, $4, $5, $6::timestamptz, $7, $8, NULL, $9, $10)"
            )),
            log,
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// `/run`: queued (or restarting) -> running, and the run context the worker
    /// needs. A retried request from the same worker (same host, user and pid)
    /// gets the context again.
    ///
    /// On PostgreSQL one autocommitted statement (`START_POSTGRES`); on SQLite
    /// a transaction holding the write lock: the claim, the start, its log row,
    /// the run's read.
    pub async fn start_task_instance(
        &self,
        id: Uuid,
        request: &StartRequest,
    ) -> Result<StartOutcome, StoreError> {
        if let Some(lane) = &self.write_lane {
            return self.start_postgres(lane, id, request).await;
        }
        let b = self.backend;
        let mut tx = self.begin_write().await?;
        // The conditional UPDATE first: the task instance is claimed only if it
        // may start; anything else changes nothing.
        let claimed = self
            .claim(&mut tx, id, Claiming::Run, |query| {
                query
                    .bind(time_param(now()))
                    .bind(&request.hostname)
                    .bind(&request.unixname)
                    .bind(request.pid)
            })
            .await?;
        let locked = match claimed {
            Claim::Locked(locked) => locked,
            Claim::Orphan => return Ok(StartOutcome::NotFound),
            Claim::Refused(state) => {
                tx.rollback().await?;
                return Ok(match state {
                    None => StartOutcome::NotFound,
                    Some(previous_state) => StartOutcome::InvalidState { previous_state },
                });
            }
        };
        let ti = &locked.ti;
        let duplicate = ti.state == Some(TiState::Running);
        if !duplicate {
            self.insert_log(
                &mut tx,
                &locked.log_event("running", Some(&request.hostname)),
            )
            .await?;
        }
        // Resuming from a deferral keeps the original start date.
        let resuming = json_truthy(locked.next_kwargs.as_deref());
        let stamp = time_param(now());
        sqlx::query(
            "UPDATE task_instance SET start_date = CASE WHEN $2 THEN start_date ELSE $3 END, \
             state = 'running', hostname = $4, unixname = $5, pid = $6, end_date = NULL, \
             last_heartbeat_at = $7, retry_delay_override = NULL, retry_reason = NULL, \
             updated_at = $7 WHERE id = $1",
        )
        .bind(uuid_param(id))
        .bind(resuming)
        .bind(time_param(request.start_date))
        .bind(&request.hostname)
        .bind(&request.unixname)
        .bind(request.pid)
        .bind(&stamp)
        .execute(&mut *tx)
        .await?;
        // The run, its task's reschedule count, the task's XCom keys and
        // whether the run consumed asset events in one statement (each as
        // Airflow reads it, in this transaction).
        let dag_run = sqlx::query(concat!(
            "SELECT ",
            dag_run_columns!(),
            ", (SELECT COUNT(id) FROM task_reschedule WHERE ti_id = $3) \
             AS task_reschedule_count, (SELECT json_group_array(x.key) FROM xcom x \
             WHERE x.dag_id = $1 AND x.task_id = $4 AND x.run_id = $2 \
             AND ($5 < 0 OR x.map_index = $5)) AS xcom_keys, \
             EXISTS (SELECT 1 FROM dagrun_asset_event dae WHERE dae.dag_run_id = dag_run.id) \
             AS consumes_asset_events \
             FROM dag_run WHERE dag_id = $1 AND run_id = $2"
        ))
        .bind(&ti.dag_id)
        .bind(&ti.run_id)
        .bind(uuid_param(id))
        .bind(&ti.task_id)
        .bind(ti.map_index)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = dag_run else {
            return Ok(StartOutcome::NotFound);
        };
        let consumed_asset_events = if flag(&row, "consumes_asset_events")? {
            super::assets::consumed_asset_events(&mut tx, b, &ti.dag_id, &ti.run_id).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        let started = Started {
            task_id: ti.task_id.clone(),
            map_index: ti.map_index,
            state: ti.state,
            try_number: ti.try_number,
            max_tries: ti.max_tries,
            start_date: ti.start_date,
            next_method: locked.next_method.clone(),
            next_kwargs: locked.next_kwargs.clone(),
        };
        started.context(&row, consumed_asset_events)
    }

    /// `/run` on PostgreSQL: [`START_POSTGRES`], one autocommitted statement on
    /// the write lane, which locks the task instance, starts it if it may
    /// start, writes the log row and reads the run context. A repeat on a
    /// fresh connection (the lane's was stale, the first may have committed)
    /// is the same worker's retried request, which Airflow answers with the
    /// context again.
    async fn start_postgres(
        &self,
        lane: &super::lane::Lane,
        id: Uuid,
        request: &StartRequest,
    ) -> Result<StartOutcome, StoreError> {
        let (key, stamp) = (uuid_param(id), time_param(now()));
        let start_date = time_param(request.start_date);
        let extra = host_name_extra(Some(&request.hostname));
        let row = lane
            .fetch_optional(|| {
                sqlx::query(START_POSTGRES)
                    .bind(key.as_str())
                    .bind(stamp.as_str())
                    .bind(request.hostname.as_str())
                    .bind(request.unixname.as_str())
                    .bind(request.pid)
                    .bind(start_date.as_str())
                    .bind(extra.as_deref())
            })
            .await?;
        let Some(row) = row else {
            return Ok(StartOutcome::NotFound);
        };
        let state = parse_state(row.try_get("ti_state")?)?;
        if !flag(&row, "claimed")? {
            // An orphan (no run or DAG row) that could start reads as not found.
            return Ok(if flag(&row, "eligible")? && !flag(&row, "joined")? {
                StartOutcome::NotFound
            } else {
                StartOutcome::InvalidState {
                    previous_state: state,
                }
            });
        }
        let consumed_asset_events = if flag(&row, "consumes_asset_events")? {
            let dag_id: String = row.try_get("dag_id")?;
            let run_id: String = row.try_get("run_id")?;
            let mut conn = self.pool.acquire().await?;
            super::assets::consumed_asset_events(&mut conn, self.backend, &dag_id, &run_id).await?
        } else {
            Vec::new()
        };
        let started = Started {
            task_id: row.try_get("ti_task_id")?,
            map_index: i64::from(row.try_get::<i32, _>("ti_map_index")?),
            state,
            try_number: row.try_get("try_number")?,
            max_tries: row.try_get("max_tries")?,
            start_date: parse_opt_time(row.try_get("ti_start_date")?)?,
            next_method: row.try_get("next_method")?,
            next_kwargs: row.try_get("next_kwargs")?,
        };
        started.context(&row, consumed_asset_events)
    }

    /// `/state`: running -> the requested state, with Airflow's database effects,
    /// in one transaction whose first statement is the conditional UPDATE that
    /// claims the running task instance; a refused request changes nothing.
    pub async fn update_task_instance_state(
        &self,
        id: Uuid,
        change: &StateChange,
    ) -> Result<StateOutcome, StoreError> {
        let target = change.target();
        if let (Some(lane), Some(finish), false) = (
            &self.write_lane,
            change.plain_finish(),
            self.transitions.clear_on_success,
        ) && let Some(outcome) = self.finish_postgres(lane, id, finish).await?
        {
            return Ok(outcome);
        }
        let b = self.backend;
        let now = now();
        let stamp = time_param(now);
        let mut tx = self.begin_write().await?;
        let claimed = self
            .claim(&mut tx, id, Claiming::State, |query| query.bind(&stamp))
            .await?;
        let locked = match claimed {
            Claim::Locked(locked) => locked,
            Claim::Orphan => return Ok(StateOutcome::NotFound),
            Claim::Refused(state) => {
                tx.rollback().await?;
                return Ok(match state {
                    None => StateOutcome::NotFound,
                    Some(state) => match state {
                        // Airflow's idempotency check: a repeated request is answered 200.
                        Some(state) if state == target => StateOutcome::AlreadyInState,
                        previous_state => StateOutcome::NotRunning { previous_state },
                    },
                });
            }
        };
        let ti = &locked.ti;
        let mut final_state = target;
        let log = |event: TiState| locked.log_event(event.as_str(), ti.hostname.as_deref());
        // Whether the transition's log row is written yet (with `finish_try`,
        // where nothing else writes a log row after it).
        let mut logged = false;
        match change {
            StateChange::Terminal {
                end_date,
                rendered_map_index,
                ..
            } => {
                let log = log(target);
                self.finish_try(
                    &mut tx,
                    id,
                    target,
                    *end_date,
                    rendered_map_index,
                    &stamp,
                    Some(&log),
                )
                .await?;
                logged = true;
            }
            StateChange::Success {
                end_date,
                rendered_map_index,
                outlets,
            } => {
                if let Err(message) = outlets.validate_partition_keys() {
                    return Ok(StateOutcome::Refused {
                        reason: "invalid_partition_key",
                        message,
                    });
                }
                // Asset changes may log too: the transition's row stays after theirs.
                let plain = outlets.task_outlets.is_empty() && outlets.outlet_events.is_empty();
                let log = log(target);
                self.finish_try(
                    &mut tx,
                    id,
                    target,
                    *end_date,
                    rendered_map_index,
                    &stamp,
                    plain.then_some(&log),
                )
                .await?;
                logged = plain;
                if let Err(refused) = self.register_asset_changes(&mut tx, ti, outlets).await? {
                    return Ok(refused);
                }
            }
            StateChange::Retry {
                end_date,
                rendered_map_index,
                retry_delay_seconds,
                retry_reason,
            } => {
                self.finish_try(
                    &mut tx,
                    id,
                    target,
                    *end_date,
                    rendered_map_index,
                    &stamp,
                    None,
                )
                .await?;
                // Cut to its column, as Airflow's route does (`retry_reason[:500]`).
                let reason: Option<String> = retry_reason.as_ref().map(|r| {
                    r.chars()
                        .take(super::columns::TASK_INSTANCE_RETRY_REASON.max_chars)
                        .collect()
                });
                // Airflow writes the try's duration computed in Python at commit
                // (`ti.set_duration()`), over the SQL expression's.
                let duration = ti
                    .start_date
                    .map(|start| (*end_date - start).whole_microseconds() as f64 / 1e6);
                sqlx::query(sql!(
                    b,
                    "UPDATE task_instance SET retry_delay_override = $2, retry_reason = $3, \
                     duration = $4 WHERE id = $1::uuid"
                ))
                .bind(uuid_param(id))
                .bind(*retry_delay_seconds)
                .bind(reason)
                .bind(duration)
                .execute(&mut *tx)
                .await?;
            }
            StateChange::Reschedule {
                reschedule_date,
                end_date,
            } => {
                self.finish_try(&mut tx, id, target, *end_date, &None, &stamp, None)
                    .await?;
                // Airflow: `start_date` is the server's now and the duration is
                // `int((end_date - now).total_seconds())` (`models/taskreschedule.py`).
                let duration = (*end_date - now).whole_seconds();
                sqlx::query(sql!(
                    b,
                    "INSERT INTO task_reschedule (ti_id, start_date, end_date, duration, \
                     reschedule_date) VALUES ($1::uuid, $2::timestamptz, $3::timestamptz, $4, \
                     $5::timestamptz)"
                ))
                .bind(uuid_param(id))
                .bind(&stamp)
                .bind(time_param(*end_date))
                .bind(duration)
                .bind(time_param(*reschedule_date))
                .execute(&mut *tx)
                .await?;
            }
            StateChange::Deferred(deferral) => {
                self.defer(&mut tx, id, deferral, now).await?;
            }
            StateChange::AwaitingInput {
                timeout,
                next_method,
                next_kwargs,
            } => {
                final_state = self
                    .await_input(&mut tx, id, *timeout, next_method, next_kwargs, now)
                    .await?;
            }
            StateChange::Intermediate(_) => {
                // Airflow raises "Unexpected Payload Type" and falls back to
                // FAILED, ended now; its deferral fields stay as they were.
                final_state = TiState::Failed;
                let query = match b {
                    Backend::Sqlite => {
                        "UPDATE task_instance SET end_date = $2, \
                         duration = round((julianday($2) - julianday(start_date)) * 86400, 3), \
                         state = 'failed', updated_at = $2 WHERE id = $1"
                    }
                    Backend::Postgres => {
                        "UPDATE task_instance SET end_date = $2::timestamptz, \
                         duration = EXTRACT(EPOCH FROM $2::timestamptz - start_date), \
                         state = 'failed', updated_at = $2::timestamptz WHERE id = $1::uuid"
                    }
                };
                sqlx::query(query)
                    .bind(uuid_param(id))
                    .bind(&stamp)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if !logged {
            self.insert_log(&mut tx, &log(final_state)).await?;
        }
        if final_state == TiState::Failed {
            self.fail_fast(&mut tx, ti).await?;
        }
        if let StateChange::Retry { .. } = change {
            self.archive_try(&mut tx, id).await?;
        }
        if final_state == TiState::Success && self.transitions.clear_on_success {
            sqlx::query(
                "DELETE FROM task_state_store WHERE dag_id = $1 AND run_id = $2 \
                 AND task_id = $3 AND map_index = $4",
            )
            .bind(&ti.dag_id)
            .bind(&ti.run_id)
            .bind(&ti.task_id)
            .bind(ti.map_index)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(StateOutcome::Updated)
    }

    /// A plain finish (see [`StateChange::plain_finish`]) on PostgreSQL:
    /// [`FINISH_POSTGRES`], one autocommitted statement on the write lane.
    /// `None` when the task instance is running on a host whose name the
    /// log row must escape as Python does: nothing was changed, and the
    /// transaction of [`Store::update_task_instance_state`] does it. A repeat
    /// on a fresh connection (the lane's was stale, the first may have
    /// committed) finds the state already set, which Airflow answers as the
    /// repeated request it is.
    async fn finish_postgres(
        &self,
        lane: &super::lane::Lane,
        id: Uuid,
        (state, end_date, rendered_map_index): (TiState, OffsetDateTime, &Option<Option<String>>),
    ) -> Result<Option<StateOutcome>, StoreError> {
        let (key, stamp, end) = (uuid_param(id), time_param(now()), time_param(end_date));
        let rendered = rendered_map_index.clone().flatten();
        let row = lane
            .fetch_optional(|| {
                sqlx::query(FINISH_POSTGRES)
                    .bind(key.as_str())
                    .bind(end.as_str())
                    .bind(state.as_str())
                    .bind(rendered_map_index.is_some())
                    .bind(rendered.as_deref())
                    .bind(stamp.as_str())
            })
            .await?;
        let Some(row) = row else {
            return Ok(Some(StateOutcome::NotFound));
        };
        if flag(&row, "claimed")? {
            return Ok(Some(StateOutcome::Updated));
        }
        let previous_state = parse_state(row.try_get("ti_state")?)?;
        Ok(match previous_state {
            Some(TiState::Running) if !flag(&row, "plain_host")? => None,
            // Claimable but its run or DAG row is missing: not found.
            Some(TiState::Running) if !flag(&row, "joined")? => Some(StateOutcome::NotFound),
            // Airflow's idempotency check: a repeated request is answered 200.
            Some(previous) if previous == state => Some(StateOutcome::AlreadyInState),
            previous_state => Some(StateOutcome::NotRunning { previous_state }),
        })
    }

    /// The DAG's `fail_fast`, after one of its task instances failed: every
    /// other task instance of the run that is not finished (`success` or
    /// `failed`) and not a teardown task is stopped: `failed` if running, else
    /// `skipped` (Airflow's `_stop_remaining_tasks`), each with a `log` row.
    async fn fail_fast(
        &self,
        conn: &mut sqlx::AnyConnection,
        failed: &TaskInstance,
    ) -> Result<(), StoreError> {
        let b = self.backend;
        let fail_fast: Option<i64> = sqlx::query(
            "SELECT CAST(CASE WHEN fail_fast THEN 1 ELSE 0 END AS BIGINT) FROM dag \
             WHERE dag_id = $1",
        )
        .bind(&failed.dag_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        if fail_fast != Some(1) {
            return Ok(());
        }
        let Some(teardowns) = self
            .teardown_task_ids(&failed.dag_id, &failed.run_id)
            .await?
        else {
            // No serialized DAG: Airflow's `get_dag_for_run` finds none and stops nothing.
            return Ok(());
        };
        let others = sqlx::query(sql!(
            b,
            concat!(
                "SELECT ",
                ti_columns!(),
                " FROM task_instance WHERE dag_id = $1 AND run_id = $2 AND task_id <> $3 \
                 AND (state IS NULL OR state NOT IN ('success', 'failed')) \
                 ORDER BY task_id, map_index"
            )
        ))
        .bind(&failed.dag_id)
        .bind(&failed.run_id)
        .bind(&failed.task_id)
        .fetch_all(&mut *conn)
        .await?;
        let now = now();
        let stamp = time_param(now);
        for row in others {
            let ti = ti_from_row(&row)?;
            if teardowns.contains(&ti.task_id) {
                continue;
            }
            let (event, extra) = if ti.state == Some(TiState::Running) {
                sqlx::query(sql!(
                    b,
                    "UPDATE task_instance SET state = 'failed', updated_at = $2::timestamptz \
                     WHERE id = $1::uuid"
                ))
                .bind(uuid_param(ti.id))
                .bind(&stamp)
                .execute(&mut *conn)
                .await?;
                (
                    "fail task",
                    "Forcing task to fail due to dag's `fail_fast` setting.",
                )
            } else {
                // `set_state(SKIPPED)`: start and end default to now, duration in Python.
                let start = ti.start_date.unwrap_or(now);
                let end = ti.end_date.unwrap_or(now);
                let duration = (end - start).whole_microseconds() as f64 / 1e6;
                sqlx::query(sql!(
                    b,
                    "UPDATE task_instance SET state = 'skipped', start_date = $2::timestamptz, \
                     end_date = $3::timestamptz, duration = $4, updated_at = $5::timestamptz \
                     WHERE id = $1::uuid"
                ))
                .bind(uuid_param(ti.id))
                .bind(time_param(start))
                .bind(time_param(end))
                .bind(duration)
                .bind(&stamp)
                .execute(&mut *conn)
                .await?;
                (
                    "skip task",
                    "Skipping task due to dag's `fail_fast` setting.",
                )
            };
            self.insert_log(
                conn,
                &LogEvent {
                    event,
                    dag_id: &ti.dag_id,
                    task_id: &ti.task_id,
                    run_id: &ti.run_id,
                    map_index: ti.map_index,
                    try_number: ti.try_number,
                    logical_date: None,
                    owner: None,
                    extra: Some(extra.to_owned()),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// The teardown tasks of the DAG version a run uses, from its serialized
    /// DAG (`DBDagBag.get_dag_for_run`); `None` when there is none. (Read
    /// outside the transaction: the DAG processor, not a transition, writes it.)
    async fn teardown_task_ids(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self
            .serialized_dag_for_run(dag_id, run_id)
            .await?
            .map(|dag| {
                dag.tasks
                    .into_iter()
                    .filter(|task| task.is_teardown)
                    .map(|task| task.task_id)
                    .collect()
            }))
    }

    /// `deferred`: a `trigger` row (kwargs as Airflow's handler stores them:
    /// `json.dumps` of a dict, a string verbatim) and the task instance pointing at it.
    async fn defer(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
        deferral: &Deferral,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let kwargs = match &deferral.trigger_kwargs {
            TriggerKwargs::Json(json) => json.dumps(),
            TriggerKwargs::Encrypted(text) => text.clone(),
        };
        let team_name = if self.transitions.multi_team {
            super::triggers::team_name_for_ti(conn, self.backend, id).await?
        } else {
            None
        };
        let trigger_id = super::triggers::insert_trigger(
            conn,
            self.backend,
            &super::triggers::NewTrigger {
                classpath: &deferral.classpath,
                kwargs: &kwargs,
                created_date: now,
                queue: deferral.queue.as_deref(),
                team_name: team_name.as_deref(),
            },
        )
        .await?;
        let timeout = deferral
            .trigger_timeout
            .and_then(|t| now.checked_add(t))
            .map(time_param);
        sqlx::query(sql!(
            self.backend,
            "UPDATE task_instance SET state = 'deferred', trigger_id = $2, next_method = $3, \
             next_kwargs = $4::jsonb, trigger_timeout = $5::timestamptz, \
             updated_at = $6::timestamptz WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .bind(trigger_id)
        .bind(&deferral.next_method)
        .bind(deferral.next_kwargs.dumps())
        .bind(timeout)
        .bind(time_param(now))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// `awaiting_input`: parked without a trigger, or, when a human already
    /// answered (`hitl_detail.responded_at` set), resumed straight away as
    /// Airflow's `handle_event_submit` does: `scheduled`, with the answer as
    /// `next_kwargs["event"]`. Returns the state written.
    async fn await_input(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
        timeout: Option<time::Duration>,
        next_method: &str,
        next_kwargs: &PyJson,
        now: OffsetDateTime,
    ) -> Result<TiState, StoreError> {
        let b = self.backend;
        let answer = sqlx::query(sql!(
            b,
            "SELECT CAST(responded_at AS TEXT) AS responded_at, \
             CAST(chosen_options AS TEXT) AS chosen_options, \
             CAST(params_input AS TEXT) AS params_input, \
             CAST(responded_by AS TEXT) AS responded_by \
             FROM hitl_detail WHERE ti_id = $1::uuid FOR UPDATE"
        ))
        .bind(uuid_param(id))
        .fetch_optional(&mut *conn)
        .await?;
        let answered = match &answer {
            Some(row) => row
                .try_get::<Option<String>, _>("responded_at")?
                .map(|at| parse_time(&at))
                .transpose()?
                .map(|at| (row, at)),
            None => None,
        };
        let Some((row, responded_at)) = answered else {
            let deadline = timeout.and_then(|t| now.checked_add(t)).map(time_param);
            sqlx::query(sql!(
                b,
                "UPDATE task_instance SET state = 'awaiting_input', trigger_id = NULL, \
                 next_method = $2, next_kwargs = $3::jsonb, trigger_timeout = $4::timestamptz, \
                 updated_at = $5::timestamptz WHERE id = $1::uuid"
            ))
            .bind(uuid_param(id))
            .bind(next_method)
            .bind(next_kwargs.dumps())
            .bind(deadline)
            .bind(time_param(now))
            .execute(&mut *conn)
            .await?;
            return Ok(TiState::AwaitingInput);
        };
        let json_column = |name: &str| -> Result<PyJson, StoreError> {
            let text: Option<String> = row.try_get(name)?;
            match text {
                None => Ok(PyJson::Null),
                Some(text) => PyJson::parse(&text)
                    .map_err(|e| StoreError::Corrupt(format!("hitl_detail.{name}: {e}"))),
            }
        };
        let chosen = match json_column("chosen_options")? {
            PyJson::Null => PyJson::Array(Vec::new()),
            other => other,
        };
        let params = match json_column("params_input")? {
            PyJson::Null => PyJson::Object(Vec::new()),
            PyJson::Object(entries) if entries.is_empty() => PyJson::Object(Vec::new()),
            other => other,
        };
        let user = match json_column("responded_by")? {
            PyJson::Object(entries) => {
                let field = |k: &str| {
                    entries
                        .iter()
                        .find(|(key, _)| key == k)
                        .map_or(PyJson::Null, |(_, v)| v.clone())
                };
                PyJson::Object(vec![
                    ("id".into(), field("id")),
                    ("name".into(), field("name")),
                ])
            }
            _ => PyJson::Null,
        };
        let event = PyJson::Object(vec![
            ("chosen_options".into(), chosen),
            ("params_input".into(), params),
            ("responded_at".into(), serde_datetime(responded_at)),
            ("responded_by_user".into(), user),
            ("timedout".into(), PyJson::Bool(false)),
        ]);
        let (next_method, next_kwargs) = match next_kwargs {
            PyJson::Object(_) => {
                let mut merged = next_kwargs.clone();
                merged.insert("event", event);
                (next_method.to_owned(), merged)
            }
            _ => (
                // Airflow's `_fail_unresumable_task_instance`.
                "__fail__".to_owned(),
                PyJson::Object(vec![
                    (
                        "error".into(),
                        PyJson::Str(
                            "Could not resume the task: its stored next_kwargs could not be \
                             decoded (ValueError: next_kwargs is not a dict)"
                                .into(),
                        ),
                    ),
                    ("traceback".into(), PyJson::Array(Vec::new())),
                ]),
            ),
        };
        let stamp = time_param(now);
        sqlx::query(sql!(
            b,
            "UPDATE task_instance SET state = 'scheduled', trigger_id = NULL, \
             next_method = $2, next_kwargs = $3::jsonb, scheduled_dttm = $4::timestamptz, \
             updated_at = $4::timestamptz WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .bind(next_method)
        .bind(next_kwargs.dumps())
        .bind(stamp)
        .execute(&mut *conn)
        .await?;
        Ok(TiState::Scheduled)
    }

    /// The update every ending try gets: end date, duration (Airflow's SQL
    /// expression for the dialect), state, deferral fields cleared.
    #[allow(clippy::too_many_arguments)]
    async fn finish_try(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
        state: TiState,
        end_date: OffsetDateTime,
        rendered_map_index: &Option<Option<String>>,
        stamp: &str,
        log: Option<&LogEvent<'_>>,
    ) -> Result<(), StoreError> {
        const POSTGRES: &str = "UPDATE task_instance SET end_date = $2::timestamptz, \
             duration = EXTRACT(EPOCH FROM $2::timestamptz - start_date), \
             state = $3, next_method = NULL, next_kwargs = 'null'::jsonb, \
             rendered_map_index = CASE WHEN $4 THEN $5 ELSE rendered_map_index END, \
             updated_at = $6::timestamptz WHERE id = $1::uuid";
        static POSTGRES_LOGGED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let query = match (self.backend, log) {
            (Backend::Sqlite, _) => {
                "UPDATE task_instance SET end_date = $2, \
                 duration = round((julianday($2) - julianday(start_date)) * 86400, 3), \
                 state = $3, next_method = NULL, next_kwargs = 'null', \
                 rendered_map_index = CASE WHEN $4 THEN $5 ELSE rendered_map_index END, \
                 updated_at = $6 WHERE id = $1"
            }
            (Backend::Postgres, None) => POSTGRES,
            // The log row rides on the UPDATE (one round trip).
            (Backend::Postgres, Some(_)) => POSTGRES_LOGGED
                .get_or_init(|| with_log_cte(POSTGRES, 6))
                .as_str(),
        };
        let query = sqlx::query(query)
            .bind(uuid_param(id))
            .bind(time_param(end_date))
            .bind(state.as_str())
            .bind(rendered_map_index.is_some())
            .bind(rendered_map_index.clone().flatten())
            .bind(stamp);
        match (self.backend, log) {
            (Backend::Postgres, Some(log)) => {
                bind_log(query, log).execute(&mut *conn).await?;
            }
            (_, log) => {
                query.execute(&mut *conn).await?;
                if let Some(log) = log {
                    self.insert_log(conn, log).await?;
                }
            }
        }
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

impl Store {
    /// `skip-downstream`: marks the listed task instances of this one's run
    /// `skipped` (start and end now), unless running or finished. `None` when
    /// the task instance does not exist.
    pub async fn skip_downstream(
        &self,
        id: Uuid,
        tasks: &[(String, i64)],
    ) -> Result<Option<u64>, StoreError> {
        let b = self.backend;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sql!(
            b,
            "SELECT dag_id, run_id FROM task_instance WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let dag_id: String = row.try_get("dag_id")?;
        let run_id: String = row.try_get("run_id")?;
        let mut skipped = 0;
        // Bounded statements: SQLite allows 32766 parameters, PostgreSQL 65535.
        for chunk in tasks.chunks(1000) {
            let ts = if b == Backend::Postgres {
                "$3::timestamptz"
            } else {
                "$3"
            };
            let mut text = format!(
                "UPDATE task_instance SET state = 'skipped', start_date = {ts}, \
                 end_date = {ts}, updated_at = {ts} WHERE dag_id = $1 AND run_id = $2 \
                 AND (state IS NULL OR state NOT IN ('running', 'success', 'failed')) AND ("
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    text.push_str(" OR ");
                }
                text.push_str(&format!(
                    "(task_id = ${} AND map_index = ${})",
                    4 + 2 * i,
                    5 + 2 * i
                ));
            }
            text.push(')');
            let mut query = sqlx::query(sqlx::AssertSqlSafe(text.as_str()))
                .bind(dag_id.clone())
                .bind(run_id.clone())
                .bind(time_param(now()));
            for (task_id, map_index) in chunk {
                query = query.bind(task_id.clone()).bind(*map_index);
            }
            skipped += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(Some(skipped))
    }

    /// `rendered-map-index`: sets the label; `false` when the task instance
    /// does not exist.
    pub async fn set_rendered_map_index(&self, id: Uuid, label: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(sql!(
            self.backend,
            "UPDATE task_instance SET rendered_map_index = $2, updated_at = $3::timestamptz \
             WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .bind(label)
        .bind(time_param(now()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(updated > 0)
    }
}

/// Airflow's run-id time format: `2024-05-01T10:00:00.123456+00:00`.
fn airflow_run_stamp(t: OffsetDateTime) -> String {
    let stamp = super::timestamp(t);
    format!("{}+00:00", stamp.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests;
