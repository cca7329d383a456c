//! The OpenAPI 3.1 document of `/execution`, built from the route registry.
//!
//! Paths, methods and security come from [`crate::api::routes`], so the
//! document cannot list a route that does not exist or miss one that does;
//! each operation carries `x-token-policy` (`token_types`, `bindings`), the
//! policy the macros merged. Request bodies, query parameters and responses
//! come from each route's declaration ([`policy_core::RouteInfo::describe`]:
//! the handler's `Payload<T>`/`web::Json<T>`/`web::Query<T>` arguments and
//! the attribute's `body`, `query` and `responses`), their schemas from the
//! wire types themselves (`#[derive(JsonSchema)]`: serde's renames, defaults
//! and `deny_unknown_fields`, which becomes `additionalProperties: false`).
//! The error responses every route shares follow from its policy and from
//! what it reads.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::app::BASE_PATH;

/// Where schemas of named types go.
const COMPONENTS: &str = "#/components/schemas/";

/// The document of the newest version.
pub fn document() -> Value {
    document_for(crate::versions::ApiVersion::HEAD)
}

/// A generator of JSON Schema 2020-12 (OpenAPI 3.1's dialect) whose named
/// types are `$ref`s into `components/schemas`.
fn generator(contract: Contract) -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = COMPONENTS.into();
    settings.meta_schema = None;
    settings.contract = contract;
    settings.into_generator()
}

/// `{"status": "healthy"}`, the body of `GET /health`.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct HealthResponse {
    /// Always `healthy`.
    status: Healthy,
}

/// The one status of `/health`.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Healthy {
    /// `healthy`.
    Healthy,
}

/// `GET /health/ping`: what answers and what does not.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct PingResponse {
    /// The checks that passed (`database`).
    ok: Vec<String>,
    /// The checks that failed, with why.
    failing: BTreeMap<String, String>,
}

/// `{"detail": ...}`: every refusal (a message, or pydantic's error list for 422).
#[derive(JsonSchema)]
#[allow(dead_code)]
struct HTTPExceptionResponse {
    /// What went wrong.
    detail: Detail,
}

/// A message or a structured detail.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Detail {
    /// A message.
    Message(String),
    /// A structured detail.
    Object(Map<String, Value>),
}

/// `{"detail": [...]}`: a 422 with pydantic's error list.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct HTTPValidationError {
    /// One entry per invalid input.
    detail: Vec<ValidationError>,
}

/// One invalid input.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ValidationError {
    /// Where: `body`, `query` or `path`, then field names and indexes.
    loc: Vec<Location>,
    /// What is wrong.
    msg: String,
    /// pydantic's error type, e.g. `missing`.
    #[serde(rename = "type")]
    kind: String,
}

/// A field name or an index.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Location {
    /// A field name.
    Name(String),
    /// An index.
    Index(i64),
}

/// The document served at `/execution/openapi.json?version=...`: the routes
/// that exist at `version`.
pub fn document_for(version: crate::versions::ApiVersion) -> Value {
    let mut requests = generator(Contract::Deserialize);
    let mut responses = generator(Contract::Serialize);
    let mut paths = Map::new();
    let mut unprotected = |path: &str, id: &str, summary: &str, body: Value, extra: Value| {
        let mut answers =
            json!({"200": {"description": "Successful Response", "content": json_content(body)}});
        if let (Some(answers), Value::Object(extra)) = (answers.as_object_mut(), extra) {
            answers.extend(extra);
        }
        paths.insert(
            path.into(),
            json!({"get": {"operationId": id, "summary": summary, "responses": answers}}),
        );
    };
    unprotected(
        "/health",
        "health",
        "The process answers (no token needed, no database access)",
        responses.subschema_for::<HealthResponse>().to_value(),
        json!({}),
    );
    let ping = responses.subschema_for::<PingResponse>().to_value();
    unprotected(
        "/health/ping",
        "health_ping",
        "Liveness and database check (no token needed)",
        ping.clone(),
        json!({"503": {"description": "Database unavailable", "headers": retry_after(), "content": json_content(ping)}}),
    );
    unprotected(
        "/openapi.json",
        "openapi",
        "This document",
        json!({"type": "object"}),
        json!({}),
    );
    let error = responses
        .subschema_for::<HTTPExceptionResponse>()
        .to_value();
    let invalid = responses.subschema_for::<HTTPValidationError>().to_value();
    for route in crate::api::routes() {
        let path = openapi_path(route.path.strip_prefix(BASE_PATH).unwrap_or(route.path));
        if !crate::versions::exists(version, route.method, &path) {
            continue;
        }
        let mut operation = policy_core::Operation::new(&mut requests, &mut responses);
        if let Some(describe) = route.describe {
            describe(&mut operation);
        }
        let op = operation_of(&route, &path, &operation, &error, &invalid);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = Value::Object(op);
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Airflow Task Execution API",
            "description": "Airflow 3.3's Execution API used by the Task SDK, with each route's token policy in `x-token-policy`.",
            "version": version.as_str()
        },
        "servers": [{"url": BASE_PATH}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "HTTPBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        }
    });
    document["components"]["schemas"] = Value::Object(merge_definitions(
        requests.take_definitions(true),
        responses.take_definitions(true),
        &mut document["paths"],
    ));
    bound_parameters(&mut document["paths"]);
    document
}

/// The `maxLength` of every parameter a route writes to a bounded column (the handlers
/// check the same [`crate::api::bounds::PARAMETER_BOUNDS`]).
fn bound_parameters(paths: &mut Value) {
    for bound in crate::api::bounds::PARAMETER_BOUNDS {
        let parameters = paths
            .get_mut(bound.path)
            .and_then(|item| item.get_mut(bound.method.to_ascii_lowercase()))
            .and_then(|operation| operation.get_mut("parameters"))
            .and_then(Value::as_array_mut);
        for parameter in parameters.into_iter().flatten() {
            if parameter["name"] == bound.name && parameter["in"] == bound.location {
                parameter["schema"]["maxLength"] = json!(bound.column.max_chars);
            }
        }
    }
}

/// One operation: parameters, body and responses as the route declares them,
/// the errors its policy and inputs imply, its summary, policy and security.
fn operation_of(
    route: &policy_core::RouteInfo,
    path: &str,
    operation: &policy_core::Operation<'_>,
    error: &Value,
    invalid: &Value,
) -> Map<String, Value> {
    let mut op = Map::new();
    op.insert("summary".into(), json!(route.summary()));
    if !route.doc.is_empty() {
        op.insert("description".into(), json!(route.doc));
    }
    op.insert("operationId".into(), json!(route.handler));
    let mut parameters = path_params(path);
    parameters.extend(query_params(operation.query()));
    let reads_input = !parameters.is_empty() || operation.body().is_some();
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = operation.body() {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": json_content(body.clone())}),
        );
    }
    let mut answers = Map::new();
    for (status, body) in operation.responses() {
        let reason = StatusCode::from_u16(*status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Response");
        let (description, body) = match (body, *status < 400) {
            (Some(body), _) => (reason, Some(body.clone())),
            (None, true) => (reason, None),
            (None, false) => (reason, Some(error.clone())),
        };
        let description = if *status < 300 {
            "Successful Response"
        } else {
            description
        };
        let mut answer = json!({"description": description});
        if let Some(body) = body {
            answer["content"] = json_content(body);
        }
        answers.insert(status.to_string(), answer);
    }
    let error_response = |description: &str| json!({"description": description, "content": json_content(error.clone())});
    // What every protected route may answer, from its policy and what it reads.
    let mut shared = vec![
        ("401", error_response("Missing auth token")),
        (
            "403",
            error_response("Invalid token, token type not allowed, or subject mismatch"),
        ),
    ];
    if reads_input {
        shared.push((
            "422",
            json!({"description": "Validation Error", "content": json_content(invalid.clone())}),
        ));
    }
    if operation.body().is_some() {
        shared.push(("413", error_response("Body too large")));
        shared.push(("415", error_response("Body is not `application/json`")));
    }
    shared.push(("500", error_response("Internal error")));
    shared.push((
        "503",
        json!({"description": "Database busy or unavailable", "headers": retry_after(),
               "content": json_content(error.clone())}),
    ));
    for (status, response) in shared {
        answers.entry(status).or_insert(response);
    }
    op.insert("responses".into(), Value::Object(answers));
    let tokens: Vec<&str> = route
        .policy
        .allowed_tokens()
        .iter()
        .map(|t| t.as_str())
        .collect();
    let bindings: Vec<&str> = route.policy.bindings().iter().map(|b| b.scope()).collect();
    op.insert("security".into(), json!([{"HTTPBearer": []}]));
    op.insert(
        "x-token-policy".into(),
        json!({"token_types": tokens, "bindings": bindings}),
    );
    op
}

/// The query parameters of an object schema: one per property.
fn query_params(query: Option<&Value>) -> Vec<Value> {
    let Some(query) = query else {
        return Vec::new();
    };
    let required: Vec<&str> = query["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    query["properties"]
        .as_object()
        .map(|properties| {
            properties
                .iter()
                .map(|(name, schema)| {
                    let mut schema = schema.clone();
                    let description = schema.as_object_mut().and_then(|s| s.remove("description"));
                    let mut param = json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": schema,
                    });
                    if let Some(description) = description {
                        param["description"] = description;
                    }
                    param
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The definitions of both generators in one map. serde may read and write a
/// type differently; where the two schemas of one name differ, the written
/// one is renamed `<name>-Output` (as pydantic does) and the references to it
/// from responses and from other written schemas follow.
fn merge_definitions(
    requests: Map<String, Value>,
    responses: Map<String, Value>,
    paths: &mut Value,
) -> Map<String, Value> {
    let renamed: Vec<String> = responses
        .iter()
        .filter(|(name, schema)| requests.get(*name).is_some_and(|s| s != *schema))
        .map(|(name, _)| name.clone())
        .collect();
    let rename = |value: &mut Value| {
        for name in &renamed {
            rename_refs(value, name);
        }
    };
    let mut merged = requests;
    for (name, mut schema) in responses {
        rename(&mut schema);
        let name = if renamed.contains(&name) {
            format!("{name}-Output")
        } else {
            name
        };
        merged.insert(name, schema);
    }
    if let Some(paths) = paths.as_object_mut() {
        for operation in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in operation.values_mut() {
                rename(&mut op["responses"]);
            }
        }
    }
    merged
}

/// Points every `$ref` to `name` at `<name>-Output`.
fn rename_refs(value: &mut Value, name: &str) {
    let target = format!("{COMPONENTS}{name}");
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(reference) if key == "$ref" && *reference == target => {
                        *reference = format!("{target}-Output");
                    }
                    _ => rename_refs(value, name),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_refs(v, name)),
        _ => {}
    }
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

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn retry_after() -> Value {
    json!({"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}})
}

/// The `{name}` parameters of a path template, as strings (`task_instance_id`
/// and `connection_test_id` as UUIDs).
fn path_params(path: &str) -> Vec<Value> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .map(|name| {
            let schema = match name {
                "task_instance_id" | "connection_test_id" => {
                    json!({"type": "string", "format": "uuid"})
                }
                _ => json!({"type": "string", "minLength": 1}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::columns;

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
            let name: String = piece
                .chars()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "missing schema {name}"
            );
        }
    }

    /// Every operation with a JSON body has its schema; every 2xx answer is
    /// declared, and one with a body has its schema; every declared
    /// error has the shared `detail` schema.
    #[test]
    fn every_body_and_answer_has_a_schema() {
        let doc = document();
        for route in crate::api::routes() {
            let path = openapi_path(route.path.strip_prefix(BASE_PATH).unwrap());
            if !crate::versions::exists(crate::versions::ApiVersion::HEAD, route.method, &path) {
                continue;
            }
            let method = route.method.to_ascii_lowercase();
            let op = &doc["paths"][&path][&method];
            let at = format!("{} {path}", route.method);
            if let Some(body) = op.get("requestBody") {
                assert!(
                    body["content"]["application/json"]["schema"].is_object()
                        || body["content"]["application/json"]["schema"].is_boolean(),
                    "{at}: request body without a schema"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            let successes: Vec<(&String, &Value)> = responses
                .iter()
                .filter(|(status, _)| status.starts_with('2'))
                .collect();
            assert!(!successes.is_empty(), "{at}: no success declared");
            for (status, answer) in responses {
                if status == "204" || (route.method == "HEAD" && status.starts_with('2')) {
                    assert!(answer.get("content").is_none(), "{at} {status}: a body");
                    continue;
                }
                if status.starts_with('2') && route.method != "HEAD" {
                    assert!(
                        !answer["content"]["application/json"]["schema"].is_null(),
                        "{at} {status}: a body without a schema"
                    );
                }
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        answer["content"]["application/json"]["schema"]["$ref"]
                            .as_str()
                            .is_some_and(|r| r.ends_with("HTTPExceptionResponse")
                                || r.ends_with("HTTPValidationError")),
                        "{at} {status}: not the shared error schema"
                    );
                }
            }
        }
    }

    #[test]
    fn request_schemas_follow_serde() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        // `deny_unknown_fields` -> no other property.
        let heartbeat = &schemas["TIHeartbeatInfo"];
        assert_eq!(heartbeat["additionalProperties"], json!(false));
        assert_eq!(heartbeat["required"], json!(["hostname", "pid"]));
        // A field read with `required_nullable`: required, may be null.
        let variable = &schemas["VariablePostBody"];
        assert_eq!(variable["required"], json!(["val"]));
        let body = &doc["paths"]["/variables/{variable_key}"]["put"]["requestBody"];
        assert_eq!(
            body["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/VariablePostBody"
        );
        // The state union is discriminated by `state`.
        let update = &schemas["TIStateUpdate"];
        let states: Vec<&Value> = update["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| &v["properties"]["state"])
            .collect();
        assert!(states.len() >= 9, "{update}");
        // A query type's fields are the parameters.
        let slice = &doc["paths"]["/xcoms/{dag_id}/{run_id}/{task_id}/{key}/slice"]["get"];
        let names: Vec<&str> = slice["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"start") && names.contains(&"stop"),
            "{names:?}"
        );
    }

    #[test]
    fn bounded_strings_have_their_column_lengths() {
        let doc = document();
        for bound in crate::api::bounds::PARAMETER_BOUNDS {
            let parameters =
                &doc["paths"][bound.path][bound.method.to_ascii_lowercase()]["parameters"];
            let found = parameters
                .as_array()
                .unwrap_or_else(|| panic!("{} {}: no parameters", bound.method, bound.path))
                .iter()
                .find(|p| p["name"] == bound.name && p["in"] == bound.location)
                .unwrap_or_else(|| panic!("{} {}: no {}", bound.method, bound.path, bound.name));
            assert_eq!(
                found["schema"]["maxLength"],
                json!(bound.column.max_chars),
                "{} {} {}",
                bound.method,
                bound.path,
                bound.name
            );
        }
        let schemas = &doc["components"]["schemas"];
        // `PATCH .../state`'s variants are inlined in `TIStateUpdate`, by their `state` tag.
        let state = |tag: &str| {
            schemas["TIStateUpdate"]["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["properties"]["state"]["const"] == tag)
                .unwrap_or_else(|| panic!("no {tag} variant"))
                .clone()
        };
        let rendered = columns::TASK_INSTANCE_RENDERED_MAP_INDEX;
        for (schema, field, column) in [
            (
                schemas["TIEnterRunningPayload"].clone(),
                "hostname",
                columns::TASK_INSTANCE_HOSTNAME,
            ),
            (
                schemas["TIEnterRunningPayload"].clone(),
                "unixname",
                columns::TASK_INSTANCE_UNIXNAME,
            ),
            (state("deferred"), "classpath", columns::TRIGGER_CLASSPATH),
            (state("deferred"), "queue", columns::TRIGGER_QUEUE),
            (
                state("deferred"),
                "next_method",
                columns::TASK_INSTANCE_NEXT_METHOD,
            ),
            (
                state("awaiting_input"),
                "next_method",
                columns::TASK_INSTANCE_NEXT_METHOD,
            ),
            (state("success"), "rendered_map_index", rendered),
            (state("failed"), "rendered_map_index", rendered),
            (state("up_for_retry"), "rendered_map_index", rendered),
            (
                schemas["TriggerDAGRunPayload"].clone(),
                "partition_key",
                columns::DAG_RUN_PARTITION_KEY,
            ),
            (
                schemas["TriggerDAGRunPayload"].clone(),
                "note",
                columns::DAG_RUN_NOTE_CONTENT,
            ),
            (
                schemas["ConnectionTestResultBody"].clone(),
                "result_message",
                columns::CONNECTION_TEST_REQUEST_RESULT_MESSAGE,
            ),
        ] {
            let property = &schema["properties"][field];
            assert_eq!(
                property["maxLength"],
                json!(column.max_chars),
                "{field}: {property}"
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
