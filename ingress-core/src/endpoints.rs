//! Endpoints: the addresses behind each backend, changeable without rebuilding routes.
//!
//! A route table points at one shared [`EndpointSlot`] per backend. Updating a Service's
//! endpoints swaps the set inside its slot, so the cost is that of the new set alone, and every
//! table that routes to the backend, current or being built, sees the change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use crate::BackendRef;

/// One address that serves a backend (a ready pod IP and target port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Self { addr }
    }
}

/// The ready endpoints of one backend at one moment, in a stable order.
#[derive(Debug, Clone, Default)]
pub struct EndpointSet {
    endpoints: Vec<Endpoint>,
    /// The consistent-hash ring over them, built on first use. Boxed: most sets never need
    /// one, and every set is kept (16 bytes less a set).
    ring: std::sync::OnceLock<Box<crate::HashRing>>,
}

impl PartialEq for EndpointSet {
    fn eq(&self, other: &Self) -> bool {
        self.endpoints == other.endpoints
    }
}

impl Eq for EndpointSet {}

impl EndpointSet {
    /// A set from any endpoints; sorted and deduplicated so equal sets compare equal, and kept
    /// in no more room than they take (a list grown from empty has room for four: a Service of
    /// two Pods kept 128 bytes of addresses for 64).
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<Endpoint>>) -> Self {
        let mut endpoints: Vec<Endpoint> = endpoints.into_iter().map(Into::into).collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        endpoints.shrink_to_fit();
        Self { endpoints, ring: std::sync::OnceLock::new() }
    }

    /// The consistent-hash ring over these endpoints (`upstream-hash-by`, balanced affinity),
    /// built once per set.
    pub fn ring(&self) -> &crate::HashRing {
        self.ring.get_or_init(|| {
            let addrs: Vec<SocketAddr> = self.endpoints.iter().map(|e| e.addr).collect();
            Box::new(crate::HashRing::of_endpoints(&addrs))
        })
    }

    /// The endpoints, sorted by address.
    pub fn as_slice(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Whether there is no endpoint (the proxy answers 503).
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }
}

/// The live endpoint set of one backend, shared by every table that routes to it.
///
/// Reading is lock-free; writers swap whole sets.
#[derive(Debug, Default)]
pub struct EndpointSlot {
    set: ArcSwap<EndpointSet>,
    cursor: AtomicUsize,
}

impl EndpointSlot {
    /// The current endpoint set.
    pub fn load(&self) -> Arc<EndpointSet> {
        self.set.load_full()
    }

    /// Replaces the endpoint set; requests already holding the old set finish with it.
    pub fn store(&self, set: EndpointSet) {
        self.store_shared(Arc::new(set));
    }

    /// Replaces the endpoint set with one shared with its maker (who keeps it to compare with
    /// the next), so the set is held once.
    pub fn store_shared(&self, set: Arc<EndpointSet>) {
        self.set.store(set);
    }

    /// A counter that survives route-table rebuilds, for round-robin style selectors: each call
    /// returns the next value.
    pub fn next_cursor(&self) -> usize {
        self.cursor.fetch_add(1, Ordering::Relaxed)
    }
}

/// All backends' endpoint slots, keyed by [`BackendRef`]. Owned by whoever feeds the model
/// (the Kubernetes watcher, a test, an embedding gateway).
///
/// # Examples
///
/// ```
/// use ingress_core::{BackendRef, EndpointSet, EndpointStore};
///
/// let mut store = EndpointStore::new();
/// let backend = BackendRef::new("default", "demo-app", 80);
/// store.set(&backend, EndpointSet::new(["127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap()]));
/// assert_eq!(store.get(&backend).unwrap().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct EndpointStore {
    slots: HashMap<Arc<BackendRef>, Arc<EndpointSlot>, foldhash::fast::RandomState>,
}

impl EndpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a backend's endpoints. Costs O(size of `set`): no route table is rebuilt, and tables
    /// already serving see the new set on their next lookup.
    pub fn set(&mut self, backend: &BackendRef, set: EndpointSet) {
        match self.slots.get(backend) {
            Some(slot) => slot.store(set),
            None => self.set_shared(&Arc::new(backend.clone()), Arc::new(set)),
        }
    }

    /// [`set`](Self::set) with a backend and a set shared with the caller, who keeps them
    /// (the Kubernetes feed keeps every set to tell what changed): neither is copied.
    pub fn set_shared(&mut self, backend: &Arc<BackendRef>, set: Arc<EndpointSet>) {
        match self.slots.get(&**backend) {
            Some(slot) => slot.store_shared(set),
            None => {
                let slot = EndpointSlot::default();
                slot.store_shared(set);
                self.slots.insert(Arc::clone(backend), Arc::new(slot));
            }
        }
    }

    /// The backend's current endpoints, if the store has heard of it.
    pub fn get(&self, backend: &BackendRef) -> Option<Arc<EndpointSet>> {
        self.slots.get(backend).map(|s| s.load())
    }

    /// Forgets a backend: its slot is emptied so tables still pointing at it answer 503.
    pub fn remove(&mut self, backend: &BackendRef) {
        if let Some(slot) = self.slots.remove(backend) {
            slot.store(EndpointSet::default());
        }
    }

    /// The key and slot for `backend`, created empty if needed (tables hold on to both, so the
    /// key's strings are stored once).
    pub(crate) fn slot(&mut self, backend: &BackendRef) -> (Arc<BackendRef>, Arc<EndpointSlot>) {
        if let Some((key, slot)) = self.slots.get_key_value(backend) {
            return (Arc::clone(key), Arc::clone(slot));
        }
        let key = Arc::new(backend.clone());
        let slot = Arc::new(EndpointSlot::default());
        self.slots.insert(Arc::clone(&key), Arc::clone(&slot));
        (key, slot)
    }

    /// Drops empty slots that no table uses any more.
    pub fn prune(&mut self) {
        self.slots.retain(|_, slot| Arc::strong_count(slot) > 1 || !slot.load().is_empty());
    }

    /// How many backends the store tracks.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the store tracks no backend.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_sorted_deduplicated_and_kept_in_no_more_room_than_it_takes() {
        let a: SocketAddr = "10.0.0.2:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: SocketAddr = "10.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        // Extended from empty, as the feed gathers a Service's addresses: room for four.
        let mut gathered = Vec::new();
        gathered.extend([a, b, a]);
        let set = EndpointSet::new(gathered);
        assert_eq!(set.as_slice(), [Endpoint::from(b), Endpoint::from(a)]);
        assert_eq!(set.endpoints.capacity(), 2);
        assert_eq!(set, EndpointSet::new([b, a]), "equal sets compare equal");
    }
}
