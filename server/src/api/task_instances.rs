//! `/task-instances/{task_instance_id}/...`: the state machine of a task instance,
//! its wire types (as the Task SDK 1.3.2 sends and parses them,
//! `airflow/sdk/api/datamodels/_generated.py`) and its router.
//!
//! Request payloads refuse unknown fields (the SDK's models are `extra="forbid"`)
//! and validate their timestamps; responses carry timestamps already rendered
//! by [`crate::store::timestamp`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::ApiError;
use super::bounds::{fits, fits_opt, loc};
use super::dag_runs::{AssetEventDagRunReference, DagRun};
use super::fields::{DateTime, TimeDelta, integer, present};
use super::{connections::ConnectionResponse, variables::VariableResponse};
use crate::store::pyjson::PyJson;
use crate::store::{self, columns, timestamp};

pub(crate) const TI_NOT_FOUND: &str = "Task Instance not found";

/// 410: the id is an earlier try's, archived in `task_instance_history`.
fn gone() -> crate::api::ApiError {
    crate::api::ApiError::new(
        actix_web::http::StatusCode::GONE,
        serde_json::json!({
            "reason": "not_found",
            "message": "Task Instance not found, it may have been moved to the Task Instance History table",
        }),
    )
}

/// The query of `GET /task-instances/count` (FastAPI's rules: repeated keys are lists).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskInstanceCountQuery {
    /// The DAG.
    pub dag_id: String,
    /// Only this map index.
    pub map_index: Option<i64>,
    /// Only these task ids.
    #[serde(default)]
    pub task_ids: Vec<String>,
    /// Only the task instances of this task group (by the DAG's latest serialized version).
    pub task_group_id: Option<String>,
    /// Only runs with these logical dates (timezone-aware).
    #[serde(default)]
    #[schemars(with = "Vec<DateTime>")]
    pub logical_dates: Vec<OffsetDateTime>,
    /// Only these runs.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// Only these states; `null` stands for "no state".
    #[serde(default)]
    pub states: Vec<String>,
}

impl crate::api::FromQuery for TaskInstanceCountQuery {
    fn read(params: &mut crate::api::QueryParams) -> Self {
        // In Airflow's order, which is the order of its 422's errors.
        let dag_id = params.required("dag_id");
        let map_index = params.integer("map_index");
        let task_ids = params.list("task_ids");
        let logical_dates = params.datetimes("logical_dates");
        let run_ids = params.list("run_ids");
        let states = params.list("states");
        let task_group_id = params.optional("task_group_id").filter(|g| !g.is_empty());
        TaskInstanceCountQuery {
            dag_id,
            map_index,
            task_ids,
            task_group_id,
            logical_dates,
            run_ids,
            states,
        }
    }
}

/// The query of `GET /task-instances/states`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskInstanceStatesQuery {
    /// The DAG.
    pub dag_id: String,
    /// Only this map index.
    pub map_index: Option<i64>,
    /// Only these task ids.
    #[serde(default)]
    pub task_ids: Vec<String>,
    /// The task instances of this task group too (by the DAG's latest serialized version).
    pub task_group_id: Option<String>,
    /// Only runs with these logical dates (timezone-aware).
    #[serde(default)]
    #[schemars(with = "Vec<DateTime>")]
    pub logical_dates: Vec<OffsetDateTime>,
    /// Only these runs.
    #[serde(default)]
    pub run_ids: Vec<String>,
}

impl crate::api::FromQuery for TaskInstanceStatesQuery {
    fn read(params: &mut crate::api::QueryParams) -> Self {
        let dag_id = params.required("dag_id");
        let map_index = params.integer("map_index");
        let task_ids = params.list("task_ids");
        let logical_dates = params.datetimes("logical_dates");
        let run_ids = params.list("run_ids");
        let task_group_id = params.optional("task_group_id").filter(|g| !g.is_empty());
        TaskInstanceStatesQuery {
            dag_id,
            map_index,
            task_ids,
            task_group_id,
            logical_dates,
            run_ids,
        }
    }
}

/// The query of `GET /task-instances/breadcrumbs`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BreadcrumbsQuery {
    /// The DAG.
    pub dag_id: String,
    /// The DAG run.
    pub run_id: String,
}

impl crate::api::FromQuery for BreadcrumbsQuery {
    fn read(params: &mut crate::api::QueryParams) -> Self {
        let dag_id = params.required("dag_id");
        let run_id = params.required("run_id");
        BreadcrumbsQuery { dag_id, run_id }
    }
}

/// The query of `GET /task-instances/previous/{dag_id}/{task_id}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PreviousTaskInstanceQuery {
    /// Only runs with a logical date before this one (timezone-aware).
    #[schemars(with = "Option<DateTime>")]
    pub logical_date: Option<OffsetDateTime>,
    /// The map index (default `-1`).
    #[serde(default = "unmapped")]
    pub map_index: i64,
    /// Only task instances in this state.
    pub state: Option<String>,
}

fn unmapped() -> i64 {
    -1
}

impl crate::api::FromQuery for PreviousTaskInstanceQuery {
    fn read(params: &mut crate::api::QueryParams) -> Self {
        let logical_date = params.datetime("logical_date");
        let map_index = params.integer("map_index").unwrap_or(-1);
        let state = params.state("state").map(|s| s.as_str().to_owned());
        PreviousTaskInstanceQuery {
            logical_date,
            map_index,
            state,
        }
    }
}

/// The routes. Those of one task instance (`/{task_instance_id}/...`) require
/// the token's subject to be that instance (`ti:self`); the others (`/count`,
/// `/states`, ...) take any execution token, as in Airflow.
#[policy_macros::execution_router(parent = super::execution, prefix = "/task-instances")]
pub mod routes {
    use actix_web::{HttpRequest, HttpResponse, web};
    use policy_core::{
        REFRESHED_TOKEN_HEADER, Subject, Subjects, Token, TokenGenerator, TokenType,
    };
    use policy_macros::execution_route;
    use serde_json::json;
    use uuid::Uuid;

    use super::{
        TI_NOT_FOUND, TIEnterRunningPayload, TIHeartbeatInfo, TIRunContext,
        TISkippedDownstreamTasksStatePayload, TIStateUpdate,
    };
    use crate::api::bounds::{fits, loc};
    use crate::api::{ApiError, MessageResponse, Payload};
    use crate::store::columns::TASK_INSTANCE_RENDERED_MAP_INDEX;
    use crate::store::pyjson::PyJson;
    use crate::store::{HeartbeatOutcome, RtifOutcome, StartOutcome, StateOutcome, Store, TiState};

    use super::{
        AssetProfile, BreadcrumbResponse, BreadcrumbsQuery, InactiveAssetsResponse,
        PrevSuccessfulDagRunResponse, PreviousTIResponse, PreviousTaskInstanceQuery,
        TaskBreadcrumbsResponse, TaskInstanceCountQuery, TaskInstanceStatesQuery,
        TaskStatesResponse,
    };
    use crate::api::{FastApiQuery, FromQuery as _, QueryParams};
    use crate::store::{AssetKey, AssetLike, TiFilter, TiStateRow};

    /// Starts a queued task instance; returns its `TIRunContext`. A workload
    /// token is exchanged for an execution token in `Refreshed-API-Token`.
    #[execution_route(patch, "/{task_instance_id}/run", scopes = ["ti:self", "token:execution", "token:workload"], responses = [200 => TIRunContext, 404, 409])]
    pub async fn run(
        req: HttpRequest,
        token: Token,
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        payload: Payload<TIEnterRunningPayload>,
    ) -> Result<HttpResponse, ApiError> {
        let id = *id;
        payload.check_lengths()?;
        // Minted before the transition so a signing failure changes nothing.
        let exchanged = match token.token_type() {
            TokenType::Workload => {
                let generator = req
                    .app_data::<TokenGenerator>()
                    .ok_or_else(|| ApiError::internal("no TokenGenerator in the app data"))?;
                let fresh = generator
                    .generate(token.sub(), TokenType::Execution, generator.default_ttl())
                    .map_err(ApiError::internal)?;
                Some(fresh)
            }
            TokenType::Execution => None,
        };
        match store.start_task_instance(id, &payload.to_request()).await? {
            StartOutcome::Started(context) => {
                // The token's task instance is running now: its calls of the next
                // seconds (XComs, ...) need not look it up again for the ownership scopes.
                if let Some(subjects) = req.app_data::<Subjects>() {
                    subjects.remember(
                        id,
                        Subject {
                            dag_id: context.dag_run.dag_id.clone(),
                            run_id: context.dag_run.run_id.clone(),
                            task_id: context.task_id.clone(),
                            map_index: context.map_index,
                            state: Some(TiState::Running.as_str().to_owned()),
                            live: true,
                        },
                    );
                }
                let context = TIRunContext::from_store(*context).map_err(|e| {
                    ApiError::internal(format!("stored JSON of task instance {id}: {e}"))
                })?;
                let mut response = HttpResponse::Ok();
                if let Some(fresh) = exchanged {
                    response.insert_header((REFRESHED_TOKEN_HEADER, fresh));
                }
                Ok(response.json(context))
            }
            StartOutcome::NotFound => Err(ApiError::not_found(TI_NOT_FOUND)),
            StartOutcome::InvalidState { previous_state } => Err(ApiError::conflict(json!({
                "reason": "invalid_state",
                "message": "TI was not in a state where it could be marked as running",
                "previous_state": previous_state,
            }))),
        }
    }

    /// Moves a running task instance to its final (or retry) state: 204, or
    /// 200 when already in that state.
    #[execution_route(patch, "/{task_instance_id}/state", scopes = ["ti:self"], responses = [204, 404, 409])]
    pub async fn update_state(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        update: Payload<TIStateUpdate>,
    ) -> Result<HttpResponse, ApiError> {
        let id = *id;
        update.check_lengths()?;
        match store
            .update_task_instance_state(id, &update.to_change())
            .await?
        {
            StateOutcome::Updated => Ok(HttpResponse::NoContent().finish()),
            StateOutcome::AlreadyInState => Ok(HttpResponse::Ok().finish()),
            StateOutcome::NotFound => Err(ApiError::not_found(TI_NOT_FOUND)),
            StateOutcome::NotRunning { previous_state } => Err(ApiError::conflict(json!({
                "reason": "invalid_state",
                "message": "TI was not in the running state so it cannot be updated",
                "previous_state": previous_state,
            }))),
            StateOutcome::Refused { reason, message } => {
                Err(ApiError::unprocessable(reason, message))
            }
        }
    }

    /// Skips the listed downstream task instances of this one's run (unless
    /// running or finished): 204.
    #[execution_route(patch, "/{task_instance_id}/skip-downstream", scopes = ["ti:self"], responses = [204, 404])]
    pub async fn skip_downstream(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        payload: Payload<TISkippedDownstreamTasksStatePayload>,
    ) -> Result<HttpResponse, ApiError> {
        match store.skip_downstream(*id, &payload.task_keys()).await? {
            Some(_) => Ok(HttpResponse::NoContent().finish()),
            None => Err(ApiError::not_found(TI_NOT_FOUND)),
        }
    }

    /// Stores the task instance's rendered template fields (secrets redacted): 201.
    #[execution_route(put, "/{task_instance_id}/rtif", scopes = ["ti:self"], responses = [201 => MessageResponse, 404, 410])]
    pub async fn put_rtif(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        fields: Payload<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<HttpResponse, ApiError> {
        if fields.is_empty() {
            // Airflow renders the fields from the task itself then, which needs
            // the DAG's Python (and answers 500); we refuse it.
            return Err(ApiError::unprocessable(
                "empty_rendered_fields",
                "no rendered fields were sent: rendering them from the task needs the DAG's \
                 Python code, which this server does not run",
            ));
        }
        let fields = PyJson::from_value(&serde_json::Value::Object(fields.0.clone()));
        match store.put_rendered_fields(*id, &fields).await? {
            RtifOutcome::Stored => Ok(HttpResponse::Created().json(MessageResponse {
                message: "Rendered task instance fields successfully set".into(),
            })),
            RtifOutcome::NotFound => Err(ApiError::not_found(TI_NOT_FOUND)),
            RtifOutcome::Archived => Err(super::gone()),
        }
    }

    /// Sets the task instance's rendered map index (the body is a JSON string): 204.
    #[execution_route(patch, "/{task_instance_id}/rendered-map-index", scopes = ["ti:self"], responses = [204, 404])]
    pub async fn rendered_map_index(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        label: web::Json<serde_json::Value>,
    ) -> Result<HttpResponse, ApiError> {
        let Some(label) = label.as_str() else {
            return Err(ApiError::validation(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                vec!["body".into()],
                "Input should be a valid string",
                "string_type",
            ));
        };
        if label.is_empty() {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "rendered_map_index cannot be empty".into(),
            ));
        }
        fits(TASK_INSTANCE_RENDERED_MAP_INDEX, loc!["body"], label)?;
        if store.set_rendered_map_index(*id, label).await? {
            Ok(HttpResponse::NoContent().finish())
        } else {
            Err(ApiError::new(
                actix_web::http::StatusCode::NOT_FOUND,
                TI_NOT_FOUND.into(),
            ))
        }
    }

    /// Records that a running task instance is alive: 204 while running for
    /// the same host and pid, else 409.
    #[execution_route(put, "/{task_instance_id}/heartbeat", scopes = ["ti:self"], responses = [204, 404, 409, 410])]
    pub async fn heartbeat(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        info: Payload<TIHeartbeatInfo>,
    ) -> Result<HttpResponse, ApiError> {
        let id = *id;
        match store.heartbeat(id, &info.to_beat()).await? {
            HeartbeatOutcome::Alive => Ok(HttpResponse::NoContent().finish()),
            HeartbeatOutcome::NotFound => Err(ApiError::not_found(TI_NOT_FOUND)),
            HeartbeatOutcome::Archived => Err(super::gone()),
            HeartbeatOutcome::RunningElsewhere { hostname, pid } => {
                Err(ApiError::conflict(json!({
                    "reason": "running_elsewhere",
                    "message": "TI is already running elsewhere",
                    "current_hostname": hostname,
                    "current_pid": pid,
                })))
            }
            HeartbeatOutcome::NotRunning { state } => Err(ApiError::conflict(json!({
                "reason": "not_running",
                "message": "TI is no longer in the running state and task should terminate",
                "current_state": state,
            }))),
        }
    }
    /// Counts the task instances of a DAG that match the filters: a bare integer.
    ///
    /// `states` may hold `"null"` for "no state" (SQL NULL); `task_group_id` needs the
    /// DAG's latest serialized version (404 when there is none, or no such group).
    #[execution_route(get, "/count", scopes = ["ti:running"], responses = [200 => i64, 404])]
    pub async fn get_task_instance_count(
        store: web::Data<Store>,
        query: FastApiQuery<TaskInstanceCountQuery>,
    ) -> Result<HttpResponse, ApiError> {
        let FastApiQuery(query) = query;
        let mut filter = TiFilter {
            dag_id: query.dag_id,
            map_index: query.map_index,
            task_ids: query.task_ids,
            logical_dates: query.logical_dates,
            run_ids: query.run_ids,
            pairs: None,
            states: query.states,
        };
        let task_group_id = query.task_group_id;
        if let Some(group_id) = &task_group_id {
            let mut pairs: Vec<(String, i64)> = group_task_instances(&store, &filter, group_id)
                .await?
                .into_iter()
                .map(|ti| (ti.task_id, ti.map_index))
                .collect();
            if pairs.is_empty() {
                // As Airflow: then the group id itself is looked for as a task id.
                pairs.push((group_id.clone(), -1));
            }
            filter.pairs = Some(pairs);
        }
        let count = store.count_task_instances(&filter).await?;
        Ok(HttpResponse::Ok().json(count))
    }

    /// Reads the states of a DAG's task instances that match the filters, by run id and
    /// task id (`<task_id>_<map_index>` for a mapped task instance).
    #[execution_route(get, "/states", scopes = ["ti:running"], responses = [200 => TaskStatesResponse, 404])]
    pub async fn get_task_instance_states(
        store: web::Data<Store>,
        query: FastApiQuery<TaskInstanceStatesQuery>,
    ) -> Result<HttpResponse, ApiError> {
        let FastApiQuery(query) = query;
        let filter = TiFilter {
            dag_id: query.dag_id,
            map_index: query.map_index,
            task_ids: query.task_ids,
            logical_dates: query.logical_dates,
            run_ids: query.run_ids,
            pairs: None,
            states: Vec::new(),
        };
        let task_group_id = query.task_group_id;
        let mut rows = store.task_instance_states(&filter).await?;
        if let Some(group_id) = &task_group_id {
            let group = group_task_instances(&store, &filter, group_id).await?;
            // As Airflow: the group's task instances are added to those of `task_ids`,
            // or replace the unfiltered list.
            if filter.task_ids.is_empty() {
                rows = group;
            } else {
                rows.extend(group);
            }
        }
        let mut task_states: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
        for row in rows {
            let key = if row.map_index < 0 {
                row.task_id
            } else {
                format!("{}_{}", row.task_id, row.map_index)
            };
            let run = task_states
                .entry(row.run_id)
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(run) = run {
                run.insert(key, row.state.map_or(serde_json::Value::Null, Into::into));
            }
        }
        Ok(HttpResponse::Ok().json(TaskStatesResponse { task_states }))
    }

    /// Lists the finished task instances of a DAG run (task id, map index, state,
    /// operator, duration), by task id and map index.
    #[execution_route(get, "/breadcrumbs", scopes = ["ti:running"], responses = [200 => TaskBreadcrumbsResponse])]
    pub async fn get_task_instance_breadcrumbs(
        store: web::Data<Store>,
        query: FastApiQuery<BreadcrumbsQuery>,
    ) -> Result<HttpResponse, ApiError> {
        let FastApiQuery(BreadcrumbsQuery { dag_id, run_id }) = query;
        let breadcrumbs = store
            .breadcrumbs(&dag_id, &run_id)
            .await?
            .into_iter()
            .map(BreadcrumbResponse::from)
            .collect();
        Ok(HttpResponse::Ok().json(TaskBreadcrumbsResponse { breadcrumbs }))
    }

    /// Reads the task's instance in the run with the newest logical date (before
    /// `logical_date` when given, in `state` when given): `PreviousTIResponse` or `null`.
    #[execution_route(get, "/previous/{dag_id}/{task_id}", scopes = ["ti:running"], query = PreviousTaskInstanceQuery, responses = [200 => Option<PreviousTIResponse>])]
    pub async fn get_previous_task_instance(
        req: HttpRequest,
        store: web::Data<Store>,
        path: web::Path<(String, String)>,
    ) -> Result<HttpResponse, ApiError> {
        // Read after the path check (a `%2F` path is 404 whatever its query), so not an
        // extractor; declared with `query = ...` for the API document.
        let (dag_id, task_id) = path.into_inner();
        // Airflow matches one segment of the decoded path: `%2F` matches no route there.
        if dag_id.contains('/') || task_id.contains('/') {
            return Err(ApiError::new(
                actix_web::http::StatusCode::NOT_FOUND,
                "Not Found".into(),
            ));
        }
        let mut params = QueryParams::of(&req);
        let query = PreviousTaskInstanceQuery::read(&mut params);
        params.finish()?;
        let previous = store
            .previous_task_instance(
                &dag_id,
                &task_id,
                query.map_index,
                query.logical_date,
                query.state.as_deref(),
            )
            .await?;
        Ok(HttpResponse::Ok().json(previous.map(PreviousTIResponse::from)))
    }

    /// Reads the dates of the newest successful run of the task instance's DAG before
    /// its own run; every field `null` when there is none (never 404, as in Airflow).
    #[execution_route(get, "/{task_instance_id}/previous-successful-dagrun", scopes = ["ti:self"], responses = [200 => PrevSuccessfulDagRunResponse])]
    pub async fn get_previous_successful_dagrun(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
    ) -> Result<HttpResponse, ApiError> {
        let dates = store
            .previous_successful_run(*id)
            .await?
            .unwrap_or_default();
        Ok(HttpResponse::Ok().json(PrevSuccessfulDagRunResponse::from(dates)))
    }

    /// Lists the assets among the task's inlets and outlets that are not active, from
    /// the serialized DAG its run was created with; 404 when the task instance is missing.
    #[execution_route(get, "/{task_instance_id}/validate-inlets-and-outlets", scopes = ["ti:self"], responses = [200 => InactiveAssetsResponse, 404])]
    pub async fn validate_inlets_and_outlets(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
    ) -> Result<HttpResponse, ApiError> {
        let place = store
            .task_instance_place(*id)
            .await?
            .ok_or_else(|| ApiError::not_found(TI_NOT_FOUND))?;
        let dag = store
            .serialized_dag_for_run(&place.dag_id, &place.run_id)
            .await?;
        let mut keys: Vec<AssetKey> = Vec::new();
        if let Some(task) = dag.as_ref().and_then(|dag| dag.task(&place.task_id)) {
            for item in task.inlets.iter().chain(&task.outlets) {
                if let AssetLike::Asset(key) = item
                    && !keys.iter().any(|k| k.name == key.name && k.uri == key.uri)
                {
                    keys.push(key.clone());
                }
            }
        }
        let active = store.active_assets(&keys).await?;
        let mut inactive_assets: Vec<AssetProfile> = keys
            .into_iter()
            .filter(|k| !active.iter().any(|(n, u)| *n == k.name && *u == k.uri))
            .map(|k| AssetProfile {
                name: Some(k.name),
                uri: Some(k.uri),
                kind: "Asset".into(),
            })
            .collect();
        inactive_assets.sort_by(|a, b| (&a.name, &a.uri).cmp(&(&b.name, &b.uri)));
        Ok(HttpResponse::Ok().json(InactiveAssetsResponse { inactive_assets }))
    }

    /// The task instances of a task group (Airflow's `_get_group_tasks`): the group as
    /// the DAG's latest serialized version has it, filtered by the same logical dates,
    /// run ids and map index (not by task ids or states).
    async fn group_task_instances(
        store: &Store,
        filter: &TiFilter,
        group_id: &str,
    ) -> Result<Vec<TiStateRow>, ApiError> {
        let dag_id = &filter.dag_id;
        let dag = store.latest_serialized_dag(dag_id).await?.ok_or_else(|| {
            ApiError::not_found(format!("The Dag with ID: `{dag_id}` was not found"))
        })?;
        let group = dag.task_group.find(group_id).ok_or_else(|| {
            ApiError::not_found(format!("Task group {group_id} not found in DAG {dag_id}"))
        })?;
        let task_ids: Vec<String> = group
            .all_task_ids()
            .into_iter()
            .map(str::to_owned)
            .collect();
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let group_filter = TiFilter {
            dag_id: dag_id.clone(),
            map_index: filter.map_index,
            task_ids,
            logical_dates: filter.logical_dates.clone(),
            run_ids: filter.run_ids.clone(),
            pairs: None,
            states: Vec::new(),
        };
        Ok(store.task_instance_states(&group_filter).await?)
    }
}

/// `PATCH /task-instances/{id}/run` body: `TIEnterRunningPayload`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TIEnterRunningPayload {
    /// Always `running` (the default when absent).
    #[serde(default)]
    pub state: RunningState,
    /// Host the task runs on.
    #[schemars(length(max = columns::TASK_INSTANCE_HOSTNAME.max_chars))]
    pub hostname: String,
    /// Unix user the task runs as.
    #[schemars(length(max = columns::TASK_INSTANCE_UNIXNAME.max_chars))]
    pub unixname: String,
    /// Process id of the task runner.
    #[serde(deserialize_with = "integer")]
    pub pid: i64,
    /// When the task started, with a UTC offset.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "DateTime")]
    pub start_date: OffsetDateTime,
}

/// The only state `/run` moves a task instance to.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunningState {
    /// `running`.
    #[default]
    Running,
}

/// `PUT /task-instances/{id}/heartbeat` body: `TIHeartbeatInfo`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TIHeartbeatInfo {
    /// Host the task runs on; must match the one given to `/run`.
    pub hostname: String,
    /// Process id; must match the one given to `/run`.
    #[serde(deserialize_with = "integer")]
    pub pid: i64,
}

/// `PATCH /task-instances/{id}/state` body: the SDK's union discriminated by `state`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
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
    /// `TIDeferredStatePayload`.
    Deferred(TIDeferredStatePayload),
    /// `TIAwaitingInputStatePayload`.
    AwaitingInput(TIAwaitingInputStatePayload),
    /// `TITargetStatePayload` with `scheduled` (valid, but Airflow ends the task `failed`).
    Scheduled(TITargetStatePayload),
    /// `TITargetStatePayload` with `queued` (likewise).
    Queued(TITargetStatePayload),
    /// `TITargetStatePayload` with `restarting` (likewise).
    Restarting(TITargetStatePayload),
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
            TIStateUpdate::Success(p) => StateChange::Success {
                end_date: p.end_date,
                rendered_map_index: p.rendered_map_index.clone(),
                outlets: store::AssetOutlets {
                    task_outlets: p
                        .task_outlets
                        .iter()
                        .map(|o| store::AssetProfile {
                            name: o.name.clone(),
                            uri: o.uri.clone(),
                            kind: o.kind.clone(),
                        })
                        .collect(),
                    outlet_events: p.outlet_events.clone(),
                },
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
            TIStateUpdate::Deferred(p) => StateChange::Deferred(store::Deferral {
                classpath: p.classpath.clone(),
                trigger_kwargs: match &p.trigger_kwargs {
                    TriggerKwargs::Dict(map) => store::TriggerKwargs::Json(PyJson::from_value(
                        &serde_json::Value::Object(map.clone()),
                    )),
                    TriggerKwargs::Encrypted(text) => store::TriggerKwargs::Encrypted(text.clone()),
                },
                trigger_timeout: p.trigger_timeout,
                queue: p.queue.clone(),
                next_method: p.next_method.clone(),
                next_kwargs: PyJson::from_value(&serde_json::Value::Object(p.next_kwargs.clone())),
            }),
            TIStateUpdate::AwaitingInput(p) => StateChange::AwaitingInput {
                timeout: p.timeout,
                next_method: p.next_method.clone(),
                next_kwargs: PyJson::from_value(&serde_json::Value::Object(p.next_kwargs.clone())),
            },
            TIStateUpdate::Scheduled(_) => StateChange::Intermediate(TiState::Scheduled),
            TIStateUpdate::Queued(_) => StateChange::Intermediate(TiState::Queued),
            TIStateUpdate::Restarting(_) => StateChange::Intermediate(TiState::Restarting),
        }
    }
}

impl TIStateUpdate {
    /// 422 for a string longer than the column it is written to (`loc` as pydantic's,
    /// with the union's tag).
    pub fn check_lengths(&self) -> Result<(), ApiError> {
        let rendered = |tag: &str, index: &Option<Option<String>>| {
            fits_opt(
                columns::TASK_INSTANCE_RENDERED_MAP_INDEX,
                loc!["body", tag, "rendered_map_index"],
                index.as_ref().and_then(Option::as_deref),
            )
        };
        match self {
            TIStateUpdate::Success(p) => {
                rendered("success", &p.rendered_map_index)?;
                check_outlet_events(&p.outlet_events)
            }
            TIStateUpdate::Failed(p)
            | TIStateUpdate::Skipped(p)
            | TIStateUpdate::Removed(p)
            | TIStateUpdate::UpstreamFailed(p) => rendered("_terminal_", &p.rendered_map_index),
            // `retry_reason` is cut to its column, as Airflow does (`store::columns`).
            TIStateUpdate::UpForRetry(p) => rendered("up_for_retry", &p.rendered_map_index),
            TIStateUpdate::Deferred(p) => {
                fits(
                    columns::TRIGGER_CLASSPATH,
                    loc!["body", "deferred", "classpath"],
                    &p.classpath,
                )?;
                fits_opt(
                    columns::TRIGGER_QUEUE,
                    loc!["body", "deferred", "queue"],
                    p.queue.as_deref(),
                )?;
                fits(
                    columns::TASK_INSTANCE_NEXT_METHOD,
                    loc!["body", "deferred", "next_method"],
                    &p.next_method,
                )
            }
            TIStateUpdate::AwaitingInput(p) => fits(
                columns::TASK_INSTANCE_NEXT_METHOD,
                loc!["body", "awaiting_input", "next_method"],
                &p.next_method,
            ),
            TIStateUpdate::UpForReschedule(_)
            | TIStateUpdate::Scheduled(_)
            | TIStateUpdate::Queued(_)
            | TIStateUpdate::Restarting(_) => Ok(()),
        }
    }
}

/// The strings of outlet events that become rows: the asset and alias an event through an
/// alias creates, and the event's partition key. Only strings are checked; the store
/// refuses other shapes.
fn check_outlet_events(
    events: &[serde_json::Map<String, serde_json::Value>],
) -> Result<(), ApiError> {
    fn text<'a>(
        map: &'a serde_json::Map<String, serde_json::Value>,
        field: &str,
    ) -> Option<&'a str> {
        map.get(field).and_then(serde_json::Value::as_str)
    }
    for (i, event) in events.iter().enumerate() {
        let at = |field: &str| loc!["body", "success", "outlet_events", i, field].to_vec();
        fits_opt(
            columns::ASSET_ALIAS_NAME,
            &at("source_alias_name"),
            text(event, "source_alias_name"),
        )?;
        fits_opt(
            columns::ASSET_EVENT_PARTITION_KEY,
            &at("partition_key"),
            text(event, "partition_key"),
        )?;
        let key = event
            .get("dest_asset_key")
            .and_then(serde_json::Value::as_object);
        for (column, field) in [(columns::ASSET_NAME, "name"), (columns::ASSET_URI, "uri")] {
            let mut loc = at("dest_asset_key");
            loc.push(field.into());
            fits_opt(column, &loc, key.and_then(|key| text(key, field)))?;
        }
    }
    Ok(())
}

impl TIEnterRunningPayload {
    /// 422 for a `hostname` or `unixname` longer than its column.
    pub fn check_lengths(&self) -> Result<(), ApiError> {
        fits(
            columns::TASK_INSTANCE_HOSTNAME,
            loc!["body", "hostname"],
            &self.hostname,
        )?;
        fits(
            columns::TASK_INSTANCE_UNIXNAME,
            loc!["body", "unixname"],
            &self.unixname,
        )
    }

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
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TISuccessStatePayload {
    /// When the task ended.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "DateTime")]
    pub end_date: OffsetDateTime,
    /// The task's asset outlets.
    #[serde(default)]
    pub task_outlets: Vec<AssetProfile>,
    /// The asset events it emitted (`OutletEventAccessors`' dicts).
    #[serde(default)]
    pub outlet_events: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Rendered map index: absent leaves it, `null` clears it, a string sets it.
    #[serde(default, deserialize_with = "present")]
    #[schemars(length(max = columns::TASK_INSTANCE_RENDERED_MAP_INDEX.max_chars))]
    pub rendered_map_index: Option<Option<String>>,
}

/// `TITerminalStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TITerminalStatePayload {
    /// When the task ended.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "DateTime")]
    pub end_date: OffsetDateTime,
    /// Rendered map index: absent leaves it, `null` clears it, a string sets it.
    #[serde(default, deserialize_with = "present")]
    #[schemars(length(max = columns::TASK_INSTANCE_RENDERED_MAP_INDEX.max_chars))]
    pub rendered_map_index: Option<Option<String>>,
}

/// `TIRetryStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TIRetryStatePayload {
    /// When the try ended.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "DateTime")]
    pub end_date: OffsetDateTime,
    /// Rendered map index: absent leaves it, `null` clears it, a string sets it.
    #[serde(default, deserialize_with = "present")]
    #[schemars(length(max = columns::TASK_INSTANCE_RENDERED_MAP_INDEX.max_chars))]
    pub rendered_map_index: Option<Option<String>>,
    /// Override of the task's retry delay.
    #[serde(default)]
    pub retry_delay_seconds: Option<f64>,
    /// Why the task asks for a retry (kept to 500 characters, like Airflow).
    #[serde(default)]
    pub retry_reason: Option<String>,
}

/// `TIRescheduleStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TIRescheduleStatePayload {
    /// When the task should run again.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "DateTime")]
    pub reschedule_date: OffsetDateTime,
    /// When this try ended.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "DateTime")]
    pub end_date: OffsetDateTime,
}

/// `AssetProfile`: an outlet of the task (in `/state`), or an inactive asset
/// (in `/validate-inlets-and-outlets`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetProfile {
    /// Asset (or alias) name.
    #[serde(default)]
    pub name: Option<String>,
    /// Asset URI.
    #[serde(default)]
    pub uri: Option<String>,
    /// `Asset`, `AssetNameRef`, `AssetUriRef`, `AssetAlias`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `TITargetStatePayload` (without its `state` tag): nothing else.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TITargetStatePayload {}

/// `TIDeferredStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TIDeferredStatePayload {
    /// The trigger's class path.
    #[schemars(length(max = columns::TRIGGER_CLASSPATH.max_chars))]
    pub classpath: String,
    /// Arguments of the trigger: a JSON object, or a string the client encrypted.
    #[serde(default)]
    pub trigger_kwargs: TriggerKwargs,
    /// How long the trigger may run (ISO 8601 duration or seconds).
    #[serde(default, deserialize_with = "timedelta")]
    #[schemars(with = "Option<TimeDelta>")]
    pub trigger_timeout: Option<time::Duration>,
    /// The triggerer queue.
    #[serde(default)]
    #[schemars(length(max = columns::TRIGGER_QUEUE.max_chars))]
    pub queue: Option<String>,
    /// Method to resume with after the trigger fired.
    #[schemars(length(max = columns::TASK_INSTANCE_NEXT_METHOD.max_chars))]
    pub next_method: String,
    /// Its arguments.
    #[serde(default)]
    pub next_kwargs: serde_json::Map<String, serde_json::Value>,
    /// Accepted; Airflow does not write it for a deferral.
    #[serde(default, deserialize_with = "present")]
    pub rendered_map_index: Option<Option<String>>,
}

/// `trigger_kwargs`: `dict[str, JsonValue] | str`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TriggerKwargs {
    /// A JSON object.
    Dict(serde_json::Map<String, serde_json::Value>),
    /// A string (encrypted by the client).
    Encrypted(String),
}

impl Default for TriggerKwargs {
    fn default() -> Self {
        TriggerKwargs::Dict(serde_json::Map::new())
    }
}

/// `TIAwaitingInputStatePayload` (without its `state` tag).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TIAwaitingInputStatePayload {
    /// Response deadline, relative (ISO 8601 duration or seconds).
    #[serde(default, deserialize_with = "timedelta")]
    #[schemars(with = "Option<TimeDelta>")]
    pub timeout: Option<time::Duration>,
    /// Method to resume with after the input arrived.
    #[schemars(length(max = columns::TASK_INSTANCE_NEXT_METHOD.max_chars))]
    pub next_method: String,
    /// Its arguments.
    #[serde(default)]
    pub next_kwargs: serde_json::Map<String, serde_json::Value>,
    /// Accepted; Airflow does not write it when parking.
    #[serde(default, deserialize_with = "present")]
    pub rendered_map_index: Option<Option<String>>,
}

/// `TISkippedDownstreamTasksStatePayload`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TISkippedDownstreamTasksStatePayload {
    /// Task ids (map index -1) or `[task_id, map_index]` pairs.
    pub tasks: Vec<DownstreamTask>,
}

/// One entry of `tasks`: `"task_id"` or `["task_id", map_index]`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DownstreamTask {
    /// An unmapped task.
    Task(String),
    /// A mapped task instance.
    Mapped(String, i64),
}

impl TISkippedDownstreamTasksStatePayload {
    /// `(task_id, map_index)` pairs.
    pub fn task_keys(&self) -> Vec<(String, i64)> {
        self.tasks
            .iter()
            .map(|t| match t {
                DownstreamTask::Task(id) => (id.clone(), -1),
                DownstreamTask::Mapped(id, index) => (id.clone(), *index),
            })
            .collect()
    }
}

/// A `timedelta` as pydantic reads it: seconds (a number) or an ISO 8601
/// duration (`PT1H30M`, `P1DT0.5S`, `-PT5S`; a year is 365 days, a month 30),
/// or `[-]HH:MM:SS[.ffffff]`.
fn timedelta<'de, D>(deserializer: D) -> Result<Option<time::Duration>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    let seconds = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| D::Error::custom("invalid duration"))?,
        Some(serde_json::Value::String(text)) => parse_duration(&text)
            .ok_or_else(|| D::Error::custom(format!("invalid duration `{text}`")))?,
        Some(_) => return Err(D::Error::custom("expected a duration")),
    };
    if !seconds.is_finite() || seconds.abs() > 86_400.0 * 999_999_999.0 {
        return Err(D::Error::custom("duration out of range"));
    }
    Ok(Some(time::Duration::microseconds(
        (seconds * 1e6).round() as i64
    )))
}

/// Seconds of an ISO 8601 duration or `HH:MM:SS[.f]`.
fn parse_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    if let Some(iso) = rest.strip_prefix(['P', 'p']) {
        let mut total = 0.0;
        let mut in_time = false;
        let mut number = String::new();
        let mut any = false;
        for c in iso.chars() {
            match c.to_ascii_uppercase() {
                'T' if !in_time && number.is_empty() => in_time = true,
                c if c.is_ascii_digit() || c == '.' => number.push(c),
                unit => {
                    let n: f64 = number.parse().ok()?;
                    number.clear();
                    any = true;
                    total += n * match (in_time, unit) {
                        (false, 'Y') => 365.0 * 86_400.0,
                        (false, 'M') => 30.0 * 86_400.0,
                        (false, 'W') => 7.0 * 86_400.0,
                        (false, 'D') => 86_400.0,
                        (true, 'H') => 3_600.0,
                        (true, 'M') => 60.0,
                        (true, 'S') => 1.0,
                        _ => return None,
                    };
                }
            }
        }
        return (any && number.is_empty()).then_some(sign * total);
    }
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() == 3 {
        let h: u64 = parts[0].parse().ok()?;
        let m: u64 = parts[1].parse().ok()?;
        let s: f64 = parts[2].parse().ok()?;
        return Some(sign * (h as f64 * 3_600.0 + m as f64 * 60.0 + s));
    }
    None
}

/// `TIRunContext`: what `/run` answers.
#[derive(Clone, Debug, Serialize, JsonSchema)]
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
            dag_run: DagRun {
                consumed_asset_events: ctx
                    .consumed_asset_events
                    .into_iter()
                    .map(AssetEventDagRunReference::from_store)
                    .collect::<Result<_, _>>()?,
                ..DagRun::from_store(ctx.dag_run)?
            },
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

/// `TaskStatesResponse`: `{run_id: {task_id or "<task_id>_<map_index>": state}}`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct TaskStatesResponse {
    /// States by run id, then by task key.
    pub task_states: serde_json::Map<String, serde_json::Value>,
}

/// `TaskBreadcrumbsResponse`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct TaskBreadcrumbsResponse {
    /// The finished task instances of the run.
    pub breadcrumbs: Vec<BreadcrumbResponse>,
}

/// One finished task instance of a run.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct BreadcrumbResponse {
    /// Task id.
    pub task_id: String,
    /// Map index.
    pub map_index: i64,
    /// Its terminal state.
    pub state: Option<String>,
    /// Its operator's name.
    pub operator: Option<String>,
    /// Seconds it ran.
    pub duration: Option<f64>,
}

impl From<store::Breadcrumb> for BreadcrumbResponse {
    fn from(b: store::Breadcrumb) -> Self {
        BreadcrumbResponse {
            task_id: b.task_id,
            map_index: b.map_index,
            state: b.state,
            operator: b.operator,
            duration: b.duration,
        }
    }
}

/// `PreviousTIResponse`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct PreviousTIResponse {
    /// Task id.
    pub task_id: String,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Its run's logical date.
    pub logical_date: Option<String>,
    /// When it started.
    pub start_date: Option<String>,
    /// When it ended.
    pub end_date: Option<String>,
    /// Its state.
    pub state: Option<String>,
    /// Its try number.
    pub try_number: i64,
    /// Map index.
    pub map_index: i64,
    /// Seconds it ran.
    pub duration: Option<f64>,
}

impl From<store::PreviousTaskInstance> for PreviousTIResponse {
    fn from(p: store::PreviousTaskInstance) -> Self {
        PreviousTIResponse {
            task_id: p.task_id,
            dag_id: p.dag_id,
            run_id: p.run_id,
            logical_date: p.logical_date.map(timestamp),
            start_date: p.start_date.map(timestamp),
            end_date: p.end_date.map(timestamp),
            state: p.state,
            try_number: p.try_number,
            map_index: p.map_index,
            duration: p.duration,
        }
    }
}

/// `PrevSuccessfulDagRunResponse`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct PrevSuccessfulDagRunResponse {
    /// Start of its data interval.
    pub data_interval_start: Option<String>,
    /// End of its data interval.
    pub data_interval_end: Option<String>,
    /// When it started.
    pub start_date: Option<String>,
    /// When it ended.
    pub end_date: Option<String>,
}

impl From<store::RunDates> for PrevSuccessfulDagRunResponse {
    fn from(d: store::RunDates) -> Self {
        PrevSuccessfulDagRunResponse {
            data_interval_start: d.data_interval_start.map(timestamp),
            data_interval_end: d.data_interval_end.map(timestamp),
            start_date: d.start_date.map(timestamp),
            end_date: d.end_date.map(timestamp),
        }
    }
}

/// `InactiveAssetsResponse`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct InactiveAssetsResponse {
    /// The task's inlets and outlets that are not active assets.
    pub inactive_assets: Vec<AssetProfile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_pydantic_reads_them() {
        assert_eq!(parse_duration("PT1H"), Some(3600.0));
        assert_eq!(parse_duration("P1DT0.5S"), Some(86_400.5));
        assert_eq!(parse_duration("-PT5M"), Some(-300.0));
        assert_eq!(parse_duration("P2W"), Some(14.0 * 86_400.0));
        assert_eq!(parse_duration("01:02:03.5"), Some(3723.5));
        for bad in ["", "P", "PT", "1H", "PTxS", "P1H", "soon"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let p: TIDeferredStatePayload =
            serde_json::from_str(r#"{"classpath":"c","next_method":"m","trigger_timeout":90.25}"#)
                .unwrap();
        assert_eq!(
            p.trigger_timeout,
            Some(time::Duration::milliseconds(90_250))
        );
        assert!(matches!(p.trigger_kwargs, TriggerKwargs::Dict(ref m) if m.is_empty()));
    }

    #[test]
    fn every_state_the_model_accepts_parses() {
        for (body, state) in [
            (
                r#"{"state":"deferred","classpath":"c","trigger_kwargs":"gAAAAA","next_method":"m"}"#,
                "deferred",
            ),
            (
                r#"{"state":"awaiting_input","next_method":"m","timeout":"PT1M"}"#,
                "awaiting_input",
            ),
            (r#"{"state":"scheduled"}"#, "scheduled"),
            (r#"{"state":"queued"}"#, "queued"),
            (r#"{"state":"restarting"}"#, "restarting"),
            (
                r#"{"state":"success","end_date":"2024-01-01T00:00:00Z","task_outlets":[{"name":"a","uri":"u","type":"Asset"}],"outlet_events":[{"extra":{}}]}"#,
                "success",
            ),
        ] {
            let update: TIStateUpdate = serde_json::from_str(body).unwrap();
            assert_eq!(update.state(), state, "{body}");
        }
        for bad in [
            r#"{"state":"queued","x":1}"#,
            r#"{"state":"deferred","next_method":"m"}"#,
            r#"{"state":"success","end_date":"2024-01-01T00:00:00Z","task_outlets":[{"name":"a"}]}"#,
            r#"{"state":"awaiting_input","next_method":"m","next_kwargs":"x"}"#,
        ] {
            assert!(serde_json::from_str::<TIStateUpdate>(bad).is_err(), "{bad}");
        }
        let skip: TISkippedDownstreamTasksStatePayload =
            serde_json::from_str(r#"{"tasks":["a",["b",2]]}"#).unwrap();
        assert_eq!(skip.task_keys(), [("a".into(), -1), ("b".into(), 2)]);
    }

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
