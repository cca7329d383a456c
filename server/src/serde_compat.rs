//! Airflow's two JSON encodings of Python values, for `next_kwargs` sent to
//! workers older than API version 2026-04-06.
//!
//! Task SDK 1.2+ writes deferral kwargs with `airflow.sdk.serde` (plain dicts;
//! other types as `{"__classname__", "__version__", "__data__"}`); older workers
//! only read `BaseSerialization` (`{"__var": ..., "__type": "dict"}`). Airflow
//! converts with Python (`serde.deserialize` then `BaseSerialization.serialize`,
//! `versions/v2026_04_06.py`); this is the same conversion for the types such
//! kwargs hold: JSON values, dicts, lists, tuples, sets, datetimes and
//! timedeltas. A value of any other class is left as it is, as Airflow leaves
//! a value its deserializer cannot read.

use serde_json::{Map, Value, json};

/// Rewrites `value` (SDK serde) into `BaseSerialization`; `null` and values
/// already in `BaseSerialization` come out unchanged.
pub fn to_base_serialization(value: &mut Value) {
    if value.is_null() {
        return;
    }
    if let Some(converted) = convert(value) {
        *value = converted;
    }
}

fn convert(value: &Value) -> Option<Value> {
    Some(match value {
        Value::Array(items) => Value::Array(items.iter().map(convert).collect::<Option<_>>()?),
        Value::Object(object) => {
            if object.contains_key("__type") && object.contains_key("__var") {
                // Already BaseSerialization: serde reads it back to the same value.
                return Some(value.clone());
            }
            match (object.get("__classname__"), object.get("__data__")) {
                (Some(Value::String(class)), Some(data)) => typed(class, data)?,
                _ => {
                    let fields: Map<String, Value> = object
                        .iter()
                        .map(|(k, v)| Some((k.clone(), convert(v)?)))
                        .collect::<Option<_>>()?;
                    json!({"__var": fields, "__type": "dict"})
                }
            }
        }
        scalar => scalar.clone(),
    })
}

fn typed(class: &str, data: &Value) -> Option<Value> {
    let items = |kind: &str| -> Option<Value> {
        let items = data
            .as_array()?
            .iter()
            .map(convert)
            .collect::<Option<Vec<_>>>()?;
        Some(json!({"__var": items, "__type": kind}))
    };
    match class {
        "builtins.tuple" => items("tuple"),
        "builtins.set" => items("set"),
        "builtins.frozenset" => items("frozenset"),
        "datetime.datetime" | "pendulum.datetime.DateTime" => {
            let timestamp = data.get("timestamp")?.as_f64()?;
            Some(json!({"__var": timestamp, "__type": "datetime"}))
        }
        "datetime.timedelta" => Some(json!({"__var": data.as_f64()?, "__type": "timedelta"})),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sides printed by Airflow 3.3.2's own code:
    /// `serialize(v)` and `BaseSerialization.serialize(deserialize(serialize(v)))`.
    #[test]
    fn matches_airflows_conversion() {
        let mut sdk = json!({"a": 1, "s": "x", "l": [1, "b", null], "n": null,
            "t": {"__classname__": "builtins.tuple", "__version__": 1, "__data__": [1, 2]},
            "d": {"x": 2.5},
            "dt": {"__classname__": "datetime.datetime", "__version__": 2, "__data__": {"timestamp": 1767225600.0, "tz": {"__classname__": "builtins.tuple", "__version__": 1, "__data__": ["UTC", "pendulum.tz.timezone.FixedTimezone", 1, true]}}},
            "td": {"__classname__": "datetime.timedelta", "__version__": 2, "__data__": 90.0},
            "set": {"__classname__": "builtins.set", "__version__": 1, "__data__": [1]}});
        let base = json!({"__var": {"a": 1, "s": "x", "l": [1, "b", null], "n": null,
            "t": {"__var": [1, 2], "__type": "tuple"}, "d": {"__var": {"x": 2.5}, "__type": "dict"},
            "dt": {"__var": 1767225600.0, "__type": "datetime"}, "td": {"__var": 90.0, "__type": "timedelta"},
            "set": {"__var": [1], "__type": "set"}}, "__type": "dict"});
        to_base_serialization(&mut sdk);
        assert_eq!(sdk, base);
        // Idempotent: what is already BaseSerialization stays so.
        to_base_serialization(&mut sdk);
        assert_eq!(sdk, base);
    }

    #[test]
    fn unknown_classes_leave_the_value_unchanged() {
        let original =
            json!({"x": {"__classname__": "my.Thing", "__version__": 1, "__data__": {}}});
        let mut value = original.clone();
        to_base_serialization(&mut value);
        assert_eq!(value, original);
        let mut null = Value::Null;
        to_base_serialization(&mut null);
        assert_eq!(null, Value::Null);
    }
}
