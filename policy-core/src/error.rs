//! Errors, and the one place they become HTTP responses.
//!
//! Every refusal is an [`AuthError`]; its single [`ResponseError`] impl writes the
//! status and the JSON body `{"detail": "..."}` of DESIGN.md's table, with
//! `WWW-Authenticate: Bearer` on 401.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use std::fmt::{self, Write as _};

use crate::scope::{Binding, TokenType, TokenTypes};

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer <token>` header (401).
    #[error("Missing auth token")]
    MissingToken,
    /// More than one `Authorization` header (400, RFC 6750 `invalid_request`):
    /// which one is "the" token would depend on who reads the request.
    #[error("More than one Authorization header")]
    AmbiguousCredentials,
    /// The token is not valid (403); see [`InvalidToken`] for the detail wording.
    #[error(transparent)]
    InvalidToken(#[from] InvalidToken),
    /// The route does not accept this token type (403).
    #[error("Token type '{token_type}' not allowed for this endpoint. Allowed types: {allowed}")]
    TokenTypeNotAllowed {
        /// The type of the token presented.
        token_type: TokenType,
        /// What the route accepts.
        allowed: TokenTypes,
    },
    /// A subject binding (`ti:self`, `ct:self`, `ti:running`, `task:self`) failed (403).
    #[error("{}", .0.mismatch_detail())]
    SubjectMismatch(Binding),
    /// The store could not be asked about the token's task instance (503
    /// with `Retry-After`; the Task SDK retries 5xx answers).
    #[error("Token's task instance could not be looked up; retry")]
    SubjectUnavailable,
    /// The token's `kid` is not in the current JWKS and a refresh of the
    /// set is pending (503 with `Retry-After`): the key may just have been
    /// rotated in, and the Task SDK retries 5xx answers.
    #[error("Token signing keys are being refreshed; retry")]
    KeysRefreshing,
    /// The application has no [`TokenValidator`](crate::TokenValidator) in
    /// its app data, or a route with a store binding has no
    /// [`Subjects`](crate::Subjects) (500).
    #[error("Token validation is not configured")]
    NotConfigured,
}

/// Why a token is not valid. The `Display` form is the response `detail`:
/// exactly `Invalid auth token` for cryptographic, structural and time failures
/// (no oracle for an attacker), `Invalid auth token: <why>` for claims of the
/// wrong shape. [`InvalidToken::reason`] always says why, for logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// Not a compact JWS: segments, base64url, JSON, size.
    #[error("Invalid auth token")]
    Malformed(&'static str),
    /// The header names an algorithm we refuse (`none`, unknown, or not the key's).
    #[error("Invalid auth token")]
    Algorithm(Escaped),
    /// No key for the header's `kid`/`alg`.
    #[error("Invalid auth token")]
    UnknownKey(Option<Escaped>),
    /// The signature does not verify.
    #[error("Invalid auth token")]
    Signature,
    /// `exp` is in the past (beyond the leeway).
    #[error("Invalid auth token")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("Invalid auth token")]
    NotYetValid,
    /// `aud` missing or not ours.
    #[error("Invalid auth token")]
    Audience,
    /// `iss` missing or not the configured issuer.
    #[error("Invalid auth token")]
    Issuer,
    /// Claims of the wrong shape (a non-UUID `sub`, an unknown `scope`, ...).
    /// Any claim value quoted in the message is [`Escaped`].
    #[error("Invalid auth token: {0}")]
    Claims(String),
}

impl InvalidToken {
    /// Why the token was refused, for logs (never sent to the client unless
    /// the `Display` form already carries it).
    pub fn reason(&self) -> String {
        match self {
            InvalidToken::Malformed(why) => format!("malformed token: {why}"),
            InvalidToken::Algorithm(alg) => format!("algorithm \"{alg}\" refused"),
            InvalidToken::UnknownKey(Some(kid)) => format!("no key with kid \"{kid}\""),
            InvalidToken::UnknownKey(None) => "no key for this token".to_owned(),
            InvalidToken::Signature => "bad signature".to_owned(),
            InvalidToken::Expired => "expired".to_owned(),
            InvalidToken::NotYetValid => "not yet valid".to_owned(),
            InvalidToken::Audience => "wrong audience".to_owned(),
            InvalidToken::Issuer => "wrong issuer".to_owned(),
            InvalidToken::Claims(why) => why.clone(),
        }
    }
}

/// Text taken from a request (a token header's `alg` or `kid`, a claim value),
/// made safe for messages and logs: at most [`Escaped::MAX_CHARS`] characters are
/// kept, each escaped as [`char::escape_debug`] does (so a newline is `\n`, an
/// ANSI escape `\u{1b}`, a quote `\"`), and what was cut is counted.
///
/// Every request-derived value in this crate's errors is held as one, so an
/// access log line that prints an [`AuthError`] or [`InvalidToken::reason`]
/// stays one line, free of terminal escapes, and short.
///
/// ```
/// use policy_core::Escaped;
///
/// let kid = format!("k1\n\x1b[31mFAKE LOG LINE{}", "x".repeat(10_000));
/// let shown = Escaped::new(&kid).to_string();
/// assert!(shown.starts_with(r"k1\n\u{1b}[31mFAKE LOG LINE"));
/// assert!(shown.ends_with("... (9957 more bytes)"));
/// assert!(!shown.chars().any(char::is_control));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Escaped(Box<str>);

impl Escaped {
    /// Characters of the original text kept.
    pub const MAX_CHARS: usize = 64;

    /// The escaped, bounded form of `raw`.
    pub fn new(raw: &str) -> Escaped {
        let mut out = String::with_capacity(raw.len().min(Self::MAX_CHARS) + 8);
        for (n, (i, c)) in raw.char_indices().enumerate() {
            if n == Self::MAX_CHARS {
                let _ = write!(out, "... ({} more bytes)", raw.len() - i);
                break;
            }
            out.extend(c.escape_debug());
        }
        Escaped(out.into_boxed_str())
    }

    /// The escaped text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Escaped {
    /// In quotes; already escaped, so nothing is escaped twice.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

impl AuthError {
    /// The `detail` string of the response body.
    pub fn detail(&self) -> String {
        self.to_string()
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::MissingToken => StatusCode::UNAUTHORIZED,
            AuthError::AmbiguousCredentials => StatusCode::BAD_REQUEST,
            AuthError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
            AuthError::KeysRefreshing | AuthError::SubjectUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            AuthError::MissingToken => {
                res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            // RFC 6750 §3: the error code goes in the challenge too.
            AuthError::AmbiguousCredentials => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_request""#),
                ));
            }
            // A refresh is a fetch bounded by its timeout (5 s by default).
            AuthError::KeysRefreshing | AuthError::SubjectUnavailable => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            _ => {}
        }
        res.json(serde_json::json!({ "detail": self.detail() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn render(err: AuthError) -> (StatusCode, Option<String>, serde_json::Value) {
        let res = err.error_response();
        let status = res.status();
        let www = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body = to_bytes(res.into_body()).await.unwrap();
        (status, www, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn escaped_text_is_one_bounded_line_without_control_characters() {
        let cases = [
            ("plain-kid", "plain-kid"),
            ("a\nb\r\tc", r"a\nb\r\tc"),
            ("\x1b[31mred\x1b[0m", r"\u{1b}[31mred\u{1b}[0m"),
            ("quote\"back\\", r#"quote\"back\\"#),
            ("nul\0del\x7f", r"nul\0del\u{7f}"),
            ("bidi\u{202e}txt", r"bidi\u{202e}txt"),
            ("ünïcödé ok", "ünïcödé ok"),
        ];
        for (raw, want) in cases {
            assert_eq!(Escaped::new(raw).as_str(), want, "{raw:?}");
        }
        let long = "é".repeat(100);
        let shown = Escaped::new(&long);
        assert_eq!(
            shown.as_str(),
            format!("{}... (72 more bytes)", "é".repeat(64))
        );
        assert_eq!(format!("{:?}", Escaped::new("a\nb")), r#""a\nb""#);
    }

    #[actix_web::test]
    async fn each_error_renders_the_designed_status_and_detail() {
        let cases = [
            (AuthError::MissingToken, 401, "Missing auth token"),
            (
                AuthError::AmbiguousCredentials,
                400,
                "More than one Authorization header",
            ),
            (InvalidToken::Signature.into(), 403, "Invalid auth token"),
            (InvalidToken::Expired.into(), 403, "Invalid auth token"),
            (
                InvalidToken::Claims("claim `sub` must be a UUID".into()).into(),
                403,
                "Invalid auth token: claim `sub` must be a UUID",
            ),
            (
                AuthError::TokenTypeNotAllowed {
                    token_type: TokenType::Workload,
                    allowed: TokenTypes::EXECUTION,
                },
                403,
                "Token type 'workload' not allowed for this endpoint. Allowed types: execution",
            ),
            (
                AuthError::SubjectMismatch(Binding::TaskInstance),
                403,
                "Token subject does not match task instance ID",
            ),
            (
                AuthError::NotConfigured,
                500,
                "Token validation is not configured",
            ),
            (
                AuthError::KeysRefreshing,
                503,
                "Token signing keys are being refreshed; retry",
            ),
        ];
        for (err, status, detail) in cases {
            let challenge = match status {
                401 => Some("Bearer"),
                400 => Some(r#"Bearer error="invalid_request""#),
                _ => None,
            };
            let retry_after = (status == 503).then_some("1");
            let res = err.error_response();
            assert_eq!(
                res.headers()
                    .get(header::RETRY_AFTER)
                    .map(|v| v.to_str().unwrap()),
                retry_after
            );
            let (got_status, www, body) = render(err).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(body, serde_json::json!({ "detail": detail }));
            assert_eq!(www.as_deref(), challenge);
        }
    }
}
