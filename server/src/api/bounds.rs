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
use crate::store::columns::Column;

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
