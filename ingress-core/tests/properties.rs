//! Property tests: invariants that must hold for any input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, PathType, RouteTable, TableBuilder,
};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,6}"
}

fn host() -> impl Strategy<Value = String> {
    (prop::bool::weighted(0.2), prop::collection::vec(label(), 1..4)).prop_map(|(wild, labels)| {
        let h = labels.join(".");
        if wild { format!("*.{h}") } else { h }
    })
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-c]{1,3}", 0..4).prop_map(|segs| format!("/{}", segs.join("/")))
}

fn path_type() -> impl Strategy<Value = PathType> {
    prop_oneof![Just(PathType::Exact), Just(PathType::Prefix), Just(PathType::ImplementationSpecific)]
}

fn ingress() -> impl Strategy<Value = Ingress> {
    (
        "[a-c]",
        "[a-z]{1,4}",
        0i64..5,
        prop::option::of(host()),
        prop::collection::vec((path(), path_type(), "[a-e]"), 1..4),
    )
        .prop_map(|(ns, name, created, host, paths)| {
            let mut rule = HostRule { host, paths: vec![] };
            for (p, t, svc) in paths {
                rule = rule.path(PathRule::new(p, t, BackendRef::new(ns.clone(), svc, 80)));
            }
            Ingress::new(Origin::new(ns, name).created_at(created)).rule(rule)
        })
}

fn build(ingresses: &[Ingress]) -> RouteTable {
    let mut b = TableBuilder::new();
    for i in ingresses {
        b.ingress(i.clone());
    }
    b.build(&mut EndpointStore::new()).table
}

fn answer(t: &RouteTable, host: &str, path: &str) -> Option<BackendRef> {
    t.lookup(host, path).map(|r| r.backend.key().clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Lookup never panics, whatever bytes arrive as host and path.
    #[test]
    fn lookup_never_panics(ings in prop::collection::vec(ingress(), 0..6),
                           host in any::<Vec<u8>>(), path in any::<Vec<u8>>()) {
        let t = build(&ings);
        let host = String::from_utf8_lossy(&host);
        let path = String::from_utf8_lossy(&path);
        let _ = t.lookup(&host, &path);
        let _ = t.explain(&host, &path);
        let _ = t.tls().certificate_for(Some(&host));
    }

    /// Adding an Ingress for a host nobody else uses never changes the answer for other hosts.
    #[test]
    fn unrelated_host_does_not_change_other_answers(
        ings in prop::collection::vec(ingress(), 1..6),
        req_host in host(), req_path in path(),
        extra_path in path(),
    ) {
        let req_host = req_host.trim_start_matches("*.").to_owned();
        let before = build(&ings);
        let mut more = ings;
        more.push(Ingress::new(Origin::new("z", "unrelated")).rule(
            HostRule::host("unrelated-host.invalid-tld-zz")
                .path(PathRule::prefix(extra_path, BackendRef::new("z", "z", 1)))));
        let after = build(&more);
        prop_assert_eq!(answer(&before, &req_host, &req_path), answer(&after, &req_host, &req_path));
    }

    /// The order Ingresses are added in never changes any answer.
    #[test]
    fn insertion_order_does_not_matter(ings in prop::collection::vec(ingress(), 1..6),
                                       req_host in host(), req_path in path()) {
        let req_host = req_host.replace('*', "x");
        let a = build(&ings);
        let mut rev = ings;
        rev.reverse();
        let b = build(&rev);
        prop_assert_eq!(answer(&a, &req_host, &req_path), answer(&b, &req_host, &req_path));
    }

    /// `explain` and `lookup` always agree on the backend.
    #[test]
    fn explain_agrees_with_lookup(ings in prop::collection::vec(ingress(), 0..6),
                                  req_host in host(), req_path in path()) {
        let req_host = req_host.replace('*', "x");
        let t = build(&ings);
        prop_assert_eq!(t.explain(&req_host, &req_path).backend, answer(&t, &req_host, &req_path));
    }

    /// A Prefix match is element-wise: whenever a Prefix rule wins, the request path is the rule
    /// path or continues it with `/`.
    #[test]
    fn prefix_winner_is_a_segment_prefix(ings in prop::collection::vec(ingress(), 1..6),
                                         req_host in host(), req_path in path()) {
        let req_host = req_host.replace('*', "x");
        let t = build(&ings);
        if let Some(r) = t.lookup(&req_host, &req_path)
            && let ingress_core::MatchedBy::Path { path, path_type, .. } = r.matched_by
        {
            if path_type == PathType::Exact {
                prop_assert_eq!(path, req_path.as_str());
            } else if path != "/" {
                let continues = req_path.strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                prop_assert!(continues, "{} does not continue {}", req_path, path);
            }
        }
    }
}
