//! The last step of building: order each host's routes by precedence, set aside the losers of
//! conflicts, and lay everything out in the compact table.

use std::cmp::{Ordering, Reverse};
use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::{Built, HostAcc, PendingRoute, State, index};
use crate::path::MatchKind;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::table::{CompiledRoute, HostEntry, HostRedirect, Shadowed, Span};
use crate::tls::TlsEntry;
use crate::{Backend, Field, HostPattern, Reason, Rejection, RoutePolicy, RouteTable, StreamRoute};

/// The order of routes within a host, and so the whole of path precedence: the longest path
/// first, `Exact` before `Prefix` at equal length; then, among rules claiming the same path and
/// kind, the older Ingress (origin indices are in age order), then the order written. The path
/// text only groups equal paths together: two different paths of equal length never both match
/// one request.
fn precedence<'a>(a: &PendingRoute<'a>, b: &PendingRoute<'a>) -> Ordering {
    fn key<'a>(r: &PendingRoute<'a>) -> (Reverse<usize>, crate::path::MatchKind, &'a str, u32, u32, u32) {
        (Reverse(r.path.len()), r.kind, r.path, r.origin, r.rule, r.index)
    }
    key(a).cmp(&key(b))
}

/// The order of routes on a regex host, as ingress-nginx writes its locations: the longest
/// path as written first; at equal length the older Ingress, then the order written (nginx
/// then takes the first regex that matches).
fn regex_order<'a>(a: &PendingRoute<'a>, b: &PendingRoute<'a>) -> Ordering {
    fn key(r: &PendingRoute<'_>) -> (Reverse<usize>, u32, u32, u32) {
        (Reverse(r.written.len()), r.origin, r.rule, r.index)
    }
    key(a).cmp(&key(b))
}

/// Whether `b` claims what `a` already claimed: same host (implied), same path, same kind; on
/// a regex host, the same path as written.
fn same_claim(a: &PendingRoute<'_>, b: &PendingRoute<'_>, regex_host: bool) -> bool {
    if regex_host { a.written == b.written } else { a.kind == b.kind && a.path == b.path }
}

impl State<'_, '_> {
    pub(super) fn finish(mut self) -> Built {
        let mut hosts = std::mem::take(&mut self.hosts);
        let arena_len: usize = hosts
            .iter()
            .map(|h| host_name(&h.pattern).len() + h.routes.iter().map(|r| r.written.len()).sum::<usize>())
            .sum();
        let route_count: usize = hosts.iter().map(|h| h.routes.len()).sum();
        let mut arena = String::with_capacity(arena_len);
        let mut push = |text: &str| {
            let span = Span { start: index(arena.len()), len: index(text.len()) };
            arena.push_str(text);
            span
        };
        let mut entries = Vec::with_capacity(hosts.len());
        let mut routes = Vec::with_capacity(route_count);
        let mut shadowed = Vec::new();
        let mut regexes = Vec::new();
        let mut seen = std::collections::HashMap::new();
        let mut any = None;
        let hosts_len = hosts.len();
        let mut passthrough = Vec::new();
        let mut client_auth = Vec::new();
        for (host, acc) in hosts.iter_mut().enumerate() {
            let host = index(host);
            let name = push(host_name(&acc.pattern));
            let regex_host = acc.routes.iter().any(|r| r.regex);
            if regex_host {
                acc.routes.sort_by(regex_order);
                self.compile_regexes(acc, &mut regexes, &mut seen);
            } else {
                acc.routes.sort_unstable_by(precedence);
            }
            let start = index(routes.len());
            let mut winner: Option<(usize, u32)> = None;
            for (i, r) in acc.routes.iter().enumerate() {
                let text = if regex_host { r.written } else { r.path };
                match winner {
                    Some((w, w_at)) if same_claim(&acc.routes[w], r, regex_host) => {
                        let w = &acc.routes[w];
                        self.rejected.push(Rejection {
                            origin: self.origins[r.origin as usize].clone(),
                            field: r.field(),
                            reason: Reason::Duplicate {
                                winner: self.origins[w.origin as usize].clone(),
                                winner_field: w.field(),
                            },
                        });
                        shadowed.push(Shadowed { host, route: compiled(r, push(text)), winner: w_at });
                    }
                    _ => {
                        winner = Some((i, index(routes.len())));
                        routes.push(compiled(r, push(text)));
                    }
                }
            }
            let kind = acc.pattern.specificity();
            if kind == 2 {
                any = Some(host);
            }
            if let Some(auth) = acc.client_auth.take().filter(|_| kind != 2) {
                client_auth.resize(hosts_len, None);
                client_auth[host as usize] = Some(auth);
            }
            if let Some(origin) = acc.passthrough {
                // ingress-nginx passes the connections to the backend of the host's `/` path.
                let root = acc.routes.iter().find(|r| r.written == "/").map(|r| r.backend);
                let why = match (kind, root) {
                    (2, _) => Some("a rule without a host matches no server name; TLS is terminated here"),
                    (_, None) => Some(
                        "the host has no `/` path, whose backend would get the connections; TLS is terminated here, as ingress-nginx does",
                    ),
                    (_, Some(backend)) => {
                        passthrough.resize(hosts_len, None);
                        passthrough[host as usize] = Some(backend);
                        None
                    }
                };
                if let Some(why) = why {
                    self.rejected.push(Rejection {
                        origin: self.origins[origin as usize].clone(),
                        field: Field::Annotation("ssl-passthrough"),
                        reason: Reason::Passthrough { host: acc.pattern.to_string(), why: why.to_owned() },
                    });
                }
            }
            entries.push(HostEntry {
                id: host,
                kind,
                name,
                routes: (start, index(routes.len())),
                default: acc.default,
                tls: acc.tls && kind != 2,
            });
        }

        let (aliases, host_redirects) = self.aliases_and_redirects(&hosts, &entries, &mut push);

        let hasher = RandomState::default();
        // Hash exactly what lookups hash: the name as `&str`.
        let hash = |e: &HostEntry| {
            hasher.hash_one(
                arena.get(e.name.start as usize..(e.name.start + e.name.len) as usize).unwrap_or(""),
            )
        };
        let mut exact = HashTable::with_capacity(entries.iter().filter(|e| e.kind == 0).count());
        let mut wildcard = HashTable::with_capacity(entries.iter().filter(|e| e.kind == 1).count());
        for e in entries.iter().chain(&aliases) {
            match e.kind {
                0 => {
                    exact.insert_unique(hash(e), *e, hash);
                }
                1 => {
                    wildcard.insert_unique(hash(e), *e, hash);
                }
                _ => {}
            }
        }
        let mut redirects = HashTable::with_capacity(host_redirects.len());
        for r in host_redirects {
            let hash_from = |r: &HostRedirect| {
                hasher.hash_one(
                    arena.get(r.from.start as usize..(r.from.start + r.from.len) as usize).unwrap_or(""),
                )
            };
            redirects.insert_unique(hash_from(&r), r, hash_from);
        }
        let streams = std::mem::take(&mut self.streams)
            .into_iter()
            .filter_map(|(service, b)| {
                let backend = self.backends.get(b as usize)?;
                let backend =
                    Backend { key: Arc::clone(&backend.key), endpoints: Arc::clone(&backend.endpoints) };
                Some(StreamRoute { service, backend })
            })
            .collect();
        Built {
            table: RouteTable {
                hasher,
                exact,
                wildcard,
                any,
                arena: arena.into_boxed_str(),
                hosts: entries,
                routes,
                backends: self.backends,
                origins: self.origins,
                policies: self.policies,
                no_policy: RoutePolicy::default(),
                catch_all: self.catch_all.map(|(t, _)| t),
                controller_default: self.controller_default,
                tls: self.tls,
                shadowed,
                regexes,
                canaries: self.canaries,
                fallbacks: self.fallbacks,
                redirects,
                streams,
                passthrough,
                client_auth,
            },
            rejected: self.rejected,
        }
    }
}

impl<'a> State<'a, '_> {
    /// The extra names of the hosts: an entry per alias (`server-alias`), a copy of its host's
    /// entry under the alias's name, and the `www.` redirects (`from-to-www-redirect`). A name
    /// that is a host of its own is left to that host, as ingress-nginx leaves it; an alias
    /// that is not a valid name, or already another host's alias, is rejected.
    fn aliases_and_redirects(
        &mut self,
        hosts: &[HostAcc<'a>],
        entries: &[HostEntry],
        push: &mut impl FnMut(&str) -> Span,
    ) -> (Vec<HostEntry>, Vec<HostRedirect>) {
        let mut taken: HashMap<HostPattern, u32> = HashMap::new();
        let mut aliases = Vec::new();
        for (acc, entry) in hosts.iter().zip(entries) {
            let Some((origin, names)) = acc.aliases else { continue };
            for name in names {
                let why = match HostPattern::parse(Some(name)) {
                    Err(why) => why,
                    Ok(HostPattern::Any) => "must not be empty".to_owned(),
                    Ok(p) if p == acc.pattern => continue,
                    Ok(p) if self.host_index.contains_key(&p) => {
                        "is a host of its own, which takes precedence".to_owned()
                    }
                    Ok(p) => match taken.entry(p) {
                        Entry::Occupied(o) if *o.get() == entry.id => continue,
                        Entry::Occupied(o) => {
                            format!("already an alias of host `{}`", hosts[*o.get() as usize].pattern)
                        }
                        Entry::Vacant(v) => {
                            let kind = v.key().specificity();
                            let name = push(host_name(v.key()));
                            self.alias_certificate(&acc.pattern, v.key());
                            v.insert(entry.id);
                            aliases.push(HostEntry { kind, name, ..*entry });
                            continue;
                        }
                    },
                };
                let origin = self.origins[origin as usize].clone();
                self.reject(
                    &origin,
                    Field::Annotation("server-alias"),
                    Reason::Alias { alias: name.clone(), why },
                );
            }
        }
        let mut redirects = Vec::new();
        let mut redirected = HashSet::new();
        for (acc, entry) in hosts.iter().zip(entries) {
            let HostPattern::Exact(to) = &acc.pattern else { continue };
            if !acc.www_redirect {
                continue;
            }
            let twin = match to.strip_prefix("www.") {
                Some(bare) => bare.to_owned(),
                None => format!("www.{to}"),
            };
            let Ok(twin @ HostPattern::Exact(_)) = HostPattern::parse(Some(&twin)) else { continue };
            if self.host_index.contains_key(&twin)
                || taken.contains_key(&twin)
                || !redirected.insert(twin.clone())
            {
                continue;
            }
            redirects.push(HostRedirect { from: push(host_name(&twin)), to: entry.name });
        }
        (aliases, redirects)
    }
}

impl State<'_, '_> {
    /// Serves an alias with its host's certificate, unless a TLS entry names the alias itself
    /// (ingress-nginx gives an alias its server's certificate; when that does not cover the
    /// name, the client sees a mismatch either way).
    fn alias_certificate(&mut self, host: &HostPattern, alias: &HostPattern) {
        let Some(&(i, field)) = self.tls_claims.get(host) else { return };
        if self.tls_claims.contains_key(alias) {
            return;
        }
        let Some(e) = self.tls.entries.get(i as usize) else { return };
        let entry =
            TlsEntry { host: alias.clone(), certificate: e.certificate.clone(), origin: e.origin.clone() };
        self.tls_claims.insert(alias.clone(), (index(self.tls.entries.len()), field));
        self.tls.insert(entry);
    }
}

impl State<'_, '_> {
    /// Compiles each route of a regex host: a path without regex syntax matches as
    /// [`MatchKind::Folded`], any other as a [`MatchKind::Regex`] in `regexes` (one regex per
    /// distinct pattern, however many hosts use it). A path that is not a usable regex is
    /// rejected and left out.
    fn compile_regexes<'a>(
        &mut self,
        acc: &mut super::HostAcc<'a>,
        regexes: &mut Vec<regex::bytes::Regex>,
        seen: &mut std::collections::HashMap<&'a str, u32>,
    ) {
        let origins = &self.origins;
        let rejected = &mut self.rejected;
        acc.routes.retain_mut(|r| {
            if !crate::path::has_regex_syntax(r.written) {
                r.kind = MatchKind::Folded;
                return true;
            }
            if let Some(&i) = seen.get(r.written) {
                r.kind = MatchKind::Regex(i);
                return true;
            }
            match crate::rewrite::location_regex(r.written) {
                Ok(regex) => {
                    let i = index(regexes.len());
                    seen.insert(r.written, i);
                    r.kind = MatchKind::Regex(i);
                    regexes.push(regex);
                    true
                }
                Err(why) => {
                    rejected.push(Rejection {
                        origin: origins[r.origin as usize].clone(),
                        field: r.field(),
                        reason: Reason::InvalidPath { path: r.written.to_owned(), why },
                    });
                    false
                }
            }
        });
    }
}

/// The text a host entry is looked up by: the exact name, or the wildcard's suffix.
fn host_name(pattern: &HostPattern) -> &str {
    match pattern {
        HostPattern::Exact(h) | HostPattern::Wildcard(h) => h,
        HostPattern::Any => "",
    }
}

fn compiled(r: &PendingRoute<'_>, path: Span) -> CompiledRoute {
    CompiledRoute {
        path,
        backend: r.backend,
        origin: r.origin,
        rule: r.rule,
        index: r.index,
        kind: r.kind,
        path_type: r.path_type,
        canary: r.canary,
    }
}
