//! The scope language: token types, subject bindings and the route policy they
//! merge into.
//!
//! This module is pure (no dependencies, no feature flags) because the very same
//! parser runs at compile time inside `policy-macros` and at run time here.
//! Its items are re-exported at the crate root; [`SCOPES`] is the vocabulary.

use std::fmt;
use std::str::FromStr;

/// The kind of token a caller presents, carried in the JWT `scope` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenType {
    /// Short-lived token accepted by every route (the default when `scope` is absent).
    Execution,
    /// Long-lived token that survives a queue wait; accepted only where a route opts in.
    Workload,
}

impl TokenType {
    /// Every token type, in declaration order.
    pub const ALL: [TokenType; 2] = [TokenType::Execution, TokenType::Workload];

    /// The name used in the `scope` claim and after `token:` in a scope.
    pub const fn as_str(self) -> &'static str {
        let (_, name) = self.scope().as_bytes().split_at(TOKEN_PREFIX.len());
        match std::str::from_utf8(name) {
            Ok(name) => name,
            Err(_) => "",
        }
    }

    /// The scope that opts a route into this token type, e.g. `token:workload`.
    pub const fn scope(self) -> &'static str {
        Scope::Token(self).as_str()
    }

    /// Parses a claim value (`execution`, `workload`). Exact, case-sensitive.
    pub fn parse(name: &str) -> Option<TokenType> {
        TokenType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    const fn bit(self) -> u8 {
        match self {
            TokenType::Execution => 1,
            TokenType::Workload => 2,
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of token types (a bit set usable in `const` context).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenTypes(u8);

impl TokenTypes {
    /// The empty set.
    pub const NONE: TokenTypes = TokenTypes(0);
    /// `{execution}`.
    pub const EXECUTION: TokenTypes = TokenTypes(TokenType::Execution.bit());
    /// `{workload}`.
    pub const WORKLOAD: TokenTypes = TokenTypes(TokenType::Workload.bit());

    /// The set holding just `token_type`.
    pub const fn only(token_type: TokenType) -> TokenTypes {
        TokenTypes(token_type.bit())
    }

    /// This set plus `token_type`.
    pub const fn with(self, token_type: TokenType) -> TokenTypes {
        TokenTypes(self.0 | token_type.bit())
    }

    /// The union of two sets.
    pub const fn union(self, other: TokenTypes) -> TokenTypes {
        TokenTypes(self.0 | other.0)
    }

    /// Whether `token_type` is in the set.
    pub const fn contains(self, token_type: TokenType) -> bool {
        self.0 & token_type.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = TokenType> {
        TokenType::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

impl fmt::Display for TokenTypes {
    /// `execution, workload`, the form used in the 403 `detail` message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(t.as_str())?;
        }
        Ok(())
    }
}

/// A subject binding: what the token's `sub` must be for the route.
///
/// `ti:self` and `ct:self` compare `sub` with a path parameter. `ti:running`
/// and `task:self` need what the store knows about the subject (its task
/// instance): they are checked through the app's
/// [`Subjects`](crate::Subjects), resolved once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Binding {
    /// `ti:self`: `sub` equals `{task_instance_id}`.
    TaskInstance,
    /// `ct:self`: `sub` equals `{connection_test_id}`.
    ConnectionTest,
    /// `ti:running`: the token's task instance exists and is running (or
    /// left running within the grace its store allows).
    Running,
    /// `task:self`: the path's `{dag_id}`, `{run_id}`, `{task_id}` and the
    /// `map_index` query parameter (default `-1`) are the token's task instance.
    OwnTask,
}

impl Binding {
    /// Every binding, in declaration order.
    pub const ALL: [Binding; 4] = [
        Binding::TaskInstance,
        Binding::ConnectionTest,
        Binding::Running,
        Binding::OwnTask,
    ];

    /// The scope spelling, e.g. `ti:self`.
    pub const fn scope(self) -> &'static str {
        Scope::Bind(self).as_str()
    }

    /// This binding's row of [`SCOPES`].
    const fn binding_spec(self) -> BindingSpec {
        match Scope::Bind(self).spec().binding {
            Some(b) => b,
            // Every binding has a row with a `BindingSpec`: `every_scope_has_one_row`.
            None => BindingSpec {
                path_params: &[],
                needs_store: false,
                mismatch_detail: "",
            },
        }
    }

    /// The path parameters the binding reads; a route path must have them all.
    pub const fn path_params(self) -> &'static [&'static str] {
        self.binding_spec().path_params
    }

    /// For a binding that compares `sub` with one path parameter (`ti:self`,
    /// `ct:self`): that parameter; `""` for the others.
    pub const fn path_param(self) -> &'static str {
        match self.binding_spec() {
            BindingSpec {
                path_params: [param],
                needs_store: false,
                ..
            } => param,
            _ => "",
        }
    }

    /// Whether checking it needs the store's record of the subject.
    pub const fn needs_store(self) -> bool {
        self.binding_spec().needs_store
    }

    /// The 403 `detail` when the subject does not match.
    pub const fn mismatch_detail(self) -> &'static str {
        self.binding_spec().mismatch_detail
    }

    const fn bit(self) -> u8 {
        match self {
            Binding::TaskInstance => 1,
            Binding::ConnectionTest => 2,
            Binding::Running => 4,
            Binding::OwnTask => 8,
        }
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scope())
    }
}

/// A set of subject bindings (a bit set usable in `const` context).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bindings(u8);

impl Bindings {
    /// No binding.
    pub const NONE: Bindings = Bindings(0);
    /// `{ti:self}`.
    pub const TASK_INSTANCE: Bindings = Bindings(Binding::TaskInstance.bit());
    /// `{ct:self}`.
    pub const CONNECTION_TEST: Bindings = Bindings(Binding::ConnectionTest.bit());
    /// `{ti:running}`.
    pub const RUNNING: Bindings = Bindings(Binding::Running.bit());
    /// `{task:self}`.
    pub const OWN_TASK: Bindings = Bindings(Binding::OwnTask.bit());

    /// This set plus `binding`.
    pub const fn with(self, binding: Binding) -> Bindings {
        Bindings(self.0 | binding.bit())
    }

    /// The union of two sets.
    pub const fn union(self, other: Bindings) -> Bindings {
        Bindings(self.0 | other.0)
    }

    /// Whether `binding` is in the set.
    pub const fn contains(self, binding: Binding) -> bool {
        self.0 & binding.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a member needs the store's record of the subject.
    pub const fn need_store(self) -> bool {
        self.0 & (Binding::Running.bit() | Binding::OwnTask.bit()) != 0
    }

    /// The members, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Binding> {
        Binding::ALL.into_iter().filter(move |b| self.contains(*b))
    }
}

/// One parsed scope string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `token:<type>`: the route accepts this token type.
    Token(TokenType),
    /// `ti:self`, `ct:self`: a subject binding.
    Bind(Binding),
}

/// The prefix of the scopes that name a token type.
const TOKEN_PREFIX: &str = "token:";

/// One row of [`SCOPES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeSpec {
    /// The scope's spelling, e.g. `ti:self`.
    pub spelling: &'static str,
    /// What it means.
    pub scope: Scope,
    /// For a subject binding: the path parameter it needs, and the refusal.
    pub binding: Option<BindingSpec>,
}

/// What a subject binding needs and says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingSpec {
    /// The path parameters it reads, e.g. `task_instance_id` (which `sub` must
    /// equal). A route whose path lacks one does not compile.
    pub path_params: &'static [&'static str],
    /// Whether it needs the store's record of the subject (its task
    /// instance), not only the token.
    pub needs_store: bool,
    /// The 403 `detail` when it fails.
    pub mismatch_detail: &'static str,
}

/// The scope language, in the order messages list it: the one table that
/// parsing, spelling, the "expected ..." messages and the macros' path checks
/// all read. A `token:*` spelling is `token:` and the claim value.
///
/// | scope             | meaning                                                          |
/// |-------------------|------------------------------------------------------------------|
/// | `token:execution` | the route accepts execution tokens                               |
/// | `token:workload`  | the route accepts workload tokens                                |
/// | `ti:self`         | token `sub` must equal the `{task_instance_id}` path parameter   |
/// | `ct:self`         | token `sub` must equal the `{connection_test_id}` path parameter |
/// | `ti:running`      | the token's task instance exists and is running (store)          |
/// | `task:self`       | `{dag_id}/{run_id}/{task_id}` and `?map_index=` are the token's task instance (store) |
///
/// ```
/// use policy_core::{RoutePolicy, SCOPES, Scope, TokenType};
///
/// let router = RoutePolicy::from_scopes(["ti:self"]).unwrap();
/// let route = RoutePolicy::from_scopes(["token:execution", "token:workload"]).unwrap();
/// let merged = router.merge(route);
/// assert!(merged.allows(TokenType::Workload));
/// assert_eq!(merged.scopes().collect::<Vec<_>>(), ["token:execution", "token:workload", "ti:self"]);
///
/// // A typo is an error, never a silently ignored scope.
/// let err = Scope::parse("ti:slef").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "unknown scope `ti:slef`; expected `token:execution`, `token:workload`, `ti:self`, `ct:self`, `ti:running` or `task:self`"
/// );
/// assert_eq!(SCOPES[2].binding.unwrap().path_params, ["task_instance_id"]);
/// ```
pub const SCOPES: [ScopeSpec; 6] = [
    ScopeSpec {
        spelling: "token:execution",
        scope: Scope::Token(TokenType::Execution),
        binding: None,
    },
    ScopeSpec {
        spelling: "token:workload",
        scope: Scope::Token(TokenType::Workload),
        binding: None,
    },
    ScopeSpec {
        spelling: "ti:self",
        scope: Scope::Bind(Binding::TaskInstance),
        binding: Some(BindingSpec {
            path_params: &["task_instance_id"],
            needs_store: false,
            mismatch_detail: "Token subject does not match task instance ID",
        }),
    },
    ScopeSpec {
        spelling: "ct:self",
        scope: Scope::Bind(Binding::ConnectionTest),
        binding: Some(BindingSpec {
            path_params: &["connection_test_id"],
            needs_store: false,
            mismatch_detail: "Token subject does not match connection test ID",
        }),
    },
    ScopeSpec {
        spelling: "ti:running",
        scope: Scope::Bind(Binding::Running),
        binding: Some(BindingSpec {
            path_params: &[],
            needs_store: true,
            mismatch_detail: "Token's task instance is not running",
        }),
    },
    ScopeSpec {
        spelling: "task:self",
        scope: Scope::Bind(Binding::OwnTask),
        binding: Some(BindingSpec {
            path_params: &["dag_id", "run_id", "task_id"],
            needs_store: true,
            mismatch_detail: "Token's task instance is not the one named in the request",
        }),
    },
];

/// `` `a`, `b` or `c` ``, each item in backticks (and in quotes if `quoted`).
fn one_of<'a>(items: impl Iterator<Item = &'a str>, quoted: bool) -> String {
    let items: Vec<&str> = items.collect();
    let mut list = String::new();
    for (i, item) in items.iter().enumerate() {
        list.push_str(match i {
            0 => "",
            i if i + 1 == items.len() => " or ",
            _ => ", ",
        });
        if quoted {
            list.push_str(&format!("`\"{item}\"`"));
        } else {
            list.push_str(&format!("`{item}`"));
        }
    }
    list
}

/// Every scope, as error messages list them: `` `token:execution`, ... or `ct:self` ``;
/// with `quoted`, as string literals (`` `"ti:self"` ``).
pub fn expected_scopes(quoted: bool) -> String {
    one_of(SCOPES.iter().map(|s| s.spelling), quoted)
}

/// Every token type scope, as error messages list them.
fn expected_token_scopes() -> String {
    one_of(
        SCOPES
            .iter()
            .filter(|s| matches!(s.scope, Scope::Token(_)))
            .map(|s| s.spelling),
        false,
    )
}

/// Every token type name, as claim errors list them: `` `execution` or `workload` ``.
pub fn expected_token_types() -> String {
    one_of(TokenType::ALL.iter().map(|t| t.as_str()), false)
}

impl Scope {
    /// Parses one scope. Exact and case-sensitive, like the claim values.
    pub fn parse(scope: &str) -> Result<Scope, ScopeError> {
        match SCOPES.iter().find(|s| s.spelling == scope) {
            Some(spec) => Ok(spec.scope),
            None if scope.starts_with(TOKEN_PREFIX) => {
                Err(ScopeError::UnknownTokenType(scope.to_owned()))
            }
            None => Err(ScopeError::UnknownScope(scope.to_owned())),
        }
    }

    /// The scope's row of [`SCOPES`].
    pub const fn spec(self) -> &'static ScopeSpec {
        let mut i = 0;
        while i < SCOPES.len() {
            let same = match (SCOPES[i].scope, self) {
                (Scope::Token(a), Scope::Token(b)) => a as u8 == b as u8,
                (Scope::Bind(a), Scope::Bind(b)) => a as u8 == b as u8,
                _ => false,
            };
            if same {
                return &SCOPES[i];
            }
            i += 1;
        }
        // Every scope has a row: `every_scope_has_one_row` checks it.
        &SCOPES[0]
    }

    /// The canonical spelling.
    pub const fn as_str(self) -> &'static str {
        self.spec().spelling
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a scope string, or a list of them, is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeError {
    /// `token:<x>` where `<x>` is not a token type.
    UnknownTokenType(String),
    /// Neither `token:*` nor a known binding.
    UnknownScope(String),
    /// The same scope twice in one list.
    Duplicate(String),
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::UnknownTokenType(s) => write!(
                f,
                "unknown token type `{s}`; expected {}",
                expected_token_scopes()
            ),
            ScopeError::UnknownScope(s) => {
                write!(
                    f,
                    "unknown scope `{s}`; expected {}",
                    expected_scopes(false)
                )
            }
            ScopeError::Duplicate(s) => write!(f, "duplicate scope `{s}`"),
        }
    }
}

impl std::error::Error for ScopeError {}

/// What a route accepts: the token types declared on it (and its routers) and
/// the subject bindings it enforces.
///
/// Built in `const` context by the macros; merging is a union of both parts.
/// A policy with no declared token type accepts `execution` only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoutePolicy {
    declared: TokenTypes,
    bindings: Bindings,
}

impl RoutePolicy {
    /// No declared scopes: execution tokens only, no subject binding.
    pub const AUTHENTICATED: RoutePolicy = RoutePolicy::new(TokenTypes::NONE, Bindings::NONE);

    /// A policy from its parts.
    pub const fn new(declared: TokenTypes, bindings: Bindings) -> RoutePolicy {
        RoutePolicy { declared, bindings }
    }

    /// This policy plus one scope.
    pub const fn with(self, scope: Scope) -> RoutePolicy {
        match scope {
            Scope::Token(t) => RoutePolicy::new(self.declared.with(t), self.bindings),
            Scope::Bind(b) => RoutePolicy::new(self.declared, self.bindings.with(b)),
        }
    }

    /// The merge rule: union of declared token types and of bindings. Used for
    /// router -> route inheritance, exactly like FastAPI's `include_router`.
    pub const fn merge(self, other: RoutePolicy) -> RoutePolicy {
        RoutePolicy::new(
            self.declared.union(other.declared),
            self.bindings.union(other.bindings),
        )
    }

    /// Parses a list of scopes; refuses unknown and duplicate ones.
    pub fn from_scopes<I, S>(scopes: I) -> Result<RoutePolicy, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut policy = RoutePolicy::AUTHENTICATED;
        let mut seen: Vec<Scope> = Vec::new();
        for raw in scopes {
            let scope = Scope::parse(raw.as_ref())?;
            if seen.contains(&scope) {
                return Err(ScopeError::Duplicate(raw.as_ref().to_owned()));
            }
            seen.push(scope);
            policy = policy.with(scope);
        }
        Ok(policy)
    }

    /// The token types declared (possibly empty).
    pub const fn declared_tokens(self) -> TokenTypes {
        self.declared
    }

    /// The token types accepted: the declared ones, or `execution` if none.
    pub const fn allowed_tokens(self) -> TokenTypes {
        if self.declared.is_empty() {
            TokenTypes::EXECUTION
        } else {
            self.declared
        }
    }

    /// Whether a token of this type is accepted.
    pub const fn allows(self, token_type: TokenType) -> bool {
        self.allowed_tokens().contains(token_type)
    }

    /// The subject bindings enforced.
    pub const fn bindings(self) -> Bindings {
        self.bindings
    }

    /// The declared scopes in canonical order (token types, then bindings).
    pub fn scopes(self) -> impl Iterator<Item = &'static str> {
        self.declared
            .iter()
            .map(TokenType::scope)
            .chain(self.bindings.iter().map(Binding::scope))
    }
}

impl fmt::Display for RoutePolicy {
    /// `tokens: execution, workload; bindings: ti:self`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tokens: {}", self.allowed_tokens())?;
        if !self.bindings.is_empty() {
            f.write_str("; bindings: ")?;
            for (i, b) in self.bindings.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(b.scope())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_known_scope_and_round_trips() {
        for spec in SCOPES {
            assert_eq!(Scope::parse(spec.spelling), Ok(spec.scope));
            assert_eq!(spec.scope.as_str(), spec.spelling);
            assert_eq!(spec.scope.spec(), &spec);
        }
    }

    #[test]
    fn every_scope_has_one_row_and_the_table_is_complete() {
        let all: Vec<Scope> = TokenType::ALL
            .into_iter()
            .map(Scope::Token)
            .chain(Binding::ALL.into_iter().map(Scope::Bind))
            .collect();
        assert_eq!(SCOPES.map(|s| s.scope).to_vec(), all);
        for spec in SCOPES {
            match spec.scope {
                Scope::Token(t) => {
                    assert_eq!(spec.binding, None);
                    assert_eq!(spec.spelling, format!("token:{}", t.as_str()));
                    assert_eq!(TokenType::parse(t.as_str()), Some(t));
                }
                Scope::Bind(b) => {
                    let binding = spec.binding.unwrap();
                    assert_eq!(b.path_params(), binding.path_params);
                    assert_eq!(b.needs_store(), binding.needs_store);
                    assert_eq!(b.mismatch_detail(), binding.mismatch_detail);
                }
            }
        }
        assert_eq!(
            expected_scopes(true),
            r#"`"token:execution"`, `"token:workload"`, `"ti:self"`, `"ct:self"`, `"ti:running"` or `"task:self"`"#
        );
        assert_eq!(
            Binding::OwnTask.path_params(),
            ["dag_id", "run_id", "task_id"]
        );
        assert_eq!(Binding::TaskInstance.path_param(), "task_instance_id");
        assert_eq!(
            Binding::OwnTask.path_param(),
            "",
            "not a single-parameter binding"
        );
        assert!(Bindings::RUNNING.need_store() && !Bindings::TASK_INSTANCE.need_store());
        assert_eq!(expected_token_types(), "`execution` or `workload`");
    }

    #[test]
    fn refuses_unknown_token_type_and_unknown_scope_with_allowed_list() {
        assert_eq!(
            Scope::parse("token:bogus").unwrap_err().to_string(),
            "unknown token type `token:bogus`; expected `token:execution` or `token:workload`"
        );
        for bad in ["ti:slef", "admin", "", "TI:SELF", "token", " ti:self"] {
            assert_eq!(
                Scope::parse(bad).unwrap_err(),
                ScopeError::UnknownScope(bad.to_owned()),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Scope::parse("token:"),
            Err(ScopeError::UnknownTokenType(_))
        ));
    }

    #[test]
    fn empty_policy_accepts_execution_only() {
        let p = RoutePolicy::AUTHENTICATED;
        assert!(p.allows(TokenType::Execution));
        assert!(!p.allows(TokenType::Workload));
        assert_eq!(p.allowed_tokens().to_string(), "execution");
    }

    #[test]
    fn workload_alone_does_not_imply_execution() {
        let p = RoutePolicy::from_scopes(["token:workload"]).unwrap();
        assert!(!p.allows(TokenType::Execution));
        assert!(p.allows(TokenType::Workload));
    }

    #[test]
    fn merge_is_a_union_of_tokens_and_bindings() {
        const ROUTER: RoutePolicy = RoutePolicy::new(TokenTypes::NONE, Bindings::TASK_INSTANCE);
        const ROUTE: RoutePolicy = RoutePolicy::new(
            TokenTypes::EXECUTION.with(TokenType::Workload),
            Bindings::NONE,
        );
        const MERGED: RoutePolicy = ROUTER.merge(ROUTE);
        assert_eq!(MERGED.allowed_tokens().to_string(), "execution, workload");
        assert!(MERGED.bindings().contains(Binding::TaskInstance));
        assert!(!MERGED.bindings().contains(Binding::ConnectionTest));
        assert_eq!(
            MERGED.to_string(),
            "tokens: execution, workload; bindings: ti:self"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        assert_eq!(
            RoutePolicy::from_scopes(["ti:self", "ti:self"]).unwrap_err(),
            ScopeError::Duplicate("ti:self".into())
        );
    }
}
