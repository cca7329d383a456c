//! `/dag-runs/...`: DAG runs, and the `DagRun` wire type shared with `/run`.
//!
//! Routes are declared in Airflow's order: the legacy `/{dag_id}/previous`
//! (API versions 2025-08-10 to 2025-11-05) before `/{dag_id}/{run_id}`.

use actix_web::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::ApiError;
use crate::store::{self, timestamp};

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/dag-runs", scopes = ["ti:running"])]
pub mod routes {
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;
    use serde_json::json;

    use actix_web::http::StatusCode;
    use policy_core::Token;
    use time::OffsetDateTime;

    use super::{
        DagRun, DagRunCountQuery, Params, PreviousDagRunQuery, TriggerDAGRunPayload,
        already_exists, legacy_json, not_found_run,
    };
    use crate::api::bounds::{self, fits_opt, loc};
    use crate::api::{ApiError, Payload};
    use crate::store::columns::{DAG_RUN_NOTE_CONTENT, DAG_RUN_PARTITION_KEY};
    use crate::store::{
        ClearOutcome, DagRunFilter, NeedsPython, NewDagRun, Store, TriggerOutcome,
        plan_task_instances,
    };

    /// Redirect old previous dag run request to the new endpoint.
    ///
    /// Only in API versions 2025-08-10 to 2025-11-05 (declared first, as in
    /// Airflow, so it is not shadowed by `/{dag_id}/{run_id}`): the newest
    /// run before `logical_date`, or `null`; datetimes as `+00:00`. From
    /// 2026-04-06 on, this path is the run named `previous`, as in Airflow.
    #[execution_route(get, "/{dag_id}/previous", responses = [200 => Option<DagRun>])]
    pub async fn get_previous_dagrun_compat(
        store: web::Data<Store>,
        dag_id: web::Path<String>,
        query: web::Query<Vec<(String, String)>>,
        version: crate::versions::ApiVersion,
    ) -> Result<HttpResponse, ApiError> {
        if version >= crate::versions::ApiVersion::V2026_04_06 {
            return get_dag_run(
                store,
                web::Path::from((dag_id.into_inner(), "previous".to_owned())),
            )
            .await;
        }
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
    #[execution_route(get, "/{dag_id}/{run_id}", responses = [200 => DagRun, 404])]
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

    /// Trigger a Dag run.
    ///
    /// Creates a queued `operator_triggered` run of the DAG's latest serialized
    /// version with one task instance per task, as Airflow's `trigger_dag`
    /// writes them: 204. 404 for an unknown or stale DAG, 400 for import
    /// errors, a refused run type, a bad run id, a partition key on an
    /// unpartitioned DAG, or what only Python can compute (a timetable's data
    /// interval, parameter schemas, deadline alerts); 409 if the run exists.
    #[execution_route(post, "/{dag_id}/{run_id}", responses = [204, 400, 404, 409])]
    pub async fn trigger_dag_run(
        store: web::Data<Store>,
        token: Token,
        path: web::Path<(String, String)>,
        payload: Payload<TriggerDAGRunPayload>,
    ) -> Result<HttpResponse, ApiError> {
        let (dag_id, run_id) = path.into_inner();
        let payload = payload.0;
        bounds::DAG_RUN_RUN_ID.check(&run_id)?;
        fits_opt(
            DAG_RUN_PARTITION_KEY,
            loc!["body", "partition_key"],
            payload.partition_key.as_deref(),
        )?;
        fits_opt(
            DAG_RUN_NOTE_CONTENT,
            loc!["body", "note"],
            payload.note.as_deref(),
        )?;
        let bad = |reason: &str, message: String| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                json!({"reason": reason, "message": message}),
            )
        };
        let not_found = || ApiError::not_found(format!("Dag with dag_id: '{dag_id}' not found"));
        let logical_date = payload
            .logical_date
            .as_deref()
            .map(|t| super::parse_time_at(vec!["body".into(), "logical_date".into()], t))
            .transpose()?;
        let run_after = payload
            .run_after
            .as_deref()
            .map(|t| super::parse_time_at(vec!["body".into(), "run_after".into()], t))
            .transpose()?
            .unwrap_or_else(OffsetDateTime::now_utc);
        let Some(info) = store
            .dag_trigger_info(&dag_id)
            .await?
            .filter(|i| !i.is_stale)
        else {
            return Err(not_found());
        };
        if info.has_import_errors {
            return Err(bad(
                "import_errors",
                format!("Dag with dag_id '{dag_id}' has import errors and cannot be triggered"),
            ));
        }
        if info
            .allowed_run_types
            .as_ref()
            .is_some_and(|types| !types.iter().any(|t| t == "operator_triggered"))
        {
            return Err(bad(
                "denied_run_type",
                format!("Dag with dag_id '{dag_id}' does not allow operator-triggered runs"),
            ));
        }
        let triggering_user_name = store.triggering_user_of(token.sub()).await?;
        // Airflow's DBDagBag finds no serialized DAG: a 500 there, a 404 here.
        let Some(dag) = store.latest_serialized_dag(&dag_id).await? else {
            return Err(not_found());
        };
        let timetable = super::timetable_kind(&dag);
        let data_interval = match logical_date {
            None => None,
            Some(logical_date) => {
                if let Some(start) = super::default_args_start_date(&dag)
                    && logical_date < start
                {
                    return Err(bad(
                        "value_error",
                        format!(
                            "Logical date [{}] should be >= start_date [{}] from Dag's default_args",
                            super::isoformat(logical_date),
                            super::isoformat(start)
                        ),
                    ));
                }
                match timetable {
                    // `_TrivialTimetable.infer_manual_data_interval`: exactly run_after.
                    super::Timetable::Trivial => Some((run_after, run_after)),
                    super::Timetable::Other(name) => {
                        return Err(bad(
                            "unsupported_timetable",
                            format!(
                                "Dag '{dag_id}' has the timetable {name}, whose data interval for \
                                 a logical date only Airflow's Python code computes; trigger it \
                                 without a logical date or through Airflow's API server"
                            ),
                        ));
                    }
                }
            }
        };
        if store.dag_run(&dag_id, &run_id).await?.is_some() {
            return Err(already_exists(&dag_id, &run_id));
        }
        if let Some(key) = &payload.partition_key {
            let _ = key;
            return Err(match timetable {
                super::Timetable::Trivial => bad(
                    "not_partitioned",
                    format!(
                        "Dag '{dag_id}' is not a partitioned Dag and does not accept a partition_key."
                    ),
                ),
                super::Timetable::Other(name) => bad(
                    "unsupported_timetable",
                    format!(
                        "Dag '{dag_id}' has the timetable {name}, whose partition keys only \
                         Airflow's Python code resolves"
                    ),
                ),
            });
        }
        super::check_run_id(&run_id).map_err(|m| bad("value_error", m))?;
        super::check_params(&dag, &payload.conf).map_err(|(reason, m)| bad(reason, m))?;
        if dag
            .data
            .get("dag")
            .and_then(|d| d.get("deadline"))
            .is_some_and(|d| !d.is_null())
        {
            return Err(bad(
                "unsupported_deadline",
                format!(
                    "Dag '{dag_id}' has deadline alerts, whose deadlines only Airflow's Python \
                     code computes"
                ),
            ));
        }
        let task_instances = plan_task_instances(&dag, logical_date)
            .map_err(|NeedsPython(why)| bad("unsupported_dag", why))?;
        let new = NewDagRun {
            dag_id: dag_id.clone(),
            run_id: run_id.clone(),
            logical_date,
            data_interval,
            run_after,
            conf: serde_json::Value::Object(payload.conf).to_string(),
            triggering_user_name,
            note: payload.note,
            dag_version_id: dag.dag_version_id,
            disable_bundle_versioning: dag
                .data
                .get("dag")
                .and_then(|d| d.get("disable_bundle_versioning"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            task_instances,
        };
        match store.trigger_dag_run(&new).await? {
            TriggerOutcome::Created => Ok(HttpResponse::NoContent().finish()),
            TriggerOutcome::RunIdTaken => Err(already_exists(&dag_id, &run_id)),
            TriggerOutcome::LogicalDateTaken => Err(ApiError::conflict(json!({
                "reason": "Unique constraint violation",
                "statement": "hidden",
                "orig_error": "hidden",
                "message": format!(
                    "A run already exists for Dag '{dag_id}' with logical date {}",
                    super::isoformat(logical_date.unwrap_or(run_after))
                ),
            }))),
        }
    }

    /// Clear a Dag run.
    ///
    /// Every task instance of the run is archived to `task_instance_history`,
    /// gets a new id and is reset (a running one becomes `restarting`); the run
    /// is queued again if it had finished (Airflow's `DAG.clear`): 204. 404 for
    /// an unknown or stale DAG, an unknown run, or a run whose serialized DAG is
    /// gone; 400 for import errors, or what only Python can do (re-running on
    /// the latest version, deadline alerts).
    #[execution_route(post, "/{dag_id}/{run_id}/clear", responses = [204, 400, 404])]
    pub async fn clear_dag_run(
        store: web::Data<Store>,
        path: web::Path<(String, String)>,
    ) -> Result<HttpResponse, ApiError> {
        let (dag_id, run_id) = path.into_inner();
        let bad = |reason: &str, message: String| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                json!({"reason": reason, "message": message}),
            )
        };
        let Some(info) = store
            .dag_trigger_info(&dag_id)
            .await?
            .filter(|i| !i.is_stale)
        else {
            return Err(ApiError::not_found(format!(
                "Dag with dag_id: '{dag_id}' not found"
            )));
        };
        if info.has_import_errors {
            return Err(bad(
                "import_errors",
                format!("Dag with dag_id '{dag_id}' has import errors and cannot be triggered"),
            ));
        }
        let Some(run) = store.dag_run(&dag_id, &run_id).await? else {
            return Err(ApiError::not_found(format!(
                "Dag run with run_id: '{run_id}' not found"
            )));
        };
        let _ = run;
        let Some(dag) = store.serialized_dag_for_run(&dag_id, &run_id).await? else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                json!(format!("The Dag with ID: `{dag_id}` was not found")),
            ));
        };
        let document = dag.data.get("dag");
        if document
            .and_then(|d| d.get("rerun_with_latest_version"))
            .and_then(serde_json::Value::as_bool)
            == Some(true)
        {
            return Err(bad(
                "unsupported_dag",
                format!(
                    "Dag '{dag_id}' re-runs on its latest version, which needs Airflow's Python \
                     code to re-create the run's task instances; clear it through Airflow's API \
                     server"
                ),
            ));
        }
        if document
            .and_then(|d| d.get("deadline"))
            .is_some_and(|d| !d.is_null())
        {
            return Err(bad(
                "unsupported_deadline",
                format!(
                    "Dag '{dag_id}' has deadline alerts, whose deadlines only Airflow's Python \
                     code recomputes"
                ),
            ));
        }
        let tasks = plan_task_instances(&dag, None)
            .map_err(|NeedsPython(why)| bad("unsupported_dag", why))?;
        match store
            .clear_dag_run(&dag_id, &run_id, &tasks, Some(dag.dag_version_id))
            .await?
        {
            ClearOutcome::Cleared => Ok(HttpResponse::NoContent().finish()),
            ClearOutcome::NoRun => Err(ApiError::not_found(format!(
                "Dag run with run_id: '{run_id}' not found"
            ))),
        }
    }

    /// Get a Dag run State.
    ///
    /// `{"state": ...}`, or 404.
    #[execution_route(get, "/{dag_id}/{run_id}/state", responses = [200 => serde_json::Value, 404])]
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
    #[execution_route(get, "/count", query = DagRunCountQuery, responses = [200 => i64])]
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
    #[execution_route(get, "/previous", query = PreviousDagRunQuery, responses = [200 => Option<DagRun>])]
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

/// The query of `GET /dag-runs/count`, for the API document: the handler reads these names
/// (repeated keys are lists, as in FastAPI) with `Params`, and `airflow_routes.rs` checks them
/// against Airflow's document.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DagRunCountQuery {
    /// The DAG.
    pub dag_id: String,
    /// Only runs with these logical dates (timezone-aware).
    #[serde(default)]
    pub logical_dates: Vec<String>,
    /// Only these runs.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// Only runs in these states.
    #[serde(default)]
    pub states: Vec<String>,
}

/// The query of `GET /dag-runs/previous`, for the API document (read with `Params`).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PreviousDagRunQuery {
    /// The DAG.
    pub dag_id: String,
    /// The run returned is the newest before this logical date (timezone-aware).
    pub logical_date: String,
    /// Only a run in this state.
    pub state: Option<String>,
}

/// `TriggerDAGRunPayload` (`extra="forbid"`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerDAGRunPayload {
    /// Logical date (aware), if any.
    #[serde(default)]
    pub logical_date: Option<String>,
    /// Earliest time the run may start (aware); now if absent.
    #[serde(default)]
    pub run_after: Option<String>,
    /// The run's configuration (an object; `{}` if absent).
    #[serde(default)]
    pub conf: serde_json::Map<String, Value>,
    /// Ignored by the server, as by Airflow's.
    #[serde(default)]
    pub reset_dag_run: bool,
    /// Partition key.
    #[serde(default)]
    #[schemars(length(max = crate::store::columns::DAG_RUN_PARTITION_KEY.max_chars))]
    pub partition_key: Option<String>,
    /// A note for the run.
    #[serde(default)]
    #[schemars(length(max = crate::store::columns::DAG_RUN_NOTE_CONTENT.max_chars))]
    pub note: Option<String>,
}

/// 409 for a run id in use.
fn already_exists(dag_id: &str, run_id: &str) -> ApiError {
    ApiError::conflict(serde_json::json!({
        "reason": "already_exists",
        "message": format!("A run already exists for Dag '{dag_id}' with run_id '{run_id}'"),
    }))
}

/// What a trigger can do with a DAG's timetable.
enum Timetable {
    /// `NullTimetable`, `OnceTimetable`, `ContinuousTimetable`,
    /// `AssetTriggeredTimetable` (not partitioned): a manual run's data interval
    /// is exactly `run_after`.
    Trivial,
    /// Anything else (its class name): only Python computes it.
    Other(String),
}

fn timetable_kind(dag: &store::SerializedDag) -> Timetable {
    const TRIVIAL: [&str; 4] = [
        "airflow.timetables.simple.NullTimetable",
        "airflow.timetables.simple.OnceTimetable",
        "airflow.timetables.simple.ContinuousTimetable",
        "airflow.timetables.simple.AssetTriggeredTimetable",
    ];
    let name = dag
        .timetable
        .as_ref()
        .and_then(|t| t.get("__type"))
        .and_then(Value::as_str)
        .unwrap_or("airflow.timetables.simple.NullTimetable");
    if TRIVIAL.contains(&name) {
        Timetable::Trivial
    } else {
        Timetable::Other(name.to_owned())
    }
}

/// `default_args["start_date"]`, serialized as `{"__type": "datetime", "__var": <epoch>}`.
fn default_args_start_date(dag: &store::SerializedDag) -> Option<OffsetDateTime> {
    let args = dag.data.get("dag")?.get("default_args")?;
    let args = args.get("__var").unwrap_or(args);
    let start = args.get("start_date")?;
    let seconds = start.get("__var").unwrap_or(start).as_f64()?;
    OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9).round() as i128).ok()
}

/// Python's `datetime.isoformat()` of a UTC time (`+00:00`, microseconds only
/// when non-zero).
fn isoformat(t: OffsetDateTime) -> String {
    let text = timestamp(t);
    let text = text.trim_end_matches('Z');
    let text = text.strip_suffix(".000000").unwrap_or(text);
    format!("{text}+00:00")
}

/// `create_dagrun`'s run id checks: no `..`, and Airflow's `RUN_ID_REGEX` or
/// `[scheduler] allowed_run_id_pattern` (its default, `^[A-Za-z0-9_.~:+-]+$`).
fn check_run_id(run_id: &str) -> Result<(), String> {
    if run_id.contains("..") {
        return Err(format!(
            "The run_id '{run_id}' must not contain '..' to prevent path traversal"
        ));
    }
    let allowed = !run_id.is_empty()
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.~:+-".contains(c));
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "The run_id provided '{run_id}' does not match regex pattern '^[A-Za-z0-9_.~:+-]+$' \
             or '^(?:manual|scheduled|asset_triggered)__(?:\\d{{4}}-\\d{{2}}-\\d{{2}}T\\d{{2}}:\\d{{2}}:\\d{{2}}\\+00:00)$'"
        ))
    }
}

/// `dag.params.deep_merge(conf).validate()` for what needs no Python: every
/// parameter must get a value (from `conf` or its default), and a schema may
/// only constrain the JSON `type`; any other schema keyword is refused, naming it.
fn check_params(
    dag: &store::SerializedDag,
    conf: &serde_json::Map<String, Value>,
) -> Result<(), (&'static str, String)> {
    let Some(params) = dag
        .data
        .get("dag")
        .and_then(|d| d.get("params"))
        .and_then(Value::as_array)
    else {
        return Ok(());
    };
    for entry in params {
        let Some([name, param]) = entry.as_array().map(Vec::as_slice) else {
            continue;
        };
        let name = name.as_str().unwrap_or_default();
        let schema = param.get("schema").map(|s| s.get("__var").unwrap_or(s));
        let value = conf.get(name).or_else(|| param.get("default"));
        let value = value.map(|v| {
            v.get("__var")
                .filter(|_| v.get("__type").is_some())
                .unwrap_or(v)
        });
        let schema = schema
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(other) = schema.keys().find(|k| k.as_str() != "type") {
            return Err((
                "unsupported_params",
                format!(
                    "Param '{name}' has the schema keyword '{other}', which only Airflow's Python \
                     code validates"
                ),
            ));
        }
        let Some(value) = value else {
            return Err((
                "value_error",
                format!("No value passed and Param has no default value for Param '{name}'"),
            ));
        };
        if let Some(kind) = schema.get("type") {
            let kinds: Vec<&str> = match kind {
                Value::String(k) => vec![k.as_str()],
                Value::Array(ks) => ks.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let fits = |k: &str| match k {
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                "null" => value.is_null(),
                _ => false,
            };
            if !kinds.iter().any(|k| fits(k)) {
                return Err((
                    "value_error",
                    format!("Invalid input for param {name}: {value} is not of type {kind}"),
                ));
            }
        }
    }
    Ok(())
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
    parse_time_at(vec!["query".into(), name.into()], text)
}

/// [`parse_time`] for a value at `loc`.
fn parse_time_at(loc: Vec<Value>, text: &str) -> Result<OffsetDateTime, ApiError> {
    let normalized = match text.as_bytes().get(10) {
        Some(b' ') => format!("{}T{}", &text[..10], &text[11..]),
        _ => text.to_owned(),
    };
    OffsetDateTime::parse(&normalized, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| {
            ApiError::validation(
                StatusCode::UNPROCESSABLE_ENTITY,
                loc,
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
#[derive(Clone, Debug, Serialize, JsonSchema)]
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
    /// Asset events that triggered the run (loaded by `/run` only, as in Airflow).
    pub consumed_asset_events: Vec<AssetEventDagRunReference>,
    /// Partition key.
    pub partition_key: Option<String>,
    /// Partition date.
    pub partition_date: Option<String>,
    /// Always `null`, as in Airflow (its `dag_run_note` is never loaded here).
    pub note: Option<String>,
    /// Team of the DAG in multi-team mode.
    pub team_name: Option<String>,
}

/// `AssetEventDagRunReference`: an asset event a DAG run consumed.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AssetEventDagRunReference {
    /// Its asset.
    pub asset: AssetReferenceAssetEventDagRun,
    /// The event's `extra` object.
    pub extra: Box<RawValue>,
    /// Task that emitted it.
    pub source_task_id: Option<String>,
    /// DAG of that task.
    pub source_dag_id: Option<String>,
    /// Run of that task.
    pub source_run_id: Option<String>,
    /// Map index of that task.
    pub source_map_index: Option<i64>,
    /// Aliases it was emitted through.
    pub source_aliases: Vec<AssetAliasReferenceAssetEventDagRun>,
    /// When it happened.
    pub timestamp: String,
    /// Partition key.
    pub partition_key: Option<String>,
}

/// `AssetReferenceAssetEventDagRun`: the asset of a consumed event.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AssetReferenceAssetEventDagRun {
    /// Name.
    pub name: String,
    /// URI.
    pub uri: String,
    /// The asset's `extra` object.
    pub extra: Box<RawValue>,
}

/// `AssetAliasReferenceAssetEventDagRun`: an alias of a consumed event.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AssetAliasReferenceAssetEventDagRun {
    /// Alias name.
    pub name: String,
}

/// A stored JSON object column as the wire's `dict` (`{}` for NULL or `null`,
/// which Airflow's non-null `extra` columns never hold but a hand-edited row may).
fn json_object(text: Option<String>) -> Result<Box<RawValue>, serde_json::Error> {
    RawValue::from_string(text.unwrap_or_else(|| "{}".to_owned()))
}

impl AssetEventDagRunReference {
    /// The wire form of a consumed event.
    pub fn from_store(
        event: store::ConsumedAssetEvent,
    ) -> Result<AssetEventDagRunReference, serde_json::Error> {
        Ok(AssetEventDagRunReference {
            asset: AssetReferenceAssetEventDagRun {
                name: event.asset_name,
                uri: event.asset_uri,
                extra: json_object(event.asset_extra)?,
            },
            extra: json_object(event.extra)?,
            source_task_id: event.source_task_id,
            source_dag_id: event.source_dag_id,
            source_run_id: event.source_run_id,
            source_map_index: event.source_map_index,
            source_aliases: event
                .source_aliases
                .into_iter()
                .map(|name| AssetAliasReferenceAssetEventDagRun { name })
                .collect(),
            timestamp: timestamp(event.timestamp),
            partition_key: event.partition_key,
        })
    }
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
