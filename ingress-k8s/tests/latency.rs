//! Propagation latency: API write acknowledged → change visible in the published table (or,
//! for endpoints, in the live endpoint slot), over 120 changes with 1,000 unrelated Ingresses
//! present. Prints p50/p99 (a benchmark figure); asserts only that every change arrives.
//!
//! `cargo test -p ingress-k8s --release --test latency -- --nocapture` for optimised figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::{ApiServer, apply, delete, routed};
use futures::{StreamExt, TryStreamExt};
use ingress_k8s::{Snapshot, Snapshots};

const UNRELATED: usize = 1_000;
const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ferry}\nspec: {controller: ferry.dev/ingress-controller}\n";

fn ingress(name: &str, service: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: ferry\n  rules:\n  - host: {name}.example.com\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}\n"
    )
}

/// Time from now until `check` holds, polling the live snapshot (endpoint slots change without
/// a publish) and waking on every publish.
async fn until(snapshots: &mut Snapshots, start: Instant, check: impl Fn(&Snapshot) -> bool) -> Duration {
    loop {
        if let Some(s) = snapshots.borrow_and_update().clone()
            && check(&s)
        {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "change never arrived");
        tokio::select! {
            _ = snapshots.changed() => {}
            () = tokio::time::sleep(Duration::from_micros(250)) => {}
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_latency_with_1000_unrelated_ingresses() -> Result<()> {
    common::logs();
    let server = ApiServer::shared()?;
    let admin = server.admin().await?;
    let ns = common::namespace(&admin, "latency").await?;
    apply(&admin, &ns, CLASS).await?;
    for service in ["app", "unrelated"] {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {service}}}\nspec:\n  ports: [{{name: http, port: 80, protocol: TCP}}]\n"
        );
        apply(&admin, &ns, &yaml).await?;
    }
    apply(&admin, &ns, &common::slice("app-1", "app", "http", 10000, &["127.0.0.1"])).await?;
    let started = Instant::now();
    futures::stream::iter(0..UNRELATED)
        .map(|i| {
            let (admin, ns) = (admin.clone(), ns.clone());
            async move { apply(&admin, &ns, &ingress(&format!("unrelated-{i}"), "unrelated")).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!("created {UNRELATED} unrelated Ingresses in {:?}", started.elapsed());

    let controller = ingress_k8s::Controller::start(admin.clone(), common::config(&ns, "latency")).await?;
    let mut snapshots = controller.snapshots();
    let first = controller.ready().await?;
    assert!(first.problems.is_empty(), "{:?}", first.problems.first());
    assert_eq!(first.table.host_count(), UNRELATED, "the unrelated Ingresses are all served");

    let mut ingress_ms = Vec::new();
    let mut endpoint_ms = Vec::new();
    let mut delete_ms = Vec::new();
    for round in 0..40u16 {
        // Ingress create → its host routes.
        let name = format!("probe-{round}");
        apply(&admin, &ns, &ingress(&name, "app")).await?;
        let t0 = Instant::now();
        let host = format!("{name}.example.com");
        ingress_ms.push(until(&mut snapshots, t0, |s| routed(s, &host, "/").is_some()).await);

        // EndpointSlice update → the slot shows the new port (no table rebuild).
        let port = 10001 + round;
        apply(&admin, &ns, &common::slice("app-1", "app", "http", port, &["127.0.0.1"])).await?;
        let t0 = Instant::now();
        let want = format!("127.0.0.1:{port}");
        endpoint_ms.push(
            until(&mut snapshots, t0, |s| routed(s, &host, "/").is_some_and(|e| e == [want.clone()])).await,
        );

        // Ingress delete → the host is gone.
        delete(&admin, &ns, "networking.k8s.io/v1", "Ingress", &name).await?;
        let t0 = Instant::now();
        delete_ms.push(until(&mut snapshots, t0, |s| routed(s, &host, "/").is_none()).await);
    }
    let mut all: Vec<Duration> = ingress_ms.iter().chain(&endpoint_ms).chain(&delete_ms).copied().collect();
    assert_eq!(all.len(), 120);
    let report = |name: &str, v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        eprintln!(
            "propagation {name:<18} n={:<3} p50={:>7.2?} p99={:>7.2?} max={:>7.2?}",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v[v.len() - 1]
        );
    };
    report("ingress create", &ingress_ms);
    report("endpointslice edit", &endpoint_ms);
    report("ingress delete", &delete_ms);
    all.sort();
    report("all", &all);
    controller.shutdown().await;
    Ok(())
}
