//! The bindings that need the store: `ti:running` and `task:self`.
//!
//! A token says who it is for (`sub`, a task instance id); only the
//! application's store knows what that task instance is and whether it still
//! runs. [`Subjects`], in the app data, asks a [`SubjectStore`] once per
//! request (the answer is kept in the request extensions, so the route guard
//! and [`Reissue`](crate::Reissue) share it) and keeps a live answer for a
//! short time across requests, keyed by subject, so a running task that calls
//! many routes costs one lookup per `ttl`; a task that stops running is
//! refused at most `ttl` later than its store says. An application that has
//! just made a task instance live (started it) can say so
//! ([`Subjects::remember`]), and the task's next calls need no lookup.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpMessage, HttpRequest, web};
use uuid::Uuid;

use crate::claims::Claims;
use crate::error::AuthError;
use crate::scope::{Binding, RoutePolicy};

/// What the store knows about a token's subject: its task instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The DAG id.
    pub dag_id: String,
    /// The DAG run id.
    pub run_id: String,
    /// The task id.
    pub task_id: String,
    /// The map index (`-1` when not mapped).
    pub map_index: i64,
    /// Its stored state (`running`, `success`, ...), if any.
    pub state: Option<String>,
    /// Whether it may still act: it runs, or stopped running so recently that
    /// its process may still be finishing (the store decides how recently).
    pub live: bool,
}

/// Why the store could not answer. The request is refused with 503 and
/// `Retry-After` (the Task SDK retries 5xx answers); the cause is logged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SubjectError(pub String);

/// The future a [`SubjectStore`] returns: `None` when there is no such task
/// instance.
pub type SubjectFuture = Pin<Box<dyn Future<Output = Result<Option<Subject>, SubjectError>>>>;

/// Looks up a token's subject in the application's store.
pub trait SubjectStore: Send + Sync + 'static {
    /// The task instance `sub`, or `None` if there is none.
    fn resolve(&self, sub: Uuid) -> SubjectFuture;
}

/// At most this many subjects are remembered across requests.
const CAPACITY: usize = 10_000;

/// How the store bindings are enforced: the app data that `ti:running` and
/// `task:self` read.
///
/// - [`Subjects::strict`]: each binding is checked against the store's
///   record of the subject.
/// - [`Subjects::permissive`]: they are not checked (any valid token of an
///   allowed type passes, as Airflow 3.3.2 lets it).
///
/// Without either in the app data, a route with a store binding answers 500
/// (it fails closed).
///
/// ```
/// use std::time::Duration;
/// use policy_core::{Subject, SubjectFuture, SubjectStore, Subjects};
///
/// struct OneTask;
/// impl SubjectStore for OneTask {
///     fn resolve(&self, _sub: uuid::Uuid) -> SubjectFuture {
///         Box::pin(async {
///             Ok(Some(Subject {
///                 dag_id: "d".into(),
///                 run_id: "r".into(),
///                 task_id: "t".into(),
///                 map_index: -1,
///                 state: Some("running".into()),
///                 live: true,
///             }))
///         })
///     }
/// }
/// let subjects = Subjects::strict(OneTask, Duration::from_secs(2));
/// assert!(subjects.is_strict());
/// let app = actix_web::App::new().app_data(subjects);
/// ```
#[derive(Clone)]
pub struct Subjects(Option<Arc<Resolver>>);

struct Resolver {
    store: Box<dyn SubjectStore>,
    ttl: Duration,
    cache: SubjectMemory,
}

/// The cross-request memory of [`Subjects`]: live answers by subject, each
/// kept for the `ttl` of the `Subjects` that found it. Clones share it, so
/// the `Subjects` of several actix-web workers (each asking the store through
/// its own connections) can share one ([`Subjects::sharing`]): a task whose
/// calls land on several workers is then looked up once, not once per worker.
#[derive(Clone, Default)]
pub struct SubjectMemory(Arc<Mutex<HashMap<Uuid, Remembered>>>);

impl std::fmt::Debug for SubjectMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectMemory").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Remembered {
    subject: Option<Arc<Subject>>,
    at: Instant,
}

impl std::fmt::Debug for Subjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(r) => f
                .debug_struct("Subjects::Strict")
                .field("ttl", &r.ttl)
                .finish_non_exhaustive(),
            None => f.write_str("Subjects::Permissive"),
        }
    }
}

impl Subjects {
    /// Checks the store bindings against `store`; an answer is reused for
    /// `ttl` by every request of the same subject (`ZERO`: asked on every
    /// request).
    pub fn strict(store: impl SubjectStore, ttl: Duration) -> Subjects {
        Subjects::sharing(store, ttl, SubjectMemory::default())
    }

    /// As [`Subjects::strict`], remembering answers in `memory`, which other
    /// `Subjects` may share.
    pub fn sharing(store: impl SubjectStore, ttl: Duration, memory: SubjectMemory) -> Subjects {
        Subjects(Some(Arc::new(Resolver {
            store: Box::new(store),
            ttl,
            cache: memory,
        })))
    }

    /// Does not check the store bindings.
    pub fn permissive() -> Subjects {
        Subjects(None)
    }

    /// Whether the store bindings are checked.
    pub fn is_strict(&self) -> bool {
        self.0.is_some()
    }

    /// The store's record of `sub`, from the cross-request memory when a live
    /// answer younger than `ttl` is there. `Ok(None)`: no such task instance
    /// (or permissive mode).
    pub async fn resolve(&self, sub: Uuid) -> Result<Option<Arc<Subject>>, SubjectError> {
        let Some(resolver) = &self.0 else {
            return Ok(None);
        };
        let now = Instant::now();
        if let Some(hit) = resolver.lock().get(&sub)
            && now.duration_since(hit.at) < resolver.ttl
        {
            return Ok(hit.subject.clone());
        }
        let subject = resolver.store.resolve(sub).await?.map(Arc::new);
        if let Some(live) = &subject {
            resolver.remember(sub, live, now);
        }
        Ok(subject)
    }

    /// Tells the cross-request memory what the application itself just made
    /// of `sub` in its store, as a lookup at this instant would have found it
    /// (a handler that started the task instance knows it is live): the
    /// requests of the next `ttl` are then answered without asking the store.
    /// Only a live subject is kept; permissive `Subjects` keep nothing.
    pub fn remember(&self, sub: Uuid, subject: Subject) {
        if let Some(resolver) = &self.0 {
            resolver.remember(sub, &Arc::new(subject), Instant::now());
        }
    }
}

impl Resolver {
    /// Keeps `subject` for `ttl` from `now`, if it is live. Only a live subject
    /// is remembered: a task instance that is not live yet (queued) becomes live
    /// through `/run`, and its next request must see that at once.
    fn remember(&self, sub: Uuid, subject: &Arc<Subject>, now: Instant) {
        if self.ttl.is_zero() || !subject.live {
            return;
        }
        let mut cache = self.lock();
        if cache.len() >= CAPACITY && !cache.contains_key(&sub) {
            cache.retain(|_, r| now.duration_since(r.at) < self.ttl);
            if cache.len() >= CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            sub,
            Remembered {
                subject: Some(subject.clone()),
                at: now,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Remembered>> {
        self.cache.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The subject resolved for this request, kept in the request extensions.
#[derive(Clone)]
struct Resolved(Option<Arc<Subject>>);

fn subjects(req: &HttpRequest) -> Option<Subjects> {
    req.app_data::<Subjects>().cloned().or_else(|| {
        req.app_data::<web::Data<Subjects>>()
            .map(|d| d.get_ref().clone())
    })
}

/// The store's record of this request's subject, asked at most once per
/// request. `Ok(None)` with no such task instance.
async fn request_subject(
    req: &HttpRequest,
    subjects: &Subjects,
    sub: Uuid,
) -> Result<Option<Arc<Subject>>, AuthError> {
    if let Some(resolved) = req.extensions().get::<Resolved>() {
        return Ok(resolved.0.clone());
    }
    let subject = subjects.resolve(sub).await.map_err(|e| {
        tracing::warn!(error = %e, %sub, "cannot look up the token's task instance");
        AuthError::SubjectUnavailable
    })?;
    req.extensions_mut().insert(Resolved(subject.clone()));
    Ok(subject)
}

/// The store bindings of `policy` (`ti:running`, `task:self`), checked for
/// this request's `claims`. Permissive [`Subjects`] pass them; no `Subjects`
/// at all is [`AuthError::NotConfigured`].
pub(crate) async fn check_store_bindings(
    req: &HttpRequest,
    policy: &RoutePolicy,
    claims: &Claims,
) -> Result<(), AuthError> {
    let subjects = subjects(req).ok_or(AuthError::NotConfigured)?;
    if !subjects.is_strict() {
        return Ok(());
    }
    let subject = request_subject(req, &subjects, claims.sub).await?;
    for binding in policy.bindings().iter().filter(|b| b.needs_store()) {
        let holds = subject.as_deref().is_some_and(|s| match binding {
            Binding::Running => s.live,
            Binding::OwnTask => names(req, s),
            Binding::TaskInstance | Binding::ConnectionTest => true,
        });
        if !holds {
            return Err(AuthError::SubjectMismatch(binding));
        }
    }
    Ok(())
}

/// Whether a [`Reissue`](crate::Reissue) may give this request's token a
/// successor: always when permissive (or unconfigured), only for a live
/// subject when strict. A store failure says no (the token still works until
/// it expires; the next request asks again).
pub(crate) async fn may_reissue(req: &HttpRequest, claims: &Claims) -> bool {
    let Some(subjects) = subjects(req).filter(Subjects::is_strict) else {
        return true;
    };
    match request_subject(req, &subjects, claims.sub).await {
        Ok(subject) => subject.is_some_and(|s| s.live),
        Err(_) => false,
    }
}

/// Whether the request's `{dag_id}/{run_id}/{task_id}` and `map_index` query
/// parameter (every occurrence; `-1` when absent) name `subject`. A
/// `map_index` that is not an integer is left to the handler, which refuses
/// the request (422) without writing anything.
fn names(req: &HttpRequest, subject: &Subject) -> bool {
    let info = req.match_info();
    let same = |param: &str, want: &str| info.get(param).is_some_and(|v| decoded(v) == want);
    if !(same("dag_id", &subject.dag_id)
        && same("run_id", &subject.run_id)
        && same("task_id", &subject.task_id))
    {
        return false;
    }
    let mut map_indexes = req.query_string().split('&').filter_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (query_decoded(key) == "map_index").then(|| query_decoded(value))
    });
    let Some(first) = map_indexes.next() else {
        return subject.map_index == -1;
    };
    std::iter::once(first).chain(map_indexes).all(|v| {
        v.trim()
            .parse::<i64>()
            .map_or(true, |i| i == subject.map_index)
    })
}

/// A matched path segment fully percent-decoded, as `web::Path` gives it to
/// the handler (actix-web leaves `%25`, `%2F` and `%2B` encoded in the match).
fn decoded(segment: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy()
}

/// A query component decoded (`+` is a space).
fn query_decoded(component: &str) -> String {
    let spaced = component.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use actix_web::test as atest;
    use actix_web::{App, HttpResponse, web};

    use super::*;
    use crate::scope::{Bindings, TokenType, TokenTypes};
    use crate::testutil::{TI, generator, hs512, validator};
    use crate::{Enforce, REFRESHED_TOKEN_HEADER, Reissue};

    const RUNNING: RoutePolicy = RoutePolicy::new(TokenTypes::NONE, Bindings::RUNNING);
    const XCOM_WRITE: RoutePolicy =
        RoutePolicy::new(TokenTypes::NONE, Bindings::RUNNING.with(Binding::OwnTask));

    /// One task instance, `d/r/t` map index 2, whose liveness the test sets; counts lookups.
    struct Fake {
        live: bool,
        exists: bool,
        lookups: Arc<AtomicUsize>,
    }

    impl SubjectStore for Fake {
        fn resolve(&self, sub: Uuid) -> SubjectFuture {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let found = (self.exists && sub == TI).then(|| Subject {
                dag_id: "d/ag".into(),
                run_id: "r".into(),
                task_id: "t".into(),
                map_index: 2,
                state: Some(if self.live { "running" } else { "success" }.into()),
                live: self.live,
            });
            Box::pin(async move { Ok(found) })
        }
    }

    struct Failing;
    impl SubjectStore for Failing {
        fn resolve(&self, _sub: Uuid) -> SubjectFuture {
            Box::pin(async { Err(SubjectError("database gone".into())) })
        }
    }

    fn fake(live: bool, exists: bool) -> (Subjects, Arc<AtomicUsize>) {
        let lookups = Arc::new(AtomicUsize::new(0));
        let store = Fake {
            live,
            exists,
            lookups: Arc::clone(&lookups),
        };
        (Subjects::strict(store, Duration::from_secs(60)), lookups)
    }

    async fn call(
        subjects: Option<Subjects>,
        policy: RoutePolicy,
        uri: &str,
        ttl: Duration,
    ) -> (u16, String, bool) {
        let key = hs512();
        let mut app = App::new().app_data(validator(&key));
        if let Some(subjects) = subjects {
            app = app.app_data(subjects);
        }
        let app = atest::init_service(
            app.wrap(Reissue::new(generator(&key))).service(
                web::resource("/xcoms/{dag_id}/{run_id}/{task_id}/{key}")
                    .wrap(Enforce::new(policy))
                    .to(|| async { HttpResponse::Ok().finish() }),
            ),
        )
        .await;
        let token = generator(&key)
            .generate(TI, TokenType::Execution, ttl)
            .unwrap();
        let req = atest::TestRequest::post()
            .uri(uri)
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request();
        let res = atest::call_service(&app, req).await;
        let status = res.status().as_u16();
        let refreshed = res.headers().contains_key(REFRESHED_TOKEN_HEADER);
        let body = String::from_utf8(atest::read_body(res).await.to_vec()).unwrap();
        (status, body, refreshed)
    }

    const OWN: &str = "/xcoms/d%2Fag/r/t/k?map_index=2";
    const LONG: Duration = Duration::from_secs(600);
    const EXPIRING: Duration = Duration::from_secs(20);

    #[actix_web::test]
    async fn a_live_subject_passes_both_bindings_and_is_looked_up_once() {
        let (subjects, lookups) = fake(true, true);
        let (status, body, _) = call(Some(subjects.clone()), XCOM_WRITE, OWN, LONG).await;
        assert_eq!(status, 200, "{body}");
        // Two bindings and a second request within the ttl: still one lookup.
        let (status, ..) = call(Some(subjects), RUNNING, OWN, LONG).await;
        assert_eq!(status, 200);
        assert_eq!(lookups.load(Ordering::SeqCst), 1);
    }

    #[actix_web::test]
    async fn a_remembered_subject_is_not_looked_up_but_a_finished_one_is_not_kept() {
        // The store says finished long ago (not live); the app says it just started it.
        let (subjects, lookups) = fake(false, true);
        let started = Subject {
            dag_id: "d/ag".into(),
            run_id: "r".into(),
            task_id: "t".into(),
            map_index: 2,
            state: Some("running".into()),
            live: true,
        };
        subjects.remember(TI, started.clone());
        let (status, body, _) = call(Some(subjects.clone()), XCOM_WRITE, OWN, LONG).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(lookups.load(Ordering::SeqCst), 0);
        // Another task's map index is still refused by the remembered subject.
        let (status, ..) = call(
            Some(subjects),
            XCOM_WRITE,
            "/xcoms/d%2Fag/r/t/k?map_index=3",
            LONG,
        )
        .await;
        assert_eq!(status, 403);
        // A subject that is not live is not kept: the store is asked (and refuses).
        let (subjects, lookups) = fake(false, true);
        subjects.remember(
            TI,
            Subject {
                live: false,
                ..started.clone()
            },
        );
        let (status, ..) = call(Some(subjects), RUNNING, OWN, LONG).await;
        assert_eq!(status, 403);
        assert_eq!(lookups.load(Ordering::SeqCst), 1);
        // Permissive subjects keep nothing (and check nothing).
        Subjects::permissive().remember(TI, started);
    }

    #[actix_web::test]
    async fn subjects_sharing_a_memory_look_a_subject_up_once() {
        let lookups = Arc::new(AtomicUsize::new(0));
        let memory = SubjectMemory::default();
        let worker = || {
            let store = Fake {
                live: true,
                exists: true,
                lookups: Arc::clone(&lookups),
            };
            Subjects::sharing(store, Duration::from_secs(60), memory.clone())
        };
        let (first, second) = (worker(), worker());
        assert_eq!(call(Some(first), XCOM_WRITE, OWN, LONG).await.0, 200);
        assert_eq!(call(Some(second), XCOM_WRITE, OWN, LONG).await.0, 200);
        assert_eq!(lookups.load(Ordering::SeqCst), 1);
        // Each `strict` has a memory of its own.
        let (alone, alone_lookups) = fake(true, true);
        assert_eq!(call(Some(alone), XCOM_WRITE, OWN, LONG).await.0, 200);
        assert_eq!(alone_lookups.load(Ordering::SeqCst), 1);
    }

    #[actix_web::test]
    async fn another_task_or_map_index_is_refused() {
        for uri in [
            "/xcoms/d%2Fag/r/t/k",
            "/xcoms/d%2Fag/r/t/k?map_index=1",
            "/xcoms/d%2Fag/r/t/k?map_index=2&map_index=3",
            "/xcoms/d%2Fag/r/other/k?map_index=2",
            "/xcoms/dag/r/t/k?map_index=2",
            "/xcoms/d%2Fag/r2/t/k?map_index=2",
        ] {
            let (subjects, _) = fake(true, true);
            let (status, body, _) = call(Some(subjects), XCOM_WRITE, uri, LONG).await;
            assert_eq!(status, 403, "{uri}: {body}");
            assert_eq!(
                body, r#"{"detail":"Token's task instance is not the one named in the request"}"#,
                "{uri}"
            );
        }
        // An encoded space and `+` in the query name the same map index.
        let (subjects, _) = fake(true, true);
        let (status, body, _) = call(
            Some(subjects),
            XCOM_WRITE,
            "/xcoms/d%2Fag/r/t/k?map%5Findex=+2",
            LONG,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    #[actix_web::test]
    async fn a_finished_or_unknown_subject_is_refused_and_not_remembered() {
        for (live, exists) in [(false, true), (true, false)] {
            let (subjects, lookups) = fake(live, exists);
            for _ in 0..2 {
                let (status, body, refreshed) =
                    call(Some(subjects.clone()), RUNNING, OWN, EXPIRING).await;
                assert_eq!(status, 403, "{body}");
                assert_eq!(body, r#"{"detail":"Token's task instance is not running"}"#);
                assert!(!refreshed, "no successor for a token that is refused");
            }
            assert_eq!(lookups.load(Ordering::SeqCst), 2, "not remembered");
        }
    }

    #[actix_web::test]
    async fn reissue_only_for_a_live_subject_when_strict() {
        let (live, _) = fake(true, true);
        assert!(
            call(Some(live), RoutePolicy::AUTHENTICATED, OWN, EXPIRING)
                .await
                .2
        );
        let (finished, lookups) = fake(false, true);
        let (status, _, refreshed) =
            call(Some(finished), RoutePolicy::AUTHENTICATED, OWN, EXPIRING).await;
        assert_eq!(
            status, 200,
            "a route without ownership scopes still answers"
        );
        assert!(!refreshed);
        assert_eq!(lookups.load(Ordering::SeqCst), 1);
        // Not near expiry: no lookup at all.
        let (finished, lookups) = fake(false, true);
        call(Some(finished), RoutePolicy::AUTHENTICATED, OWN, LONG).await;
        assert_eq!(lookups.load(Ordering::SeqCst), 0);
        // Permissive, or no Subjects: reissued as before.
        assert!(
            call(
                Some(Subjects::permissive()),
                RoutePolicy::AUTHENTICATED,
                OWN,
                EXPIRING
            )
            .await
            .2
        );
        assert!(
            call(None, RoutePolicy::AUTHENTICATED, OWN, EXPIRING)
                .await
                .2
        );
    }

    #[actix_web::test]
    async fn permissive_passes_unconfigured_fails_closed_and_store_errors_are_503() {
        let (status, ..) = call(
            Some(Subjects::permissive()),
            XCOM_WRITE,
            "/xcoms/a/b/c/k",
            LONG,
        )
        .await;
        assert_eq!(status, 200);
        let (status, body, _) = call(None, XCOM_WRITE, OWN, LONG).await;
        assert_eq!(status, 500, "{body}");
        let failing = Subjects::strict(Failing, Duration::from_secs(1));
        let (status, body, _) = call(Some(failing), RUNNING, OWN, LONG).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body,
            r#"{"detail":"Token's task instance could not be looked up; retry"}"#
        );
    }
}
