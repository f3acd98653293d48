//! Shared fixtures for the benchmarks: synthetic route tables shaped like real clusters.

pub mod cluster;

use std::net::SocketAddr;

use ingress_core::{
    BackendRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule, PathType, RouteTable,
    TableBuilder,
};

/// Paths per host in every synthetic table.
pub const PATHS_PER_HOST: usize = 10;

/// The host name of host number `i`; every fifth host is a wildcard.
pub fn host_name(i: usize) -> String {
    if i % 5 == 4 { format!("*.tenant-{i}.apps.example.com") } else { format!("svc-{i}.apps.example.com") }
}

/// A request host that the host `i` matches.
pub fn request_host(i: usize) -> String {
    if i % 5 == 4 { format!("www.tenant-{i}.apps.example.com") } else { format!("svc-{i}.apps.example.com") }
}

/// The paths of every host: a mix of `Exact` and `Prefix`, one to three segments deep.
pub fn paths() -> Vec<(PathType, &'static str)> {
    vec![
        (PathType::Prefix, "/"),
        (PathType::Prefix, "/api"),
        (PathType::Prefix, "/api/v1"),
        (PathType::Exact, "/api/v1/health"),
        (PathType::Prefix, "/api/v2"),
        (PathType::Exact, "/login"),
        (PathType::Prefix, "/static"),
        (PathType::Prefix, "/static/images"),
        (PathType::Exact, "/favicon.ico"),
        (PathType::ImplementationSpecific, "/admin"),
    ]
}

/// The Ingresses of a table with `hosts` hosts × [`PATHS_PER_HOST`] paths: one Ingress per host,
/// two Services per Ingress.
pub fn ingresses(hosts: usize) -> Vec<Ingress> {
    ingresses_with_regex(hosts, 0)
}

/// [`ingresses`], with every `regex_every`-th host (0: none) in regex mode: its Ingress has the
/// `rewrite-target: /$2` idiom, its `/admin` path is a regex of its own
/// (`/admin(/|$)(.*)-<i>`, so no two hosts share a compiled regex), the others become
/// case-insensitive prefixes.
pub fn ingresses_with_regex(hosts: usize, regex_every: usize) -> Vec<Ingress> {
    (0..hosts)
        .map(|i| {
            let ns = format!("team-{}", i % 50);
            let regex = regex_every > 0 && i % regex_every == 0;
            let mut rule = HostRule::host(host_name(i));
            for (j, (t, p)) in paths().into_iter().enumerate() {
                let svc = if j % 2 == 0 { format!("web-{i}") } else { format!("api-{i}") };
                let p = if regex && p == "/admin" { format!("/admin(/|$)(.*)-{i}") } else { p.to_owned() };
                rule = rule.path(PathRule::new(p, t, BackendRef::new(ns.clone(), svc, 8080)));
            }
            let ingress = Ingress::new(Origin::new(ns, format!("ing-{i}")).created_at(i as i64)).rule(rule);
            if regex {
                let target = "/$2".parse().ok();
                ingress.policy(ingress_core::RoutePolicy { rewrite_target: target, ..Default::default() })
            } else {
                ingress
            }
        })
        .collect()
}

/// Builds the table for `hosts` hosts, with two endpoints per backend.
pub fn build(hosts: usize, endpoints: &mut EndpointStore) -> RouteTable {
    build_with_regex(hosts, 0, endpoints)
}

/// [`build`] of [`ingresses_with_regex`].
pub fn build_with_regex(hosts: usize, regex_every: usize, endpoints: &mut EndpointStore) -> RouteTable {
    let mut b = TableBuilder::new();
    for ing in ingresses_with_regex(hosts, regex_every) {
        b.ingress(ing);
    }
    let table = b.build(endpoints).table;
    let keys: Vec<BackendRef> = table.backends().map(|b| b.key().clone()).collect();
    for (n, key) in keys.iter().enumerate() {
        let base = u16::try_from(n % 60_000).unwrap_or(0);
        endpoints.set(
            key,
            EndpointSet::new([
                SocketAddr::from(([10, 0, 0, 1], base)),
                SocketAddr::from(([10, 0, 0, 2], base)),
            ]),
        );
    }
    table
}

/// Request (host, path) pairs that hit: spread over all hosts, every path shape.
pub fn hits(hosts: usize, n: usize) -> Vec<(String, String)> {
    let req_paths = [
        "/",
        "/api/users/42",
        "/api/v1/health",
        "/login",
        "/static/images/logo.png",
        "/api/v2/x",
        "/admin/x",
    ];
    (0..n)
        .map(|k| {
            let i = (k * 7919) % hosts;
            (request_host(i), req_paths[k % req_paths.len()].to_owned())
        })
        .collect()
}

/// Request (host, path) pairs for hosts no rule names: the answer is "no route".
pub fn misses(n: usize) -> Vec<(String, String)> {
    (0..n).map(|k| (format!("unknown-{k}.elsewhere.org"), "/api/v1".to_owned())).collect()
}
