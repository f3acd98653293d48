//! More names for a host: `server-alias` (the alias serves what its host serves) and
//! `from-to-www-redirect` (the `www.` twin redirects to the host), with ingress-nginx's rule
//! that a name which is a host of its own keeps its own routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, CertificateRef, EndpointStore, Field, HostRule, Ingress, Origin, PathRule, Reason,
    TableBuilder,
};

fn svc(name: &str) -> BackendRef {
    BackendRef::new("ns", name, 80)
}

fn rule(host: &str, path: &str, service: &str) -> HostRule {
    HostRule::host(host).path(PathRule::prefix(path, svc(service)))
}

fn ingress(name: &str, created: i64) -> Ingress {
    Ingress::new(Origin::new("ns", name).created_at(created))
}

#[test]
fn an_alias_serves_every_path_of_its_host_unless_it_is_a_host_itself() {
    let mut b = TableBuilder::new();
    b.ingress(
        ingress("shop", 1)
            .rule(rule("shop.test", "/", "web"))
            .aliases(["store.test", "*.shop.test", "Taken.test", "shop.test"])
            .with_tls_section(),
    )
    // Another Ingress's path on the same host: the alias serves it too (aliases name servers).
    .ingress(ingress("api", 2).rule(rule("shop.test", "/api", "api")))
    .ingress(ingress("taken", 3).rule(rule("taken.test", "/", "other")));
    let built = b.build(&mut EndpointStore::new());
    let t = &built.table;

    for host in ["store.test", "STORE.test:8443", "eu.shop.test"] {
        assert_eq!(t.lookup(host, "/").unwrap().backend.key().service.as_ref(), "web", "{host}");
        assert_eq!(t.lookup(host, "/api/x").unwrap().backend.key().service.as_ref(), "api", "{host}");
        assert!(t.serves_tls(host), "{host}: the alias is served as its host is");
    }
    assert_eq!(
        t.lookup("taken.test", "/").unwrap().backend.key().service.as_ref(),
        "other",
        "the real host wins"
    );
    assert!(t.lookup("a.b.shop.test", "/").is_none(), "a wildcard alias is one label, as a host is");
    assert_eq!(t.host_count(), 2, "aliases are names, not hosts");

    assert_eq!(built.rejected.len(), 1, "{:?}", built.rejected);
    let r = &built.rejected[0];
    assert_eq!((&*r.origin.name, r.field), ("shop", Field::Annotation("server-alias")));
    assert!(
        matches!(&r.reason, Reason::Alias { alias, why } if alias == "Taken.test" && why.contains("host of its own"))
    );
}

#[test]
fn an_alias_gets_its_hosts_certificate_unless_it_has_its_own() {
    let (shop_cert, own_cert) = (CertificateRef::new("ns", "shop-tls"), CertificateRef::new("ns", "own-tls"));
    let mut b = TableBuilder::new();
    b.ingress(
        ingress("shop", 1)
            .rule(rule("shop.test", "/", "web"))
            .tls(["shop.test"], shop_cert.clone())
            .aliases(["store.test", "own.store.test"]),
    )
    .ingress(
        ingress("own", 2).rule(rule("other.test", "/", "web")).tls(["own.store.test"], own_cert.clone()),
    );
    let t = b.build(&mut EndpointStore::new()).table;
    let cert = |name: &str| t.tls().certificate_for(Some(name)).map(|e| e.certificate.clone());
    assert_eq!(cert("store.test"), Some(shop_cert));
    assert_eq!(cert("own.store.test"), Some(own_cert), "a TLS entry of its own wins");
}

#[test]
fn the_oldest_ingress_sets_a_hosts_aliases_and_an_alias_belongs_to_one_host() {
    let mut b = TableBuilder::new();
    b.ingress(ingress("new", 2).rule(rule("a.test", "/", "new")).aliases(["new-alias.test"]))
        .ingress(ingress("old", 1).rule(rule("a.test", "/old", "old")).aliases(["old-alias.test"]))
        .ingress(ingress("b", 3).rule(rule("b.test", "/", "b")).aliases(["old-alias.test", "bad..name"]));
    let built = b.build(&mut EndpointStore::new());
    let t = &built.table;
    assert_eq!(t.lookup("old-alias.test", "/old").unwrap().backend.key().service.as_ref(), "old");
    assert_eq!(t.lookup("old-alias.test", "/").unwrap().backend.key().service.as_ref(), "new");
    assert!(t.lookup("new-alias.test", "/").is_none(), "the younger Ingress's aliases are not served");
    let mut whys: Vec<String> =
        built.rejected.iter().map(|r| format!("{} {}", r.origin.name, r.reason)).collect();
    whys.sort();
    assert_eq!(whys.len(), 3, "{whys:?}");
    assert!(whys[0].starts_with("b alias `bad..name`: must not contain empty labels"), "{whys:?}");
    assert!(whys[1].starts_with("b alias `old-alias.test`: already an alias of host `a.test`"), "{whys:?}");
    assert!(
        whys[2].starts_with("new alias `new-alias.test`: host `a.test` already has the aliases of"),
        "{whys:?}"
    );
}

#[test]
fn the_www_twin_redirects_to_its_host_unless_it_is_a_host_itself() {
    let mut b = TableBuilder::new();
    b.ingress(ingress("bare", 1).rule(rule("example.test", "/", "web")).with_www_redirect())
        .ingress(ingress("www", 2).rule(rule("www.other.test", "/", "web")).with_www_redirect())
        .ingress(ingress("both", 3).rule(rule("both.test", "/", "web")).with_www_redirect())
        .ingress(ingress("both-www", 4).rule(rule("www.both.test", "/", "www")))
        .ingress(ingress("wild", 5).rule(rule("*.example.test", "/", "wild")))
        .ingress(ingress("plain", 6).rule(rule("plain.test", "/", "web")));
    let t = b.build(&mut EndpointStore::new()).table;
    assert_eq!(t.host_redirect("www.example.test"), Some("example.test"));
    assert_eq!(t.host_redirect("WWW.Example.test:8080"), Some("example.test"));
    assert_eq!(t.host_redirect("other.test"), Some("www.other.test"));
    assert_eq!(t.host_redirect("example.test"), None, "the host itself is served");
    assert_eq!(t.host_redirect("www.both.test"), None, "a host of its own is not redirected");
    assert_eq!(t.host_redirect("www.plain.test"), None, "no annotation, no redirect");
    assert_eq!(t.lookup("www.both.test", "/").unwrap().backend.key().service.as_ref(), "www");
    // The twin is an exact name: it wins over the wildcard that would otherwise take it.
    assert_eq!(t.lookup("www.example.test", "/").unwrap().backend.key().service.as_ref(), "wild");
}
