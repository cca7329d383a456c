//! The resource middleware the macros wrap every route in.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};

use crate::authorize::authorize;
use crate::scope::RoutePolicy;

/// Applies a [`RoutePolicy`] before the inner service (so before any body is
/// read): on refusal it answers with the [`AuthError`](crate::AuthError)
/// response and the handler never runs.
#[derive(Clone, Copy, Debug)]
pub struct Enforce {
    policy: RoutePolicy,
}

impl Enforce {
    /// Middleware enforcing `policy`.
    pub const fn new(policy: RoutePolicy) -> Enforce {
        Enforce { policy }
    }

    /// The policy enforced.
    pub const fn policy(&self) -> RoutePolicy {
        self.policy
    }
}

impl<S, B> Transform<S, ServiceRequest> for Enforce
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = EnforceService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(EnforceService {
            service: Rc::new(service),
            policy: self.policy,
        }))
    }
}

/// The service [`Enforce`] builds.
#[doc(hidden)]
#[derive(Debug)]
pub struct EnforceService<S> {
    service: Rc<S>,
    policy: RoutePolicy,
}

impl<S, B> Service<ServiceRequest> for EnforceService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = EnforceFuture<S::Future, B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match authorize(req.request(), &self.policy) {
            Ok(_) => EnforceFuture::Allowed {
                inner: self.service.call(req),
            },
            Err(err) => {
                // `error_response` keeps the error attached to the response so access
                // logs and outer middleware can tell a refusal from a handler's 403.
                let res = req.error_response(err);
                EnforceFuture::Refused {
                    response: Some(res.map_into_right_body()),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`EnforceService`].
    #[doc(hidden)]
    #[project = EnforceProj]
    pub enum EnforceFuture<F, B> {
        /// The policy passed: the inner service's response.
        Allowed { #[pin] inner: F },
        /// The policy refused: the error response.
        Refused { response: Option<ServiceResponse<EitherBody<B>>> },
    }
}

impl<F, B> std::future::Future for EnforceFuture<F, B>
where
    F: std::future::Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            EnforceProj::Allowed { inner } => inner
                .poll(cx)
                .map(|res| res.map(ServiceResponse::map_into_left_body)),
            EnforceProj::Refused { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => Poll::Pending,
            },
        }
    }
}
