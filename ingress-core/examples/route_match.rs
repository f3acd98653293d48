//! cargo run -p ingress-core --example route_match
//!
//! Builds the seed tutorial's routes (demo.example.com, webapp.example.com with TLS) plus a few
//! rules that show precedence, then prints the decision for a handful of requests.
#![allow(clippy::print_stdout)]

use ingress_core::{
    BackendRef, CertificateRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder,
};

fn main() {
    let demo = BackendRef::new("default", "demo-app", 80);
    let webapp = BackendRef::new("default", "webapp", 8080);
    let api = BackendRef::new("default", "api", 8080);

    let mut endpoints = EndpointStore::new();
    endpoints.set(&demo, EndpointSet::new([std::net::SocketAddr::from(([10, 244, 1, 7], 80))]));

    let mut builder = TableBuilder::new();
    builder
        .ingress(
            Ingress::new(Origin::new("default", "demo-ingress").created_at(1))
                .rule(HostRule::host("demo.example.com").path(PathRule::prefix("/", demo))),
        )
        .ingress(
            Ingress::new(Origin::new("default", "webapp-ingress-tls").created_at(2))
                .rule(
                    HostRule::host("webapp.example.com")
                        .path(PathRule::prefix("/", webapp.clone()))
                        .path(PathRule::prefix("/api", api.clone()))
                        .path(PathRule::exact("/api", webapp)),
                )
                .tls(["webapp.example.com"], CertificateRef::new("default", "webapp-tls-secret")),
        )
        .ingress(
            // Younger, and claims the same host/path/type: reported, not silently dropped.
            Ingress::new(Origin::new("team-b", "late").created_at(3))
                .rule(HostRule::host("webapp.example.com").path(PathRule::prefix("/api/", api))),
        );
    let built = builder.build(&mut endpoints);

    println!("rejected rules:");
    for r in &built.rejected {
        println!("  {r}");
    }
    for (host, path) in [
        ("demo.example.com:30080", "/"),
        ("webapp.example.com", "/api"),
        ("webapp.example.com", "/api/users?id=1"),
        ("webapp.example.com", "/apiary"),
        ("unknown.example.com", "/"),
    ] {
        println!("\n== {host}{path}");
        println!("{}", built.table.explain(host, path));
    }
}
