//! Per-route policy: each Ingress's policy comes back with every route it defines, from the one
//! lookup, and a route found once can be found again by its id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ingress_core::{
    BackendRef, BodyLimit, EndpointStore, HeaderOp, HostRule, Ingress, MatchedBy, Origin, PathRule,
    RoutePolicy, TableBuilder,
};

fn slow() -> RoutePolicy {
    RoutePolicy {
        read_timeout: Some(Duration::from_secs(600)),
        max_body_size: Some(BodyLimit::Unlimited),
        response_headers: vec![HeaderOp::set("x-route", "slow").unwrap()],
        ..RoutePolicy::default()
    }
}

#[test]
fn each_route_carries_its_ingresss_policy() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "slow"))
            .rule(HostRule::host("a.example.com").path(PathRule::prefix("/", BackendRef::new("ns", "a", 80))))
            .default_backend(BackendRef::new("ns", "a-default", 80))
            .policy(slow()),
    )
    .ingress(
        Ingress::new(Origin::new("ns", "plain")).rule(
            HostRule::host("b.example.com").path(PathRule::exact("/x", BackendRef::new("ns", "b", 80))),
        ),
    )
    .default_backend(BackendRef::new("ingress", "fallback", 80));
    let table = b.build(&mut EndpointStore::new()).table;

    let path = table.lookup("a.example.com", "/deep/path").unwrap();
    assert!(matches!(path.matched_by, MatchedBy::Path { .. }));
    assert_eq!(*path.policy, slow());
    // The Ingress's default backend serves a.example.com's unmatched paths: same policy.
    let plain = table.lookup("b.example.com", "/x").unwrap();
    assert!(plain.policy.is_empty());
    let default = table.lookup("b.example.com", "/nope").unwrap();
    assert_eq!(default.matched_by, MatchedBy::ControllerDefault);
    assert!(default.policy.is_empty(), "the controller's default backend has no Ingress policy");

    // Ids find the same route again, for every kind of match.
    for route in [path, plain, default] {
        let again = table.route(route.id()).unwrap();
        assert_eq!(again.backend.key(), route.backend.key());
        assert_eq!(again.matched_by, route.matched_by);
        assert_eq!(again.policy, route.policy);
    }
}

#[test]
fn an_ingress_default_backend_route_has_the_ingress_policy() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "catch-all"))
            .default_backend(BackendRef::new("ns", "d", 80))
            .policy(RoutePolicy { max_attempts: Some(1), ..RoutePolicy::default() }),
    );
    let table = b.build(&mut EndpointStore::new()).table;
    let route = table.lookup("anything.example.com", "/").unwrap();
    assert!(matches!(route.matched_by, MatchedBy::IngressDefault { .. }));
    assert_eq!(route.policy.max_attempts, Some(1));
    assert_eq!(table.route(route.id()).unwrap().policy.max_attempts, Some(1));
    // An id of a larger table is not found in a smaller one.
    let empty = TableBuilder::new().build(&mut EndpointStore::new()).table;
    assert!(empty.route(route.id()).is_none());
}
