//! `/variables/{variable_key}` and `/connections/{connection_id}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::ApiError;
use crate::models::{MessageResponse, VariablePostBody};
use crate::store::Store;

/// `GET /variables/{key}`: `VariableResponse`, or 404.
pub(crate) async fn get_variable(store: &Store, key: &str) -> Result<HttpResponse, ApiError> {
    match store.variable(key).await? {
        Some(variable) => Ok(HttpResponse::Ok().json(variable)),
        None => Err(ApiError::not_found(format!(
            "Variable with key '{key}' not found"
        ))),
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

/// `GET /connections/{id}`: `ConnectionResponse`, or 404.
pub(crate) async fn get_connection(store: &Store, conn_id: &str) -> Result<HttpResponse, ApiError> {
    match store.connection(conn_id).await? {
        Some(connection) => Ok(HttpResponse::Ok().json(connection)),
        None => Err(ApiError::not_found(format!(
            "Connection with ID {conn_id} not found"
        ))),
    }
}
