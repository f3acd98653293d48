//! The TLS SNI map, and endpoint updates that need no table rebuild.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use ingress_core::{
    BackendRef, CertificatePem, CertificateRef, EndpointSet, EndpointStore, Field, HostRule, Ingress, Origin,
    PathRule, Reason, TableBuilder,
};

fn cert(name: &str) -> CertificateRef {
    CertificateRef::new("ns", name)
}

#[test]
fn sni_exact_then_wildcard_then_default() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "tls"))
            .default_backend(BackendRef::new("ns", "web", 80))
            .tls(["a.example.com"], cert("exact"))
            .tls(["*.example.com"], cert("wild")),
    )
    .default_certificate(cert("default"));
    let t = b.build(&mut EndpointStore::new()).table;
    let name = |sni: Option<&str>| t.tls().certificate_for(sni).map(|e| e.certificate.name.clone());
    assert_eq!(name(Some("a.example.com")).as_deref(), Some("exact"));
    assert_eq!(name(Some("A.EXAMPLE.COM")).as_deref(), Some("exact"));
    assert_eq!(name(Some("b.example.com")).as_deref(), Some("wild"));
    assert_eq!(name(Some("x.b.example.com")).as_deref(), Some("default"));
    assert_eq!(name(Some("example.com")).as_deref(), Some("default"));
    assert_eq!(name(None).as_deref(), Some("default"));
}

#[test]
fn tls_without_hosts_covers_the_rule_hosts() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "tls"))
            .rule(HostRule::host("one.com").path(PathRule::prefix("/", BackendRef::new("ns", "web", 80))))
            .rule(HostRule::host("*.two.com").path(PathRule::prefix("/", BackendRef::new("ns", "web", 80))))
            .tls(Vec::<String>::new(), cert("c")),
    );
    let t = b.build(&mut EndpointStore::new()).table;
    assert!(t.tls().certificate_for(Some("one.com")).is_some());
    assert!(t.tls().certificate_for(Some("x.two.com")).is_some());
    assert!(t.tls().certificate_for(Some("three.com")).is_none());
}

#[test]
fn conflicting_tls_hosts_oldest_wins_and_material_travels() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "young").created_at(2))
            .default_backend(BackendRef::new("ns", "web", 80))
            .tls(["a.com"], cert("young")),
    )
    .ingress(
        Ingress::new(Origin::new("ns", "old").created_at(1))
            .default_backend(BackendRef::new("ns", "web", 80))
            .tls(["a.com"], cert("old")),
    )
    .certificate(cert("old"), CertificatePem::new("CHAIN", "KEY"));
    let built = b.build(&mut EndpointStore::new());
    let entry = built.table.tls().certificate_for(Some("a.com")).unwrap();
    assert_eq!(entry.certificate.name, "old");
    assert_eq!(built.table.tls().material(&entry.certificate).map(|m| m.chain.as_str()), Some("CHAIN"));
    // The rule-less default backend of the younger one also loses; and its TLS host.
    let tls_losers: Vec<_> = built.rejected.iter().filter(|r| matches!(r.field, Field::Tls { .. })).collect();
    assert_eq!(tls_losers.len(), 1);
    assert!(matches!(&tls_losers[0].reason, Reason::Duplicate { winner, .. } if &*winner.name == "old"));
    assert!(!format!("{:?}", built.table.tls().material(&entry.certificate)).contains("KEY"));
}

#[test]
fn endpoint_updates_reach_a_built_table_without_rebuild() {
    let demo = BackendRef::new("default", "demo", 80);
    let mut store = EndpointStore::new();
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("default", "demo"))
            .rule(HostRule::host("demo.com").path(PathRule::prefix("/", demo.clone()))),
    );
    let table = b.build(&mut store).table;
    let backend = table.lookup("demo.com", "/").unwrap().backend;
    assert!(backend.endpoints().is_empty());

    let a: SocketAddr = "127.0.0.1:8001".parse().unwrap();
    let c: SocketAddr = "127.0.0.1:8002".parse().unwrap();
    store.set(&demo, EndpointSet::new([c, a, a]));
    let eps = backend.endpoints();
    assert_eq!(eps.as_slice().iter().map(|e| e.addr).collect::<Vec<_>>(), vec![a, c]);

    // A rebuilt table shares the same slot.
    let mut b2 = TableBuilder::new();
    b2.ingress(
        Ingress::new(Origin::new("default", "demo"))
            .rule(HostRule::host("demo.com").path(PathRule::prefix("/", demo.clone()))),
    );
    let table2 = b2.build(&mut store).table;
    assert_eq!(table2.lookup("demo.com", "/").unwrap().backend.endpoints().len(), 2);
    store.remove(&demo);
    assert!(backend.endpoints().is_empty());
    assert!(table2.lookup("demo.com", "/").unwrap().backend.endpoints().is_empty());
}

#[test]
fn prune_keeps_slots_in_use() {
    let used = BackendRef::new("ns", "used", 80);
    let unused = BackendRef::new("ns", "unused", 80);
    let mut store = EndpointStore::new();
    let mut b = TableBuilder::new();
    b.ingress(Ingress::new(Origin::new("ns", "i")).default_backend(used.clone()));
    let table = b.build(&mut store).table;
    store.set(&unused, EndpointSet::default());
    assert_eq!(store.len(), 2);
    store.prune();
    assert_eq!(store.len(), 1);
    assert!(store.get(&used).is_some());
    drop(table);
    store.prune();
    assert!(store.is_empty());
}

/// ingress-nginx's "server with a certificate", which `ssl-redirect` redirects to HTTPS: every
/// rule host of an Ingress with a TLS section (listed there or not, with a usable Secret or
/// not), exact or wildcard; never the catch-all.
#[test]
fn hosts_served_over_tls_are_the_rule_hosts_of_ingresses_with_tls() {
    let web = BackendRef::new("ns", "web", 80);
    let rule = |host: &str| HostRule::host(host).path(PathRule::prefix("/", web.clone()));
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "secure"))
            .rule(rule("secure.example.com"))
            .rule(rule("unlisted.example.com"))
            .rule(rule("*.wild.example.com"))
            .tls(["secure.example.com"], cert("c")),
    )
    .ingress(
        Ingress::new(Origin::new("ns", "no-secret")).rule(rule("nosecret.example.com")).with_tls_section(),
    )
    .ingress(
        Ingress::new(Origin::new("ns", "plain"))
            .rule(rule("plain.example.com"))
            .rule(HostRule::any_host().path(PathRule::prefix("/", web.clone()))),
    );
    let t = b.build(&mut EndpointStore::new()).table;
    for host in [
        "secure.example.com",
        "SECURE.example.com:80",
        "unlisted.example.com",
        "a.wild.example.com",
        "nosecret.example.com",
    ] {
        assert!(t.serves_tls(host), "{host}");
    }
    for host in ["plain.example.com", "other.example.com", "wild.example.com", ""] {
        assert!(!t.serves_tls(host), "{host}");
    }
    // The lookup says the same about the host it matched.
    assert!(t.lookup("a.wild.example.com", "/x").unwrap().host_tls);
    assert!(!t.lookup("plain.example.com", "/x").unwrap().host_tls);
    assert!(!t.lookup("other.example.com", "/x").unwrap().host_tls, "the catch-all");
}

/// `default-backend`: the route carries its Ingress's fallback, with the fallback's endpoints.
#[test]
fn a_route_carries_its_fallback_backend() {
    let (down, spare) = (BackendRef::new("ns", "down", 80), BackendRef::new("ns", "spare", 80));
    let mut store = EndpointStore::new();
    store.set(&spare, EndpointSet::new(["10.0.0.9:80".parse::<SocketAddr>().unwrap()]));
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "web"))
            .rule(HostRule::host("a.example.com").path(PathRule::prefix("/", down)))
            .fallback(spare.clone()),
    );
    let t = b.build(&mut store).table;
    let route = t.lookup("a.example.com", "/x").unwrap();
    assert!(route.backend.endpoints().is_empty());
    let fallback = route.fallback.expect("the fallback");
    assert_eq!((fallback.key(), fallback.endpoints().len()), (&spare, 1));
}
