//! What the cached Ingress translations hand to each translation, kept up to date as
//! translations come and go rather than gathered from every entry: a change costs what it
//! touches. At 10,000 Ingresses, gathering these lists from every entry was most of what a
//! change cost (about 0.6 ms of cache misses, `benches/changes.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ingress_core::{BackendRef, Ingress, ListChanges, ListVersion, TableBuilder};

use super::super::ingress::Translated;
use super::super::{IngressInfo, IngressList};
use crate::objects::Key;

/// The outputs of every translated Ingress.
#[derive(Debug, Default)]
pub(super) struct Published {
    /// The core Ingresses, sorted by key, handed whole to each translation's builder (see
    /// [`ingress_core::TableBuilder::ingress_list`]); changed in place once the builder that
    /// shared it is dropped.
    cores: Arc<Vec<Arc<Ingress>>>,
    /// The version of `cores` handed out last, and what changed in it since, by address: an
    /// Ingress put in (`true`) or taken out. One put in and taken out again before the next
    /// hand-out is forgotten. `None` once the changes outgrew the list.
    version: Option<ListVersion>,
    changes: Option<HashMap<usize, (Arc<Ingress>, bool)>>,
    /// The reports of our Ingresses, as snapshots list them.
    pub(super) infos: IngressList,
    /// The Ingresses whose translation found problems.
    pub(super) with_problems: BTreeSet<Key>,
    /// The backends reached through a cluster IP, with how many Ingresses name each.
    cluster_ip: BTreeMap<BackendRef, usize>,
    /// The Ingresses whose translation holds only until a second (a certificate expires or
    /// becomes valid), by that second.
    expiring: BTreeSet<(i64, Key)>,
}

impl Published {
    /// Takes back what [`Self::replace`] added for the same translation.
    pub(super) fn remove(&mut self, key: &Key, translated: &Translated, until: i64) {
        if translated.core.is_some() {
            let old = put(Arc::make_mut(&mut self.cores), key, None);
            self.changed(old, None);
        }
        self.remove_rest(key, translated, until);
    }

    /// Takes back what the translation `old` of `key` added (a default [`Translated`] for a key
    /// new to the cache) and adds what `new` made, each with the second until which it holds. A
    /// core Ingress replaced by another is replaced in place (one search; taking it out and
    /// putting it back would shift the whole list twice).
    pub(super) fn replace(&mut self, key: &Key, old: (&Translated, i64), new: (&Translated, i64)) {
        match (&old.0.core, &new.0.core) {
            (_, Some(core)) => {
                let was = put(Arc::make_mut(&mut self.cores), key, Some(core));
                self.changed(was, Some(core));
            }
            (Some(_), None) => {
                let was = put(Arc::make_mut(&mut self.cores), key, None);
                self.changed(was, None);
            }
            (None, None) => {}
        }
        self.remove_rest(key, old.0, old.1);
        self.add_rest(key, new.0, new.1);
    }

    /// What [`Self::replace`] adds besides the core Ingress.
    fn add_rest(&mut self, key: &Key, translated: &Translated, until: i64) {
        if let Some(info) = &translated.info {
            self.infos.put(Arc::clone(info));
        }
        if !translated.problems.is_empty() {
            self.with_problems.insert(key.clone());
        }
        for backend in &translated.cluster_ip_backends {
            *self.cluster_ip.entry(backend.clone()).or_default() += 1;
        }
        if until != i64::MAX {
            self.expiring.insert((until, key.clone()));
        }
    }

    /// What [`Self::remove`] and [`Self::replace`] take back besides the core Ingress.
    fn remove_rest(&mut self, key: &Key, translated: &Translated, until: i64) {
        if translated.info.is_some() {
            self.infos.remove(key);
        }
        if !translated.problems.is_empty() {
            self.with_problems.remove(key);
        }
        for backend in &translated.cluster_ip_backends {
            if let Some(count) = self.cluster_ip.get_mut(backend) {
                *count -= 1;
                if *count == 0 {
                    self.cluster_ip.remove(backend);
                }
            }
        }
        if until != i64::MAX {
            self.expiring.remove(&(until, key.clone()));
        }
    }

    /// Notes that `old` left the core list and `new` came in.
    fn changed(&mut self, old: Option<Arc<Ingress>>, new: Option<&Arc<Ingress>>) {
        let Some(changes) = &mut self.changes else { return };
        let address = |ing: &Arc<Ingress>| Arc::as_ptr(ing) as usize;
        if let Some(old) = old {
            match changes.get(&address(&old)) {
                Some((_, true)) => drop(changes.remove(&address(&old))),
                _ => drop(changes.insert(address(&old), (old, false))),
            }
        }
        if let Some(new) = new {
            changes.insert(address(new), (Arc::clone(new), true));
        }
        // Past the list's length, reading the changes costs more than reading the list.
        if changes.len() > self.cores.len() + 64 {
            self.changes = None;
        }
    }

    /// Hands the core list to `builder`, with what changed in it since it was handed out last.
    pub(super) fn hand_out(&mut self, builder: &mut TableBuilder) {
        let version = ListVersion::new();
        let since = self.version.replace(version);
        let journal = self.changes.replace(HashMap::new());
        let since = since.filter(|_| journal.is_some());
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for (_, (ingress, put_in)) in journal.into_iter().flatten() {
            if put_in {
                added.push(ingress);
            } else {
                removed.push(ingress);
            }
        }
        let changes = ListChanges { since, version, removed, added };
        builder.ingress_list_changed(Arc::clone(&self.cores), changes);
    }

    /// Replaces a report (a new status).
    pub(super) fn replace_info(&mut self, info: &Arc<IngressInfo>) {
        self.infos.put(Arc::clone(info));
    }

    /// The Ingresses whose translation no longer holds at `now`, taken out of the expiring set.
    pub(super) fn expired(&mut self, now: i64) -> Vec<Key> {
        let mut keys = Vec::new();
        while self.expiring.first().is_some_and(|(until, _)| *until <= now) {
            keys.extend(self.expiring.pop_first().map(|(_, key)| key));
        }
        keys
    }

    /// The backends reached through a cluster IP, each once, sorted.
    pub(super) fn cluster_ip_backends(&self) -> BTreeSet<BackendRef> {
        self.cluster_ip.keys().cloned().collect()
    }
}

fn key_of(core: &Ingress) -> (&str, &str) {
    (&core.origin.namespace, &core.origin.name)
}

/// Puts `value` under `key` in `list` (sorted by key), or takes the entry of `key` out (`None`).
/// Returns the entry it replaced or took out. Translations come in key order, so a list made
/// from nothing grows at its end.
fn put(list: &mut Vec<Arc<Ingress>>, key: &Key, value: Option<&Arc<Ingress>>) -> Option<Arc<Ingress>> {
    let wanted = (&*key.0, &*key.1);
    let at = match list.last() {
        Some(last) if key_of(last) < wanted => Err(list.len()),
        None => Err(0),
        _ => list.binary_search_by(|item| key_of(item).cmp(&wanted)),
    };
    match (at, value) {
        (Ok(at), Some(value)) => Some(std::mem::replace(&mut list[at], Arc::clone(value))),
        (Ok(at), None) => Some(list.remove(at)),
        (Err(at), Some(value)) => {
            list.insert(at, Arc::clone(value));
            None
        }
        (Err(_), None) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn core(name: &str) -> Arc<Ingress> {
        Arc::new(Ingress::new(ingress_core::Origin::new("ns", name)))
    }

    fn key(name: &str) -> Key {
        ("ns".into(), name.into())
    }

    /// What the cache does for a key it did not have.
    fn add(published: &mut Published, key: &Key, translated: &Translated, until: i64) {
        published.replace(key, (&Translated::default(), i64::MAX), (translated, until));
    }

    #[test]
    fn the_list_stays_sorted_by_key_whatever_the_order_of_changes() {
        let mut list = Vec::new();
        for name in ["b", "d", "a", "c", "e"] {
            assert!(put(&mut list, &key(name), Some(&core(name))).is_none());
        }
        let names =
            |list: &[Arc<Ingress>]| list.iter().map(|i| i.origin.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&list), ["a", "b", "c", "d", "e"]);
        let (old_c, new_c) = (Arc::clone(&list[2]), core("c"));
        let replaced = put(&mut list, &key("c"), Some(&new_c)).unwrap();
        assert!(Arc::ptr_eq(&list[2], &new_c) && Arc::ptr_eq(&replaced, &old_c), "replaced in place");
        assert!(put(&mut list, &key("a"), None).is_some());
        assert!(put(&mut list, &key("e"), None).is_some());
        assert!(put(&mut list, &key("x"), None).is_none());
        assert_eq!(names(&list), ["b", "c", "d"]);
    }

    /// Each hand-out says what changed since the last one: an Ingress replaced is taken out and
    /// put in, one put in and replaced before the hand-out is only put in once.
    #[test]
    fn hand_outs_carry_the_changes_since_the_last() {
        let translated = |name: &str| Translated { core: Some(core(name)), ..Translated::default() };
        let mut published = Published::default();
        let (a, b) = (translated("a"), translated("b"));
        add(&mut published, &key("a"), &a, i64::MAX);
        add(&mut published, &key("b"), &b, i64::MAX);
        let mut builder = TableBuilder::new();
        published.hand_out(&mut builder);
        let first = builder.clone();
        drop(builder);
        let (a2, c, c2) = (translated("a"), translated("c"), translated("c"));
        published.replace(&key("a"), (&a, i64::MAX), (&a2, i64::MAX));
        add(&mut published, &key("c"), &c, i64::MAX);
        published.remove(&key("c"), &c, i64::MAX);
        add(&mut published, &key("c"), &c2, i64::MAX);
        published.remove(&key("b"), &b, i64::MAX);
        let mut builder = TableBuilder::new();
        published.hand_out(&mut builder);
        let mut store = ingress_core::EndpointStore::new();
        let mut rebuilder = ingress_core::Rebuilder::new();
        drop(rebuilder.build(&first, &mut store));
        assert_eq!(rebuilder.last_read(), 2, "the first hand-out has nothing to start from");
        drop(rebuilder.build(&builder, &mut store));
        assert_eq!(rebuilder.last_read(), 4, "a out and in, b out, c in");
        let names: Vec<String> = published.cores.iter().map(|i| i.origin.name.to_string()).collect();
        assert_eq!(names, ["a", "c"]);
    }

    /// A replacement is a removal and an addition: to and from a translation with no core
    /// Ingress (not ours), and with its expiry.
    #[test]
    fn a_replacement_takes_out_what_the_old_translation_added() {
        let with_core = |name: &str| Translated { core: Some(core(name)), ..Translated::default() };
        let mut published = Published::default();
        let (a, none) = (with_core("a"), Translated::default());
        add(&mut published, &key("b"), &with_core("b"), i64::MAX);
        published.replace(&key("a"), (&none, i64::MAX), (&a, 100));
        let names = |p: &Published| p.cores.iter().map(|i| i.origin.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&published), ["a", "b"]);
        let a2 = with_core("a");
        published.replace(&key("a"), (&a, 100), (&a2, 200));
        assert!(Arc::ptr_eq(&published.cores[0], a2.core.as_ref().unwrap()), "replaced in place");
        assert!(published.expired(150).is_empty(), "the old expiry went with it");
        published.replace(&key("a"), (&a2, 200), (&none, i64::MAX));
        assert_eq!(names(&published), ["b"]);
        assert!(published.expired(i64::MAX - 1).is_empty());
    }

    #[test]
    fn expired_translations_come_out_in_time_order() {
        let mut published = Published::default();
        let translated = Translated::default();
        add(&mut published, &key("late"), &translated, 200);
        add(&mut published, &key("soon"), &translated, 100);
        add(&mut published, &key("never"), &translated, i64::MAX);
        assert!(published.expired(99).is_empty());
        assert_eq!(published.expired(100), [key("soon")]);
        published.remove(&key("late"), &translated, 200);
        assert!(published.expired(i64::MAX - 1).is_empty(), "removed, and `never` never expires");
    }
}
