//! `/connection-tests/{connection_test_id}...`: connection tests run by a worker
//! (Airflow's `routes/connection_tests.py`). Only workload tokens whose subject
//! is the test's id are accepted (`ct:self`, `token:workload`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::store;

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/connection-tests", scopes = ["ct:self", "token:workload"])]
pub mod routes {
    use actix_web::http::StatusCode;
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;
    use serde_json::json;
    use uuid::Uuid;

    use super::{ConnectionTestConnectionResponse, ConnectionTestResultBody, TestState};
    use crate::api::bounds::{fits_opt, loc};
    use crate::api::{ApiError, Payload};
    use crate::store::columns::CONNECTION_TEST_REQUEST_RESULT_MESSAGE;
    use crate::store::{ConnectionTestFetch, ConnectionTestFinish, ConnectionTestResult, Store};

    fn not_found(id: Uuid) -> ApiError {
        ApiError::not_found(format!("Connection test {id} not found"))
    }

    fn conflict(message: String) -> ApiError {
        ApiError::conflict(json!({"reason": "conflict", "message": message}))
    }

    /// Return the test request's connection data and atomically mark it RUNNING
    /// (single fetch): 404, or 409 once fetched or finished.
    #[execution_route(get, "/{connection_test_id}/connection", responses = [200 => ConnectionTestConnectionResponse, 404, 409])]
    pub async fn get_connection_test_connection(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
    ) -> Result<HttpResponse, ApiError> {
        let id = *id;
        match store.fetch_connection_test(id).await? {
            ConnectionTestFetch::Fetched(conn) => {
                Ok(HttpResponse::Ok().json(ConnectionTestConnectionResponse::from(*conn)))
            }
            ConnectionTestFetch::NotFound => Err(not_found(id)),
            ConnectionTestFetch::NotFetchable { state } => Err(conflict(format!(
                "Connection test {id} is in state {state}; credentials can only be fetched \
                 once while PENDING or QUEUED."
            ))),
        }
    }

    /// Update the result of a connection test: 204; 404; 409 when it already ended.
    #[execution_route(patch, "/{connection_test_id}", responses = [204, 404, 409])]
    pub async fn patch_connection_test(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        body: Payload<ConnectionTestResultBody>,
    ) -> Result<HttpResponse, ApiError> {
        let id = *id;
        let result = match body.state {
            TestState::Success => ConnectionTestResult::Success,
            TestState::Failed => ConnectionTestResult::Failed,
            other => {
                return Err(ApiError::validation(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    vec!["body".into(), "state".into()],
                    format!(
                        "Value error, Workers may only report terminal states (success/failed); \
                         got '{}'",
                        other.as_str()
                    ),
                    "value_error",
                ));
            }
        };
        // Airflow's own check (`Field(max_length=2000)`).
        fits_opt(
            CONNECTION_TEST_REQUEST_RESULT_MESSAGE,
            loc!["body", "result_message"],
            body.result_message.as_deref(),
        )?;
        match store
            .finish_connection_test(id, result, body.result_message.as_deref())
            .await?
        {
            ConnectionTestFinish::Finished => Ok(HttpResponse::NoContent().finish()),
            ConnectionTestFinish::NotFound => Err(not_found(id)),
            ConnectionTestFinish::Terminal { state } => Err(conflict(format!(
                "Connection test {id} is already in terminal state: {state}"
            ))),
            ConnectionTestFinish::Inactive { state } => Err(conflict(format!(
                "Connection test {id} is not in an active state: {state}"
            ))),
            ConnectionTestFinish::InvalidConnection { reason } => Err(ApiError::unprocessable(
                "invalid_connection",
                format!("Connection test {id} cannot be committed: {reason}"),
            )),
        }
    }
}

/// `ConnectionTestState`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestState {
    /// `pending`.
    Pending,
    /// `queued`.
    Queued,
    /// `running`.
    Running,
    /// `success`.
    Success,
    /// `failed`.
    Failed,
}

impl TestState {
    /// As Airflow spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TestState::Pending => "pending",
            TestState::Queued => "queued",
            TestState::Running => "running",
            TestState::Success => "success",
            TestState::Failed => "failed",
        }
    }
}

/// `ConnectionTestResultBody`: `PATCH` body.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTestResultBody {
    /// `success` or `failed` (other states are refused).
    pub state: TestState,
    /// What the test said (at most 2000 characters).
    #[serde(default)]
    #[schemars(length(max = crate::store::columns::CONNECTION_TEST_REQUEST_RESULT_MESSAGE.max_chars))]
    pub result_message: Option<String>,
}

/// `ConnectionTestConnectionResponse`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct ConnectionTestConnectionResponse {
    /// Connection id.
    pub conn_id: String,
    /// Connection type.
    pub conn_type: String,
    /// Host.
    pub host: Option<String>,
    /// Login.
    pub login: Option<String>,
    /// Password (decrypted).
    pub password: Option<String>,
    /// Schema.
    pub schema: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// Extra, a JSON document as a string (decrypted).
    pub extra: Option<String>,
}

impl From<store::Connection> for ConnectionTestConnectionResponse {
    fn from(c: store::Connection) -> Self {
        ConnectionTestConnectionResponse {
            conn_id: c.conn_id,
            conn_type: c.conn_type,
            host: c.host,
            login: c.login,
            password: c.password,
            schema: c.schema,
            port: c.port,
            extra: c.extra,
        }
    }
}
