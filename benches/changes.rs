//! What one configuration change costs the controller today, by cluster size: with N
//! Ingresses × 10 paths, 2N Services and EndpointSlices and N/10 TLS Secrets in the stores, one
//! Ingress is edited and the table made again, as the engine does (translation, told which key
//! changed, through the controller's `TranslationCache`, which translates again only the
//! edited Ingress, then the core build through the controller's `Rebuilder`, which builds again
//! only that Ingress's host, against the live endpoint store). Each round then edits one
//! Service (a port added), the "Service edit" column, and renews one TLS Secret (a new
//! certificate and RSA key, never seen before, so parsed), the "Secret edit" column,
//! translation and build together. The last two columns are, after the rounds, the
//! translation with a fresh cache (every object translated, every TLS Secret parsed) and the
//! build of its builder from scratch (every host). Prints the median and the worst of a few
//! rounds for 1,000, 10,000 and 50,000 Ingresses (`CHANGES_SIZES` overrides, comma-separated),
//! so the growth with N shows in one run; `CHANGES_INCREMENTAL_ONLY=1` leaves out the
//! comparison.
//!
//! `cargo bench -p ferry-benches --bench changes` (under `cargo test`, without `--bench`, a
//! smoke run of 200 Ingresses and 2 rounds).
#![allow(missing_docs, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferry_benches::cluster::{ingress, service, stores, tls_secret};
use ingress_core::EndpointStore;
use ingress_k8s::{Change, Config, Object};

const ROUNDS: usize = 7;

/// `secret` with a new self-signed certificate for its hosts and a new RSA-2048 key in PKCS #8,
/// as `openssl req -newkey rsa:2048` writes it.
fn renewed(mut secret: k8s_openapi::api::core::v1::Secret) -> k8s_openapi::api::core::v1::Secret {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let issue = || -> Result<(Vec<u8>, Vec<u8>), openssl::error::ErrorStack> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let mut name = x509::X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "*.example.com")?;
        let name = name.build();
        let mut b = x509::X509::builder()?;
        b.set_version(2)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(30)?)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok((b.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
    };
    let (cert, key) = issue().unwrap_or_else(|e| panic!("certificate: {e}"));
    secret.data = Some(
        [("tls.crt", cert), ("tls.key", key)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), k8s_openapi::ByteString(v)))
            .collect(),
    );
    secret
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::var("CHANGES_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| if smoke { vec![200] } else { vec![1_000, 10_000, 50_000] });
    let rounds = std::env::var("CHANGES_ROUNDS").ok().and_then(|r| r.parse().ok());
    let rounds = rounds.unwrap_or(if smoke { 2 } else { ROUNDS });
    // For profiles: only the incremental path, no comparison columns.
    let compare = std::env::var_os("CHANGES_INCREMENTAL_ONLY").is_none();
    let config = Config { watch_ingress_without_class: true, ..Config::default() };
    println!(
        "one Ingress edited, table made again (cached translation + incremental core build), {rounds} rounds"
    );
    println!(
        "{:>9} {:>9} {:>14} {:>14} {:>14} {:>14} {:>18} {:>17} {:>22} {:>22}",
        "ingresses",
        "routes",
        "translate p50",
        "build p50",
        "total p50",
        "total max",
        "Service edit p50",
        "Secret edit p50",
        "translate, no cache",
        "build from scratch"
    );
    let mut per_ingress = BTreeMap::new();
    for n in sizes {
        let mut objects = stores(n);
        let mut store = EndpointStore::new();
        let mut cache = ingress_k8s::TranslationCache::default();
        let mut rebuilder = ingress_core::Rebuilder::new();
        // The first table: every slot made and every TLS Secret parsed, as at start-up.
        let mut changed = ingress_k8s::Changed::default();
        let mut first = ingress_k8s::translate_changed(&objects, &config, &mut cache, &changed);
        changed.clear();
        let mut loaded = first.endpoints.clone();
        let (table, _) =
            first.compile_with(&mut store, &mut rebuilder, &ingress_k8s::EndpointList::default());
        // Dropped, as the engine drops each translation once compiled: the cache then updates
        // what it shares with translations in place.
        drop(first);
        let routes = table.route_count();
        drop(table);
        let (mut translate, mut build, mut total, mut uncached, mut scratch) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut services, mut secrets) = (Vec::new(), Vec::new());
        // What the last snapshot holds.
        let mut published = None;
        for round in 1..=rounds {
            let i = (round * 7919) % n;
            // Noted in the journal of changes since the last translation, as the engine notes it.
            let change = Change::Apply(Object::Ingress(ingress(i, round)));
            changed.note(&change);
            objects.apply(change);
            let started = Instant::now();
            let mut translation = ingress_k8s::translate_changed(&objects, &config, &mut cache, &changed);
            changed.clear();
            let translated = started.elapsed();
            assert_eq!(cache.stats().ingresses_translated, 1, "only the edited Ingress is translated again");
            let started_build = Instant::now();
            let previous = std::mem::replace(&mut loaded, translation.endpoints.clone());
            let (table, problems) = translation.compile_with(&mut store, &mut rebuilder, &previous);
            let all = translated + started_build.elapsed();
            assert!(problems.is_empty(), "{problems:?}");
            assert!(rebuilder.last_rebuilt() <= 2, "only the edited Ingress's host is built again");
            // As the engine publishes it: the table and the list of Ingresses stay held (by the
            // proxy, the status writer) until the next replaces them; the rest of the
            // translation is dropped, and the cache updates the sets it shares in place.
            drop(published.replace((std::hint::black_box(table), translation.ingresses.clone())));
            drop(translation);
            translate.push(translated);
            build.push(all - translated);
            total.push(all);
            // A Service change: its Ingress's host is built again, with its endpoints. Then a
            // TLS Secret replaced by another certificate: its Ingress's host and the TLS map.
            let j = (round * 104_729) % n;
            let ns = format!("team-{}", j % 50);
            let mut edit = |change: Change, what: &str| {
                changed.note(&change);
                objects.apply(change);
                let started = Instant::now();
                let mut translation = ingress_k8s::translate_changed(&objects, &config, &mut cache, &changed);
                changed.clear();
                let previous = std::mem::replace(&mut loaded, translation.endpoints.clone());
                let (table, problems) = translation.compile_with(&mut store, &mut rebuilder, &previous);
                let took = started.elapsed();
                assert!(problems.is_empty(), "{problems:?}");
                assert!(rebuilder.last_rebuilt() <= 2, "only the host naming the {what} is built again");
                drop(published.replace((std::hint::black_box(table), translation.ingresses.clone())));
                took
            };
            let change = Change::Apply(Object::Service(service(&ns, &format!("web-{j}"), j, Some(round))));
            services.push(edit(change, "Service"));
            // A renewal: a certificate and key no Secret held before, so it is parsed.
            let k = (j / 10) * 10;
            let secret = renewed(tls_secret(&format!("team-{}", k % 50), &format!("tls-{k}"), false));
            secrets.push(edit(Change::Apply(Object::Secret(secret)), "Secret"));
        }
        // For comparison, after the rounds (a builder kept meanwhile would hold what the cache
        // changes in place): the same translation with a fresh cache (every object translated,
        // every TLS Secret parsed), and the build of its builder from scratch.
        for _ in 0..if compare { 3 } else { 0 } {
            let started = Instant::now();
            let fresh = std::hint::black_box(ingress_k8s::translate(&objects, &config));
            uncached.push(started.elapsed());
            let started = Instant::now();
            drop(std::hint::black_box(fresh.builder.build(&mut store)));
            scratch.push(started.elapsed());
        }
        let worst = total.iter().max().copied().unwrap_or_default();
        let p50 = median(total);
        println!(
            "{n:>9} {routes:>9} {:>14} {:>14} {:>14} {:>14} {:>18} {:>17} {:>22} {:>22}",
            ms(median(translate)),
            ms(median(build)),
            ms(p50),
            ms(worst),
            ms(median(services)),
            ms(median(secrets)),
            ms(median(uncached)),
            ms(median(scratch))
        );
        per_ingress.insert(n, p50.as_secs_f64() * 1e3 / (n as f64 / 1e3));
    }
    let growth: Vec<String> = per_ingress.iter().map(|(n, per)| format!("{n}: {per:.2} ms")).collect();
    println!(
        "total p50 per 1,000 Ingresses present (flat when a change costs what it touches): {}",
        growth.join(", ")
    );
}
