//! `/assets/...`: assets by name, URI and alias (Airflow's `routes/assets.py`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::store;

/// The routes.
#[policy_macros::execution_router(parent = super::execution, prefix = "/assets", scopes = ["ti:running"])]
pub mod routes {
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;

    use super::{AliasQuery, AssetResponse, NameQuery, UriQuery};
    use crate::api::ApiError;
    use crate::store::Store;

    /// Get an active asset by name: `AssetResponse`, or 404.
    #[execution_route(get, "/by-name", responses = [200 => AssetResponse, 404])]
    pub async fn get_asset_by_name(
        store: web::Data<Store>,
        query: web::Query<NameQuery>,
    ) -> Result<HttpResponse, ApiError> {
        match store.active_asset_by_name(&query.name).await? {
            Some(asset) => Ok(HttpResponse::Ok().json(AssetResponse::from_store(asset)?)),
            None => Err(ApiError::not_found(format!(
                "Asset with name {} not found",
                query.name
            ))),
        }
    }

    /// Get an active asset by URI: `AssetResponse`, or 404.
    #[execution_route(get, "/by-uri", responses = [200 => AssetResponse, 404])]
    pub async fn get_asset_by_uri(
        store: web::Data<Store>,
        query: web::Query<UriQuery>,
    ) -> Result<HttpResponse, ApiError> {
        match store.active_asset_by_uri(&query.uri).await? {
            Some(asset) => Ok(HttpResponse::Ok().json(AssetResponse::from_store(asset)?)),
            None => Err(ApiError::not_found(format!(
                "Asset with URI {} not found",
                query.uri
            ))),
        }
    }

    /// Get the assets an asset alias resolves to: a list, empty for an unknown alias.
    #[execution_route(get, "/by-alias", responses = [200 => Vec<AssetResponse>])]
    pub async fn get_assets_by_alias(
        store: web::Data<Store>,
        query: web::Query<AliasQuery>,
    ) -> Result<HttpResponse, ApiError> {
        let assets = store
            .assets_by_alias(&query.alias_name)
            .await?
            .into_iter()
            .map(AssetResponse::from_store)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpResponse::Ok().json(assets))
    }
}

/// `?name=` (required).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct NameQuery {
    /// The asset's name.
    pub name: String,
}

/// `?uri=` (required).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct UriQuery {
    /// The asset's URI.
    pub uri: String,
}

/// `?alias_name=` (required).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct AliasQuery {
    /// The asset alias's name.
    pub alias_name: String,
}

/// `AssetResponse`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AssetResponse {
    /// Name.
    pub name: String,
    /// URI.
    pub uri: String,
    /// Group.
    pub group: String,
    /// Extra, a JSON object as stored.
    pub extra: Option<Box<RawValue>>,
}

impl AssetResponse {
    /// The wire form of a stored asset.
    pub fn from_store(asset: store::Asset) -> Result<AssetResponse, super::ApiError> {
        Ok(AssetResponse {
            name: asset.name,
            uri: asset.uri,
            group: asset.group,
            extra: raw_json(asset.extra, "asset.extra")?,
        })
    }
}

/// Stored JSON text as a raw value for a response.
pub(crate) fn raw_json(
    text: Option<String>,
    what: &str,
) -> Result<Option<Box<RawValue>>, super::ApiError> {
    text.map(RawValue::from_string)
        .transpose()
        .map_err(|e| super::ApiError::internal(format!("stored {what} is not JSON: {e}")))
}
