//! Rejections: invalid input is refused rule by rule, named by origin and field; the rest routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, EndpointStore, Field, HostRule, Ingress, Origin, PathRule, PathType, PortRef, Reason,
    Service, ServicePort, TableBuilder,
};

fn good() -> Ingress {
    Ingress::new(Origin::new("ns", "good"))
        .rule(HostRule::host("good.com").path(PathRule::prefix("/", BackendRef::new("ns", "web", 80))))
}

fn build_with(bad: Ingress) -> ingress_core::Built {
    let mut b = TableBuilder::new();
    b.ingress(good()).ingress(bad);
    b.service(Service {
        namespace: "ns".into(),
        name: "web".into(),
        ports: vec![ServicePort { name: Some("http".into()), port: 80 }],
    });
    let built = b.build(&mut EndpointStore::new());
    assert!(built.table.lookup("good.com", "/").is_some(), "the good Ingress must keep routing");
    built
}

fn one_path(host: &str, path: &str, t: PathType, backend: BackendRef) -> Ingress {
    Ingress::new(Origin::new("ns", "bad")).rule(HostRule::host(host).path(PathRule::new(path, t, backend)))
}

#[test]
fn invalid_hosts_are_rejected_with_field() {
    for host in ["bad..com", "under_score.com", "*.*.com", "a*.com", "1.2.3.4", "-x.com", &"a".repeat(64)] {
        let built = build_with(one_path(host, "/", PathType::Prefix, BackendRef::new("ns", "web", 80)));
        assert_eq!(built.rejected.len(), 1, "host {host}");
        assert_eq!(built.rejected[0].field, Field::Host { rule: 0 });
        assert!(matches!(built.rejected[0].reason, Reason::InvalidHost { .. }), "host {host}");
    }
}

#[test]
fn invalid_paths_are_rejected_with_field() {
    let cases = [
        ("relative", PathType::Prefix),
        ("", PathType::Exact),
        ("/a//b", PathType::Prefix),
        ("/a/../b", PathType::Exact),
        ("/a/.", PathType::Prefix),
        ("/a%2fb", PathType::Prefix),
        ("/a b", PathType::ImplementationSpecific),
        ("/a\nb", PathType::Prefix),
        ("/a?b", PathType::Exact),
    ];
    for (path, t) in cases {
        let built = build_with(one_path("bad.com", path, t, BackendRef::new("ns", "web", 80)));
        assert_eq!(built.rejected.len(), 1, "path {path:?}");
        assert_eq!(built.rejected[0].field, Field::Path { rule: 0, path: 0 });
        assert!(matches!(built.rejected[0].reason, Reason::InvalidPath { .. }), "path {path:?}");
        assert!(
            built.rejected[0]
                .to_string()
                .starts_with("ingress ns/bad spec.rules[0].http.paths[0]: invalid path")
        );
    }
}

#[test]
fn unknown_port_name_and_number_are_rejected() {
    let built = build_with(one_path("bad.com", "/", PathType::Prefix, BackendRef::new("ns", "web", "grpc")));
    assert!(matches!(&built.rejected[0].reason, Reason::UnknownPortName { port, .. } if port == "grpc"));
    let built = build_with(one_path("bad.com", "/", PathType::Prefix, BackendRef::new("ns", "web", 81)));
    assert!(matches!(built.rejected[0].reason, Reason::UnknownPortNumber { port: 81, .. }));
}

#[test]
fn named_port_resolves_to_the_port_number() {
    let built =
        build_with(one_path("named.com", "/", PathType::Prefix, BackendRef::new("ns", "web", "http")));
    assert!(built.rejected.is_empty());
    let key = built.table.lookup("named.com", "/").map(|r| r.backend.key().clone());
    assert_eq!(key.map(|k| k.port), Some(PortRef::Number(80)));
}

#[test]
fn undeclared_services_are_kept_as_written() {
    let built =
        build_with(one_path("other.com", "/", PathType::Prefix, BackendRef::new("ns", "nowhere", "http")));
    assert!(built.rejected.is_empty());
    assert_eq!(
        built.table.lookup("other.com", "/").map(|r| r.backend.key().port.clone()),
        Some("http".into())
    );
}

#[test]
fn empty_ingress_is_rejected() {
    let built = build_with(Ingress::new(Origin::new("ns", "bad")));
    assert_eq!(built.rejected[0].reason, Reason::Empty);
    assert_eq!(built.rejected[0].field, Field::Object);
}

#[test]
fn one_bad_path_does_not_drop_its_siblings() {
    let bad = Ingress::new(Origin::new("ns", "mixed")).rule(
        HostRule::host("mixed.com")
            .path(PathRule::prefix("nope", BackendRef::new("ns", "web", 80)))
            .path(PathRule::prefix("/ok", BackendRef::new("ns", "web", 80))),
    );
    let built = build_with(bad);
    assert_eq!(built.rejected.len(), 1);
    assert_eq!(built.rejected[0].field, Field::Path { rule: 0, path: 0 });
    assert!(built.table.lookup("mixed.com", "/ok").is_some());
}

#[test]
fn invalid_tls_host_is_rejected() {
    let bad = Ingress::new(Origin::new("ns", "tls"))
        .default_backend(BackendRef::new("ns", "web", 80))
        .tls(["ok.com", "bad..com"], ingress_core::CertificateRef::new("ns", "cert"));
    let built = build_with(bad);
    assert_eq!(built.rejected.len(), 1);
    assert_eq!(built.rejected[0].field, Field::Tls { entry: 0, host: Some(1) });
    assert!(built.table.tls().certificate_for(Some("ok.com")).is_some());
}
