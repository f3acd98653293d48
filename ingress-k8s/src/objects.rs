//! The stores: the API objects the controller knows, by kind and `namespace/name`.
//!
//! Like kube's reflector store, they are updated by plain synchronous functions
//! ([`Objects::apply`], [`Objects::replace`]) so the same code serves the watchers, the manifest
//! files and the tests.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::stored::{StoredIngress, StoredService, StoredSlice};

/// `(namespace, name)`; cluster-scoped objects (IngressClass) have an empty namespace. Shared
/// strings: the translation cache keeps an object's key in several maps and lists, and a copy
/// costs two reference counts, not two allocations.
pub type Key = (Arc<str>, Arc<str>);

/// The kinds of object the controller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `networking.k8s.io/v1` IngressClass.
    IngressClass,
    /// core/v1 Service.
    Service,
    /// `discovery.k8s.io` EndpointSlice (v1, or v1beta1 read into the v1 type).
    EndpointSlice,
    /// core/v1 Secret: of type `kubernetes.io/tls`, or one an Ingress names (`auth-secret`).
    Secret,
    /// core/v1 ConfigMap (the one named by `--configmap`).
    ConfigMap,
    /// core/v1 Namespace (those `--watch-namespace-selector` selects).
    Namespace,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 7] = [
        Kind::Ingress,
        Kind::IngressClass,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Secret,
        Kind::ConfigMap,
        Kind::Namespace,
    ];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One API object of a kind the controller reads.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived: moved straight into the store
pub enum Object {
    /// An Ingress.
    Ingress(Ingress),
    /// An IngressClass.
    IngressClass(IngressClass),
    /// A Service.
    Service(Service),
    /// An EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// A Secret.
    Secret(Secret),
    /// A ConfigMap.
    ConfigMap(ConfigMap),
    /// A Namespace.
    Namespace(Namespace),
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Ingress(_) => Kind::Ingress,
            Object::IngressClass(_) => Kind::IngressClass,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Secret(_) => Kind::Secret,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Namespace(_) => Kind::Namespace,
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
        }
    }

    /// The object's store key.
    pub fn key(&self) -> Key {
        key_of(self.meta())
    }
}

/// The store key of an object's metadata.
pub fn key_of(meta: &ObjectMeta) -> Key {
    (meta.namespace.as_deref().unwrap_or_default().into(), meta.name.as_deref().unwrap_or_default().into())
}

/// `key` as `map` holds it, when it holds it: the copy a translation keeps shares the store's
/// strings instead of holding its own.
pub(crate) fn stored_key<V>(map: &BTreeMap<Key, V>, key: Key) -> Key {
    map.get_key_value(&key).map_or(key, |(stored, _)| stored.clone())
}

/// The type of the Secrets the Secrets watcher lists (the others are watched by name).
pub(crate) const TLS_SECRET: &str = "kubernetes.io/tls";

/// A change to the stores: what a watcher event or a manifest reload amounts to.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived: moved straight into the store
pub enum Change {
    /// The object was created or updated.
    Apply(Object),
    /// The object was deleted.
    Delete(Kind, Key),
    /// A complete (re)list of one kind: replaces everything of that kind at once. The listed
    /// objects come already stored (a watcher stores each as it arrives, so a list of 10,000
    /// Ingresses is never held whole as API objects); objects of other kinds are ignored.
    Relist(Kind, Box<Objects>),
    /// A complete set of every kind (manifest files): replaces the whole store at once.
    Replace(Box<Objects>),
    /// Some objects, already stored, put under their keys, and some keys gone, at once: what a
    /// change of manifest files amounts to (only what the changed files touched).
    Update(Box<Objects>, Vec<(Kind, Key)>),
    /// A complete (re)list of one named object (a watch by name: the `--configmap`, the
    /// ConfigMaps something names): replaces that object only; `None` when it does not exist.
    RelistOne(Kind, Key, Option<Object>),
}

/// Rebuilds a B-tree map or set with full nodes. A B-tree filled in key order, as a list
/// arrives, splits each node as it fills and leaves it about half full for good; one built
/// from a sorted sequence has every node full. At 10,000 Ingresses with their Services and
/// EndpointSlices the stores' maps take about 1.4 MiB less this way. O(n), once per list.
pub(crate) fn compact<C: Default + IntoIterator + FromIterator<C::Item>>(tree: &mut C) {
    *tree = std::mem::take(tree).into_iter().collect();
}

impl Change {
    /// A relist of `kind` made of `objects` (those of another kind are left out).
    pub fn relist(kind: Kind, objects: impl IntoIterator<Item = Object>) -> Self {
        let mut listed = Objects::new();
        listed.extend(objects.into_iter().filter(|o| o.kind() == kind));
        Change::Relist(kind, Box::new(listed))
    }
}

/// The keys a sequence of [`Change`]s touched, per kind, since it was last cleared: what
/// [`translate_changed`](crate::translate_changed) looks at instead of comparing every object
/// of the stores with what its cache saw. A relist (or a replaced store) marks its whole kind.
/// A new journal marks every kind, so the first translation looks at everything.
#[derive(Debug, Clone)]
pub struct Changed {
    /// Per kind (see [`slot`]): `None` for every key of that kind.
    keys: [Option<std::collections::BTreeSet<Key>>; 7],
}

impl Default for Changed {
    fn default() -> Self {
        Self { keys: std::array::from_fn(|_| None) }
    }
}

impl Changed {
    /// Notes what `change` touches (before or after it is applied: only its keys are read).
    pub fn note(&mut self, change: &Change) {
        match change {
            Change::Apply(object) => self.key(object.kind(), object.key()),
            Change::Delete(kind, key) | Change::RelistOne(kind, key, _) => self.key(*kind, key.clone()),
            Change::Relist(kind, _) => self.keys[slot(*kind)] = None,
            Change::Replace(_) => *self = Self::default(),
            Change::Update(set, gone) => {
                for (kind, key) in set.keys().chain(gone.iter().map(|(k, key)| (*k, key))) {
                    self.key(kind, key.clone());
                }
            }
        }
    }

    fn key(&mut self, kind: Kind, key: Key) {
        if let Some(keys) = &mut self.keys[slot(kind)] {
            keys.insert(key);
        }
    }

    /// Forgets everything noted: the next changes are noted from an empty journal.
    pub fn clear(&mut self) {
        self.keys = std::array::from_fn(|_| Some(std::collections::BTreeSet::new()));
    }

    /// The keys of `kind` touched, in order; `None` when every key may have changed.
    pub fn of(&self, kind: Kind) -> Option<&std::collections::BTreeSet<Key>> {
        self.keys[slot(kind)].as_ref()
    }
}

/// The place of a kind in [`Changed`].
fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Ingress => 0,
        Kind::IngressClass => 1,
        Kind::Service => 2,
        Kind::EndpointSlice => 3,
        Kind::Secret => 4,
        Kind::ConfigMap => 5,
        Kind::Namespace => 6,
    }
}

/// One stored object of any kind, borrowed from a store ([`Objects::get`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoredRef<'a> {
    Ingress(&'a Arc<StoredIngress>),
    IngressClass(&'a Arc<IngressClass>),
    Service(&'a Arc<StoredService>),
    EndpointSlice(&'a Arc<StoredSlice>),
    Secret(&'a Arc<Secret>),
    ConfigMap(&'a Arc<ConfigMap>),
    Namespace(&'a Arc<Namespace>),
}

impl StoredRef<'_> {
    /// Whether both are the same stored object (the same `Arc`).
    pub(crate) fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Ingress(a), Self::Ingress(b)) => Arc::ptr_eq(a, b),
            (Self::IngressClass(a), Self::IngressClass(b)) => Arc::ptr_eq(a, b),
            (Self::Service(a), Self::Service(b)) => Arc::ptr_eq(a, b),
            (Self::EndpointSlice(a), Self::EndpointSlice(b)) => Arc::ptr_eq(a, b),
            (Self::Secret(a), Self::Secret(b)) => Arc::ptr_eq(a, b),
            (Self::ConfigMap(a), Self::ConfigMap(b)) => Arc::ptr_eq(a, b),
            (Self::Namespace(a), Self::Namespace(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Everything the controller knows, as plain maps: the input of [`translate`](crate::translate).
///
/// Each object is stored under its own key ([`key_of`] its metadata), as [`Objects::insert`]
/// stores it, and in its own `Arc`, kept while the object is unchanged: the
/// [`TranslationCache`](crate::TranslationCache) tells changed objects by their `Arc`, and takes
/// an `Arc` it saw under a key to be still under that key.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Ingresses (all classes; translation picks ours), as [`StoredIngress`]es.
    pub ingresses: BTreeMap<Key, Arc<StoredIngress>>,
    /// IngressClasses, keyed by `("", name)`.
    pub ingress_classes: BTreeMap<Key, Arc<IngressClass>>,
    /// Services, as [`StoredService`]s.
    pub services: BTreeMap<Key, Arc<StoredService>>,
    /// EndpointSlices, as [`StoredSlice`]s.
    pub endpoint_slices: BTreeMap<Key, Arc<StoredSlice>>,
    /// TLS Secrets.
    pub secrets: BTreeMap<Key, Arc<Secret>>,
    /// ConfigMaps.
    pub config_maps: BTreeMap<Key, Arc<ConfigMap>>,
    /// Namespaces, keyed by `("", name)`: only with `--watch-namespace-selector`.
    pub namespaces: BTreeMap<Key, Arc<Namespace>>,
    /// The namespace names of the keys [`Objects::insert`] made, each once: the keys of a
    /// namespace's objects share one (a cluster has few namespaces and many objects).
    names: std::collections::BTreeSet<Arc<str>>,
}

impl Objects {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one object.
    pub fn insert(&mut self, object: Object) {
        let meta = object.meta();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let namespace = match self.names.get(namespace) {
            Some(shared) => Arc::clone(shared),
            None => {
                let name: Arc<str> = namespace.into();
                self.names.insert(Arc::clone(&name));
                name
            }
        };
        let key = (namespace, meta.name.as_deref().unwrap_or_default().into());
        match object {
            Object::Ingress(o) => drop(self.ingresses.insert(key, Arc::new(o.into()))),
            Object::IngressClass(o) => drop(self.ingress_classes.insert(key, Arc::new(o))),
            Object::Service(o) => drop(self.services.insert(key, Arc::new(o.into()))),
            Object::EndpointSlice(o) => drop(self.endpoint_slices.insert(key, Arc::new(o.into()))),
            Object::Secret(o) => drop(self.secrets.insert(key, Arc::new(o))),
            Object::ConfigMap(o) => drop(self.config_maps.insert(key, Arc::new(o))),
            Object::Namespace(o) => drop(self.namespaces.insert(key, Arc::new(o))),
        }
    }

    /// Removes one object, if present.
    pub fn remove(&mut self, kind: Kind, key: &Key) {
        match kind {
            Kind::Ingress => drop(self.ingresses.remove(key)),
            Kind::IngressClass => drop(self.ingress_classes.remove(key)),
            Kind::Service => drop(self.services.remove(key)),
            Kind::EndpointSlice => drop(self.endpoint_slices.remove(key)),
            Kind::Secret => drop(self.secrets.remove(key)),
            Kind::ConfigMap => drop(self.config_maps.remove(key)),
            Kind::Namespace => drop(self.namespaces.remove(key)),
        }
    }

    /// The object of `kind` under `key`, as stored.
    pub(crate) fn get(&self, kind: Kind, key: &Key) -> Option<StoredRef<'_>> {
        Some(match kind {
            Kind::Ingress => StoredRef::Ingress(self.ingresses.get(key)?),
            Kind::IngressClass => StoredRef::IngressClass(self.ingress_classes.get(key)?),
            Kind::Service => StoredRef::Service(self.services.get(key)?),
            Kind::EndpointSlice => StoredRef::EndpointSlice(self.endpoint_slices.get(key)?),
            Kind::Secret => StoredRef::Secret(self.secrets.get(key)?),
            Kind::ConfigMap => StoredRef::ConfigMap(self.config_maps.get(key)?),
            Kind::Namespace => StoredRef::Namespace(self.namespaces.get(key)?),
        })
    }

    /// Puts `object` (shared, not copied) under `key` in its kind's map.
    pub(crate) fn put(&mut self, key: Key, object: StoredRef<'_>) {
        match object {
            StoredRef::Ingress(o) => drop(self.ingresses.insert(key, Arc::clone(o))),
            StoredRef::IngressClass(o) => drop(self.ingress_classes.insert(key, Arc::clone(o))),
            StoredRef::Service(o) => drop(self.services.insert(key, Arc::clone(o))),
            StoredRef::EndpointSlice(o) => drop(self.endpoint_slices.insert(key, Arc::clone(o))),
            StoredRef::Secret(o) => drop(self.secrets.insert(key, Arc::clone(o))),
            StoredRef::ConfigMap(o) => drop(self.config_maps.insert(key, Arc::clone(o))),
            StoredRef::Namespace(o) => drop(self.namespaces.insert(key, Arc::clone(o))),
        }
    }

    /// Every object's kind and key, kind by kind in [`Kind::ALL`] order.
    pub fn keys(&self) -> impl Iterator<Item = (Kind, &Key)> {
        fn of<T>(kind: Kind, map: &BTreeMap<Key, T>) -> impl Iterator<Item = (Kind, &Key)> {
            map.keys().map(move |key| (kind, key))
        }
        of(Kind::Ingress, &self.ingresses)
            .chain(of(Kind::IngressClass, &self.ingress_classes))
            .chain(of(Kind::Service, &self.services))
            .chain(of(Kind::EndpointSlice, &self.endpoint_slices))
            .chain(of(Kind::Secret, &self.secrets))
            .chain(of(Kind::ConfigMap, &self.config_maps))
            .chain(of(Kind::Namespace, &self.namespaces))
    }

    /// Replaces every object of `kind` with those of `from` (left without any of that kind).
    fn take_kind(&mut self, kind: Kind, from: &mut Objects) {
        fn take<T>(into: &mut BTreeMap<Key, T>, from: &mut BTreeMap<Key, T>) {
            *into = std::mem::take(from);
            compact(into);
        }
        match kind {
            Kind::Ingress => take(&mut self.ingresses, &mut from.ingresses),
            Kind::IngressClass => take(&mut self.ingress_classes, &mut from.ingress_classes),
            Kind::Service => take(&mut self.services, &mut from.services),
            Kind::EndpointSlice => take(&mut self.endpoint_slices, &mut from.endpoint_slices),
            Kind::Secret => take(&mut self.secrets, &mut from.secrets),
            Kind::ConfigMap => take(&mut self.config_maps, &mut from.config_maps),
            Kind::Namespace => take(&mut self.namespaces, &mut from.namespaces),
        }
    }

    /// Applies a change. Relists replace their kind wholesale, so objects deleted while a
    /// watch was down disappear.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Apply(object) => self.insert(object),
            Change::Delete(kind, key) => self.remove(kind, &key),
            // The Secrets watcher lists TLS Secrets only: the others (watched by name) stay.
            Change::Relist(Kind::Secret, mut listed) => {
                self.secrets.retain(|_, s| s.type_.as_deref() != Some(TLS_SECRET));
                self.secrets.append(&mut listed.secrets);
            }
            Change::Relist(kind, mut listed) => self.take_kind(kind, &mut listed),
            Change::Replace(objects) => {
                *self = *objects;
                self.compact();
            }
            Change::Update(mut set, gone) => {
                for (kind, key) in &gone {
                    self.remove(*kind, key);
                }
                self.ingresses.append(&mut set.ingresses);
                self.ingress_classes.append(&mut set.ingress_classes);
                self.services.append(&mut set.services);
                self.endpoint_slices.append(&mut set.endpoint_slices);
                self.secrets.append(&mut set.secrets);
                self.config_maps.append(&mut set.config_maps);
                self.namespaces.append(&mut set.namespaces);
            }
            Change::RelistOne(kind, key, object) => {
                self.remove(kind, &key);
                if let Some(object) = object.filter(|o| o.kind() == kind && o.key() == key) {
                    self.insert(object);
                }
            }
        }
    }

    /// Packs each map's nodes full (see [`compact`]).
    fn compact(&mut self) {
        compact(&mut self.ingresses);
        compact(&mut self.ingress_classes);
        compact(&mut self.services);
        compact(&mut self.endpoint_slices);
        compact(&mut self.secrets);
        compact(&mut self.config_maps);
        compact(&mut self.namespaces);
    }

    /// Adds every object of an iterator.
    pub fn extend(&mut self, objects: impl IntoIterator<Item = Object>) {
        for object in objects {
            self.insert(object);
        }
    }

    /// Adds or replaces every object of `other`, sharing them (no object is copied, so what is
    /// cached by object identity, such as parsed certificates, stays valid).
    pub fn absorb(&mut self, other: &Objects) {
        fn merge<T>(into: &mut BTreeMap<Key, Arc<T>>, from: &BTreeMap<Key, Arc<T>>) {
            into.extend(from.iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
        }
        merge(&mut self.ingresses, &other.ingresses);
        merge(&mut self.ingress_classes, &other.ingress_classes);
        merge(&mut self.services, &other.services);
        merge(&mut self.endpoint_slices, &other.endpoint_slices);
        merge(&mut self.secrets, &other.secrets);
        merge(&mut self.config_maps, &other.config_maps);
        merge(&mut self.namespaces, &other.namespaces);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn service(ns: &str, name: &str) -> Object {
        let mut s = Service::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        Object::Service(s)
    }

    #[test]
    fn relist_replaces_the_kind_only() {
        let mut objects = Objects::new();
        objects.extend([service("a", "one"), service("a", "two")]);
        let mut class = IngressClass::default();
        class.metadata.name = Some("ferry".into());
        objects.insert(Object::IngressClass(class));
        objects.apply(Change::relist(Kind::Service, [service("a", "three")]));
        assert_eq!(objects.services.keys().map(|k| &*k.1).collect::<Vec<_>>(), ["three"]);
        assert_eq!(objects.ingress_classes.len(), 1);
        objects.apply(Change::Delete(Kind::Service, ("a".into(), "three".into())));
        assert!(objects.services.is_empty());
    }

    #[test]
    fn a_secret_relist_replaces_the_tls_secrets_only() {
        let secret = |name: &str, type_: &str| {
            let mut s = Secret::default();
            s.metadata.namespace = Some("a".into());
            s.metadata.name = Some(name.into());
            s.type_ = Some(type_.into());
            Object::Secret(s)
        };
        let mut objects = Objects::new();
        objects.extend([secret("old-tls", TLS_SECRET), secret("auth", "Opaque")]);
        // A Service in the list is not of the kind listed: left out.
        let listed = [secret("new-tls", TLS_SECRET), service("a", "stray")];
        objects.apply(Change::relist(Kind::Secret, listed));
        assert_eq!(objects.secrets.keys().map(|k| &*k.1).collect::<Vec<_>>(), ["auth", "new-tls"]);
        assert!(objects.services.is_empty());
    }

    #[test]
    fn relist_one_replaces_that_object_only() {
        let config_map = |name: &str| {
            let mut c = ConfigMap::default();
            c.metadata.namespace = Some("a".into());
            c.metadata.name = Some(name.into());
            Object::ConfigMap(c)
        };
        let mut objects = Objects::new();
        objects.extend([config_map("main"), config_map("headers")]);
        let key: Key = ("a".into(), "headers".into());
        objects.apply(Change::RelistOne(Kind::ConfigMap, key.clone(), None));
        assert_eq!(objects.config_maps.keys().map(|k| &*k.1).collect::<Vec<_>>(), ["main"]);
        objects.apply(Change::RelistOne(Kind::ConfigMap, key.clone(), Some(config_map("headers"))));
        assert_eq!(objects.config_maps.len(), 2);
        // Another object than the one named is not taken.
        objects.apply(Change::RelistOne(Kind::ConfigMap, key, Some(config_map("other"))));
        assert_eq!(objects.config_maps.keys().map(|k| &*k.1).collect::<Vec<_>>(), ["main"]);
    }
}
