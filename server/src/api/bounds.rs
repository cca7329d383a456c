//! Refusing a request string longer than the column it is written to
//! ([`crate::store::columns`]), before anything is written.
//!
//! The answer is the 422 pydantic gives for a `Field(max_length=n)`, which Airflow itself
//! uses where it checks a length (a connection test's `result_message`): FastAPI's
//! validation-error list, `loc` naming the field, `msg` the limit, `ctx.max_length` the
//! number. The value itself is not echoed back (pydantic's `input`): it may be megabytes.
//! Where Airflow does not check, PostgreSQL refuses the write (Airflow: 500) and SQLite
//! stores it whole; here both get this 422.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use super::ApiError;
use crate::store::columns::{self, Column};

/// 422 unless `value` fits `column`; `loc` is where the value is in the request
/// (`["body", "hostname"]`, `["path", "key"]`, ...).
pub(crate) fn fits(column: Column, loc: &[Value], value: &str) -> Result<(), ApiError> {
    if column.fits(value) {
        return Ok(());
    }
    let max = column.max_chars;
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!([{
            "type": "string_too_long",
            "loc": loc,
            "msg": format!("String should have at most {max} characters"),
            "ctx": {"max_length": max},
        }]),
    ))
}

/// [`fits`] for an optional value.
pub(crate) fn fits_opt(column: Column, loc: &[Value], value: Option<&str>) -> Result<(), ApiError> {
    value.map_or(Ok(()), |value| fits(column, loc, value))
}

/// `loc` from its parts: `loc!["body", "outlet_events", 0]`.
macro_rules! loc {
    ($($part:expr),* $(,)?) => {
        &[$(::serde_json::Value::from($part)),*]
    };
}
pub(crate) use loc;

/// A path or query parameter that a route writes to a bounded column: the handler refuses a
/// longer value ([`ParameterBound::check`]) and the OpenAPI document gives the parameter that
/// `maxLength` ([`PARAMETER_BOUNDS`]), both from this one declaration. (Body fields carry
/// theirs in their wire types' schemas.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct ParameterBound {
    /// The route's method, upper case.
    pub method: &'static str,
    /// The route's path as the document writes it (`/variables/{variable_key}`).
    pub path: &'static str,
    /// `path` or `query`.
    pub location: &'static str,
    /// The parameter.
    pub name: &'static str,
    /// The column it is written to.
    pub column: Column,
}

impl ParameterBound {
    /// 422 unless `value` fits the column.
    pub(crate) fn check(&self, value: &str) -> Result<(), ApiError> {
        fits(self.column, loc![self.location, self.name], value)
    }
}

/// `PUT /variables/{variable_key}`.
pub(crate) const VARIABLE_KEY: ParameterBound = ParameterBound {
    method: "PUT",
    path: "/variables/{variable_key}",
    location: "path",
    name: "variable_key",
    column: columns::VARIABLE_KEY,
};
/// `POST /xcoms/{dag_id}/{run_id}/{task_id}/{key}`.
pub(crate) const XCOM_KEY: ParameterBound = ParameterBound {
    method: "POST",
    path: "/xcoms/{dag_id}/{run_id}/{task_id}/{key}",
    location: "path",
    name: "key",
    column: columns::XCOM_KEY,
};
/// `POST /dag-runs/{dag_id}/{run_id}`.
pub(crate) const DAG_RUN_RUN_ID: ParameterBound = ParameterBound {
    method: "POST",
    path: "/dag-runs/{dag_id}/{run_id}",
    location: "path",
    name: "run_id",
    column: columns::DAG_RUN_RUN_ID,
};
/// `PUT /store/ti/{task_instance_id}/{key}`.
pub(crate) const TASK_STATE_STORE_KEY: ParameterBound = ParameterBound {
    method: "PUT",
    path: "/store/ti/{task_instance_id}/{key}",
    location: "path",
    name: "key",
    column: columns::TASK_STATE_STORE_KEY,
};
/// `PUT /store/asset/by-name/value?key=`.
pub(crate) const ASSET_STATE_STORE_KEY_BY_NAME: ParameterBound = ParameterBound {
    method: "PUT",
    path: "/store/asset/by-name/value",
    location: "query",
    name: "key",
    column: columns::ASSET_STATE_STORE_KEY,
};
/// `PUT /store/asset/by-uri/value?key=`.
pub(crate) const ASSET_STATE_STORE_KEY_BY_URI: ParameterBound = ParameterBound {
    method: "PUT",
    path: "/store/asset/by-uri/value",
    location: "query",
    name: "key",
    column: columns::ASSET_STATE_STORE_KEY,
};

/// Every [`ParameterBound`] (the document reads them).
pub(crate) const PARAMETER_BOUNDS: [ParameterBound; 6] = [
    VARIABLE_KEY,
    XCOM_KEY,
    DAG_RUN_RUN_ID,
    TASK_STATE_STORE_KEY,
    ASSET_STATE_STORE_KEY_BY_NAME,
    ASSET_STATE_STORE_KEY_BY_URI,
];
