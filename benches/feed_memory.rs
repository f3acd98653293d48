//! Heap the controller's feed holds for a cluster ([`ferry_benches::cluster`]: N Ingresses × 10
//! paths, 2N Services and EndpointSlices, N/10 TLS Secrets, shaped as the API server returns
//! them), part by part, counted by an instrumented system allocator: the stores, the
//! translation cache, the core's rebuilder, the endpoint store and the table, after the first
//! table as at start-up and again after 1,000 changes (Ingress, Service and EndpointSlice
//! edits, the engine's way: journal, cached translation, incremental build). Each part is
//! what dropping it frees, dropped in that order, so what two parts share counts with the last
//! one. Live heap only: the allocator's own overhead (freed pages it keeps, size classes) comes
//! on top in the process's RSS.
//!
//! `cargo bench -p ferry-benches --bench feed_memory` (`FEED_SIZES=1000,10000`); under
//! `cargo test` (no `--bench`) a smoke run of 200 Ingresses and 50 changes.
#![allow(missing_docs, clippy::print_stdout)]

use std::alloc::System;

use ferry_benches::cluster::{self, ingress, service, slice};
use ingress_core::{EndpointStore, Rebuilder};
use ingress_k8s::{Change, Changed, Config, Kind, Object, TranslationCache};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live bytes and live allocations since `region` began.
fn live(region: &Region<'_, System>) -> (f64, isize) {
    let s = region.change();
    let bytes = s.bytes_allocated as isize - s.bytes_deallocated as isize;
    (bytes as f64, s.allocations as isize - s.deallocations as isize)
}

/// What dropping `value` frees: bytes and allocations.
fn freed<T>(region: &Region<'_, System>, value: T) -> (f64, isize) {
    let before = live(region);
    drop(value);
    let after = live(region);
    (before.0 - after.0, before.1 - after.1)
}

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / f64::from(1 << 20))
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::var("FEED_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| if smoke { vec![200] } else { vec![1_000, 10_000] });
    let changes = if smoke { 50 } else { 1_000 };
    let config = Config { watch_ingress_without_class: true, ..Config::default() };
    println!(
        "live heap of the feed, MiB (live allocations, thousands): in all after the first table and after"
    );
    println!(
        "{changes} changes, then each part after the changes (what dropping it frees, in the order of the columns)"
    );
    println!(
        "{:>9} {:>16} {:>16} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "ingresses",
        "first table",
        "after changes",
        "table",
        "endpoints",
        "rebuilder",
        "cache",
        "stores",
        "bytes/Ingress"
    );
    for n in sizes {
        let region = Region::new(GLOBAL);
        let mut stores = ingress_k8s::Objects::default();
        // As the watchers hand the initial lists over: one relist per kind.
        let mut listed = cluster::objects(n);
        for kind in Kind::ALL {
            let (of_kind, rest) = listed.into_iter().partition::<Vec<_>, _>(|o| o.kind() == kind);
            listed = rest;
            stores.apply(Change::relist(kind, of_kind));
        }
        let mut endpoints = EndpointStore::new();
        let mut cache = TranslationCache::default();
        let mut rebuilder = Rebuilder::new();
        let mut changed = Changed::default();
        let mut translation = ingress_k8s::translate_changed(&stores, &config, &mut cache, &changed);
        changed.clear();
        let mut loaded = translation.endpoints.clone();
        let (mut table, _) =
            translation.compile_with(&mut endpoints, &mut rebuilder, &ingress_k8s::EndpointList::default());
        drop(translation);
        let start = live(&region);
        for k in 0..changes {
            let i = (k * 7919) % n;
            let ns = format!("team-{}", i % 50);
            let change = match k % 3 {
                0 => Change::Apply(Object::Ingress(ingress(i, k + 1))),
                1 => Change::Apply(Object::Service(service(&ns, &format!("web-{i}"), i, Some(k)))),
                _ => Change::Apply(Object::EndpointSlice(slice(&ns, &format!("api-{i}"), i + k))),
            };
            changed.note(&change);
            stores.apply(change);
            let mut translation = ingress_k8s::translate_changed(&stores, &config, &mut cache, &changed);
            changed.clear();
            let previous = std::mem::replace(&mut loaded, translation.endpoints.clone());
            table = translation.compile_with(&mut endpoints, &mut rebuilder, &previous).0;
        }
        let after = live(&region);
        // Attribution, by dropping each part in turn (the stores last: the cache shares them).
        let parts = [
            freed(&region, table),
            freed(&region, loaded),
            freed(&region, rebuilder),
            freed(&region, endpoints),
            freed(&region, cache),
        ];
        let [table, loaded, rebuilder, endpoints, cache] = parts;
        let kinds = [
            ("Ingresses", freed(&region, std::mem::take(&mut stores.ingresses))),
            ("Services", freed(&region, std::mem::take(&mut stores.services))),
            ("EndpointSlices", freed(&region, std::mem::take(&mut stores.endpoint_slices))),
            ("Secrets", freed(&region, std::mem::take(&mut stores.secrets))),
        ];
        let stores = kinds.iter().fold(freed(&region, stores), |(b, a), (_, (kb, ka))| (b + kb, a + ka));
        let endpoints = (endpoints.0 + loaded.0, endpoints.1 + loaded.1);
        let cell = |(bytes, blocks): (f64, isize)| format!("{} ({}k)", mib(bytes), blocks / 1_000);
        println!(
            "{n:>9} {:>16} {:>16} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14.0}",
            cell(start),
            cell(after),
            cell(table),
            cell(endpoints),
            cell(rebuilder),
            cell(cache),
            cell(stores),
            after.0 / n as f64
        );
        let per_kind: Vec<String> =
            kinds.iter().map(|(kind, part)| format!("{kind} {}", cell(*part))).collect();
        println!("{:>9} stores by kind: {}", "", per_kind.join(", "));
    }
}
