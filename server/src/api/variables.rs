//! `/variables/{variable_key}`: Airflow variables, read as Airflow reads them
//! (the environment's `AIRFLOW_VAR_<KEY>` first, then the metastore).

use serde::{Deserialize, Serialize};

use super::fields::required_nullable;
use crate::store;

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/variables")]
pub mod routes {
    use actix_web::http::StatusCode;
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;

    use super::{VariablePostBody, VariableResponse};
    use crate::api::fields::MessageResponse;
    use crate::api::{ApiError, Payload};
    use crate::store::{Store, StoreError};

    /// Reads a variable: `VariableResponse`, or 404. A stored value that does
    /// not decrypt is logged and answered 404, as Airflow does.
    #[execution_route(get, "/{variable_key}")]
    pub async fn get_variable(
        store: web::Data<Store>,
        key: web::Path<String>,
    ) -> Result<HttpResponse, ApiError> {
        let key = key.as_str();
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

    /// Creates or replaces a variable: 201.
    #[execution_route(put, "/{variable_key}")]
    pub async fn put_variable(
        store: web::Data<Store>,
        key: web::Path<String>,
        body: Payload<VariablePostBody>,
    ) -> Result<HttpResponse, ApiError> {
        store
            .put_variable(&key, body.val.as_deref(), body.description.as_deref())
            .await?;
        Ok(
            HttpResponse::build(StatusCode::CREATED).json(MessageResponse {
                message: "Variable successfully set".into(),
            }),
        )
    }

    /// Deletes a variable: 204, whether or not it existed (as Airflow).
    #[execution_route(delete, "/{variable_key}")]
    pub async fn delete_variable(
        store: web::Data<Store>,
        key: web::Path<String>,
    ) -> Result<HttpResponse, ApiError> {
        store.delete_variable(&key).await?;
        Ok(HttpResponse::NoContent().finish())
    }
}

/// `VariableResponse`.
#[derive(Clone, Debug, Serialize, PartialEq)]
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

/// `VariablePostBody`: `PUT /variables/{key}` body.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariablePostBody {
    /// The value (required, may be `null`).
    #[serde(deserialize_with = "required_nullable")]
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
    }
}
