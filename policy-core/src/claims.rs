//! Validated token claims.
//!
//! [`Claims::from_payload`] turns a decoded JWT payload into typed claims, refusing
//! every wrong shape with a reason (never a panic): `sub` must be a UUID, `scope`
//! a known [`TokenType`] (absent means `execution`), the time claims numbers.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::InvalidToken;
use crate::scope::TokenType;

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
    pub fn from_payload(mut payload: Map<String, Value>) -> Result<Claims, InvalidToken> {
        let sub = match payload.remove("sub") {
            None => return Err(missing("sub")),
            Some(Value::String(s)) => Uuid::try_parse(&s).map_err(|_| {
                InvalidToken::Claims(format!("claim `sub` must be a UUID, got {:?}", clip(&s)))
            })?,
            Some(_) => return Err(wrong_type("sub", "a string")),
        };
        let scope = match payload.remove("scope") {
            None | Some(Value::Null) => TokenType::Execution,
            Some(Value::String(s)) => TokenType::parse(&s).ok_or_else(|| {
                InvalidToken::Claims(format!(
                    "claim `scope` must be `execution` or `workload`, got {:?}",
                    clip(&s)
                ))
            })?,
            Some(_) => return Err(wrong_type("scope", "a string")),
        };
        let exp = numeric_date(&mut payload, "exp")?;
        let iat = numeric_date(&mut payload, "iat")?;
        let nbf = numeric_date(&mut payload, "nbf")?;
        let jti = optional_string(&mut payload, "jti")?;
        let iss = optional_string(&mut payload, "iss")?;
        let aud = match payload.remove("aud") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(vec![s]),
            Some(Value::Array(items)) => Some(
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
            extra: payload,
        })
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
}

fn missing(name: &str) -> InvalidToken {
    InvalidToken::Claims(format!("missing required claim `{name}`"))
}

fn wrong_type(name: &str, expected: &str) -> InvalidToken {
    InvalidToken::Claims(format!("claim `{name}` must be {expected}"))
}

/// Keeps attacker-controlled text short in error messages.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A NumericDate (RFC 7519 §2): integer or fractional seconds; the fraction is dropped.
fn numeric_date(payload: &mut Map<String, Value>, name: &str) -> Result<i64, InvalidToken> {
    match payload.remove(name) {
        None => Err(missing(name)),
        Some(Value::Number(n)) => n
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

fn optional_string(
    payload: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<String>, InvalidToken> {
    match payload.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
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
