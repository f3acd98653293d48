//! Incremental builds: after any sequence of changes, a `Rebuilder`'s table answers every
//! question exactly as a table built from scratch from the same input does, and a change
//! rebuilds only the hosts it touches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ingress_core::{
    BackendRef, CanaryRule, CertificateRef, EndpointStore, HostRule, Ingress, ListChanges, ListVersion,
    Origin, PathRule, PathType, Rebuilder, RouteTable, Service, ServicePort, TableBuilder,
};
use proptest::prelude::*;

const HOSTS: [&str; 6] =
    ["a.example.com", "www.a.example.com", "b.example.com", "*.example.com", "bad..host", ""];
const PATHS: [&str; 6] = ["/", "/x", "/x/", "/x/y", "/x.*", "/(a|b)"];
const SERVICES: [&str; 3] = ["s0", "s1", "s2"];

/// An Ingress from a few numbers: hosts, paths and features from small sets, so Ingresses
/// collide on hosts, paths, aliases and TLS hosts.
fn ingress() -> impl Strategy<Value = Ingress> {
    (
        0usize..4,
        0i64..3,
        prop::collection::vec(
            (0usize..HOSTS.len(), prop::collection::vec((0usize..6, 0usize..3, 0usize..3), 0..3)),
            0..3,
        ),
        (0usize..4, 0usize..4, 0usize..5, 0usize..4),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|(name, created, rules, (default, tls, canary, alias), (www, regex, passthrough))| {
            let mut ing = Ingress::new(Origin::new("ns", format!("i{name}")).created_at(created));
            for (host, paths) in rules {
                let mut rule =
                    if HOSTS[host].is_empty() { HostRule::any_host() } else { HostRule::host(HOSTS[host]) };
                for (path, ty, service) in paths {
                    let ty = [PathType::Exact, PathType::Prefix, PathType::ImplementationSpecific][ty];
                    let port =
                        if service == 2 { ingress_core::PortRef::Name("http".into()) } else { 80.into() };
                    rule = rule.path(PathRule::new(
                        PATHS[path],
                        ty,
                        BackendRef::new("ns", SERVICES[service], port),
                    ));
                }
                ing = ing.rule(rule);
            }
            if default > 0 {
                ing = ing.default_backend(BackendRef::new("ns", SERVICES[default - 1], 80));
            }
            match tls {
                1 => ing = ing.tls(Vec::<String>::new(), CertificateRef::new("ns", "c1")),
                2 => ing = ing.tls(["a.example.com", "*.example.com"], CertificateRef::new("ns", "c2")),
                3 => ing = ing.tls(["b.example.com", "bad..host"], CertificateRef::new("ns", "c1")),
                _ => {}
            }
            match canary {
                1 => {
                    ing =
                        ing.as_canary(CanaryRule { weight: 50, weight_total: 100, ..CanaryRule::default() });
                }
                2 => {
                    let rule = CanaryRule { header_pattern: Some("(".into()), ..CanaryRule::default() };
                    ing = ing.as_canary(rule);
                }
                3 => ing = ing.fallback(BackendRef::new("ns", "s1", 80)),
                4 => ing = ing.fallback(BackendRef::new("ns", "s0", 9999)),
                _ => {}
            }
            match alias {
                1 => ing = ing.aliases(["alias.example.com"]),
                2 => ing = ing.aliases(["b.example.com", "*.alias.com"]),
                3 => ing = ing.aliases(["bad..alias"]),
                _ => {}
            }
            if www {
                ing = ing.with_www_redirect();
            }
            if regex {
                ing = ing.policy(ingress_core::RoutePolicy {
                    use_regex: true,
                    ..ingress_core::RoutePolicy::default()
                });
            }
            if passthrough {
                ing = ing.with_ssl_passthrough();
            }
            ing
        })
}

/// A change: replace (or add) Ingress slot `i`, remove it, or give Service `s1` other ports.
#[derive(Debug, Clone)]
enum Change {
    Put(usize, Box<Ingress>),
    Remove(usize),
    Ports(bool),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (0usize..5, ingress()).prop_map(|(i, ing)| Change::Put(i, Box::new(ing))),
        1 => (0usize..5).prop_map(Change::Remove),
        1 => any::<bool>().prop_map(Change::Ports),
    ]
}

fn builder(ingresses: &[Option<Arc<Ingress>>], named_port: bool) -> TableBuilder {
    let mut b = TableBuilder::new();
    for ing in ingresses.iter().flatten() {
        b.ingress(Arc::clone(ing));
    }
    declare(&mut b, named_port);
    b
}

/// The builder a caller keeping its Ingresses in one list makes: the list whole, with what
/// changed since `before` (the slots as the last list had them, and its version).
fn listed(
    ingresses: &[Option<Arc<Ingress>>],
    before: &[Option<Arc<Ingress>>],
    since: Option<ListVersion>,
    named_port: bool,
) -> (TableBuilder, ListVersion) {
    let mut changes =
        ListChanges { since, version: ListVersion::new(), removed: Vec::new(), added: Vec::new() };
    for (now, was) in ingresses.iter().zip(before) {
        match (now, was) {
            (Some(now), Some(was)) if Arc::ptr_eq(now, was) => {}
            _ => {
                changes.removed.extend(was.iter().cloned());
                changes.added.extend(now.iter().cloned());
            }
        }
    }
    let version = changes.version;
    let mut b = TableBuilder::new();
    b.ingress_list_changed(Arc::new(ingresses.iter().flatten().cloned().collect()), changes);
    declare(&mut b, named_port);
    (b, version)
}

fn declare(b: &mut TableBuilder, named_port: bool) {
    for s in SERVICES {
        let mut ports = vec![ServicePort { name: Some("web".into()), port: 80 }];
        if s != "s1" || named_port {
            ports.push(ServicePort { name: Some("http".into()), port: 8080 });
        }
        b.service(Service { namespace: "ns".into(), name: s.into(), ports });
    }
    b.default_backend(BackendRef::new("sys", "default", 80));
}

/// Everything a table answers for the probe requests, as text.
fn answers(t: &RouteTable) -> Vec<String> {
    let mut backends: Vec<String> = t.backends().map(|b| b.key().to_string()).collect();
    backends.sort();
    backends.extend(t.tls().entries().iter().map(|e| format!("{} {:?}", e.host, e.certificate)));
    backends.push(format!("{:?}", t.default_backend().map(|b| b.key().clone())));
    let mut out = vec![format!(
        "routes {} hosts {} backends {backends:?} fp {:x}",
        t.route_count(),
        t.host_count(),
        t.fingerprint()
    )];
    let hosts = [
        "a.example.com",
        "www.a.example.com",
        "b.example.com",
        "c.example.com",
        "alias.example.com",
        "x.alias.com",
        "other.org",
        "example.com",
        "A.EXAMPLE.COM:443",
    ];
    let paths = ["/", "/x", "/x/", "/x/y", "/x/y/z", "/b", "/xa"];
    for h in hosts {
        out.push(format!(
            "{h}: tls {} redirect {:?} exact {:?} pass {:?} cert {:?}",
            t.serves_tls(h),
            t.host_redirect(h),
            t.exact_host(h),
            t.passthrough(h).map(|b| b.key().clone()),
            t.tls().certificate_for(Some(h)).map(|e| (
                e.host.to_string(),
                e.certificate.clone(),
                e.origin.clone()
            )),
        ));
        for p in paths {
            let r = t.lookup(h, p);
            out.push(format!(
                "{h}{p} -> {:?}",
                r.map(|r| (
                    r.backend.key().clone(),
                    format!("{:?}", r.matched_by),
                    r.canary.map(|c| c.backend.key().clone()),
                    r.fallback.map(|b| b.key().clone()),
                    r.host_tls,
                    t.route(r.id()).map(|again| again.backend.key().clone()),
                ))
            ));
            out.push(t.explain(h, p).to_string());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// After every change, the incremental table equals the one built from scratch: same
    /// answers, same rejections.
    #[test]
    fn incremental_equals_from_scratch(start in prop::collection::vec(prop::option::of(ingress()), 5),
                                       changes in prop::collection::vec((change(), any::<bool>()), 1..12)) {
        // One name per slot, as Kubernetes names objects: two Ingresses of one namespace and name
        // (and age) would tie on everything, which only an order of insertion could break.
        let named = |slot: usize, mut ing: Ingress| {
            ing.origin.name = format!("i{slot}").into();
            Arc::new(ing)
        };
        let mut slots: Vec<Option<Arc<Ingress>>> =
            start.into_iter().enumerate().map(|(slot, i)| i.map(|i| named(slot, i))).collect();
        let mut named_port = true;
        let mut store = EndpointStore::new();
        let mut rebuilder = Rebuilder::new();
        // A second rebuilder, given the Ingresses as a list with what changed in it.
        let mut by_list = Rebuilder::new();
        let (b, mut version) = listed(&slots, &[None, None, None, None, None], None, named_port);
        drop(by_list.build(&b, &mut store));
        let first = rebuilder.build(&builder(&slots, named_port), &mut store);
        let scratch = builder(&slots, named_port).build(&mut EndpointStore::new());
        prop_assert_eq!(answers(&first.table), answers(&scratch.table));
        prop_assert_eq!(&first.rejected, &scratch.rejected);
        // Tables kept alive past the next build (as the proxy keeps one while requests finish),
        // with their answers when built: a later build must not change them.
        let mut held: Vec<(RouteTable, Vec<String>)> = Vec::new();
        for (change, hold) in changes {
            let before = slots.clone();
            match change {
                Change::Put(i, ing) => slots[i] = Some(named(i, *ing)),
                Change::Remove(i) => slots[i] = None,
                Change::Ports(named) => named_port = named,
            }
            let b = builder(&slots, named_port);
            let built = rebuilder.build(&b, &mut store);
            let scratch = b.build(&mut EndpointStore::new());
            prop_assert_eq!(answers(&built.table), answers(&scratch.table));
            prop_assert_eq!(&built.rejected, &scratch.rejected);
            // Now and then the changes start from a version the rebuilder did not build
            // (a translation whose table was never built): it reads the whole list.
            let since = if hold { Some(ListVersion::new()) } else { Some(version) };
            let (b, next) = listed(&slots, &before, since, named_port);
            version = next;
            let from_list = by_list.build(&b, &mut store);
            prop_assert_eq!(answers(&from_list.table), answers(&scratch.table));
            prop_assert_eq!(&from_list.rejected, &scratch.rejected);
            if hold {
                let answered = answers(&built.table);
                held.push((built.table, answered));
            }
        }
        for (table, answered) in &held {
            prop_assert_eq!(&answers(table), answered);
        }
    }
}

fn site(name: &str, host: &str) -> Arc<Ingress> {
    Arc::new(
        Ingress::new(Origin::new("ns", name))
            .rule(HostRule::host(host).path(PathRule::prefix("/", BackendRef::new("ns", name, 80)))),
    )
}

/// A change rebuilds the hosts of the Ingresses it touches, and of those naming a Service whose
/// ports changed; the other hosts' blocks are shared with the table before.
#[test]
fn a_change_rebuilds_only_what_it_touches() {
    let sites: Vec<Arc<Ingress>> =
        (0..100).map(|i| site(&format!("s{i}"), &format!("h{i}.example.com"))).collect();
    let mut store = EndpointStore::new();
    let mut rebuilder = Rebuilder::new();
    let build = |rebuilder: &mut Rebuilder, store: &mut EndpointStore, sites: &[Arc<Ingress>], ports: u16| {
        let mut b = TableBuilder::new();
        for s in sites {
            b.ingress(Arc::clone(s));
        }
        b.service(Service {
            namespace: "ns".into(),
            name: "s7".into(),
            ports: vec![ServicePort { name: None, port: ports }],
        });
        rebuilder.build(&b, store)
    };
    let first = build(&mut rebuilder, &mut store, &sites, 80);
    assert_eq!(rebuilder.last_rebuilt(), 100);
    assert_eq!(first.table.host_count(), 100);

    // Unchanged input: nothing rebuilt.
    build(&mut rebuilder, &mut store, &sites, 80);
    assert_eq!(rebuilder.last_rebuilt(), 0);

    // One Ingress moved to another host: its old host and its new one.
    let mut moved = sites;
    moved[3] = site("s3", "moved.example.com");
    let built = build(&mut rebuilder, &mut store, &moved, 80);
    assert_eq!(rebuilder.last_rebuilt(), 2);
    assert!(built.table.lookup("h3.example.com", "/").is_none());
    assert_eq!(built.table.lookup("moved.example.com", "/").unwrap().backend.key().service.as_ref(), "s3");
    assert_eq!(built.table.host_count(), 100);

    // A Service's ports change: the hosts of the Ingresses naming it.
    let built = build(&mut rebuilder, &mut store, &moved, 81);
    assert_eq!(rebuilder.last_rebuilt(), 1);
    assert!(built.rejected.iter().any(|r| &*r.origin.name == "s7"), "{:?}", built.rejected);

    // Removed: its host goes.
    let fewer: Vec<Arc<Ingress>> = moved.iter().filter(|s| &*s.origin.name != "s5").cloned().collect();
    let built = build(&mut rebuilder, &mut store, &fewer, 81);
    assert_eq!(rebuilder.last_rebuilt(), 1);
    assert!(built.table.lookup("h5.example.com", "/").is_none());
    assert_eq!(built.table.host_count(), 99);
}

/// A build brings the host indexes of the table before last up to date in place once nothing
/// holds that table, and copies the last table's while something does; a table held meanwhile
/// answers as it did.
#[test]
fn host_indexes_are_reused_once_their_table_is_gone() {
    let mut sites: Vec<Arc<Ingress>> =
        (0..50).map(|i| site(&format!("s{i}"), &format!("h{i}.example.com"))).collect();
    let mut store = EndpointStore::new();
    let mut rebuilder = Rebuilder::new();
    let build = |rebuilder: &mut Rebuilder, store: &mut EndpointStore, sites: &[Arc<Ingress>]| {
        let mut b = TableBuilder::new();
        for s in sites {
            b.ingress(Arc::clone(s));
        }
        (rebuilder.build(&b, store).table, b)
    };
    drop(build(&mut rebuilder, &mut store, &sites));
    for round in 0..10 {
        let i = round * 3;
        sites[i] = site(&format!("s{i}"), &format!("moved{round}.example.com"));
        let (table, builder) = build(&mut rebuilder, &mut store, &sites);
        assert_eq!(answers(&table), answers(&builder.build(&mut EndpointStore::new()).table));
        assert!(table.lookup(&format!("moved{round}.example.com"), "/").is_some());
        assert!(table.lookup(&format!("h{i}.example.com"), "/").is_none());
    }
    // The first build copied the empty indexes; the second copied too, as replaying the first
    // (every host put in) costs more than a copy. Every later build reused the older copy.
    assert_eq!(rebuilder.index_updates(), (9, 2));

    // Nothing changed: the table shares the last one's indexes, neither copied nor updated.
    let (held, _) = build(&mut rebuilder, &mut store, &sites);
    assert_eq!(rebuilder.index_updates(), (9, 2));
    let answered = answers(&held);
    sites[1] = site("s1", "again.example.com");
    let (next, _) = build(&mut rebuilder, &mut store, &sites);
    sites[2] = site("s2", "again2.example.com");
    let (last, builder) = build(&mut rebuilder, &mut store, &sites);
    assert_eq!(
        rebuilder.index_updates(),
        (9 + 1, 2 + 1),
        "the held table's indexes were copied, not changed"
    );
    assert_eq!(answers(&held), answered);
    assert!(held.lookup("h1.example.com", "/").is_some() && next.lookup("h1.example.com", "/").is_none());
    assert_eq!(answers(&last), answers(&builder.build(&mut EndpointStore::new()).table));
}

/// Given the changes to the list it read before, a build reads only them; given changes from
/// another version, or changes that do not fit, the whole list.
#[test]
fn a_listed_change_is_all_a_build_reads() {
    let mut slots: Vec<Option<Arc<Ingress>>> =
        (0..100).map(|i| Some(site(&format!("s{i}"), &format!("h{i}.example.com")))).collect();
    let mut store = EndpointStore::new();
    let mut rebuilder = Rebuilder::new();
    let (b, version) = listed(&slots, &vec![None; 100], None, true);
    drop(rebuilder.build(&b, &mut store));
    assert_eq!(rebuilder.last_read(), 100);
    let check = |rebuilder: &mut Rebuilder,
                 store: &mut EndpointStore,
                 b: &TableBuilder,
                 slots: &[Option<Arc<Ingress>>]| {
        let built = rebuilder.build(b, store);
        assert_eq!(
            answers(&built.table),
            answers(&builder(slots, true).build(&mut EndpointStore::new()).table)
        );
    };

    let before = slots.clone();
    slots[7] = Some(site("s7", "moved.example.com"));
    slots[8] = None;
    let (b, _) = listed(&slots, &before, Some(version), true);
    check(&mut rebuilder, &mut store, &b, &slots);
    assert_eq!(rebuilder.last_read(), 3, "s7 out and in again, s8 out");

    // Changes from a version this rebuilder did not build.
    let before = slots.clone();
    slots[9] = None;
    let (b, version) = listed(&slots, &before, Some(ListVersion::new()), true);
    check(&mut rebuilder, &mut store, &b, &slots);
    assert_eq!(rebuilder.last_read(), 98);

    // Nothing changed: nothing read.
    let (b, version) = listed(&slots, &slots, Some(version), true);
    check(&mut rebuilder, &mut store, &b, &slots);
    assert_eq!(rebuilder.last_read(), 0);

    // Changes that do not fit: an Ingress put in that the last build already had.
    let wrong = ListChanges {
        since: Some(version),
        version: ListVersion::new(),
        removed: Vec::new(),
        added: slots[0].iter().cloned().collect(),
    };
    let mut b = TableBuilder::new();
    b.ingress_list_changed(Arc::new(slots.iter().flatten().cloned().collect()), wrong);
    declare(&mut b, true);
    check(&mut rebuilder, &mut store, &b, &slots);
    assert_eq!(rebuilder.last_read(), 98);
}

/// The same `Arc` twice in one builder (addresses cannot tell its entries apart): the build
/// starts over, and answers as a build from scratch; the next build without the twin too.
#[test]
fn the_same_ingress_twice_builds_from_scratch() {
    let a = site("a", "a.example.com");
    let mut store = EndpointStore::new();
    let mut rebuilder = Rebuilder::new();
    let mut twice = TableBuilder::new();
    twice.ingress(Arc::clone(&a)).ingress(Arc::clone(&a));
    let built = rebuilder.build(&twice, &mut store);
    let scratch = twice.build(&mut EndpointStore::new());
    assert_eq!(built.rejected, scratch.rejected);
    assert_eq!(built.rejected.len(), 1, "the twin's path loses to the first: {:?}", built.rejected);
    assert_eq!(answers(&built.table), answers(&scratch.table));
    let mut once = TableBuilder::new();
    once.ingress(Arc::clone(&a));
    let built = rebuilder.build(&once, &mut store);
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    assert_eq!(answers(&built.table), answers(&once.build(&mut EndpointStore::new()).table));
}
