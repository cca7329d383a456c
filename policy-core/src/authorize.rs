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
/// No header, another scheme, or nothing after `Bearer` is
/// [`AuthError::MissingToken`] (401); credentials that are not UTF-8 are an
/// invalid token (403). The credentials are taken as sent after the single
/// space (RFC 6750), so `Bearer  x` presents ` x`, which no validator accepts.
pub fn bearer_token(req: &HttpRequest) -> Result<&str, AuthError> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Err(AuthError::MissingToken);
    };
    let bytes = value.as_bytes();
    let (scheme, credentials) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") || credentials.is_empty() {
        return Err(AuthError::MissingToken);
    }
    std::str::from_utf8(credentials)
        .map_err(|_| InvalidToken::Malformed("credentials are not UTF-8").into())
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
/// `sub` (so an upper-case UUID in the path matches).
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
    for binding in policy.bindings().iter() {
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
