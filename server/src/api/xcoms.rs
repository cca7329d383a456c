//! `/xcoms/{dag_id}/{run_id}/{task_id}/{key}`: XComs, stored as Airflow stores
//! them (JSON text, numbers kept exactly as sent).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::store::XComKey;

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/xcoms")]
pub mod routes {
    use actix_web::http::StatusCode;
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;
    use serde_json::Value;
    use serde_json::value::RawValue;

    use super::{XComPath, XComQuery, XComResponse};
    use crate::api::ApiError;
    use crate::api::fields::MessageResponse;
    use crate::store::{Store, XComWrite};

    /// Reads an XCom: `{"key": ..., "value": ...}`, or 404.
    #[execution_route(get, "/{dag_id}/{run_id}/{task_id}/{key}")]
    pub async fn get_xcom(
        store: web::Data<Store>,
        path: web::Path<XComPath>,
        query: web::Query<XComQuery>,
    ) -> Result<HttpResponse, ApiError> {
        let at = path.at(&query);
        match store.xcom(at).await? {
            Some(value) => {
                let value = RawValue::from_string(value).map_err(|e| {
                    ApiError::internal(format!("stored XCom value is not JSON: {e}"))
                })?;
                Ok(HttpResponse::Ok().json(XComResponse {
                    key: path.key.clone(),
                    value,
                }))
            }
            None => Err(ApiError::not_found(format!(
                "XCom with key='{}' map_index={} not found for task '{}' in DAG run '{}' of '{}'",
                at.key, at.map_index, at.task_id, at.run_id, at.dag_id
            ))),
        }
    }

    /// Stores an XCom (any JSON value; an empty body is `null`): 201, or 404
    /// when the DAG run does not exist.
    #[execution_route(post, "/{dag_id}/{run_id}/{task_id}/{key}")]
    pub async fn set_xcom(
        store: web::Data<Store>,
        path: web::Path<XComPath>,
        query: web::Query<XComQuery>,
        body: web::Bytes,
    ) -> Result<HttpResponse, ApiError> {
        // Stored verbatim, as Airflow does: numbers stay exact.
        let value: &str = if body.iter().all(u8::is_ascii_whitespace) {
            "null"
        } else {
            let raw: &RawValue = serde_json::from_slice(&body).map_err(|e| {
                ApiError::validation(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    vec!["body".into()],
                    format!("JSON decode error: {e}"),
                    "json_invalid",
                )
            })?;
            raw.get()
        };
        let dag_result = query.dag_result.unwrap_or(false);
        match store.set_xcom(path.at(&query), value, dag_result).await? {
            XComWrite::Stored => Ok(HttpResponse::build(StatusCode::CREATED).json(
                MessageResponse {
                    message: "XCom successfully set".into(),
                },
            )),
            XComWrite::NoTaskInstance => Err(ApiError::not_found(format!(
                "Task Instance not found for task '{}' with map_index={} in DAG run '{}' of '{}'",
                path.task_id,
                query.map_index.unwrap_or(-1),
                path.run_id,
                path.dag_id
            ))),
            XComWrite::NoDagRun => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                Value::String(format!(
                    "DAG run not found on DAG '{}' with ID '{}'",
                    path.dag_id, path.run_id
                )),
            )),
        }
    }

    /// Deletes an XCom: 200 whether or not it existed (as Airflow).
    #[execution_route(delete, "/{dag_id}/{run_id}/{task_id}/{key}")]
    pub async fn delete_xcom(
        store: web::Data<Store>,
        path: web::Path<XComPath>,
        query: web::Query<XComQuery>,
    ) -> Result<HttpResponse, ApiError> {
        store.delete_xcom(path.at(&query)).await?;
        Ok(HttpResponse::Ok().json(MessageResponse {
            message: format!("XCom with key: {} successfully deleted.", path.key),
        }))
    }
}

/// The path: which task's XCom.
#[derive(Clone, Debug, Deserialize)]
pub struct XComPath {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// XCom key.
    pub key: String,
}

/// The query: `?map_index=N` (default -1); other parameters the SDK sends are accepted.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct XComQuery {
    /// Map index, `-1` for an unmapped task.
    pub map_index: Option<i64>,
    /// Accepted for compatibility; this server keeps no prior dates apart.
    pub include_prior_dates: Option<bool>,
    /// Accepted for compatibility.
    pub dag_result: Option<bool>,
    /// Accepted for compatibility.
    pub mapped_length: Option<i64>,
}

impl XComPath {
    fn at(&self, query: &XComQuery) -> XComKey<'_> {
        XComKey {
            dag_id: &self.dag_id,
            run_id: &self.run_id,
            task_id: &self.task_id,
            key: &self.key,
            map_index: query.map_index.unwrap_or(-1),
        }
    }
}

/// `XComResponse`.
#[derive(Clone, Debug, Serialize)]
pub struct XComResponse {
    /// XCom key.
    pub key: String,
    /// The stored JSON value, as stored (numbers stay exact).
    pub value: Box<RawValue>,
}
