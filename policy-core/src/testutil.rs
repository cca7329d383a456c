//! Helpers shared by the unit tests.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::keys::testdata::SECRET;
use crate::*;

pub(crate) const NOW: i64 = 1_750_000_000;
pub(crate) const TI: Uuid = Uuid::from_u128(0x0190d3f4_5c1b_7d4e_8f00_000000000001);

pub(crate) fn hs512() -> SigningKey {
    SigningKey::from_secret(SECRET, Algorithm::HS512, None).unwrap()
}

pub(crate) fn generator(key: &SigningKey) -> TokenGenerator {
    TokenGenerator::new(key.clone(), GeneratorConfig::default())
}

pub(crate) fn validator(key: &SigningKey) -> TokenValidator {
    validator_with(key, ValidationConfig::default())
}

pub(crate) fn validator_with(key: &SigningKey, config: ValidationConfig) -> TokenValidator {
    TokenValidator::new(KeySource::signing_key(key), config).unwrap()
}

pub(crate) fn uncached() -> ValidationConfig {
    ValidationConfig {
        cache_capacity: 0,
        ..ValidationConfig::default()
    }
}

/// A token for `TI` made at `NOW` with a 600 s lifetime.
pub(crate) fn token(key: &SigningKey, scope: TokenType) -> String {
    generator(key)
        .generate_at(TI, scope, Duration::from_secs(600), NOW)
        .unwrap()
}

/// Standard claims at `NOW`, to be edited by a test.
pub(crate) fn claims() -> serde_json::Map<String, Value> {
    match json!({
        "sub": TI.to_string(), "iat": NOW, "nbf": NOW, "exp": NOW + 600,
        "aud": DEFAULT_AUDIENCE, "jti": "j",
    }) {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs any header and payload JSON (objects or not) with `key`.
pub(crate) fn sign_raw(key: &SigningKey, header: &Value, payload: &Value) -> String {
    sign_text(key, &header.to_string(), &payload.to_string())
}

/// Signs header and payload given as JSON text exactly as written (duplicate
/// members, escapes, whitespace).
pub(crate) fn sign_text(key: &SigningKey, header: &str, payload: &str) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key.encoding_key(), key.algorithm())
        .unwrap();
    format!("{message}.{sig}")
}

/// Signs `claims` with `key` and its usual header.
pub(crate) fn sign_claims(key: &SigningKey, claims: &serde_json::Map<String, Value>) -> String {
    let mut header = json!({"alg": format!("{:?}", key.algorithm()), "typ": "JWT"});
    if let Some(kid) = key.kid() {
        header["kid"] = json!(kid);
    }
    sign_raw(key, &header, &Value::Object(claims.clone()))
}
