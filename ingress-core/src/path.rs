//! Paths: validating rule paths and matching them against request paths.

use regex::bytes::Regex;

use crate::PathType;
use crate::host::eq_bytes;

/// How a compiled path compares with request paths. `ImplementationSpecific` compiles to
/// `Prefix`. Every path of a regex host (`use-regex`) is the regex `(?i)^<path>`: a `Regex`
/// (the index of its regex in the table), or, when the path has no regex syntax at all,
/// `Folded`: the same match (an ASCII case-insensitive prefix) without a regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum MatchKind {
    Exact,
    Prefix,
    Regex(u32),
    Folded,
}

impl MatchKind {
    /// Whether the path matches as a regex host's path.
    pub(crate) fn is_regex_host(self) -> bool {
        matches!(self, MatchKind::Regex(_) | MatchKind::Folded)
    }
}

/// Whether a path written on a regex host has regex syntax (else it matches as
/// [`MatchKind::Folded`]).
pub(crate) fn has_regex_syntax(path: &str) -> bool {
    path.contains(['\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$'])
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
/// (the `extensions/v1beta1` default), meaning `/`. A path meant as a regex (`regex`) may hold
/// `?` (a quantifier there); it is checked as a regex later.
pub(crate) fn compile(path: &str, path_type: PathType, regex: bool) -> Result<&str, String> {
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
        0..=0x20 | 0x7f | b'#' | 0x80.. => true,
        b'?' => !regex,
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
        explain_invalid(path, strict, regex)?;
    }
    Ok(match MatchKind::of(path_type) {
        MatchKind::Prefix => {
            let trimmed = path.trim_end_matches('/');
            if trimmed.is_empty() { "/" } else { trimmed }
        }
        _ => path,
    })
}

/// The slow path of [`compile`]: the first problem of a path the fast scan flagged, if any.
fn explain_invalid(path: &str, strict: bool, regex: bool) -> Result<(), String> {
    if let Some(c) = path.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("must not contain whitespace or control characters (found {c:?})"));
    }
    if path.contains('#') || (!regex && path.contains('?')) {
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

/// Whether a compiled rule path matches a request path (already without its query string);
/// a regex path by its regex in `regexes`.
#[inline]
pub(crate) fn matches(kind: MatchKind, rule: &[u8], request: &[u8], regexes: &[Regex]) -> bool {
    match kind {
        MatchKind::Exact => eq_bytes(rule, request),
        MatchKind::Prefix => {
            rule == b"/"
                || (matches!(request.get(rule.len()), None | Some(b'/'))
                    && request.get(..rule.len()).is_some_and(|head| eq_bytes(head, rule)))
        }
        MatchKind::Folded => request.get(..rule.len()).is_some_and(|head| head.eq_ignore_ascii_case(rule)),
        MatchKind::Regex(i) => regexes.get(i as usize).is_some_and(|r| r.is_match(request)),
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
        let m = |rule: &[u8], request: &[u8]| matches(MatchKind::Prefix, rule, request, &[]);
        assert!(m(b"/foo", b"/foo"));
        assert!(m(b"/foo", b"/foo/"));
        assert!(m(b"/foo", b"/foo/bar"));
        assert!(!m(b"/foo", b"/foobar"));
        assert!(m(b"/", b"anything"));
        let folded = |rule: &[u8], request: &[u8]| matches(MatchKind::Folded, rule, request, &[]);
        assert!(folded(b"/Foo", b"/fOObar") && !folded(b"/foo", b"/fo") && !folded(b"/foo", b"/x/foo"));
        assert!(
            !has_regex_syntax("/foo/bar-baz_1~") && has_regex_syntax("/v1.0") && has_regex_syntax("/a(b)")
        );
    }

    #[test]
    fn compile_normalises_prefix() {
        assert_eq!(compile("/foo/", PathType::Prefix, false), Ok("/foo"));
        assert_eq!(compile("/", PathType::Prefix, false), Ok("/"));
        assert_eq!(compile("/foo/", PathType::Exact, false), Ok("/foo/"));
        assert_eq!(compile("", PathType::ImplementationSpecific, false), Ok("/"));
        assert!(compile("", PathType::Prefix, false).is_err());
        assert!(compile("/a//b", PathType::Prefix, false).is_err());
        assert!(compile("/a b", PathType::Exact, false).is_err());
        assert!(compile("/a/?", PathType::ImplementationSpecific, false).is_err());
        assert_eq!(compile("/a/?", PathType::ImplementationSpecific, true), Ok("/a/?"));
        assert!(compile("/a #", PathType::ImplementationSpecific, true).is_err());
    }

    #[test]
    fn strip_query_cuts_at_question_mark() {
        assert_eq!(strip_query("/a?b=/c"), "/a");
        assert_eq!(strip_query("/a#x"), "/a");
        assert_eq!(strip_query("/a"), "/a");
    }
}
