//! [`EndpointList`]: every endpoint set of a translation, kept by the translation cache from one
//! translation to the next and shared in chunks, so a Service change copies one chunk and whoever
//! compares two lists (the engine, loading the endpoint store) reads only what changed.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use ingress_core::{BackendRef, EndpointSet};

use super::list::{Keyed, SortedList};
use crate::objects::Key;

/// One backend's endpoint set, keyed as the table keys backends.
pub type EndpointEntry = Arc<(Arc<BackendRef>, Arc<EndpointSet>)>;

/// The endpoint sets of one Service (one per port), as its EndpointSlices give them; never
/// empty.
#[derive(Debug, PartialEq)]
pub struct ServiceEndpoints(Vec<EndpointEntry>);

impl ServiceEndpoints {
    /// The sets of one Service, `None` when there are none.
    pub(crate) fn new(sets: Vec<EndpointEntry>) -> Option<Self> {
        (!sets.is_empty()).then_some(Self(sets))
    }

    /// The sets, one per port.
    pub fn sets(&self) -> &[EndpointEntry] {
        &self.0
    }

    /// The Service's namespace and name (those of its backends).
    fn service(&self) -> (&str, &str) {
        self.0.first().map_or(("", ""), |e| (&*e.0.namespace, &*e.0.service))
    }
}

impl Keyed for ServiceEndpoints {
    type Key = Key;

    fn cmp_key(&self, key: &Key) -> Ordering {
        self.service().cmp(&(&*key.0, &*key.1))
    }

    fn cmp_item(&self, other: &Self) -> Ordering {
        self.service().cmp(&other.service())
    }
}

/// Every endpoint set a translation's table may route to: each Service's, sorted by Service, and
/// those of the backends reached through a cluster IP. Cloning one is cloning two `Arc`s; the
/// cache changes its own copy chunk by chunk, so successive lists share what did not change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointList {
    pub(crate) services: SortedList<ServiceEndpoints>,
    pub(crate) cluster_ip: Arc<Vec<EndpointEntry>>,
}

impl EndpointList {
    /// Every set: the Services' in order, then those reached through a cluster IP.
    pub fn iter(&self) -> impl Iterator<Item = &EndpointEntry> {
        self.services.iter().flat_map(|s| s.0.iter()).chain(self.cluster_ip.iter())
    }

    /// The sets of Service `key`.
    pub fn of_service(&self, key: &Key) -> &[EndpointEntry] {
        self.services.get(key).map_or(&[], |s| &s.0)
    }

    /// Whether `backend` has a set here.
    pub fn contains(&self, backend: &BackendRef) -> bool {
        let service = (backend.namespace.clone(), backend.service.clone());
        self.of_service(&service).iter().chain(self.cluster_ip.iter()).any(|e| *e.0 == *backend)
    }

    /// Whether two lists are the same version (nothing changed between them).
    pub fn same(&self, other: &Self) -> bool {
        self.services.same(&other.services) && Arc::ptr_eq(&self.cluster_ip, &other.cluster_ip)
    }

    /// What changed from `last` to `now`: the sets of `last` not in `now`, and those of `now`
    /// not in `last`, told apart by address (an unchanged set is the same `Arc`). Costs what
    /// changed: the lists' shared chunks are skipped.
    pub fn changes<'l, 'n>(
        last: &'l Self,
        now: &'n Self,
    ) -> (Vec<&'l EndpointEntry>, Vec<&'n EndpointEntry>) {
        let (gone, fresh) = SortedList::changes(&last.services, &now.services);
        let mut gone: Vec<&EndpointEntry> = gone.into_iter().flat_map(|s| s.0.iter()).collect();
        let mut fresh: Vec<&EndpointEntry> = fresh.into_iter().flat_map(|s| s.0.iter()).collect();
        if !Arc::ptr_eq(&last.cluster_ip, &now.cluster_ip) {
            gone.extend(last.cluster_ip.iter());
            fresh.extend(now.cluster_ip.iter());
        }
        if !gone.is_empty() && !fresh.is_empty() {
            // A set both lists hold (a Service remade with some sets kept, a cluster-IP set
            // kept) is neither.
            let before: HashSet<*const (Arc<BackendRef>, Arc<EndpointSet>)> =
                gone.iter().map(|e| Arc::as_ptr(e)).collect();
            let after: HashSet<*const (Arc<BackendRef>, Arc<EndpointSet>)> =
                fresh.iter().map(|e| Arc::as_ptr(e)).collect();
            gone.retain(|e| !after.contains(&Arc::as_ptr(e)));
            fresh.retain(|e| !before.contains(&Arc::as_ptr(e)));
        }
        (gone, fresh)
    }
}

impl FromIterator<EndpointEntry> for EndpointList {
    /// The list of `entries`, those of each Service together (a test's or a bench's list).
    fn from_iter<I: IntoIterator<Item = EndpointEntry>>(entries: I) -> Self {
        let mut by_service: std::collections::BTreeMap<Key, Vec<EndpointEntry>> = Default::default();
        for entry in entries {
            let key = (entry.0.namespace.clone(), entry.0.service.clone());
            by_service.entry(key).or_default().push(entry);
        }
        let services = by_service.into_values().filter_map(ServiceEndpoints::new).map(Arc::new).collect();
        Self { services, cluster_ip: Arc::default() }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(service: &str, port: u16) -> EndpointEntry {
        Arc::new((Arc::new(BackendRef::new("default", service, port)), Arc::default()))
    }

    #[test]
    fn changes_are_the_sets_made_again_or_gone() {
        let (a80, a81, b80) = (entry("a", 80), entry("a", 81), entry("b", 80));
        let last: EndpointList = [&a80, &a81, &b80].into_iter().cloned().collect();
        let same = last.clone();
        let (gone, fresh) = EndpointList::changes(&last, &same);
        assert!(gone.is_empty() && fresh.is_empty() && last.same(&same));
        // Service `a` remade with its port 80 set kept and port 81 new; `b` gone; `c` new.
        let mut now = last.clone();
        let a81_again = entry("a", 81);
        now.services.put(Arc::new(ServiceEndpoints(vec![Arc::clone(&a80), Arc::clone(&a81_again)])));
        now.services.remove(&("default".into(), "b".into()));
        now.services.put(Arc::new(ServiceEndpoints(vec![entry("c", 80)])));
        let (gone, fresh) = EndpointList::changes(&last, &now);
        let names = |list: Vec<&EndpointEntry>| list.iter().map(|e| e.0.to_string()).collect::<Vec<_>>();
        assert_eq!(names(gone), [a81.0.to_string(), b80.0.to_string()]);
        assert_eq!(names(fresh), [a81_again.0.to_string(), BackendRef::new("default", "c", 80).to_string()]);
        assert!(now.contains(&a80.0) && !now.contains(&b80.0));
        assert_eq!(now.of_service(&("default".into(), "a".into())).len(), 2);
        assert_eq!(now.iter().count(), 3);
        // Cluster-IP sets: compared by address when the list of them changed.
        let mut with_ip = now.clone();
        let ip = entry("d", 80);
        with_ip.cluster_ip = Arc::new(vec![Arc::clone(&ip)]);
        let (gone, fresh) = EndpointList::changes(&now, &with_ip);
        assert!(gone.is_empty());
        assert_eq!(fresh.len(), 1);
        let mut kept = with_ip.clone();
        kept.cluster_ip = Arc::new(vec![ip]);
        let (gone, fresh) = EndpointList::changes(&with_ip, &kept);
        assert!(gone.is_empty() && fresh.is_empty(), "the same set in a new list");
    }
}
