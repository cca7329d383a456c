//! The OpenAPI 3.1 document of `/execution`, built from the route registry.
//!
//! Paths, methods and security come from [`crate::api::routes`], so the
//! document cannot list a route that does not exist or miss one that does;
//! each operation carries `x-token-policy` (`token_types`, `bindings`), the
//! policy the macros merged. Request and response schemas follow the Task
//! SDK's models (`extra="forbid"` becomes `additionalProperties: false`).

use serde_json::{Map, Value, json};

use crate::app::BASE_PATH;

/// The document of the newest version.
pub fn document() -> Value {
    document_for(crate::versions::ApiVersion::HEAD)
}

/// The document served at `/execution/openapi.json?version=...`: the routes
/// that exist at `version`.
pub fn document_for(version: crate::versions::ApiVersion) -> Value {
    let mut paths = Map::new();
    paths.insert(
        "/health".into(),
        json!({"get": {
            "operationId": "health",
            "summary": "The process answers (no token needed, no database access)",
            "responses": {
                "200": {"description": "Healthy",
                        "content": json_content(json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["healthy"]}}, "required": ["status"]}))}
            }
        }}),
    );
    paths.insert(
        "/health/ping".into(),
        json!({"get": {
            "operationId": "health_ping",
            "summary": "Liveness and database check (no token needed)",
            "responses": {
                "200": {"description": "Healthy", "content": json_content(schema_ref("PingResponse"))},
                "503": {"description": "Database unavailable", "headers": retry_after(),
                        "content": json_content(schema_ref("PingResponse"))}
            }
        }}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI document",
                                  "content": json_content(json!({"type": "object"}))}}
        }}),
    );
    for route in crate::api::routes() {
        let path = openapi_path(route.path.strip_prefix(BASE_PATH).unwrap_or(route.path));
        if !crate::versions::exists(version, route.method, &path) {
            continue;
        }
        let tokens: Vec<&str> = route
            .policy
            .allowed_tokens()
            .iter()
            .map(|t| t.as_str())
            .collect();
        let bindings: Vec<&str> = route.policy.bindings().iter().map(|b| b.scope()).collect();
        let mut op = operation(route.method, &path);
        // The handler's doc comment: first line the summary, the rest its description.
        op.entry("summary")
            .or_insert_with(|| json!(route.summary()));
        if !route.doc.is_empty() {
            op.insert("description".into(), json!(route.doc));
        }
        op.insert("operationId".into(), json!(route.handler));
        op.insert("security".into(), json!([{"HTTPBearer": []}]));
        op.insert(
            "x-token-policy".into(),
            json!({"token_types": tokens, "bindings": bindings}),
        );
        let responses = op
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("responses is an object");
        add_common_responses(responses);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = Value::Object(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Airflow Task Execution API",
            "description": "The subset of Airflow 3.3's Execution API used by the Task SDK, with each route's token policy in `x-token-policy`.",
            "version": version.as_str()
        },
        "servers": [{"url": BASE_PATH}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "HTTPBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": schemas()
        }
    })
}

/// `{name:regex}` -> `{name}`.
fn openapi_path(pattern: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut skipping = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    out.push('{');
                }
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    skipping = false;
                    out.push('}');
                }
            }
            ':' if depth == 1 => skipping = true,
            c if !skipping => out.push(c),
            _ => {}
        }
    }
    out
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn retry_after() -> Value {
    json!({"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": json_content(schema_ref("HTTPExceptionResponse"))})
}

fn add_common_responses(responses: &mut Map<String, Value>) {
    let common = [
        ("401", error("Missing auth token")),
        (
            "403",
            error("Invalid token, token type not allowed, or subject mismatch"),
        ),
        ("404", error("Not found")),
        ("413", error("Body too large")),
        ("415", error("Body is not `application/json`")),
        (
            "422",
            json!({"description": "Invalid request", "content": json_content(schema_ref("HTTPValidationError"))}),
        ),
        ("500", error("Internal error")),
        (
            "503",
            json!({"description": "Database busy or unavailable", "headers": retry_after(),
                   "content": json_content(schema_ref("HTTPExceptionResponse"))}),
        ),
    ];
    for (status, response) in common {
        responses.entry(status).or_insert(response);
    }
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn query_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema})
}

fn string() -> Value {
    json!({"type": "string", "minLength": 1})
}

fn body(schema: Value, required: bool) -> Value {
    json!({"required": required, "content": json_content(schema)})
}

/// Parameters, body and responses of one operation.
fn operation(method: &str, path: &str) -> Map<String, Value> {
    let ti = || {
        path_param(
            "task_instance_id",
            json!({"type": "string", "format": "uuid"}),
        )
    };
    let xcom_params = |extra: &[(&str, Value)]| {
        let mut params = vec![
            path_param("dag_id", string()),
            path_param("run_id", string()),
            path_param("task_id", string()),
            path_param("key", string()),
            query_param(
                "map_index",
                json!({"type": "integer", "default": -1, "minimum": i64::MIN, "maximum": i64::MAX}),
            ),
        ];
        params.extend(extra.iter().map(|(n, s)| query_param(n, s.clone())));
        params
    };
    let conflict = || error("Task instance not in a state allowing this");
    let op = match (method, path) {
        ("PATCH", "/task-instances/{task_instance_id}/run") => json!({
            "summary": "Start a queued task instance",
            "parameters": [ti()],
            "requestBody": body(schema_ref("TIEnterRunningPayload"), true),
            "responses": {
                "200": {"description": "Run context; a workload token gets an execution token in `Refreshed-API-Token`",
                        "headers": {"Refreshed-API-Token": {"schema": {"type": "string"}}},
                        "content": json_content(schema_ref("TIRunContext"))},
                "409": conflict()
            }
        }),
        ("PATCH", "/task-instances/{task_instance_id}/state") => json!({
            "summary": "Move a running task instance to a terminal, retry or reschedule state",
            "parameters": [ti()],
            "requestBody": body(schema_ref("TIStateUpdate"), true),
            "responses": {
                "200": {"description": "Already in the requested state"},
                "204": {"description": "State updated"},
                "409": conflict()
            }
        }),
        ("PUT", "/task-instances/{task_instance_id}/heartbeat") => json!({
            "summary": "Heartbeat of a running task instance",
            "parameters": [ti()],
            "requestBody": body(schema_ref("TIHeartbeatInfo"), true),
            "responses": {
                "204": {"description": "Heartbeat recorded"},
                "409": conflict()
            }
        }),
        ("GET", "/variables/{variable_key}") => json!({
            "summary": "Get a variable",
            "parameters": [path_param("variable_key", string())],
            "responses": {"200": {"description": "The variable", "content": json_content(schema_ref("VariableResponse"))}}
        }),
        ("PUT", "/variables/{variable_key}") => json!({
            "summary": "Set a variable",
            "parameters": [path_param("variable_key", string())],
            "requestBody": body(schema_ref("VariablePostBody"), true),
            "responses": {"201": {"description": "Set", "content": json_content(schema_ref("MessageResponse"))}}
        }),
        ("DELETE", "/variables/{variable_key}") => json!({
            "summary": "Delete a variable",
            "parameters": [path_param("variable_key", string())],
            "responses": {"204": {"description": "Deleted (or absent)"}}
        }),
        ("GET", "/connections/{connection_id}") => json!({
            "summary": "Get a connection",
            "parameters": [path_param("connection_id", string())],
            "responses": {"200": {"description": "The connection", "content": json_content(schema_ref("ConnectionResponse"))}}
        }),
        ("GET", "/xcoms/{dag_id}/{run_id}/{task_id}/{key}") => json!({
            "summary": "Get an XCom value",
            "parameters": xcom_params(&[("include_prior_dates", json!({"type": "boolean"}))]),
            "responses": {"200": {"description": "The XCom", "content": json_content(schema_ref("XComResponse"))}}
        }),
        ("POST", "/xcoms/{dag_id}/{run_id}/{task_id}/{key}") => json!({
            "summary": "Set an XCom value (any JSON value; the DAG run must exist)",
            "parameters": xcom_params(&[
                ("dag_result", json!({"type": "boolean"})),
                (
                    "mapped_length",
                    json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}),
                ),
            ]),
            "requestBody": body(json!({}), false),
            "responses": {"201": {"description": "Set", "content": json_content(schema_ref("MessageResponse"))}}
        }),
        ("DELETE", "/xcoms/{dag_id}/{run_id}/{task_id}/{key}") => json!({
            "summary": "Delete an XCom value",
            "parameters": xcom_params(&[]),
            "responses": {"200": {"description": "Deleted (or absent)", "content": json_content(schema_ref("MessageResponse"))}}
        }),
        // Described by the route alone: its path parameters, from the template.
        _ => json!({
            "parameters": path_params(path),
            "responses": {"200": {"description": "OK"}}
        }),
    };
    match op {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The `{name}` parameters of a path template, as strings (`task_instance_id`
/// and `connection_test_id` as UUIDs).
fn path_params(path: &str) -> Vec<Value> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .map(|name| match name {
            "task_instance_id" | "connection_test_id" => {
                path_param(name, json!({"type": "string", "format": "uuid"}))
            }
            _ => path_param(name, string()),
        })
        .collect()
}

fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn terminal(state: &[&str]) -> Value {
    object(
        json!({
            "state": {"type": "string", "enum": state},
            "end_date": date_time(),
            "rendered_map_index": nullable(json!({"type": "string"}))
        }),
        &["state", "end_date"],
    )
}

fn schemas() -> Value {
    let s = || json!({"type": "string"});
    let ns = || nullable(json!({"type": "string"}));
    let int = || json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX});
    json!({
        "TIEnterRunningPayload": object(json!({
            "state": {"type": "string", "enum": ["running"], "default": "running"},
            "hostname": s(), "unixname": s(), "pid": int(), "start_date": date_time()
        }), &["hostname", "unixname", "pid", "start_date"]),
        "TIHeartbeatInfo": object(json!({"hostname": s(), "pid": int()}), &["hostname", "pid"]),
        "TISuccessStatePayload": object(json!({
            "state": {"type": "string", "enum": ["success"]},
            "end_date": date_time(),
            "task_outlets": nullable(json!({"type": "array", "items": {"type": "object"}})),
            "outlet_events": nullable(json!({"type": "array", "items": {"type": "object"}})),
            "rendered_map_index": ns()
        }), &["state", "end_date"]),
        "TITerminalStatePayload": terminal(&["failed", "skipped", "removed", "upstream_failed"]),
        "TIRetryStatePayload": object(json!({
            "state": {"type": "string", "enum": ["up_for_retry"]},
            "end_date": date_time(),
            "rendered_map_index": ns(),
            "retry_delay_seconds": nullable(json!({"type": "number"})),
            "retry_reason": ns()
        }), &["state", "end_date"]),
        "TIRescheduleStatePayload": object(json!({
            "state": {"type": "string", "enum": ["up_for_reschedule"]},
            "reschedule_date": date_time(),
            "end_date": date_time()
        }), &["state", "reschedule_date", "end_date"]),
        "TIStateUpdate": {
            "description": "Discriminated by `state`. `deferred` and `awaiting_input` are refused with 422 (no triggerer here).",
            "oneOf": [
                schema_ref("TISuccessStatePayload"),
                schema_ref("TITerminalStatePayload"),
                schema_ref("TIRetryStatePayload"),
                schema_ref("TIRescheduleStatePayload")
            ]
        },
        "DagRun": object(json!({
            "dag_id": s(), "run_id": s(),
            "logical_date": nullable(date_time()),
            "data_interval_start": nullable(date_time()),
            "data_interval_end": nullable(date_time()),
            "run_after": date_time(),
            "start_date": nullable(date_time()),
            "end_date": nullable(date_time()),
            "clear_number": {"type": "integer"},
            "run_type": {"type": "string", "enum": ["backfill", "scheduled", "manual", "operator_triggered", "asset_triggered", "asset_materialization"]},
            "state": {"type": "string", "enum": ["queued", "running", "success", "failed"]},
            "conf": nullable(json!({"type": "object"})),
            "triggering_user_name": ns(),
            "consumed_asset_events": {"type": "array", "items": {"type": "object"}},
            "partition_key": ns()
        }), &["dag_id", "run_id", "logical_date", "data_interval_start", "data_interval_end", "run_after", "start_date", "end_date", "run_type", "state", "consumed_asset_events", "partition_key"]),
        "TIRunContext": object(json!({
            "dag_run": schema_ref("DagRun"),
            "task_reschedule_count": {"type": "integer"},
            "max_tries": {"type": "integer"},
            "variables": {"type": "array", "items": schema_ref("VariableResponse")},
            "connections": {"type": "array", "items": schema_ref("ConnectionResponse")},
            "xcom_keys_to_clear": {"type": "array", "items": s()},
            "should_retry": {"type": "boolean"}
        }), &["dag_run", "max_tries"]),
        "VariableResponse": object(json!({"key": s(), "value": ns()}), &["key", "value"]),
        "VariablePostBody": object(json!({"val": ns(), "description": ns()}), &["val"]),
        "ConnectionResponse": object(json!({
            "conn_id": s(), "conn_type": s(), "host": ns(), "schema": ns(), "login": ns(),
            "password": ns(), "port": nullable(json!({"type": "integer"})), "extra": ns()
        }), &["conn_id", "conn_type", "host", "schema", "login", "password", "port", "extra"]),
        "XComResponse": object(json!({"key": s(), "value": {}}), &["key", "value"]),
        "MessageResponse": object(json!({"message": s()}), &["message"]),
        "PingResponse": object(json!({
            "ok": {"type": "array", "items": s()},
            "failing": {"type": "object", "additionalProperties": s()}
        }), &["ok", "failing"]),
        "HTTPExceptionResponse": {
            "type": "object",
            "properties": {"detail": {"anyOf": [s(), {"type": "object"}]}},
            "required": ["detail"]
        },
        "HTTPValidationError": {
            "type": "object",
            "properties": {"detail": {"type": "array", "items": schema_ref("ValidationError")}},
            "required": ["detail"]
        },
        "ValidationError": {
            "type": "object",
            "properties": {
                "loc": {"type": "array", "items": {"anyOf": [s(), {"type": "integer"}]}},
                "msg": s(),
                "type": s()
            },
            "required": ["loc", "msg", "type"]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_described_operation() {
        let doc = document();
        for route in crate::api::routes() {
            let path = openapi_path(route.path.strip_prefix(BASE_PATH).unwrap());
            if !crate::versions::exists(crate::versions::ApiVersion::HEAD, route.method, &path) {
                // An older version's route: in that version's document.
                continue;
            }
            let op = &doc["paths"][&path][route.method.to_ascii_lowercase()];
            assert_ne!(
                route.summary(),
                route.handler,
                "{} {path}: the handler has no doc comment to describe it",
                route.method
            );
            assert!(op["summary"].is_string());
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for name in path_params(&path).iter().map(|p| p["name"].clone()) {
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{} {path}: path parameter {name} is not described",
                    route.method
                );
            }
            assert_eq!(op["security"], json!([{"HTTPBearer": []}]));
            assert!(op["x-token-policy"]["token_types"].is_array());
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "missing schema {name}"
            );
        }
    }

    #[test]
    fn regex_parameters_are_plain_in_the_document() {
        assert_eq!(
            openapi_path("/variables/{variable_key:.+}"),
            "/variables/{variable_key}"
        );
        assert_eq!(openapi_path(r"/x/{id:\d{3}}/y"), "/x/{id}/y");
    }
}
