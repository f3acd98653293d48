//! `ssl-passthrough`: which server names pass their TLS connections through, and to which
//! backend (the host's `/` path's, as in ingress-nginx).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, EndpointStore, Field, HostRule, Ingress, Origin, PathRule, Reason, TableBuilder,
};

fn svc(name: &str) -> BackendRef {
    BackendRef::new("ns", name, 443)
}

#[test]
fn the_hosts_root_backend_gets_the_connections() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "argocd").created_at(1))
            .rule(HostRule::host("argocd.example.com").path(PathRule::prefix("/", svc("argocd-server"))))
            .rule(HostRule::host("*.pass.example.com").path(PathRule::prefix("/", svc("wild"))))
            .with_ssl_passthrough(),
    )
    // Another Ingress's path on the host: the host passes through all the same, to `/`'s
    // backend; ingress-nginx marks the whole server.
    .ingress(
        Ingress::new(Origin::new("ns", "other").created_at(2))
            .rule(HostRule::host("argocd.example.com").path(PathRule::prefix("/api", svc("api")))),
    )
    .ingress(
        Ingress::new(Origin::new("ns", "plain").created_at(3))
            .rule(HostRule::host("plain.example.com").path(PathRule::prefix("/", svc("plain")))),
    );
    let built = b.build(&mut EndpointStore::new());
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    let t = built.table;
    assert!(t.has_passthrough());
    let to = |sni: &str| t.passthrough(sni).map(|b| b.key().service.to_string());
    assert_eq!(to("argocd.example.com").as_deref(), Some("argocd-server"));
    assert_eq!(
        to("ArgoCD.Example.com").as_deref(),
        Some("argocd-server"),
        "server names are case-insensitive"
    );
    assert_eq!(to("x.pass.example.com").as_deref(), Some("wild"));
    assert_eq!(to("a.b.pass.example.com"), None, "a wildcard covers one label");
    assert_eq!(to("plain.example.com"), None);
    assert_eq!(to("unknown.example.com"), None);
    assert_eq!(to(""), None);
    // HTTP routing is untouched.
    assert_eq!(t.lookup("argocd.example.com", "/api/x").unwrap().backend.key().service.as_ref(), "api");
}

#[test]
fn a_host_without_a_root_path_or_without_a_name_is_reported_and_terminated() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "no-root"))
            .rule(HostRule::host("deep.example.com").path(PathRule::prefix("/app", svc("app"))))
            .rule(HostRule::any_host().path(PathRule::prefix("/", svc("any"))))
            .with_ssl_passthrough(),
    );
    let built = b.build(&mut EndpointStore::new());
    let t = &built.table;
    assert!(!t.has_passthrough());
    assert_eq!(t.passthrough("deep.example.com").map(|b| b.key().service.to_string()), None);
    assert_eq!(built.rejected.len(), 2, "{:?}", built.rejected);
    for r in &built.rejected {
        assert_eq!(r.field, Field::Annotation("ssl-passthrough"));
        assert!(matches!(&r.reason, Reason::Passthrough { .. }), "{r}");
    }
    assert!(
        built.rejected.iter().any(|r| r.to_string().contains("`deep.example.com`: the host has no `/` path"))
    );
}

#[test]
fn no_passthrough_costs_nothing() {
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("ns", "plain"))
            .rule(HostRule::host("plain.example.com").path(PathRule::prefix("/", svc("plain")))),
    );
    let t = b.build(&mut EndpointStore::new()).table;
    assert!(!t.has_passthrough());
    assert!(t.passthrough("plain.example.com").is_none());
}
