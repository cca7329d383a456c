//! `/variables/{variable_key}` and `/connections/{connection_id}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::ApiError;
use crate::models::{ConnectionResponse, MessageResponse, VariablePostBody, VariableResponse};
use crate::store::{Store, StoreError};

/// `GET /variables/{key}`: `VariableResponse`, or 404. As Airflow looks it up:
/// the environment (`AIRFLOW_VAR_<KEY>`) first, then the metastore; a stored
/// value that does not decrypt is logged and answered 404, as Airflow does.
pub(crate) async fn get_variable(store: &Store, key: &str) -> Result<HttpResponse, ApiError> {
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

/// `PUT /variables/{key}`: 201.
pub(crate) async fn put_variable(
    store: &Store,
    key: &str,
    body: &VariablePostBody,
) -> Result<HttpResponse, ApiError> {
    store
        .put_variable(key, body.val.as_deref(), body.description.as_deref())
        .await?;
    Ok(
        HttpResponse::build(StatusCode::CREATED).json(MessageResponse {
            message: "Variable successfully set".into(),
        }),
    )
}

/// `DELETE /variables/{key}`: 204, whether or not it existed (as Airflow).
pub(crate) async fn delete_variable(store: &Store, key: &str) -> Result<HttpResponse, ApiError> {
    store.delete_variable(key).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /connections/{id}`: `ConnectionResponse`, or 404. A password or extra
/// that does not decrypt is logged and answered 404 (Airflow answers 500).
pub(crate) async fn get_connection(store: &Store, conn_id: &str) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found(format!("Connection with ID {conn_id} not found"));
    match store.connection(conn_id).await {
        Ok(Some(connection)) => Ok(HttpResponse::Ok().json(ConnectionResponse::from(connection))),
        Ok(None) => Err(not_found()),
        Err(StoreError::Decrypt { what, source }) => {
            tracing::warn!(%what, error = %source, "cannot decrypt; check [core] fernet_key");
            Err(not_found())
        }
        Err(e) => Err(e.into()),
    }
}
