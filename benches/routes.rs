//! Route-matching benchmarks: lookup latency for 100 to 100k routes, build time, bytes per route.
//!
//! Run with `cargo bench -p ferry-benches --bench routes`, or `benches/route-summary.sh` for a
//! summary table.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::alloc::System;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferry_benches::{PATHS_PER_HOST, build, hits, misses};
use ingress_core::EndpointStore;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// Counts heap bytes so the memory figure is measured, not estimated.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const HOSTS: [usize; 4] = [10, 100, 1_000, 10_000];
const BATCH: usize = 1_000;

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for hosts in HOSTS {
        let routes = hosts * PATHS_PER_HOST;
        let table = build(hosts, &mut EndpointStore::new());
        let hit = hits(hosts, BATCH);
        let miss = misses(BATCH);
        g.bench_with_input(BenchmarkId::new("hit", routes), &hit, |b, reqs| {
            b.iter(|| {
                for (h, p) in reqs {
                    black_box(table.lookup(black_box(h), black_box(p)));
                }
            });
        });
        g.bench_with_input(BenchmarkId::new("miss", routes), &miss, |b, reqs| {
            b.iter(|| {
                for (h, p) in reqs {
                    black_box(table.lookup(black_box(h), black_box(p)));
                }
            });
        });
    }
    g.finish();
}

fn build_time(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for hosts in [1_000, 10_000] {
        let ingresses = ferry_benches::ingresses(hosts);
        g.bench_with_input(BenchmarkId::from_parameter(hosts * PATHS_PER_HOST), &ingresses, |b, ings| {
            b.iter_batched(
                || {
                    let mut builder = ingress_core::TableBuilder::new();
                    for i in ings {
                        builder.ingress(i.clone());
                    }
                    builder
                },
                |builder| black_box(builder.build(&mut EndpointStore::new())),
                criterion::BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

/// Bytes of heap per route for each table size: the table plus its endpoint store, measured by
/// the counting allocator after the input is dropped. Written where `route-summary.sh` reads it.
fn memory(_: &mut Criterion) {
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

criterion_group!(benches, memory, lookup, build_time);
criterion_main!(benches);
