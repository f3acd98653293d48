//! Paths: validating rule paths and matching them against request paths.

use crate::PathType;

/// How a compiled path compares with request paths. `ImplementationSpecific` compiles to
/// `Prefix` today; a regex variant joins here when annotations bring `use-regex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum MatchKind {
    Exact,
    Prefix,
}

impl MatchKind {
    pub(crate) fn of(path_type: PathType) -> Self {
        match path_type {
            PathType::Exact => MatchKind::Exact,
            PathType::Prefix | PathType::ImplementationSpecific => MatchKind::Prefix,
        }
    }
}

/// Substrings the Kubernetes API refuses in `Exact` and `Prefix` paths.
const INVALID_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
/// Suffixes the Kubernetes API refuses in `Exact` and `Prefix` paths.
const INVALID_SUFFIXES: [&str; 2] = ["/..", "/."];

/// Validates a rule path and returns the form it is matched in: `Prefix` paths lose their
/// trailing slash (`/foo/` matches like `/foo`), `ImplementationSpecific` may be empty
/// (the `extensions/v1beta1` default), meaning `/`.
pub(crate) fn compile(path: &str, path_type: PathType) -> Result<String, String> {
    let path = if path.is_empty() && path_type == PathType::ImplementationSpecific { "/" } else { path };
    if !path.starts_with('/') {
        return Err("must be an absolute path starting with `/`".into());
    }
    if let Some(c) = path.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("must not contain whitespace or control characters (found {c:?})"));
    }
    if path.contains(['?', '#']) {
        return Err("must not contain `?` or `#`: query strings and fragments are not matched".into());
    }
    if path_type != PathType::ImplementationSpecific {
        if let Some(seq) = INVALID_SEQUENCES.iter().find(|s| path.contains(*s)) {
            return Err(format!("must not contain `{seq}`"));
        }
        if let Some(suffix) = INVALID_SUFFIXES.iter().find(|s| path.ends_with(*s)) {
            return Err(format!("must not end with `{suffix}`"));
        }
    }
    Ok(match MatchKind::of(path_type) {
        MatchKind::Exact => path.to_owned(),
        MatchKind::Prefix => {
            let trimmed = path.trim_end_matches('/');
            if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() }
        }
    })
}

/// Whether a compiled rule path matches a request path (already without its query string).
#[inline]
pub(crate) fn matches(kind: MatchKind, rule: &str, request: &str) -> bool {
    match kind {
        MatchKind::Exact => rule == request,
        MatchKind::Prefix => {
            rule == "/"
                || (request.starts_with(rule)
                    && matches!(request.as_bytes().get(rule.len()), None | Some(b'/')))
        }
    }
}

/// The request path without query string or fragment.
#[inline]
pub(crate) fn strip_query(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(i) => &path[..i],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_element_wise() {
        assert!(matches(MatchKind::Prefix, "/foo", "/foo"));
        assert!(matches(MatchKind::Prefix, "/foo", "/foo/"));
        assert!(matches(MatchKind::Prefix, "/foo", "/foo/bar"));
        assert!(!matches(MatchKind::Prefix, "/foo", "/foobar"));
        assert!(matches(MatchKind::Prefix, "/", "anything"));
    }

    #[test]
    fn compile_normalises_prefix() {
        assert_eq!(compile("/foo/", PathType::Prefix).as_deref(), Ok("/foo"));
        assert_eq!(compile("/", PathType::Prefix).as_deref(), Ok("/"));
        assert_eq!(compile("/foo/", PathType::Exact).as_deref(), Ok("/foo/"));
        assert_eq!(compile("", PathType::ImplementationSpecific).as_deref(), Ok("/"));
        assert!(compile("", PathType::Prefix).is_err());
        assert!(compile("/a//b", PathType::Prefix).is_err());
        assert!(compile("/a b", PathType::Exact).is_err());
    }

    #[test]
    fn strip_query_cuts_at_question_mark() {
        assert_eq!(strip_query("/a?b=/c"), "/a");
        assert_eq!(strip_query("/a#x"), "/a");
        assert_eq!(strip_query("/a"), "/a");
    }
}
