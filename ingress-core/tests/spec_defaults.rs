//! Default backends: per-Ingress (its hosts), rule-less Ingress (every host), controller-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, EndpointStore, HostRule, Ingress, MatchedBy, Origin, PathRule, Reason, TableBuilder,
};

fn b(name: &str) -> BackendRef {
    BackendRef::new("ns", name, 80)
}

#[test]
fn nothing_matches_means_no_route() {
    let mut builder = TableBuilder::new();
    builder.ingress(
        Ingress::new(Origin::new("ns", "i")).rule(HostRule::host("a.com").path(PathRule::exact("/", b("a")))),
    );
    let t = builder.build(&mut EndpointStore::new()).table;
    assert!(t.lookup("a.com", "/x").is_none());
    assert!(t.lookup("b.com", "/").is_none());
}

#[test]
fn controller_default_takes_everything_unmatched() {
    let mut builder = TableBuilder::new();
    builder
        .ingress(
            Ingress::new(Origin::new("ns", "i"))
                .rule(HostRule::host("a.com").path(PathRule::exact("/", b("a")))),
        )
        .default_backend(b("fallback"));
    let t = builder.build(&mut EndpointStore::new()).table;
    for (host, path) in [("a.com", "/x"), ("b.com", "/")] {
        let r = t.lookup(host, path).unwrap();
        assert_eq!(r.backend.key().service.as_ref(), "fallback");
        assert_eq!(r.matched_by, MatchedBy::ControllerDefault);
    }
    assert_eq!(t.lookup("a.com", "/").unwrap().backend.key().service.as_ref(), "a");
}

#[test]
fn ingress_default_backend_covers_its_own_hosts_only() {
    let mut builder = TableBuilder::new();
    builder
        .ingress(
            Ingress::new(Origin::new("ns", "shop"))
                .default_backend(b("shop-default"))
                .rule(HostRule::host("shop.com").path(PathRule::prefix("/cart", b("cart")))),
        )
        .default_backend(b("controller-default"));
    let t = builder.build(&mut EndpointStore::new()).table;
    let r = t.lookup("shop.com", "/other").unwrap();
    assert_eq!(r.backend.key().service.as_ref(), "shop-default");
    assert!(matches!(r.matched_by, MatchedBy::IngressDefault { origin } if &*origin.name == "shop"));
    assert_eq!(t.lookup("else.com", "/").unwrap().backend.key().service.as_ref(), "controller-default");
}

#[test]
fn rule_less_ingress_default_backend_takes_every_unmatched_request() {
    let mut builder = TableBuilder::new();
    builder
        .ingress(Ingress::new(Origin::new("ns", "catch-all")).default_backend(b("catch")))
        .ingress(
            Ingress::new(Origin::new("ns", "a"))
                .rule(HostRule::host("a.com").path(PathRule::exact("/", b("a")))),
        )
        .default_backend(b("controller-default"));
    let t = builder.build(&mut EndpointStore::new()).table;
    assert_eq!(t.lookup("a.com", "/").unwrap().backend.key().service.as_ref(), "a");
    assert_eq!(t.lookup("a.com", "/nope").unwrap().backend.key().service.as_ref(), "catch");
    assert_eq!(t.lookup("zzz.com", "/").unwrap().backend.key().service.as_ref(), "catch");
}

#[test]
fn two_rule_less_defaults_oldest_wins_and_the_other_is_reported() {
    let mut builder = TableBuilder::new();
    builder
        .ingress(Ingress::new(Origin::new("ns", "young").created_at(20)).default_backend(b("young")))
        .ingress(Ingress::new(Origin::new("ns", "old").created_at(10)).default_backend(b("old")));
    let built = builder.build(&mut EndpointStore::new());
    assert_eq!(built.table.lookup("x.com", "/").unwrap().backend.key().service.as_ref(), "old");
    assert_eq!(built.rejected.len(), 1);
    assert!(matches!(&built.rejected[0].reason, Reason::Duplicate { winner, .. } if &*winner.name == "old"));
}

#[test]
fn explain_names_the_default_that_applied() {
    let mut builder = TableBuilder::new();
    builder.default_backend(b("fallback"));
    let t = builder.build(&mut EndpointStore::new()).table;
    let e = t.explain("x.com", "/");
    assert_eq!(e.decision, ingress_core::Decision::ControllerDefault);
    assert_eq!(&*e.backend.unwrap().service, "fallback");
    let empty = TableBuilder::new().build(&mut EndpointStore::new()).table;
    assert_eq!(empty.explain("x.com", "/").decision, ingress_core::Decision::NoRoute);
}
