//! The Services a build resolves backends against: (namespace, name) → ports, per namespace in
//! shards (by a hash of the name) that successive builders share. Declaring one Service copies
//! the map of namespaces (a pointer per namespace, no name), that namespace's shard array (32
//! pointers) and its own shard, about 1/32 of a large namespace; two builds compare only the
//! namespaces, then the shards, that are not the same `Arc`. A Service change in a cluster of
//! 100,000 Services costs hundreds of entries, not 100,000, and no string comparison per shard.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::ServicePort;

/// Shards per namespace (a namespace of few Services has few: only non-empty ones exist).
const SHARDS: usize = 32;

/// One shard: name (shared with the declared [`Service`](crate::Service)'s) → ports.
type Shard = HashMap<Arc<str>, Vec<ServicePort>, foldhash::fast::RandomState>;

/// The shards of one namespace, by [`shard_of`] the name (`None`: empty).
type Namespace = [Option<Arc<Shard>>; SHARDS];

/// Declared Services, shared between builders; cloning one is cloning an `Arc`.
#[derive(Debug, Clone, Default)]
pub(super) struct Services {
    namespaces: Arc<HashMap<Arc<str>, Arc<Namespace>, foldhash::fast::RandomState>>,
}

fn shard_of(name: &str) -> usize {
    // A fixed seed: the shard of a name is the same in every builder.
    (FixedState::default().hash_one(name) % SHARDS as u64) as usize
}

impl Services {
    /// Declares (or declares again) a Service. Its ports are kept in no more room than they
    /// take (a list collected from a filter has room for four).
    pub(super) fn insert(&mut self, namespace: &Arc<str>, name: Arc<str>, mut ports: Vec<ServicePort>) {
        ports.shrink_to_fit();
        let namespaces = Arc::make_mut(&mut self.namespaces);
        if !namespaces.contains_key(namespace) {
            namespaces.insert(Arc::clone(namespace), Arc::default());
        }
        let Some(shards) = namespaces.get_mut(namespace) else { return };
        let shard = Arc::make_mut(shards)[shard_of(&name)].get_or_insert_default();
        Arc::make_mut(shard).insert(name, ports);
    }

    /// Takes a declared Service out (nothing if it was not declared).
    pub(super) fn remove(&mut self, namespace: &str, name: &str) {
        let at = shard_of(name);
        if self.get(namespace, name).is_none() {
            return;
        }
        let namespaces = Arc::make_mut(&mut self.namespaces);
        let Some(shards) = namespaces.get_mut(namespace) else { return };
        let shards_now = Arc::make_mut(shards);
        if let Some(shard) = &mut shards_now[at] {
            Arc::make_mut(shard).remove(name);
            if shard.is_empty() {
                shards_now[at] = None;
            }
        }
        if shards_now.iter().all(Option::is_none) {
            namespaces.remove(namespace);
        }
    }

    /// The ports of a declared Service.
    pub(super) fn get(&self, namespace: &str, name: &str) -> Option<&[ServicePort]> {
        let shard = self.namespaces.get(namespace)?[shard_of(name)].as_ref()?;
        shard.get(name).map(Vec::as_slice)
    }

    /// The Services declared in only one of `old` and `new`, or with other ports (namespaces
    /// and shards both share are not read).
    pub(super) fn changed(old: &Services, new: &Services) -> Vec<(String, String)> {
        let mut changed = Vec::new();
        if Arc::ptr_eq(&old.namespaces, &new.namespaces) {
            return changed;
        }
        let none: Namespace = Default::default();
        for (ns, after) in new.namespaces.iter() {
            let before = old.namespaces.get(ns);
            if before.is_some_and(|b| Arc::ptr_eq(b, after)) {
                continue;
            }
            let before = before.map_or(&none, |b| &**b);
            for (b, a) in before.iter().zip(after.iter()) {
                let Some(a) = a else { continue };
                if b.as_ref().is_some_and(|b| Arc::ptr_eq(b, a)) {
                    continue;
                }
                for (name, ports) in a.iter() {
                    if b.as_ref().and_then(|b| b.get(name)) != Some(ports) {
                        changed.push((ns.to_string(), name.to_string()));
                    }
                }
            }
        }
        for (ns, before) in old.namespaces.iter() {
            let after = new.namespaces.get(ns);
            if after.is_some_and(|a| Arc::ptr_eq(a, before)) {
                continue;
            }
            let after = after.map_or(&none, |a| &**a);
            for (b, a) in before.iter().zip(after.iter()) {
                let Some(b) = b else { continue };
                if a.as_ref().is_some_and(|a| Arc::ptr_eq(a, b)) {
                    continue;
                }
                for name in b.keys() {
                    if a.as_ref().is_none_or(|a| !a.contains_key(name)) {
                        changed.push((ns.to_string(), name.to_string()));
                    }
                }
            }
        }
        changed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn port(n: u16) -> Vec<ServicePort> {
        vec![ServicePort { name: None, port: n }]
    }

    #[test]
    fn a_service_keeps_its_names_shared_and_its_ports_in_no_more_room_than_they_take() {
        let (ns, name): (Arc<str>, Arc<str>) = ("team".into(), "web".into());
        let mut ports = Vec::with_capacity(4);
        ports.push(ServicePort { name: None, port: 80 });
        let mut services = Services::default();
        services.insert(&ns, Arc::clone(&name), ports);
        assert_eq!(services.get("team", "web"), Some(&port(80)[..]));
        let shard = services.namespaces.get("team").and_then(|n| n[shard_of("web")].as_ref()).unwrap();
        let (kept, ports) = shard.get_key_value("web").unwrap();
        assert!(Arc::ptr_eq(kept, &name), "the name is the caller's, not a copy");
        assert_eq!(ports.capacity(), 1);
        assert!(services.namespaces.keys().any(|k| Arc::ptr_eq(k, &ns)));
    }

    #[test]
    fn a_change_is_found_in_the_shards_it_touched_only() {
        let mut old = Services::default();
        for i in 0..1_000 {
            old.insert(&"big".into(), format!("s{i}").into(), port(80));
        }
        old.insert(&"small".into(), "one".into(), port(80));
        let mut new = old.clone();
        assert!(Services::changed(&old, &new).is_empty());
        new.insert(&"big".into(), "s7".into(), port(81));
        new.insert(&"big".into(), "added".into(), port(80));
        new.insert(&"small".into(), "one".into(), port(80));
        let mut changed = Services::changed(&old, &new);
        changed.sort();
        assert_eq!(changed, [("big".to_owned(), "added".to_owned()), ("big".to_owned(), "s7".to_owned())]);
        assert_eq!(new.get("big", "s7").unwrap()[0].port, 81);
        assert_eq!(old.get("big", "s7").unwrap()[0].port, 80, "the old builder's shard is its own");
        assert!(new.get("big", "nope").is_none() && new.get("nope", "s7").is_none());
        // Namespaces and shards the change did not touch are the same `Arc`s.
        let (old_big, new_big) = (&old.namespaces["big"], &new.namespaces["big"]);
        let shared = old_big.iter().zip(new_big.iter()).filter(|(o, n)| match (o, n) {
            (Some(o), Some(n)) => Arc::ptr_eq(o, n),
            _ => false,
        });
        assert!(shared.count() >= SHARDS - 2);
        let mut gone = Services::changed(&new, &old);
        gone.sort();
        assert_eq!(gone, changed, "and back");
    }

    #[test]
    fn a_removed_service_is_a_change_and_its_emptied_shard_goes() {
        let mut old = Services::default();
        old.insert(&"big".into(), "a".into(), port(80));
        old.insert(&"big".into(), "b".into(), port(80));
        old.insert(&"small".into(), "one".into(), port(80));
        let mut new = old.clone();
        new.remove("big", "a");
        new.remove("big", "nope");
        new.remove("nope", "a");
        assert!(new.get("big", "a").is_none());
        assert!(old.get("big", "a").is_some(), "the old builder's shard is its own");
        assert_eq!(Services::changed(&old, &new), [("big".to_owned(), "a".to_owned())]);
        new.remove("small", "one");
        assert!(!new.namespaces.contains_key("small"), "no empty namespace is kept");
        let mut changed = Services::changed(&old, &new);
        changed.sort();
        assert_eq!(changed, [("big".to_owned(), "a".to_owned()), ("small".to_owned(), "one".to_owned())]);
        // A namespace untouched by a change is the same `Arc`; one emptied goes.
        let kept = new.clone();
        new.remove("big", "b");
        assert!(!new.namespaces.contains_key("big"), "no empty namespace is kept");
        assert_eq!(Services::changed(&kept, &new), [("big".to_owned(), "b".to_owned())]);
        new.insert(&"other".into(), "x".into(), port(80));
        let mut twice = new.clone();
        twice.insert(&"third".into(), "y".into(), port(80));
        assert!(
            Arc::ptr_eq(&new.namespaces["other"], &twice.namespaces["other"]),
            "another namespace's change shares it"
        );
        assert_eq!(Services::changed(&new, &twice), [("third".to_owned(), "y".to_owned())]);
    }
}
