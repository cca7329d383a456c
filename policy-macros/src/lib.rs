//! # policy-macros
//!
//! Attribute macros that declare token policies on actix-web handlers:
//! [`macro@execution_route`] on a handler, [`macro@execution_router`] on a module of
//! handlers. The scopes are parsed, merged and checked **at compile time** with
//! policy-core's own grammar (the same code that runs at request time), and the
//! generated route enforces the merged policy before any extractor runs.
//!
//! ```
//! use actix_web::{App, HttpResponse};
//! use policy_macros::{execution_route, execution_router};
//!
//! #[execution_router(prefix = "/task-instances", scopes = ["ti:self"])]
//! mod task_instances {
//!     use actix_web::HttpResponse;
//!     use policy_macros::execution_route;
//!
//!     // Merged policy: execution and workload tokens, `sub` == {task_instance_id}.
//!     #[execution_route(patch, "/{task_instance_id}/run", scopes = ["token:execution", "token:workload"])]
//!     pub async fn run(token: policy_core::Token) -> HttpResponse {
//!         HttpResponse::Ok().body(token.sub().to_string())
//!     }
//! }
//!
//! let routes = task_instances::routes();
//! assert_eq!(routes[0].path, "/task-instances/{task_instance_id}/run");
//! assert_eq!(routes[0].policy.to_string(), "tokens: execution, workload; bindings: ti:self");
//! let _app = App::new().configure(task_instances::configure);
//! # let _ = HttpResponse::Ok();
//! ```

mod errors;
mod expand;
mod fallback;
mod parse;
mod route;
mod router;
mod validate;

use proc_macro::TokenStream;

/// Declares the token policy of one actix-web route.
///
/// # Syntax
///
/// Two spellings. Above actix-web's own route attribute, whose path it reads:
///
/// ```text
/// #[execution_route]                                  // authenticated: execution tokens
/// #[execution_route(scopes = ["<scope>", ...])]
/// #[get("/path")]  // or #[actix_web::patch(..)], #[route("/path", method = "GET")], ...
/// async fn handler(..) -> impl Responder { .. }
/// ```
///
/// or on its own, naming the method and the path:
///
/// ```text
/// #[execution_route(<method>, "/path")]
/// #[execution_route(<method>, "/path", scopes = ["<scope>", ...])]
/// async fn handler(..) -> impl Responder { .. }
/// ```
///
/// `<method>` is one of `get`, `post`, `put`, `patch`, `delete`, `head`,
/// `options`, `trace`. A `<scope>` is one of:
///
/// | scope | meaning |
/// |---|---|
/// | `"token:execution"`, `"token:workload"` | the route accepts that token type (none declared: `execution` only) |
/// | `"ti:self"` | token `sub` must equal the `{task_instance_id}` path parameter |
/// | `"ct:self"` | token `sub` must equal the `{connection_test_id}` path parameter |
/// | `"ti:running"` | the token's task instance exists and is running (asked of the app's `policy_core::Subjects`) |
/// | `"task:self"` | the path's `{dag_id}/{run_id}/{task_id}` and `?map_index=` (default `-1`) are the token's task instance (through `Subjects`) |
///
/// Inside an [`macro@execution_router`] the router's scopes are merged in (a
/// union) and its prefix is put in front of the path.
///
/// For API documents a route may also say what it answers and, when no
/// extractor in its signature says it, what it reads:
///
/// ```text
/// #[execution_route(put, "/path", body = Type, query = Type,
///                   responses = [201 => BodyType, 204, 404])]
/// ```
///
/// `RouteInfo::describe` then fills an `Operation` (policy-core's `openapi`
/// feature): first from each argument type that implements
/// `policy_core::openapi::RequestPart` (`web::Json<T>`, `web::Query<T>`, or
/// the application's own extractors), then from these arguments.
///
/// # What it generates
///
/// - Above an actix attribute: that attribute again, with an extra
///   `wrap = "::policy_core::Enforce::new(<policy>)"`, and
///   `impl ::policy_core::ExecutionRoute for <handler>` (actix-web turns the
///   function into a unit struct of that name).
/// - Combined spelling: the function unchanged (a unit test can call it), and
///   beside it a unit struct `<Handler>Route` (`get_variable` ->
///   `GetVariableRoute`, with the function's visibility) implementing actix-web's
///   `HttpServiceFactory` (register it with `App::service`) and
///   `::policy_core::ExecutionRoute`.
///
/// `ExecutionRoute::INFO` is a `const` `policy_core::RouteInfo`:
/// method, full path, handler name and merged `RoutePolicy`, computed by the
/// macro. The policy is enforced by a resource middleware, before any extractor
/// runs: a caller without a valid token gets 401/403, never a body error.
///
/// # Errors
///
/// Each error is reported on the literal at fault, all in one build: an unknown
/// token type (`"token:bogus"`), an unknown scope (`"ti:slef"`), a scope given
/// twice in one list, `ti:self` on a path without `{task_instance_id}` (or
/// `ct:self` without `{connection_test_id}`, or `task:self` without one of
/// `{dag_id}`, `{run_id}`, `{task_id}`, counting scopes inherited from
/// routers), a scope that is not a string literal, an unknown argument or
/// method, a missing method or path, a malformed path, or `#[execution_route]`
/// placed below the actix attribute (it must come first, to see it).
///
/// ```compile_fail
/// use policy_macros::execution_route;
///
/// // error: unknown scope `ti:slef`; expected `token:execution`, `token:workload`, `ti:self`, `ct:self`, `ti:running` or `task:self`
/// #[execution_route(get, "/{task_instance_id}", scopes = ["ti:slef"])]
/// async fn typo() -> &'static str {
///     "the subject check would be silently off"
/// }
/// ```
///
/// # Examples
///
/// ```
/// use actix_web::{App, HttpResponse, get};
/// use policy_core::ExecutionRoute;
/// use policy_macros::execution_route;
///
/// // Above actix-web's attribute.
/// #[execution_route(scopes = ["ti:self"])]
/// #[get("/task-instances/{task_instance_id}")]
/// async fn show(token: policy_core::Token) -> HttpResponse {
///     HttpResponse::Ok().body(token.sub().to_string())
/// }
///
/// // Combined: `heartbeat` stays a plain `async fn`; `HeartbeatRoute` is the service.
/// #[execution_route(put, "/task-instances/{task_instance_id}/heartbeat", scopes = ["ti:self"])]
/// async fn heartbeat() -> HttpResponse {
///     HttpResponse::NoContent().finish()
/// }
///
/// assert_eq!(show::INFO.method, "GET");
/// assert_eq!(HeartbeatRoute::INFO.path, "/task-instances/{task_instance_id}/heartbeat");
/// assert_eq!(HeartbeatRoute::INFO.policy.to_string(), "tokens: execution; bindings: ti:self");
/// let _app = App::new().service(show).service(HeartbeatRoute);
/// ```
#[proc_macro_attribute]
pub fn execution_route(args: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(args.into(), item.into()).into()
}

/// Groups routes on an inline module: a shared path prefix and shared scopes,
/// merged into every route at compile time; generates the functions that mount
/// and list them.
///
/// # Syntax
///
/// ```text
/// #[execution_router]
/// #[execution_router(prefix = "/path")]
/// #[execution_router(scopes = ["<scope>", ...])]
/// #[execution_router(prefix = "/path", scopes = ["<scope>", ...])]
/// mod name {
///     #[execution_route(..)] async fn ..
///     #[execution_router(..)] mod nested { .. }
/// }
/// ```
///
/// Scopes are those of [`macro@execution_route`]. Every `#[execution_route]` and
/// nested `#[execution_router]` directly inside the module inherits the
/// router's scopes (a union: repeating one on a route is fine) and prefix, so
/// `ti:self` on a router requires `{task_instance_id}` in the full path of each
/// of its routes. Routes in nested plain modules are not collected.
///
/// Routers in other modules (other files) compose too, within one crate:
///
/// ```text
/// // api/mod.rs: the parent lists its routers
/// #[execution_router(prefix = "/execution", routers = [variables::routes, xcoms::routes])]
/// pub mod execution {}
///
/// // api/variables.rs: each names its parent
/// #[execution_router(parent = super::execution, prefix = "/variables")]
/// pub mod routes { #[execution_route(get, "/{variable_key}")] async fn get(..) { .. } }
/// ```
///
/// The parent's macro hands its scopes and prefix to the child at compile
/// time (through a `macro_rules!` it emits beside its module), so the child's
/// routes are merged and checked exactly as if nested inline, with errors on
/// the literals at fault. A router listed in `routers` must name that router
/// as its `parent`, or the build fails.
///
/// # What it generates
///
/// Inside the module:
///
/// - `pub fn configure(cfg: &mut actix_web::web::ServiceConfig)`: mounts every
///   route (under `web::scope(prefix)` when there is a prefix) and every nested
///   router's `configure`; use `App::new().configure(name::configure)`.
/// - `pub fn routes() -> Vec<policy_core::RouteInfo>`: method, full path,
///   handler, merged policy and doc comment of every route, nested routers
///   (and those of `routers`) included.
/// - With `routers = [...]`: a hidden marker type and macro through which the
///   routers that name this one as `parent` receive its scopes and prefix.
///
/// # Errors
///
/// As for [`macro@execution_route`], on the router's own literals; plus a prefix
/// that is malformed or ends with `/`, a module kept in another file (give it
/// its own inline router module with `parent` instead), `parent` on a router
/// nested inline, and a router in `routers` that names another parent.
///
/// ```compile_fail
/// use policy_macros::execution_router;
///
/// // error: unknown scope `ti_self`; expected `token:execution`, `token:workload`, `ti:self` or `ct:self`
/// #[execution_router(prefix = "/task-instances", scopes = ["ti_self"])]
/// mod task_instances {}
/// ```
///
/// # Examples
///
/// Airflow's Execution API layout: an authenticated router holding a `ti:self`
/// router, where only `/run` opts into workload tokens.
///
/// ```
/// use actix_web::App;
/// use policy_macros::execution_router;
///
/// #[execution_router(prefix = "/execution")]
/// mod api {
///     use policy_macros::{execution_route, execution_router};
///
///     #[execution_router(prefix = "/task-instances", scopes = ["ti:self"])]
///     pub mod task_instances {
///         use actix_web::HttpResponse;
///         use policy_macros::execution_route;
///
///         #[execution_route(patch, "/{task_instance_id}/state")]
///         pub async fn state() -> HttpResponse {
///             HttpResponse::NoContent().finish()
///         }
///
///         #[execution_route(patch, "/{task_instance_id}/run", scopes = ["token:execution", "token:workload"])]
///         pub async fn run() -> HttpResponse {
///             HttpResponse::Ok().finish()
///         }
///     }
///
///     #[execution_route(get, "/variables/{variable_key}")]
///     pub async fn get_variable() -> &'static str {
///         "{}"
///     }
/// }
///
/// let listed: Vec<String> = api::routes()
///     .iter()
///     .map(|r| format!("{} {} [{}]", r.method, r.path, r.policy))
///     .collect();
/// assert_eq!(listed, [
///     "GET /execution/variables/{variable_key} [tokens: execution]",
///     "PATCH /execution/task-instances/{task_instance_id}/state [tokens: execution; bindings: ti:self]",
///     "PATCH /execution/task-instances/{task_instance_id}/run [tokens: execution, workload; bindings: ti:self]",
/// ]);
/// let _app = App::new().configure(api::configure);
/// ```
#[proc_macro_attribute]
pub fn execution_router(args: TokenStream, item: TokenStream) -> TokenStream {
    router::expand(args.into(), item.into()).into()
}
