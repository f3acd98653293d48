//! cargo run -p ferry-examples --example explain_yaml -- examples/demo nginx http://demo.example.com/ https://webapp.example.com/x
//!
//! Builds a route table from Ingress YAML (every manifest under a directory, any Ingress API
//! version, with the controller's translation), prints what was rejected, then the `explain`
//! answer for each URL: which Ingress, rule and path won, which lost and why, the backend, its
//! endpoints and the certificate SNI would get.
#![allow(clippy::print_stdout)]

use anyhow::Context;
use ingress_core::EndpointStore;
use ingress_k8s::{Config, ManifestDir, translate};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "examples/demo".into());
    let class = args.next().unwrap_or_else(|| "nginx".into());
    let mut manifests = ManifestDir::new(&dir);
    manifests.scan().with_context(|| format!("reading {dir}"))?;
    for error in manifests.errors() {
        println!("not applied: {error}");
    }
    let config = Config { ingress_class: class, ..Config::default() };
    let (table, problems) = translate(&manifests.objects(), &config).compile(&mut EndpointStore::new());
    println!("{} hosts, {} routes, {} problems", table.host_count(), table.route_count(), problems.len());
    for problem in &problems {
        println!("  {problem}");
    }
    for url in args {
        let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        println!("\n== {url}\n{}", table.explain(host, path));
        if let Some(route) = table.lookup(host, path) {
            let endpoints: Vec<String> =
                route.backend.endpoints().as_slice().iter().map(|e| e.addr.to_string()).collect();
            println!("endpoints: {endpoints:?}");
        }
    }
    Ok(())
}
