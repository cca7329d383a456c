//! API versions, as Airflow's Cadwyn app serves them (`airflow/api_fastapi/execution_api/versions/`).
//!
//! A client names its version in the `Airflow-API-Version` request header
//! (`YYYY-MM-DD`; absent: the newest). The version decides two things, and only
//! these (Airflow does not version request bodies: one request schema serves
//! every version):
//!
//! - **which routes exist**: a route added later, or removed earlier, is not
//!   there for the client (404, or 405 where the path exists for another
//!   method), see [`exists`];
//! - **the shape of some responses**: fields added later are taken out of
//!   `TIRunContext`, `DagRun` and `AssetEventsResponse`, or given the value older
//!   clients expect, see `downgrade`.
//!
//! A date between two versions means the newest version not after it; a date
//! after the newest means the newest; a date before the first version makes
//! every route 404; a value that is not a date is a 422, as in Airflow.
//!
//! The Task SDK sends, by release: 1.1.0 `2025-09-23`, 1.1.1 `2025-10-27`,
//! 1.1.2-1.1.8 `2025-11-05`, 1.2.x `2026-04-06`, 1.3.x `2026-06-30`.

use std::fmt;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse};
use serde_json::{Value, json};

/// One version of the Execution API, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// The baseline.
    V2025_04_11,
    /// `rendered_map_index` in terminal payloads.
    V2025_04_28,
    /// `upstream_map_indexes` values may be lists.
    V2025_05_20,
    /// `DagRun.state`; `GET /dag-runs/{dag_id}/previous`.
    V2025_08_10,
    /// `TaskInstance.dag_version_id` (workloads only).
    V2025_09_23,
    /// `DagRun.conf` may be null.
    V2025_10_27,
    /// `DagRun.triggering_user_name`.
    V2025_11_05,
    /// Partition keys, `GET /dag-runs/previous`, `GET /dag-runs/{dag_id}/{run_id}`,
    /// `GET /dags/{dag_id}`, nullable `DagRun.start_date`, JSON deferral kwargs,
    /// `DagRun.note`, `TIRunContext.start_date`; `upstream_map_indexes` removed.
    V2026_04_06,
    /// Variable keys, connection tests, state stores, assets by alias,
    /// `awaiting_input`, retry policy, `team_name`, `partition_date`.
    V2026_06_30,
}

impl ApiVersion {
    /// Every version, oldest first.
    pub const ALL: [ApiVersion; 9] = [
        ApiVersion::V2025_04_11,
        ApiVersion::V2025_04_28,
        ApiVersion::V2025_05_20,
        ApiVersion::V2025_08_10,
        ApiVersion::V2025_09_23,
        ApiVersion::V2025_10_27,
        ApiVersion::V2025_11_05,
        ApiVersion::V2026_04_06,
        ApiVersion::V2026_06_30,
    ];

    /// The newest version, used when a request names none.
    pub const HEAD: ApiVersion = ApiVersion::V2026_06_30;

    /// `YYYY-MM-DD`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V2025_04_11 => "2025-04-11",
            ApiVersion::V2025_04_28 => "2025-04-28",
            ApiVersion::V2025_05_20 => "2025-05-20",
            ApiVersion::V2025_08_10 => "2025-08-10",
            ApiVersion::V2025_09_23 => "2025-09-23",
            ApiVersion::V2025_10_27 => "2025-10-27",
            ApiVersion::V2025_11_05 => "2025-11-05",
            ApiVersion::V2026_04_06 => "2026-04-06",
            ApiVersion::V2026_06_30 => "2026-06-30",
        }
    }

    /// The version a client asking for `requested` gets.
    pub fn resolve(requested: Option<&str>) -> Result<Requested, VersionError> {
        let Some(text) = requested else {
            return Ok(Requested::Version(ApiVersion::HEAD));
        };
        let text = text.trim();
        let date = time::Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| VersionError {
            input: text.to_owned(),
        })?;
        let found = ApiVersion::ALL.into_iter().rev().find(|v| v.date() <= date);
        Ok(found.map_or(Requested::BeforeFirst, Requested::Version))
    }

    fn date(self) -> time::Date {
        time::Date::parse(
            self.as_str(),
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .expect("version names are dates")
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request's `Airflow-API-Version` resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// A version we serve.
    Version(ApiVersion),
    /// A date before the first version: no route exists.
    BeforeFirst,
}

/// An `Airflow-API-Version` that is not a date.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Airflow-API-Version `{input}` is not a date (YYYY-MM-DD)")]
pub struct VersionError {
    /// The header as sent.
    pub input: String,
}

impl VersionError {
    /// Pydantic's answer, as Airflow gives it: 422 with a validation error on the header.
    pub fn response(&self) -> HttpResponse {
        HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY).json(json!({"detail": [{
            "type": "date_from_datetime_parsing",
            "loc": ["header", "Airflow-API-Version"],
            "msg": "Input should be a valid date or datetime, invalid character in year",
            "input": self.input,
        }]}))
    }
}

/// Routes that exist only from (or only before) some version: `(method, path
/// under /execution, first version, first version without it)`.
const LIFETIMES: &[(&str, &str, ApiVersion, Option<ApiVersion>)] = &[
    (
        "GET",
        "/dag-runs/{dag_id}/previous",
        ApiVersion::V2025_08_10,
        Some(ApiVersion::V2026_04_06),
    ),
    ("GET", "/dag-runs/previous", ApiVersion::V2026_04_06, None),
    (
        "GET",
        "/dag-runs/{dag_id}/{run_id}",
        ApiVersion::V2026_04_06,
        None,
    ),
    ("GET", "/dags/{dag_id}", ApiVersion::V2026_04_06, None),
    ("GET", "/variables/keys", ApiVersion::V2026_06_30, None),
    (
        "PATCH",
        "/connection-tests/{connection_test_id}",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "GET",
        "/connection-tests/{connection_test_id}/connection",
        ApiVersion::V2026_06_30,
        None,
    ),
    ("GET", "/assets/by-alias", ApiVersion::V2026_06_30, None),
    (
        "GET",
        "/store/ti/{task_instance_id}/{key}",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "PUT",
        "/store/ti/{task_instance_id}/{key}",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "DELETE",
        "/store/ti/{task_instance_id}/{key}",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "DELETE",
        "/store/ti/{task_instance_id}",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "GET",
        "/store/asset/by-name/value",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "PUT",
        "/store/asset/by-name/value",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "DELETE",
        "/store/asset/by-name/value",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "DELETE",
        "/store/asset/by-name/clear",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "GET",
        "/store/asset/by-uri/value",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "PUT",
        "/store/asset/by-uri/value",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "DELETE",
        "/store/asset/by-uri/value",
        ApiVersion::V2026_06_30,
        None,
    ),
    (
        "DELETE",
        "/store/asset/by-uri/clear",
        ApiVersion::V2026_06_30,
        None,
    ),
];

/// Routes that, at versions without them, are another route's path: where that
/// other route exists, the handler answers as it (`GET /variables/keys` is the
/// variable named `keys` before 2026-06-30; `GET /dag-runs/{dag_id}/previous`
/// the run named `previous` from 2026-04-06, as in Airflow), so the request is
/// not refused.
const ANSWERED_AS_ANOTHER_ROUTE: &[(&str, &str, &str)] = &[
    ("GET", "/variables/keys", "/variables/{variable_key}"),
    (
        "GET",
        "/dag-runs/{dag_id}/previous",
        "/dag-runs/{dag_id}/{run_id}",
    ),
];

/// Whether a request for `method path`, which does not exist at `version`, is
/// answered as another route that does.
fn answered_as_another_route(version: ApiVersion, method: &str, path: &str) -> bool {
    ANSWERED_AS_ANOTHER_ROUTE
        .iter()
        .any(|(m, p, other)| *m == method && *p == path && exists(version, method, other))
}

/// Whether `method path` (a route pattern under `/execution`, without regex
/// parts: `/variables/{variable_key}`) exists at `version`.
pub fn exists(version: ApiVersion, method: &str, path: &str) -> bool {
    LIFETIMES
        .iter()
        .find(|(m, p, _, _)| *m == method && *p == path)
        .is_none_or(|(_, _, from, until)| {
            version >= *from && until.is_none_or(|until| version < until)
        })
}

/// Which response converter a route's successful answers go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `TIRunContext` (`PATCH /task-instances/{id}/run`).
    RunContext,
    /// `DagRun` (`GET /dag-runs/{dag_id}/{run_id}`).
    DagRun,
    /// `DagRun | null` (`GET /dag-runs/previous`, converted by path in Airflow).
    PreviousDagRun,
    /// `AssetEventsResponse` (`GET /asset-events/...`).
    AssetEvents,
}

fn shape_of(method: &Method, path: &str) -> Option<Shape> {
    match (method.as_str(), path) {
        ("PATCH", "/task-instances/{task_instance_id}/run") => Some(Shape::RunContext),
        ("GET", "/dag-runs/{dag_id}/{run_id}") => Some(Shape::DagRun),
        ("GET", "/dag-runs/previous") => Some(Shape::PreviousDagRun),
        ("GET", "/asset-events/by-asset" | "/asset-events/by-asset-alias") => {
            Some(Shape::AssetEvents)
        }
        _ => None,
    }
}

fn dag_run(body: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    body.get_mut("dag_run").and_then(Value::as_object_mut)
}

/// Applies, newest first, every response converter of every version newer than
/// `version` to a response body of `shape` (Cadwyn's order).
fn downgrade(version: ApiVersion, shape: Shape, body: &mut Value) {
    use ApiVersion as V;
    let older = |than: ApiVersion| version < than;
    match shape {
        Shape::RunContext => {
            if older(V::V2026_06_30)
                && let Some(run) = dag_run(body)
            {
                run.remove("team_name");
                run.remove("partition_date");
                if let Some(events) = run
                    .get_mut("consumed_asset_events")
                    .and_then(Value::as_array_mut)
                {
                    for event in events.iter_mut().filter_map(Value::as_object_mut) {
                        event.remove("partition_key");
                    }
                }
            }
            if older(V::V2026_04_06) {
                if let Some(object) = body.as_object_mut() {
                    object.remove("start_date");
                    object.insert("upstream_map_indexes".into(), Value::Null);
                }
                if let Some(run) = dag_run(body) {
                    run.remove("note");
                    run.remove("partition_key");
                    if run.get("start_date").is_none_or(Value::is_null) {
                        let run_after = run.get("run_after").cloned().unwrap_or(Value::Null);
                        run.insert("start_date".into(), run_after);
                    }
                }
                if let Some(kwargs) = body.get_mut("next_kwargs") {
                    crate::serde_compat::to_base_serialization(kwargs);
                }
            }
            if older(V::V2025_11_05)
                && let Some(run) = dag_run(body)
            {
                run.remove("triggering_user_name");
            }
            if older(V::V2025_10_27)
                && let Some(run) = dag_run(body)
                && run.get("conf").is_none_or(Value::is_null)
            {
                run.insert("conf".into(), json!({}));
            }
            if older(V::V2025_08_10)
                && let Some(run) = dag_run(body)
            {
                run.remove("state");
            }
            // 2025-05-20 only narrows list values of `upstream_map_indexes`,
            // which is null by then.
        }
        Shape::DagRun | Shape::PreviousDagRun => {
            if let Some(run) = body.as_object_mut() {
                if older(V::V2026_06_30) {
                    run.remove("team_name");
                    run.remove("partition_date");
                }
                if older(V::V2026_04_06) && shape == Shape::DagRun {
                    run.remove("partition_key");
                    if run.get("start_date").is_none_or(Value::is_null) {
                        let run_after = run.get("run_after").cloned().unwrap_or(Value::Null);
                        run.insert("start_date".into(), run_after);
                    }
                }
            }
        }
        Shape::AssetEvents => {
            if older(V::V2026_04_06)
                && let Some(events) = body.get_mut("asset_events").and_then(Value::as_array_mut)
            {
                for event in events.iter_mut().filter_map(Value::as_object_mut) {
                    event.remove("partition_key");
                }
            }
        }
    }
}

/// `/execution/variables/{variable_key:.*}` -> `/variables/{variable_key}`.
pub fn route_key(pattern: &str) -> String {
    let pattern = pattern
        .strip_prefix(crate::app::BASE_PATH)
        .unwrap_or(pattern);
    let mut out = String::with_capacity(pattern.len());
    let mut depth = 0usize;
    let mut skipping = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    out.push(c);
                }
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    skipping = false;
                    out.push(c);
                }
            }
            ':' if depth == 1 => skipping = true,
            c if !skipping => out.push(c),
            _ => {}
        }
    }
    out
}

/// Middleware: resolves the request's version (422 if it is not a date), hides
/// the routes that do not exist at it, and shapes the answers of the routes
/// whose models changed. The version is left in the request's extensions for
/// handlers ([`ApiVersion`] is an extractor).
pub async fn negotiate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let header = req.headers().get(crate::app::API_VERSION_HEADER);
    let requested = ApiVersion::resolve(header.and_then(|v| v.to_str().ok()).or_else(|| {
        // A header that is not visible ASCII is no date either.
        header.map(|_| "\u{fffd}")
    }));
    let version = match requested {
        Ok(Requested::Version(version)) => version,
        Ok(Requested::BeforeFirst) => {
            let response = HttpResponse::NotFound().json(json!({"detail": "Not Found"}));
            return Ok(req.into_response(response).map_into_right_body());
        }
        Err(error) => return Ok(req.into_response(error.response()).map_into_right_body()),
    };
    // Routes and bodies are those of the newest version unless the client is older.
    let route = (version < ApiVersion::HEAD)
        .then(|| req.match_pattern().map(|pattern| route_key(&pattern)))
        .flatten();
    let method = req.method().clone();
    if let Some(route) = &route
        && !exists(version, method.as_str(), route)
        && !answered_as_another_route(version, method.as_str(), route)
    {
        let response = not_at(version, req.path(), method.as_str());
        return Ok(req.into_response(response).map_into_right_body());
    }
    req.extensions_mut().insert(version);
    let shape = route.as_deref().and_then(|route| shape_of(&method, route));
    let res = next.call(req).await?;
    let Some(shape) = shape.filter(|_| res.status().is_success()) else {
        return Ok(res.map_into_left_body());
    };
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let response = crate::api::ApiError::internal("response body could not be read");
            return Ok(ServiceResponse::new(
                req,
                actix_web::ResponseError::error_response(&response),
            )
            .map_into_right_body());
        }
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut value) => {
            downgrade(version, shape, &mut value);
            actix_web::web::Bytes::from(value.to_string())
        }
        Err(_) => bytes,
    };
    let mut res = head.set_body(body).map_into_boxed_body();
    res.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(ServiceResponse::new(req, res).map_into_right_body())
}

/// The answer for a route that does not exist at `version`: 405 when the path
/// has other methods at that version (as Cadwyn answers), else 404.
fn not_at(version: ApiVersion, path: &str, method: &str) -> HttpResponse {
    let allowed: Vec<&str> = crate::app::routes()
        .iter()
        .filter(|r| r.method != method)
        .filter(|r| actix_web::dev::ResourceDef::new(r.path).is_match(path))
        .filter(|r| exists(version, r.method, &route_key(r.path)))
        .map(|r| r.method)
        .collect();
    if allowed.is_empty() {
        return HttpResponse::NotFound().json(json!({"detail": "Not Found"}));
    }
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allowed.join(", ")))
        .json(json!({"detail": "Method Not Allowed"}))
}

impl actix_web::FromRequest for ApiVersion {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<ApiVersion, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(req
            .extensions()
            .get::<ApiVersion>()
            .copied()
            .unwrap_or(ApiVersion::HEAD)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_means_the_newest_version_not_after_it() {
        let resolve = |s| ApiVersion::resolve(Some(s)).unwrap();
        assert_eq!(
            ApiVersion::resolve(None).unwrap(),
            Requested::Version(ApiVersion::HEAD)
        );
        assert_eq!(
            resolve("2026-06-30"),
            Requested::Version(ApiVersion::V2026_06_30)
        );
        assert_eq!(
            resolve("2030-01-01"),
            Requested::Version(ApiVersion::V2026_06_30)
        );
        assert_eq!(
            resolve("2025-12-01"),
            Requested::Version(ApiVersion::V2025_11_05)
        );
        assert_eq!(
            resolve("2025-04-11"),
            Requested::Version(ApiVersion::V2025_04_11)
        );
        assert_eq!(resolve("2025-04-10"), Requested::BeforeFirst);
        for bad in ["yesterday", "2025-13-01", "2025-04-11T00:00:00", ""] {
            assert!(ApiVersion::resolve(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_come_and_go_with_versions() {
        use ApiVersion as V;
        assert!(exists(V::V2025_04_11, "GET", "/variables/{variable_key}"));
        assert!(!exists(V::V2026_04_06, "GET", "/variables/keys"));
        assert!(exists(V::V2026_06_30, "GET", "/variables/keys"));
        assert!(!exists(
            V::V2025_05_20,
            "GET",
            "/dag-runs/{dag_id}/previous"
        ));
        assert!(exists(V::V2025_08_10, "GET", "/dag-runs/{dag_id}/previous"));
        assert!(exists(V::V2025_11_05, "GET", "/dag-runs/{dag_id}/previous"));
        assert!(!exists(
            V::V2026_04_06,
            "GET",
            "/dag-runs/{dag_id}/previous"
        ));
        assert!(!exists(
            V::V2025_11_05,
            "GET",
            "/dag-runs/{dag_id}/{run_id}"
        ));
        assert!(exists(
            V::V2025_11_05,
            "POST",
            "/dag-runs/{dag_id}/{run_id}"
        ));
    }

    fn run_context() -> Value {
        json!({
            "dag_run": {
                "dag_id": "d", "run_id": "r", "run_after": "2026-01-01T00:00:00Z",
                "start_date": null, "state": "running", "conf": null,
                "triggering_user_name": "u", "partition_key": null, "partition_date": null,
                "note": null, "team_name": null,
                "consumed_asset_events": [{"asset": {}, "partition_key": "p"}]
            },
            "task_reschedule_count": 0, "max_tries": 0, "should_retry": false,
            "start_date": "2026-01-01T00:00:00Z"
        })
    }

    #[test]
    fn head_clients_get_the_body_unchanged() {
        let mut body = run_context();
        downgrade(ApiVersion::HEAD, Shape::RunContext, &mut body);
        assert_eq!(body, run_context());
    }

    #[test]
    fn older_clients_get_the_run_context_they_parse() {
        // Task SDK 1.2.x.
        let mut body = run_context();
        downgrade(ApiVersion::V2026_04_06, Shape::RunContext, &mut body);
        let run = &body["dag_run"];
        assert!(run.get("team_name").is_none() && run.get("partition_date").is_none());
        assert!(
            run["consumed_asset_events"][0]
                .get("partition_key")
                .is_none()
        );
        assert!(run.get("note").is_some() && body.get("upstream_map_indexes").is_none());

        // Task SDK 1.1.2-1.1.8.
        let mut body = run_context();
        downgrade(ApiVersion::V2025_11_05, Shape::RunContext, &mut body);
        let run = &body["dag_run"];
        assert!(run.get("note").is_none() && run.get("partition_key").is_none());
        assert_eq!(run["start_date"], "2026-01-01T00:00:00Z");
        assert_eq!(run["triggering_user_name"], "u");
        assert!(body.get("start_date").is_none());
        assert_eq!(body["upstream_map_indexes"], Value::Null);
        assert_eq!(run["conf"], Value::Null);

        // Task SDK 1.1.0.
        let mut body = run_context();
        downgrade(ApiVersion::V2025_09_23, Shape::RunContext, &mut body);
        assert!(body["dag_run"].get("triggering_user_name").is_none());
        assert_eq!(body["dag_run"]["conf"], json!({}));
        assert_eq!(body["dag_run"]["state"], "running");

        downgrade(ApiVersion::V2025_04_11, Shape::RunContext, &mut body);
        assert!(body["dag_run"].get("state").is_none());
    }

    #[test]
    fn dag_run_responses_lose_the_newer_fields() {
        let mut run = json!({"dag_id": "d", "team_name": null, "partition_date": null, "partition_key": "k", "start_date": null, "run_after": "x"});
        downgrade(ApiVersion::V2026_04_06, Shape::DagRun, &mut run);
        assert_eq!(
            run,
            json!({"dag_id": "d", "partition_key": "k", "start_date": null, "run_after": "x"})
        );
        let mut previous = Value::Null;
        downgrade(
            ApiVersion::V2025_04_11,
            Shape::PreviousDagRun,
            &mut previous,
        );
        assert_eq!(previous, Value::Null);
    }

    #[test]
    fn route_keys_drop_regexes_and_the_base_path() {
        assert_eq!(
            route_key("/execution/variables/{variable_key:.*}"),
            "/variables/{variable_key}"
        );
        assert_eq!(route_key(r"/execution/x/{id:\d{3}}/y"), "/x/{id}/y");
    }
}
