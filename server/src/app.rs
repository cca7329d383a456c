//! Wiring: everything under `/execution`, with its app data, middleware and
//! error handlers.
//!
//! ```no_run
//! # async fn demo(state: execution_api_server::app::AppState) -> std::io::Result<()> {
//! use actix_web::{App, HttpServer};
//! use execution_api_server::app;
//!
//! HttpServer::new(move || App::new().configure(app::configure(state.clone())))
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await
//! # }
//! ```

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, HttpResponse, ResponseError, web};
use policy_core::{AuthError, Reissue, SubjectMemory, Subjects, TokenGenerator, TokenValidator};
use serde_json::json;

use crate::api::{self, ApiError};
use crate::store::{Store, TaskInstanceSubjects};

/// Where the API is mounted (as Airflow's api-server mounts it).
pub const BASE_PATH: &str = "/execution";

/// The newest Execution API version this server speaks (the Task SDK 1.3.2's).
pub const API_VERSION: &str = "2026-06-30";

/// Request header naming the API version; echoed on every response.
pub const API_VERSION_HEADER: HeaderName = HeaderName::from_static("airflow-api-version");

/// Request header tracing one call across logs; echoed on every response.
pub const CORRELATION_ID_HEADER: HeaderName = HeaderName::from_static("correlation-id");

/// Largest request body accepted (JSON payloads and XCom values); larger ones get 413.
/// Airflow sets none; XCom values of several MB are common.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// What the routes need: storage, the token validator, the generator for
/// the reissue middleware and the `/run` exchange, and how ownership is checked.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Validates bearer tokens (looked up by the policy enforcement).
    pub validator: TokenValidator,
    /// Mints execution tokens (reissue near expiry, `/run` exchange).
    pub generator: TokenGenerator,
    /// How the ownership scopes (`ti:running`, `task:self`) are enforced.
    pub ownership: OwnershipChecks,
    /// The ownership checks' memory of task instances, shared by the workers
    /// (each looks them up through its own connections).
    pub subjects: SubjectMemory,
}

/// How the ownership scopes (`ti:running`, `task:self`) are enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnershipChecks {
    /// Through the store: a task instance is live while `running`, or for
    /// `grace` after the worker reported it finished (see
    /// [`TaskInstanceSubjects`]).
    Strict {
        /// `[core] task_success_overtime` + `[api_auth] jwt_leeway`.
        grace: Duration,
    },
    /// Not at all, as Airflow 3.3.2.
    Permissive,
}

/// How long the store's answer about a token's task instance is reused, across requests,
/// by the ownership scopes: a task calling many routes costs one lookup per this, and a
/// task that stopped running is refused at most this much later than its grace allows.
pub const SUBJECT_TTL: Duration = Duration::from_secs(2);

/// Mounts everything under `/execution`: app data, the reissue and request-log
/// middleware, `airflow-api-version`/`correlation-id` echo, JSON/path/query
/// error handlers giving 4xx `{"detail": ...}`, `/health/ping`,
/// `/openapi.json` and the protected routes.
///
/// Use as `App::new().configure(app::configure(state.clone()))`.
///
/// Called once per actix-web worker: the worker gets a store with database
/// connections of its own ([`Store::for_worker`]), and the ownership checks
/// look task instances up through it.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let store = state.store.for_worker();
        let subjects = match state.ownership {
            OwnershipChecks::Strict { grace } => Subjects::sharing(
                TaskInstanceSubjects::new(store.clone(), grace),
                SUBJECT_TTL,
                state.subjects.clone(),
            ),
            OwnershipChecks::Permissive => Subjects::permissive(),
        };
        cfg.app_data(web::Data::new(store))
            .app_data(state.validator.clone())
            .app_data(state.generator.clone())
            .app_data(subjects);
        cfg.service(
            // An empty prefix, so the middleware also sees unknown paths.
            web::scope("")
                .app_data(json_config())
                .app_data(path_config())
                .app_data(query_config())
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .wrap(from_fn(crate::body::guard))
                .wrap(Reissue::new(state.generator.clone()))
                .wrap(from_fn(crate::versions::negotiate))
                .wrap(from_fn(crate::decoding::strict))
                .wrap(from_fn(observe))
                .route("/execution/health", web::get().to(health))
                .route("/execution/health/ping", web::get().to(ping))
                .route("/execution/openapi.json", web::get().to(openapi_json))
                .configure(api::configure)
                .default_service(web::to(not_found)),
        );
    }
}

/// The protected routes with their merged policies, from the
/// `#[execution_router]` registry (for `server routes`). Paths are full
/// (`/execution/...`).
pub fn routes() -> Vec<policy_core::RouteInfo> {
    api::routes()
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|err, _req| {
            let api = match &err {
                JsonPayloadError::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "expected `Content-Type: application/json`".into(),
                ),
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Payload(PayloadError::Overflow) => too_large(),
                JsonPayloadError::Payload(e) if crate::body::is_timeout(e) => body_timed_out(),
                JsonPayloadError::Deserialize(e) => ApiError::validation(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    vec!["body".into()],
                    e.to_string(),
                    if e.is_data() {
                        "value_error"
                    } else {
                        "json_invalid"
                    },
                ),
                _ => ApiError::new(StatusCode::BAD_REQUEST, err.to_string().into()),
            };
            api.into()
        })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body is larger than {BODY_LIMIT} bytes").into(),
    )
}

fn body_timed_out() -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, crate::body::TIMED_OUT.into())
}

/// `web::Bytes` bodies (XCom values): the same JSON answers as for `Json` bodies.
fn payload_error(err: &PayloadError) -> ApiError {
    match err {
        PayloadError::Overflow => too_large(),
        e if crate::body::is_timeout(e) => body_timed_out(),
        other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string().into()),
    }
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let msg = match &err {
            PathError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::validation(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["path".into()],
            msg,
            "value_error",
        )
        .into()
    })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let msg = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        // A required parameter left out: FastAPI's own item for it.
        if let Some(name) = msg
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!([{"type": "missing", "loc": ["query", name], "msg": "Field required",
                        "input": null}]),
            )
            .into();
        }
        ApiError::validation(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["query".into()],
            msg,
            "value_error",
        )
        .into()
    })
}

/// `GET /health`: the process answers (no database access), as Airflow's.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "healthy"}))
}

/// `GET /health/ping`: 200 `{"ok": ["database"], "failing": {}}`, or 503
/// with `Retry-After` when the database does not answer.
async fn ping(store: web::Data<Store>) -> HttpResponse {
    match store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"ok": ["database"], "failing": {}})),
        Err(err) => {
            tracing::warn!(error = %err, "health ping: database failing");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, api::RETRY_AFTER_SECONDS))
                .json(json!({"ok": [], "failing": {"database": "unavailable"}}))
        }
    }
}

/// The `?version=` of `GET /openapi.json`.
#[derive(serde::Deserialize)]
struct OpenApiQuery {
    version: Option<String>,
}

/// `GET /openapi.json?version=YYYY-MM-DD`: the document of that version (the
/// routes that exist at it), as Airflow's Cadwyn app serves it; 404 without a
/// version or for a date before the first one.
async fn openapi_json(query: web::Query<OpenApiQuery>) -> HttpResponse {
    use crate::versions::{ApiVersion, Requested};
    static DOCUMENTS: OnceLock<Vec<String>> = OnceLock::new();
    let version = match query
        .version
        .as_deref()
        .map(|v| ApiVersion::resolve(Some(v)))
    {
        Some(Ok(Requested::Version(version))) => version,
        _ => {
            let versions: Vec<&str> = ApiVersion::ALL.iter().map(|v| v.as_str()).collect();
            return HttpResponse::NotFound().json(json!({"detail": format!(
                "Not Found: ask for /execution/openapi.json?version=YYYY-MM-DD; versions: {}",
                versions.join(", ")
            )}));
        }
    };
    let documents = DOCUMENTS.get_or_init(|| {
        ApiVersion::ALL
            .iter()
            .map(|v| crate::openapi::document_for(*v).to_string())
            .collect()
    });
    let index = ApiVersion::ALL
        .iter()
        .position(|v| *v == version)
        .unwrap_or(0);
    HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .body(documents[index].clone())
}

/// No route matched: 405 with `Allow` when the path exists for other methods
/// (the macros mount one resource per method), else 404.
async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    fallback(req.path())
}

fn fallback(path: &str) -> HttpResponse {
    let plain = [
        ("GET", "/execution/health"),
        ("GET", "/execution/health/ping"),
        ("GET", "/execution/openapi.json"),
    ];
    let allowed: Vec<&str> = routes()
        .iter()
        .map(|r| (r.method, r.path))
        .chain(plain)
        .filter(|(_, pattern)| ResourceDef::new(*pattern).is_match(path))
        .map(|(method, _)| method)
        .collect();
    if allowed.is_empty() {
        return HttpResponse::NotFound().json(json!({"detail": "Not Found"}));
    }
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allowed.join(", ")))
        .json(json!({"detail": "Method Not Allowed"}))
}

/// Echoes the version and correlation headers, gives bodiless 404/405
/// responses a JSON `detail`, and logs one line per request (never the token).
async fn observe<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let started = Instant::now();
    // No clone of the request may live across `next.call`: routing needs it unshared.
    let method = req.method().clone();
    let path = req.path().to_owned();
    let correlation_id = req.headers().get(&CORRELATION_ID_HEADER).cloned();
    let version = req
        .headers()
        .get(&API_VERSION_HEADER)
        .cloned()
        .unwrap_or(HeaderValue::from_static(API_VERSION));
    let mut res = match next.call(req).await {
        Ok(res) => res.map_into_left_body(),
        Err(err) => {
            tracing::info!(
                target: "execution_api::access",
                method = %method,
                path = %path,
                error = %err,
                latency_us = started.elapsed().as_micros() as u64,
                "request failed"
            );
            return Err(err);
        }
    };
    let status = res.status();
    if matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) && !res.headers().contains_key(header::CONTENT_TYPE)
    {
        // Unmatched inside a router's scope: actix answers a bare 404 there.
        let mut replacement = fallback(&path);
        if let Some(allow) = res.headers().get(header::ALLOW) {
            replacement
                .headers_mut()
                .insert(header::ALLOW, allow.clone());
        }
        res = ServiceResponse::new(res.request().clone(), replacement).map_into_right_body();
    }
    let payload_failure = res
        .response()
        .error()
        .and_then(|e| e.as_error::<PayloadError>())
        .map(payload_error);
    if let Some(api) = payload_failure {
        res =
            ServiceResponse::new(res.request().clone(), api.error_response()).map_into_right_body();
    }
    let headers = res.headers_mut();
    headers.insert(API_VERSION_HEADER, version);
    if let Some(id) = &correlation_id {
        headers.insert(CORRELATION_ID_HEADER, id.clone());
    }
    let auth = auth_outcome(&res);
    tracing::info!(
        target: "execution_api::access",
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        correlation_id = correlation_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
        auth = %auth,
        "request"
    );
    Ok(res)
}

fn auth_outcome<B>(res: &ServiceResponse<B>) -> String {
    if let Some(err) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<AuthError>())
    {
        return match err {
            AuthError::InvalidToken(why) => format!("denied: {}", why.reason()),
            other => format!("denied: {other}"),
        };
    }
    match policy_core::cached_claims(res.request()) {
        Some(claims) => format!("ok: {} token for {}", claims.scope, claims.sub),
        None => "none".to_owned(),
    }
}
