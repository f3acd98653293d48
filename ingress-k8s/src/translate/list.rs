//! [`SortedList`]: items sorted by key, shared between successive versions in chunks, so a new
//! version copies only the chunks that changed and a comparison of two versions skips the
//! chunks they share. The reports of our Ingresses ([`IngressList`]) and the endpoint sets of
//! the Services ([`EndpointList`](super::EndpointList)) are kept this way, as every snapshot
//! lists them.

use std::cmp::Ordering;
use std::sync::Arc;

use super::IngressInfo;
use crate::objects::Key;

/// Items per chunk, about: a change copies one chunk, and a new list one pointer per chunk. A
/// chunk is split in two when it reaches twice this; one emptied is dropped.
const CHUNK: usize = 64;

/// What a [`SortedList`] holds: something with a key (unique in a list).
pub trait Keyed {
    /// What an item is found by.
    type Key: ?Sized;

    /// How the item's key compares with `key`.
    fn cmp_key(&self, key: &Self::Key) -> Ordering;

    /// How the item's key compares with `other`'s.
    fn cmp_item(&self, other: &Self) -> Ordering;
}

impl Keyed for IngressInfo {
    type Key = Key;

    fn cmp_key(&self, key: &Key) -> Ordering {
        self.key.cmp(key)
    }

    fn cmp_item(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Items sorted by key, each in an `Arc`. Cloning one costs a pointer per 64 items, and
/// changing the clone copies only the chunk the change is in, so successive versions share
/// what did not change (a flat list cost a pointer copy per item: at 50,000 Ingresses, 2 ms per
/// change, `benches/changes.rs`), and [`SortedList::changes`] skips the shared chunks.
#[derive(Debug)]
pub struct SortedList<T> {
    chunks: Arc<Vec<Arc<Vec<Arc<T>>>>>,
    len: usize,
}

/// The reports of our Ingresses, sorted by key.
pub type IngressList = SortedList<IngressInfo>;

impl<T> Clone for SortedList<T> {
    fn clone(&self) -> Self {
        Self { chunks: Arc::clone(&self.chunks), len: self.len }
    }
}

impl<T> Default for SortedList<T> {
    fn default() -> Self {
        Self { chunks: Arc::default(), len: 0 }
    }
}

impl<T: PartialEq> PartialEq for SortedList<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T> SortedList<T> {
    /// How many items it lists.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every item, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<T>> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Whether two lists are the same version (one cloned from the other and neither changed
    /// since).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chunks, &other.chunks)
    }
}

impl<T: Keyed> SortedList<T> {
    /// The item of `key`.
    pub fn get(&self, key: &T::Key) -> Option<&Arc<T>> {
        let (chunk, at) = find(&self.chunks, |item| item.cmp_key(key)).ok()?;
        self.chunks.get(chunk)?.get(at)
    }

    /// Puts `item` under its key, in place of the item there, if any.
    pub fn put(&mut self, item: Arc<T>) {
        let chunks = Arc::make_mut(&mut self.chunks);
        match find(chunks, |other| other.cmp_item(&item)) {
            Ok((chunk, at)) => Arc::make_mut(&mut chunks[chunk])[at] = item,
            Err((chunk, at)) => {
                self.len += 1;
                let Some(list) = chunks.get_mut(chunk) else {
                    chunks.push(Arc::new(vec![item]));
                    return;
                };
                let list = Arc::make_mut(list);
                list.insert(at, item);
                if list.len() >= 2 * CHUNK {
                    let rest = list.split_off(CHUNK);
                    chunks.insert(chunk + 1, Arc::new(rest));
                }
            }
        }
    }

    /// Takes the item of `key` out, if listed.
    pub fn remove(&mut self, key: &T::Key) {
        let Ok((chunk, at)) = find(&self.chunks, |item| item.cmp_key(key)) else { return };
        self.len -= 1;
        let chunks = Arc::make_mut(&mut self.chunks);
        let list = Arc::make_mut(&mut chunks[chunk]);
        list.remove(at);
        if list.is_empty() {
            chunks.remove(chunk);
        }
    }

    /// What changed from `last` to `now`: the items of `last` not in `now`, and those of `now`
    /// not in `last` (an item in a new version is in both). An unchanged item is the same
    /// `Arc`, so this is a walk down both lists that skips shared chunks and compares
    /// addresses, and keys only where they differ: it costs what changed.
    pub fn changes<'l, 'n>(last: &'l Self, now: &'n Self) -> (Vec<&'l T>, Vec<&'n T>) {
        let (mut gone, mut fresh) = (Vec::new(), Vec::new());
        let (mut l, mut n) = (Cursor::new(&last.chunks), Cursor::new(&now.chunks));
        loop {
            // Chunks both lists share, from the start of both.
            while l.at_chunk_start() && n.at_chunk_start() && l.same_chunk(&n) {
                l.skip_chunk();
                n.skip_chunk();
            }
            let order = match (l.peek(), n.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) if Arc::ptr_eq(a, b) => {
                    l.next();
                    n.next();
                    continue;
                }
                (Some(a), Some(b)) => a.cmp_item(b),
            };
            if order.is_le() {
                gone.extend(l.next());
            }
            if order.is_ge() {
                fresh.extend(n.next());
            }
        }
        (gone, fresh)
    }
}

impl<T: Keyed> FromIterator<Arc<T>> for SortedList<T> {
    /// The list of `items`, in any order.
    fn from_iter<I: IntoIterator<Item = Arc<T>>>(items: I) -> Self {
        let mut list = Self::default();
        for item in items {
            list.put(item);
        }
        list
    }
}

/// Where the item `order` finds is (chunk, index), or where it would go; `order` tells how an
/// item compares with the one wanted.
fn find<T>(
    chunks: &[Arc<Vec<Arc<T>>>],
    order: impl Fn(&T) -> Ordering,
) -> Result<(usize, usize), (usize, usize)> {
    // The first chunk whose last key is not before `key`; past the end, the last chunk's end.
    let chunk = chunks.partition_point(|c| c.last().is_some_and(|last| order(last).is_lt()));
    let Some(list) = chunks.get(chunk) else {
        return Err(match chunks.last() {
            Some(last) if last.len() < CHUNK => (chunks.len() - 1, last.len()),
            _ => (chunks.len(), 0),
        });
    };
    match list.binary_search_by(|item| order(item)) {
        Ok(at) => Ok((chunk, at)),
        Err(at) => Err((chunk, at)),
    }
}

/// A position in the chunks of a [`SortedList`].
struct Cursor<'a, T> {
    chunks: &'a [Arc<Vec<Arc<T>>>],
    chunk: usize,
    at: usize,
}

impl<'a, T> Cursor<'a, T> {
    fn new(chunks: &'a [Arc<Vec<Arc<T>>>]) -> Self {
        Self { chunks, chunk: 0, at: 0 }
    }

    fn at_chunk_start(&self) -> bool {
        self.at == 0
    }

    fn same_chunk(&self, other: &Self) -> bool {
        match (self.chunks.get(self.chunk), other.chunks.get(other.chunk)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn skip_chunk(&mut self) {
        self.chunk += 1;
        self.at = 0;
    }

    fn peek(&self) -> Option<&'a Arc<T>> {
        self.chunks.get(self.chunk)?.get(self.at)
    }

    fn next(&mut self) -> Option<&'a T> {
        let item = self.peek()?;
        self.at += 1;
        if self.chunks.get(self.chunk).is_some_and(|c| self.at >= c.len()) {
            self.skip_chunk();
        }
        Some(item)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(name: &str) -> Arc<IngressInfo> {
        Arc::new(IngressInfo { key: ("ns".into(), name.into()), ..IngressInfo::default() })
    }

    fn names(list: &IngressList) -> Vec<String> {
        list.iter().map(|i| i.key.1.to_string()).collect()
    }

    #[test]
    fn stays_sorted_and_shares_what_did_not_change() {
        // Keys in an order that inserts at the front, the back and the middle of chunks.
        let mut names_in: Vec<String> = (0..500).map(|i| format!("{:04}", (i * 7919) % 1000)).collect();
        let mut list = IngressList::default();
        for name in &names_in {
            list.put(info(name));
        }
        names_in.sort();
        assert_eq!(names(&list), names_in);
        assert_eq!(list.len(), 500);
        assert!(list.chunks.iter().all(|c| !c.is_empty() && c.len() < 2 * CHUNK));
        // A clone changed in one place shares every other chunk.
        let before = list.clone();
        let key: Key = ("ns".into(), names_in[250].as_str().into());
        let new = info(&names_in[250]);
        list.put(Arc::clone(&new));
        assert!(Arc::ptr_eq(list.get(&key).unwrap(), &new));
        let shared = before.chunks.iter().zip(list.chunks.iter()).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert_eq!(shared, before.chunks.len() - 1);
        assert!(!Arc::ptr_eq(before.get(&key).unwrap(), &new), "the clone is unchanged");
        // Removing everything, in another order, leaves nothing.
        for name in names_in.iter().rev().step_by(2).chain(names_in.iter().step_by(2)) {
            list.remove(&("ns".into(), name.as_str().into()));
        }
        list.remove(&key);
        assert!(list.is_empty() && list.chunks.is_empty(), "{:?}", names(&list));
        assert_eq!(IngressList::from_iter(before.iter().cloned()), before);
    }
}
