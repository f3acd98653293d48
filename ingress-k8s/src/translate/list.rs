//! [`IngressList`]: the reports of our Ingresses, sorted by key, as every snapshot lists them,
//! shared between snapshots in chunks so a new snapshot copies only the chunks that changed.

use std::sync::Arc;

use super::IngressInfo;
use crate::objects::Key;

/// Reports per chunk, about: a change copies one chunk, and a new list one pointer per chunk. A
/// chunk is split in two when it reaches twice this; one emptied is dropped.
const CHUNK: usize = 64;

/// The reports of our Ingresses, sorted by key. Cloning one costs a pointer per 64 Ingresses,
/// and changing the clone copies only the chunk the change is in, so successive snapshots share
/// what did not change (a flat list cost a pointer copy per Ingress: at 50,000 Ingresses, 2 ms
/// per change, `benches/changes.rs`), and [`IngressInfo::changes`] skips the shared chunks.
#[derive(Debug, Clone, Default)]
pub struct IngressList {
    chunks: Arc<Vec<Arc<Vec<Arc<IngressInfo>>>>>,
    len: usize,
}

impl PartialEq for IngressList {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl IngressList {
    /// How many Ingresses it lists.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every report, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<IngressInfo>> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The report of `key`.
    pub fn get(&self, key: &Key) -> Option<&Arc<IngressInfo>> {
        let (chunk, at) = self.find(key).ok()?;
        self.chunks.get(chunk)?.get(at)
    }

    /// Puts `info` under its key, in place of the report there, if any.
    pub fn put(&mut self, info: Arc<IngressInfo>) {
        let chunks = Arc::make_mut(&mut self.chunks);
        match find(chunks, &info.key) {
            Ok((chunk, at)) => Arc::make_mut(&mut chunks[chunk])[at] = info,
            Err((chunk, at)) => {
                self.len += 1;
                let Some(list) = chunks.get_mut(chunk) else {
                    chunks.push(Arc::new(vec![info]));
                    return;
                };
                let list = Arc::make_mut(list);
                list.insert(at, info);
                if list.len() >= 2 * CHUNK {
                    let rest = list.split_off(CHUNK);
                    chunks.insert(chunk + 1, Arc::new(rest));
                }
            }
        }
    }

    /// Takes the report of `key` out, if listed.
    pub fn remove(&mut self, key: &Key) {
        let Ok((chunk, at)) = self.find(key) else { return };
        self.len -= 1;
        let chunks = Arc::make_mut(&mut self.chunks);
        let list = Arc::make_mut(&mut chunks[chunk]);
        list.remove(at);
        if list.is_empty() {
            chunks.remove(chunk);
        }
    }

    fn find(&self, key: &Key) -> Result<(usize, usize), (usize, usize)> {
        find(&self.chunks, key)
    }

    /// The chunks, for comparing lists chunk by chunk.
    pub(crate) fn chunks(&self) -> &[Arc<Vec<Arc<IngressInfo>>>] {
        &self.chunks
    }
}

impl FromIterator<Arc<IngressInfo>> for IngressList {
    /// The list of `infos`, which must come sorted by key.
    fn from_iter<I: IntoIterator<Item = Arc<IngressInfo>>>(infos: I) -> Self {
        let mut list = Self::default();
        for info in infos {
            list.put(info);
        }
        list
    }
}

/// Where `key` is (chunk, index), or where it would go.
fn find(chunks: &[Arc<Vec<Arc<IngressInfo>>>], key: &Key) -> Result<(usize, usize), (usize, usize)> {
    // The first chunk whose last key is not before `key`; past the end, the last chunk's end.
    let chunk = chunks.partition_point(|c| c.last().is_some_and(|last| last.key < *key));
    let Some(list) = chunks.get(chunk) else {
        return Err(match chunks.last() {
            Some(last) if last.len() < CHUNK => (chunks.len() - 1, last.len()),
            _ => (chunks.len(), 0),
        });
    };
    match list.binary_search_by(|info| info.key.cmp(key)) {
        Ok(at) => Ok((chunk, at)),
        Err(at) => Err((chunk, at)),
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
        list.iter().map(|i| i.key.1.clone()).collect()
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
        assert!(list.chunks().iter().all(|c| !c.is_empty() && c.len() < 2 * CHUNK));
        // A clone changed in one place shares every other chunk.
        let before = list.clone();
        let key: Key = ("ns".into(), names_in[250].clone());
        let new = info(&names_in[250]);
        list.put(Arc::clone(&new));
        assert!(Arc::ptr_eq(list.get(&key).unwrap(), &new));
        let shared = before.chunks().iter().zip(list.chunks()).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert_eq!(shared, before.chunks().len() - 1);
        assert!(!Arc::ptr_eq(before.get(&key).unwrap(), &new), "the clone is unchanged");
        // Removing everything, in another order, leaves nothing.
        for name in names_in.iter().rev().step_by(2).chain(names_in.iter().step_by(2)) {
            list.remove(&("ns".into(), name.clone()));
        }
        list.remove(&key);
        assert!(list.is_empty() && list.chunks().is_empty(), "{:?}", names(&list));
        assert_eq!(IngressList::from_iter(before.iter().cloned()), before);
    }
}
