//! The API's error responses, shaped like FastAPI's (`{"detail": ...}`).
//!
//! Authentication errors are policy-core's `AuthError`; everything else a
//! handler refuses is an [`ApiError`].

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

use crate::store::StoreError;

/// Seconds a client is told to wait when the database is busy or unreachable.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// A refused or failed request: a status and a `detail`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    detail: Value,
    retry_after: bool,
}

impl ApiError {
    /// Any status and detail.
    pub fn new(status: StatusCode, detail: Value) -> ApiError {
        ApiError {
            status,
            detail,
            retry_after: false,
        }
    }

    /// 404 `{"reason": "not_found", "message": ...}`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            json!({"reason": "not_found", "message": message.into()}),
        )
    }

    /// 409 with a structured detail (`reason`, `message`, ...).
    pub fn conflict(detail: Value) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }

    /// 422 `{"reason": ..., "message": ...}`.
    pub fn unprocessable(reason: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"reason": reason, "message": message.into()}),
        )
    }

    /// A request that does not parse: 422 with FastAPI's validation-error list
    /// (`[{"loc": [...], "msg": ..., "type": ...}]`), which the SDK client parses.
    pub fn validation(
        status: StatusCode,
        loc: Vec<Value>,
        msg: impl Into<String>,
        kind: &str,
    ) -> ApiError {
        ApiError::new(
            status,
            json!([{"loc": loc, "msg": msg.into(), "type": kind}]),
        )
    }

    /// 503 with `Retry-After`: the database is busy or unreachable.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            detail: Value::String(message.into()),
            retry_after: true,
        }
    }

    /// 500; the cause goes to the log, not to the client.
    pub fn internal(cause: impl fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Value::String("Internal Server Error".into()),
        )
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `detail` value.
    pub fn detail(&self) -> &Value {
        &self.detail
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        if err.is_transient() {
            tracing::warn!(error = %err, "database unavailable");
            return ApiError::unavailable("Database unavailable, retry later");
        }
        match err {
            StoreError::NotFound(message) => ApiError::not_found(message),
            StoreError::InvalidValue(message) => ApiError::unprocessable("invalid_value", message),
            StoreError::AlreadyExists(what) => ApiError::conflict(
                json!({"reason": "already_exists", "message": format!("{what} already exists")}),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header(ContentType::json());
        if self.retry_after {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        response.body(json!({"detail": self.detail}).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody as _;

    #[test]
    fn transient_store_errors_are_503_with_retry_after() {
        let err = ApiError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        let resp = err.error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let body = resp.into_body().try_into_bytes().unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["detail"].as_str().unwrap().contains("retry"));
    }

    #[test]
    fn other_store_errors_hide_their_cause() {
        let err = ApiError::from(StoreError::Corrupt("secret detail".into()));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!err.detail().to_string().contains("secret"));
    }
}
