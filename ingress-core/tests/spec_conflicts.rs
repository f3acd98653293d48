//! Conflicts between Ingresses and within one: deterministic, oldest first, losers reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingress_core::{
    BackendRef, EndpointStore, Field, HostRule, Ingress, Origin, PathRule, PathType, Reason, TableBuilder,
};

fn ing(ns: &str, name: &str, created: i64, path: &str, t: PathType, svc: &str) -> Ingress {
    Ingress::new(Origin::new(ns, name).created_at(created))
        .rule(HostRule::host("app.com").path(PathRule::new(path, t, BackendRef::new(ns, svc, 80))))
}

fn winner(ingresses: Vec<Ingress>) -> (String, Vec<ingress_core::Rejection>) {
    let mut b = TableBuilder::new();
    for i in ingresses {
        b.ingress(i);
    }
    let built = b.build(&mut EndpointStore::new());
    let svc =
        built.table.lookup("app.com", "/x").map(|r| r.backend.key().service.to_string()).unwrap_or_default();
    (svc, built.rejected)
}

#[test]
fn oldest_ingress_wins_regardless_of_insertion_order() {
    let old = || ing("ns", "old", 100, "/x", PathType::Prefix, "old-svc");
    let new = || ing("ns", "new", 200, "/x", PathType::Prefix, "new-svc");
    for order in [vec![old(), new()], vec![new(), old()]] {
        let (svc, rejected) = winner(order);
        assert_eq!(svc, "old-svc");
        assert_eq!(rejected.len(), 1);
        assert_eq!(&*rejected[0].origin.name, "new");
        assert_eq!(rejected[0].field, Field::Path { rule: 0, path: 0 });
        match &rejected[0].reason {
            Reason::Duplicate { winner, winner_field } => {
                assert_eq!(&*winner.name, "old");
                assert_eq!(*winner_field, Field::Path { rule: 0, path: 0 });
            }
            other => panic!("unexpected reason {other:?}"),
        }
    }
}

#[test]
fn equal_age_falls_back_to_namespace_then_name() {
    let (svc, rejected) = winner(vec![
        ing("b", "a", 100, "/x", PathType::Prefix, "b-a"),
        ing("a", "z", 100, "/x", PathType::Prefix, "a-z"),
        ing("a", "y", 100, "/x", PathType::Prefix, "a-y"),
    ]);
    assert_eq!(svc, "a-y");
    let mut losers: Vec<String> = rejected.iter().map(|r| r.origin.to_string()).collect();
    losers.sort();
    assert_eq!(losers, ["a/z", "b/a"]);
}

#[test]
fn trailing_slash_variants_of_a_prefix_conflict() {
    let (svc, rejected) = winner(vec![
        ing("ns", "one", 1, "/x", PathType::Prefix, "one"),
        ing("ns", "two", 2, "/x/", PathType::Prefix, "two"),
    ]);
    assert_eq!(svc, "one");
    assert_eq!(rejected.len(), 1);
}

#[test]
fn exact_and_prefix_on_the_same_path_do_not_conflict() {
    let (svc, rejected) = winner(vec![
        ing("ns", "one", 1, "/x", PathType::Prefix, "prefix"),
        ing("ns", "two", 2, "/x", PathType::Exact, "exact"),
    ]);
    assert!(rejected.is_empty());
    assert_eq!(svc, "exact");
}

#[test]
fn duplicate_within_one_ingress_keeps_the_first() {
    let i = Ingress::new(Origin::new("ns", "dup")).rule(
        HostRule::host("app.com")
            .path(PathRule::prefix("/x", BackendRef::new("ns", "first", 80)))
            .path(PathRule::prefix("/x", BackendRef::new("ns", "second", 80))),
    );
    let (svc, rejected) = winner(vec![i]);
    assert_eq!(svc, "first");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].field, Field::Path { rule: 0, path: 1 });
}

#[test]
fn losing_rule_is_shown_by_explain() {
    let mut b = TableBuilder::new();
    b.ingress(ing("ns", "old", 1, "/x", PathType::Prefix, "old-svc"));
    b.ingress(ing("ns", "new", 2, "/x", PathType::Prefix, "new-svc"));
    let t = b.build(&mut EndpointStore::new()).table;
    let e = t.explain("app.com", "/x");
    assert!(
        e.paths
            .iter()
            .any(|p| &*p.origin.name == "new" && matches!(p.verdict, ingress_core::Verdict::Shadowed(_)))
    );
    assert!(e.to_string().contains("rejected at build"));
}
