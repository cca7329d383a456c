//! Wire types of the Execution API, as the Airflow Task SDK 1.3.2 sends and
//! parses them (`airflow/sdk/api/datamodels/_generated.py`).
//!
//! Request payloads refuse unknown fields (the SDK's models are `extra="forbid"`)
//! and validate their timestamps; responses carry timestamps already rendered
//! by [`crate::store::timestamp`].

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::store::{self, timestamp};

/// `PATCH /task-instances/{id}/run` body: `TIEnterRunningPayload`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TIEnterRunningPayload {
    /// Always `running` (the default when absent).
    #[serde(default)]
    pub state: RunningState,
    /// Host the task runs on.
    pub hostname: String,
    /// Unix user the task runs as.
    pub unixname: String,
    /// Process id of the task runner.
    #[serde(deserialize_with = "integer")]
    pub pid: i64,
    /// When the task started, with a UTC offset.
    #[serde(with = "time::serde::rfc3339")]
    pub start_date: OffsetDateTime,
}

/// The only state `/run` moves a task instance to.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunningState {
    /// `running`.
    #[default]
    Running,
}

/// `PUT /task-instances/{id}/heartbeat` body: `TIHeartbeatInfo`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TIHeartbeatInfo {
    /// Host the task runs on; must match the one given to `/run`.
    pub hostname: String,
    /// Process id; must match the one given to `/run`.
    #[serde(deserialize_with = "integer")]
    pub pid: i64,
}

/// `PATCH /task-instances/{id}/state` body: the SDK's union discriminated by `state`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TIStateUpdate {
    /// `TISuccessStatePayload`.
    Success(TISuccessStatePayload),
    /// `TITerminalStatePayload` with `failed`.
    Failed(TITerminalStatePayload),
    /// `TITerminalStatePayload` with `skipped`.
    Skipped(TITerminalStatePayload),
    /// `TITerminalStatePayload` with `removed`.
    Removed(TITerminalStatePayload),
    /// `TITerminalStatePayload` with `upstream_failed`.
    UpstreamFailed(TITerminalStatePayload),
    /// `TIRetryStatePayload`.
    UpForRetry(TIRetryStatePayload),
    /// `TIRescheduleStatePayload`.
    UpForReschedule(TIRescheduleStatePayload),
    /// `TIDeferredStatePayload`: parsed but not supported (no triggerer here).
    Deferred(serde_json::Map<String, serde_json::Value>),
    /// `TIAwaitingInputStatePayload`: parsed but not supported.
    AwaitingInput(serde_json::Map<String, serde_json::Value>),
}

impl TIStateUpdate {
    /// The target state's name as stored and as Airflow spells it.
    pub fn state(&self) -> &'static str {
        self.to_change().target().as_str()
    }

    /// What the store is asked to do.
    pub fn to_change(&self) -> store::StateChange {
        use store::{StateChange, TerminalState, TiState};
        let terminal = |state, p: &TITerminalStatePayload| StateChange::Terminal {
            state,
            end_date: p.end_date,
            rendered_map_index: p.rendered_map_index.clone(),
        };
        match self {
            TIStateUpdate::Success(p) => StateChange::Terminal {
                state: TerminalState::Success,
                end_date: p.end_date,
                rendered_map_index: p.rendered_map_index.clone(),
            },
            TIStateUpdate::Failed(p) => terminal(TerminalState::Failed, p),
            TIStateUpdate::Skipped(p) => terminal(TerminalState::Skipped, p),
            TIStateUpdate::Removed(p) => terminal(TerminalState::Removed, p),
            TIStateUpdate::UpstreamFailed(p) => terminal(TerminalState::UpstreamFailed, p),
            TIStateUpdate::UpForRetry(p) => StateChange::Retry {
                end_date: p.end_date,
                rendered_map_index: p.rendered_map_index.clone(),
                retry_delay_seconds: p.retry_delay_seconds,
                retry_reason: p.retry_reason.clone(),
            },
            TIStateUpdate::UpForReschedule(p) => StateChange::Reschedule {
                reschedule_date: p.reschedule_date,
                end_date: p.end_date,
            },
            TIStateUpdate::Deferred(_) => StateChange::Unsupported(TiState::Deferred),
            TIStateUpdate::AwaitingInput(_) => StateChange::Unsupported(TiState::AwaitingInput),
        }
    }
}

impl TIEnterRunningPayload {
    /// What the store is asked to do.
    pub fn to_request(&self) -> store::StartRequest {
        store::StartRequest {
            hostname: self.hostname.clone(),
            unixname: self.unixname.clone(),
            pid: self.pid,
            start_date: self.start_date,
        }
    }
}

impl TIHeartbeatInfo {
    /// What the store is asked to do.
    pub fn to_beat(&self) -> store::Beat {
        store::Beat {
            hostname: self.hostname.clone(),
            pid: self.pid,
        }
    }
}

/// `TISuccessStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TISuccessStatePayload {
    /// When the task ended.
    #[serde(with = "time::serde::rfc3339")]
    pub end_date: OffsetDateTime,
    /// Asset outlets; accepted and ignored (no asset support here).
    #[serde(default)]
    pub task_outlets: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    /// Asset events; accepted and ignored.
    #[serde(default)]
    pub outlet_events: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    /// Rendered map index: absent leaves it, `null` clears it, a string sets it.
    #[serde(default, deserialize_with = "present")]
    pub rendered_map_index: Option<Option<String>>,
}

/// `TITerminalStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TITerminalStatePayload {
    /// When the task ended.
    #[serde(with = "time::serde::rfc3339")]
    pub end_date: OffsetDateTime,
    /// Rendered map index: absent leaves it, `null` clears it, a string sets it.
    #[serde(default, deserialize_with = "present")]
    pub rendered_map_index: Option<Option<String>>,
}

/// `TIRetryStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TIRetryStatePayload {
    /// When the try ended.
    #[serde(with = "time::serde::rfc3339")]
    pub end_date: OffsetDateTime,
    /// Rendered map index: absent leaves it, `null` clears it, a string sets it.
    #[serde(default, deserialize_with = "present")]
    pub rendered_map_index: Option<Option<String>>,
    /// Override of the task's retry delay.
    #[serde(default)]
    pub retry_delay_seconds: Option<f64>,
    /// Why the task asks for a retry (kept to 500 characters, like Airflow).
    #[serde(default)]
    pub retry_reason: Option<String>,
}

/// `TIRescheduleStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TIRescheduleStatePayload {
    /// When the task should run again.
    #[serde(with = "time::serde::rfc3339")]
    pub reschedule_date: OffsetDateTime,
    /// When this try ended.
    #[serde(with = "time::serde::rfc3339")]
    pub end_date: OffsetDateTime,
}

/// `DagRun` as the SDK parses it (`extra="forbid"`: no field more).
#[derive(Clone, Debug, Serialize)]
pub struct DagRun {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Logical date (RFC 3339), if any.
    pub logical_date: Option<String>,
    /// Start of the data interval.
    pub data_interval_start: Option<String>,
    /// End of the data interval.
    pub data_interval_end: Option<String>,
    /// Earliest time the run may start.
    pub run_after: String,
    /// When the run started.
    pub start_date: Option<String>,
    /// When the run ended.
    pub end_date: Option<String>,
    /// How often the run was cleared.
    pub clear_number: i64,
    /// `manual`, `scheduled`, `backfill`, ...
    pub run_type: String,
    /// `queued`, `running`, `success`, `failed`.
    pub state: Option<String>,
    /// The run's configuration object.
    pub conf: Option<Box<RawValue>>,
    /// Who triggered the run.
    pub triggering_user_name: Option<String>,
    /// Asset events that triggered the run.
    pub consumed_asset_events: Vec<serde_json::Value>,
    /// Partition key.
    pub partition_key: Option<String>,
    /// Partition date.
    pub partition_date: Option<String>,
    /// Always `null`, as in Airflow (its `dag_run_note` is never loaded here).
    pub note: Option<String>,
    /// Team of the DAG in multi-team mode.
    pub team_name: Option<String>,
}

impl DagRun {
    /// The wire form of a stored DAG run.
    pub fn from_store(run: store::DagRun) -> Result<DagRun, serde_json::Error> {
        Ok(DagRun {
            dag_id: run.dag_id,
            run_id: run.run_id,
            logical_date: run.logical_date.map(timestamp),
            data_interval_start: run.data_interval_start.map(timestamp),
            data_interval_end: run.data_interval_end.map(timestamp),
            run_after: timestamp(run.run_after),
            start_date: run.start_date.map(timestamp),
            end_date: run.end_date.map(timestamp),
            clear_number: run.clear_number,
            run_type: run.run_type,
            state: run.state,
            conf: run.conf.map(RawValue::from_string).transpose()?,
            triggering_user_name: run.triggering_user_name,
            consumed_asset_events: Vec::new(),
            partition_key: run.partition_key,
            partition_date: run.partition_date.map(timestamp),
            note: None,
            team_name: None,
        })
    }
}

/// `TIRunContext`: what `/run` answers.
#[derive(Clone, Debug, Serialize)]
pub struct TIRunContext {
    /// The task instance's DAG run.
    pub dag_run: DagRun,
    /// How often the task instance was rescheduled.
    pub task_reschedule_count: i64,
    /// Maximum number of tries.
    pub max_tries: i64,
    /// Variables pre-loaded for the task (always empty, as in Airflow).
    pub variables: Vec<VariableResponse>,
    /// Connections pre-loaded for the task (always empty, as in Airflow).
    pub connections: Vec<ConnectionResponse>,
    /// XCom keys left by an earlier try, which the worker should clear.
    pub xcom_keys_to_clear: Vec<String>,
    /// Whether a failure should lead to a retry.
    pub should_retry: bool,
    /// Method to resume with after a deferral (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_method: Option<String>,
    /// Its arguments, as stored (present with `next_method`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_kwargs: Option<Option<Box<RawValue>>>,
    /// The task instance's start date before this `/run` (present with `next_method`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<Option<String>>,
}

impl TIRunContext {
    /// The wire form of a stored run context.
    pub fn from_store(ctx: store::RunContext) -> Result<TIRunContext, serde_json::Error> {
        let (next_method, next_kwargs, start_date) = match ctx.resume {
            Some(resume) => (
                Some(resume.next_method),
                Some(
                    resume
                        .next_kwargs
                        .filter(|k| k.trim() != "null")
                        .map(RawValue::from_string)
                        .transpose()?,
                ),
                Some(resume.start_date.map(timestamp)),
            ),
            None => (None, None, None),
        };
        Ok(TIRunContext {
            dag_run: DagRun::from_store(ctx.dag_run)?,
            task_reschedule_count: ctx.task_reschedule_count,
            max_tries: ctx.max_tries,
            variables: Vec::new(),
            connections: Vec::new(),
            xcom_keys_to_clear: ctx.xcom_keys_to_clear,
            should_retry: ctx.should_retry,
            next_method,
            next_kwargs,
            start_date,
        })
    }
}

/// `VariableResponse`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VariableResponse {
    /// Variable key.
    pub key: String,
    /// Variable value.
    pub value: Option<String>,
}

impl From<store::Variable> for VariableResponse {
    fn from(v: store::Variable) -> Self {
        VariableResponse {
            key: v.key,
            value: Some(v.value),
        }
    }
}

impl From<store::Connection> for ConnectionResponse {
    fn from(c: store::Connection) -> Self {
        ConnectionResponse {
            conn_id: c.conn_id,
            conn_type: c.conn_type,
            host: c.host,
            schema: c.schema,
            login: c.login,
            password: c.password,
            port: c.port,
            extra: c.extra,
        }
    }
}

/// `VariablePostBody`: `PUT /variables/{key}` body.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariablePostBody {
    /// The value (required, may be `null`).
    #[serde(deserialize_with = "required_nullable")]
    pub val: Option<String>,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `ConnectionResponse`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConnectionResponse {
    /// Connection id.
    pub conn_id: String,
    /// Connection type, e.g. `postgres`.
    pub conn_type: String,
    /// Host.
    pub host: Option<String>,
    /// Schema (database) name.
    pub schema: Option<String>,
    /// Login.
    pub login: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// Extra, a JSON document as a string.
    pub extra: Option<String>,
}

/// `XComResponse`.
#[derive(Clone, Debug, Serialize)]
pub struct XComResponse {
    /// XCom key.
    pub key: String,
    /// The stored JSON value, as stored (numbers stay exact).
    pub value: Box<RawValue>,
}

/// `{"message": "..."}`, the body of Airflow's write endpoints.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MessageResponse {
    /// What happened.
    pub message: String,
}

/// An integer, also written as a float without fraction (`42.0`), which JSON
/// Schema and pydantic both count as an integer.
fn integer<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Integer;

    impl serde::de::Visitor<'_> for Integer {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            // 2^63 as f64: the first value past i64::MAX.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
                Ok(v as i64)
            } else {
                Err(E::custom(format!("expected an integer, got {v}")))
            }
        }
    }

    deserializer.deserialize_any(Integer)
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or set: serde
/// calls this only when the field is present.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A field that must be present but may be `null` (pydantic's `x: str | None`
/// without a default); serde would otherwise treat a missing `Option` as `None`.
fn required_nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_update_is_discriminated_by_state() {
        let ok: TIStateUpdate =
            serde_json::from_str(r#"{"state":"success","end_date":"2024-01-01T00:00:00Z"}"#)
                .unwrap();
        assert_eq!(ok.state(), "success");
        let failed: TIStateUpdate = serde_json::from_str(
            r#"{"state":"failed","end_date":"2024-01-01T00:00:00+00:00","rendered_map_index":null}"#,
        )
        .unwrap();
        assert_eq!(failed.state(), "failed");
        assert!(
            serde_json::from_str::<TIStateUpdate>(
                r#"{"state":"failed","end_date":"2024-01-01T00:00:00Z","bogus":1}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<TIStateUpdate>(r#"{"state":"running"}"#).is_err());
        assert!(
            serde_json::from_str::<TIStateUpdate>(r#"{"state":"success","end_date":"yesterday"}"#)
                .is_err()
        );
    }

    #[test]
    fn pids_may_be_written_as_whole_floats() {
        let info: TIHeartbeatInfo =
            serde_json::from_str(r#"{"hostname": "h", "pid": 539.0}"#).unwrap();
        assert_eq!(info.pid, 539);
        assert!(
            serde_json::from_str::<TIHeartbeatInfo>(r#"{"hostname": "h", "pid": 1.5}"#).is_err()
        );
        assert!(
            serde_json::from_str::<TIHeartbeatInfo>(r#"{"hostname": "h", "pid": "1"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<TIHeartbeatInfo>(r#"{"hostname": "h", "pid": 1e300}"#).is_err()
        );
    }

    #[test]
    fn variable_body_needs_val_but_it_may_be_null() {
        assert!(serde_json::from_str::<VariablePostBody>("{}").is_err());
        let body: VariablePostBody = serde_json::from_str(r#"{"val": null}"#).unwrap();
        assert_eq!(body.val, None);
        let body: VariablePostBody =
            serde_json::from_str(r#"{"val": "v", "description": "d"}"#).unwrap();
        assert_eq!(body.val.as_deref(), Some("v"));
    }

    #[test]
    fn enter_running_accepts_the_sdk_body() {
        let body = r#"{"state":"running","hostname":"h","unixname":"u","pid":42,"start_date":"2024-05-01T10:00:00.123456Z"}"#;
        let p: TIEnterRunningPayload = serde_json::from_str(body).unwrap();
        assert_eq!(p.pid, 42);
        let no_state =
            r#"{"hostname":"h","unixname":"u","pid":42,"start_date":"2024-05-01T10:00:00Z"}"#;
        assert!(serde_json::from_str::<TIEnterRunningPayload>(no_state).is_ok());
        let wrong = r#"{"state":"success","hostname":"h","unixname":"u","pid":42,"start_date":"2024-05-01T10:00:00Z"}"#;
        assert!(serde_json::from_str::<TIEnterRunningPayload>(wrong).is_err());
    }
}
