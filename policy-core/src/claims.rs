//! Validated token claims.
//!
//! [`Claims::from_payload`] turns a decoded JWT payload into typed claims, refusing
//! every wrong shape with a reason (never a panic): `sub` must be a UUID, `scope`
//! a known [`TokenType`] (absent means `execution`), the time claims numbers.

use std::borrow::Cow;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Escaped, InvalidToken};
use crate::json::{Field, read_object};
use crate::scope::{TokenType, expected_token_types};

/// The claims of a token whose signature, audience, issuer and shape have been
/// checked. Shared as `Arc<Claims>` by every user within a request and by the
/// cross-request cache.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// The subject: a task instance (or connection test) id.
    pub sub: Uuid,
    /// The token type from the `scope` claim; `execution` when absent.
    pub scope: TokenType,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Not before, seconds since the Unix epoch.
    pub nbf: i64,
    /// The token id, if any.
    pub jti: Option<String>,
    /// The audience(s); a single string is kept as a one-element list.
    pub aud: Option<Vec<String>>,
    /// The issuer, if any.
    pub iss: Option<String>,
    /// Every other claim, kept as sent.
    pub extra: Map<String, Value>,
}

impl Claims {
    /// Reads typed claims out of a JWT payload object.
    ///
    /// Required: `sub` (a UUID), `exp`, `iat`, `nbf` (numbers). Optional: `scope`
    /// (a token type name), `jti`, `iss` (strings), `aud` (string or list of strings).
    pub fn from_payload(payload: Map<String, Value>) -> Result<Claims, InvalidToken> {
        let mut builder = ClaimsBuilder::default();
        for (name, value) in payload {
            builder.set(Cow::Owned(name), Field::from_value(value));
        }
        builder.finish()
    }

    /// Reads the decoded JSON payload of a token, as [`Claims::from_payload`]
    /// would read it parsed (duplicate claims: the last one counts), without
    /// building the intermediate map.
    pub(crate) fn from_json(payload: &[u8]) -> Result<Claims, InvalidToken> {
        read_object(payload, ClaimsBuilder::set)
            .ok_or(InvalidToken::Malformed("payload is not a JSON object"))?
            .finish()
    }

    /// The token type (`scope` claim).
    pub fn token_type(&self) -> TokenType {
        self.scope
    }

    /// Whether `audience` is one of the token's audiences.
    pub fn has_audience(&self, audience: &str) -> bool {
        self.aud
            .as_ref()
            .is_some_and(|list| list.iter().any(|a| a == audience))
    }

    /// The token's lifetime as issued, `exp - iat`, in seconds.
    pub fn lifetime(&self) -> i64 {
        self.exp.saturating_sub(self.iat)
    }

    /// An estimate of the heap memory these claims own (strings, the `aud`
    /// list, every extra claim), for the verified-token cache's byte budget.
    /// It errs on the high side: a JSON map entry is counted as a B-tree slot
    /// with a third of its node empty.
    pub(crate) fn heap_bytes(&self) -> usize {
        let strings = [&self.jti, &self.iss]
            .into_iter()
            .flatten()
            .map(String::capacity)
            .sum::<usize>();
        let aud = self.aud.as_ref().map_or(0, |list| {
            list.capacity() * size_of::<String>() + list.iter().map(String::capacity).sum::<usize>()
        });
        strings + aud + map_heap_bytes(&self.extra)
    }
}

/// B-tree slots are about two-thirds full, so a map entry costs about 3/2 of
/// its key and value, plus a share of the node header.
fn map_heap_bytes(map: &Map<String, Value>) -> usize {
    const SLOT: usize = (size_of::<String>() + size_of::<Value>()) * 3 / 2 + 8;
    map.iter()
        .map(|(name, value)| SLOT + name.capacity() + value_heap_bytes(value))
        .sum()
}

fn value_heap_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.capacity(),
        Value::Array(items) => {
            items.capacity() * size_of::<Value>()
                + items.iter().map(value_heap_bytes).sum::<usize>()
        }
        Value::Object(map) => map_heap_bytes(map),
    }
}

fn missing(name: &str) -> InvalidToken {
    InvalidToken::Claims(format!("missing required claim `{name}`"))
}

fn wrong_type(name: &str, expected: &str) -> InvalidToken {
    InvalidToken::Claims(format!("claim `{name}` must be {expected}"))
}

/// The claims of a payload as read, before their types are checked.
#[derive(Default)]
struct ClaimsBuilder<'a> {
    sub: Option<Field<'a>>,
    scope: Option<Field<'a>>,
    exp: Option<Field<'a>>,
    iat: Option<Field<'a>>,
    nbf: Option<Field<'a>>,
    jti: Option<Field<'a>>,
    iss: Option<Field<'a>>,
    aud: Option<Field<'a>>,
    extra: Map<String, Value>,
}

impl<'a> ClaimsBuilder<'a> {
    /// Records one claim; a later one of the same name replaces it.
    fn set(&mut self, name: Cow<'a, str>, value: Field<'a>) {
        let slot = match &*name {
            "sub" => &mut self.sub,
            "scope" => &mut self.scope,
            "exp" => &mut self.exp,
            "iat" => &mut self.iat,
            "nbf" => &mut self.nbf,
            "jti" => &mut self.jti,
            "iss" => &mut self.iss,
            "aud" => &mut self.aud,
            _ => {
                self.extra.insert(name.into_owned(), value.into_value());
                return;
            }
        };
        *slot = Some(value);
    }

    fn finish(self) -> Result<Claims, InvalidToken> {
        let sub = match self.sub {
            None => return Err(missing("sub")),
            Some(Field::Str(s)) => Uuid::try_parse(&s).map_err(|_| {
                InvalidToken::Claims(format!(
                    "claim `sub` must be a UUID, got \"{}\"",
                    Escaped::new(&s)
                ))
            })?,
            Some(_) => return Err(wrong_type("sub", "a string")),
        };
        let scope = match self.scope {
            None | Some(Field::Null) => TokenType::Execution,
            Some(Field::Str(s)) => TokenType::parse(&s).ok_or_else(|| {
                InvalidToken::Claims(format!(
                    "claim `scope` must be {}, got \"{}\"",
                    expected_token_types(),
                    Escaped::new(&s)
                ))
            })?,
            Some(_) => return Err(wrong_type("scope", "a string")),
        };
        let exp = numeric_date(self.exp, "exp")?;
        let iat = numeric_date(self.iat, "iat")?;
        let nbf = numeric_date(self.nbf, "nbf")?;
        let jti = optional_string(self.jti, "jti")?;
        let iss = optional_string(self.iss, "iss")?;
        let aud = match self.aud {
            None | Some(Field::Null) => None,
            Some(Field::Str(s)) => Some(vec![s.into_owned()]),
            Some(Field::Other(Value::Array(items))) => Some(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(wrong_type("aud", "a string or a list of strings")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err(wrong_type("aud", "a string or a list of strings")),
        };
        Ok(Claims {
            sub,
            scope,
            exp,
            iat,
            nbf,
            jti,
            aud,
            iss,
            extra: self.extra,
        })
    }
}

/// A NumericDate (RFC 7519 §2): integer or fractional seconds; the fraction is dropped.
fn numeric_date(value: Option<Field<'_>>, name: &str) -> Result<i64, InvalidToken> {
    match value {
        None => Err(missing(name)),
        Some(Field::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.floor() as i64)
            })
            .ok_or_else(|| wrong_type(name, "a number of seconds")),
        Some(_) => Err(wrong_type(name, "a number of seconds")),
    }
}

fn optional_string(value: Option<Field<'_>>, name: &str) -> Result<Option<String>, InvalidToken> {
    match value {
        None | Some(Field::Null) => Ok(None),
        Some(Field::Str(s)) => Ok(Some(s.into_owned())),
        Some(_) => Err(wrong_type(name, "a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test payloads are objects"),
        }
    }

    fn base() -> Value {
        json!({
            "sub": "0190d3f4-5c1b-7d4e-8f00-000000000001",
            "exp": 200, "iat": 100, "nbf": 100,
            "aud": "urn:airflow.apache.org:task",
            "custom": [1, 2]
        })
    }

    #[test]
    fn reads_required_and_defaults_scope_to_execution() {
        let c = Claims::from_payload(payload(base())).unwrap();
        assert_eq!(c.scope, TokenType::Execution);
        assert_eq!((c.exp, c.iat, c.nbf), (200, 100, 100));
        assert!(c.has_audience("urn:airflow.apache.org:task"));
        assert_eq!(c.extra.get("custom"), Some(&json!([1, 2])));
        assert_eq!(c.lifetime(), 100);
    }

    #[test]
    fn refuses_wrong_shapes_with_a_reason() {
        let cases = [
            ("sub", json!("not-a-uuid"), "claim `sub` must be a UUID"),
            ("sub", json!(7), "claim `sub` must be a string"),
            (
                "scope",
                json!("admin"),
                "claim `scope` must be `execution` or `workload`",
            ),
            (
                "scope",
                json!(["execution"]),
                "claim `scope` must be a string",
            ),
            (
                "exp",
                json!("200"),
                "claim `exp` must be a number of seconds",
            ),
            (
                "iat",
                json!(null),
                "claim `iat` must be a number of seconds",
            ),
            (
                "aud",
                json!([1]),
                "claim `aud` must be a string or a list of strings",
            ),
            ("jti", json!(1), "claim `jti` must be a string"),
        ];
        for (name, value, want) in cases {
            let mut p = payload(base());
            p.insert(name.into(), value);
            let err = Claims::from_payload(p).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("Invalid auth token: {want}")),
                "{err}"
            );
        }
        for name in ["sub", "exp", "iat", "nbf"] {
            let mut p = payload(base());
            p.remove(name);
            let err = Claims::from_payload(p).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("Invalid auth token: missing required claim `{name}`")
            );
        }
    }

    #[test]
    fn streaming_read_equals_reading_the_parsed_map() {
        let texts = [
            base().to_string(),
            r#"{"sub":"0190d3f4-5c1b-7d4e-8f00-000000000001","exp":1,"iat":1.5,"nbf":-3,"jti":"j\n","iss":null,"aud":["a","b"],"x":{"y":[null,true]},"x":2}"#.to_owned(),
            r#"{"s\u0075b":"0190d3f4-5c1b-7d4e-8f00-000000000001","exp":1e3,"iat":0,"nbf":0,"scope":"workload","scope":null}"#.to_owned(),
            r#"{"sub":"0190d3f4-5c1b-7d4e-8f00-000000000001","exp":1,"iat":1,"nbf":1,"aud":[1]}"#.to_owned(),
            r#"{"sub":"nope","exp":1,"iat":1,"nbf":1}"#.to_owned(),
            r#"{"sub":"0190d3f4-5c1b-7d4e-8f00-000000000001","exp":"1","iat":1,"nbf":1}"#.to_owned(),
            r#"{"exp":1,"iat":1,"nbf":1}"#.to_owned(),
        ];
        for text in texts {
            let streamed = Claims::from_json(text.as_bytes());
            let parsed = Claims::from_payload(serde_json::from_str(&text).unwrap());
            assert_eq!(
                streamed.map_err(|e| e.to_string()),
                parsed.map_err(|e| e.to_string()),
                "{text}"
            );
        }
        assert_eq!(
            Claims::from_json(b"[1]").unwrap_err().to_string(),
            "Invalid auth token"
        );
    }

    #[test]
    fn accepts_fractional_dates_and_workload_scope_and_upper_case_uuid() {
        let mut p = payload(base());
        p.insert("exp".into(), json!(200.9));
        p.insert("scope".into(), json!("workload"));
        p.insert("sub".into(), json!("0190D3F4-5C1B-7D4E-8F00-000000000001"));
        let c = Claims::from_payload(p).unwrap();
        assert_eq!(c.exp, 200);
        assert_eq!(c.scope, TokenType::Workload);
        assert_eq!(c.sub.to_string(), "0190d3f4-5c1b-7d4e-8f00-000000000001");
    }
}
