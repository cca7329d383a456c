//! `/dag-runs/...`: DAG runs, and the `DagRun` wire type shared with `/run`.
//!
//! Routes are declared in Airflow's order: the legacy `/{dag_id}/previous`
//! (API versions 2025-08-10 to 2025-11-05) before `/{dag_id}/{run_id}`.

use actix_web::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::ApiError;
use crate::store::{self, timestamp};

/// The routes.
#[policy_macros::execution_router(prefix = "/execution/dag-runs")]
pub mod routes {
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;
    use serde_json::json;

    use super::{DagRun, Params, legacy_json, not_found_run};
    use crate::api::ApiError;
    use crate::store::{DagRunFilter, Store};

    /// Redirect old previous dag run request to the new endpoint.
    ///
    /// Only in API versions 2025-08-10 to 2025-11-05 (declared first, as in
    /// Airflow, so it is not shadowed by `/{dag_id}/{run_id}`): the newest
    /// run before `logical_date`, or `null`; datetimes as `+00:00`.
    #[execution_route(get, "/{dag_id}/previous")]
    pub async fn get_previous_dagrun_compat(
        store: web::Data<Store>,
        dag_id: web::Path<String>,
        query: web::Query<Vec<(String, String)>>,
    ) -> Result<HttpResponse, ApiError> {
        let params = Params(&query);
        let logical_date = params.required_time("logical_date")?;
        let state = params.dag_run_state()?;
        let run = store.previous_dag_run(&dag_id, logical_date, state).await?;
        let body = match run {
            Some(run) => legacy_json(DagRun::from_store(run).map_err(ApiError::internal)?),
            None => serde_json::Value::Null,
        };
        Ok(HttpResponse::Ok().json(body))
    }

    /// Get detail of a Dag run.
    ///
    /// The `DagRun` (`consumed_asset_events` always `[]`, `note` always
    /// `null`, as in Airflow), or 404.
    #[execution_route(get, "/{dag_id}/{run_id}")]
    pub async fn get_dag_run(
        store: web::Data<Store>,
        path: web::Path<(String, String)>,
    ) -> Result<HttpResponse, ApiError> {
        let (dag_id, run_id) = path.into_inner();
        match store.dag_run(&dag_id, &run_id).await? {
            Some(run) => {
                Ok(HttpResponse::Ok().json(DagRun::from_store(run).map_err(ApiError::internal)?))
            }
            None => Err(not_found_run(&dag_id, &run_id)),
        }
    }

    /// Get a Dag run State.
    ///
    /// `{"state": ...}`, or 404.
    #[execution_route(get, "/{dag_id}/{run_id}/state")]
    pub async fn get_dagrun_state(
        store: web::Data<Store>,
        path: web::Path<(String, String)>,
    ) -> Result<HttpResponse, ApiError> {
        let (dag_id, run_id) = path.into_inner();
        match store.dag_run_state(&dag_id, &run_id).await? {
            Some(state) => Ok(HttpResponse::Ok().json(json!({"state": state}))),
            None => Err(not_found_run(&dag_id, &run_id)),
        }
    }

    /// Get the count of Dag runs matching the given criteria.
    ///
    /// `?dag_id=` (required) and any of the repeated filters `logical_dates`,
    /// `run_ids`, `states`: a bare integer.
    #[execution_route(get, "/count")]
    pub async fn get_dr_count(
        store: web::Data<Store>,
        query: web::Query<Vec<(String, String)>>,
    ) -> Result<HttpResponse, ApiError> {
        let params = Params(&query);
        let dag_id = params.required("dag_id")?;
        let filter = DagRunFilter {
            logical_dates: params
                .all("logical_dates")
                .map(|text| super::parse_time("logical_dates", text))
                .collect::<Result<_, _>>()?,
            run_ids: params.all("run_ids").map(str::to_owned).collect(),
            states: params.all("states").map(str::to_owned).collect(),
        };
        let count = store.count_dag_runs(dag_id, &filter).await?;
        Ok(HttpResponse::Ok().json(count))
    }

    /// Get the previous Dag run before the given logical date, optionally filtered by state.
    ///
    /// `?dag_id=&logical_date=[&state=]`: the newest run before
    /// `logical_date`, or `null`.
    #[execution_route(get, "/previous")]
    pub async fn get_previous_dagrun(
        store: web::Data<Store>,
        query: web::Query<Vec<(String, String)>>,
    ) -> Result<HttpResponse, ApiError> {
        let params = Params(&query);
        let dag_id = params.required("dag_id")?;
        let logical_date = params.required_time("logical_date")?;
        let state = params.dag_run_state()?;
        match store.previous_dag_run(dag_id, logical_date, state).await? {
            Some(run) => {
                Ok(HttpResponse::Ok().json(DagRun::from_store(run).map_err(ApiError::internal)?))
            }
            None => Ok(HttpResponse::Ok().json(serde_json::Value::Null)),
        }
    }
}

/// 404 for a missing run, as `get_dag_run` and `get_dagrun_state` word it.
fn not_found_run(dag_id: &str, run_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found"
    ))
}

/// A query string's pairs, read as FastAPI reads query parameters (a list
/// parameter repeats its key; the last value of a scalar one wins).
struct Params<'a>(&'a [(String, String)]);

impl<'a> Params<'a> {
    fn all(&self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn get(&self, name: &'a str) -> Option<&'a str> {
        self.all(name).last()
    }

    fn required(&self, name: &'a str) -> Result<&'a str, ApiError> {
        self.get(name).ok_or_else(|| {
            ApiError::validation(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec!["query".into(), name.into()],
                "Field required",
                "missing",
            )
        })
    }

    fn required_time(&self, name: &'a str) -> Result<OffsetDateTime, ApiError> {
        parse_time(name, self.required(name)?)
    }

    /// `?state=`: a `DagRunState` (`queued`, `running`, `success`, `failed`).
    fn dag_run_state(&self) -> Result<Option<&'a str>, ApiError> {
        match self.get("state") {
            None => Ok(None),
            Some(state @ ("queued" | "running" | "success" | "failed")) => Ok(Some(state)),
            Some(_) => Err(ApiError::validation(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec!["query".into(), "state".into()],
                "Input should be 'queued', 'running', 'success' or 'failed'",
                "enum",
            )),
        }
    }
}

/// An aware datetime (pydantic's `AwareDatetime`: RFC 3339, `T` or a space
/// between date and time, an offset required), in UTC.
fn parse_time(name: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    let normalized = match text.as_bytes().get(10) {
        Some(b' ') => format!("{}T{}", &text[..10], &text[11..]),
        _ => text.to_owned(),
    };
    OffsetDateTime::parse(&normalized, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| {
            ApiError::validation(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec!["query".into(), name.into()],
                "Input should be a valid datetime with timezone information",
                "timezone_aware",
            )
        })
}

/// The legacy route's body: no response model there, so FastAPI's encoder
/// writes datetimes with `+00:00`, not `Z`.
fn legacy_json(run: DagRun) -> Value {
    let mut value = serde_json::to_value(run).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        const TIMES: [&str; 7] = [
            "logical_date",
            "data_interval_start",
            "data_interval_end",
            "run_after",
            "start_date",
            "end_date",
            "partition_date",
        ];
        for (_, field) in fields
            .iter_mut()
            .filter(|(k, _)| TIMES.contains(&k.as_str()))
        {
            if let Value::String(text) = field
                && text.len() > 20
                && text.ends_with('Z')
                && text.as_bytes().get(10) == Some(&b'T')
            {
                *text = format!("{}+00:00", &text[..text.len() - 1]);
            }
        }
    }
    value
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
