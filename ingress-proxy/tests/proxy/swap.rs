//! Snapshot swaps under load: no failed request, no dropped WebSocket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ingress_core::{
    BackendRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder,
};
use ingress_proxy::ProxyHandle;

use crate::support::*;
use crate::websocket;

const REQUESTS: usize = 6_000;
const CLIENTS: usize = 4;
const SWAPS: usize = 600;

/// The stable route plus one unrelated route per generation, to one of seven backends whose
/// endpoint (one of `dead`, where nothing listens) changes every time.
fn table(
    store: &mut EndpointStore,
    stable: SocketAddr,
    dead: &[SocketAddr],
    generation: usize,
) -> ingress_core::RouteTable {
    let svc = BackendRef::new("test", "stable", 80);
    let churn = BackendRef::new("test", format!("churn-{}", generation % 7), 80);
    store.set(&svc, EndpointSet::new([stable]));
    store.set(&churn, EndpointSet::new([dead[generation % dead.len()]]));
    let mut builder = TableBuilder::new();
    builder.ingress(
        Ingress::new(Origin::new("test", "stable"))
            .rule(HostRule::host("stable.example.com").path(PathRule::prefix("/", svc))),
    );
    builder
        .ingress(Ingress::new(Origin::new("test", format!("gen-{generation}"))).rule(
            HostRule::host(format!("gen-{generation}.example.com")).path(PathRule::prefix("/", churn)),
        ));
    builder.build(store).table
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_snapshots_under_load_fails_nothing() {
    let stable = Backend::start("stable").await;
    let handle = ProxyHandle::new();
    let mut store = EndpointStore::new();
    // Eleven (coprime to the seven churn backends), so each backend's endpoint changes.
    let dead: Vec<SocketAddr> = (0..11).map(|_| local(free_port())).collect();
    handle.install(Arc::new(table(&mut store, stable.addr, &dead, 0)));
    let proxy = Proxy::start(handle.clone());
    let mut ws = websocket::open(proxy.http, "stable.example.com").await;
    websocket::echo(&mut ws, "before").await;

    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let ok = ok.clone();
            let addr = proxy.http;
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await;
                for i in 0..REQUESTS / CLIENTS {
                    let reply = conn.get("stable.example.com", &format!("/{c}/{i}")).await;
                    assert_eq!((reply.status, reply.text()), (200, format!("stable GET /{c}/{i}")));
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let swapper = {
        let handle = handle.clone();
        let ok = ok.clone();
        tokio::task::spawn_blocking(move || {
            let mut swaps = 0;
            // Spread the swaps over the load: pace by progress, bounded in time.
            while swaps < SWAPS && started.elapsed() < Duration::from_secs(60) {
                handle.install(Arc::new(table(&mut store, stable.addr, &dead, swaps + 1)));
                swaps += 1;
                let target = (swaps * REQUESTS) / (SWAPS + SWAPS / 5);
                while ok.load(Ordering::Relaxed) < target && started.elapsed() < Duration::from_secs(60) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            swaps
        })
    };
    for c in clients {
        c.await.unwrap();
    }
    let swaps = swapper.await.unwrap();
    assert_eq!(ok.load(Ordering::Relaxed), REQUESTS);
    assert!(swaps >= 500, "only {swaps} swaps");
    assert_eq!(handle.generation(), swaps as u64 + 1);
    // The WebSocket opened before the swaps is still the same, working connection.
    websocket::echo(&mut ws, "after").await;
    // The last unrelated route is live.
    let last = fetch(proxy.http, &format!("gen-{swaps}.example.com"), "/").await;
    assert_eq!(last.status, 502, "routed to the churn backend (nobody listens there)");
}
