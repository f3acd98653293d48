//! Host matching: exact, single-label wildcard, host-less rules, and their precedence.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, RouteTable, TableBuilder,
};

fn b(name: &str) -> BackendRef {
    BackendRef::new("ns", name, 80)
}

fn table(rules: Vec<HostRule>) -> RouteTable {
    let mut ing = Ingress::new(Origin::new("ns", "ing"));
    for r in rules {
        ing = ing.rule(r);
    }
    let mut builder = TableBuilder::new();
    builder.ingress(ing);
    let built = builder.build(&mut EndpointStore::new());
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    built.table
}

fn service(t: &RouteTable, host: &str, path: &str) -> Option<String> {
    t.lookup(host, path).map(|r| r.backend.key().service.to_string())
}

#[test]
fn wildcard_matches_exactly_one_label() {
    let t = table(vec![HostRule::host("*.foo.com").path(PathRule::prefix("/", b("wild")))]);
    // (request host, expected)
    let cases = [
        ("bar.foo.com", Some("wild")),
        ("BAR.Foo.COM", Some("wild")),
        ("bar.foo.com:8443", Some("wild")),
        ("bar.foo.com.", Some("wild")),
        ("foo.com", None),
        ("baz.bar.foo.com", None),
        (".foo.com", None),
        ("barfoo.com", None),
    ];
    for (host, want) in cases {
        assert_eq!(service(&t, host, "/").as_deref(), want, "host {host}");
    }
}

#[test]
fn exact_host_is_case_insensitive_and_ignores_port_and_trailing_dot() {
    let t = table(vec![HostRule::host("Demo.Example.com").path(PathRule::prefix("/", b("demo")))]);
    for host in [
        "demo.example.com",
        "DEMO.EXAMPLE.COM",
        "demo.example.com:30080",
        "demo.example.com.",
        "demo.example.com.:80",
    ] {
        assert_eq!(service(&t, host, "/").as_deref(), Some("demo"), "host {host}");
    }
    assert_eq!(service(&t, "demo.example.co", "/"), None);
}

#[test]
fn host_less_rule_matches_every_host() {
    let t = table(vec![HostRule::any_host().path(PathRule::prefix("/", b("any")))]);
    for host in ["a.com", "", "127.0.0.1:80", "[::1]:8080", "x"] {
        assert_eq!(service(&t, host, "/x").as_deref(), Some("any"), "host {host:?}");
    }
}

#[test]
fn most_specific_host_wins_exact_then_wildcard_then_any() {
    let t = table(vec![
        HostRule::any_host().path(PathRule::prefix("/", b("any"))),
        HostRule::host("*.foo.com").path(PathRule::prefix("/", b("wild"))),
        HostRule::host("bar.foo.com").path(PathRule::prefix("/", b("exact"))),
    ]);
    assert_eq!(service(&t, "bar.foo.com", "/").as_deref(), Some("exact"));
    assert_eq!(service(&t, "baz.foo.com", "/").as_deref(), Some("wild"));
    assert_eq!(service(&t, "other.org", "/").as_deref(), Some("any"));
}

#[test]
fn no_fall_through_to_a_less_specific_host() {
    let t = table(vec![
        HostRule::any_host().path(PathRule::prefix("/", b("any"))),
        HostRule::host("*.foo.com").path(PathRule::prefix("/wild", b("wild"))),
        HostRule::host("bar.foo.com").path(PathRule::exact("/only", b("exact"))),
    ]);
    // bar.foo.com is chosen; its only path does not match; no fall-through to *.foo.com or any.
    assert_eq!(service(&t, "bar.foo.com", "/wild"), None);
    assert_eq!(service(&t, "bar.foo.com", "/"), None);
    // baz.foo.com is the wildcard's; `/` does not match `/wild`; no fall-through to any.
    assert_eq!(service(&t, "baz.foo.com", "/"), None);
}

#[test]
fn rules_for_the_same_host_from_several_ingresses_are_merged() {
    let mut builder = TableBuilder::new();
    builder
        .ingress(
            Ingress::new(Origin::new("a", "one"))
                .rule(HostRule::host("shop.com").path(PathRule::prefix("/cart", b("cart")))),
        )
        .ingress(
            Ingress::new(Origin::new("b", "two"))
                .rule(HostRule::host("SHOP.com").path(PathRule::prefix("/", b("web")))),
        );
    let built = builder.build(&mut EndpointStore::new());
    assert!(built.rejected.is_empty());
    assert_eq!(service(&built.table, "shop.com", "/cart/1").as_deref(), Some("cart"));
    assert_eq!(service(&built.table, "shop.com", "/").as_deref(), Some("web"));
    assert_eq!(built.table.host_count(), 1);
}

#[test]
fn wildcard_and_exact_hosts_of_different_ingresses_coexist() {
    let mut builder = TableBuilder::new();
    builder
        .ingress(
            Ingress::new(Origin::new("a", "wild"))
                .rule(HostRule::host("*.example.com").path(PathRule::prefix("/", b("wild")))),
        )
        .ingress(
            Ingress::new(Origin::new("a", "api"))
                .rule(HostRule::host("api.example.com").path(PathRule::prefix("/", b("api")))),
        );
    let t = builder.build(&mut EndpointStore::new()).table;
    assert_eq!(service(&t, "api.example.com", "/").as_deref(), Some("api"));
    assert_eq!(service(&t, "www.example.com", "/").as_deref(), Some("wild"));
}
