//! Field codecs shared by the wire types (pydantic's rules where serde's differ),
//! the JSON Schemas of fields whose Rust type is not their wire form, and
//! `MessageResponse`, the body of Airflow's write endpoints.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use serde::{Deserialize, Serialize};

/// `{"message": "..."}`, the body of Airflow's write endpoints.
#[derive(Clone, Debug, Serialize, PartialEq, JsonSchema)]
pub struct MessageResponse {
    /// What happened.
    pub message: String,
}

/// An integer, also written as a float without fraction (`42.0`), which JSON
/// Schema and pydantic both count as an integer.
pub(crate) fn integer<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Integer;

    impl serde::de::Visitor<'_> for Integer {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            // 2^63 as f64: the first value past i64::MAX.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
                Ok(v as i64)
            } else {
                Err(E::custom(format!("expected an integer, got {v}")))
            }
        }
    }

    deserializer.deserialize_any(Integer)
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or set: serde
/// calls this only when the field is present.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A field that must be present but may be `null` (pydantic's `x: str | None`
/// without a default); serde would otherwise treat a missing `Option` as `None`.
pub(crate) fn required_nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// The schema of a timestamp field (`OffsetDateTime` read or written as RFC 3339
/// text): `#[schemars(with = "DateTime")]`.
pub(crate) struct DateTime;

impl JsonSchema for DateTime {
    fn schema_name() -> Cow<'static, str> {
        "DateTime".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }
}

/// The schema of a `timedelta` field as pydantic reads it: seconds, or an
/// ISO 8601 duration (`PT1H30M`) or `HH:MM:SS` text:
/// `#[schemars(with = "Option<TimeDelta>")]`.
pub(crate) struct TimeDelta;

impl JsonSchema for TimeDelta {
    fn schema_name() -> Cow<'static, str> {
        "TimeDelta".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [{"type": "number"}, {"type": "string", "format": "duration"}]})
    }
}
