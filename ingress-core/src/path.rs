//! Paths: validating rule paths and matching them against request paths.

use crate::PathType;
use crate::host::eq_bytes;

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
pub(crate) fn compile(path: &str, path_type: PathType) -> Result<&str, String> {
    let path = if path.is_empty() && path_type == PathType::ImplementationSpecific { "/" } else { path };
    if !path.starts_with('/') {
        return Err("must be an absolute path starting with `/`".into());
    }
    // One pass over the bytes finds every problem; the messages are built only on failure
    // (building a table compiles every path of every Ingress).
    let strict = path_type != PathType::ImplementationSpecific;
    let bytes = path.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let suspicious = bytes.iter().enumerate().any(|(i, &b)| match b {
        0..=0x20 | 0x7f | b'?' | b'#' | 0x80.. => true,
        // `//`, `/./`, `/../`, and `/.` or `/..` at the end.
        b'/' if strict => matches!(
            (at(i + 1), at(i + 2), at(i + 3)),
            (Some(b'/'), _, _)
                | (Some(b'.'), None | Some(b'/'), _)
                | (Some(b'.'), Some(b'.'), None | Some(b'/'))
        ),
        b'%' if strict => at(i + 1) == Some(b'2') && matches!(at(i + 2), Some(b'f' | b'F')),
        _ => false,
    });
    if suspicious {
        explain_invalid(path, strict)?;
    }
    Ok(match MatchKind::of(path_type) {
        MatchKind::Exact => path,
        MatchKind::Prefix => {
            let trimmed = path.trim_end_matches('/');
            if trimmed.is_empty() { "/" } else { trimmed }
        }
    })
}

/// The slow path of [`compile`]: the first problem of a path the fast scan flagged, if any.
fn explain_invalid(path: &str, strict: bool) -> Result<(), String> {
    if let Some(c) = path.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("must not contain whitespace or control characters (found {c:?})"));
    }
    if path.contains(['?', '#']) {
        return Err("must not contain `?` or `#`: query strings and fragments are not matched".into());
    }
    if strict {
        if let Some(seq) = INVALID_SEQUENCES.iter().find(|s| path.contains(*s)) {
            return Err(format!("must not contain `{seq}`"));
        }
        if let Some(suffix) = INVALID_SUFFIXES.iter().find(|s| path.ends_with(*s)) {
            return Err(format!("must not end with `{suffix}`"));
        }
    }
    Ok(())
}

/// Whether a compiled rule path matches a request path (already without its query string).
#[inline]
pub(crate) fn matches(kind: MatchKind, rule: &[u8], request: &[u8]) -> bool {
    match kind {
        MatchKind::Exact => eq_bytes(rule, request),
        MatchKind::Prefix => {
            rule == b"/"
                || (matches!(request.get(rule.len()), None | Some(b'/'))
                    && request.get(..rule.len()).is_some_and(|head| eq_bytes(head, rule)))
        }
    }
}

/// The request path without query string or fragment.
#[inline]
pub(crate) fn strip_query(path: &str) -> &str {
    match path.as_bytes().iter().position(|&b| b == b'?' || b == b'#') {
        // An ASCII byte: a character boundary.
        Some(i) => path.get(..i).unwrap_or(path),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_element_wise() {
        assert!(matches(MatchKind::Prefix, b"/foo", b"/foo"));
        assert!(matches(MatchKind::Prefix, b"/foo", b"/foo/"));
        assert!(matches(MatchKind::Prefix, b"/foo", b"/foo/bar"));
        assert!(!matches(MatchKind::Prefix, b"/foo", b"/foobar"));
        assert!(matches(MatchKind::Prefix, b"/", b"anything"));
    }

    #[test]
    fn compile_normalises_prefix() {
        assert_eq!(compile("/foo/", PathType::Prefix), Ok("/foo"));
        assert_eq!(compile("/", PathType::Prefix), Ok("/"));
        assert_eq!(compile("/foo/", PathType::Exact), Ok("/foo/"));
        assert_eq!(compile("", PathType::ImplementationSpecific), Ok("/"));
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
