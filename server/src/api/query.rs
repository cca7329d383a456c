//! Query parameters read as FastAPI reads them: repeated keys make a list
//! (`?task_ids=a&task_ids=b`), a single-valued parameter given twice takes the last
//! value, unknown keys are ignored, and every invalid parameter is reported at once in a
//! 422 whose `detail` is pydantic's error list (`type`, `loc`, `msg`, `input`, `ctx`).

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ApiError;
use crate::store::TiState;

/// A query string read into `T` as FastAPI reads it ([`QueryParams`]): the handler gets `T`,
/// a request with invalid parameters gets one 422 listing all of them, and the OpenAPI
/// document lists `T`'s fields (its `JsonSchema`) as the operation's query parameters.
#[derive(Debug)]
pub struct FastApiQuery<T>(pub T);

/// A type that [`FastApiQuery`] reads from the query parameters.
pub trait FromQuery: Sized {
    /// Reads `Self`; invalid parameters are recorded in `params` (its 422).
    fn read(params: &mut QueryParams) -> Self;
}

impl<T: FromQuery> actix_web::FromRequest for FastApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let mut params = QueryParams::of(req);
        let value = T::read(&mut params);
        std::future::ready(params.finish().map(|()| FastApiQuery(value)))
    }
}

impl<T: schemars::JsonSchema> policy_core::openapi::RequestPart for FastApiQuery<T> {
    fn describe(operation: &mut policy_core::openapi::Operation<'_>) {
        operation.set_query::<T>();
    }
}

/// A request's query parameters and the validation errors met so far.
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    errors: Vec<Value>,
}

impl QueryParams {
    /// The request's query string, decoded as a form (`+` is a space, as in Starlette).
    pub(crate) fn of(req: &HttpRequest) -> QueryParams {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
        QueryParams {
            pairs,
            errors: Vec::new(),
        }
    }

    fn last(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn error(&mut self, loc: Value, kind: &str, msg: String, input: &str, ctx: Option<Value>) {
        let mut error = json!({"type": kind, "loc": loc, "msg": msg, "input": input});
        if let Some(ctx) = ctx {
            error["ctx"] = ctx;
        }
        self.errors.push(error);
    }

    /// A required string.
    pub(crate) fn required(&mut self, name: &str) -> String {
        match self.last(name) {
            Some(value) => value.to_owned(),
            None => {
                self.errors.push(json!({
                    "type": "missing", "loc": ["query", name], "msg": "Field required", "input": null,
                }));
                String::new()
            }
        }
    }

    /// An optional string.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        self.last(name).map(str::to_owned)
    }

    /// Every value of a repeated key, in order.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// An optional integer.
    pub(crate) fn integer(&mut self, name: &str) -> Option<i64> {
        let value = self.last(name)?.to_owned();
        match parse_int(&value) {
            Some(n) => Some(n),
            None => {
                self.error(
                    json!(["query", name]),
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer".into(),
                    &value,
                    None,
                );
                None
            }
        }
    }

    /// An integer with a default and bounds (FastAPI's `Query(ge=..., le=...)`).
    pub(crate) fn bounded(&mut self, name: &str, default: i64, ge: i64, le: Option<i64>) -> i64 {
        let Some(value) = self.integer(name) else {
            return default;
        };
        let input = value.to_string();
        let input = self.last(name).map_or(input, str::to_owned);
        if value < ge {
            self.error(
                json!(["query", name]),
                "greater_than_equal",
                format!("Input should be greater than or equal to {ge}"),
                &input,
                Some(json!({"ge": ge})),
            );
        } else if let Some(le) = le.filter(|le| value > *le) {
            self.error(
                json!(["query", name]),
                "less_than_equal",
                format!("Input should be less than or equal to {le}"),
                &input,
                Some(json!({"le": le})),
            );
        }
        value
    }

    /// An optional timezone-aware datetime (Airflow's `UtcDateTime`).
    pub(crate) fn datetime(&mut self, name: &str) -> Option<OffsetDateTime> {
        let value = self.last(name)?.to_owned();
        self.check_datetime(json!(["query", name]), &value)
    }

    /// Every value of a repeated key, each a timezone-aware datetime.
    pub(crate) fn datetimes(&mut self, name: &str) -> Vec<OffsetDateTime> {
        let values = self.list(name);
        values
            .iter()
            .enumerate()
            .filter_map(|(i, value)| self.check_datetime(json!(["query", name, i]), value))
            .collect()
    }

    fn check_datetime(&mut self, loc: Value, value: &str) -> Option<OffsetDateTime> {
        match parse_datetime(value) {
            Ok(t) => Some(t),
            Err(DateError::Naive) => {
                self.error(
                    loc,
                    "timezone_aware",
                    "Input should have timezone info".into(),
                    value,
                    None,
                );
                None
            }
            Err(DateError::Invalid) => {
                self.error(
                    loc,
                    "datetime_from_date_parsing",
                    "Input should be a valid datetime or date, invalid format".into(),
                    value,
                    None,
                );
                None
            }
        }
    }

    /// An optional task-instance state (`TaskInstanceState | None`).
    pub(crate) fn state(&mut self, name: &str) -> Option<TiState> {
        let value = self.last(name)?.to_owned();
        match value.parse::<TiState>() {
            Ok(state) => Some(state),
            Err(_) => {
                let names: Vec<String> = TiState::ALL
                    .iter()
                    .map(|s| format!("'{}'", s.as_str()))
                    .collect();
                let (last, rest) = names.split_last().expect("states");
                let expected = format!("{} or {last}", rest.join(", "));
                self.error(
                    json!(["query", name]),
                    "enum",
                    format!("Input should be {expected}"),
                    &value,
                    Some(json!({"expected": expected})),
                );
                None
            }
        }
    }

    /// `Ok` when every parameter was valid, else the 422 listing what was not.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Value::Array(self.errors),
            ))
        }
    }
}

/// Pydantic's lax integer from a string: optional sign, digits (surrounding whitespace and
/// `_` separators allowed), or a float without fraction (`3.0`).
fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(n) = text.replace('_', "").parse::<i64>()
        && !text.starts_with('_')
        && !text.ends_with('_')
    {
        return Some(n);
    }
    let (whole, fraction) = text.split_once('.')?;
    if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') {
        return whole.parse().ok();
    }
    None
}

enum DateError {
    Naive,
    Invalid,
}

/// An ISO 8601 datetime with an offset (`T` or space between date and time, optional
/// fraction, `Z` or `±HH:MM`), or Unix seconds (milliseconds past 2e10), as pydantic reads
/// a timezone-aware datetime.
fn parse_datetime(text: &str) -> Result<OffsetDateTime, DateError> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(DateError::Invalid);
        }
        let seconds = if seconds.abs() > 2e10 {
            seconds / 1000.0
        } else {
            seconds
        };
        let nanos = (seconds * 1e9).round() as i128;
        return OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| DateError::Invalid);
    }
    let bytes = text.as_bytes();
    let date_ok = bytes.len() >= 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[..10]
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !date_ok {
        return Err(DateError::Invalid);
    }
    let time_part = text.get(11..).unwrap_or("");
    let has_zone =
        time_part.ends_with(['Z', 'z']) || time_part.rfind(['+', '-']).is_some_and(|at| at >= 8);
    if text.len() > 10 && !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err(DateError::Invalid);
    }
    let normalized = if text.len() == 10 {
        // A date alone is midnight, without a zone.
        return Err(DateError::Naive);
    } else {
        let mut t = text.to_owned();
        t.replace_range(10..11, "T");
        if t.ends_with('z') {
            t.pop();
            t.push('Z');
        }
        t
    };
    if !has_zone {
        return match crate::store::sql::parse_time(&normalized).ok() {
            Some(_) => Err(DateError::Naive),
            None => Err(DateError::Invalid),
        };
    }
    crate::store::sql::parse_time(&normalized).map_err(|_| DateError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_pydantic_reads_them() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int(" -1 "), Some(-1));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int("3.0"), Some(3));
        for bad in ["", "x", "1.5", "_1", "1e3"] {
            assert_eq!(parse_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn datetimes_need_a_zone() {
        let t = parse_datetime("2024-01-01T00:00:00+00:00").ok().unwrap();
        assert_eq!(t.unix_timestamp(), 1_704_067_200);
        assert_eq!(
            parse_datetime("2024-01-01 02:00:00.5+02:00")
                .ok()
                .unwrap()
                .unix_timestamp(),
            1_704_067_200
        );
        assert!(parse_datetime("2024-01-01T00:00:00Z").is_ok());
        assert_eq!(
            parse_datetime("1704067200").ok().unwrap().unix_timestamp(),
            1_704_067_200
        );
        assert!(matches!(
            parse_datetime("2024-01-01T00:00:00"),
            Err(DateError::Naive)
        ));
        assert!(matches!(
            parse_datetime("2024-01-01"),
            Err(DateError::Naive)
        ));
        for bad in [
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-01-01X00:00:00Z",
            "",
        ] {
            assert!(
                matches!(parse_datetime(bad), Err(DateError::Invalid)),
                "{bad}"
            );
        }
    }
}
