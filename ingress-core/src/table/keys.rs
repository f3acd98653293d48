//! The path keys of a host block: each route's match kind and path, one after the other in the
//! block's arena, right after the host name, in the order of the routes (precedence). A lookup
//! scans them as one run of bytes, a few cache lines that also hold the name it compared, and
//! reads a compiled route only once its key matched: at 100k routes, where a lookup misses the
//! cache on nearly every line it touches, a host's paths then cost the lines of their bytes, not
//! those of their compiled routes as well.
//!
//! A key is a head of four ASCII bytes, then the path as matched, then the trailing slashes its
//! written form has beyond that (see `CompiledRoute::trailing`). The head: the match kind (`0`
//! exact, `1` prefix, `2` folded, `3` regex), the count of trailing bytes (below 128), then
//! the path's length in two bytes of seven bits, low first. A regex key is matched by its
//! compiled route (which names the regex). A path of [`LONG`] bytes or more (no Kubernetes limit
//! forbids one) has the kind `L` and lengths of 0: the lookup reads that route's compiled form
//! instead. ASCII keeps the arena a `str`, its paths whole `str`s between
//! heads that are whole characters; a fixed head keeps the scan to a few instructions a key.

use super::{HostBlock, Span};
use crate::path::{self, MatchKind};

/// The most trailing bytes a key records (its count is one ASCII byte).
pub(crate) const MAX_TRAILING: usize = 0x7f;

/// The length from which a path's key does not hold it (two bytes of seven bits).
const LONG: usize = 1 << 14;

/// Appends the key of a route that matches `path` as `kind`, written as `path` followed by
/// `trailing`, to `arena`; returns the span of `path` in it. Trailing bytes beyond
/// [`MAX_TRAILING`] are not recorded at all: the caller keeps no trailing count for them.
pub(crate) fn push(arena: &mut String, kind: MatchKind, path: &str, trailing: &str) -> Span {
    let trailing = if trailing.len() <= MAX_TRAILING { trailing } else { "" };
    let (kind, len) = match kind {
        _ if path.len() >= LONG => (b'L', 0),
        MatchKind::Exact => (b'0', path.len()),
        MatchKind::Prefix => (b'1', path.len()),
        MatchKind::Folded => (b'2', path.len()),
        MatchKind::Regex(_) => (b'3', path.len()),
    };
    let seven = |n: usize| char::from(u8::try_from(n & 0x7f).unwrap_or(0));
    arena.push(char::from(kind));
    arena.push(seven(trailing.len()));
    arena.push(seven(len));
    arena.push(seven(len >> 7));
    let span = Span { start: super::index_u32(arena.len()), len: super::index_u32(path.len()) };
    arena.push_str(path);
    arena.push_str(trailing);
    span
}

/// The index of the first route of `block` (by precedence) whose path matches `request` (a
/// request path without its query string).
#[inline]
pub(crate) fn first_match(block: &HostBlock, request: &[u8]) -> Option<usize> {
    let mut keys = block.arena.as_bytes().get((block.name.start + block.name.len) as usize..)?;
    for i in 0..block.routes.len() {
        let ([kind, trailing, low, high], rest) = keys.split_first_chunk::<4>()?;
        let (rule, rest) = rest.split_at_checked(usize::from(*low) | usize::from(*high) << 7)?;
        keys = rest.get(usize::from(*trailing)..)?;
        let hit = match kind {
            b'1' => path::matches(MatchKind::Prefix, rule, request, &[]),
            b'0' => path::matches(MatchKind::Exact, rule, request, &[]),
            b'2' => path::matches(MatchKind::Folded, rule, request, &[]),
            _ => {
                let r = block.routes.get(i)?;
                let end = (r.path.start + r.path.len) as usize + usize::from(r.trailing);
                keys = block.arena.as_bytes().get(end..)?;
                path::matches(r.kind, block.bytes(r.path), request, &block.regexes)
            }
        };
        if hit {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::first_match;
    use crate::path;
    use crate::{
        BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, PathType, RoutePolicy, TableBuilder,
    };

    /// The first route whose compiled form matches: what the keys must agree with.
    fn by_routes(block: &super::HostBlock, request: &[u8]) -> Option<usize> {
        block.routes.iter().position(|r| path::matches(r.kind, block.bytes(r.path), request, &block.regexes))
    }

    fn table(paths: &[(&str, PathType)], policy: RoutePolicy) -> crate::RouteTable {
        let mut rule = HostRule::host("keys.example.com");
        for (i, (p, t)) in paths.iter().enumerate() {
            rule = rule.path(PathRule::new(*p, *t, BackendRef::new("ns", format!("svc-{i}"), 80)));
        }
        let older = Ingress::new(Origin::new("ns", "a")).rule(rule.clone()).policy(policy.clone());
        // A younger twin: every path of it loses to the older's (a shadowed rule of each).
        let younger = Ingress::new(Origin::new("ns", "b").created_at(1)).rule(rule).policy(policy);
        let mut b = TableBuilder::new();
        b.ingress(older);
        b.ingress(younger);
        b.build(&mut EndpointStore::new()).table
    }

    #[test]
    fn keys_match_as_the_compiled_routes_do_whatever_their_length() {
        let long = format!("/{}", "l".repeat(super::LONG + 5));
        let slashes = format!("/s{}", "/".repeat(super::MAX_TRAILING + 1));
        let paths = [
            ("/", PathType::Prefix),
            ("/a", PathType::Exact),
            ("/a/b//", PathType::ImplementationSpecific),
            ("/t/", PathType::Prefix),
            (long.as_str(), PathType::Prefix),
            (slashes.as_str(), PathType::ImplementationSpecific),
            ("/after-long", PathType::Exact),
        ];
        let regex = RoutePolicy { use_regex: true, ..RoutePolicy::default() };
        for policy in [RoutePolicy::default(), regex] {
            let t = table(&paths, policy);
            let (_, block) = t.find_host("keys.example.com").unwrap();
            assert_eq!(block.shadowed.len(), block.routes.len(), "each path has a shadowed twin");
            let requests =
                ["/", "/a", "/a/", "/a/b", "/a/b/c", "/t", "/t/x", "/s", "/s/", "/after-long", "/x", "/A"];
            let longer =
                [format!("{long}/x"), long.clone(), slashes.clone(), long[..long.len() - 1].to_owned()];
            for request in requests.iter().map(|r| r.as_bytes()).chain(longer.iter().map(|r| r.as_bytes())) {
                assert_eq!(
                    first_match(block, request),
                    by_routes(block, request),
                    "{:?}",
                    &request[..request.len().min(20)]
                );
            }
            // The written form (the metrics label) keeps its trailing slashes: up to
            // `MAX_TRAILING` of them.
            let written = |path: &str| match t.lookup("keys.example.com", path).unwrap().matched_by {
                crate::MatchedBy::Path { written, .. } => written.to_owned(),
                other => panic!("{other:?}"),
            };
            if !block.routes[0].kind.is_regex_host() {
                assert_eq!(written("/t/x"), "/t/");
                assert_eq!(written("/a/b/c"), "/a/b//");
                assert_eq!(written("/s/x"), "/s", "more trailing slashes than a key records");
                assert_eq!(written(&format!("{long}/x")), long);
            }
        }
    }
}
