//! Regex paths and `rewrite-target`, as ingress-nginx writes them into nginx: on a host where
//! any Ingress asks for regex paths (`use-regex`, or a `rewrite-target` that differs from the
//! path), every path of the host is the case-insensitive regex `^<path>` (nginx's
//! `location ~* "^<path>"`), tried longest path first; a rewrite replaces the whole path with
//! the target, `$1`…`$9` standing for the path regex's groups.
//!
//! The engine is the `regex` crate: matching takes time linear in the path, whatever the
//! pattern, so no rule can stall a worker (PCRE's backtracking can). Like nginx's PCRE (no UTF
//! mode), it matches bytes and folds ASCII case only. Patterns it does not support
//! (look-around, back-references) are rejected with the reason.

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

/// The most memory one compiled path regex may take (nginx has no such bound; a rule
/// needing more is rejected rather than slowing every lookup).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The regex a path is matched with on a regex host: `(?i)^<path>`, written as ingress-nginx
/// writes it (no grouping: an alternation in the path is not anchored as a whole, exactly as
/// in nginx).
pub(crate) fn location_regex(path: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^{path}"))
        .case_insensitive(true)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(why) => {
                let why = why.lines().last().unwrap_or("").trim_start_matches("error: ").to_owned();
                format!("not a regular expression this proxy can run: {why}")
            }
            regex::Error::CompiledTooBig(_) => "the regular expression is too large".to_owned(),
            other => other.to_string(),
        })
}

/// A `rewrite-target`: the path a matched request is sent upstream with, `$1`…`$9` replaced
/// by the groups of the path's regex (an absent group is empty, as in nginx).
///
/// # Examples
///
/// ```
/// use ingress_core::RewriteTarget;
///
/// let target: RewriteTarget = "/$2".parse()?;
/// assert_eq!(target.as_str(), "/$2");
/// assert!("/$name".parse::<RewriteTarget>().is_err());
/// # Ok::<(), ingress_core::InvalidRewrite>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteTarget {
    text: Box<str>,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Group(usize),
}

/// Why a text is not a rewrite target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rewrite target `{target}`: {why}")]
pub struct InvalidRewrite {
    /// The target as written.
    pub target: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl std::str::FromStr for RewriteTarget {
    type Err = InvalidRewrite;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why| InvalidRewrite { target: text.to_owned(), why };
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("spaces, control characters and non-ASCII are not allowed"));
        }
        if text.contains(['?', '#']) {
            return Err(bad("a query or fragment is not allowed (the request's query is kept)"));
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                literal.push(c);
                continue;
            }
            match chars.next() {
                Some(d @ '1'..='9') => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal).into()));
                    }
                    parts.push(Part::Group(usize::from(d as u8 - b'0')));
                }
                _ => return Err(bad("only `$1` to `$9` may follow `$` (nginx variables are not supported)")),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.into()));
        }
        Ok(RewriteTarget { text: text.into(), parts })
    }
}

impl RewriteTarget {
    /// The target as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The target with every group empty: the rewrite of a path without groups.
    pub(crate) fn without_groups(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len());
        for part in &self.parts {
            if let Part::Literal(text) = part {
                out.extend_from_slice(text.as_bytes());
            }
        }
        out
    }

    /// The rewritten path for `path`, matched by `regex` (`None` if it does not match), as
    /// bytes (a group may end inside a UTF-8 sequence, as in nginx).
    pub(crate) fn apply(&self, regex: &Regex, path: &[u8]) -> Option<Vec<u8>> {
        let caps = regex.captures(path)?;
        let mut out = Vec::with_capacity(self.text.len() + path.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Part::Group(n) => out.extend_from_slice(caps.get(*n).map_or(&b""[..], |m| m.as_bytes())),
            }
        }
        Some(out)
    }
}

impl fmt::Display for RewriteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_rewrite_idiom() {
        let regex = location_regex("/api(/|$)(.*)").unwrap();
        let target: RewriteTarget = "/$2".parse().unwrap();
        let apply = |t: &RewriteTarget, path: &str| {
            t.apply(&regex, path.as_bytes()).map(|b| String::from_utf8(b).unwrap())
        };
        assert_eq!(apply(&target, "/api/users/7").as_deref(), Some("/users/7"));
        assert_eq!(apply(&target, "/api").as_deref(), Some("/"));
        assert_eq!(apply(&target, "/API/x").as_deref(), Some("/x"), "case-insensitive, as ~*");
        assert_eq!(apply(&target, "/apix"), None);
        let both: RewriteTarget = "/v2/$1$2/$9".parse().unwrap();
        assert_eq!(apply(&both, "/api/a").as_deref(), Some("/v2//a/"), "absent groups are empty");
    }

    #[test]
    fn regex_paths_are_anchored_at_the_start_only() {
        let r = location_regex("/foo").unwrap();
        assert!(
            r.is_match(b"/foo") && r.is_match(b"/foobar") && r.is_match(b"/FOO/x") && !r.is_match(b"/x/foo")
        );
        // As nginx reads `^/a|/b`: the second branch is not anchored.
        assert!(location_regex("/a|/b").unwrap().is_match(b"/x/b"));
        // ASCII case folding only, as PCRE without UTF mode.
        assert!(!location_regex("/k").unwrap().is_match("/\u{212a}".as_bytes()));
    }

    #[test]
    fn unsupported_patterns_are_refused_with_the_reason() {
        for bad in ["/(", "/(?=x)", "/(a)\\1", "/[z-a]"] {
            let why = location_regex(bad).unwrap_err();
            assert!(why.starts_with("not a regular expression"), "{bad}: {why}");
        }
        assert!(location_regex("/(a{1000}){1000}").is_err(), "too large");
        for bad in ["/$name", "/$", "/a b", "/a?b=1", "/é"] {
            assert!(bad.parse::<RewriteTarget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pathological_patterns_match_in_linear_time() {
        let r = location_regex("/(a+)+$").unwrap();
        // A backtracking engine (PCRE) would not finish this in the lifetime of the test run.
        let long = format!("/{}!", "a".repeat(100_000));
        assert!(!r.is_match(long.as_bytes()));
        assert!(r.is_match(&long.as_bytes()[..long.len() - 1]));
    }
}
