//! actix-web path patterns, read far enough to know their parameters.
//!
//! Pure like the scope grammar: the macros use it at compile time to refuse a
//! `ti:self` route whose path has no `{task_instance_id}` segment, and to refuse
//! a pattern actix-web would panic on at start-up.

use std::fmt;

/// Why a path pattern is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Non-empty pattern that does not start with `/`.
    MissingLeadingSlash(String),
    /// A `{` without its `}`, a `}` without its `{`, or a nested `{`.
    UnbalancedBraces(String),
    /// `{}` or `{:re}`: a parameter needs a name.
    EmptyParameter(String),
    /// A parameter name that is not an identifier (letters, digits, `_`).
    BadParameterName(String),
    /// The same parameter twice.
    DuplicateParameter(String),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::MissingLeadingSlash(p) => {
                write!(f, "path `{p}` must start with `/`")
            }
            PathError::UnbalancedBraces(p) => {
                write!(f, "path `{p}` has unbalanced `{{` `}}`")
            }
            PathError::EmptyParameter(p) => {
                write!(f, "path `{p}` has a parameter with no name")
            }
            PathError::BadParameterName(name) => write!(
                f,
                "path parameter `{name}` must be made of letters, digits and `_`"
            ),
            PathError::DuplicateParameter(name) => {
                write!(f, "path parameter `{name}` appears twice")
            }
        }
    }
}

impl std::error::Error for PathError {}

/// The names of the dynamic segments of an actix-web path pattern, in order.
///
/// Understands `{name}`, `{name:regex}` (the regex may itself hold braces, as in
/// `{id:\d{3}}`) and a trailing `{tail}*`.
///
/// ```
/// use policy_core::path::path_params;
/// assert_eq!(path_params("/{task_instance_id}/run").unwrap(), ["task_instance_id"]);
/// assert_eq!(path_params(r"/x/{id:\d{3}}/{rest}*").unwrap(), ["id", "rest"]);
/// assert!(path_params("/{task_instance_id/run").is_err());
/// ```
pub fn path_params(pattern: &str) -> Result<Vec<&str>, PathError> {
    if !pattern.is_empty() && !pattern.starts_with('/') {
        return Err(PathError::MissingLeadingSlash(pattern.to_owned()));
    }
    let unbalanced = || PathError::UnbalancedBraces(pattern.to_owned());
    let bytes = pattern.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'}' => return Err(unbalanced()),
            b'{' => {
                let start = i + 1;
                // The name runs to `:` or `}`; a regex after `:` may nest braces.
                let mut j = start;
                while j < bytes.len() && bytes[j] != b':' && bytes[j] != b'}' {
                    if bytes[j] == b'{' {
                        return Err(unbalanced());
                    }
                    j += 1;
                }
                if j == bytes.len() {
                    return Err(unbalanced());
                }
                let name = &pattern[start..j];
                if bytes[j] == b':' {
                    let mut depth = 1usize;
                    j += 1;
                    while j < bytes.len() {
                        match bytes[j] {
                            b'\\' => j += 1,
                            b'{' => depth += 1,
                            b'}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    if j >= bytes.len() {
                        return Err(unbalanced());
                    }
                }
                if name.is_empty() {
                    return Err(PathError::EmptyParameter(pattern.to_owned()));
                }
                if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(PathError::BadParameterName(name.to_owned()));
                }
                if names.contains(&name) {
                    return Err(PathError::DuplicateParameter(name.to_owned()));
                }
                names.push(name);
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_regex_and_tail_parameters() {
        assert_eq!(path_params("").unwrap(), Vec::<&str>::new());
        assert_eq!(path_params("/health/ping").unwrap(), Vec::<&str>::new());
        assert_eq!(
            path_params("/xcoms/{dag_id}/{run_id}/{task_id}/{key}").unwrap(),
            ["dag_id", "run_id", "task_id", "key"]
        );
        assert_eq!(path_params(r"/{id:\d{2,3}}/x").unwrap(), ["id"]);
        assert_eq!(path_params("/files/{tail}*").unwrap(), ["tail"]);
    }

    #[test]
    fn refuses_malformed_patterns() {
        assert!(matches!(
            path_params("run"),
            Err(PathError::MissingLeadingSlash(_))
        ));
        for bad in ["/{id", "/id}", "/{a{b}}", r"/{id:\d{3}"] {
            assert!(
                matches!(path_params(bad), Err(PathError::UnbalancedBraces(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            path_params("/{}"),
            Err(PathError::EmptyParameter(_))
        ));
        assert!(matches!(
            path_params("/{a-b}"),
            Err(PathError::BadParameterName(_))
        ));
        assert!(matches!(
            path_params("/{a}/{a}"),
            Err(PathError::DuplicateParameter(_))
        ));
    }
}
