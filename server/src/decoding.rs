//! Strict percent-decoding of the request target.
//!
//! actix-web (like Starlette) decodes `%XX` sequences in paths and queries
//! lossily: `%FF`, `%FE` and the overlong `%C0%AF` all become U+FFFD, so three
//! different requests would name one variable. Keys are identities here, so a
//! path or query whose decoded bytes are not UTF-8, or hold a NUL (which
//! PostgreSQL refuses and C strings truncate), is refused with 400 before any
//! route sees it.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};
use serde_json::json;

/// Why a request target was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Decoded bytes that are not UTF-8.
    #[error("the {0} is not valid UTF-8 after percent-decoding")]
    NotUtf8(&'static str),
    /// A NUL character, encoded or not.
    #[error("the {0} contains a NUL character")]
    Nul(&'static str),
}

/// Checks one percent-encoded component (`part` names it in the error). In
/// a query, `+` is a space and does not matter here.
pub fn check(encoded: &str, part: &'static str) -> Result<(), TargetError> {
    if !encoded.contains('%') {
        // Already UTF-8 (it is a `&str`); only a raw NUL could be wrong.
        return if encoded.contains('\0') {
            Err(TargetError::Nul(part))
        } else {
            Ok(())
        };
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    if decoded.contains(&0) {
        return Err(TargetError::Nul(part));
    }
    std::str::from_utf8(&decoded)
        .map(|_| ())
        .map_err(|_| TargetError::NotUtf8(part))
}

/// Middleware: 400 `{"detail": ...}` for a path or query that does not decode
/// to clean UTF-8.
pub async fn strict<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let verdict = check(req.uri().path(), "path").and_then(|()| {
        req.uri()
            .query()
            .map_or(Ok(()), |query| check(query, "query string"))
    });
    match verdict {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(why) => {
            let response = HttpResponse::BadRequest().json(json!({"detail": why.to_string()}));
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_utf8_passes() {
        for ok in [
            "/execution/variables/plain",
            "/v/caf%C3%A9",
            "/v/%E2%82%AC",
            "a=b+c&d=%20",
        ] {
            assert_eq!(check(ok, "path"), Ok(()), "{ok}");
        }
    }

    #[test]
    fn what_lossy_decoding_would_merge_is_refused() {
        for bad in ["/v/%FF", "/v/%FE", "/v/%C0%AF", "/v/%ED%A0%80", "/v/caf%C3"] {
            assert_eq!(
                check(bad, "path"),
                Err(TargetError::NotUtf8("path")),
                "{bad}"
            );
        }
        assert_eq!(check("/v/a%00b", "path"), Err(TargetError::Nul("path")));
        assert_eq!(
            check("key=%00", "query string"),
            Err(TargetError::Nul("query string"))
        );
    }
}
