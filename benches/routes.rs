//! Route-matching benchmarks: lookup latency for 100 to 100k routes, and build time.
//! Bytes per route are measured by the `memory` bench (another global allocator).
//!
//! Run with `cargo bench -p ferry-benches --bench routes`, or `benches/route-summary.sh` for a
//! summary table.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferry_benches::{PATHS_PER_HOST, build, hits, misses};
use ingress_core::EndpointStore;

/// The allocator the `ingress-controller` binary uses, so build times are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        // 10 % of the hosts in regex mode (`rewrite-target`), the same requests.
        let regex_table = ferry_benches::build_with_regex(hosts, 10, &mut EndpointStore::new());
        g.bench_with_input(BenchmarkId::new("hit-regex10", routes), &hit, |b, reqs| {
            b.iter(|| {
                for (h, p) in reqs {
                    black_box(regex_table.lookup(black_box(h), black_box(p)));
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
    for (name, regex_every) in [("plain", 0), ("regex10", 10)] {
        for hosts in [1_000, 10_000] {
            let ingresses = ferry_benches::ingresses_with_regex(hosts, regex_every);
            let mut builder = ingress_core::TableBuilder::new();
            for i in ingresses {
                builder.ingress(i);
            }
            let routes = hosts * PATHS_PER_HOST;
            // `build/<routes>` for the plain table (as before), `build/regex10/<routes>` for 10 %
            // of the hosts in regex mode.
            let id = if regex_every == 0 {
                BenchmarkId::from_parameter(routes)
            } else {
                BenchmarkId::new(name, routes)
            };
            g.bench_with_input(id, &builder, |b, builder| {
                // A fresh endpoint store each time: the worst case, every slot is new. Dropping
                // the table afterwards is not part of building it.
                b.iter_with_large_drop(|| {
                    let mut store = EndpointStore::new();
                    let built = builder.build(&mut store);
                    (built, store)
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, lookup, build_time);
criterion_main!(benches);
