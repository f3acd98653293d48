//! What the cached Ingress translations hand to each translation, kept up to date as
//! translations come and go rather than gathered from every entry: a change costs what it
//! touches. At 10,000 Ingresses, gathering these lists from every entry was most of what a
//! change cost (about 0.6 ms of cache misses, `benches/changes.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ingress_core::BackendRef;

use super::super::ingress::Translated;
use super::super::{IngressInfo, IngressList};
use crate::objects::Key;

/// The outputs of every translated Ingress.
#[derive(Debug, Default)]
pub(super) struct Published {
    /// The core Ingresses, sorted by key, handed whole to each translation's builder (see
    /// [`ingress_core::TableBuilder::ingress_list`]); changed in place once the builder that
    /// shared it is dropped.
    pub(super) cores: Arc<Vec<Arc<ingress_core::Ingress>>>,
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
    /// Adds what the translation of `key` made (valid until `until`).
    pub(super) fn add(&mut self, key: &Key, translated: &Translated, until: i64) {
        if let Some(core) = &translated.core {
            put(Arc::make_mut(&mut self.cores), key, core_key, Some(core));
        }
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

    /// Takes back what [`Self::add`] added for the same arguments.
    pub(super) fn remove(&mut self, key: &Key, translated: &Translated, until: i64) {
        if translated.core.is_some() {
            put(Arc::make_mut(&mut self.cores), key, core_key, None);
        }
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

fn core_key(core: &ingress_core::Ingress) -> (&str, &str) {
    (&core.origin.namespace, &core.origin.name)
}

/// Puts `value` under `key` in `list` (sorted by `key_of`), or takes the entry of `key` out
/// (`None`). Translations come in key order, so a list made from nothing grows at its end.
fn put<T>(list: &mut Vec<Arc<T>>, key: &Key, key_of: fn(&T) -> (&str, &str), value: Option<&Arc<T>>) {
    let wanted = (key.0.as_str(), key.1.as_str());
    let at = match list.last() {
        Some(last) if key_of(last) < wanted => Err(list.len()),
        None => Err(0),
        _ => list.binary_search_by(|item| key_of(item).cmp(&wanted)),
    };
    match (at, value) {
        (Ok(at), Some(value)) => list[at] = Arc::clone(value),
        (Ok(at), None) => drop(list.remove(at)),
        (Err(at), Some(value)) => list.insert(at, Arc::clone(value)),
        (Err(_), None) => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info_key(info: &IngressInfo) -> (&str, &str) {
        (&info.key.0, &info.key.1)
    }

    #[test]
    fn lists_stay_sorted_by_key_whatever_the_order_of_changes() {
        let info =
            |name: &str| Arc::new(IngressInfo { key: ("ns".into(), name.into()), ..IngressInfo::default() });
        let key = |name: &str| ("ns".to_owned(), name.to_owned());
        let mut list = Vec::new();
        for name in ["b", "d", "a", "c", "e"] {
            put(&mut list, &key(name), info_key, Some(&info(name)));
        }
        let names = |list: &[Arc<IngressInfo>]| list.iter().map(|i| i.key.1.clone()).collect::<Vec<_>>();
        assert_eq!(names(&list), ["a", "b", "c", "d", "e"]);
        let new_c = info("c");
        put(&mut list, &key("c"), info_key, Some(&new_c));
        assert!(Arc::ptr_eq(&list[2], &new_c), "replaced in place");
        put(&mut list, &key("a"), info_key, None);
        put(&mut list, &key("e"), info_key, None);
        put(&mut list, &key("x"), info_key, None);
        assert_eq!(names(&list), ["b", "c", "d"]);
    }

    #[test]
    fn expired_translations_come_out_in_time_order() {
        let mut published = Published::default();
        let translated = Translated::default();
        let key = |name: &str| ("ns".to_owned(), name.to_owned());
        published.add(&key("late"), &translated, 200);
        published.add(&key("soon"), &translated, 100);
        published.add(&key("never"), &translated, i64::MAX);
        assert!(published.expired(99).is_empty());
        assert_eq!(published.expired(100), [key("soon")]);
        published.remove(&key("late"), &translated, 200);
        assert!(published.expired(i64::MAX - 1).is_empty(), "removed, and `never` never expires");
    }
}
