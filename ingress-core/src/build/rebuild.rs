//! Incremental builds: what one build made is kept, and the next one redoes only the hosts of
//! the Ingresses that changed (and of those naming a Service that changed). Unchanged hosts'
//! blocks are shared between successive tables.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::ingress::{Entry, ServiceName, ServiceRef};
use super::{Built, Services, TableBuilder, block, global, index};
use crate::table::{HostBlock, IndexWriter, Slot};
use crate::{EndpointStore, HostPattern, Ingress, SmallSet};

/// An Ingress's identity across builds: namespace, name, and which of the Ingresses of that
/// name (normally the only one; Kubernetes never has two). Shared: the rebuilder's maps hold it
/// five or six times per Ingress, a pointer each instead of two names; the names are the
/// Ingress's [`Origin`](crate::Origin)'s.
pub(super) type Key = Arc<(Arc<str>, Arc<str>, u32)>;

/// A [`Key`] borrowed from an Ingress, to look its entry up without copying its name. Hashes
/// as the `Key` it stands for.
#[derive(Hash)]
struct KeyRef<'a>(&'a str, &'a str, u32);

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == &*key.0 && self.1 == &*key.1 && self.2 == key.2
    }
}

/// How many compiled path regexes a rebuilder keeps between builds at most.
const REGEXES_KEPT: usize = 10_000;

/// The maps and sets of the rebuilder, with a fast hash.
pub(super) type Map<K, V> = HashMap<K, V, RandomState>;
pub(super) type Set<K> = HashSet<K, RandomState>;

/// Ingress entries by key. Boxed: a hash table keeps room for more entries than it holds, and
/// an entry is about a hundred bytes.
pub(super) type Entries = hashbrown::HashMap<Key, Box<Entry>, RandomState>;

/// Ingresses oldest first (by origin, then key), as the cross-host parts of a build read them:
/// kept in order change by change rather than sorted at every build.
pub(super) type ByAge = std::collections::BTreeSet<(crate::Origin, Key)>;

/// Keeps what the last build made, so the next build with mostly the same input redoes only
/// what changed: the cost of a change grows with the hosts it touches, not with the number of
/// Ingresses. The tables it returns are the same as [`TableBuilder::build`]'s for the same
/// input (which is a `Rebuilder`'s first build), but for ties between Ingresses of the same
/// namespace, name and age, which Kubernetes never has.
///
/// An unchanged Ingress is recognised by identity: pass Ingresses as the same `Arc` from one
/// builder to the next (an Ingress passed by value always counts as changed, which is correct
/// but rebuilds its hosts).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use ingress_core::{BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, Rebuilder, TableBuilder};
///
/// let site = |name: &str| Arc::new(Ingress::new(Origin::new("default", name))
///     .rule(HostRule::host(format!("{name}.example.com")).path(PathRule::prefix("/", BackendRef::new("default", name, 80)))));
/// let (a, b) = (site("a"), site("b"));
/// let mut store = EndpointStore::new();
/// let mut rebuilder = Rebuilder::new();
/// let mut builder = TableBuilder::new();
/// builder.ingress(Arc::clone(&a));
/// let first = rebuilder.build(&builder, &mut store).table;
/// builder.ingress(Arc::clone(&b));
/// let second = rebuilder.build(&builder, &mut store).table;
/// assert_eq!(rebuilder.last_rebuilt(), 1, "only b's host was built");
/// assert!(first.lookup("b.example.com", "/").is_none());
/// assert!(second.lookup("a.example.com", "/").is_some() && second.lookup("b.example.com", "/").is_some());
/// ```
#[derive(Debug, Default)]
pub struct Rebuilder {
    hasher: RandomState,
    entries: Entries,
    /// The key of each Ingress by the address of its `Arc`, and the build that last saw it: an
    /// unchanged Ingress is found without reading it. Each entry holds its `Arc`, so no other
    /// Ingress can take an address while it is here.
    by_ptr: Map<usize, (Key, u64)>,
    builds: u64,
    /// The version of the Ingress list the last build read, when the builder said it and held
    /// no other Ingress ([`TableBuilder::ingress_list_changed`]).
    list_version: Option<crate::ListVersion>,
    /// The Ingresses with a rule for each host.
    members: Map<HostPattern, Vec<Key>>,
    /// The Ingresses naming each Service.
    by_service: hashbrown::HashMap<ServiceName, SmallSet<Key, RandomState>, RandomState>,
    /// The Services of the last build.
    services: Services,
    /// Each host's block, and its id in the host indexes when it is served.
    groups: Map<HostPattern, (Arc<HostBlock>, Option<u32>)>,
    /// The host indexes (blocks by name and by id; `None` is a free id), as the tables hold
    /// them.
    index: IndexWriter,
    /// How many ids the indexes have, and the free ones.
    ids: usize,
    free: Vec<u32>,
    any: Option<u32>,
    /// The alias names in the indexes, by kind (0 exact, 1 wildcard), to take out next time.
    aliases: Vec<(u8, Box<str>)>,
    /// Hosts with aliases or a `www.` redirect; hosts whose block rejected something.
    named: Set<HostPattern>,
    rejecting: Set<HostPattern>,
    /// Ingresses that are catch-all candidates, have TLS claims, or rejections of their own.
    catch_alls: ByAge,
    with_tls: ByAge,
    rejected: Set<Key>,
    /// The TLS map of the last build, while no Ingress with TLS claims came, went or changed them.
    tls: super::tls_map::TlsMemo,
    /// Ingresses with TLS claims taken out during this build: one learnt again with the same
    /// age and the same claims (a new version that changed something else) leaves the TLS map
    /// as it was; any other forgets it.
    tls_gone: Vec<((crate::Origin, Key), Entry)>,
    /// Regexes compiled by earlier builds (emptied past [`REGEXES_KEPT`], so patterns no
    /// longer used do not pile up).
    regexes: block::Regexes,
    /// Totals over the served hosts: routes, hosts, hosts with passthrough, with client auth.
    routes: usize,
    served: usize,
    passthrough: usize,
    client_auth: usize,
    rebuilt: usize,
    read: usize,
}

impl Rebuilder {
    /// A rebuilder that has built nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many host blocks the last build made (the others were shared with the table before).
    pub fn last_rebuilt(&self) -> usize {
        self.rebuilt
    }

    /// How many Ingresses the last build read to find what changed: every one it was given,
    /// or only the changes to the list it read before ([`TableBuilder::ingress_list_changed`]).
    pub fn last_read(&self) -> usize {
        self.read
    }

    /// How many builds brought the host indexes of the table before last up to date in place,
    /// and how many copied the last table's (something still held the one before).
    pub fn index_updates(&self) -> (u64, u64) {
        self.index.counts()
    }

    /// Builds the table of `builder`, reusing the blocks of the hosts no change touched since
    /// the last build. Never fails as a whole, like [`TableBuilder::build`].
    pub fn build(&mut self, builder: &TableBuilder, endpoints: &mut EndpointStore) -> Built {
        if self.regexes.len() > REGEXES_KEPT {
            self.regexes.clear();
        }
        let services = Services::changed(&self.services, &builder.services);
        let (removed, fresh) = self.changed_ingresses(builder);
        let mut hosts = Set::default();
        for key in &removed {
            self.forget(key, &mut hosts);
        }
        // Ingresses naming a Service whose ports changed, appeared or disappeared.
        let mut touched: Vec<Key> = Vec::new();
        for service in &services {
            touched.extend(
                self.by_service.get(&ServiceRef(&service.0, &service.1)).into_iter().flatten().cloned(),
            );
        }
        touched.sort_unstable();
        touched.dedup();
        for key in touched {
            let Some(ingress) = self.entries.get(&key).map(|e| Arc::clone(&e.ingress)) else { continue };
            self.forget(&key, &mut hosts);
            self.learn(key, ingress, &builder.services, &mut hosts);
        }
        for ingress in fresh {
            let key = self.free_key(&ingress);
            self.learn(key, ingress, &builder.services, &mut hosts);
        }
        if !self.tls_gone.is_empty() {
            self.tls.forget();
            self.tls_gone.clear();
        }
        self.services = builder.services.clone();
        self.rebuilt = hosts.len();
        for pattern in hosts {
            self.rebuild_host(pattern, endpoints);
        }
        global::finish(self.state(), builder, endpoints)
    }

    /// The Ingresses gone since the last build (their keys) and the new or changed ones. An
    /// unchanged Ingress is the same `Arc`, found by its address without reading it.
    fn changed_ingresses(&mut self, builder: &TableBuilder) -> (Vec<Key>, Vec<Arc<Ingress>>) {
        self.builds += 1;
        let changes = builder.list_changes.as_ref().filter(|_| builder.ingresses.is_empty());
        let last = std::mem::replace(&mut self.list_version, changes.map(|c| c.version));
        if let Some(changes) = changes
            && changes.since.is_some()
            && changes.since == last
            && let Some(changed) = self.listed_changes(changes)
        {
            self.read = changes.removed.len() + changes.added.len();
            return changed;
        }
        self.read = builder.list.len() + builder.ingresses.len();
        let now = self.builds;
        let mut fresh = Vec::new();
        let mut kept = 0;
        for ing in builder.all_ingresses() {
            match self.by_ptr.get_mut(&(Arc::as_ptr(ing) as usize)) {
                Some((_, seen)) if *seen != now => {
                    *seen = now;
                    kept += 1;
                }
                // The same Arc twice in one builder: addresses do not tell its entries apart,
                // so everything is made again (correct, and only for such input).
                Some(_) => {
                    return (
                        self.entries.keys().cloned().collect(),
                        builder.all_ingresses().cloned().collect(),
                    );
                }
                None => fresh.push(Arc::clone(ing)),
            }
        }
        if self.by_ptr.len() != self.entries.len() {
            return (self.entries.keys().cloned().collect(), builder.all_ingresses().cloned().collect());
        }
        let removed = if kept == self.by_ptr.len() {
            Vec::new()
        } else {
            self.by_ptr.values().filter(|(_, seen)| *seen != now).map(|(key, _)| key.clone()).collect()
        };
        (removed, fresh)
    }

    /// What [`Self::changed_ingresses`] returns, read from the changes to the list the last
    /// build read. `None` when they do not fit what that build learnt (an Ingress taken out
    /// that it did not have, or put in that it has): then the whole list is read.
    fn listed_changes(&self, changes: &crate::ListChanges) -> Option<(Vec<Key>, Vec<Arc<Ingress>>)> {
        let address = |ing: &Arc<Ingress>| Arc::as_ptr(ing) as usize;
        let mut removed = Vec::with_capacity(changes.removed.len());
        for ing in &changes.removed {
            removed.push(self.by_ptr.get(&address(ing))?.0.clone());
        }
        let mut added = Set::default();
        for ing in &changes.added {
            if self.by_ptr.contains_key(&address(ing)) || !added.insert(address(ing)) {
                return None;
            }
        }
        Some((removed, changes.added.clone()))
    }

    /// The key for a new Ingress: its name, and the first index no kept Ingress of that name
    /// holds.
    fn free_key(&self, ingress: &Ingress) -> Key {
        let (ns, name) = (&ingress.origin.namespace, &ingress.origin.name);
        let mut n = 0;
        while self.entries.contains_key(&KeyRef(ns, name, n)) {
            n += 1;
        }
        Arc::new((Arc::clone(ns), Arc::clone(name), n))
    }

    /// Takes an Ingress's entry out, noting its hosts.
    fn forget(&mut self, key: &Key, hosts: &mut Set<HostPattern>) {
        let Some(old) = self.entries.remove(key) else { return };
        self.by_ptr.remove(&(Arc::as_ptr(&old.ingress) as usize));
        for h in &old.hosts {
            if let Some(keys) = self.members.get_mut(h) {
                keys.retain(|k| k != key);
            }
            hosts.insert(h.clone());
        }
        for s in &old.services {
            if let Some(keys) = self.by_service.get_mut(s) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_service.remove(s);
                }
            }
        }
        let aged = (old.ingress.origin.clone(), key.clone());
        self.catch_alls.remove(&aged);
        if self.with_tls.remove(&aged) {
            self.tls_gone.push((aged, *old));
        }
        self.rejected.remove(key);
    }

    /// Puts an Ingress's (new) entry in, noting its hosts.
    fn learn(&mut self, key: Key, ingress: Arc<Ingress>, services: &Services, hosts: &mut Set<HostPattern>) {
        self.by_ptr.insert(Arc::as_ptr(&ingress) as usize, (key.clone(), self.builds));
        let entry = Box::new(Entry::new(ingress, services));
        for h in &entry.hosts {
            let members = self.members.entry(h.clone()).or_default();
            // Room for one at first: most hosts have one Ingress (a first push makes room for 4).
            if members.capacity() == 0 {
                members.reserve_exact(1);
            }
            members.push(key.clone());
            hosts.insert(h.clone());
        }
        for s in &entry.services {
            self.by_service.entry(s.clone()).or_default().insert(key.clone());
        }
        if entry.catch_all {
            self.catch_alls.insert((entry.ingress.origin.clone(), key.clone()));
        }
        if !entry.tls.is_empty() {
            let aged = (entry.ingress.origin.clone(), key.clone());
            match self.tls_gone.iter().position(|(gone, old)| *gone == aged && old.same_tls(&entry)) {
                Some(at) => drop(self.tls_gone.swap_remove(at)),
                None => self.tls.forget(),
            }
            self.with_tls.insert(aged);
        }
        if !entry.rejected.is_empty() {
            self.rejected.insert(key.clone());
        }
        self.entries.insert(key, entry);
    }

    /// Builds the block of one host again from its Ingresses, and puts it in the indexes.
    fn rebuild_host(&mut self, pattern: HostPattern, endpoints: &mut EndpointStore) {
        let old = self.groups.remove(&pattern);
        let old_id = old.as_ref().and_then(|(_, id)| *id);
        if let Some((block, Some(id))) = &old {
            self.count(block, false);
            self.unindex(&pattern, *id);
        }
        self.named.remove(&pattern);
        self.rejecting.remove(&pattern);
        if let Some(id) = old_id {
            self.index.set_host(id, None, &self.hasher);
        }
        let keys = self.members.get(&pattern).map(Vec::as_slice).unwrap_or_default();
        let mut members: Vec<(&Key, &Ingress)> =
            keys.iter().filter_map(|k| Some((k, &*self.entries.get(k)?.ingress))).collect();
        // Oldest first, so origin indices order Ingresses by age and the first rule to claim a
        // (host, path, kind) is the oldest.
        members.sort_by(|a, b| (&a.1.origin, a.0).cmp(&(&b.1.origin, b.0)));
        let (canaries, mains): (Vec<&Ingress>, Vec<&Ingress>) =
            members.into_iter().map(|(_, i)| i).partition(|i| i.canary.is_some());
        if mains.is_empty() && canaries.is_empty() {
            self.members.remove(&pattern);
            self.free.extend(old_id);
            return;
        }
        let built =
            Arc::new(block::build(&pattern, &mains, &canaries, &self.services, endpoints, &mut self.regexes));
        if built.aliases.is_some() || built.www_redirect {
            self.named.insert(pattern.clone());
        }
        if !built.rejected.is_empty() {
            self.rejecting.insert(pattern.clone());
        }
        let id = if built.served {
            let id = old_id.unwrap_or_else(|| self.free_id());
            self.index.set_host(id, Some(Arc::clone(&built)), &self.hasher);
            self.count(&built, true);
            self.index(&pattern, id, &built);
            Some(id)
        } else {
            self.free.extend(old_id);
            None
        };
        self.groups.insert(pattern, (built, id));
    }

    /// Counts a served block in (`add`) or out of the totals.
    fn count(&mut self, block: &HostBlock, add: bool) {
        let change = |total: &mut usize, n: usize| {
            *total = if add { *total + n } else { total.saturating_sub(n) };
        };
        change(&mut self.routes, block.routes.len());
        change(&mut self.served, 1);
        change(&mut self.passthrough, usize::from(block.passthrough.is_some()));
        change(&mut self.client_auth, usize::from(block.client_auth.is_some()));
    }

    fn free_id(&mut self) -> u32 {
        match self.free.pop() {
            Some(id) => id,
            None => {
                self.ids += 1;
                index(self.ids - 1)
            }
        }
    }

    fn index(&mut self, pattern: &HostPattern, id: u32, block: &Arc<HostBlock>) {
        let slot = Slot { block: Arc::clone(block), id, alias: None };
        match pattern.specificity() {
            kind @ (0 | 1) => self.index.insert(kind, slot, &self.hasher),
            _ => self.any = Some(id),
        }
    }

    fn unindex(&mut self, pattern: &HostPattern, id: u32) {
        let name = block::host_name(pattern);
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, name);
        match pattern.specificity() {
            kind @ (0 | 1) => self.index.remove_host(kind, hash, id, &self.hasher),
            _ => self.any = None,
        }
    }

    /// What the last part of a build reads and updates.
    fn state(&mut self) -> global::State<'_> {
        global::State {
            hasher: &self.hasher,
            entries: &self.entries,
            groups: &self.groups,
            index: &mut self.index,
            any: self.any,
            aliases: &mut self.aliases,
            named: &self.named,
            rejecting: &self.rejecting,
            catch_alls: &self.catch_alls,
            with_tls: &self.with_tls,
            rejected: &self.rejected,
            tls: &mut self.tls,
            routes: self.routes,
            served: self.served,
            passthrough: self.passthrough > 0,
            client_auth: self.client_auth > 0,
        }
    }
}
