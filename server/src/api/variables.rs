//! `/variables/{variable_key}`: Airflow variables, read as Airflow reads them
//! (the environment's `AIRFLOW_VAR_<KEY>` first, then the metastore), and
//! `/variables/keys`, the metastore's keys.
//!
//! As Airflow's `{variable_key:path}`, a key may contain `/`; `/keys` is declared
//! first, so a variable named `keys` cannot be read here (nor in Airflow).

use actix_web::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiError;
use super::fields::required_nullable;
use crate::store;

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/variables", scopes = ["ti:running"])]
pub mod routes {
    use actix_web::http::StatusCode;
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;

    use super::{
        VariableKeysQuery, VariableKeysResponse, VariablePostBody, VariableResponse, require_key,
    };
    use crate::api::bounds;
    use crate::api::fields::MessageResponse;
    use crate::api::{ApiError, FromQuery as _, Payload, QueryParams};
    use crate::store::{Store, StoreError};
    use crate::versions::ApiVersion;

    /// Lists the metastore's variable keys in key order, those starting with `prefix`
    /// when given (`%`, `_` and `/` match themselves), a page of `limit` (1 to 10000,
    /// default 1000) from `offset`, with the number of matching keys in all.
    ///
    /// Before API version 2026-06-30 this path is the variable named `keys`, as in Airflow.
    #[execution_route(get, "/keys", query = VariableKeysQuery, responses = [200 => VariableKeysResponse])]
    pub async fn get_variable_keys(
        req: actix_web::HttpRequest,
        store: web::Data<Store>,
        version: ApiVersion,
    ) -> Result<HttpResponse, ApiError> {
        if version < ApiVersion::V2026_06_30 {
            return read_variable(&store, "keys").await;
        }
        // Read after the version check (before 2026-06-30 this is a variable, whatever the
        // query), so not an extractor; declared with `query = ...` for the API document.
        let mut params = QueryParams::of(&req);
        let query = VariableKeysQuery::read(&mut params);
        params.finish()?;
        let (keys, total_entries) = store
            .variable_keys(query.prefix.as_deref(), query.limit, query.offset)
            .await?;
        Ok(HttpResponse::Ok().json(VariableKeysResponse {
            keys,
            total_entries,
        }))
    }

    /// Reads a variable: `VariableResponse`, or 404. A stored value that does
    /// not decrypt is logged and answered 404, as Airflow does.
    #[execution_route(get, "/{variable_key:.*}", responses = [200 => VariableResponse, 404])]
    pub async fn get_variable(
        store: web::Data<Store>,
        key: web::Path<String>,
    ) -> Result<HttpResponse, ApiError> {
        read_variable(&store, require_key(&key)?).await
    }

    /// `AIRFLOW_VAR_<KEY>` first, then the metastore.
    async fn read_variable(store: &Store, key: &str) -> Result<HttpResponse, ApiError> {
        let not_found = || ApiError::not_found(format!("Variable with key '{key}' not found"));
        if let Ok(value) = std::env::var(format!("AIRFLOW_VAR_{}", key.to_uppercase())) {
            return Ok(HttpResponse::Ok().json(VariableResponse {
                key: key.to_owned(),
                value: Some(value),
            }));
        }
        match store.variable(key).await {
            Ok(Some(variable)) => Ok(HttpResponse::Ok().json(VariableResponse::from(variable))),
            Ok(None) => Err(not_found()),
            Err(StoreError::Decrypt { what, source }) => {
                tracing::warn!(%what, error = %source, "cannot decrypt; check [core] fernet_key");
                Err(not_found())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Creates or replaces a variable (`val`, or `value`, may be `null`): 201.
    #[execution_route(put, "/{variable_key:.*}", responses = [201 => MessageResponse])]
    pub async fn put_variable(
        store: web::Data<Store>,
        key: web::Path<String>,
        body: Payload<VariablePostBody>,
    ) -> Result<HttpResponse, ApiError> {
        let key = require_key(&key)?;
        bounds::VARIABLE_KEY.check(key)?;
        store
            .put_variable(key, body.val.as_deref(), body.description.as_deref())
            .await?;
        Ok(
            HttpResponse::build(StatusCode::CREATED).json(MessageResponse {
                message: "Variable successfully set".into(),
            }),
        )
    }

    /// Deletes a variable: 204, whether or not it existed (as Airflow).
    #[execution_route(delete, "/{variable_key:.*}", responses = [204])]
    pub async fn delete_variable(
        store: web::Data<Store>,
        key: web::Path<String>,
    ) -> Result<HttpResponse, ApiError> {
        store.delete_variable(require_key(&key)?).await?;
        Ok(HttpResponse::NoContent().finish())
    }
}

/// `VariableResponse`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct VariableResponse {
    /// Variable key.
    pub key: String,
    /// Variable value.
    pub value: Option<String>,
}

impl From<store::Variable> for VariableResponse {
    fn from(v: store::Variable) -> Self {
        VariableResponse {
            key: v.key,
            value: Some(v.value),
        }
    }
}

/// The path's key, which Airflow requires to be non-empty (`Path(min_length=1)`).
fn require_key(key: &str) -> Result<&str, ApiError> {
    if key.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{
                "type": "string_too_short",
                "loc": ["path", "variable_key"],
                "msg": "String should have at least 1 character",
                "input": "",
                "ctx": {"min_length": 1},
            }]),
        ));
    }
    Ok(key)
}

/// The query of `GET /variables/keys`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct VariableKeysQuery {
    /// Only keys starting with this (`%`, `_` and `/` match themselves).
    pub prefix: Option<String>,
    /// The page size.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: i64,
    /// Keys skipped before the page.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub offset: i64,
}

fn default_limit() -> i64 {
    1000
}

impl super::FromQuery for VariableKeysQuery {
    fn read(params: &mut super::QueryParams) -> Self {
        let prefix = params.optional("prefix");
        let limit = params.bounded("limit", default_limit(), 1, Some(10_000));
        let offset = params.bounded("offset", 0, 0, None);
        VariableKeysQuery {
            prefix,
            limit,
            offset,
        }
    }
}

/// `VariableKeysResponse`: `GET /variables/keys`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct VariableKeysResponse {
    /// A page of keys, in key order.
    pub keys: Vec<String>,
    /// How many keys match in all.
    pub total_entries: i64,
}

/// `VariablePostBody`: `PUT /variables/{key}` body.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariablePostBody {
    /// The value (required, may be `null`); Airflow's model takes it as `val` or `value`.
    #[serde(alias = "value", deserialize_with = "required_nullable")]
    #[schemars(required)]
    pub val: Option<String>,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_body_needs_val_but_it_may_be_null() {
        assert!(serde_json::from_str::<VariablePostBody>("{}").is_err());
        let body: VariablePostBody = serde_json::from_str(r#"{"val": null}"#).unwrap();
        assert_eq!(body.val, None);
        let body: VariablePostBody =
            serde_json::from_str(r#"{"val": "v", "description": "d"}"#).unwrap();
        assert_eq!(body.val.as_deref(), Some("v"));
        // Airflow's model also takes the field's own name, `value`, but not both.
        let body: VariablePostBody = serde_json::from_str(r#"{"value": "w"}"#).unwrap();
        assert_eq!(body.val.as_deref(), Some("w"));
        let body: VariablePostBody = serde_json::from_str(r#"{"value": null}"#).unwrap();
        assert_eq!(body.val, None);
        assert!(serde_json::from_str::<VariablePostBody>(r#"{"val": "a", "value": "b"}"#).is_err());
    }
}
