//! The reissue middleware: a fresh execution token in `Refreshed-API-Token`
//! when the request's token is close to expiry.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};

use crate::authorize::cached_claims;
use crate::claims::Claims;
use crate::generate::TokenGenerator;
use crate::scope::TokenType;
use crate::subject::may_reissue;
use crate::validate::unix_now;

/// The response header carrying a re-issued token.
pub const REFRESHED_TOKEN_HEADER: HeaderName = HeaderName::from_static("refreshed-api-token");

/// Reissue when at most this many seconds remain, or 20 % of the lifetime if more.
const MIN_REFRESH_WINDOW: i64 = 30;

/// Whether an execution token with these claims is due for re-issue at `now`:
/// `exp - now <= max(20% of (exp - iat), 30 s)`. Workload tokens never are.
pub fn needs_reissue(claims: &Claims, now: i64) -> bool {
    if claims.scope != TokenType::Execution {
        return false;
    }
    let window = (claims.lifetime() / 5).max(MIN_REFRESH_WINDOW);
    claims.exp.saturating_sub(now) <= window
}

/// App middleware: after the handler, if this request's token (as validated
/// earlier in the request; this never validates) is an execution token near
/// expiry, adds `Refreshed-API-Token` with a new execution token for the same
/// subject. A header the handler set itself (the `/run` exchange) is kept.
/// With strict [`Subjects`](crate::Subjects) in the app data, only a token
/// whose task instance is live gets a successor: a finished task's tokens
/// expire.
///
/// ```
/// # use policy_core::*;
/// # let key = SigningKey::from_secret([7u8; 64], Algorithm::HS512, None).unwrap();
/// let generator = TokenGenerator::new(key, GeneratorConfig::default());
/// let app = actix_web::App::new().wrap(Reissue::new(generator));
/// ```
#[derive(Clone, Debug)]
pub struct Reissue {
    generator: TokenGenerator,
}

impl Reissue {
    /// Reissues with `generator` (its default TTL).
    pub fn new(generator: TokenGenerator) -> Reissue {
        Reissue { generator }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Reissue
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = ReissueService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ReissueService {
            service: Rc::new(service),
            generator: self.generator.clone(),
        }))
    }
}

/// The service [`Reissue`] builds.
#[doc(hidden)]
#[derive(Debug)]
pub struct ReissueService<S> {
    service: Rc<S>,
    generator: TokenGenerator,
}

impl<S, B> Service<ServiceRequest> for ReissueService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = ReissueFuture<B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let inner = self.service.call(req);
        let generator = self.generator.clone();
        Box::pin(async move {
            let mut res = inner.await?;
            if !res.headers().contains_key(&REFRESHED_TOKEN_HEADER)
                && let Some(claims) = cached_claims(res.request())
                && needs_reissue(&claims, unix_now())
                && may_reissue(res.request(), &claims).await
            {
                reissue(&generator, &claims, &mut res);
            }
            Ok(res)
        })
    }
}

/// The future of [`ReissueService`].
pub(crate) type ReissueFuture<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, Error>>>>;

fn reissue<B>(generator: &TokenGenerator, claims: &Claims, res: &mut ServiceResponse<B>) {
    let token = generator.generate(claims.sub, TokenType::Execution, generator.default_ttl());
    match token.map(HeaderValue::try_from) {
        Ok(Ok(value)) => {
            res.headers_mut().insert(REFRESHED_TOKEN_HEADER, value);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "re-issued token is not a header value"),
        Err(e) => tracing::warn!(error = %e, "cannot re-issue token"),
    }
}
