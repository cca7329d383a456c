//! `/store/...`: the task state store (`/store/ti/{task_instance_id}/...`,
//! Airflow's `routes/task_state_store.py`) and the asset state store
//! (`/store/asset/by-name/...`, `/store/asset/by-uri/...`,
//! `routes/asset_state_store.py`).
//!
//! Values are any JSON but `null` and non-finite numbers; they are stored as
//! Python's `json.dumps` writes them, so Airflow's `json.loads` reads them back.

use actix_web::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::ApiError;
use super::asset_events::parse_aware;
use crate::store::pyjson;

/// The routes. Those of one task instance require the token's subject to be
/// that instance (`ti:self`); the asset routes take any execution token.
#[policy_macros::execution_router(parent = super::execution, prefix = "/store")]
pub mod routes {
    use actix_web::{HttpResponse, web};
    use policy_core::Token;
    use policy_macros::execution_route;
    use uuid::Uuid;

    use super::{
        AssetKeyQuery, AssetValueResponse, ByName, ByUri, Key, TaskValueResponse, parse_put_body,
        py_repr,
    };
    use crate::api::ApiError;
    use crate::api::bounds;
    use crate::store::{AssetRef, AssetStateOutcome, AssetWriter, Store, TaskStateOutcome};

    fn no_task_instance(id: Uuid) -> ApiError {
        ApiError::not_found(format!("Task instance {id} not found"))
    }

    fn no_task_key(key: &str) -> ApiError {
        ApiError::not_found(format!("Task state store key {} not found", py_repr(key)))
    }

    /// Get value for a task state store key: `{"value": ...}`, or 404.
    #[execution_route(get, "/ti/{task_instance_id}/{key:.+}", scopes = ["ti:self"], responses = [200 => TaskValueResponse, 404])]
    pub async fn get_task_state_store(
        store: web::Data<Store>,
        path: web::Path<(Uuid, String)>,
    ) -> Result<HttpResponse, ApiError> {
        let (id, key) = path.into_inner();
        match store.task_state(id, &key).await? {
            TaskStateOutcome::NoTaskInstance => Err(no_task_instance(id)),
            TaskStateOutcome::Done(None) => Err(no_task_key(&key)),
            TaskStateOutcome::Done(Some(value)) => {
                Ok(HttpResponse::Ok().json(TaskValueResponse::from_stored(value)?))
            }
        }
    }

    /// Set a task state store key, creating or updating the row: 204.
    #[execution_route(put, "/ti/{task_instance_id}/{key:.+}", scopes = ["ti:self"], body = super::PutBody<'static>, responses = [204, 404])]
    pub async fn set_task_state_store(
        store: web::Data<Store>,
        path: web::Path<(Uuid, String)>,
        body: web::Bytes,
    ) -> Result<HttpResponse, ApiError> {
        let (id, key) = path.into_inner();
        bounds::TASK_STATE_STORE_KEY.check(&key)?;
        let (value, expires_at) = parse_put_body(&body, true)?;
        match store.put_task_state(id, &key, &value, expires_at).await? {
            TaskStateOutcome::NoTaskInstance => Err(no_task_instance(id)),
            TaskStateOutcome::Done(()) => Ok(HttpResponse::NoContent().finish()),
        }
    }

    /// Delete a single task state store key: 204, whether or not it existed.
    #[execution_route(delete, "/ti/{task_instance_id}/{key:.+}", scopes = ["ti:self"], responses = [204, 404])]
    pub async fn delete_task_state_store(
        store: web::Data<Store>,
        path: web::Path<(Uuid, String)>,
    ) -> Result<HttpResponse, ApiError> {
        let (id, key) = path.into_inner();
        match store.delete_task_state(id, Some(&key)).await? {
            TaskStateOutcome::NoTaskInstance => Err(no_task_instance(id)),
            TaskStateOutcome::Done(()) => Ok(HttpResponse::NoContent().finish()),
        }
    }

    /// Delete all task state store keys for this task instance: 204.
    #[execution_route(delete, "/ti/{task_instance_id}", scopes = ["ti:self"], responses = [204, 404])]
    pub async fn clear_task_state_store(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
    ) -> Result<HttpResponse, ApiError> {
        let id = *id;
        match store.delete_task_state(id, None).await? {
            TaskStateOutcome::NoTaskInstance => Err(no_task_instance(id)),
            TaskStateOutcome::Done(()) => Ok(HttpResponse::NoContent().finish()),
        }
    }

    fn asset_outcome<T>(
        outcome: AssetStateOutcome<T>,
        asset: AssetRef<'_>,
        writer: Option<Uuid>,
    ) -> Result<T, ApiError> {
        match outcome {
            AssetStateOutcome::Done(value) => Ok(value),
            AssetStateOutcome::NoAsset => Err(ApiError::not_found(match asset {
                AssetRef::Name(name) => format!("Asset with name={} not found", py_repr(name)),
                AssetRef::Uri(uri) => format!("Asset with uri={} not found", py_repr(uri)),
            })),
            AssetStateOutcome::NoTaskInstance => Err(ApiError::not_found(format!(
                "Task instance UUID('{}') not found",
                writer.unwrap_or_default()
            ))),
        }
    }

    async fn get_asset_value(
        store: &Store,
        asset: AssetRef<'_>,
        key: &str,
    ) -> Result<HttpResponse, ApiError> {
        match asset_outcome(store.asset_state(asset, key).await?, asset, None)? {
            Some(value) => Ok(HttpResponse::Ok().json(AssetValueResponse::from_stored(value)?)),
            None => Err(ApiError::not_found(format!(
                "Asset state store key {} not found",
                py_repr(key)
            ))),
        }
    }

    async fn put_asset_value(
        store: &Store,
        token: &Token,
        asset: AssetRef<'_>,
        key: &str,
        body: &[u8],
    ) -> Result<HttpResponse, ApiError> {
        let (value, _) = parse_put_body(body, false)?;
        // Airflow's in-process API (asset watchers in the triggerer) calls
        // with the null UUID as subject.
        let writer = match token.sub() {
            sub if sub.is_nil() => AssetWriter::Watcher,
            sub => AssetWriter::Task(sub),
        };
        let outcome = store.put_asset_state(asset, key, &value, writer).await?;
        asset_outcome(outcome, asset, Some(token.sub()))?;
        Ok(HttpResponse::NoContent().finish())
    }

    async fn delete_asset_value(
        store: &Store,
        asset: AssetRef<'_>,
        key: Option<&str>,
    ) -> Result<HttpResponse, ApiError> {
        asset_outcome(store.delete_asset_state(asset, key).await?, asset, None)?;
        Ok(HttpResponse::NoContent().finish())
    }

    /// Get an asset state store value by asset name: `{"value": ...}`, or 404.
    #[execution_route(get, "/asset/by-name/value", scopes = ["ti:running"], responses = [200 => AssetValueResponse, 404])]
    pub async fn get_asset_state_store_by_name(
        store: web::Data<Store>,
        query: web::Query<AssetKeyQuery<ByName>>,
    ) -> Result<HttpResponse, ApiError> {
        let (asset, key) = query.checked()?;
        get_asset_value(&store, asset, key).await
    }

    /// Set an asset state store value by asset name: 204.
    #[execution_route(put, "/asset/by-name/value", scopes = ["ti:running"], body = super::PutBody<'static>, responses = [204, 404])]
    pub async fn set_asset_state_store_by_name(
        store: web::Data<Store>,
        token: Token,
        query: web::Query<AssetKeyQuery<ByName>>,
        body: web::Bytes,
    ) -> Result<HttpResponse, ApiError> {
        let (asset, key) = query.checked()?;
        bounds::ASSET_STATE_STORE_KEY_BY_NAME.check(key)?;
        put_asset_value(&store, &token, asset, key, &body).await
    }

    /// Delete a single asset state store key by asset name: 204.
    #[execution_route(delete, "/asset/by-name/value", scopes = ["ti:running"], responses = [204, 404])]
    pub async fn delete_asset_state_store_by_name(
        store: web::Data<Store>,
        query: web::Query<AssetKeyQuery<ByName>>,
    ) -> Result<HttpResponse, ApiError> {
        let (asset, key) = query.checked()?;
        delete_asset_value(&store, asset, Some(key)).await
    }

    /// Delete all state store keys for an asset by asset name: 204.
    #[execution_route(delete, "/asset/by-name/clear", scopes = ["ti:running"], responses = [204, 404])]
    pub async fn clear_asset_state_store_by_name(
        store: web::Data<Store>,
        query: web::Query<ByName>,
    ) -> Result<HttpResponse, ApiError> {
        delete_asset_value(&store, query.checked()?, None).await
    }

    /// Get an asset state store value by asset URI: `{"value": ...}`, or 404.
    #[execution_route(get, "/asset/by-uri/value", scopes = ["ti:running"], responses = [200 => AssetValueResponse, 404])]
    pub async fn get_asset_state_store_by_uri(
        store: web::Data<Store>,
        query: web::Query<AssetKeyQuery<ByUri>>,
    ) -> Result<HttpResponse, ApiError> {
        let (asset, key) = query.checked()?;
        get_asset_value(&store, asset, key).await
    }

    /// Set an asset state store value by asset URI: 204.
    #[execution_route(put, "/asset/by-uri/value", scopes = ["ti:running"], body = super::PutBody<'static>, responses = [204, 404])]
    pub async fn set_asset_state_store_by_uri(
        store: web::Data<Store>,
        token: Token,
        query: web::Query<AssetKeyQuery<ByUri>>,
        body: web::Bytes,
    ) -> Result<HttpResponse, ApiError> {
        let (asset, key) = query.checked()?;
        bounds::ASSET_STATE_STORE_KEY_BY_URI.check(key)?;
        put_asset_value(&store, &token, asset, key, &body).await
    }

    /// Delete a single asset state store key by asset URI: 204.
    #[execution_route(delete, "/asset/by-uri/value", scopes = ["ti:running"], responses = [204, 404])]
    pub async fn delete_asset_state_store_by_uri(
        store: web::Data<Store>,
        query: web::Query<AssetKeyQuery<ByUri>>,
    ) -> Result<HttpResponse, ApiError> {
        let (asset, key) = query.checked()?;
        delete_asset_value(&store, asset, Some(key)).await
    }

    /// Delete all state store keys for an asset by asset URI: 204.
    #[execution_route(delete, "/asset/by-uri/clear", scopes = ["ti:running"], responses = [204, 404])]
    pub async fn clear_asset_state_store_by_uri(
        store: web::Data<Store>,
        query: web::Query<ByUri>,
    ) -> Result<HttpResponse, ApiError> {
        delete_asset_value(&store, query.checked()?, None).await
    }
}

use crate::store::AssetRef;

fn too_short(param: &str) -> ApiError {
    ApiError::validation(
        StatusCode::UNPROCESSABLE_ENTITY,
        vec!["query".into(), param.into()],
        "String should have at least 1 character",
        "string_too_short",
    )
}

/// `?name=` (at least one character).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct ByName {
    /// The asset's name.
    pub name: String,
}

/// `?uri=` (at least one character).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct ByUri {
    /// The asset's URI.
    pub uri: String,
}

/// How a query names its asset.
pub trait Key {
    /// The asset, or 422 for an empty name or URI.
    fn checked(&self) -> Result<AssetRef<'_>, ApiError>;
}

impl Key for ByName {
    fn checked(&self) -> Result<AssetRef<'_>, ApiError> {
        if self.name.is_empty() {
            return Err(too_short("name"));
        }
        Ok(AssetRef::Name(&self.name))
    }
}

impl Key for ByUri {
    fn checked(&self) -> Result<AssetRef<'_>, ApiError> {
        if self.uri.is_empty() {
            return Err(too_short("uri"));
        }
        Ok(AssetRef::Uri(&self.uri))
    }
}

/// An asset and a key (`?name=&key=` or `?uri=&key=`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct AssetKeyQuery<A> {
    /// The asset.
    #[serde(flatten)]
    pub asset: A,
    /// The key (at least one character).
    pub key: String,
}

impl<A: Key> AssetKeyQuery<A> {
    /// The asset and key, or 422 when either is empty.
    pub fn checked(&self) -> Result<(AssetRef<'_>, &str), ApiError> {
        let asset = self.asset.checked()?;
        if self.key.is_empty() {
            return Err(too_short("key"));
        }
        Ok((asset, &self.key))
    }
}

/// `TaskStateStoreResponse`: `{"value": ...}`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TaskValueResponse {
    /// The stored value.
    pub value: Box<RawValue>,
}

/// `AssetStateStoreResponse`: `{"value": ...}`.
pub type AssetValueResponse = TaskValueResponse;

impl TaskValueResponse {
    /// The response for a stored value (JSON text).
    pub fn from_stored(value: String) -> Result<TaskValueResponse, ApiError> {
        RawValue::from_string(value)
            .map(|value| TaskValueResponse { value })
            .map_err(|e| ApiError::internal(format!("stored state value is not JSON: {e}")))
    }
}

/// `TaskStateStorePutBody` (`expires_at` allowed) or `AssetStateStorePutBody`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PutBody<'a> {
    #[serde(borrow)]
    value: &'a RawValue,
    /// Absent, `null` or a time: `Some(None)` is a `null` that was sent.
    #[serde(default, deserialize_with = "super::fields::present")]
    expires_at: Option<Option<String>>,
}

fn body_error(loc: &[&str], msg: impl Into<String>, kind: &str) -> ApiError {
    ApiError::validation(
        StatusCode::UNPROCESSABLE_ENTITY,
        loc.iter().map(|l| (*l).into()).collect(),
        msg,
        kind,
    )
}

/// Reads a PUT body: the value to store (as `json.dumps` text) and, for the
/// task store, when it expires. `null` and non-finite numbers are refused
/// (422), as Airflow's validators do.
fn parse_put_body(
    body: &[u8],
    expiry_allowed: bool,
) -> Result<(String, Option<OffsetDateTime>), ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(body_error(
            &["body"],
            "Input should be a JSON object",
            "model_attributes_type",
        ));
    }
    let parsed: PutBody<'_> = serde_json::from_slice(body).map_err(|e| {
        let kind = if e.is_data() {
            "value_error"
        } else {
            "json_invalid"
        };
        body_error(&["body"], e.to_string(), kind)
    })?;
    // The asset store's body has no `expires_at`, not even `null`.
    if parsed.expires_at.is_some() && !expiry_allowed {
        return Err(body_error(
            &["body", "expires_at"],
            "Extra inputs are not permitted",
            "extra_forbidden",
        ));
    }
    if parsed.value.get().trim() == "null" {
        return Err(body_error(
            &["body", "value"],
            "Value error, value cannot be null",
            "value_error",
        ));
    }
    let value = pyjson::dumps(parsed.value.get()).map_err(|_| {
        body_error(
            &["body", "value"],
            "Value error, value must be a finite number; NaN and Inf are not JSON representable",
            "value_error",
        )
    })?;
    let expires_at = parsed
        .expires_at
        .flatten()
        .as_deref()
        .map(|t| parse_aware("expires_at", t))
        .transpose()
        .map_err(|_| {
            body_error(
                &["body", "expires_at"],
                "Input should be a valid datetime with a timezone offset",
                "datetime_from_date_parsing",
            )
        })?;
    Ok((value, expires_at))
}

/// Python's `repr` of a string, as Airflow's messages quote keys (`{key!r}`).
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_bodies_are_checked_as_airflow_checks_them() {
        let (value, expires) =
            parse_put_body(br#"{"value": {"b":1,"a":[1.0,"\u00e9"]}}"#, true).unwrap();
        assert_eq!(value, r#"{"b": 1, "a": [1.0, "\u00e9"]}"#);
        assert_eq!(expires, None);
        let (_, expires) = parse_put_body(
            br#"{"value": 1, "expires_at": "2030-01-01T00:00:00Z"}"#,
            true,
        )
        .unwrap();
        assert!(expires.is_some());
        for (body, expiry) in [
            (&br#"{"value": null}"#[..], true),
            (br#"{}"#, true),
            (br#"[1]"#, true),
            (br#"{"value": 1e400}"#, true),
            (br#"{"value": NaN}"#, true),
            (br#"{"value": 1, "other": 2}"#, true),
            (
                br#"{"value": 1, "expires_at": "2030-01-01T00:00:00Z"}"#,
                false,
            ),
            (
                br#"{"value": 1, "expires_at": "2030-01-01T00:00:00"}"#,
                true,
            ),
            (b"", true),
        ] {
            let err = parse_put_body(body, expiry).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn keys_are_quoted_as_python_repr_quotes_them() {
        assert_eq!(py_repr("k"), "'k'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("both'\""), "'both\\'\"'");
        assert_eq!(py_repr("a\\b\nc\u{1}é"), "'a\\\\b\\nc\\x01é'");
    }
}
