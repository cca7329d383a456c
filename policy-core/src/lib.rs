//! # policy-core
//!
//! The runtime of a declarative token-policy engine for actix-web.
//!
//! Without default features this crate is only the pure scope grammar
//! ([`SCOPES`], [`Scope`], [`RoutePolicy`]) and [`path`] pattern reader, shared with `policy-macros` so that compile time and
//! run time agree on what a valid scope is.
//!
//! With the `runtime` feature (on by default) it validates and generates JWTs
//! (`jsonwebtoken` on aws-lc-rs), caches validated claims per request and
//! verified tokens across requests, applies [`RoutePolicy`]s with the exact
//! responses of Airflow's Execution API, and provides the actix-web glue: the
//! [`Enforce`] route middleware, the [`Token`] extractor, the [`Reissue`]
//! middleware and one
//! [`ResponseError`](actix_web::ResponseError) impl for [`AuthError`].
//!
//! ## Keys
//!
//! | mode | signing ([`SigningKey`]) | validation ([`KeySource`]) |
//! |---|---|---|
//! | shared secret | [`SigningKey::from_secret`] (HS512 by default; HS256/HS384) | [`KeySource::secret`] |
//! | PEM key pair | [`SigningKey::from_pem`]: RSA -> RS256, Ed25519 -> EdDSA, P-256 -> ES256 (guessed); `kid` = RFC 7638 thumbprint | [`KeySource::public_pem`] or [`KeySource::signing_key`] |
//! | JWKS | (publish [`SigningKey::public_jwk`]) | [`KeySource::jwks`]: file or `http(s)://` URL, refreshed in the background, keys chosen by `kid` |
//!
//! Every verifying key is pinned to one algorithm, so `alg: none` and algorithm
//! confusion (an HS256 token "signed" with an RSA public key) are refused
//! before any cryptography runs.
//!
//! ## Validation and caching
//!
//! [`TokenValidator::validate`] checks the signature, then the claims (`sub` a
//! UUID, `scope` a [`TokenType`] defaulting to `execution`, `aud`, optional
//! `iss`), then `exp`/`nbf`/`iat` with a leeway (10 s by default). A token that
//! passes is kept in a bounded cache keyed by its exact bytes, so the next
//! request presenting it skips the signature check (time claims are re-checked
//! on every hit; the cache empties when the key set changes). Within one request
//! [`authenticate`] stores the `Arc<Claims>` in the request extensions: the
//! route guard, every [`Token`] extractor and [`Reissue`] share one validation,
//! which [`TokenValidator::signature_verifications`] lets a test count.
//!
//! ## Responses
//!
//! | situation | status | `detail` |
//! |---|---|---|
//! | no `Authorization: Bearer` header | 401 | `Missing auth token` |
//! | more than one `Authorization` header (Airflow uses the first) | 400 | `More than one Authorization header` |
//! | bad signature, expired, not yet valid, wrong audience/issuer, malformed, `alg: none` | 403 | `Invalid auth token` |
//! | claims of the wrong shape | 403 | `Invalid auth token: <why>` |
//! | token type not allowed | 403 | `Token type 'workload' not allowed for this endpoint. Allowed types: execution` |
//! | `ti:self` and `sub` differs | 403 | `Token subject does not match task instance ID` |
//! | `ti:running` and the token's task instance is missing or no longer running | 403 | `Token's task instance is not running` |
//! | `task:self` and the request names another task instance | 403 | `Token's task instance is not the one named in the request` |
//! | a store binding and the store cannot be asked | 503, `Retry-After: 1` | `Token's task instance could not be looked up; retry` |
//! | JWKS: `kid` unknown while the refresh it asked for is pending (the SDK retries 5xx) | 503, `Retry-After: 1` | `Token signing keys are being refreshed; retry` |
//!
//! ## API documents
//!
//! [`RouteInfo`] records, besides method, path and policy, a [`Describe`]
//! function that the macros write from the handler's extractors and the
//! attribute's `body`, `query` and `responses`; with the `openapi` feature it
//! fills an [`Operation`] with JSON Schemas made from the wire types by
//! `schemars` (see [`openapi`]).
//!
//! ## Example
//!
//! ```
//! # #[cfg(feature = "runtime")] {
//! use std::time::Duration;
//! use actix_web::{App, HttpResponse, test, web};
//! use policy_core::*;
//!
//! # actix_web::rt::System::new().block_on(async {
//! let key = SigningKey::from_secret([42u8; 64], Algorithm::HS512, None).unwrap();
//! let validator = TokenValidator::new(KeySource::signing_key(&key), ValidationConfig::default()).unwrap();
//! let generator = TokenGenerator::new(key, GeneratorConfig::default());
//!
//! // A route accepting execution tokens whose `sub` is the path's task instance id.
//! const POLICY: RoutePolicy = RoutePolicy::new(TokenTypes::NONE, Bindings::TASK_INSTANCE);
//! async fn heartbeat(token: Token) -> HttpResponse {
//!     HttpResponse::Ok().body(token.sub().to_string())
//! }
//! let app = test::init_service(
//!     App::new()
//!         .app_data(validator.clone())
//!         .wrap(Reissue::new(generator.clone()))
//!         .service(
//!             web::resource("/ti/{task_instance_id}/heartbeat")
//!                 .wrap(Enforce::new(POLICY))
//!                 .route(web::put().to(heartbeat)),
//!         ),
//! )
//! .await;
//!
//! let ti = uuid::Uuid::new_v4();
//! let token = generator.generate(ti, TokenType::Execution, Duration::from_secs(600)).unwrap();
//! let req = test::TestRequest::put()
//!     .uri(&format!("/ti/{ti}/heartbeat"))
//!     .insert_header(("Authorization", format!("Bearer {token}")))
//!     .to_request();
//! let res = test::call_service(&app, req).await;
//! assert_eq!(res.status(), 200);
//!
//! // Someone else's task instance: 403 with Airflow's message.
//! let req = test::TestRequest::put()
//!     .uri(&format!("/ti/{}/heartbeat", uuid::Uuid::new_v4()))
//!     .insert_header(("Authorization", format!("Bearer {token}")))
//!     .to_request();
//! let res = test::call_service(&app, req).await;
//! assert_eq!(res.status(), 403);
//! let body = test::read_body(res).await;
//! assert_eq!(body, r#"{"detail":"Token subject does not match task instance ID"}"#);
//! assert_eq!(validator.signature_verifications(), 1); // the second request hit the cache
//! # });
//! # }
//! ```

pub mod path;
mod scope;

pub use scope::{
    Binding, BindingSpec, Bindings, RoutePolicy, SCOPES, Scope, ScopeError, ScopeSpec, TokenType,
    TokenTypes, expected_scopes, expected_token_types,
};

#[cfg(feature = "runtime")]
mod authorize;
#[cfg(feature = "runtime")]
mod cache;
#[cfg(feature = "runtime")]
mod claims;
#[cfg(feature = "runtime")]
mod config;
#[cfg(feature = "runtime")]
mod enforce;
#[cfg(feature = "runtime")]
mod error;
#[cfg(feature = "runtime")]
mod extract;
#[cfg(feature = "runtime")]
mod generate;
#[cfg(feature = "runtime")]
mod json;
#[cfg(feature = "runtime")]
mod jwks;
#[cfg(feature = "runtime")]
mod keys;
#[cfg(feature = "runtime")]
pub mod openapi;
#[cfg(feature = "runtime")]
mod registry;
#[cfg(feature = "runtime")]
mod reissue;
#[cfg(feature = "runtime")]
mod subject;
#[cfg(feature = "runtime")]
mod validate;

#[cfg(all(test, feature = "runtime"))]
mod tests;
#[cfg(all(test, feature = "runtime"))]
mod testutil;

#[cfg(feature = "runtime")]
pub use {
    authorize::{authenticate, authorize, bearer_token, cached_claims},
    cache::MAX_CACHED_ENTRY_BYTES,
    claims::Claims,
    config::{DEFAULT_AUDIENCE, GeneratorConfig, ValidationConfig},
    enforce::{Enforce, EnforceFuture, EnforceService},
    error::{AuthError, Escaped, InvalidToken},
    extract::Token,
    generate::{GenerateError, TokenGenerator},
    jsonwebtoken::Algorithm,
    jwks::{JwksConfig, JwksLocation, parse_jwks},
    keys::{KeyError, KeySet, MIN_SECRET_LEN, SigningKey, VerifyingKey},
    openapi::{Describe, Operation},
    registry::{ExecutionRoute, RouteInfo},
    reissue::{REFRESHED_TOKEN_HEADER, Reissue, needs_reissue},
    subject::{Subject, SubjectError, SubjectFuture, SubjectMemory, SubjectStore, Subjects},
    validate::{KeySource, MAX_TOKEN_BYTES, TokenValidator},
};

/// Support items for code generated by `policy-macros`. Not a public API.
#[cfg(feature = "runtime")]
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "openapi")]
    pub use crate::openapi::arg;
    pub use actix_web;
}

/// `Some(describe)` with the `openapi` feature, `None` without: generated
/// code describes routes only when the schemas can be made. Not a public API.
#[cfg(feature = "openapi")]
#[doc(hidden)]
#[macro_export]
macro_rules! __describe {
    ($describe:expr) => {
        ::core::option::Option::Some($describe)
    };
}

/// `Some(describe)` with the `openapi` feature, `None` without. Not a public API.
#[cfg(not(feature = "openapi"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __describe {
    ($describe:expr) => {
        ::core::option::Option::None
    };
}
