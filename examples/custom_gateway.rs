//! cargo run -p ferry-examples --example custom_gateway
//!
//! A gateway with no Kubernetes: routes built in code with `ingress-core`, served by
//! `ingress-proxy` on 127.0.0.1:8000 (admin on 127.0.0.1:9000), to two local backends this
//! program starts itself. Every two seconds it moves `/api` between the backends by changing its
//! endpoints — no new table, no restart, no dropped connection. Try:
//!
//!   curl -H 'Host: shop.example.com' http://127.0.0.1:8000/
//!   curl -H 'Host: shop.example.com' http://127.0.0.1:8000/api/orders
//!   curl http://127.0.0.1:9000/metrics
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use ingress_core::{
    BackendRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder,
};
use ingress_proxy::{ProxyConfig, ProxyHandle, ProxyServer};

/// A minimal HTTP/1.1 backend answering `hello from <name>` (one request per connection).
fn backend(name: &'static str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = format!("hello from {name}\n");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(addr)
}

/// The routes: `/` to the web backend, `/api` to `api`.
fn table(api: &BackendRef, web: &BackendRef, endpoints: &mut EndpointStore) -> ingress_core::RouteTable {
    let mut builder = TableBuilder::new();
    builder.ingress(
        Ingress::new(Origin::new("gateway", "shop")).rule(
            HostRule::host("shop.example.com")
                .path(PathRule::prefix("/", web.clone()))
                .path(PathRule::prefix("/api", api.clone())),
        ),
    );
    let built = builder.build(endpoints);
    for rejected in &built.rejected {
        println!("rejected: {rejected}");
    }
    built.table
}

fn main() -> anyhow::Result<()> {
    let (blue, green) = (backend("blue")?, backend("green")?);
    let web = BackendRef::new("gateway", "web", 80);
    let api = BackendRef::new("gateway", "api", 80);
    let mut endpoints = EndpointStore::new();
    endpoints.set(&web, EndpointSet::new([blue]));
    endpoints.set(&api, EndpointSet::new([green]));

    let handle = ProxyHandle::new();
    handle.install(Arc::new(table(&api, &web, &mut endpoints)));
    let config = ProxyConfig {
        http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8000))),
        https_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8443))),
        admin_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
        ..ProxyConfig::default()
    };
    let _running = ProxyServer::new(config, handle).start()?;
    println!("gateway on http://127.0.0.1:8000 (https 8443, admin 9000); Ctrl-C to stop");

    // Endpoint changes need no new table: the table shares the store's slots.
    for flip in 0u64.. {
        std::thread::sleep(Duration::from_secs(2));
        let to = if flip % 2 == 0 { blue } else { green };
        endpoints.set(&api, EndpointSet::new([to]));
        println!("/api now served by {to}");
    }
    Ok(())
}
