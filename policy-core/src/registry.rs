//! The route registry: what each generated route declares, for listings,
//! OpenAPI documents and tests.

use crate::openapi::Describe;
use crate::scope::RoutePolicy;

/// One route's method, full path and policy, as `#[execution_route]` wrote it.
///
/// Equality and hashing leave out [`RouteInfo::describe`]: function addresses
/// are not a meaningful identity, and the rest names the route.
#[derive(Clone, Copy, Debug)]
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
    /// Fills an [`Operation`](crate::Operation) with the route's request body,
    /// query parameters and declared responses, from the handler's extractors
    /// and the attribute's `body`, `query` and `responses`. `None` without
    /// policy-core's `openapi` feature.
    pub describe: Option<Describe>,
}

impl RouteInfo {
    fn key(
        &self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        RoutePolicy,
        &'static str,
    ) {
        (self.method, self.path, self.handler, self.policy, self.doc)
    }

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

impl PartialEq for RouteInfo {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for RouteInfo {}

impl std::hash::Hash for RouteInfo {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}
