//! Regex paths and rewrites, as ingress-nginx's documentation ("Ingress Path Matching") and
//! templates define them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, EndpointStore, HostRule, Ingress, MatchedBy, Origin, PathRule, PathType, Reason, RoutePolicy,
    RouteTable, TableBuilder,
};

fn svc(name: &str) -> BackendRef {
    BackendRef::new("ns", name, 80)
}

fn regex_policy(rewrite: Option<&str>) -> RoutePolicy {
    RoutePolicy {
        use_regex: rewrite.is_none(),
        rewrite_target: rewrite.map(|t| t.parse().unwrap()),
        ..RoutePolicy::default()
    }
}

fn service_of(t: &RouteTable, host: &str, path: &str) -> Option<String> {
    t.lookup(host, path).map(|r| r.backend.key().service.to_string())
}

#[test]
fn the_documented_example_longest_path_first() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "test-ingress-1").created_at(1)).rule(
            HostRule::host("test.com")
                .path(PathRule::prefix("/foo/bar", svc("service1")))
                .path(PathRule::prefix("/foo/bar/", svc("service2"))),
        ),
    )
    .ingress(
        Ingress::new(Origin::new("ns", "test-ingress-2").created_at(2))
            .rule(HostRule::host("test.com").path(PathRule::new(
                "/foo/bar/(.+)",
                PathType::ImplementationSpecific,
                svc("service3"),
            )))
            .policy(regex_policy(Some("/$1"))),
    )
    .ingress(
        Ingress::new(Origin::new("ns", "elsewhere").created_at(3))
            .rule(HostRule::host("other.com").path(PathRule::prefix("/foo", svc("service4")))),
    );
    let built = b.build(&mut EndpointStore::new());
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    let t = built.table;
    assert_eq!(service_of(&t, "test.com", "/foo/bar/1").as_deref(), Some("service3"));
    assert_eq!(service_of(&t, "test.com", "/foo/bar/").as_deref(), Some("service2"));
    assert_eq!(service_of(&t, "test.com", "/foo/bar").as_deref(), Some("service1"));
    // Regex mode is host-wide and case-insensitive, and a Prefix path there is a regex
    // anchored at the start only: `/foo/bar` takes `/foo/barbaz` too, as in ingress-nginx.
    assert_eq!(service_of(&t, "test.com", "/FOO/BAR/x").as_deref(), Some("service3"));
    assert_eq!(service_of(&t, "test.com", "/foo/barbaz").as_deref(), Some("service1"));
    assert!(t.lookup("test.com", "/foo/bar").unwrap().is_regex());
    // Other hosts keep the Kubernetes rules.
    assert_eq!(service_of(&t, "other.com", "/foobar"), None);
    assert!(!t.lookup("other.com", "/foo/x").unwrap().is_regex());

    // The rewrite belongs to the Ingress that asked for it.
    let r = t.lookup("test.com", "/foo/bar/abc?q=1").unwrap();
    assert_eq!(r.rewritten("/foo/bar/abc?q=1").as_deref(), Some(&b"/abc"[..]));
    assert_eq!(t.lookup("test.com", "/foo/bar").unwrap().rewritten("/foo/bar"), None);
}

#[test]
fn the_documented_warning_first_match_not_longest_exact() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "test-ingress-3"))
            .rule(
                HostRule::host("test.com").path(PathRule::prefix("/foo/bar/bar", svc("bar"))).path(
                    PathRule::new("/foo/bar/[A-Z0-9]{3}", PathType::ImplementationSpecific, svc("code")),
                ),
            )
            .policy(regex_policy(None)),
    );
    let t = b.build(&mut EndpointStore::new()).table;
    let r = t.lookup("test.com", "/foo/bar/bar").unwrap();
    assert_eq!(r.backend.key().service.as_ref(), "code", "the longer regex is first and matches");
    let MatchedBy::Path { path, .. } = r.matched_by else { panic!("{:?}", r.matched_by) };
    assert_eq!(path, "/foo/bar/[A-Z0-9]{3}");
}

#[test]
fn the_rewrite_idiom() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "api"))
            .rule(HostRule::host("app.test").path(PathRule::new(
                "/api(/|$)(.*)",
                PathType::ImplementationSpecific,
                svc("api"),
            )))
            .policy(regex_policy(Some("/$2"))),
    );
    let t = b.build(&mut EndpointStore::new()).table;
    let rewritten = |path: &str| {
        t.lookup("app.test", path).and_then(|r| r.rewritten(path)).map(|b| String::from_utf8(b).unwrap())
    };
    assert_eq!(rewritten("/api/users/7").as_deref(), Some("/users/7"));
    assert_eq!(rewritten("/api").as_deref(), Some("/"));
    assert_eq!(rewritten("/apis"), None, "no route: the regex wants `/` or the end");
    let e = t.explain("app.test", "/api/users");
    assert!(e.to_string().contains("/api(/|$)(.*)"), "{e}");
}

#[test]
fn a_plain_path_on_a_regex_host_rewrites_without_groups() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "strip"))
            .rule(HostRule::host("app.test").path(PathRule::prefix("/legacy", svc("app"))))
            .policy(regex_policy(Some("/new/$1"))),
    );
    let t = b.build(&mut EndpointStore::new()).table;
    let r = t.lookup("app.test", "/LEGACYstuff").unwrap();
    assert!(r.is_regex());
    assert_eq!(r.rewritten("/LEGACYstuff").as_deref(), Some(&b"/new/"[..]));
}

#[test]
fn a_path_that_is_not_a_usable_regex_is_rejected_alone() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "bad"))
            .rule(
                HostRule::host("app.test")
                    .path(PathRule::new("/(?=lookahead)", PathType::ImplementationSpecific, svc("bad")))
                    .path(PathRule::new("/ok/?", PathType::ImplementationSpecific, svc("ok"))),
            )
            .policy(regex_policy(None)),
    );
    let built = b.build(&mut EndpointStore::new());
    assert_eq!(built.rejected.len(), 1, "{:?}", built.rejected);
    assert!(
        matches!(&built.rejected[0].reason, Reason::InvalidPath { path, why } if path == "/(?=lookahead)" && why.contains("not a regular expression")),
        "{:?}",
        built.rejected[0]
    );
    assert_eq!(service_of(&built.table, "app.test", "/ok").as_deref(), Some("ok"));
    assert_eq!(service_of(&built.table, "app.test", "/ok/").as_deref(), Some("ok"));
}
