//! The compiled, immutable route table and its allocation-free lookup.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::host::{HostBuf, wildcard_suffix};
use crate::path::{self, MatchKind};
use crate::{BackendRef, EndpointSet, EndpointSlot, Field, HostPattern, Origin, PathType, TlsMap};

/// A backend as the table knows it: which Service port, and its live endpoints.
#[derive(Debug)]
pub struct Backend {
    pub(crate) key: BackendRef,
    pub(crate) endpoints: Arc<EndpointSlot>,
}

impl Backend {
    /// The Service port this backend stands for (named ports resolved to numbers when the
    /// builder knew the Service).
    pub fn key(&self) -> &BackendRef {
        &self.key
    }

    /// The backend's current endpoints.
    pub fn endpoints(&self) -> Arc<EndpointSet> {
        self.endpoints.load()
    }

    /// The shared slot behind [`Backend::endpoints`], for selectors that keep per-backend state.
    pub fn slot(&self) -> &EndpointSlot {
        &self.endpoints
    }
}

/// Why a lookup chose its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy<'t> {
    /// A path rule matched.
    Path {
        /// The Ingress that declared the rule.
        origin: &'t Origin,
        /// Where the rule is written in that Ingress.
        field: Field,
        /// The rule's path, as matched (a `Prefix` path without its trailing slash).
        path: &'t str,
        /// The rule's path type.
        path_type: PathType,
    },
    /// No path matched; the `spec.defaultBackend` of an Ingress applied.
    IngressDefault {
        /// The Ingress whose default backend applied.
        origin: &'t Origin,
    },
    /// Nothing in any Ingress matched; the controller-wide default backend applied.
    ControllerDefault,
}

/// The answer of [`RouteTable::lookup`]: where the request goes and why.
#[derive(Debug, Clone, Copy)]
pub struct Route<'t> {
    /// The backend to send the request to.
    pub backend: &'t Backend,
    /// What matched.
    pub matched_by: MatchedBy<'t>,
}

/// A backend plus the Ingress that named it (the fallback of a host, or of every host).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) backend: u32,
    pub(crate) origin: u32,
}

/// One host of the table: its pattern, its routes (a range of `RouteTable::routes`, sorted by
/// precedence) and the default backend of the Ingresses that declared it.
#[derive(Debug)]
pub(crate) struct HostEntry {
    pub(crate) pattern: HostPattern,
    pub(crate) routes: std::ops::Range<u32>,
    pub(crate) default: Option<Target>,
}

/// One compiled path rule.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    pub(crate) path: Box<str>,
    pub(crate) kind: MatchKind,
    pub(crate) path_type: PathType,
    pub(crate) backend: u32,
    pub(crate) origin: u32,
    pub(crate) field: Field,
}

/// A rule that lost a conflict at build time, kept so `explain` can show it.
#[derive(Debug)]
pub(crate) struct Shadowed {
    pub(crate) host: u32,
    pub(crate) route: CompiledRoute,
    pub(crate) winner: u32,
}

/// The compiled routing table: immutable, cheap to share, looked up without allocating.
///
/// Built by [`TableBuilder`](crate::TableBuilder). Precedence: the most specific host (exact,
/// then single-label wildcard, then host-less rules) is chosen first and only its paths are
/// considered; among its matching paths the longest wins, `Exact` before `Prefix` at equal
/// length. When no path matches: that host's Ingress default backend, then the default backend
/// of an Ingress without rules, then the controller-wide default backend, then no route.
///
/// # Examples
///
/// ```
/// use ingress_core::{BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder};
///
/// let api = BackendRef::new("shop", "api", 8080);
/// let web = BackendRef::new("shop", "web", 80);
/// let mut builder = TableBuilder::new();
/// builder.ingress(Ingress::new(Origin::new("shop", "shop")).rule(
///     HostRule::host("shop.example.com")
///         .path(PathRule::prefix("/", web.clone()))
///         .path(PathRule::prefix("/api", api.clone())),
/// ));
/// let built = builder.build(&mut EndpointStore::new());
/// assert!(built.rejected.is_empty());
///
/// let table = built.table;
/// assert_eq!(table.lookup("Shop.Example.com:443", "/api/v1?x=1").unwrap().backend.key(), &api);
/// assert_eq!(table.lookup("shop.example.com", "/apiary").unwrap().backend.key(), &web);
/// assert!(table.lookup("other.example.com", "/").is_none());
/// ```
#[derive(Debug)]
pub struct RouteTable {
    pub(crate) exact: HashMap<Box<str>, u32, RandomState>,
    pub(crate) wildcard: HashMap<Box<str>, u32, RandomState>,
    pub(crate) any: Option<u32>,
    pub(crate) hosts: Vec<HostEntry>,
    pub(crate) routes: Vec<CompiledRoute>,
    pub(crate) backends: Vec<Backend>,
    pub(crate) origins: Vec<Origin>,
    pub(crate) catch_all: Option<Target>,
    pub(crate) controller_default: Option<u32>,
    pub(crate) tls: TlsMap,
    pub(crate) shadowed: Vec<Shadowed>,
}

impl RouteTable {
    /// Finds the backend for a request's host (`Host` header or `:authority`, any case, with
    /// or without `:port`) and path (with or without query string). `None` means no route: the
    /// proxy answers with its built-in 404.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Route<'_>> {
        let mut buf: HostBuf = [0; 254];
        let path = path::strip_query(path);
        if let Some(entry) = self.find_host(host, &mut buf).map(|h| &self.hosts[h as usize]) {
            let routes = &self.routes[entry.routes.start as usize..entry.routes.end as usize];
            if let Some(r) = routes.iter().find(|r| path::matches(r.kind, &r.path, path)) {
                return Some(self.route_match(r));
            }
            if let Some(t) = entry.default {
                return Some(self.default_match(t));
            }
        }
        self.fallback()
    }

    /// The index of the most specific host entry matching `host`.
    pub(crate) fn find_host(&self, host: &str, buf: &mut HostBuf) -> Option<u32> {
        if let Some(host) = crate::normalize_host(host, buf) {
            if let Some(&h) = self.exact.get(host) {
                return Some(h);
            }
            if !self.wildcard.is_empty()
                && let Some(&h) = wildcard_suffix(host).and_then(|s| self.wildcard.get(s))
            {
                return Some(h);
            }
        }
        self.any
    }

    pub(crate) fn route_match<'t>(&'t self, r: &'t CompiledRoute) -> Route<'t> {
        Route {
            backend: &self.backends[r.backend as usize],
            matched_by: MatchedBy::Path {
                origin: &self.origins[r.origin as usize],
                field: r.field,
                path: &r.path,
                path_type: r.path_type,
            },
        }
    }

    pub(crate) fn default_match(&self, t: Target) -> Route<'_> {
        Route {
            backend: &self.backends[t.backend as usize],
            matched_by: MatchedBy::IngressDefault { origin: &self.origins[t.origin as usize] },
        }
    }

    /// Where requests go that no host's paths or default backend took.
    pub(crate) fn fallback(&self) -> Option<Route<'_>> {
        if let Some(t) = self.catch_all {
            return Some(self.default_match(t));
        }
        self.controller_default
            .map(|b| Route { backend: &self.backends[b as usize], matched_by: MatchedBy::ControllerDefault })
    }

    /// The TLS SNI map compiled with this table.
    pub fn tls(&self) -> &TlsMap {
        &self.tls
    }

    /// Every backend the table can route to, including default backends.
    pub fn backends(&self) -> impl ExactSizeIterator<Item = &Backend> {
        self.backends.iter()
    }

    /// How many path rules the table holds.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// How many distinct hosts (exact, wildcard, or "any") the table holds.
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }
}
