//! `/connections/{connection_id}`: Airflow connections, decrypted.
//!
//! Airflow's `{connection_id}` is one path segment of the *decoded* path, so an id holding
//! `/` (sent as `%2F`) matches no route there: 404 `Not Found`, as here.

use schemars::JsonSchema;
use serde::Serialize;

use crate::store;

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/connections", scopes = ["ti:running"])]
pub mod routes {
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;

    use super::ConnectionResponse;
    use crate::api::ApiError;
    use crate::store::{Store, StoreError};

    /// Reads a connection: `ConnectionResponse`, or 404. A password or extra
    /// that does not decrypt is logged and answered 404 (Airflow answers 500).
    #[execution_route(get, "/{connection_id}", responses = [200 => ConnectionResponse, 404])]
    pub async fn get_connection(
        store: web::Data<Store>,
        conn_id: web::Path<String>,
    ) -> Result<HttpResponse, ApiError> {
        let conn_id = conn_id.as_str();
        if conn_id.contains('/') {
            return Err(ApiError::new(
                actix_web::http::StatusCode::NOT_FOUND,
                "Not Found".into(),
            ));
        }
        let not_found = || ApiError::not_found(format!("Connection with ID {conn_id} not found"));
        match store.connection(conn_id).await {
            Ok(Some(connection)) => {
                Ok(HttpResponse::Ok().json(ConnectionResponse::from(connection)))
            }
            Ok(None) => Err(not_found()),
            Err(StoreError::Decrypt { what, source }) => {
                tracing::warn!(%what, error = %source, "cannot decrypt; check [core] fernet_key");
                Err(not_found())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `ConnectionResponse`.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct ConnectionResponse {
    /// Connection id.
    pub conn_id: String,
    /// Connection type, e.g. `postgres`.
    pub conn_type: String,
    /// Host.
    pub host: Option<String>,
    /// Schema (database) name.
    pub schema: Option<String>,
    /// Login.
    pub login: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// Extra, a JSON document as a string.
    pub extra: Option<String>,
}

impl From<store::Connection> for ConnectionResponse {
    fn from(c: store::Connection) -> Self {
        ConnectionResponse {
            conn_id: c.conn_id,
            conn_type: c.conn_type,
            host: c.host,
            schema: c.schema,
            login: c.login,
            password: c.password,
            port: c.port,
            extra: c.extra,
        }
    }
}
