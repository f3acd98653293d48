//! Route lookup flatness, 100k against 100 routes, measured so that a shared machine's load
//! hits both sizes alike (not a neighbour's traffic through the shared caches, though: that
//! evicts the larger table's working set, not the smaller's): the two tables are timed in turn,
//! one pass over their requests each (the order swapped every round), for `ROUNDS` rounds; a
//! size's figure is the median of its passes, flatness the ratio of the two medians. The criterion bench (`routes`) times one size
//! after the other, seconds apart, so a busy neighbour in between moves its ratio.
//!
//! Two request sets per size: `routes` is the criterion bench's (1,000 requests, as
//! `lookup/hit/<routes>`), `sweep` spreads 70,000 requests over every host and path shape of the
//! table (at 100k routes, 16 MB, the table no longer fits a core's first two cache levels; at
//! 100 it fits the first: the less flattering figure).
//!
//! Prints, per set, each size's median, the run's flatness and the rounds' ratios (p10..p90).
//! `FLATNESS_ONLY=<hosts>:<set>:<passes>` makes only that many passes on that table (and prints
//! nothing), for an instruction and cache-miss count against a run of 0 passes:
//! `benches/flatness.sh` does both, several runs.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use ferry_benches::{PATHS_PER_HOST, build, hits};
use ingress_core::{EndpointStore, RouteTable};

/// The allocator the `ingress-controller` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SMALL: usize = 10;
const LARGE: usize = 10_000;
const ROUNDS: usize = 200;

type Requests = Vec<(String, String)>;

/// The request set `set` (`routes` or `sweep`) for a table of `hosts` hosts.
fn requests(hosts: usize, set: &str) -> Requests {
    match set {
        "routes" => hits(hosts, 1_000),
        _ => hits(hosts, 70_000),
    }
}

/// Nanoseconds per lookup of one pass over `requests`.
fn pass(table: &RouteTable, requests: &Requests) -> f64 {
    let started = Instant::now();
    for (h, p) in requests {
        black_box(table.lookup(black_box(h), black_box(p)));
    }
    started.elapsed().as_nanos() as f64 / requests.len() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Ok(only) = std::env::var("FLATNESS_ONLY") {
        let mut it = only.split(':');
        let (hosts, set, passes) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let hosts: usize = hosts.parse().unwrap();
        let table = build(hosts, &mut EndpointStore::new());
        let reqs = requests(hosts, set);
        for _ in 0..passes.parse::<usize>().unwrap() {
            black_box(pass(&table, &reqs));
        }
        return;
    }
    // Under `cargo test` (no `--bench`): a smoke run, small and short.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (large, rounds) = if smoke { (100, 5) } else { (LARGE, ROUNDS) };
    let small_table = build(SMALL, &mut EndpointStore::new());
    let large_table = build(large, &mut EndpointStore::new());
    println!(
        "{:>7} {:>14} {:>14} {:>10} {:>24}",
        "set",
        format!("{} routes ns", SMALL * PATHS_PER_HOST),
        format!("{} routes ns", large * PATHS_PER_HOST),
        "flatness",
        "rounds' ratios p10..p90"
    );
    for set in ["routes", "sweep"] {
        let (small_reqs, large_reqs) = (requests(SMALL, set), requests(large, set));
        // One pass each first, not timed: the tables' and requests' first touch.
        pass(&small_table, &small_reqs);
        pass(&large_table, &large_reqs);
        let (mut small, mut big, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (s, l) = if round % 2 == 0 {
                let s = pass(&small_table, &small_reqs);
                (s, pass(&large_table, &large_reqs))
            } else {
                let l = pass(&large_table, &large_reqs);
                (pass(&small_table, &small_reqs), l)
            };
            small.push(s);
            big.push(l);
            ratios.push(l / s);
        }
        ratios.sort_by(f64::total_cmp);
        let (s, l) = (median(small), median(big));
        let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q) as usize];
        println!(
            "{set:>7} {s:>14.1} {l:>14.1} {:>9.2}x {:>24}",
            l / s,
            format!("{:.2}x..{:.2}x", at(0.1), at(0.9))
        );
    }
}
