//! Streaming reads of the small JSON objects in a token (header and payload):
//! member names and string values are borrowed from the decoded segment when
//! they hold no escapes, so the common token is read without building a
//! `serde_json::Map` first. Duplicate members resolve to the lexically last
//! one, as `serde_json::Map` does (RFC 7515 §4 and RFC 7519 §4 allow this).

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// One member value. Strings and numbers are typed; everything else is kept
/// whole, to be refused with a reason (or kept as an extra claim).
#[derive(Debug, PartialEq)]
pub(crate) enum Field<'a> {
    Str(Cow<'a, str>),
    Number(Number),
    Null,
    Other(Value),
}

impl Field<'_> {
    /// The value as `serde_json` would have read it.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Field::Str(s) => Value::String(s.into_owned()),
            Field::Number(n) => Value::Number(n),
            Field::Null => Value::Null,
            Field::Other(v) => v,
        }
    }

    pub(crate) fn from_value(value: Value) -> Field<'static> {
        match value {
            Value::String(s) => Field::Str(Cow::Owned(s)),
            Value::Number(n) => Field::Number(n),
            Value::Null => Field::Null,
            other => Field::Other(other),
        }
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Field::Other(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Field::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // JSON numbers are finite; serde_json refuses out-of-range ones itself.
        Ok(Number::from_f64(v).map_or(Field::Null, Field::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Field::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Field::Other)
    }
}

/// A member name, borrowed when it has no escapes.
pub(crate) struct Name<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Name(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Name(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Name(Cow::Owned(v)))
    }
}

/// Reads `bytes` as one JSON object (nothing but whitespace after it), handing
/// each member to `visit`. `None` when it is not JSON or not an object.
pub(crate) fn read_object<'de, T: Default>(
    bytes: &'de [u8],
    visit: impl FnMut(&mut T, Cow<'de, str>, Field<'de>),
) -> Option<T> {
    struct ObjectVisitor<T, F>(F, std::marker::PhantomData<T>);

    impl<'de, T: Default, F: FnMut(&mut T, Cow<'de, str>, Field<'de>)> Visitor<'de>
        for ObjectVisitor<T, F>
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<T, A::Error> {
            let mut out = T::default();
            while let Some(Name(name)) = map.next_key()? {
                let value = map.next_value::<Field<'de>>()?;
                (self.0)(&mut out, name, value);
            }
            Ok(out)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(bytes);
    let out = de
        .deserialize_map(ObjectVisitor(visit, std::marker::PhantomData))
        .ok()?;
    de.end().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn members(bytes: &[u8]) -> Option<Vec<(String, Value, bool)>> {
        read_object(bytes, |out: &mut Vec<_>, name, value| {
            let borrowed = matches!(&value, Field::Str(Cow::Borrowed(_)));
            out.push((name.into_owned(), value.into_value(), borrowed));
        })
    }

    #[test]
    fn reads_members_in_order_borrowing_plain_strings() {
        let got =
            members(br#" {"a":"x","b\u0041":"y\n","c":[1,{"d":null}],"e":1.5,"f":null} "#).unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), json!("x"), true),
                ("bA".into(), json!("y\n"), false),
                ("c".into(), json!([1, {"d": null}]), false),
                ("e".into(), json!(1.5), false),
                ("f".into(), Value::Null, false),
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        for bad in [
            &b"[\"HS256\"]"[..],
            b"\"x\"",
            b"{\"a\":1} {}",
            b"{\"a\":1",
            b"{\"a\":1e999}",
            b"",
            b"\xff",
        ] {
            assert_eq!(members(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
