//! cargo run --release -p ingress-proxy --example bench_proxy -- 127.0.0.1:18082 127.0.0.1:18080 1
//!
//! The proxy as the benchmark runs it (`benches/proxy/run.sh`): one static route
//! (`bench.local`, and every other host through the default backend) to one upstream, plain
//! HTTP, access log off, `threads` worker threads, mimalloc, Pingora's single-threaded
//! runtimes unless `FERRY_WORK_STEALING=1`, ingress-nginx's metric series kept beside Ferry's
//! (as the controller keeps them). With `FERRY_BENCH_SHAPE=rewrite` the route is the
//! `rewrite-target` idiom (`/api(/|$)(.*)` → `/$2`) with a response header
//! (`X-Frame-Options: DENY`); with `basic-auth`, basic authentication (user `bench`, password
//! `bench`, an apr1 hash as `htpasswd` writes it); with `hash`, `upstream-hash-by:
//! $request_uri` over the upstream on 127.0.0.1–127.0.0.4; with `https-upstream`,
//! `backend-protocol: HTTPS` (nginx's defaults: certificate not checked); with `grpc`,
//! `backend-protocol: GRPC` (HTTP/2 to the upstream without TLS; clients speak h2c). Stops on
//! SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use ingress_core::{
    BackendProtocol, BackendRef, Balance, BasicAuth, EndpointSet, EndpointStore, HashBy, HeaderOp, HostRule,
    Ingress, Origin, PathRule, PathType, RoutePolicy, TableBuilder, UpstreamProtocol,
};
use ingress_proxy::{ClientLimits, ControllerLabels, ProxyConfig, ProxyHandle, ProxyServer, RuntimeSettings};

/// `htpasswd -nb -m bench bench` (apr1, as `htpasswd` writes by default); `run.sh` gives
/// nginx the same line.
const BENCH_APR1: &str = "$apr1$benchslt$xg8nhdNCXN8cv7mXxgHvB0";

// The allocator is the binary's choice; glibc malloc showed up at ~15% of the proxy's profile.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().unwrap_or_else(|| "127.0.0.1:18082".into()).parse()?;
    let upstream: SocketAddr = args.next().unwrap_or_else(|| "127.0.0.1:18080".into()).parse()?;
    let threads: usize = args.next().unwrap_or_else(|| "1".into()).parse()?;
    let work_stealing = std::env::var("FERRY_WORK_STEALING").is_ok_and(|v| v == "1");

    let shape = std::env::var("FERRY_BENCH_SHAPE").unwrap_or_default();
    let backend = BackendRef::new("bench", "upstream", 80);
    let mut endpoints = EndpointStore::new();
    let addrs: Vec<SocketAddr> = if shape == "hash" {
        (1..=4).map(|i| SocketAddr::from(([127, 0, 0, i], upstream.port()))).collect()
    } else {
        vec![upstream]
    };
    endpoints.set(&backend, EndpointSet::new(addrs));
    let mut builder = TableBuilder::new();
    let ingress = Ingress::new(Origin::new("bench", "bench")).default_backend(backend.clone());
    let ingress = match shape.as_str() {
        "rewrite" => {
            let path = PathRule::new("/api(/|$)(.*)", PathType::ImplementationSpecific, backend);
            ingress.rule(HostRule::host("bench.local").path(path)).policy(RoutePolicy {
                rewrite_target: Some("/$2".parse()?),
                response_headers: vec![HeaderOp::set("x-frame-options", "DENY")?],
                ..RoutePolicy::default()
            })
        }
        "basic-auth" => {
            let users = BTreeMap::from([("bench".to_owned(), BENCH_APR1.to_owned())]);
            let auth = BasicAuth { realm: "bench".to_owned(), users };
            let route = HostRule::host("bench.local").path(PathRule::prefix("/", backend));
            ingress
                .rule(route)
                .policy(RoutePolicy { basic_auth: Some(Arc::new(auth)), ..RoutePolicy::default() })
        }
        "hash" => {
            let balance = Balance {
                load_balance: None,
                hash_by: Some(HashBy { key: "$request_uri".parse()?, subset: None }),
                affinity: None,
            };
            let route = HostRule::host("bench.local").path(PathRule::prefix("/", backend));
            ingress
                .rule(route)
                .policy(RoutePolicy { balance: Some(Box::new(balance)), ..RoutePolicy::default() })
        }
        "https-upstream" | "grpc" => {
            let protocol = if shape == "grpc" { BackendProtocol::Grpc } else { BackendProtocol::Https };
            let upstream = UpstreamProtocol { protocol, tls: None };
            let route = HostRule::host("bench.local").path(PathRule::prefix("/", backend));
            ingress
                .rule(route)
                .policy(RoutePolicy { upstream: Some(Arc::new(upstream)), ..RoutePolicy::default() })
        }
        _ => ingress.rule(HostRule::host("bench.local").path(PathRule::prefix("/", backend))),
    };
    builder.ingress(ingress);
    // `keep-alive-requests` as high as the nginx it is compared with (`keepalive_requests`), so
    // neither proxy's clients reconnect during a round.
    let client = ClientLimits { keepalive_requests: 1_000_000, ..ClientLimits::default() };
    let handle = ProxyHandle::with_settings(RuntimeSettings {
        access_log: false,
        client,
        ..RuntimeSettings::default()
    });
    handle.install(Arc::new(builder.build(&mut endpoints).table));

    let config = ProxyConfig {
        http_addr: Some(listen),
        https_addr: None,
        admin_addr: None,
        threads,
        work_stealing,
        grace_period: Duration::from_secs(0),
        shutdown_timeout: Duration::from_secs(1),
        // ingress-nginx's series too, as the controller keeps them.
        controller_labels: Some(ControllerLabels {
            namespace: "bench".into(),
            class: "ferry.dev/ingress-controller".into(),
            pod: "bench".into(),
            per_host: true,
        }),
        ..ProxyConfig::default()
    };
    ProxyServer::new(config, handle).start()?.wait();
    Ok(())
}
