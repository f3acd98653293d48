//! The compiled, immutable route table and its allocation-free lookup.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::host::{HostBuf, eq_bytes, lowercase_into, trim_host, wildcard_suffix};
use crate::path::{self, MatchKind};
use crate::{
    BackendRef, EndpointSet, EndpointSlot, Field, HostPattern, Origin, PathType, RoutePolicy, StreamProtocol,
    StreamRoute, TlsMap,
};

/// A backend as the table knows it: which Service port, and its live endpoints.
#[derive(Debug)]
pub struct Backend {
    pub(crate) key: Arc<BackendRef>,
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

    /// The same slot, owned: for state that outlives the table, such as idle upstream
    /// connections that must close once their endpoint leaves the set.
    pub fn shared_slot(&self) -> Arc<EndpointSlot> {
        Arc::clone(&self.endpoints)
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

/// The answer of [`RouteTable::lookup`]: where the request goes, why, and with what policy.
#[derive(Debug, Clone, Copy)]
pub struct Route<'t> {
    /// The backend to send the request to.
    pub backend: &'t Backend,
    /// What matched.
    pub matched_by: MatchedBy<'t>,
    /// The policy of the Ingress that matched (empty for the controller's default backend).
    pub policy: &'t RoutePolicy,
    /// Where the route is in its table, to find it again without matching.
    pub(crate) id: RouteId,
    /// The path's regex, when it matched on a regex host.
    pub(crate) regex: Option<&'t regex::bytes::Regex>,
    /// Whether the path matched as a regex host's path.
    pub(crate) regex_host: bool,
    /// The canary that splits this route's traffic (`canary` Ingresses), if any.
    pub canary: Option<crate::CanaryRoute<'t>>,
    /// Whether the host the request matched is served over TLS ([`RouteTable::serves_tls`]),
    /// found by the same lookup.
    pub host_tls: bool,
    /// Where requests go while `backend` has no ready endpoint (`default-backend`).
    pub fallback: Option<&'t Backend>,
}

impl Route<'_> {
    /// A small handle to this route, which [`RouteTable::route`] turns back into the route
    /// (of the same table) without matching again: for code that must keep a route across
    /// calls but cannot keep the borrow.
    pub fn id(&self) -> RouteId {
        self.id
    }

    /// The path (bytes) the request (routed on `path`, nginx's normalized `$uri`) goes upstream with
    /// when its Ingress rewrites (`rewrite-target`): the target with `$1`…`$9` filled from the
    /// path regex's groups. `None` keeps the request's own path (no rewrite, or a target that
    /// is the path itself, as ingress-nginx leaves it).
    pub fn rewritten(&self, path: &str) -> Option<Vec<u8>> {
        let target = self.policy.rewrite_target.as_ref()?;
        let MatchedBy::Path { path: written, .. } = self.matched_by else { return None };
        if !self.regex_host || target.as_str() == written {
            return None;
        }
        let path = crate::path::strip_query(path).as_bytes();
        match self.regex {
            Some(regex) => target.apply(regex, path),
            // A path without regex syntax has no groups.
            None => Some(target.without_groups()),
        }
    }

    /// Whether the path matched as a regex (its host is a regex host).
    pub fn is_regex(&self) -> bool {
        self.regex_host
    }
}

/// A handle to a route of one [`RouteTable`]; see [`Route::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(Id);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Id {
    Path(u32),
    Default { backend: u32, origin: u32 },
    Controller(u32),
}

fn index_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A backend plus the Ingress that named it (the fallback of a host, or of every host).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) backend: u32,
    pub(crate) origin: u32,
}

/// A string stored in the table's arena. Host names and the paths of one host sit next to each
/// other, so a lookup touches few cache lines and the table makes few allocations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

/// One host of the table: its pattern, its routes (a range of `RouteTable::routes`, sorted by
/// precedence) and the default backend of the Ingresses that declared it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostEntry {
    /// Index in `RouteTable::hosts`.
    pub(crate) id: u32,
    /// 0 exact, 1 wildcard, 2 any (as `HostPattern::specificity`).
    pub(crate) kind: u8,
    /// The exact host, or the wildcard's suffix; empty for "any".
    pub(crate) name: Span,
    pub(crate) routes: (u32, u32),
    pub(crate) default: Option<Target>,
    /// Whether the host is served over TLS (see [`RouteTable::serves_tls`]).
    pub(crate) tls: bool,
}

/// A `from-to-www-redirect`: requests for `from` are redirected to `to` (both in the arena).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostRedirect {
    pub(crate) from: Span,
    pub(crate) to: Span,
}

/// One compiled path rule.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    pub(crate) path: Span,
    pub(crate) backend: u32,
    pub(crate) origin: u32,
    pub(crate) rule: u32,
    pub(crate) index: u32,
    pub(crate) kind: MatchKind,
    pub(crate) path_type: PathType,
    /// The canary splitting this route's traffic, by index in `RouteTable::canaries`.
    pub(crate) canary: Option<u32>,
}

/// A canary of one route: its backend, its Ingress, the split.
#[derive(Debug)]
pub(crate) struct CompiledCanary {
    pub(crate) backend: u32,
    pub(crate) origin: u32,
    pub(crate) rule: crate::CanaryRule,
    pub(crate) pattern: Option<regex::bytes::Regex>,
}

impl CompiledRoute {
    /// Where the rule is written in its Ingress.
    pub(crate) fn field(&self) -> Field {
        Field::Path { rule: self.rule, path: self.index }
    }
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
    pub(crate) hasher: RandomState,
    /// Exact hosts. Entries are stored inline (copies of `hosts`) to save a dependent memory
    /// access per lookup.
    pub(crate) exact: HashTable<HostEntry>,
    /// Wildcard suffixes, stored like `exact`.
    pub(crate) wildcard: HashTable<HostEntry>,
    pub(crate) any: Option<u32>,
    pub(crate) arena: Box<str>,
    pub(crate) hosts: Vec<HostEntry>,
    pub(crate) routes: Vec<CompiledRoute>,
    pub(crate) backends: Vec<Backend>,
    pub(crate) origins: Vec<Origin>,
    /// The policy of each origin, by the same index.
    pub(crate) policies: Vec<Arc<RoutePolicy>>,
    /// The policy of routes no Ingress defined (the controller's default backend).
    pub(crate) no_policy: RoutePolicy,
    pub(crate) catch_all: Option<Target>,
    pub(crate) controller_default: Option<u32>,
    pub(crate) tls: TlsMap,
    pub(crate) shadowed: Vec<Shadowed>,
    /// The regexes of the paths of regex hosts, by [`MatchKind::Regex`] index.
    pub(crate) regexes: Vec<regex::bytes::Regex>,
    /// The canaries of routes, by `CompiledRoute::canary` index.
    pub(crate) canaries: Vec<CompiledCanary>,
    /// The fallback backend of each origin (`default-backend`), by origin index.
    pub(crate) fallbacks: Vec<Option<u32>>,
    /// The `www.` twins redirected to their host (`from-to-www-redirect`), by the twin's name.
    pub(crate) redirects: HashTable<HostRedirect>,
    /// The TCP and UDP services, sorted by protocol and port.
    pub(crate) streams: Vec<StreamRoute>,
    /// The backend each host passes its TLS connections to (`ssl-passthrough`), by host id;
    /// empty when no host does.
    pub(crate) passthrough: Vec<Option<u32>>,
    /// Each host's client certificate settings (`auth-tls-*`), by host id; empty when no host
    /// has them.
    pub(crate) client_auth: Vec<Option<std::sync::Arc<crate::ClientAuth>>>,
}

impl RouteTable {
    /// Finds the backend for a request's host (`Host` header or `:authority`, any case, with
    /// or without `:port`) and path (with or without query string). `None` means no route: the
    /// proxy answers with its built-in 404.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Route<'_>> {
        let path = path::strip_query(path);
        if let Some(entry) = self.find_host(host) {
            let routes = &self.routes[entry.routes.0 as usize..entry.routes.1 as usize];
            if let Some(i) = routes
                .iter()
                .position(|r| path::matches(r.kind, self.bytes(r.path), path.as_bytes(), &self.regexes))
            {
                return Some(Route {
                    host_tls: entry.tls,
                    ..self.route_match(entry.routes.0 + index_u32(i))
                });
            }
            if let Some(t) = entry.default {
                return Some(Route { host_tls: entry.tls, ..self.default_match(t) });
            }
        }
        self.fallback()
    }

    /// The exact host name (lower-case, without port) that `host` (as [`RouteTable::lookup`]
    /// takes it) is, when it is the name of a rule or an alias: `None` for names only a wildcard
    /// or a host-less rule serves. Metrics label requests by host only for these, so clients
    /// cannot grow the label set with made-up names.
    pub fn exact_host(&self, host: &str) -> Option<&str> {
        self.find_host(host).filter(|e| e.kind == 0).map(|e| self.text(e.name))
    }

    /// Whether `host` (as [`RouteTable::lookup`] takes it) is one of the hosts served over TLS:
    /// a host (exact or wildcard) that an Ingress with a TLS section has a rule for, whatever
    /// its certificate (ingress-nginx's "server with a certificate"). Plain HTTP requests for
    /// these hosts are redirected to HTTPS under `ssl-redirect`.
    pub fn serves_tls(&self, host: &str) -> bool {
        self.find_host(host).is_some_and(|h| h.tls)
    }

    /// The host that requests for `host` are redirected to (`from-to-www-redirect`): the
    /// `www.` twin of a host whose Ingress asks for it (or the name without `www.` of a `www.`
    /// host), when the twin is not a host or alias of its own. Checked before [`lookup`]: the
    /// twin is an exact name, which takes precedence over wildcards and host-less rules, as
    /// nginx's `server_name` does.
    ///
    /// [`lookup`]: RouteTable::lookup
    pub fn host_redirect(&self, host: &str) -> Option<&str> {
        if self.redirects.is_empty() {
            return None;
        }
        let (host, upper) = trim_host(host)?;
        let mut buf: HostBuf = [0; 254];
        let host = if upper { lowercase_into(host, &mut buf)? } else { host };
        let hash = self.hasher.hash_one(host);
        self.redirects.find(hash, |r| eq_bytes(self.bytes(r.from), host.as_bytes())).map(|r| self.text(r.to))
    }

    /// The index of the most specific host entry matching `host`.
    /// The backend that TLS connections for `server_name` (a ClientHello's SNI, any case) are
    /// passed to unterminated, when its host (exact, wildcard or `server-alias`) asks for
    /// `ssl-passthrough`: the backend of the host's `/` path.
    pub fn passthrough(&self, server_name: &str) -> Option<&Backend> {
        if self.passthrough.is_empty() || server_name.is_empty() {
            return None;
        }
        let entry = self.find_host(server_name).filter(|e| e.kind != 2)?;
        let backend = (*self.passthrough.get(entry.id as usize)?)?;
        self.backends.get(backend as usize)
    }

    /// The client certificate settings of the host `name` (a TLS server name or a request's
    /// host, any case; exact, wildcard or `server-alias`), if it has them (`auth-tls-*`).
    pub fn client_auth(&self, name: &str) -> Option<&std::sync::Arc<crate::ClientAuth>> {
        if self.client_auth.is_empty() || name.is_empty() {
            return None;
        }
        let entry = self.find_host(name).filter(|e| e.kind != 2)?;
        self.client_auth.get(entry.id as usize)?.as_ref()
    }

    /// Whether any host passes TLS through (`ssl-passthrough`).
    pub fn has_passthrough(&self) -> bool {
        self.passthrough.iter().any(Option::is_some)
    }

    pub(crate) fn find_host(&self, host: &str) -> Option<&HostEntry> {
        match trim_host(host) {
            Some((host, false)) => self.find_normalized(host),
            Some((host, true)) => self.find_lowered(host),
            None => self.any.map(|h| &self.hosts[h as usize]),
        }
    }

    /// The rare upper-case `Host`: lower-case it in a stack buffer first.
    #[cold]
    fn find_lowered(&self, host: &str) -> Option<&HostEntry> {
        let mut buf: HostBuf = [0; 254];
        match lowercase_into(host, &mut buf) {
            Some(host) => self.find_normalized(host),
            None => self.any.map(|h| &self.hosts[h as usize]),
        }
    }

    fn find_normalized(&self, host: &str) -> Option<&HostEntry> {
        if let Some(h) = self.find_in(&self.exact, host) {
            return Some(h);
        }
        if !self.wildcard.is_empty()
            && let Some(h) = wildcard_suffix(host).and_then(|s| self.find_in(&self.wildcard, s))
        {
            return Some(h);
        }
        self.any.map(|h| &self.hosts[h as usize])
    }

    fn find_in<'t>(&'t self, index: &'t HashTable<HostEntry>, name: &str) -> Option<&'t HostEntry> {
        let hash = self.hasher.hash_one(name);
        index.find(hash, |h| eq_bytes(self.bytes(h.name), name.as_bytes()))
    }

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

    /// The pattern of a host entry (allocates; for `explain`).
    pub(crate) fn pattern(&self, h: &HostEntry) -> HostPattern {
        let name = self.text(h.name).to_owned();
        match h.kind {
            0 => HostPattern::Exact(name),
            1 => HostPattern::Wildcard(name),
            _ => HostPattern::Any,
        }
    }

    /// The route behind a [`RouteId`] of this table (`None` for an id of another table that
    /// is out of this one's range).
    pub fn route(&self, id: RouteId) -> Option<Route<'_>> {
        match id.0 {
            Id::Path(i) => ((i as usize) < self.routes.len()).then(|| self.route_match(i)),
            Id::Default { backend, origin } => ((backend as usize) < self.backends.len()
                && (origin as usize) < self.origins.len())
            .then(|| self.default_match(Target { backend, origin })),
            Id::Controller(b) => ((b as usize) < self.backends.len()).then(|| self.controller_match(b)),
        }
    }

    /// The route of the compiled path rule at `index` in `routes`.
    pub(crate) fn route_match(&self, index: u32) -> Route<'_> {
        let r = &self.routes[index as usize];
        Route {
            id: RouteId(Id::Path(index)),
            backend: &self.backends[r.backend as usize],
            matched_by: MatchedBy::Path {
                origin: &self.origins[r.origin as usize],
                field: r.field(),
                path: self.text(r.path),
                path_type: r.path_type,
            },
            policy: self.policy_of(r.origin),
            regex: match r.kind {
                MatchKind::Regex(i) => self.regexes.get(i as usize),
                _ => None,
            },
            regex_host: r.kind.is_regex_host(),
            host_tls: false,
            canary: r.canary.and_then(|c| self.canaries.get(c as usize)).map(|c| crate::CanaryRoute {
                backend: &self.backends[c.backend as usize],
                rule: &c.rule,
                pattern: c.pattern.as_ref(),
            }),
            fallback: self.fallback_of(r.origin),
        }
    }

    /// The fallback backend of an origin (`default-backend`).
    fn fallback_of(&self, origin: u32) -> Option<&Backend> {
        let b = self.fallbacks.get(origin as usize).copied().flatten()?;
        self.backends.get(b as usize)
    }

    /// The policy of an origin.
    fn policy_of(&self, origin: u32) -> &RoutePolicy {
        self.policies.get(origin as usize).map_or(&self.no_policy, |p| p)
    }

    pub(crate) fn default_match(&self, t: Target) -> Route<'_> {
        Route {
            id: RouteId(Id::Default { backend: t.backend, origin: t.origin }),
            backend: &self.backends[t.backend as usize],
            matched_by: MatchedBy::IngressDefault { origin: &self.origins[t.origin as usize] },
            policy: self.policy_of(t.origin),
            regex: None,
            regex_host: false,
            canary: None,
            host_tls: false,
            fallback: self.fallback_of(t.origin),
        }
    }

    /// Where requests go that no host's paths or default backend took.
    pub(crate) fn fallback(&self) -> Option<Route<'_>> {
        if let Some(t) = self.catch_all {
            return Some(self.default_match(t));
        }
        self.controller_default.map(|b| self.controller_match(b))
    }

    fn controller_match(&self, backend: u32) -> Route<'_> {
        Route {
            id: RouteId(Id::Controller(backend)),
            backend: &self.backends[backend as usize],
            matched_by: MatchedBy::ControllerDefault,
            policy: &self.no_policy,
            regex: None,
            regex_host: false,
            canary: None,
            host_tls: false,
            fallback: None,
        }
    }

    /// The controller's default backend (`--default-backend-service`), if any.
    pub fn default_backend(&self) -> Option<&Backend> {
        self.backends.get(self.controller_default? as usize)
    }

    /// The TLS SNI map compiled with this table.
    pub fn tls(&self) -> &TlsMap {
        &self.tls
    }

    /// Every backend the table can route to, including default backends.
    pub fn backends(&self) -> impl ExactSizeIterator<Item = &Backend> {
        self.backends.iter()
    }

    /// A hash of what the table routes (hosts and paths, backends, TLS entries, stream
    /// services): tables built from the same input hash alike, a change shows
    /// (ingress-nginx's `config_hash`).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = foldhash::fast::FixedState::default().build_hasher();
        self.arena.hash(&mut h);
        self.routes.len().hash(&mut h);
        for b in &self.backends {
            b.key.hash(&mut h);
        }
        for e in self.tls.entries() {
            (e.host.to_string(), &e.certificate).hash(&mut h);
        }
        for s in &self.streams {
            s.service.hash(&mut h);
        }
        h.finish()
    }

    /// The TCP and UDP services, sorted by protocol and port.
    pub fn streams(&self) -> &[StreamRoute] {
        &self.streams
    }

    /// The stream service on `protocol` and `port`, if there is one.
    pub fn stream(&self, protocol: StreamProtocol, port: u16) -> Option<&StreamRoute> {
        self.streams
            .binary_search_by_key(&(protocol, port), |s| (s.service.protocol, s.service.port))
            .ok()
            .and_then(|i| self.streams.get(i))
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
