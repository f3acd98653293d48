//! Route policies shared between the Ingresses that have the same one.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use ingress_core::RoutePolicy;

/// The policies handed out, by a hash of the annotations each was read from: Ingresses with
/// the same annotations (and so, mostly, the same policy) share one `Arc`. A policy takes about
/// 500 bytes; 10,000 Ingresses with one annotation in common held 5 MiB of copies of it.
/// Equal annotations are only a hint: a policy is shared when it is equal (one with a rate
/// limit names its Ingress, say, so it never is).
#[derive(Debug, Default)]
pub(crate) struct SharedPolicies {
    by_annotations: HashMap<u64, Vec<Weak<RoutePolicy>>>,
    /// Entries, and entries after the last sweep of those no Ingress holds any more.
    entries: usize,
    swept: usize,
}

impl SharedPolicies {
    /// `policy`, read from `annotations`, as an `Arc`: one handed out before when it is equal
    /// and still held.
    pub(crate) fn share(&mut self, annotations: &impl Hash, policy: RoutePolicy) -> Arc<RoutePolicy> {
        let mut hasher = DefaultHasher::new();
        annotations.hash(&mut hasher);
        let list = self.by_annotations.entry(hasher.finish()).or_default();
        let before = list.len();
        list.retain(|p| p.strong_count() > 0);
        self.entries -= before - list.len();
        if let Some(same) = list.iter().filter_map(Weak::upgrade).find(|p| **p == policy) {
            return same;
        }
        let policy = Arc::new(policy);
        list.push(Arc::downgrade(&policy));
        self.entries += 1;
        // A policy's memory goes with its last `Weak`: sweep once the entries doubled.
        if self.entries > 2 * self.swept + 64 {
            self.by_annotations.retain(|_, list| {
                list.retain(|p| p.strong_count() > 0);
                !list.is_empty()
            });
            self.entries = self.by_annotations.values().map(Vec::len).sum();
            self.swept = self.entries;
        }
        policy
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use ingress_core::RoutePolicy;

    use super::SharedPolicies;

    fn policy(read_secs: u64) -> RoutePolicy {
        RoutePolicy {
            read_timeout: Some(std::time::Duration::from_secs(read_secs)),
            ..RoutePolicy::default()
        }
    }

    #[test]
    fn equal_policies_share_one_arc_while_held() {
        let mut shared = SharedPolicies::default();
        let a = BTreeMap::from([("x".to_owned(), "1".to_owned())]);
        let b = BTreeMap::from([("x".to_owned(), "2".to_owned())]);
        let first = shared.share(&a, policy(30));
        assert!(Arc::ptr_eq(&first, &shared.share(&a, policy(30))), "same annotations, same policy");
        assert!(!Arc::ptr_eq(&first, &shared.share(&a, policy(31))), "same annotations, another policy");
        assert!(!Arc::ptr_eq(&first, &shared.share(&b, policy(30))), "annotations are the key");
        drop(first);
        // No one holds it: the next equal policy is a new one.
        let again = shared.share(&a, policy(30));
        assert_eq!(*again, policy(30));
        assert_eq!(Arc::strong_count(&again), 1);
    }

    #[test]
    fn policies_no_one_holds_are_swept() {
        let mut shared = SharedPolicies::default();
        for i in 0..10_000 {
            let annotations = BTreeMap::from([("x".to_owned(), i.to_string())]);
            drop(shared.share(&annotations, policy(i)));
        }
        assert!(shared.entries <= 200, "{} entries kept", shared.entries);
        assert!(shared.by_annotations.len() <= 200);
    }
}
