//! `/task-instances/{task_instance_id}/...`: the state machine of a task instance.

use actix_web::{HttpRequest, HttpResponse};
use policy_core::{REFRESHED_TOKEN_HEADER, Token, TokenGenerator, TokenType};
use serde_json::json;
use uuid::Uuid;

use super::ApiError;
use crate::models::{TIEnterRunningPayload, TIHeartbeatInfo, TIRunContext, TIStateUpdate};
use crate::store::{HeartbeatOutcome, StartOutcome, StateOutcome, Store};

const TI_NOT_FOUND: &str = "Task Instance not found";

/// `PATCH /run`: queued -> running; a workload token is exchanged for an
/// execution token in `Refreshed-API-Token`.
pub(crate) async fn run(
    req: &HttpRequest,
    token: &Token,
    store: &Store,
    id: Uuid,
    payload: &TIEnterRunningPayload,
) -> Result<HttpResponse, ApiError> {
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

/// `PATCH /state`: running -> a terminal, retry or reschedule state. 204, or
/// 200 when already in that state.
pub(crate) async fn update_state(
    store: &Store,
    id: Uuid,
    update: &TIStateUpdate,
) -> Result<HttpResponse, ApiError> {
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
        StateOutcome::Unsupported => Err(ApiError::unprocessable(
            "unsupported_state",
            format!(
                "this server does not support moving a task instance to `{}`",
                update.state()
            ),
        )),
    }
}

/// `PUT /heartbeat`: 204 while running for the same host and pid, else 409.
pub(crate) async fn heartbeat(
    store: &Store,
    id: Uuid,
    info: &TIHeartbeatInfo,
) -> Result<HttpResponse, ApiError> {
    match store.heartbeat(id, &info.to_beat()).await? {
        HeartbeatOutcome::Alive => Ok(HttpResponse::NoContent().finish()),
        HeartbeatOutcome::NotFound => Err(ApiError::not_found(TI_NOT_FOUND)),
        HeartbeatOutcome::Archived => Err(ApiError::new(
            actix_web::http::StatusCode::GONE,
            json!({
                "reason": "not_found",
                "message": "Task Instance not found, it may have been moved to the Task Instance History table",
            }),
        )),
        HeartbeatOutcome::RunningElsewhere { hostname, pid } => Err(ApiError::conflict(json!({
            "reason": "running_elsewhere",
            "message": "TI is already running elsewhere",
            "current_hostname": hostname,
            "current_pid": pid,
        }))),
        HeartbeatOutcome::NotRunning { state } => Err(ApiError::conflict(json!({
            "reason": "not_running",
            "message": "TI is no longer in the running state and task should terminate",
            "current_state": state,
        }))),
    }
}
