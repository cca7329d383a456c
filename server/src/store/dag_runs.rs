//! DAG runs and DAGs on Airflow's `dag_run`, `dag` and `dag_tag` tables: the
//! reads of `/dag-runs/...` and `/dags/{dag_id}` (Airflow 3.3.2's
//! `execution_api/routes/dag_runs.py` and `dags.py`).

use serde_json::Value;
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{Backend, parse_opt_time, sql, strip_casts, time_param, uuid_param};
use super::task_instances::{dag_run_columns, dag_run_from_row};
use super::{DagRun, SerializedDag, Store, StoreError, now};

/// What a trigger needs to know of the `dag` row.
#[derive(Clone, Debug, PartialEq)]
pub struct DagTriggerInfo {
    /// The DAG's file is gone (`is_stale`): Airflow treats it as missing.
    pub is_stale: bool,
    /// The DAG's file failed to import.
    pub has_import_errors: bool,
    /// The run types the DAG allows (`None`: every type).
    pub allowed_run_types: Option<Vec<String>>,
}

/// A DAG run to create as Airflow's `trigger_dag` creates an operator-triggered one
/// (`state=queued`, `run_type=operator_triggered`, `triggered_by=OPERATOR`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewDagRun {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Logical date, if any.
    pub logical_date: Option<OffsetDateTime>,
    /// Data interval (only with a logical date).
    pub data_interval: Option<(OffsetDateTime, OffsetDateTime)>,
    /// Earliest time the run may start.
    pub run_after: OffsetDateTime,
    /// The run's configuration, a JSON object's text.
    pub conf: String,
    /// Inherited from the calling task's run.
    pub triggering_user_name: Option<String>,
    /// A `dag_run_note` to add.
    pub note: Option<String>,
    /// The serialized version the run is created from (the latest).
    pub dag_version_id: Uuid,
    /// Whether the DAG disables bundle versioning (no `bundle_version` recorded).
    pub disable_bundle_versioning: bool,
    /// The task instances to create with it.
    pub task_instances: Vec<NewRunTask>,
}

/// One task instance of a new run (Airflow's `TaskInstance.insert_mapping`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRunTask {
    /// Task id.
    pub task_id: String,
    /// Map index (`-1` unless a mapped task's literal input fixes its length).
    pub map_index: i64,
    /// `task.queue`.
    pub queue: String,
    /// `task.pool`.
    pub pool: String,
    /// `task.pool_slots`.
    pub pool_slots: i64,
    /// From the task's weight rule.
    pub priority_weight: i64,
    /// `task.retries`.
    pub max_tries: i64,
    /// `task.executor`.
    pub executor: Option<String>,
    /// `task.task_type`.
    pub operator: String,
    /// `task.operator_name`.
    pub custom_operator_name: String,
    /// `task.task_display_name`.
    pub task_display_name: String,
}

/// Why a serialized DAG's task instances cannot be laid out without Python.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeedsPython(pub String);

/// What a trigger found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// The run and its task instances were created.
    Created,
    /// A run with this id exists.
    RunIdTaken,
    /// A run with this logical date exists (Airflow's unique constraint).
    LogicalDateTaken,
}

/// What a clear found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClearOutcome {
    /// Cleared.
    Cleared,
    /// No such run.
    NoRun,
}

/// `pickle.dumps({})` with protocol 5, the `executor_config` Airflow stores for a
/// task without one.
const EMPTY_EXECUTOR_CONFIG: &[u8] = b"\x80\x05}\x94.";

/// A DAG as stored (`dag` with its `dag_tag` names).
#[derive(Clone, Debug, PartialEq)]
pub struct Dag {
    /// DAG id.
    pub dag_id: String,
    /// Whether the DAG is paused.
    pub is_paused: bool,
    /// Its bundle.
    pub bundle_name: Option<String>,
    /// The bundle's version.
    pub bundle_version: Option<String>,
    /// Its file, relative to the bundle.
    pub relative_fileloc: Option<String>,
    /// Owners, comma-separated.
    pub owners: Option<String>,
    /// Tag names, sorted.
    pub tags: Vec<String>,
    /// The next scheduled logical date.
    pub next_dagrun: Option<OffsetDateTime>,
}

/// The filters of `GET /dag-runs/count` (each empty list: no filter).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DagRunFilter {
    /// Logical dates to match.
    pub logical_dates: Vec<OffsetDateTime>,
    /// Run ids to match.
    pub run_ids: Vec<String>,
    /// States to match.
    pub states: Vec<String>,
}

impl Store {
    /// One DAG run.
    pub async fn dag_run(&self, dag_id: &str, run_id: &str) -> Result<Option<DagRun>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(concat!(
                    "SELECT ",
                    dag_run_columns!(),
                    " FROM dag_run WHERE dag_id = $1 AND run_id = $2"
                ))
                .bind(dag_id)
                .bind(run_id)
            })
            .await?;
        row.as_ref().map(dag_run_from_row).transpose()
    }

    /// A DAG run's state: `None` if there is no such run, `Some(None)` for a NULL state.
    pub async fn dag_run_state(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query("SELECT state FROM dag_run WHERE dag_id = $1 AND run_id = $2")
                    .bind(dag_id)
                    .bind(run_id)
            })
            .await?;
        row.map(|row| row.try_get::<Option<String>, _>(0))
            .transpose()
            .map_err(Into::into)
    }

    /// How many runs of the DAG match every non-empty filter.
    pub async fn count_dag_runs(
        &self,
        dag_id: &str,
        filter: &DagRunFilter,
    ) -> Result<i64, StoreError> {
        let mut text = String::from("SELECT COUNT(*) FROM dag_run WHERE dag_id = $1");
        let mut n = 1;
        let mut list = |column: &str, len: usize, cast: &str| {
            if len == 0 {
                return;
            }
            let marks: Vec<String> = (0..len)
                .map(|_| {
                    n += 1;
                    format!("${n}{cast}")
                })
                .collect();
            text.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
        };
        list("logical_date", filter.logical_dates.len(), "::timestamptz");
        list("run_id", filter.run_ids.len(), "");
        list("state", filter.states.len(), "");
        if self.backend == Backend::Sqlite {
            text = strip_casts(&text);
        }
        let row = self
            .read_one(|| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(text.as_str())).bind(dag_id);
                for date in &filter.logical_dates {
                    query = query.bind(time_param(*date));
                }
                for value in filter.run_ids.iter().chain(&filter.states) {
                    query = query.bind(value.clone());
                }
                query
            })
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The newest run of the DAG whose logical date is before `before`, in
    /// `state` if given (Airflow's `get_previous_dagrun`).
    pub async fn previous_dag_run(
        &self,
        dag_id: &str,
        before: OffsetDateTime,
        state: Option<&str>,
    ) -> Result<Option<DagRun>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    concat!(
                        "SELECT ",
                        dag_run_columns!(),
                        " FROM dag_run WHERE dag_id = $1 AND logical_date < $2::timestamptz \
                 AND ($3 IS NULL OR state = $3) ORDER BY logical_date DESC LIMIT 1"
                    )
                ))
                .bind(dag_id)
                .bind(time_param(before))
                .bind(state)
            })
            .await?;
        row.as_ref().map(dag_run_from_row).transpose()
    }

    /// A DAG's metadata and tags (`GET /dags/{dag_id}`).
    pub async fn dag(&self, dag_id: &str) -> Result<Option<Dag>, StoreError> {
        let row = self.read_optional(|| sqlx::query(
            "SELECT dag_id, CASE WHEN is_paused THEN 1 ELSE 0 END AS is_paused, bundle_name, bundle_version, relative_fileloc, owners, \
             CAST(next_dagrun AS TEXT) AS next_dagrun FROM dag WHERE dag_id = $1",
        )
        .bind(dag_id)
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut tags: Vec<String> = self
            .read_all(|| sqlx::query("SELECT name FROM dag_tag WHERE dag_id = $1").bind(dag_id))
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        // Python's `sorted` of str: by code point, as Rust's `Ord` for `str`.
        tags.sort();
        Ok(Some(Dag {
            dag_id: row.try_get("dag_id")?,
            is_paused: row.try_get::<i64, _>("is_paused")? != 0,
            bundle_name: row.try_get("bundle_name")?,
            bundle_version: row.try_get("bundle_version")?,
            relative_fileloc: row.try_get("relative_fileloc")?,
            owners: row.try_get("owners")?,
            tags,
            next_dagrun: parse_opt_time(row.try_get("next_dagrun")?)?,
        }))
    }
}

/// A serialized field, unwrapping `{"__type": ..., "__var": ...}`.
fn unwrap(value: &Value) -> &Value {
    match value.get("__var") {
        Some(inner) if value.get("__type").is_some() => inner,
        _ => value,
    }
}

/// The raw task objects of a serialized DAG, by id.
fn raw_tasks(dag: &SerializedDag) -> Vec<&serde_json::Map<String, Value>> {
    dag.data
        .get("dag")
        .and_then(|d| d.get("tasks"))
        .and_then(Value::as_array)
        .map(|tasks| tasks.iter().filter_map(|t| unwrap(t).as_object()).collect())
        .unwrap_or_default()
}

/// Whether any task group of the serialized DAG is mapped (`@task_group.expand`).
fn has_mapped_group(group: &Value) -> bool {
    let group = unwrap(group);
    if group.get("expand_input").is_some_and(|v| !v.is_null()) {
        return true;
    }
    group
        .get("children")
        .and_then(Value::as_object)
        .is_some_and(|children| {
            children
                .values()
                .any(|child| match child.as_array().map(Vec::as_slice) {
                    Some([kind, inner]) if kind == "taskgroup" => has_mapped_group(inner),
                    _ => false,
                })
        })
}

/// A serialized time (epoch seconds) as a time.
fn epoch(value: &Value) -> Option<OffsetDateTime> {
    let seconds = unwrap(value).as_f64()?;
    OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9).round() as i128).ok()
}

/// The length a literal expansion input fixes, or `None` when it depends on an
/// upstream XCom (Airflow's `NotFullyPopulated`: one task instance, map index -1).
fn literal_length(task: &serde_json::Map<String, Value>) -> Option<i64> {
    let attr = task.get("_expand_input_attr").and_then(Value::as_str)?;
    let input = task.get(attr)?;
    let kind = input.get("type").and_then(Value::as_str)?;
    let value = input.get("value")?;
    let length = |v: &Value| -> Option<i64> {
        if v.get("__type").and_then(Value::as_str) == Some("xcomref") {
            return None;
        }
        match unwrap(v) {
            Value::Array(items) => Some(items.len() as i64),
            Value::Object(fields) => Some(fields.len() as i64),
            _ => None,
        }
    };
    match kind {
        "dict-of-lists" => unwrap(value)
            .as_object()?
            .values()
            .try_fold(1i64, |acc, v| Some(acc.saturating_mul(length(v)?))),
        "list-of-dicts" => length(value),
        _ => None,
    }
}

/// The task instances Airflow's `DagRun.verify_integrity` creates for a new run of
/// this serialized DAG: one per task (a mapped task with a literal input: one per
/// element), with `insert_mapping`'s columns and the weight rule's priority.
/// Tasks whose `start_date`/`end_date` exclude the logical date are left out, as
/// Airflow's `task_filter` leaves them out.
pub fn plan_task_instances(
    dag: &SerializedDag,
    logical_date: Option<OffsetDateTime>,
) -> Result<Vec<NewRunTask>, NeedsPython> {
    if dag
        .data
        .get("dag")
        .and_then(|d| d.get("task_group"))
        .is_some_and(has_mapped_group)
    {
        return Err(NeedsPython(
            "the Dag has a mapped task group, whose expansion Airflow computes in Python".into(),
        ));
    }
    let tasks = raw_tasks(dag);
    let id = |t: &serde_json::Map<String, Value>| {
        t.get("task_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // A field of the task, or of a mapped task's partial arguments.
    let field = |t: &serde_json::Map<String, Value>, key: &str| -> Option<Value> {
        t.get(key)
            .or_else(|| t.get("partial_kwargs").map(unwrap).and_then(|p| p.get(key)))
            .map(|v| unwrap(v).clone())
            .filter(|v| !v.is_null())
    };
    let ids: Vec<String> = tasks.iter().map(|t| id(t)).collect();
    let weight_of: std::collections::HashMap<String, i64> = tasks
        .iter()
        .map(|t| {
            (
                id(t),
                field(t, "priority_weight")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(1),
            )
        })
        .collect();
    let mut downstream: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut upstream: std::collections::HashMap<String, Vec<String>> = Default::default();
    for t in &tasks {
        for d in t
            .get("downstream_task_ids")
            .map(unwrap)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            downstream.entry(id(t)).or_default().push(d.to_owned());
            upstream.entry(d.to_owned()).or_default().push(id(t));
        }
    }
    let relatives = |start: &str, edges: &std::collections::HashMap<String, Vec<String>>| {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![start.to_owned()];
        while let Some(next) = stack.pop() {
            for r in edges.get(&next).into_iter().flatten() {
                if seen.insert(r.clone()) {
                    stack.push(r.clone());
                }
            }
        }
        seen
    };
    let mut planned = Vec::new();
    for (t, task_id) in tasks.iter().zip(&ids) {
        let start = t.get("start_date").and_then(epoch);
        let end = t.get("end_date").and_then(epoch);
        if let Some(logical) = logical_date
            && (start.is_some_and(|s| s > logical) || end.is_some_and(|e| logical > e))
        {
            continue;
        }
        let own = weight_of[task_id];
        let rule = match field(t, "weight_rule") {
            None => "downstream".to_owned(),
            Some(Value::String(rule)) => rule,
            Some(_) => {
                return Err(NeedsPython(format!(
                    "task '{task_id}' has a custom priority weight strategy"
                )));
            }
        };
        let sum = |set: std::collections::BTreeSet<String>| {
            set.iter()
                .map(|r| weight_of.get(r).copied().unwrap_or(1))
                .fold(own, i64::saturating_add)
        };
        let priority_weight = match rule.as_str() {
            "absolute" => own,
            "downstream" => sum(relatives(task_id, &downstream)),
            "upstream" => sum(relatives(task_id, &upstream)),
            other => {
                return Err(NeedsPython(format!(
                    "task '{task_id}' has the priority weight strategy '{other}'"
                )));
            }
        };
        let mapped = t
            .get("_is_mapped")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let map_indexes: Vec<i64> = match (mapped, mapped.then(|| literal_length(t)).flatten()) {
            (true, Some(n)) if n > 0 => (0..n).collect(),
            _ => vec![-1],
        };
        let text = |key: &str, default: &str| {
            field(t, key)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| default.to_owned())
        };
        let task_type = text("task_type", "");
        let task_type = if task_type.is_empty() {
            text("_task_type", "")
        } else {
            task_type
        };
        let operator_name = text("_operator_name", &task_type);
        for map_index in map_indexes {
            planned.push(NewRunTask {
                task_id: task_id.clone(),
                map_index,
                queue: text("queue", "default"),
                pool: text("pool", "default_pool"),
                pool_slots: field(t, "pool_slots").and_then(|v| v.as_i64()).unwrap_or(1),
                priority_weight,
                max_tries: field(t, "retries").and_then(|v| v.as_i64()).unwrap_or(0),
                executor: field(t, "executor").and_then(|v| v.as_str().map(str::to_owned)),
                operator: task_type.clone(),
                custom_operator_name: operator_name.clone(),
                task_display_name: text("task_display_name", task_id),
            });
        }
    }
    Ok(planned)
}

/// A W3C trace context carrier as Airflow stores it (`ExtendedJSON` of
/// `{"traceparent": ...}`), with fresh random ids.
fn trace_carrier() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    let span = &Uuid::new_v4().simple().to_string()[..16];
    format!(r#"{{"__var": {{"traceparent": "00-{trace}-{span}-00"}}, "__type": "dict"}}"#)
}

/// Python's `getpass.getuser()`: `LOGNAME`, `USER`, `LNAME`, `USERNAME`, then the
/// password database entry of the process's user.
fn getuser() -> String {
    for name in ["LOGNAME", "USER", "LNAME", "USERNAME"] {
        if let Ok(user) = std::env::var(name)
            && !user.is_empty()
        {
            return user;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid())
            && let Ok(passwd) = std::fs::read_to_string("/etc/passwd")
        {
            for line in passwd.lines() {
                let fields: Vec<&str> = line.split(':').collect();
                if fields.len() > 2 && fields[2] == uid.to_string() {
                    return fields[0].to_owned();
                }
            }
        }
    }
    "airflow".to_owned()
}

impl Store {
    /// The `dag` row's trigger gates (`None` if there is no such DAG).
    pub async fn dag_trigger_info(
        &self,
        dag_id: &str,
    ) -> Result<Option<DagTriggerInfo>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(
                    "SELECT CASE WHEN is_stale THEN 1 ELSE 0 END AS is_stale, \
             CASE WHEN has_import_errors THEN 1 ELSE 0 END AS has_import_errors, \
             CAST(allowed_run_types AS TEXT) AS allowed_run_types FROM dag WHERE dag_id = $1",
                )
                .bind(dag_id)
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let allowed: Option<String> = row.try_get("allowed_run_types")?;
        let allowed_run_types = match allowed.as_deref().map(str::trim) {
            None | Some("null") => None,
            Some(text) => Some(
                serde_json::from_str::<Vec<String>>(text)
                    .map_err(|e| StoreError::Corrupt(format!("dag.allowed_run_types: {e}")))?,
            ),
        };
        Ok(Some(DagTriggerInfo {
            is_stale: row.try_get::<i64, _>("is_stale")? != 0,
            has_import_errors: row.try_get::<i64, _>("has_import_errors")? != 0,
            allowed_run_types,
        }))
    }

    /// The `triggering_user_name` of a task instance's run (`None` if there is no
    /// such task instance or no user).
    pub async fn triggering_user_of(&self, ti_id: Uuid) -> Result<Option<String>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT dr.triggering_user_name FROM task_instance ti \
             JOIN dag_run dr ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id \
             WHERE ti.id = $1::uuid"
                ))
                .bind(uuid_param(ti_id))
            })
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>(0))
            .transpose()?
            .flatten())
    }

    /// Creates a queued operator-triggered run with its task instances (and note),
    /// in one transaction, as Airflow's `trigger_dag` writes them.
    pub async fn trigger_dag_run(&self, new: &NewDagRun) -> Result<TriggerOutcome, StoreError> {
        let b = self.backend;
        let mut tx = self.begin_write().await?;
        let taken: i64 =
            sqlx::query("SELECT COUNT(*) FROM dag_run WHERE dag_id = $1 AND run_id = $2")
                .bind(&new.dag_id)
                .bind(&new.run_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if taken > 0 {
            return Ok(TriggerOutcome::RunIdTaken);
        }
        if let Some(logical_date) = new.logical_date {
            let taken: i64 = sqlx::query(sql!(
                b,
                "SELECT COUNT(*) FROM dag_run WHERE dag_id = $1 AND logical_date = $2::timestamptz"
            ))
            .bind(&new.dag_id)
            .bind(time_param(logical_date))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if taken > 0 {
                return Ok(TriggerOutcome::LogicalDateTaken);
            }
        }
        let bundle_version: Option<String> = if new.disable_bundle_versioning {
            None
        } else {
            sqlx::query("SELECT bundle_version FROM dag WHERE dag_id = $1")
                .bind(&new.dag_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<Option<String>, _>(0))
                .transpose()?
                .flatten()
        };
        let log_template_id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM log_template")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let stamp = time_param(now());
        let carrier = trace_carrier();
        let dag_run_id: i64 = sqlx::query(sql!(
            b,
            "INSERT INTO dag_run (dag_id, queued_at, logical_date, start_date, end_date, state, \
             run_id, creating_job_id, run_type, triggered_by, triggering_user_name, conf, \
             data_interval_start, data_interval_end, run_after, last_scheduling_decision, \
             log_template_id, created_at, updated_at, clear_number, backfill_id, bundle_version, \
             scheduled_by_job_id, context_carrier, span_status, created_dag_version_id, \
             partition_key, partition_date) \
             VALUES ($1, $2::timestamptz, $3::timestamptz, NULL, NULL, 'queued', $4, NULL, \
             'operator_triggered', 'OPERATOR', $5, $6::jsonb, $7::timestamptz, $8::timestamptz, \
             $9::timestamptz, NULL, $10, $2::timestamptz, $2::timestamptz, 0, NULL, $11, NULL, \
             $12::jsonb, 'not_started', $13::uuid, NULL, NULL) RETURNING id"
        ))
        .bind(&new.dag_id)
        .bind(&stamp)
        .bind(new.logical_date.map(time_param))
        .bind(&new.run_id)
        .bind(&new.triggering_user_name)
        .bind(&new.conf)
        .bind(new.data_interval.map(|(s, _)| time_param(s)))
        .bind(new.data_interval.map(|(_, e)| time_param(e)))
        .bind(time_param(new.run_after))
        .bind(log_template_id)
        .bind(bundle_version)
        .bind(&carrier)
        .bind(uuid_param(new.dag_version_id))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if let Some(note) = &new.note {
            sqlx::query(sql!(
                b,
                "INSERT INTO dag_run_note (user_id, dag_run_id, content, created_at, updated_at) \
                 VALUES (NULL, $1, $2, $3::timestamptz, $3::timestamptz)"
            ))
            .bind(dag_run_id)
            .bind(note)
            .bind(&stamp)
            .execute(&mut *tx)
            .await?;
        }
        let unixname = getuser();
        for ti in &new.task_instances {
            sqlx::query(sql!(
                b,
                "INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, try_number, \
                 max_tries, hostname, unixname, pool, pool_slots, queue, priority_weight, \
                 operator, custom_operator_name, executor, executor_config, updated_at, \
                 context_carrier, span_status, task_display_name, dag_version_id) \
                 VALUES ($1::uuid, $2, $3, $4, $5, 0, $6, '', $7, $8, $9, $10, $11, $12, $13, \
                 $14, $15, $16::timestamptz, $17::jsonb, 'not_started', $18, $19::uuid)"
            ))
            .bind(uuid_param(Uuid::now_v7()))
            .bind(&ti.task_id)
            .bind(&new.dag_id)
            .bind(&new.run_id)
            .bind(ti.map_index)
            .bind(ti.max_tries)
            .bind(&unixname)
            .bind(&ti.pool)
            .bind(ti.pool_slots)
            .bind(&ti.queue)
            .bind(ti.priority_weight)
            .bind(&ti.operator)
            .bind(&ti.custom_operator_name)
            .bind(&ti.executor)
            .bind(EMPTY_EXECUTOR_CONFIG.to_vec())
            .bind(&stamp)
            .bind(&carrier)
            .bind(&ti.task_display_name)
            .bind(uuid_param(new.dag_version_id))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(TriggerOutcome::Created)
    }
}

impl Store {
    /// Clears every task instance of a run as Airflow's `clear_task_instances`
    /// does (`DAG.clear(run_id=...)` with `dag_run_state=QUEUED`, not on the
    /// latest version): each try is archived to `task_instance_history` (a
    /// state that is not finished is recorded as `failed`, and the live row gets
    /// an end date), its reschedules deleted and its `hitl_detail` copied, and
    /// the row gets a new id; a running one becomes `restarting`, the others
    /// lose their state and deferral and take the run's serialized task's
    /// attributes (`refresh_from_task`, `max_tries = try_number + retries`). The
    /// run's `clear_number` goes up, `queued_at` is now; a finished run is
    /// queued again with no start date and no scheduling decision.
    pub async fn clear_dag_run(
        &self,
        dag_id: &str,
        run_id: &str,
        tasks: &[NewRunTask],
        created_dag_version_id: Option<Uuid>,
    ) -> Result<ClearOutcome, StoreError> {
        let b = self.backend;
        let mut tx = self.begin_write().await?;
        let run = sqlx::query(sql!(
            b,
            "SELECT id, state, CAST(created_dag_version_id AS TEXT) FROM dag_run \
             WHERE dag_id = $1 AND run_id = $2 FOR UPDATE"
        ))
        .bind(dag_id)
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(run) = run else {
            return Ok(ClearOutcome::NoRun);
        };
        let run_row_id: i64 = run.try_get(0)?;
        let run_state: Option<String> = run.try_get(1)?;
        let stamp = time_param(now());
        let carrier = trace_carrier();
        let tis = sqlx::query(sql!(
            b,
            "SELECT CAST(id AS TEXT), task_id, map_index, try_number, max_tries, state \
             FROM task_instance WHERE dag_id = $1 AND run_id = $2 FOR UPDATE"
        ))
        .bind(dag_id)
        .bind(run_id)
        .fetch_all(&mut *tx)
        .await?;
        let cast = if b == Backend::Postgres { "::uuid" } else { "" };
        let ts = if b == Backend::Postgres {
            "::timestamptz"
        } else {
            ""
        };
        let duration = match b {
            Backend::Sqlite => "round((julianday($2) - julianday(start_date)) * 86400, 3)",
            Backend::Postgres => "EXTRACT(EPOCH FROM $2::timestamptz - start_date)",
        };
        for ti in &tis {
            let old = super::sql::parse_uuid(&ti.try_get::<String, _>(0)?)?;
            let task_id: String = ti.try_get(1)?;
            let map_index: i64 = ti.try_get(2)?;
            let try_number: i64 = ti.try_get(3)?;
            let max_tries: i64 = ti.try_get(4)?;
            let state: Option<String> = ti.try_get(5)?;
            let finished = matches!(
                state.as_deref(),
                Some("success" | "failed" | "skipped" | "upstream_failed" | "removed")
            );
            // TaskInstanceHistory.record_ti: an unfinished try ends now.
            let archived: i64 = sqlx::query(
                "SELECT COUNT(*) FROM task_instance_history WHERE dag_id = $1 AND task_id = $2 \
                 AND run_id = $3 AND map_index = $4 AND try_number = $5",
            )
            .bind(dag_id)
            .bind(&task_id)
            .bind(run_id)
            .bind(map_index)
            .bind(try_number)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if archived == 0 {
                if !finished {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE task_instance SET end_date = $2{ts}, duration = {duration} \
                         WHERE id = $1{cast} AND end_date IS NULL"
                    )))
                    .bind(uuid_param(old))
                    .bind(&stamp)
                    .execute(&mut *tx)
                    .await?;
                }
                const COLUMNS: &str = "task_id, dag_id, run_id, map_index, try_number, \
                     start_date, end_date, duration, max_tries, hostname, unixname, pool, \
                     pool_slots, queue, priority_weight, operator, custom_operator_name, \
                     queued_dttm, scheduled_dttm, queued_by_job_id, pid, executor, \
                     executor_config, updated_at, rendered_map_index, context_carrier, \
                     span_status, external_executor_id, trigger_id, trigger_timeout, \
                     next_method, next_kwargs, task_display_name, dag_version_id, \
                     retry_delay_override, retry_reason";
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO task_instance_history (task_instance_id, state, {COLUMNS}) \
                     SELECT id, CASE WHEN $2 THEN state ELSE 'failed' END, {COLUMNS} \
                     FROM task_instance WHERE id = $1{cast}"
                )))
                .bind(uuid_param(old))
                .bind(finished)
                .execute(&mut *tx)
                .await?;
                const HITL: &str = "options, subject, body, defaults, multiple, params, \
                     assignees, created_at, responded_at, responded_by, chosen_options, \
                     params_input";
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO hitl_detail_history (ti_history_id, {HITL}) \
                     SELECT ti_id, {HITL} FROM hitl_detail WHERE ti_id = $1{cast}"
                )))
                .bind(uuid_param(old))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(sql!(
                b,
                "DELETE FROM task_reschedule WHERE ti_id = $1::uuid"
            ))
            .bind(uuid_param(old))
            .execute(&mut *tx)
            .await?;
            let new_id = uuid_param(Uuid::now_v7());
            if state.as_deref() == Some("running") {
                sqlx::query(sql!(
                    b,
                    "UPDATE task_instance SET id = $2::uuid, state = 'restarting', \
                     context_carrier = $3::jsonb, updated_at = $4::timestamptz \
                     WHERE id = $1::uuid"
                ))
                .bind(uuid_param(old))
                .bind(&new_id)
                .bind(&carrier)
                .bind(&stamp)
                .execute(&mut *tx)
                .await?;
                continue;
            }
            let task = tasks.iter().find(|t| t.task_id == task_id);
            sqlx::query(sql!(
                b,
                "UPDATE task_instance SET id = $2::uuid, state = NULL, \
                 external_executor_id = NULL, next_method = NULL, next_kwargs = 'null'::jsonb, \
                 max_tries = $3, context_carrier = $4::jsonb, updated_at = $5::timestamptz, \
                 dag_version_id = COALESCE(dag_version_id, $6::uuid), \
                 queue = CASE WHEN $7 THEN $8 ELSE queue END, \
                 pool = CASE WHEN $7 THEN $9 ELSE pool END, \
                 pool_slots = CASE WHEN $7 THEN $10 ELSE pool_slots END, \
                 priority_weight = CASE WHEN $7 THEN $11 ELSE priority_weight END, \
                 executor = CASE WHEN $7 THEN $12 ELSE executor END, \
                 operator = CASE WHEN $7 THEN $13 ELSE operator END, \
                 custom_operator_name = CASE WHEN $7 THEN $14 ELSE custom_operator_name END \
                 WHERE id = $1::uuid"
            ))
            .bind(uuid_param(old))
            .bind(&new_id)
            .bind(match task {
                Some(task) => try_number + task.max_tries,
                None => max_tries.max(try_number),
            })
            .bind(&carrier)
            .bind(&stamp)
            .bind(created_dag_version_id.map(uuid_param))
            .bind(task.is_some())
            .bind(task.map(|t| t.queue.clone()))
            .bind(task.map(|t| t.pool.clone()))
            .bind(task.map(|t| t.pool_slots))
            .bind(task.map(|t| t.priority_weight))
            .bind(task.and_then(|t| t.executor.clone()))
            .bind(task.map(|t| t.operator.clone()))
            .bind(task.map(|t| t.custom_operator_name.clone()))
            .execute(&mut *tx)
            .await?;
        }
        if !tis.is_empty() {
            let finished = matches!(run_state.as_deref(), Some("success" | "failed"));
            sqlx::query(sql!(
                b,
                "UPDATE dag_run SET clear_number = clear_number + 1, queued_at = $2::timestamptz, \
                 context_carrier = $3::jsonb, updated_at = $2::timestamptz, \
                 state = CASE WHEN $4 THEN 'queued' ELSE state END, \
                 start_date = CASE WHEN $4 THEN NULL ELSE start_date END, \
                 last_scheduling_decision = CASE WHEN $4 THEN NULL ELSE last_scheduling_decision END \
                 WHERE id = $1"
            ))
            .bind(run_row_id)
            .bind(&stamp)
            .bind(&carrier)
            .bind(finished)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ClearOutcome::Cleared)
    }
}
