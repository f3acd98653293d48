//! What one translation made, kept for the next: a change costs what it touches, not the
//! cluster size.
//!
//! The stores keep an unchanged object in the same `Arc` (see [`Objects::absorb`]), so the
//! cache tells what changed since it last translated by comparing pointers: at the keys a
//! journal of the changes names ([`Changed`], as the engine keeps one), or in one ordered walk
//! over each kind. It keeps:
//!
//! - per Ingress, everything its translation produced, with the objects that translation read
//!   (Services, Secrets, ConfigMaps, IngressClasses, Namespaces, found or not): the result is
//!   reused while the Ingress and every object it read are the same `Arc`s, and the certificates
//!   it used are judged as they were. The controller ConfigMap's data and the flags are read by
//!   every Ingress: when they change, every Ingress is translated again;
//! - per Service, its core Service and endpoint sets, while the Service and its EndpointSlices
//!   are the same;
//! - the translation's sets (used and referenced Services, Secrets, ConfigMaps) and field
//!   index, updated by what changed and shared with the translation;
//! - the list of every endpoint set ([`EndpointList`], changed chunk by chunk as Services
//!   change, so successive lists share the rest) and the map of every certificate (the same
//!   `Arc` while nothing in it changed);
//! - the parsed TLS Secrets ([`CertificateCache`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ingress_core::{BackendRef, EndpointSet, SmallSet, TableBuilder};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::networking::v1::IngressClass;

mod certificates;
mod policies;
mod published;
mod sets;
mod walk;

use certificates::CertificateMap;
use published::Published;

pub(crate) use policies::SharedPolicies;
use sets::Sets;
use walk::{Packed, changed_keys, update};

use super::ingress::{Names, Reads, Translated, translate_ingress};
use super::{
    CertificateCache, Certs, EndpointList, IndexMap, IngressInfo, ServiceEndpoints, Translation,
    core_service, service_endpoints,
};
use crate::objects::{Key, compact, stored_key};
use crate::{Changed, Config, Kind, Objects, StoredIngress, StoredService, StoredSlice};

/// An object a translation looked at, found or not: when it changes (appears, disappears, or
/// is stored in another version), what was made from it is made again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Read {
    /// A Service (backends, `default-backend`).
    Service(Key),
    /// A Secret (TLS, `auth-*`, `proxy-ssl-*`).
    Secret(Key),
    /// A ConfigMap (`custom-headers`, `auth-proxy-set-headers`).
    ConfigMap(Key),
    /// The IngressClass an Ingress names.
    IngressClass(Key),
    /// Every IngressClass (whether one of ours is the default).
    AnyIngressClass,
    /// The Namespace of an Ingress (`--watch-namespace-selector`).
    Namespace(Key),
}

/// How much of the last translation was made again and how much reused: what a change cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Ingresses translated (new, changed, or reading a changed object).
    pub ingresses_translated: usize,
    /// Ingresses whose cached translation was reused.
    pub ingresses_reused: usize,
    /// Services whose core Service and endpoints were made again.
    pub services_translated: usize,
    /// Services reused as they were.
    pub services_reused: usize,
}

/// What [`translate_with`](super::translate_with) keeps from one translation to the next, so
/// the next remakes only what changed (see the module documentation). Its results are those of
/// a fresh translation; one cache serves any sequence of object sets and configs.
#[derive(Debug, Default)]
pub struct TranslationCache {
    certificates: CertificateCache,
    /// The flags (as printed) and the controller ConfigMap's data the Ingresses were
    /// translated with.
    inputs: Option<(String, BTreeMap<String, String>)>,
    /// Every Ingress of the stores as last translated, in store order. Boxed: a B-tree filled
    /// in key order keeps its nodes about half full, which costs a large entry's size again.
    ingresses: BTreeMap<Key, Box<IngressEntry>>,
    /// The Ingresses to translate again: new, changed, or an object they read changed.
    stale: BTreeSet<Key>,
    /// What the translated Ingresses hand to each translation.
    published: Published,
    /// Which Ingresses read each object. A B-tree rebuilt with full nodes as it grows and
    /// after it is refilled (see `packed`): a hash table of its 88-byte entries kept about a
    /// third of its room empty, 0.9 MiB more at 10,000 Ingresses (`feed_memory`).
    readers: BTreeMap<Read, SmallSet<Key>>,
    /// Every Service of the stores, as last made.
    services: BTreeMap<Key, ServiceEntry>,
    /// A builder holding every Service and nothing else, cloned into each translation (a copy
    /// costs less than declaring each Service again). Made afresh when a Service is deleted,
    /// since a builder cannot forget one.
    services_builder: TableBuilder,
    /// Every EndpointSlice of the stores, as last seen.
    slices: BTreeMap<Key, Arc<StoredSlice>>,
    /// The EndpointSlices of each Service: (Service, slice), so a Service's slices are in store
    /// order. A map of lists took twice the room (a hash table's slack and a list each).
    slices_of: BTreeSet<(Key, Key)>,
    /// The versions of the other kinds the Ingresses may read, as last seen.
    secrets: BTreeMap<Key, Arc<Secret>>,
    config_maps: BTreeMap<Key, Arc<ConfigMap>>,
    ingress_classes: BTreeMap<Key, Arc<IngressClass>>,
    namespaces: BTreeMap<Key, Arc<Namespace>>,
    /// The translation's sets, counted over the Ingresses and the controller settings.
    sets: Sets,
    /// The Ingresses' route policies, one `Arc` for equal ones.
    policies: SharedPolicies,
    /// What the controller settings (not the Ingresses) added to the sets last time.
    globals: Names,
    /// The field index of every translated Ingress.
    index: Arc<HashMap<Key, Arc<IndexMap>>>,
    /// Services whose EndpointSlices changed since their endpoints were made.
    dirty_endpoints: HashSet<Key>,
    /// Every endpoint set (see [`Self::endpoint_list`]): each Service's, changed as its entry
    /// changes, and those of the backends reached through a cluster IP.
    list: EndpointList,
    /// The certificates of every Ingress, handed to each translation's builder as one map.
    certificate_map: CertificateMap,
    /// The Secrets that changed since the last translation (their parses may be forgotten).
    secrets_changed: Vec<Key>,
    /// When `ingresses`, `services`, `slices`, `slices_of` and `readers` were last rebuilt with
    /// full nodes.
    packed: [Packed; 5],
    /// Whether this translation forgot every Ingress (the flags or controller ConfigMap
    /// changed), so every stored Ingress is looked at, whatever the journal says.
    forgot: bool,
    stats: CacheStats,
}

/// One Ingress as last translated.
#[derive(Debug)]
struct IngressEntry {
    ingress: Arc<StoredIngress>,
    translated: Translated,
    reads: Reads,
}

/// One Service as last made.
#[derive(Debug)]
struct ServiceEntry {
    service: Arc<StoredService>,
    /// Its sets, as [`TranslationCache::list`] holds them (`None`: it has none).
    endpoints: Option<Arc<ServiceEndpoints>>,
}

impl TranslationCache {
    /// What the last translation made again and reused.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The TLS Secrets parsed so far.
    pub(super) fn certificates(&mut self) -> &mut CertificateCache {
        &mut self.certificates
    }

    /// The endpoint sets of a Service, as last made (none for a Service not stored).
    pub(super) fn service_endpoints(&self, key: &Key) -> impl Iterator<Item = (&BackendRef, &EndpointSet)> {
        self.services
            .get(key)
            .and_then(|s| s.endpoints.as_deref())
            .into_iter()
            .flat_map(|s| s.sets().iter().map(|e| (&*e.0, &*e.1)))
    }

    /// Brings the cache up to date with `objects`: forgets every Ingress when the flags or the
    /// controller ConfigMap's data (`controller`) changed, marks stale the Ingresses that read a
    /// changed Secret, ConfigMap, IngressClass or Namespace, and the endpoints of the Services
    /// whose EndpointSlices changed. `changed`: the keys that can have changed since the last
    /// translation (see [`Changed`]).
    pub(super) fn refresh(
        &mut self,
        objects: &Objects,
        config: &Config,
        controller: &BTreeMap<String, String>,
        changed: &Changed,
    ) {
        self.stats = CacheStats::default();
        let flags = format!("{config:?}");
        let same = self.inputs.as_ref().is_some_and(|(f, c)| *f == flags && c == controller);
        self.forgot = !same;
        if !same {
            self.forget_ingresses();
            self.inputs = Some((flags, controller.clone()));
        }
        let mut reads = Vec::new();
        self.secrets_changed = update(&mut self.secrets, &objects.secrets, changed.of(Kind::Secret));
        reads.extend(self.secrets_changed.iter().cloned().map(Read::Secret));
        for key in update(&mut self.config_maps, &objects.config_maps, changed.of(Kind::ConfigMap)) {
            reads.push(Read::ConfigMap(key));
        }
        let classes =
            update(&mut self.ingress_classes, &objects.ingress_classes, changed.of(Kind::IngressClass));
        if !classes.is_empty() {
            reads.push(Read::AnyIngressClass);
        }
        reads.extend(classes.into_iter().map(Read::IngressClass));
        for key in update(&mut self.namespaces, &objects.namespaces, changed.of(Kind::Namespace)) {
            reads.push(Read::Namespace(key));
        }
        for read in &reads {
            self.mark_readers(read);
        }
        self.sync_slices(objects, changed);
    }

    /// Brings the EndpointSlices of each Service up to date with `objects` (`changed`: the keys
    /// that can have changed since it was last called), marking the endpoints of their
    /// Services to be made again by the next translation. The engine calls it for an
    /// endpoint-only change too (with the keys changed since), before reading
    /// [`Self::slices_of`].
    pub(crate) fn sync_slices(&mut self, objects: &Objects, changed: &Changed) {
        let slices = changed.of(Kind::EndpointSlice);
        for key in changed_keys(&self.slices, &objects.endpoint_slices, |slice| slice, slices) {
            if let Some(service) = self.slices.remove(&key).and_then(|old| old.service_key(&key)) {
                self.slices_of.remove(&(service.clone(), key.clone()));
                self.dirty_endpoints.insert(service);
            }
            if let Some(slice) = objects.endpoint_slices.get(&key) {
                if let Some(service) = slice.service_key(&key) {
                    let service = stored_key(&objects.services, service);
                    self.slices_of.insert((service.clone(), key.clone()));
                    self.dirty_endpoints.insert(service);
                }
                self.slices.insert(key, Arc::clone(slice));
            }
        }
    }

    /// The EndpointSlices of Service `key`, in store order, as of the last
    /// [`sync`](Self::sync_slices).
    pub(crate) fn slices_of<'o>(&self, objects: &'o Objects, key: &Key) -> Vec<&'o StoredSlice> {
        let first: Key = (Arc::default(), Arc::default());
        let own = self.slices_of.range((key.clone(), first)..).take_while(|(service, _)| service == key);
        own.filter_map(|(_, k)| objects.endpoint_slices.get(k).map(|s| &**s)).collect()
    }

    /// Adds every Service to the translation's builder and endpoints, making again those whose
    /// object or EndpointSlices changed; the Ingresses that read a changed Service are marked
    /// stale.
    pub(super) fn add_services(&mut self, objects: &Objects, changed: &Changed, out: &mut Translation) {
        let changed =
            changed_keys(&self.services, &objects.services, |s| &s.service, changed.of(Kind::Service));
        for key in &changed {
            if self.services.remove(key).is_some() && !objects.services.contains_key(key) {
                self.services_builder.forget_service(&key.0, &key.1);
                self.list.services.remove(key);
            }
            self.dirty_endpoints.remove(key);
            self.mark_readers(&Read::Service(key.clone()));
            let Some(service) = objects.services.get(key) else { continue };
            let entry = self.service_entry(service, key, objects);
            self.services_builder.service(core_service(key, service));
            self.list_endpoints(key, entry.endpoints.as_ref());
            self.services.insert(key.clone(), entry);
            self.stats.services_translated += 1;
        }
        for key in std::mem::take(&mut self.dirty_endpoints) {
            let Some(service) = self.services.get(&key).map(|s| Arc::clone(&s.service)) else { continue };
            let endpoints = self.endpoints_of(&service, &key, objects);
            self.list_endpoints(&key, endpoints.as_ref());
            if let Some(entry) = self.services.get_mut(&key) {
                entry.endpoints = endpoints;
            }
            self.stats.services_translated += 1;
        }
        self.stats.services_reused = self.services.len().saturating_sub(self.stats.services_translated);
        out.builder = self.services_builder.clone();
    }

    /// Every endpoint set: each Service's, then `cluster_ip` (those of the backends reached
    /// through a cluster IP). Shares with the list handed out last what did not change, so
    /// whoever kept that one reads only the changes ([`EndpointList::changes`]).
    pub(super) fn endpoint_list(&mut self, cluster_ip: Vec<(BackendRef, EndpointSet)>) -> EndpointList {
        let old = &self.list.cluster_ip;
        let same = cluster_ip.len() == old.len()
            && cluster_ip.iter().zip(old.iter()).all(|(new, old)| new.0 == *old.0 && new.1 == *old.1);
        if !same {
            self.list.cluster_ip = Arc::new(cluster_ip.into_iter().map(entry).collect());
        }
        self.list.clone()
    }

    /// Puts the sets of Service `key` in the list (or takes them out: `None`).
    fn list_endpoints(&mut self, key: &Key, endpoints: Option<&Arc<ServiceEndpoints>>) {
        match endpoints {
            Some(sets) => self.list.services.put(Arc::clone(sets)),
            None => self.list.services.remove(key),
        }
    }

    fn service_entry(&self, service: &Arc<StoredService>, key: &Key, objects: &Objects) -> ServiceEntry {
        ServiceEntry { service: Arc::clone(service), endpoints: self.endpoints_of(service, key, objects) }
    }

    /// The endpoint sets of a Service, from its EndpointSlices in store order.
    fn endpoints_of(
        &self,
        service: &StoredService,
        key: &Key,
        objects: &Objects,
    ) -> Option<Arc<ServiceEndpoints>> {
        let slices = self.slices_of(objects, key);
        let mut sets: Vec<_> = service_endpoints(key, service, &slices).into_iter().map(entry).collect();
        // Collected in place, into the room of the larger entries: kept, it would be mostly empty.
        sets.shrink_to_fit();
        ServiceEndpoints::new(sets).map(Arc::new)
    }

    /// Adds every Ingress of ours to the translation, translating again those that are new,
    /// changed, stale, or used a certificate whose validity may have changed since; returns
    /// the backends reached through a cluster IP, each once, sorted. Only those Ingresses are
    /// looked at: the others' outputs are kept up to date in [`Published`].
    pub(super) fn add_ingresses(
        &mut self,
        objects: &Objects,
        config: &Config,
        changed: &Changed,
        out: &mut Translation,
    ) -> BTreeSet<BackendRef> {
        // Forgotten Ingresses are all looked at again.
        let hint = changed.of(Kind::Ingress).filter(|_| !self.forgot);
        for key in changed_keys(&self.ingresses, &objects.ingresses, |e| &e.ingress, hint) {
            if let Some(old) = self.ingresses.remove(&key) {
                self.forget(&key, &old);
            }
            if let Some(ingress) = objects.ingresses.get(&key) {
                let entry = Box::new(IngressEntry {
                    ingress: Arc::clone(ingress),
                    translated: Translated::default(),
                    reads: Reads::default(),
                });
                self.ingresses.insert(key.clone(), entry);
                self.stale.insert(key);
            }
        }
        let now = super::certs::unix_now();
        self.stale.extend(self.published.expired(now));
        let no_data = BTreeMap::new();
        let controller = self.inputs.as_ref().map_or(&no_data, |(_, c)| c);
        let mut certs = Certs { seen: HashMap::new(), cache: &mut self.certificates };
        // In key order, so the published lists made from nothing grow at their ends.
        for key in std::mem::take(&mut self.stale) {
            let Some(entry) = self.ingresses.get_mut(&key) else { continue };
            // Take back what the last translation added (its published outputs are replaced
            // below).
            self.sets.remove(&entry.translated.names);
            for read in &entry.reads.objects {
                unread(&mut self.readers, read, &key);
            }
            if entry.translated.index.is_some() {
                Arc::make_mut(&mut self.index).remove(&key);
            }
            let (translated, reads) = translate_ingress(
                objects,
                config,
                controller,
                &mut certs,
                &mut self.policies,
                &key,
                &entry.ingress,
            );
            self.certificate_map.remove(&entry.translated.certificates);
            self.certificate_map.add(&translated.certificates);
            self.sets.add(&translated.names);
            for read in &reads.objects {
                self.readers.entry(read.clone()).or_default().insert(key.clone());
            }
            if let Some(index) = &translated.index {
                Arc::make_mut(&mut self.index).insert(key.clone(), Arc::clone(index));
            }
            self.published.replace(&key, (&entry.translated, entry.reads.until), (&translated, reads.until));
            entry.translated = translated;
            entry.reads = reads;
            self.stats.ingresses_translated += 1;
        }
        self.stats.ingresses_reused = self.ingresses.len().saturating_sub(self.stats.ingresses_translated);
        self.published.hand_out(&mut out.builder);
        for key in &self.published.with_problems {
            let problems = self.ingresses.get(key).map(|e| e.translated.problems.as_slice());
            out.problems.extend(problems.into_iter().flatten().cloned());
        }
        out.ingresses = self.published.infos.clone();
        out.builder.certificates(self.certificate_map.shared());
        self.published.cluster_ip_backends()
    }

    /// Takes in the stored versions of the Ingresses `keys` that differ from the translated ones
    /// only in status ([`StoredIngress::same_but_status`]): each keeps its translation, with
    /// the new status in its info. Returns the infos so made, sorted by key (as every
    /// translation lists them). Any other version is left for the next translation.
    pub(crate) fn take_statuses(&mut self, objects: &Objects, keys: &BTreeSet<Key>) -> Vec<Arc<IngressInfo>> {
        let mut infos = Vec::new();
        for key in keys {
            let (Some(entry), Some(now)) = (self.ingresses.get_mut(key), objects.ingresses.get(key)) else {
                continue;
            };
            if Arc::ptr_eq(&entry.ingress, now) || !entry.ingress.same_but_status(now) {
                continue;
            }
            entry.ingress = Arc::clone(now);
            if let Some(info) = &mut entry.translated.info {
                *info = Arc::new(IngressInfo { status: now.status.clone(), ..IngressInfo::clone(info) });
                self.published.replace_info(info);
                infos.push(Arc::clone(info));
            }
        }
        infos
    }

    /// Counts what the controller settings name (`globals`) into the sets, and hands the sets
    /// and the field index to the translation; forgets the certificates no longer stored.
    pub(super) fn finish(&mut self, objects: &Objects, mut globals: Names, out: &mut Translation) {
        globals.dedup();
        if globals != self.globals {
            self.sets.add(&globals);
            self.sets.remove(&self.globals);
            self.globals = globals;
        }
        out.referenced_config_maps = Arc::clone(&self.sets.referenced_config_maps.set);
        out.referenced_secrets = Arc::clone(&self.sets.referenced_secrets.set);
        out.used_services = Arc::clone(&self.sets.used_services.set);
        out.used_secrets = Arc::clone(&self.sets.used_secrets.set);
        out.index = Arc::clone(&self.index);
        self.certificates.forget_changed(&std::mem::take(&mut self.secrets_changed), &objects.secrets);
        let [ingresses, services, slices, slices_of, readers] = &mut self.packed;
        if ingresses.due(self.ingresses.len()) {
            compact(&mut self.ingresses);
        }
        if services.due(self.services.len()) {
            compact(&mut self.services);
        }
        if slices.due(self.slices.len()) {
            compact(&mut self.slices);
        }
        if slices_of.due(self.slices_of.len()) {
            compact(&mut self.slices_of);
        }
        if readers.due(self.readers.len()) {
            compact(&mut self.readers);
        }
    }

    /// Drops every Ingress translation (and what they added to the sets and index).
    fn forget_ingresses(&mut self) {
        self.ingresses.clear();
        self.stale.clear();
        self.published = Published::default();
        self.certificate_map = CertificateMap::default();
        self.readers.clear();
        // Refilled in key order by the next translation: rebuilt with full nodes after it.
        let [.., readers] = &mut self.packed;
        *readers = Packed::default();
        self.sets = Sets::default();
        self.globals = Names::default();
        self.index = Arc::default();
    }

    /// Takes back what the translation of one Ingress, now gone, added.
    fn forget(&mut self, key: &Key, entry: &IngressEntry) {
        self.stale.remove(key);
        self.published.remove(key, &entry.translated, entry.reads.until);
        self.sets.remove(&entry.translated.names);
        self.certificate_map.remove(&entry.translated.certificates);
        for read in &entry.reads.objects {
            unread(&mut self.readers, read, key);
        }
        if entry.translated.index.is_some() {
            Arc::make_mut(&mut self.index).remove(key);
        }
    }

    /// Marks stale every Ingress that read `read`.
    fn mark_readers(&mut self, read: &Read) {
        for key in self.readers.get(read).into_iter().flatten() {
            if self.ingresses.contains_key(key) {
                self.stale.insert(key.clone());
            }
        }
    }
}

/// Removes `key` from the readers of `read`.
fn unread(readers: &mut BTreeMap<Read, SmallSet<Key>>, read: &Read, key: &Key) {
    if let Some(keys) = readers.get_mut(read) {
        keys.remove(key);
        if keys.is_empty() {
            readers.remove(read);
        }
    }
}

/// One endpoint set as the list holds it: its backend and set are shared with the endpoint
/// store's slot, which takes them as they are.
fn entry((backend, set): (BackendRef, EndpointSet)) -> super::EndpointEntry {
    Arc::new((Arc::new(backend), Arc::new(set)))
}
