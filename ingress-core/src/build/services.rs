//! The Services a build resolves backends against: (namespace, name) → ports, in shards of a
//! namespace (by a hash of the name) that successive builders share. Declaring one Service
//! copies the map of shards (a pointer per shard) and its own shard, about 1/32 of a large
//! namespace, and two builds compare only the shards that are not the same `Arc`: a Service
//! change in a namespace of 10,000 costs hundreds of entries, not 10,000.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::FixedState;
use hashbrown::{Equivalent, HashMap};

use crate::ServicePort;

/// Shards per namespace (a namespace of few Services has few: only non-empty ones exist).
const SHARDS: u8 = 32;

/// One shard: name → ports.
type Shard = HashMap<String, Vec<ServicePort>, foldhash::fast::RandomState>;

/// Declared Services, shared between builders; cloning one is cloning an `Arc`.
#[derive(Debug, Clone, Default)]
pub(super) struct Services {
    shards: Arc<HashMap<(String, u8), Arc<Shard>, foldhash::fast::RandomState>>,
}

/// A shard key borrowed from a backend, hashed as the `(String, u8)` it stands for.
#[derive(Hash)]
struct ShardRef<'a>(&'a str, u8);

impl Equivalent<(String, u8)> for ShardRef<'_> {
    fn equivalent(&self, key: &(String, u8)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

fn shard_of(name: &str) -> u8 {
    // A fixed seed: the shard of a name is the same in every builder.
    (FixedState::default().hash_one(name) % u64::from(SHARDS)) as u8
}

impl Services {
    /// Declares (or declares again) a Service.
    pub(super) fn insert(&mut self, namespace: String, name: String, ports: Vec<ServicePort>) {
        let key = (namespace, shard_of(&name));
        let shard = Arc::make_mut(&mut self.shards).entry(key).or_default();
        Arc::make_mut(shard).insert(name, ports);
    }

    /// Takes a declared Service out (nothing if it was not declared).
    pub(super) fn remove(&mut self, namespace: &str, name: &str) {
        let key = ShardRef(namespace, shard_of(name));
        let Some(shard) = self.shards.get(&key) else { return };
        if !shard.contains_key(name) {
            return;
        }
        let shards = Arc::make_mut(&mut self.shards);
        let emptied = shards.get_mut(&key).is_some_and(|shard| {
            Arc::make_mut(shard).remove(name);
            shard.is_empty()
        });
        if emptied {
            shards.remove(&key);
        }
    }

    /// The ports of a declared Service.
    pub(super) fn get(&self, namespace: &str, name: &str) -> Option<&[ServicePort]> {
        let shard = self.shards.get(&ShardRef(namespace, shard_of(name)))?;
        shard.get(name).map(Vec::as_slice)
    }

    /// The Services declared in only one of `old` and `new`, or with other ports (shards both
    /// share are not read).
    pub(super) fn changed(old: &Services, new: &Services) -> Vec<(String, String)> {
        let mut changed = Vec::new();
        if Arc::ptr_eq(&old.shards, &new.shards) {
            return changed;
        }
        for ((ns, shard), names) in new.shards.iter() {
            let before = old.shards.get(&ShardRef(ns, *shard));
            if before.is_some_and(|b| Arc::ptr_eq(b, names)) {
                continue;
            }
            for (name, ports) in names.iter() {
                if before.and_then(|b| b.get(name)) != Some(ports) {
                    changed.push((ns.clone(), name.clone()));
                }
            }
        }
        for ((ns, shard), names) in old.shards.iter() {
            let after = new.shards.get(&ShardRef(ns, *shard));
            if after.is_some_and(|a| Arc::ptr_eq(a, names)) {
                continue;
            }
            for name in names.keys() {
                if after.is_none_or(|a| !a.contains_key(name)) {
                    changed.push((ns.clone(), name.clone()));
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
    fn a_change_is_found_in_the_shards_it_touched_only() {
        let mut old = Services::default();
        for i in 0..1_000 {
            old.insert("big".into(), format!("s{i}"), port(80));
        }
        old.insert("small".into(), "one".into(), port(80));
        let mut new = old.clone();
        assert!(Services::changed(&old, &new).is_empty());
        new.insert("big".into(), "s7".into(), port(81));
        new.insert("big".into(), "added".into(), port(80));
        new.insert("small".into(), "one".into(), port(80));
        let mut changed = Services::changed(&old, &new);
        changed.sort();
        assert_eq!(changed, [("big".to_owned(), "added".to_owned()), ("big".to_owned(), "s7".to_owned())]);
        assert_eq!(new.get("big", "s7").unwrap()[0].port, 81);
        assert_eq!(old.get("big", "s7").unwrap()[0].port, 80, "the old builder's shard is its own");
        assert!(new.get("big", "nope").is_none() && new.get("nope", "s7").is_none());
        // Shards the change did not touch are the same `Arc`s.
        let shared = new.shards.iter().filter(|(k, v)| old.shards.get(*k).is_some_and(|o| Arc::ptr_eq(o, v)));
        assert!(shared.count() >= old.shards.len() - 3);
        let mut gone = Services::changed(&new, &old);
        gone.sort();
        assert_eq!(gone, changed, "and back");
    }

    #[test]
    fn a_removed_service_is_a_change_and_its_emptied_shard_goes() {
        let mut old = Services::default();
        old.insert("big".into(), "a".into(), port(80));
        old.insert("big".into(), "b".into(), port(80));
        old.insert("small".into(), "one".into(), port(80));
        let mut new = old.clone();
        new.remove("big", "a");
        new.remove("big", "nope");
        new.remove("nope", "a");
        assert!(new.get("big", "a").is_none());
        assert!(old.get("big", "a").is_some(), "the old builder's shard is its own");
        assert_eq!(Services::changed(&old, &new), [("big".to_owned(), "a".to_owned())]);
        new.remove("small", "one");
        assert!(!new.shards.keys().any(|(ns, _)| ns == "small"), "no empty shard is kept");
        let mut changed = Services::changed(&old, &new);
        changed.sort();
        assert_eq!(changed, [("big".to_owned(), "a".to_owned()), ("small".to_owned(), "one".to_owned())]);
    }
}
