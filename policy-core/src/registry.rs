//! The route registry: what each generated route declares, for listings,
//! OpenAPI documents and tests.

use crate::scope::RoutePolicy;

/// One route's method, full path and policy, as `#[execution_route]` wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteInfo {
    /// The HTTP method in upper case, e.g. `"PATCH"`.
    pub method: &'static str,
    /// The full path, router prefixes included.
    pub path: &'static str,
    /// The handler function's name.
    pub handler: &'static str,
    /// The merged policy enforced on the route.
    pub policy: RoutePolicy,
    /// The handler's doc comment, lines joined with `\n` (empty if none): its
    /// first line is the route's summary in listings and OpenAPI documents.
    pub doc: &'static str,
}

impl RouteInfo {
    /// The first line of [`RouteInfo::doc`], or the handler's name when the
    /// handler has no doc comment.
    pub fn summary(&self) -> &'static str {
        match self
            .doc
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
        {
            Some(line) => line,
            None => self.handler,
        }
    }
}

/// Implemented by the macros for every route service they generate.
pub trait ExecutionRoute {
    /// The route's description.
    const INFO: RouteInfo;
}
