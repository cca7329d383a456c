//! The OpenAPI 3.1 document of `/execution`, built from the route registry.

use serde_json::{Value, json};

/// The document served at `/execution/openapi.json`.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for route in crate::api::routes() {
        let path = route
            .path
            .strip_prefix(crate::app::BASE_PATH)
            .unwrap_or(route.path);
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        let tokens: Vec<&str> = route
            .policy
            .allowed_tokens()
            .iter()
            .map(|t| t.as_str())
            .collect();
        let bindings: Vec<&str> = route.policy.bindings().iter().map(|b| b.scope()).collect();
        entry[route.method.to_ascii_lowercase()] = json!({
            "operationId": route.handler,
            "security": [{"HTTPBearer": []}],
            "x-token-policy": {"token_types": tokens, "bindings": bindings},
            "responses": {"200": {"description": "OK"}},
        });
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Airflow Task Execution API", "version": crate::app::API_VERSION},
        "servers": [{"url": crate::app::BASE_PATH}],
        "paths": paths,
        "components": {
            "securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}
