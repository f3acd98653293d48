//! cargo run -p ingress-k8s --example check_manifests -- ingress-k8s/tests/fixtures/seed nginx demo.example.com/ webapp.example.com/
//!
//! Standalone mode, offline: reads every manifest under a directory, translates it with the
//! controller's class (second argument, default `ferry`), prints every problem, then where each
//! `host/path` argument would go and which certificate its host gets.
#![allow(clippy::print_stdout)]

use ingress_core::EndpointStore;
use ingress_k8s::{Config, ManifestDir, translate};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "ingress-k8s/tests/fixtures/seed".into());
    let class = args.next().unwrap_or_else(|| "ferry".into());
    let mut manifests = ManifestDir::new(&dir);
    manifests.scan()?;
    for error in manifests.errors() {
        println!("unreadable: {error}");
    }
    let config = Config { ingress_class: class, ..Config::default() };
    let mut translation = translate(&manifests.objects(), &config);
    let mut store = EndpointStore::new();
    let (table, problems) = translation.compile(&mut store);
    println!("{} hosts, {} routes, {} problems", table.host_count(), table.route_count(), problems.len());
    for problem in &problems {
        println!("  {problem}");
    }
    for request in args {
        let (host, path) = match request.find('/') {
            Some(i) => request.split_at(i),
            None => (request.as_str(), "/"),
        };
        match table.lookup(host, path) {
            Some(route) => {
                let endpoints: Vec<String> =
                    route.backend.endpoints().as_slice().iter().map(|e| e.addr.to_string()).collect();
                println!("{host}{path} → {} {endpoints:?}", route.backend.key());
            }
            None => println!("{host}{path} → no route (default backend - 404)"),
        }
        if let Some(tls) = table.tls().certificate_for(Some(host)) {
            println!("  TLS: {}", tls.certificate);
        }
    }
    Ok(())
}
