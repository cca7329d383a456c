//! `/dag-runs/...`: DAG runs, and the `DagRun` wire type shared with `/run`.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::store::{self, timestamp};

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/dag-runs")]
pub mod routes {}

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
