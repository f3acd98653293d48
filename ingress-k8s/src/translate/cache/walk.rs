//! What changed between the versions the cache saw and the stores, by `Arc` identity: at the
//! keys a journal names ([`Changed`](crate::Changed)), or else in one ordered walk of two maps.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::objects::Key;

/// Makes `seen` the same versions as `now`; returns the keys that differed (added, removed, or
/// another version). `hint`: the only keys that can differ, if known.
pub(super) fn update<T>(
    seen: &mut BTreeMap<Key, Arc<T>>,
    now: &BTreeMap<Key, Arc<T>>,
    hint: Option<&BTreeSet<Key>>,
) -> Vec<Key> {
    let changed = changed_keys(seen, now, |v| v, hint);
    for key in &changed {
        match now.get(key) {
            Some(object) => seen.insert(key.clone(), Arc::clone(object)),
            None => seen.remove(key),
        };
    }
    changed
}

/// The keys whose object differs between `seen` (what the cache holds, `version` of each entry)
/// and `now` (the store): present in one only, or stored in another `Arc`, in key order. With a
/// `hint` (the only keys that can differ), only those are looked up; without, one ordered walk
/// of both maps, comparing keys only where the objects differ.
pub(super) fn changed_keys<T, V>(
    seen: &BTreeMap<Key, V>,
    now: &BTreeMap<Key, Arc<T>>,
    version: impl Fn(&V) -> &Arc<T>,
    hint: Option<&BTreeSet<Key>>,
) -> Vec<Key> {
    if let Some(keys) = hint {
        return keys
            .iter()
            .filter(|key| match (seen.get(*key), now.get(*key)) {
                (Some(old), Some(new)) => !Arc::ptr_eq(version(old), new),
                (None, None) => false,
                _ => true,
            })
            .cloned()
            .collect();
    }
    let mut changed = Vec::new();
    let mut a = seen.iter().peekable();
    let mut b = now.iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                // The stores hold each object under its own key (see `Objects`): the same `Arc`
                // at the same place is the same object under the same key, so its key, whose
                // text is a cache miss away, is not compared.
                if Arc::ptr_eq(version(va), vb) {
                    debug_assert_eq!(ka, kb, "an object stored under another key than its own");
                    a.next();
                    b.next();
                    continue;
                }
                ka.cmp(kb)
            }
        };
        match order {
            Ordering::Less => changed.extend(a.next().map(|(k, _)| k.clone())),
            Ordering::Greater => changed.extend(b.next().map(|(k, _)| k.clone())),
            Ordering::Equal => {
                if let (Some((key, old)), Some((_, new))) = (a.next(), b.next())
                    && !Arc::ptr_eq(version(old), new)
                {
                    changed.push(key.clone());
                }
            }
        }
    }
    changed
}

/// When to rebuild a B-tree the cache fills in key order with full nodes
/// ([`compact`](crate::objects::compact)): each time it has doubled (by 1,024 entries at
/// least) since the last time, so after a first translation and after a big list, at O(1)
/// per entry.
#[derive(Debug, Default)]
pub(super) struct Packed(usize);

impl Packed {
    /// Whether a B-tree of `len` entries is due to be rebuilt (it is taken to be, once this
    /// says so).
    pub(super) fn due(&mut self, len: usize) -> bool {
        if len >= 2 * self.0 + 1024 {
            self.0 = len;
            return true;
        }
        if len < self.0 / 2 {
            self.0 = len;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::Packed;

    #[test]
    fn a_tree_is_due_once_it_has_doubled_and_again_after_shrinking_and_refilling() {
        let mut packed = Packed::default();
        assert!(!packed.due(1_023), "small trees are left as they are");
        assert!(packed.due(21_000), "a first fill");
        assert!(!packed.due(21_000) && !packed.due(40_000), "not yet doubled");
        assert!(packed.due(43_024));
        // Emptied (one change at a time, or cleared) and filled again: due once it has doubled
        // from its smallest size.
        assert!(!packed.due(10_000));
        assert!(!packed.due(20_000));
        assert!(packed.due(21_024));
        // Reset, as the cache resets it when it clears a tree to fill it again at once.
        packed = Packed::default();
        assert!(packed.due(21_024));
    }
}
