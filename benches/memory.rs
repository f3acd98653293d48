//! Bytes of heap per route, for tables of 100 to 100k routes: the table plus its endpoint
//! store, counted by an instrumented system allocator after the input is dropped.
//!
//! Run with `cargo bench -p ferry-benches --bench memory` (or `benches/route-summary.sh`).
#![allow(missing_docs, clippy::print_stdout)]

use std::alloc::System;

use ferry_benches::build;
use ingress_core::EndpointStore;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// Counts heap bytes so the memory figure is measured, not estimated.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const HOSTS: [usize; 4] = [10, 100, 1_000, 10_000];

fn main() {
    let mut lines = String::from("routes\tbytes_per_route\n");
    for hosts in HOSTS {
        let region = Region::new(GLOBAL);
        let mut store = EndpointStore::new();
        let table = build(hosts, &mut store);
        let stats = region.change();
        // stats_alloc already folds reallocations into bytes_allocated/deallocated.
        let live = stats.bytes_allocated as isize - stats.bytes_deallocated as isize;
        let routes = table.route_count();
        let per_route = live as f64 / routes as f64;
        println!("memory: {routes} routes: {per_route:.1} bytes/route (table + endpoints)");
        lines.push_str(&format!("{routes}\t{per_route:.1}\n"));
        drop((table, store));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("route-memory.tsv"), lines);
}
