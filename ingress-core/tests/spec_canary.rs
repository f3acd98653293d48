//! Canary Ingresses: no routes of their own; each path splits the route with the same host,
//! path and path type.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, CanaryRule, EndpointStore, HostRule, Ingress, Origin, PathRule, Reason, TableBuilder,
};

fn svc(name: &str) -> BackendRef {
    BackendRef::new("ns", name, 80)
}

fn rule(host: &str, path: &str, service: &str) -> HostRule {
    HostRule::host(host).path(PathRule::prefix(path, svc(service)))
}

#[test]
fn a_canary_splits_the_matching_route_and_adds_none() {
    let split =
        CanaryRule { header: Some("x-canary".into()), weight: 0, weight_total: 100, ..CanaryRule::default() };
    let mut b = TableBuilder::new();
    // The canary is older than the main Ingress: it still adds no route and still splits.
    b.ingress(
        Ingress::new(Origin::new("ns", "web-canary").created_at(1))
            .rule(rule("app.test", "/", "web-v2").path(PathRule::prefix("/only-canary", svc("web-v2"))))
            .rule(rule("other.test", "/", "web-v2"))
            .as_canary(split),
    )
    .ingress(Ingress::new(Origin::new("ns", "web").created_at(2)).rule(rule("app.test", "/", "web")));
    let built = b.build(&mut EndpointStore::new());
    let t = &built.table;

    let route = t.lookup("app.test", "/x").unwrap();
    assert_eq!(route.backend.key().service.as_ref(), "web", "the main route");
    let canary = route.canary.expect("split by the canary");
    assert_eq!(canary.backend.key().service.as_ref(), "web-v2");
    assert!(canary.chooses(Some("always"), None, |_| 100));
    assert!(!canary.chooses(None, None, |_| 1), "weight 0: never by weight");

    // No route of its own, and the paths with nothing to split are reported.
    assert!(t.lookup("other.test", "/").is_none());
    assert_eq!(t.lookup("app.test", "/only-canary").unwrap().backend.key().service.as_ref(), "web");
    let canary_problems: Vec<_> =
        built.rejected.iter().filter(|r| matches!(r.reason, Reason::Canary { .. })).collect();
    assert_eq!(canary_problems.len(), 2, "{:?}", built.rejected);
    assert!(canary_problems.iter().all(|r| &*r.origin.name == "web-canary"));
}

#[test]
fn the_older_canary_wins_and_a_bad_pattern_is_refused() {
    let weight = |w| CanaryRule { weight: w, weight_total: 100, ..CanaryRule::default() };
    let mut b = TableBuilder::new();
    b.ingress(Ingress::new(Origin::new("ns", "web").created_at(1)).rule(rule("app.test", "/", "web")))
        .ingress(
            Ingress::new(Origin::new("ns", "c1").created_at(2))
                .rule(rule("app.test", "/", "v2"))
                .as_canary(weight(10)),
        )
        .ingress(
            Ingress::new(Origin::new("ns", "c2").created_at(3))
                .rule(rule("app.test", "/", "v3"))
                .as_canary(weight(90)),
        )
        .ingress(
            Ingress::new(Origin::new("ns", "c3").created_at(4))
                .rule(rule("app.test", "/", "v4"))
                .as_canary(CanaryRule { header_pattern: Some("(".into()), ..weight(1) }),
        );
    let built = b.build(&mut EndpointStore::new());
    let route = built.table.lookup("app.test", "/").unwrap();
    assert_eq!(route.canary.unwrap().backend.key().service.as_ref(), "v2");
    let names: Vec<&str> = built.rejected.iter().map(|r| &*r.origin.name).collect();
    assert_eq!(names, ["c2", "c3"], "{:?}", built.rejected);
}
