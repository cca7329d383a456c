//! `Payload<T>`: a JSON request body that must be an object.
//!
//! serde's derived structs also accept a JSON array (fields by position), which
//! the SDK's pydantic models refuse; this extractor refuses it too, then
//! deserializes. Syntax, content type and size are still checked by actix's
//! `Json` (and the app's `JsonConfig` error handler).

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, dev, web};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// A JSON object body deserialized into `T`.
#[derive(Clone, Debug)]
pub struct Payload<T>(pub T);

impl<T> Deref for Payload<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Payload<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            if !value.is_object() {
                return Err(ApiError::validation(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    vec!["body".into()],
                    "Input should be a JSON object",
                    "model_attributes_type",
                )
                .into());
            }
            serde_json::from_value(value).map(Payload).map_err(|e| {
                ApiError::validation(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    vec!["body".into()],
                    e.to_string(),
                    "value_error",
                )
                .into()
            })
        })
    }
}

/// The body is JSON of type `T` (an object).
impl<T: schemars::JsonSchema> policy_core::openapi::RequestPart for Payload<T> {
    fn describe(operation: &mut policy_core::Operation<'_>) {
        operation.set_body::<T>();
    }
}
