//! `/xcoms/{dag_id}/{run_id}/{task_id}/{key}`: XComs, stored as Airflow stores
//! them (JSON text, numbers kept exactly as sent).
//!
//! The key is a path (`{key:path}` in Airflow: it may contain `/`), and the
//! routes are declared in Airflow's order: `.../item/{offset}` and
//! `.../slice` before the plain `.../{key}` routes, so a key ending in
//! `/slice` can never be read, as in Airflow.

use actix_web::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::api::ApiError;
use crate::store::{XComKey, XComSeries};

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/xcoms", scopes = ["ti:running"])]
pub mod routes {
    use actix_web::http::StatusCode;
    use actix_web::{HttpResponse, web};
    use policy_core::Token;
    use policy_macros::execution_route;
    use serde_json::Value;
    use serde_json::json;
    use serde_json::value::RawValue;

    use super::{
        ItemPath, SliceQuery, XComGetQuery, XComMapIndexQuery, XComPath, XComQuery, XComResponse,
        python_slice, raw_json, raw_json_array,
    };
    use crate::api::ApiError;
    use crate::api::bounds;
    use crate::api::fields::MessageResponse;
    use crate::store::{Store, TaskMapLength, XComPick, XComWrite};

    /// Get a single XCom value from a mapped task by sequence index.
    ///
    /// The value at `offset` over the run's XComs ordered by map index
    /// (negative counts from the end), as a bare JSON value; 404 if none.
    #[execution_route(get, "/{dag_id}/{run_id}/{task_id}/{key:.*}/item/{offset}", responses = [200 => serde_json::Value, 404])]
    pub async fn get_mapped_xcom_by_index(
        store: web::Data<Store>,
        path: web::Path<ItemPath>,
        token: Token,
    ) -> Result<HttpResponse, ApiError> {
        check_access(&store, &token, &path.dag_id, false).await?;
        let series = path.series()?;
        match store.xcom_item(series, path.offset).await? {
            Some(value) => Ok(HttpResponse::Ok()
                .content_type("application/json")
                .body(raw_json(value)?.get().to_owned())),
            None => Err(ApiError::not_found(format!(
                "XCom with key='{}' offset={} not found for task '{}' in DAG run '{}' of '{}'",
                path.key, path.offset, path.task_id, path.run_id, path.dag_id
            ))),
        }
    }

    /// Get XCom values from a mapped task by sequence slice.
    ///
    /// `?start&stop&step` slice the values ordered by map index as a Python
    /// slice does (`step=0` counts as 1, as in Airflow); a JSON array.
    #[execution_route(get, "/{dag_id}/{run_id}/{task_id}/{key:.*}/slice", responses = [200 => Vec<serde_json::Value>])]
    pub async fn get_mapped_xcom_by_slice(
        store: web::Data<Store>,
        path: web::Path<XComPath>,
        token: Token,
        query: web::Query<SliceQuery>,
    ) -> Result<HttpResponse, ApiError> {
        check_access(&store, &token, &path.dag_id, false).await?;
        let values = store
            .xcom_values(path.series()?, query.include_prior_dates.unwrap_or(false))
            .await?;
        let step = match query.step {
            None | Some(0) => 1,
            Some(step) => step,
        };
        let picked = python_slice(&values, query.start, query.stop, step);
        Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(raw_json_array(&picked)?))
    }

    /// Returns the count of mapped XCom values found in the `Content-Range` response header.
    ///
    /// 200 with `Content-Range: map_indexes N`, N over every map index; 400 if
    /// `map_index` is given.
    #[execution_route(head, "/{dag_id}/{run_id}/{task_id}/{key:.*}", responses = [200, 404])]
    pub async fn head_xcom(
        store: web::Data<Store>,
        path: web::Path<XComPath>,
        token: Token,
        query: web::Query<XComMapIndexQuery>,
    ) -> Result<HttpResponse, ApiError> {
        check_access(&store, &token, &path.dag_id, false).await?;
        let series = path.series()?;
        if query.map_index.is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                json!({
                    "reason": "invalid_request",
                    "message": "Cannot specify map_index in a HEAD request",
                }),
            ));
        }
        let count = store.xcom_count(series).await?;
        Ok(HttpResponse::Ok()
            .insert_header(("Content-Range", format!("map_indexes {count}")))
            .finish())
    }

    /// Get a single XCom Value.
    ///
    /// `{"key": ..., "value": ...}` for `?map_index=` (default -1), or for the
    /// `?offset=`th non-NULL value by map index; `?include_prior_dates=true`
    /// also reads earlier runs of the DAG. 404 if none.
    #[execution_route(get, "/{dag_id}/{run_id}/{task_id}/{key:.*}", responses = [200 => XComResponse, 404])]
    pub async fn get_xcom(
        store: web::Data<Store>,
        path: web::Path<XComPath>,
        token: Token,
        query: web::Query<XComGetQuery>,
    ) -> Result<HttpResponse, ApiError> {
        check_access(&store, &token, &path.dag_id, false).await?;
        let series = path.series()?;
        let map_index = query.map_index.unwrap_or(-1);
        let pick = match query.offset {
            Some(offset) => XComPick::Offset(offset),
            None => XComPick::MapIndex(map_index),
        };
        let include_prior_dates = query.include_prior_dates.unwrap_or(false);
        match store.xcom_pick(series, pick, include_prior_dates).await? {
            Some(value) => Ok(HttpResponse::Ok().json(XComResponse {
                key: path.key.clone(),
                value: raw_json(value)?,
            })),
            None => {
                let which = match query.offset {
                    Some(offset) => format!("offset={offset}"),
                    None => format!("map_index={map_index}"),
                };
                Err(ApiError::not_found(format!(
                    "XCom with key='{}' {which} not found for task '{}' in DAG run '{}' of '{}'",
                    path.key, path.task_id, path.run_id, path.dag_id
                )))
            }
        }
    }

    /// Set an Airflow XCom.
    ///
    /// Stores the body (any JSON value; an empty body is `null`) verbatim: 201.
    /// `?mapped_length=N` also records the task's `task_map` row (400 past
    /// `[core] max_map_length`); 404 when the DAG run does not exist.
    #[execution_route(post, "/{dag_id}/{run_id}/{task_id}/{key:.*}", scopes = ["task:self"], body = serde_json::Value, responses = [201 => MessageResponse, 400, 404])]
    pub async fn set_xcom(
        store: web::Data<Store>,
        path: web::Path<XComPath>,
        token: Token,
        query: web::Query<XComQuery>,
        body: web::Bytes,
    ) -> Result<HttpResponse, ApiError> {
        bounds::XCOM_KEY.check(&path.key)?;
        check_access(&store, &token, &path.dag_id, true).await?;
        path.series()?;
        let mapped_length = match query.mapped_length {
            None => None,
            Some(length) if length < 0 => {
                // Airflow's CHECK constraint refuses it with a 500; a 422 here.
                return Err(ApiError::validation(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    vec!["query".into(), "mapped_length".into()],
                    "Input should be greater than or equal to 0",
                    "greater_than_equal",
                ));
            }
            Some(length) if u64::try_from(length).unwrap_or(u64::MAX) > store.max_map_length() => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    json!({
                        "reason": "unmappable_return_value_length",
                        "message": "pushed value is too large to map as a downstream's dependency",
                    }),
                ));
            }
            Some(length) => Some(TaskMapLength(length)),
        };
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
        match store
            .set_xcom(path.at(query.map_index), value, dag_result, mapped_length)
            .await?
        {
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

    /// Delete a single XCom Value.
    ///
    /// 200 whether or not it existed (as Airflow).
    #[execution_route(delete, "/{dag_id}/{run_id}/{task_id}/{key:.*}", scopes = ["task:self"], responses = [200 => MessageResponse])]
    pub async fn delete_xcom(
        store: web::Data<Store>,
        path: web::Path<XComPath>,
        token: Token,
        query: web::Query<XComMapIndexQuery>,
    ) -> Result<HttpResponse, ApiError> {
        check_access(&store, &token, &path.dag_id, true).await?;
        path.series()?;
        store.delete_xcom(path.at(query.map_index)).await?;
        Ok(HttpResponse::Ok().json(MessageResponse {
            message: format!("XCom with key: {} successfully deleted.", path.key),
        }))
    }

    /// `[core] multi_team`: 403 when the token's task may not reach this DAG's
    /// XComs (Airflow's `has_xcom_access`; writes stay within the team).
    async fn check_access(
        store: &Store,
        token: &Token,
        dag_id: &str,
        write: bool,
    ) -> Result<(), ApiError> {
        if store.xcom_access(token.sub(), dag_id, write).await? {
            return Ok(());
        }
        Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            serde_json::json!({
                "reason": "access_denied",
                "message": "Task does not have access to this XCom in multi-team mode",
            }),
        ))
    }
}

/// The path: which task's XCom.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct XComPath {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// XCom key (may contain `/`).
    pub key: String,
}

/// The path of `.../{key}/item/{offset}`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct ItemPath {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// XCom key (may contain `/`).
    pub key: String,
    /// Index over the map indexes; negative counts from the end.
    pub offset: i64,
}

/// The query of DELETE and HEAD: `?map_index=N` (default -1 for DELETE; HEAD refuses
/// it); other parameters are ignored, as FastAPI ignores them.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct XComMapIndexQuery {
    /// Map index, `-1` for an unmapped task (HEAD refuses it).
    pub map_index: Option<i64>,
}

/// The query of POST: `?map_index=N` (default -1) and the write options; other
/// parameters are ignored, as FastAPI ignores them.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct XComQuery {
    /// Map index, `-1` for an unmapped task (HEAD refuses it).
    pub map_index: Option<i64>,
    /// Whether the XCom is the DAG's result (POST).
    pub dag_result: Option<bool>,
    /// How many mapped tasks the value expands into (POST): recorded in `task_map`.
    pub mapped_length: Option<i64>,
}

/// The query of `GET .../{key}`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct XComGetQuery {
    /// Map index (default -1); ignored when `offset` is given.
    pub map_index: Option<i64>,
    /// Also read earlier runs of the DAG.
    pub include_prior_dates: Option<bool>,
    /// Index over the non-NULL values by map index; negative counts from the end.
    pub offset: Option<i64>,
}

/// The query of `.../slice`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct SliceQuery {
    /// First index (Python slice `start`).
    pub start: Option<i64>,
    /// End index, exclusive (Python slice `stop`).
    pub stop: Option<i64>,
    /// Stride (Python slice `step`; 0 counts as 1).
    pub step: Option<i64>,
    /// Also read earlier runs of the DAG.
    pub include_prior_dates: Option<bool>,
}

impl XComPath {
    fn series(&self) -> Result<XComSeries<'_>, ApiError> {
        series(&self.dag_id, &self.run_id, &self.task_id, &self.key)
    }

    fn at(&self, map_index: Option<i64>) -> XComKey<'_> {
        XComKey {
            dag_id: &self.dag_id,
            run_id: &self.run_id,
            task_id: &self.task_id,
            key: &self.key,
            map_index: map_index.unwrap_or(-1),
        }
    }
}

impl ItemPath {
    fn series(&self) -> Result<XComSeries<'_>, ApiError> {
        series(&self.dag_id, &self.run_id, &self.task_id, &self.key)
    }
}

/// The series of a path; an empty key is refused as FastAPI's
/// `Path(min_length=1)` refuses it.
fn series<'a>(
    dag_id: &'a str,
    run_id: &'a str,
    task_id: &'a str,
    key: &'a str,
) -> Result<XComSeries<'a>, ApiError> {
    if key.is_empty() {
        return Err(ApiError::validation(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["path".into(), "key".into()],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    Ok(XComSeries {
        dag_id,
        run_id,
        task_id,
        key,
    })
}

/// A stored value as a JSON value to send unchanged.
fn raw_json(value: String) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(value)
        .map_err(|e| ApiError::internal(format!("stored XCom value is not JSON: {e}")))
}

/// Stored values as one JSON array, each sent unchanged.
fn raw_json_array(values: &[&String]) -> Result<String, ApiError> {
    let mut out = String::from("[");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(raw_json((*value).clone())?.get());
    }
    out.push(']');
    Ok(out)
}

/// `items[start:stop:step]` as Python computes it (`step` is not 0).
fn python_slice<T>(items: &[T], start: Option<i64>, stop: Option<i64>, step: i64) -> Vec<&T> {
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let mut picked = Vec::new();
    if step > 0 {
        let clamp = |i: i64| {
            if i < 0 { (i + len).max(0) } else { i.min(len) }
        };
        let (mut i, stop) = (start.map_or(0, clamp), stop.map_or(len, clamp));
        while i < stop {
            picked.push(&items[i as usize]);
            i += step;
        }
    } else {
        let clamp = |i: i64| {
            if i < 0 {
                (i + len).max(-1)
            } else {
                i.min(len - 1)
            }
        };
        let (mut i, stop) = (start.map_or(len - 1, clamp), stop.map_or(-1, clamp));
        while i > stop {
            picked.push(&items[i as usize]);
            i += step;
        }
    }
    picked
}

/// `XComResponse`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct XComResponse {
    /// XCom key.
    pub key: String,
    /// The stored JSON value, as stored (numbers stay exact).
    pub value: Box<RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_as_python_does() {
        let items: Vec<i64> = (0..7).collect();
        let slice = |start, stop, step| -> Vec<i64> {
            python_slice(&items, start, stop, step)
                .into_iter()
                .copied()
                .collect()
        };
        // Expected values from CPython's `list(range(7))[start:stop:step]`.
        assert_eq!(slice(None, None, 1), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(slice(Some(2), Some(5), 1), vec![2, 3, 4]);
        assert_eq!(slice(Some(-3), None, 1), vec![4, 5, 6]);
        assert_eq!(slice(None, Some(-2), 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(slice(Some(1), None, 2), vec![1, 3, 5]);
        assert_eq!(slice(None, None, -1), vec![6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(slice(Some(5), Some(1), -2), vec![5, 3]);
        assert_eq!(slice(Some(-1), Some(-4), -1), vec![6, 5, 4]);
        assert_eq!(slice(Some(2), None, -1), vec![2, 1, 0]);
        assert_eq!(slice(Some(100), None, -3), vec![6, 3, 0]);
        assert_eq!(slice(Some(-100), Some(100), 3), vec![0, 3, 6]);
        assert_eq!(slice(Some(5), Some(2), 1), Vec::<i64>::new());
        assert_eq!(slice(Some(1), Some(-10), -1), vec![1, 0]);
        assert_eq!(python_slice::<i64>(&[], Some(-1), None, -1).len(), 0);
    }

    #[test]
    fn an_empty_key_is_refused() {
        let err = series("d", "r", "t", "").unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(series("d", "r", "t", "a/b").is_ok());
    }
}
