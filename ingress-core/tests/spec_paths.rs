//! The path-matching examples table of the Kubernetes Ingress documentation
//! ("Examples" under "Path types"), one row per test case, plus precedence rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, PathType, RouteTable, TableBuilder,
};

/// Builds a one-host table whose paths each go to a backend named after the path and type.
fn table(paths: &[(PathType, &str)]) -> RouteTable {
    let mut rule = HostRule::host("example.com");
    for (t, p) in paths {
        rule = rule.path(PathRule::new(*p, *t, backend(*t, p)));
    }
    let mut b = TableBuilder::new();
    b.ingress(Ingress::new(Origin::new("ns", "ing")).rule(rule));
    let built = b.build(&mut EndpointStore::new());
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    built.table
}

fn backend(t: PathType, p: &str) -> BackendRef {
    BackendRef::new("ns", format!("{t}:{p}"), 80)
}

/// `expect` is the (type, path) that must win, or `None` for "no match".
fn check(paths: &[(PathType, &str)], request: &str, expect: Option<(PathType, &str)>) {
    let t = table(paths);
    let got = t.lookup("example.com", request).map(|r| r.backend.key().clone());
    let want = expect.map(|(t, p)| backend(t, p));
    assert_eq!(got, want, "paths {paths:?}, request {request}");
}

use PathType::{Exact, Prefix};

#[test]
fn row_prefix_root_matches_all_paths() {
    for req in ["/", "/foo", "/foo/bar", "/a/b/c/"] {
        check(&[(Prefix, "/")], req, Some((Prefix, "/")));
    }
}

#[test]
fn row_exact_foo_matches_foo() {
    check(&[(Exact, "/foo")], "/foo", Some((Exact, "/foo")));
}

#[test]
fn row_exact_foo_does_not_match_bar() {
    check(&[(Exact, "/foo")], "/bar", None);
}

#[test]
fn row_exact_foo_does_not_match_foo_slash() {
    check(&[(Exact, "/foo")], "/foo/", None);
}

#[test]
fn row_exact_foo_slash_does_not_match_foo() {
    check(&[(Exact, "/foo/")], "/foo", None);
}

#[test]
fn row_prefix_foo_matches_foo_and_foo_slash() {
    check(&[(Prefix, "/foo")], "/foo", Some((Prefix, "/foo")));
    check(&[(Prefix, "/foo")], "/foo/", Some((Prefix, "/foo")));
}

#[test]
fn row_prefix_foo_slash_matches_foo_and_foo_slash() {
    check(&[(Prefix, "/foo/")], "/foo", Some((Prefix, "/foo/")));
    check(&[(Prefix, "/foo/")], "/foo/", Some((Prefix, "/foo/")));
}

#[test]
fn row_prefix_aaa_bb_does_not_match_aaa_bbb() {
    check(&[(Prefix, "/aaa/bb")], "/aaa/bbb", None);
}

#[test]
fn row_prefix_aaa_bbb_matches_aaa_bbb() {
    check(&[(Prefix, "/aaa/bbb")], "/aaa/bbb", Some((Prefix, "/aaa/bbb")));
}

#[test]
fn row_prefix_trailing_slash_in_rule_is_ignored() {
    check(&[(Prefix, "/aaa/bbb/")], "/aaa/bbb", Some((Prefix, "/aaa/bbb/")));
}

/// A route names its path as matched (trailing slashes of a `Prefix` path trimmed) and as
/// written, which metrics label requests with, as ingress-nginx does.
#[test]
fn a_route_gives_its_path_as_matched_and_as_written() {
    use ingress_core::MatchedBy;
    let t = table(&[
        (Prefix, "/aaa/bbb/"),
        (Prefix, "/ccc"),
        (Exact, "/ddd/"),
        (PathType::ImplementationSpecific, "/eee//"),
    ]);
    for (request, matched, written) in [
        ("/aaa/bbb/x", "/aaa/bbb", "/aaa/bbb/"),
        ("/aaa/bbb", "/aaa/bbb", "/aaa/bbb/"),
        ("/ccc/", "/ccc", "/ccc"),
        ("/ddd/", "/ddd/", "/ddd/"),
        ("/eee/x", "/eee", "/eee//"),
    ] {
        let r = t.lookup("example.com", request).unwrap();
        let MatchedBy::Path { path, written: as_written, .. } = r.matched_by else {
            panic!("{:?}", r.matched_by)
        };
        assert_eq!((path, as_written), (matched, written), "{request}");
    }
}

#[test]
fn row_prefix_matches_trailing_slash_in_request() {
    check(&[(Prefix, "/aaa/bbb")], "/aaa/bbb/", Some((Prefix, "/aaa/bbb")));
}

#[test]
fn row_prefix_matches_subpath() {
    check(&[(Prefix, "/aaa/bbb")], "/aaa/bbb/ccc", Some((Prefix, "/aaa/bbb")));
}

#[test]
fn row_prefix_is_not_a_string_prefix() {
    check(&[(Prefix, "/aaa/bbb")], "/aaa/bbbxyz", None);
}

#[test]
fn row_prefix_root_and_aaa_matches_aaa_prefix() {
    check(&[(Prefix, "/"), (Prefix, "/aaa")], "/aaa/ccc", Some((Prefix, "/aaa")));
}

#[test]
fn row_longest_of_three_prefixes_wins() {
    check(&[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")], "/aaa/bbb", Some((Prefix, "/aaa/bbb")));
}

#[test]
fn row_root_prefix_catches_the_rest() {
    check(&[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")], "/ccc", Some((Prefix, "/")));
}

#[test]
fn row_no_match_uses_default_backend() {
    check(&[(Prefix, "/aaa")], "/ccc", None);
}

#[test]
fn row_mixed_prefers_exact() {
    check(&[(Prefix, "/foo"), (Exact, "/foo")], "/foo", Some((Exact, "/foo")));
    // Order written does not matter.
    check(&[(Exact, "/foo"), (Prefix, "/foo")], "/foo", Some((Exact, "/foo")));
}

#[test]
fn mixed_prefix_still_takes_subpaths() {
    check(&[(Prefix, "/foo"), (Exact, "/foo")], "/foo/bar", Some((Prefix, "/foo")));
}

#[test]
fn longer_exact_beats_shorter_prefix() {
    check(&[(Prefix, "/api"), (Exact, "/api/v1")], "/api/v1", Some((Exact, "/api/v1")));
}

#[test]
fn implementation_specific_behaves_as_prefix() {
    let is = PathType::ImplementationSpecific;
    check(&[(is, "/app")], "/app/x", Some((is, "/app")));
    check(&[(is, "/app")], "/apple", None);
}

#[test]
fn query_string_is_not_matched() {
    check(&[(Exact, "/search")], "/search?q=/x", Some((Exact, "/search")));
    check(&[(Prefix, "/a")], "/a?b", Some((Prefix, "/a")));
}

#[test]
fn paths_are_case_sensitive() {
    check(&[(Exact, "/Foo")], "/foo", None);
    check(&[(Prefix, "/Foo")], "/Foo/bar", Some((Prefix, "/Foo")));
}
