//! The route middleware: what the macros wrap every route in, and what a
//! route protected by hand uses.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};

use crate::authorize::authorize;
use crate::scope::RoutePolicy;
use crate::subject::check_store_bindings;

/// The boxed future of a request whose policy needs the store.
type Boxed<B> =
    Pin<Box<dyn std::future::Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>>>>;

/// Applies a [`RoutePolicy`] before the inner service (so before any body is
/// read): on refusal it answers with the [`AuthError`](crate::AuthError)
/// response and the handler never runs. A policy with a store binding
/// (`ti:running`, `task:self`) also needs [`Subjects`](crate::Subjects) in the
/// app data; the others are checked without awaiting anything.
///
/// This is how `#[execution_route]` protects a route, and how to protect one
/// without the macros: wrap an actix-web `Resource` (or `Scope`) in it. The
/// app needs a [`TokenValidator`](crate::TokenValidator) in its app data.
/// Unlike the macros, nothing checks at compile time that a binding's path
/// parameter (`{task_instance_id}` for `ti:self`) is in the resource's path;
/// without it every request is refused with 403.
///
/// ```
/// use std::time::Duration;
/// use actix_web::{App, HttpResponse, test, web};
/// use policy_core::{
///     Algorithm, Enforce, GeneratorConfig, KeySource, RoutePolicy, SigningKey, Token,
///     TokenGenerator, TokenType, TokenValidator, ValidationConfig,
/// };
///
/// # actix_web::rt::System::new().block_on(async {
/// let key = SigningKey::from_secret([42u8; 64], Algorithm::HS512, None).unwrap();
/// let validator =
///     TokenValidator::new(KeySource::signing_key(&key), ValidationConfig::default()).unwrap();
/// let generator = TokenGenerator::new(key, GeneratorConfig::default());
///
/// // Execution and workload tokens, whose `sub` is the path's task instance id.
/// let policy = RoutePolicy::from_scopes(["token:execution", "token:workload", "ti:self"]).unwrap();
/// async fn run(token: Token) -> HttpResponse {
///     HttpResponse::Ok().body(token.token_type().to_string())
/// }
/// let app = test::init_service(
///     App::new().app_data(validator).service(
///         web::resource("/task-instances/{task_instance_id}/run")
///             .wrap(Enforce::new(policy))
///             .route(web::patch().to(run)),
///     ),
/// )
/// .await;
///
/// let ti = uuid::Uuid::new_v4();
/// let workload = generator.generate(ti, TokenType::Workload, Duration::from_secs(60)).unwrap();
/// let req = test::TestRequest::patch()
///     .uri(&format!("/task-instances/{ti}/run"))
///     .insert_header(("Authorization", format!("Bearer {workload}")))
///     .to_request();
/// assert_eq!(test::call_and_read_body(&app, req).await, "workload");
///
/// // No token: 401, and the handler never ran.
/// let req = test::TestRequest::patch().uri(&format!("/task-instances/{ti}/run")).to_request();
/// assert_eq!(test::call_service(&app, req).await.status(), 401);
/// # });
/// ```
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
    B: MessageBody + 'static,
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

/// The service [`Enforce`] builds around the route's own.
#[derive(Debug)]
pub struct EnforceService<S> {
    service: Rc<S>,
    policy: RoutePolicy,
}

impl<S, B> Service<ServiceRequest> for EnforceService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = EnforceFuture<S::Future, B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match authorize(req.request(), &self.policy) {
            Ok(claims) if self.policy.bindings().need_store() => {
                let (service, policy) = (Rc::clone(&self.service), self.policy);
                let checked: Boxed<B> = Box::pin(async move {
                    match check_store_bindings(req.request(), &policy, &claims).await {
                        Ok(()) => service
                            .call(req)
                            .await
                            .map(ServiceResponse::map_into_left_body),
                        Err(err) => Ok(req.error_response(err).map_into_right_body()),
                    }
                });
                EnforceFuture {
                    state: State::Checking { checked },
                }
            }
            Ok(_) => EnforceFuture {
                state: State::Allowed {
                    inner: self.service.call(req),
                },
            },
            Err(err) => {
                // `error_response` keeps the error attached to the response so access
                // logs and outer middleware can tell a refusal from a handler's 403.
                let res = req.error_response(err);
                EnforceFuture {
                    state: State::Refused {
                        response: Some(res.map_into_right_body()),
                    },
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`EnforceService`].
    pub struct EnforceFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // The policy passed: the inner service's response.
        Allowed { #[pin] inner: F },
        // The policy refused: the error response, until it is taken.
        Refused { response: Option<ServiceResponse<EitherBody<B>>> },
        // The store bindings are being checked, then the inner service runs.
        Checking { checked: Boxed<B> },
    }
}

impl<F, B> std::future::Future for EnforceFuture<F, B>
where
    F: std::future::Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Allowed { inner } => inner
                .poll(cx)
                .map(|res| res.map(ServiceResponse::map_into_left_body)),
            StateProj::Refused { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => Poll::Pending,
            },
            StateProj::Checking { checked } => checked.as_mut().poll(cx),
        }
    }
}
