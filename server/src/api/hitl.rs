//! `/hitlDetails/{task_instance_id}`: human-in-the-loop requests and responses
//! (Airflow's `routes/hitl.py`).
//!
//! Unlike most request models, Airflow's HITL payloads ignore unknown fields
//! (they are `BaseModel`, not `StrictBaseModel`), and the Task SDK relies on
//! it: it sends its own `"type"` tag in both bodies. So do we.

use actix_web::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::ApiError;
use super::assets::raw_json;
use crate::store::{self, pyjson, timestamp};

/// The routes, all bound to the token's task instance (`ti:self`).
#[policy_macros::execution_router(parent = super::execution, prefix = "/hitlDetails")]
pub mod routes {
    use actix_web::http::StatusCode;
    use actix_web::{HttpResponse, web};
    use policy_macros::execution_route;
    use serde_json::Value;
    use uuid::Uuid;

    use super::{HITLDetailRequest, HITLDetailResponse, UpdateHITLDetailPayload, parse_body};
    use crate::api::ApiError;
    use crate::api::task_instances::TI_NOT_FOUND;
    use crate::store::{HitlRespond, HitlUpsert, Store};

    fn not_found() -> ApiError {
        ApiError::not_found(
            "HITLDetail not found. This happens most likely due to clearing task instance before \
             receiving response.",
        )
    }

    /// Create a Human-in-the-loop detail for a specific Task Instance: 201 with
    /// the stored request (an existing one is kept, its response cleared).
    #[execution_route(post, "/{task_instance_id}", scopes = ["ti:self"], body = HITLDetailRequest, responses = [201 => HITLDetailRequest, 404])]
    pub async fn upsert_hitl_detail(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        body: web::Bytes,
    ) -> Result<HttpResponse, ApiError> {
        let new = parse_body::<HITLDetailRequest>(&body)?.to_store()?;
        match store.upsert_hitl_detail(*id, &new).await? {
            HitlUpsert::Stored(row) => Ok(HttpResponse::Created()
                .json(HITLDetailRequest::from_store(*row).map_err(ApiError::internal)?)),
            // Airflow fails on the foreign key (a 500).
            HitlUpsert::NoTaskInstance => Err(ApiError::not_found(TI_NOT_FOUND)),
        }
    }

    /// Update the response part of a Human-in-the-loop detail: 200
    /// `HITLDetailResponse`, 404 without a detail, 409 when already answered.
    #[execution_route(patch, "/{task_instance_id}", scopes = ["ti:self"], body = UpdateHITLDetailPayload, responses = [200 => HITLDetailResponse, 404, 409])]
    pub async fn update_hitl_detail(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
        body: web::Bytes,
    ) -> Result<HttpResponse, ApiError> {
        let (chosen_options, params_input) =
            parse_body::<UpdateHITLDetailPayload>(&body)?.to_store()?;
        match store
            .respond_hitl(*id, &chosen_options, &params_input)
            .await?
        {
            HitlRespond::Responded(row) => {
                Ok(HttpResponse::Ok().json(HITLDetailResponse::from_store(*row)?))
            }
            HitlRespond::NotFound => Err(not_found()),
            HitlRespond::AlreadyResponded => Err(ApiError::new(
                StatusCode::CONFLICT,
                Value::String(format!(
                    "Human-in-the-loop detail for Task Instance with id {} already exists.",
                    *id
                )),
            )),
        }
    }

    /// Get Human-in-the-loop detail for a specific Task Instance: `HITLDetailResponse`, or 404.
    #[execution_route(get, "/{task_instance_id}", scopes = ["ti:self"], responses = [200 => HITLDetailResponse, 404])]
    pub async fn get_hitl_detail(
        store: web::Data<Store>,
        id: web::Path<Uuid>,
    ) -> Result<HttpResponse, ApiError> {
        match store.hitl_detail(*id).await? {
            Some(row) => Ok(HttpResponse::Ok().json(HITLDetailResponse::from_store(row)?)),
            None => Err(not_found()),
        }
    }
}

/// `HITLUser`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
pub struct HITLUser {
    /// User id.
    pub id: String,
    /// User name.
    pub name: String,
}

fn default_params() -> Box<RawValue> {
    RawValue::from_string("{}".into()).expect("`{}` is JSON")
}

/// `HITLDetailRequest`: `POST` body and response.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct HITLDetailRequest {
    /// The task instance (the path's id is the one used, as in Airflow).
    pub ti_id: Uuid,
    /// Options offered (at least one).
    pub options: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    #[serde(default)]
    pub body: Option<String>,
    /// Default options.
    #[serde(default)]
    pub defaults: Option<Vec<String>>,
    /// Whether several options may be chosen.
    #[serde(default)]
    pub multiple: bool,
    /// Parameters (a JSON object).
    #[serde(default = "default_params")]
    pub params: Box<RawValue>,
    /// Users who may answer.
    #[serde(default)]
    pub assigned_users: Vec<HITLUser>,
}

/// `UpdateHITLDetailPayload`: `PATCH` body.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct UpdateHITLDetailPayload {
    /// The task instance (the path's id is the one used, as in Airflow).
    pub ti_id: Uuid,
    /// Options chosen (at least one).
    pub chosen_options: Vec<String>,
    /// Parameters given (a JSON object).
    #[serde(default = "default_params")]
    pub params_input: Box<RawValue>,
}

/// `HITLDetailResponse`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct HITLDetailResponse {
    /// Whether an answer was recorded.
    pub response_received: bool,
    /// Who answered (`null` when answered over this API).
    pub responded_by_user: Option<HITLUser>,
    /// When.
    pub responded_at: Option<String>,
    /// Options chosen (`[]` before an answer).
    pub chosen_options: Vec<String>,
    /// Parameters given with the answer.
    pub params_input: Box<RawValue>,
}

/// A JSON object body, read from its bytes so that the JSON the task sent
/// (`params`, `params_input`) is stored exactly, key order and numbers kept.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["body".into()],
            "Input should be a JSON object",
            "model_attributes_type",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let kind = if e.is_data() {
            "value_error"
        } else {
            "json_invalid"
        };
        ApiError::validation(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["body".into()],
            e.to_string(),
            kind,
        )
    })
}

fn field_error(field: &str, msg: &str, kind: &str) -> ApiError {
    ApiError::validation(
        StatusCode::UNPROCESSABLE_ENTITY,
        vec!["body".into(), field.into()],
        msg,
        kind,
    )
}

/// A JSON object as `json.dumps` stores it, or 422 naming the field.
fn object_text(field: &str, raw: &RawValue) -> Result<String, ApiError> {
    if !raw.get().trim_start().starts_with('{') {
        return Err(field_error(
            field,
            "Input should be a valid dictionary",
            "dict_type",
        ));
    }
    pyjson::dumps(raw.get()).map_err(|e| field_error(field, &e, "value_error"))
}

fn list_text(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| pyjson::dumps_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

impl HITLDetailRequest {
    /// What the store is asked to create, or 422.
    pub fn to_store(&self) -> Result<store::NewHitlDetail, ApiError> {
        if self.options.is_empty() {
            return Err(field_error(
                "options",
                "List should have at least 1 item after validation, not 0",
                "too_short",
            ));
        }
        let assignees: Vec<String> = self
            .assigned_users
            .iter()
            .map(|u| {
                format!(
                    "{{\"id\": {}, \"name\": {}}}",
                    pyjson::dumps_str(&u.id),
                    pyjson::dumps_str(&u.name)
                )
            })
            .collect();
        Ok(store::NewHitlDetail {
            options: list_text(&self.options),
            subject: self.subject.clone(),
            body: self.body.clone(),
            defaults: self
                .defaults
                .as_deref()
                .map_or_else(|| "null".to_owned(), list_text),
            multiple: self.multiple,
            params: object_text("params", &self.params)?,
            assignees: format!("[{}]", assignees.join(", ")),
        })
    }

    /// The request as stored (Airflow answers with the stored row, not the payload).
    pub fn from_store(row: store::HitlDetail) -> Result<HITLDetailRequest, String> {
        fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, String> {
            serde_json::from_str(text).map_err(|e| format!("hitl_detail.{what}: {e}"))
        }
        let assigned_users = match row.assignees.as_deref() {
            Some(text) => parse(text, "assignees")?,
            None => Vec::new(),
        };
        Ok(HITLDetailRequest {
            ti_id: row.ti_id,
            options: parse(&row.options, "options")?,
            subject: row.subject,
            body: row.body,
            defaults: row
                .defaults
                .as_deref()
                .map(|t| parse(t, "defaults"))
                .transpose()?,
            multiple: row.multiple.unwrap_or(false),
            params: match row.params {
                Some(text) => RawValue::from_string(text).map_err(|e| e.to_string())?,
                None => default_params(),
            },
            assigned_users,
        })
    }
}

impl UpdateHITLDetailPayload {
    /// `chosen_options` and `params_input` as stored, or 422.
    pub fn to_store(&self) -> Result<(String, String), ApiError> {
        if self.chosen_options.is_empty() {
            return Err(field_error(
                "chosen_options",
                "List should have at least 1 item after validation, not 0",
                "too_short",
            ));
        }
        Ok((
            list_text(&self.chosen_options),
            object_text("params_input", &self.params_input)?,
        ))
    }
}

impl HITLDetailResponse {
    /// The response part of a stored row.
    pub fn from_store(row: store::HitlDetail) -> Result<HITLDetailResponse, ApiError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            ApiError::internal(format!("stored hitl_detail.{what} does not parse: {e}"))
        };
        let responded_by_user = row
            .responded_by
            .as_deref()
            .map(serde_json::from_str::<HITLUser>)
            .transpose()
            .map_err(|e| corrupt("responded_by", e))?;
        let chosen_options = row
            .chosen_options
            .as_deref()
            .map(serde_json::from_str::<Vec<String>>)
            .transpose()
            .map_err(|e| corrupt("chosen_options", e))?
            .unwrap_or_default();
        Ok(HITLDetailResponse {
            response_received: row.responded_at.is_some(),
            responded_by_user,
            responded_at: row.responded_at.map(timestamp),
            chosen_options,
            params_input: raw_json(row.params_input, "hitl_detail.params_input")?
                .unwrap_or_else(default_params),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_bodies_are_accepted_and_stored_as_python_writes_them() {
        // What the Task SDK 1.3.2 sends (`CreateHITLDetailPayload.model_dump_json()`).
        let body = r#"{"ti_id":"01a23376-ad93-7a8d-acb8-0730cd787290","options":["Yes","Nö"],"subject":"s","body":null,"defaults":["Yes"],"multiple":false,"params":{"n":{"value":1}},"assigned_users":[{"id":"1","name":"Ann"}],"type":"CreateHITLDetailPayload"}"#;
        let request: HITLDetailRequest = serde_json::from_str(body).unwrap();
        let new = request.to_store().unwrap();
        assert_eq!(new.options, r#"["Yes", "N\u00f6"]"#);
        assert_eq!(new.defaults, r#"["Yes"]"#);
        assert_eq!(new.params, r#"{"n": {"value": 1}}"#);
        assert_eq!(new.assignees, r#"[{"id": "1", "name": "Ann"}]"#);
        let update: UpdateHITLDetailPayload = serde_json::from_str(
            r#"{"ti_id":"01a23376-ad93-7a8d-acb8-0730cd787290","chosen_options":["Yes"],"params_input":{},"type":"UpdateHITLDetail"}"#,
        )
        .unwrap();
        assert_eq!(
            update.to_store().unwrap(),
            (r#"["Yes"]"#.to_owned(), "{}".to_owned())
        );
    }

    #[test]
    fn bodies_airflow_refuses_are_refused() {
        let ti = r#""ti_id":"01a23376-ad93-7a8d-acb8-0730cd787290""#;
        for body in [
            format!(r#"{{{ti},"options":[],"subject":"s"}}"#),
            format!(r#"{{{ti},"options":["a"],"subject":"s","params":[1]}}"#),
            format!(r#"{{{ti},"options":["a"],"subject":"s","params":null}}"#),
        ] {
            let request: HITLDetailRequest = serde_json::from_str(&body).unwrap();
            assert!(request.to_store().is_err(), "{body}");
        }
        for body in [
            format!(r#"{{{ti},"options":["a"],"subject":"s","multiple":null}}"#),
            format!(r#"{{{ti},"options":["a"]}}"#),
            r#"{"ti_id":"nope","options":["a"],"subject":"s"}"#.to_owned(),
        ] {
            assert!(
                serde_json::from_str::<HITLDetailRequest>(&body).is_err(),
                "{body}"
            );
        }
    }
}
