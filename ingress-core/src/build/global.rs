//! The last part of every build: what is settled across hosts (the catch-all Ingress, the TLS
//! map, aliases, `www.` redirects, stream services), and the table itself. Each step reads
//! only the few hosts and Ingresses that take part in it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::ingress::Entry;
use super::rebuild::{ByAge, Key, Map, Set};
use super::{Built, TableBuilder, block, index, resolve};
use crate::table::{HostBlock, HostRedirect, IndexWriter, Member, Slot, Target};
use crate::{
    Backend, EndpointStore, Field, HostPattern, Ingress, Reason, Rejection, RoutePolicy, RouteTable,
    StreamRoute,
};

/// The rebuilder's state, as the last part of a build reads it (see `Rebuilder::state`).
pub(super) struct State<'r> {
    pub(super) hasher: &'r RandomState,
    pub(super) entries: &'r super::rebuild::Entries,
    pub(super) groups: &'r Map<HostPattern, (Arc<HostBlock>, Option<u32>)>,
    pub(super) index: &'r mut IndexWriter,
    pub(super) any: Option<u32>,
    pub(super) aliases: &'r mut Vec<(u8, Box<str>)>,
    pub(super) named: &'r Set<HostPattern>,
    pub(super) rejecting: &'r Set<HostPattern>,
    pub(super) catch_alls: &'r ByAge,
    pub(super) with_tls: &'r ByAge,
    pub(super) rejected: &'r Set<Key>,
    pub(super) tls: &'r mut super::tls_map::TlsMemo,
    pub(super) routes: usize,
    pub(super) served: usize,
    pub(super) passthrough: bool,
    pub(super) client_auth: bool,
}

/// Finishes a build: the cross-host parts, then the table over the hosts' blocks.
pub(super) fn finish(mut state: State<'_>, builder: &TableBuilder, endpoints: &mut EndpointStore) -> Built {
    let mut rejected: Vec<Rejection> = Vec::new();
    for key in state.rejected {
        rejected.extend(state.entries.get(key).into_iter().flat_map(|e| e.rejected.iter().cloned()));
    }
    for pattern in state.rejecting {
        rejected.extend(state.groups.get(pattern).into_iter().flat_map(|(b, _)| b.rejected.iter().cloned()));
    }
    let catch_all = catch_all(&state, builder, endpoints, &mut rejected);
    let (redirects, aliases) = state.aliases_and_redirects(&mut rejected);
    // Oldest first, read only when the TLS map is made again.
    let entries = state.entries;
    let with_tls = state.with_tls.iter().filter_map(|(_, key)| entries.get(key).map(|e| &**e));
    let tls = state.tls.map(with_tls, aliases, builder, &mut rejected);
    let mut slot = |key: &crate::BackendRef| {
        let (key, endpoints) = endpoints.slot(key);
        Backend { key, endpoints }
    };
    let controller_default = builder.default_backend.as_ref().map(&mut slot);
    let streams = builder
        .streams
        .values()
        .map(|s| StreamRoute { service: s.clone(), backend: slot(&s.backend) })
        .collect();
    // Sorted, so tables built from the same input list their rejections alike.
    rejected.sort_by_cached_key(|r| (r.origin.clone(), r.field.to_string(), r.reason.to_string()));
    Built {
        table: RouteTable {
            hasher: state.hasher.clone(),
            index: state.index.finish(),
            any: state.any,
            catch_all,
            controller_default,
            no_policy: RoutePolicy::default(),
            tls,
            redirects,
            streams,
            has_passthrough: state.passthrough,
            has_client_auth: state.client_auth,
            route_count: state.routes,
            host_count: state.served,
        },
        rejected,
    }
}

/// The Ingresses of `keys`, oldest first (the order they are kept in).
fn by_age<'s>(state: &'s State<'_>, keys: &'s ByAge) -> Vec<(&'s Key, &'s Entry)> {
    keys.iter().filter_map(|(_, k)| Some((k, &**state.entries.get(k)?))).collect()
}

/// The catch-all: the oldest Ingress without rules whose default backend resolves takes every
/// request no host took; the others are rejected.
fn catch_all(
    state: &State<'_>,
    builder: &TableBuilder,
    endpoints: &mut EndpointStore,
    rejected: &mut Vec<Rejection>,
) -> Option<Arc<HostBlock>> {
    let candidates = by_age(state, state.catch_alls);
    let (_, first) = candidates.first()?;
    let winner = &first.ingress.origin;
    for (_, other) in candidates.iter().skip(1) {
        let reason = Reason::Duplicate { winner: winner.clone(), winner_field: Field::DefaultBackend };
        rejected.push(Rejection {
            origin: other.ingress.origin.clone(),
            field: Field::DefaultBackend,
            reason,
        });
    }
    Some(Arc::new(catch_all_block(&first.ingress, builder, endpoints)?))
}

/// The block of the catch-all Ingress: its default backend, policy and fallback.
fn catch_all_block(
    ing: &Ingress,
    builder: &TableBuilder,
    endpoints: &mut EndpointStore,
) -> Option<HostBlock> {
    let mut backends = Vec::new();
    let mut backend = |b: &crate::BackendRef| {
        let b = resolve(b, &builder.services).ok()?.unwrap_or_else(|| b.clone());
        let (key, endpoints) = endpoints.slot(&b);
        backends.push(Backend { key, endpoints });
        Some(index(backends.len() - 1))
    };
    let default = backend(ing.default_backend.as_deref()?)?;
    let fallback = ing.fallback.as_deref().and_then(&mut backend);
    Some(HostBlock {
        kind: 2,
        default: Some(Target { backend: default, origin: 0 }),
        backends: backends.into_boxed_slice(),
        members: Box::new([Member { origin: ing.origin.clone(), policy: Arc::clone(&ing.policy), fallback }]),
        ..HostBlock::default()
    })
}

impl State<'_> {
    /// The extra names of the hosts: an index entry per alias (`server-alias`) pointing at its
    /// host's block, and the `www.` redirects (`from-to-www-redirect`). A name that is a host of
    /// its own is left to that host, as ingress-nginx leaves it; an alias that is not a valid
    /// name, or already another host's alias, is rejected. Hosts compete for names in the order
    /// they were declared.
    ///
    /// Returns the redirects, and each alias put in the indexes with its host, in order (for
    /// the TLS map: an alias gets its host's certificate).
    fn aliases_and_redirects(
        &mut self,
        rejected: &mut Vec<Rejection>,
    ) -> (HashTable<HostRedirect>, Vec<(HostPattern, HostPattern)>) {
        let mut accepted = Vec::new();
        for (kind, name) in std::mem::take(self.aliases) {
            let hash = std::hash::BuildHasher::hash_one(self.hasher, &*name);
            self.index.remove_alias(kind, hash, name, self.hasher);
        }
        let mut named: Vec<(&HostPattern, &Arc<HostBlock>, u32)> = self
            .named
            .iter()
            .filter_map(|p| match self.groups.get(p)? {
                (block, Some(id)) => Some((p, block, *id)),
                _ => None,
            })
            .collect();
        // Two hosts are declared alike only by two Ingresses of the same name: then by name.
        named.sort_by(|a, b| (a.1.declared(), a.0).cmp(&(b.1.declared(), b.0)));
        let is_host = |p: &HostPattern| self.groups.get(p).is_some_and(|(b, _)| b.served);
        let mut taken: HashMap<HostPattern, u32> = HashMap::new();
        for &(pattern, block, id) in &named {
            let Some(aliases) = &block.aliases else { continue };
            for name in &aliases.names {
                let why = match HostPattern::parse(Some(name)) {
                    Err(why) => why,
                    Ok(HostPattern::Any) => "must not be empty".to_owned(),
                    Ok(p) if p == *pattern => continue,
                    Ok(p) if is_host(&p) => "is a host of its own, which takes precedence".to_owned(),
                    Ok(p) => match taken.get(&p) {
                        Some(&other) if other == id => continue,
                        Some(other) => {
                            let other = named.iter().find(|n| n.2 == *other).map(|n| n.0.to_string());
                            format!("already an alias of host `{}`", other.unwrap_or_default())
                        }
                        None => {
                            accepted.push((pattern.clone(), p.clone()));
                            let kind = p.specificity();
                            let alias: Box<str> = block::host_name(&p).into();
                            let slot = Slot { block: Arc::clone(block), id, alias: Some(alias.clone()) };
                            self.index.insert(kind, slot, self.hasher);
                            self.aliases.push((kind, alias));
                            taken.insert(p, id);
                            continue;
                        }
                    },
                };
                let reason = Reason::Alias { alias: name.clone(), why };
                let field = Field::Annotation("server-alias");
                rejected.push(Rejection { origin: aliases.origin.clone(), field, reason });
            }
        }
        let mut redirects = HashTable::new();
        let mut redirected = HashSet::new();
        for &(pattern, block, _) in &named {
            let HostPattern::Exact(to) = pattern else { continue };
            if !block.www_redirect {
                continue;
            }
            let twin = match to.strip_prefix("www.") {
                Some(bare) => bare.to_owned(),
                None => format!("www.{to}"),
            };
            let Ok(twin @ HostPattern::Exact(_)) = HostPattern::parse(Some(&twin)) else { continue };
            if is_host(&twin) || taken.contains_key(&twin) || !redirected.insert(twin.clone()) {
                continue;
            }
            let redirect = HostRedirect { from: block::host_name(&twin).into(), to: Arc::clone(block) };
            let hasher = self.hasher;
            let hash = |r: &HostRedirect| std::hash::BuildHasher::hash_one(hasher, &*r.from);
            redirects.insert_unique(hash(&redirect), redirect, hash);
        }
        (redirects, accepted)
    }
}
