//! Reading the bearer token, authenticating once per request, and applying a
//! [`RoutePolicy`] in DESIGN.md's order: token present, token valid, token type
//! allowed, subject bindings.

use std::sync::Arc;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpMessage, HttpRequest, web};
use uuid::Uuid;

use crate::claims::Claims;
use crate::error::{AuthError, InvalidToken};
use crate::scope::RoutePolicy;
use crate::validate::TokenValidator;

/// The claims validated for this request, kept in the request extensions.
#[derive(Clone, Debug)]
struct Authenticated(Arc<Claims>);

/// The token from `Authorization: Bearer <token>`.
///
/// No header, another scheme (compared case-insensitively), or nothing after
/// `Bearer` is [`AuthError::MissingToken`] (401); credentials that are not
/// UTF-8 are an invalid token (403).
///
/// The scheme and the token are separated by one or more spaces (RFC 6750:
/// `"Bearer" 1*SP b64token`), and trailing spaces or tabs are not part of the
/// token (RFC 9110 §5.5 excludes them from a field value; HTTP/1 parsers strip
/// them already). Airflow reads the header the same way (FastAPI's
/// `partition(" ")` then `strip()`).
///
/// More than one `Authorization` header is [`AuthError::AmbiguousCredentials`]
/// (400): Starlette would silently use the first one, but a proxy in front may
/// have used the last one, so "which token was checked" would depend on who
/// reads the request. RFC 6750 §3.1 calls a request carrying more than one
/// credential `invalid_request`, answered with 400.
pub fn bearer_token(req: &HttpRequest) -> Result<&str, AuthError> {
    let mut values = req.headers().get_all(AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        return Err(AuthError::AmbiguousCredentials);
    }
    let bytes = value.as_bytes();
    let (scheme, credentials) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    let credentials = trim_ows(credentials);
    if !scheme.eq_ignore_ascii_case(b"bearer") || credentials.is_empty() {
        return Err(AuthError::MissingToken);
    }
    std::str::from_utf8(credentials)
        .map_err(|_| InvalidToken::Malformed("credentials are not UTF-8").into())
}

/// `credentials` without the spaces after the scheme and the spaces or tabs at
/// the end.
fn trim_ows(credentials: &[u8]) -> &[u8] {
    let start = credentials
        .iter()
        .position(|&b| b != b' ')
        .unwrap_or(credentials.len());
    let end = credentials
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &credentials[start..end.max(start)]
}

/// The claims already validated for this request, if any (never validates).
pub fn cached_claims(req: &HttpRequest) -> Option<Arc<Claims>> {
    req.extensions()
        .get::<Authenticated>()
        .map(|a| Arc::clone(&a.0))
}

fn validator(req: &HttpRequest) -> Option<TokenValidator> {
    req.app_data::<TokenValidator>().cloned().or_else(|| {
        req.app_data::<web::Data<TokenValidator>>()
            .map(|d| d.get_ref().clone())
    })
}

/// The request's validated claims: from the request extensions if a guard,
/// extractor or middleware already validated the token, otherwise validated
/// now (with the app's [`TokenValidator`]) and stored there for the rest of the
/// request. So the signature is checked at most once per request.
pub fn authenticate(req: &HttpRequest) -> Result<Arc<Claims>, AuthError> {
    if let Some(claims) = cached_claims(req) {
        return Ok(claims);
    }
    let validator = validator(req).ok_or(AuthError::NotConfigured)?;
    let token = bearer_token(req)?;
    let claims = validator.validate(token)?;
    req.extensions_mut()
        .insert(Authenticated(Arc::clone(&claims)));
    Ok(claims)
}

/// [`authenticate`], then the policy: the token type must be allowed, and for
/// every subject binding the path parameter must parse as a UUID equal to
/// `sub` (so an upper-case UUID in the path matches). The bindings that need
/// the store (`ti:running`, `task:self`) are not checked here: [`Enforce`](crate::Enforce)
/// awaits them next.
pub fn authorize(req: &HttpRequest, policy: &RoutePolicy) -> Result<Arc<Claims>, AuthError> {
    let claims = authenticate(req)?;
    check_policy(req, policy, &claims)?;
    Ok(claims)
}

fn check_policy(req: &HttpRequest, policy: &RoutePolicy, claims: &Claims) -> Result<(), AuthError> {
    if !policy.allows(claims.scope) {
        return Err(AuthError::TokenTypeNotAllowed {
            token_type: claims.scope,
            allowed: policy.allowed_tokens(),
        });
    }
    // The store bindings (`ti:running`, `task:self`) are awaited by `Enforce` afterwards.
    for binding in policy.bindings().iter().filter(|b| !b.needs_store()) {
        let matches = req
            .match_info()
            .get(binding.path_param())
            .and_then(|id| Uuid::try_parse(id).ok())
            .is_some_and(|id| id == claims.sub);
        if !matches {
            return Err(AuthError::SubjectMismatch(binding));
        }
    }
    Ok(())
}
