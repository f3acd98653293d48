//! One host of a route table: its routes and everything they point at, in one block that
//! successive tables share as long as no change touches the host.

use std::sync::Arc;

use crate::path::MatchKind;
use crate::table::{Backend, Id, MatchedBy, Route, RouteId};
use crate::{Field, Origin, PathType, Rejection, RoutePolicy};

/// A backend plus the Ingress that named it (a host's default backend), by indices into its
/// block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) backend: u32,
    pub(crate) origin: u32,
}

/// A string stored in a block's arena: the host name and the paths of one host sit next to
/// each other, so a lookup touches few cache lines.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

/// One compiled path rule.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    /// The path as matched (see `PendingRoute::path`).
    pub(crate) path: Span,
    /// How many bytes longer the path as written is (the trailing slashes a `Prefix` path is
    /// matched without), which follow `path` in the arena: the written path is what
    /// ingress-nginx's metrics label a request with.
    pub(crate) trailing: u8,
    pub(crate) backend: u32,
    pub(crate) origin: u32,
    pub(crate) rule: u32,
    pub(crate) index: u32,
    pub(crate) kind: MatchKind,
    pub(crate) path_type: PathType,
    /// The canary splitting this route's traffic, by index in `HostBlock::canaries`.
    pub(crate) canary: Option<u32>,
}

impl CompiledRoute {
    /// Where the rule is written in its Ingress.
    pub(crate) fn field(&self) -> Field {
        Field::Path { rule: self.rule, path: self.index }
    }
}

/// A canary of one route: its backend, its Ingress, the split.
#[derive(Debug)]
pub(crate) struct CompiledCanary {
    pub(crate) backend: u32,
    pub(crate) origin: u32,
    pub(crate) rule: crate::CanaryRule,
    pub(crate) pattern: Option<regex::bytes::Regex>,
}

/// A rule that lost a conflict at build time, kept so `explain` can show it.
#[derive(Debug)]
pub(crate) struct Shadowed {
    pub(crate) route: CompiledRoute,
    /// The route it lost to, by index in `HostBlock::routes`.
    pub(crate) winner: u32,
}

/// The aliases of a host (`server-alias`): the Ingress that named them first, and the names.
#[derive(Debug)]
pub(crate) struct Aliases {
    pub(crate) origin: Origin,
    pub(crate) names: Vec<String>,
}

/// An Ingress with a rule for a block's host, with what its routes apply. Routes, canaries and
/// the default backend name it by its index in `HostBlock::members` (their `origin`).
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) origin: Origin,
    pub(crate) policy: Arc<RoutePolicy>,
    /// Its fallback backend (`default-backend`).
    pub(crate) fallback: Option<u32>,
}

/// Everything one host routes, with indices local to the block: the table's lookups find the
/// block by name, then never leave it. Built from the Ingresses that have a rule for the host
/// (see `build::block`); the conflicts between them are settled inside it.
///
/// Laid out for the lookup (`repr(C)`): first what every lookup reads (the arena, where the name
/// and the path keys are, and the routes), then what a lookup reads once a route matched, then
/// what `explain`, the build and the TLS side read. At 100k routes a lookup misses the cache on
/// nearly every line it touches. (Aligned to a cache line, the block saved no miss in
/// cachegrind's count and took 0.9 MB more at 100k routes.)
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct HostBlock {
    /// The host name (the wildcard's suffix; empty for "any"), then the path keys of the
    /// routes (see `table::keys`), then the paths of the shadowed rules.
    pub(crate) arena: Box<str>,
    /// Sorted by precedence.
    pub(crate) routes: Box<[CompiledRoute]>,
    pub(crate) backends: Box<[Backend]>,
    pub(crate) name: Span,
    /// 0 exact, 1 wildcard, 2 any (as `HostPattern::specificity`).
    pub(crate) kind: u8,
    /// Whether the host is served over TLS (see [`RouteTable::serves_tls`](crate::RouteTable::serves_tls)).
    pub(crate) tls: bool,
    /// Whether an Ingress routes the host (a block of canaries only is never looked up: it
    /// holds their rejections).
    pub(crate) served: bool,
    /// An Ingress with a rule for this host asks for `from-to-www-redirect`.
    pub(crate) www_redirect: bool,
    /// The Ingresses of the block, oldest first (their indices order them by age).
    pub(crate) members: Box<[Member]>,
    /// The regexes of the paths of a regex host, by [`MatchKind::Regex`] index.
    pub(crate) regexes: Box<[regex::bytes::Regex]>,
    /// The canaries of routes, by `CompiledRoute::canary` index.
    pub(crate) canaries: Box<[CompiledCanary]>,
    /// The default backend of the oldest Ingress of the host that has one.
    pub(crate) default: Option<Target>,
    pub(crate) shadowed: Box<[Shadowed]>,
    /// The backend the host passes its TLS connections to (`ssl-passthrough`).
    pub(crate) passthrough: Option<u32>,
    /// The host's client certificate settings (`auth-tls-*`).
    pub(crate) client_auth: Option<Arc<crate::ClientAuth>>,
    /// When the host was first declared: the oldest Ingress with a rule for it (by index in
    /// `members`), and the index of that rule. See [`HostBlock::declared`].
    pub(crate) declared: Option<(u32, u32)>,
    /// Boxed: most hosts have none.
    pub(crate) aliases: Option<Box<Aliases>>,
    /// What the block's build left out, and why.
    pub(crate) rejected: Vec<Rejection>,
    /// A hash of what the block routes, for [`RouteTable::fingerprint`](crate::RouteTable::fingerprint).
    pub(crate) fingerprint: u64,
}

impl HostBlock {
    /// The bytes of an arena span (no character-boundary checks: for comparisons).
    #[inline]
    pub(crate) fn bytes(&self, span: Span) -> &[u8] {
        self.arena.as_bytes().get(span.start as usize..(span.start + span.len) as usize).unwrap_or(&[])
    }

    /// The text of an arena span.
    #[inline]
    pub(crate) fn text(&self, span: Span) -> &str {
        self.arena.get(span.start as usize..(span.start + span.len) as usize).unwrap_or("")
    }

    /// The host name (the wildcard's suffix; empty for "any").
    pub(crate) fn name(&self) -> &str {
        self.text(self.name)
    }

    /// When the host was first declared: the oldest Ingress with a rule for it, and the index
    /// of that rule. Hosts that compete for a name (aliases, `www.` twins) compete in this order.
    pub(crate) fn declared(&self) -> Option<(&Origin, u32)> {
        self.declared.and_then(|(origin, rule)| Some((self.origin(origin)?, rule)))
    }

    /// The route of the compiled path rule at `index`, in the block at `host` of its table.
    pub(crate) fn route_match(&self, host: u32, index: u32) -> Option<Route<'_>> {
        let r = self.routes.get(index as usize)?;
        let path = self.text(r.path);
        // Most paths are written as matched: no second slice of the arena.
        let written = match r.trailing {
            0 => path,
            trailing => self.text(Span { start: r.path.start, len: r.path.len + u32::from(trailing) }),
        };
        Some(Route {
            id: RouteId(Id::Path { host, route: index }),
            backend: self.backends.get(r.backend as usize)?,
            matched_by: MatchedBy::Path {
                origin: self.origin(r.origin)?,
                field: r.field(),
                path,
                written,
                path_type: r.path_type,
            },
            policy: self.policy_of(r.origin),
            regex: match r.kind {
                MatchKind::Regex(i) => self.regexes.get(i as usize),
                _ => None,
            },
            regex_host: r.kind.is_regex_host(),
            host_tls: self.tls,
            canary: r.canary.and_then(|c| self.canaries.get(c as usize)).and_then(|c| {
                Some(crate::CanaryRoute {
                    backend: self.backends.get(c.backend as usize)?,
                    rule: &c.rule,
                    pattern: c.pattern.as_ref(),
                })
            }),
            fallback: self.fallback_of(r.origin),
        })
    }

    /// The route of the block's default backend; `host` is where the block is in its table
    /// (`None` for the catch-all Ingress's block).
    pub(crate) fn default_match(&self, host: Option<u32>) -> Option<Route<'_>> {
        let t = self.default?;
        Some(Route {
            id: RouteId(match host {
                Some(host) => Id::Default { host },
                None => Id::CatchAll,
            }),
            backend: self.backends.get(t.backend as usize)?,
            matched_by: MatchedBy::IngressDefault { origin: self.origin(t.origin)? },
            policy: self.policy_of(t.origin),
            regex: None,
            regex_host: false,
            canary: None,
            host_tls: host.is_some() && self.tls,
            fallback: self.fallback_of(t.origin),
        })
    }

    /// The Ingress at index `origin` of the block.
    pub(crate) fn origin(&self, origin: u32) -> Option<&Origin> {
        self.members.get(origin as usize).map(|m| &m.origin)
    }

    /// The fallback backend of an origin (`default-backend`).
    fn fallback_of(&self, origin: u32) -> Option<&Backend> {
        let b = self.members.get(origin as usize)?.fallback?;
        self.backends.get(b as usize)
    }

    /// The policy of an origin.
    fn policy_of(&self, origin: u32) -> &RoutePolicy {
        static NONE: std::sync::OnceLock<RoutePolicy> = std::sync::OnceLock::new();
        match self.members.get(origin as usize) {
            Some(m) => &m.policy,
            None => NONE.get_or_init(RoutePolicy::default),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_compiled_route_keeps_its_written_path_in_its_padding() {
        // `trailing` takes a byte the alignment left over (44 bytes before it too): a table
        // keeps a compiled route for every path it routes.
        assert_eq!(std::mem::size_of::<super::CompiledRoute>(), 44);
    }
}
