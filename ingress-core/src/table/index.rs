//! The host indexes of a route table, and how the rebuilder changes them without copying them
//! for every table.
//!
//! A table holds its indexes behind one `Arc`. The rebuilder keeps the indexes of the last
//! table it made and of the one before, with the changes that lead from the older to the newer:
//! once nothing holds the older table any more (the proxy swapped it out and its requests
//! finished), the next build brings that copy up to date with those changes and its own, and
//! hands it out. A build then costs the hosts it changed, not a copy of every host. While
//! something still holds the older table, the build copies the newer one, as every build did
//! before.

use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::{HostBlock, Slot};
use crate::host::eq_bytes;

/// The hosts of a table: by name (exact and wildcard, aliases included) and by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostIndex {
    /// Exact hosts (and exact aliases), by name.
    pub(crate) exact: HashTable<Slot>,
    /// Wildcard suffixes (and wildcard aliases), stored like `exact`.
    pub(crate) wildcard: HashTable<Slot>,
    /// Every host, by id (`None` where a host was removed: ids are reused, never moved, so
    /// unchanged hosts keep theirs from one table to the next).
    pub(crate) hosts: Vec<Option<Arc<HostBlock>>>,
    /// The blocks' fingerprints, summed (part of [`RouteTable::fingerprint`](crate::RouteTable::fingerprint)).
    pub(crate) fingerprint: u64,
}

/// One change to a [`HostIndex`], kept to replay on the older copy.
#[derive(Debug, Clone)]
enum Op {
    /// Put a host (or alias) entry in the exact (`0`) or wildcard (`1`) index.
    Insert(u8, Slot),
    /// Take out the entry of host `id` under its own name.
    RemoveHost(u8, u64, u32),
    /// Take out the entry of an alias.
    RemoveAlias(u8, u64, Box<str>),
    /// Set the block of host `id` (the list grows as needed).
    SetHost(u32, Option<Arc<HostBlock>>),
}

impl HostIndex {
    fn table(&mut self, kind: u8) -> &mut HashTable<Slot> {
        if kind == 0 { &mut self.exact } else { &mut self.wildcard }
    }

    fn apply(&mut self, op: &Op, hasher: &RandomState) {
        match op {
            Op::Insert(kind, slot) => {
                let hash = |s: &Slot| std::hash::BuildHasher::hash_one(hasher, s.name());
                self.table(*kind).insert_unique(hash(slot), slot.clone(), hash);
            }
            Op::RemoveHost(kind, hash, id) => {
                if let Ok(found) = self.table(*kind).find_entry(*hash, |s| s.alias.is_none() && s.id == *id) {
                    found.remove();
                }
            }
            Op::RemoveAlias(kind, hash, name) => {
                let name = name.as_bytes();
                let alias = |s: &Slot| s.alias.as_deref().is_some_and(|a| eq_bytes(a.as_bytes(), name));
                if let Ok(found) = self.table(*kind).find_entry(*hash, alias) {
                    found.remove();
                }
            }
            Op::SetHost(id, block) => {
                let at = *id as usize;
                if self.hosts.len() <= at {
                    self.hosts.resize(at + 1, None);
                }
                let old = std::mem::replace(&mut self.hosts[at], block.clone());
                let print = |b: &Option<Arc<HostBlock>>| b.as_ref().map_or(0, |b| b.fingerprint);
                self.fingerprint = self.fingerprint.wrapping_sub(print(&old)).wrapping_add(print(block));
            }
        }
    }
}

/// The rebuilder's side of the host indexes: the copy a build changes, and the two the last
/// tables hold (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct IndexWriter {
    /// What the last table holds.
    current: Arc<HostIndex>,
    /// What the table before holds, and the changes from it to `current`.
    older: Option<(Arc<HostIndex>, Vec<Op>)>,
    /// The copy this build changes, once it changed something, with what it changed.
    next: Option<(Arc<HostIndex>, Vec<Op>)>,
    /// Builds that reused the older copy, and builds that copied the current one.
    reused: u64,
    copied: u64,
}

impl IndexWriter {
    /// Puts an entry in the exact (`0`) or wildcard (`1`) index.
    pub(crate) fn insert(&mut self, kind: u8, slot: Slot, hasher: &RandomState) {
        self.change(Op::Insert(kind, slot), hasher);
    }

    /// Takes out the entry of host `id` under its own name (`hash`).
    pub(crate) fn remove_host(&mut self, kind: u8, hash: u64, id: u32, hasher: &RandomState) {
        self.change(Op::RemoveHost(kind, hash, id), hasher);
    }

    /// Takes out the entry of the alias `name` (`hash`).
    pub(crate) fn remove_alias(&mut self, kind: u8, hash: u64, name: Box<str>, hasher: &RandomState) {
        self.change(Op::RemoveAlias(kind, hash, name), hasher);
    }

    /// Sets (or clears) the block of host `id`.
    pub(crate) fn set_host(&mut self, id: u32, block: Option<Arc<HostBlock>>, hasher: &RandomState) {
        self.change(Op::SetHost(id, block), hasher);
    }

    fn change(&mut self, op: Op, hasher: &RandomState) {
        if self.next.is_none() {
            self.next = Some(self.start(hasher));
        }
        let Some((next, ops)) = &mut self.next else { return };
        // `start` made `next` for this writer alone (no table holds it until `finish`), so
        // this never copies.
        Arc::make_mut(next).apply(&op, hasher);
        ops.push(op);
    }

    /// The copy to change: the older one brought up to date when no table holds it any
    /// more, else a copy of the current one.
    fn start(&mut self, hasher: &RandomState) -> (Arc<HostIndex>, Vec<Op>) {
        if let Some((mut older, behind)) = self.older.take()
            && let Some(index) = Arc::get_mut(&mut older)
        {
            for op in &behind {
                index.apply(op, hasher);
            }
            self.reused += 1;
            return (older, Vec::new());
        }
        self.copied += 1;
        (Arc::new(HostIndex::clone(&self.current)), Vec::new())
    }

    /// The indexes for the table this build makes: the changed copy, which becomes the
    /// current one, or the current one as it was when nothing changed.
    pub(crate) fn finish(&mut self) -> Arc<HostIndex> {
        if let Some((next, ops)) = self.next.take() {
            let current = std::mem::replace(&mut self.current, next);
            // Replaying many changes costs more than a copy (a first build puts in every host).
            let size = current.exact.len() + current.wildcard.len() + current.hosts.len();
            self.older = (ops.len() <= size / 4 + 16).then_some((current, ops));
        }
        Arc::clone(&self.current)
    }

    /// How many builds changed the older copy in place, and how many copied the indexes.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.reused, self.copied)
    }
}
