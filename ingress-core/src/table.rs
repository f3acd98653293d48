//! The compiled, immutable route table and its allocation-free lookup.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

mod host;
mod index;
mod keys;

pub(crate) use host::{Aliases, CompiledCanary, CompiledRoute, HostBlock, Member, Shadowed, Span, Target};
pub(crate) use index::{HostIndex, IndexWriter};
pub(crate) use keys::{MAX_TRAILING, push as push_key};

use crate::host::{HostBuf, eq_bytes, lowercase_into, trim_host, wildcard_suffix};
use crate::path;
use crate::{
    BackendRef, EndpointSet, EndpointSlot, Field, Origin, PathType, RoutePolicy, StreamProtocol, StreamRoute,
    TlsMap,
};

/// A backend as the table knows it: which Service port, and its live endpoints.
#[derive(Debug, Clone)]
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
        /// The rule's path as written in the Ingress (`/` for an empty one), which is what
        /// ingress-nginx's request series label the request with.
        written: &'t str,
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
pub struct RouteId(pub(crate) Id);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Id {
    Path { host: u32, route: u32 },
    Default { host: u32 },
    CatchAll,
    Controller,
}

fn index_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
    /// The hosts by name and by id, shared with the tables before and after while unchanged
    /// (see [`IndexWriter`]).
    pub(crate) index: Arc<HostIndex>,
    /// The host of rules without a host, by id.
    pub(crate) any: Option<u32>,
    /// The block of the Ingress without rules whose default backend takes every request no
    /// host took.
    pub(crate) catch_all: Option<Arc<HostBlock>>,
    /// The controller-wide default backend (`--default-backend-service`).
    pub(crate) controller_default: Option<Backend>,
    /// The policy of routes no Ingress defined (the controller's default backend).
    pub(crate) no_policy: RoutePolicy,
    pub(crate) tls: Arc<TlsMap>,
    /// The `www.` twins redirected to their host (`from-to-www-redirect`), by the twin's name.
    pub(crate) redirects: HashTable<HostRedirect>,
    /// The TCP and UDP services, sorted by protocol and port.
    pub(crate) streams: Vec<StreamRoute>,
    /// Whether some host passes TLS through (`ssl-passthrough`).
    pub(crate) has_passthrough: bool,
    /// Whether some host asks for client certificates (`auth-tls-*`).
    pub(crate) has_client_auth: bool,
    /// How many path rules the hosts hold.
    pub(crate) route_count: usize,
    /// How many hosts are served.
    pub(crate) host_count: usize,
}

/// An entry of the host indexes: a host's block, under its own name or an alias.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) block: Arc<HostBlock>,
    /// The host's id (its index in `RouteTable::hosts`).
    pub(crate) id: u32,
    /// The alias this entry stands for (`server-alias`); `None` for the host's own name.
    pub(crate) alias: Option<Box<str>>,
}

impl Slot {
    /// The name the entry is found by.
    #[inline]
    pub(crate) fn name(&self) -> &str {
        match &self.alias {
            Some(alias) => alias,
            None => self.block.name(),
        }
    }
}

/// A `from-to-www-redirect`: requests for `from` are redirected to the host `to`.
#[derive(Debug, Clone)]
pub(crate) struct HostRedirect {
    pub(crate) from: Box<str>,
    pub(crate) to: Arc<HostBlock>,
}

impl RouteTable {
    /// Finds the backend for a request's host (`Host` header or `:authority`, any case, with
    /// or without `:port`) and path (with or without query string). `None` means no route: the
    /// proxy answers with its built-in 404.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Route<'_>> {
        let path = path::strip_query(path);
        if let Some((id, block)) = self.find_host(host) {
            if let Some(i) = keys::first_match(block, path.as_bytes()) {
                return block.route_match(id, index_u32(i));
            }
            if block.default.is_some() {
                return block.default_match(Some(id));
            }
        }
        self.fallback()
    }

    /// The exact host name (lower-case, without port) that `host` (as [`RouteTable::lookup`]
    /// takes it) is, when it is the name of a rule or an alias: `None` for names only a wildcard
    /// or a host-less rule serves. Metrics label requests by host only for these, so clients
    /// cannot grow the label set with made-up names.
    pub fn exact_host(&self, host: &str) -> Option<&str> {
        let (host, upper) = trim_host(host)?;
        let mut buf: HostBuf = [0; 254];
        let host = if upper { lowercase_into(host, &mut buf)? } else { host };
        self.find_in(&self.index.exact, host).map(Slot::name)
    }

    /// Whether `host` (as [`RouteTable::lookup`] takes it) is one of the hosts served over TLS:
    /// a host (exact or wildcard) that an Ingress with a TLS section has a rule for, whatever
    /// its certificate (ingress-nginx's "server with a certificate"). Plain HTTP requests for
    /// these hosts are redirected to HTTPS under `ssl-redirect`.
    pub fn serves_tls(&self, host: &str) -> bool {
        self.find_host(host).is_some_and(|(_, h)| h.tls)
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
        self.redirects.find(hash, |r| eq_bytes(r.from.as_bytes(), host.as_bytes())).map(|r| r.to.name())
    }

    /// The backend that TLS connections for `server_name` (a ClientHello's SNI, any case) are
    /// passed to unterminated, when its host (exact, wildcard or `server-alias`) asks for
    /// `ssl-passthrough`: the backend of the host's `/` path.
    pub fn passthrough(&self, server_name: &str) -> Option<&Backend> {
        if !self.has_passthrough || server_name.is_empty() {
            return None;
        }
        let (_, block) = self.find_host(server_name).filter(|(_, b)| b.kind != 2)?;
        block.backends.get(block.passthrough? as usize)
    }

    /// The client certificate settings of the host `name` (a TLS server name or a request's
    /// host, any case; exact, wildcard or `server-alias`), if it has them (`auth-tls-*`).
    pub fn client_auth(&self, name: &str) -> Option<&std::sync::Arc<crate::ClientAuth>> {
        if !self.has_client_auth || name.is_empty() {
            return None;
        }
        let (_, block) = self.find_host(name).filter(|(_, b)| b.kind != 2)?;
        block.client_auth.as_ref()
    }

    /// Whether any host passes TLS through (`ssl-passthrough`).
    pub fn has_passthrough(&self) -> bool {
        self.has_passthrough
    }

    /// The most specific host matching `host`, with its id.
    pub(crate) fn find_host(&self, host: &str) -> Option<(u32, &HostBlock)> {
        match trim_host(host) {
            Some((host, false)) => self.find_normalized(host),
            Some((host, true)) => self.find_lowered(host),
            None => self.any_host(),
        }
    }

    /// The rare upper-case `Host`: lower-case it in a stack buffer first.
    #[cold]
    fn find_lowered(&self, host: &str) -> Option<(u32, &HostBlock)> {
        let mut buf: HostBuf = [0; 254];
        match lowercase_into(host, &mut buf) {
            Some(host) => self.find_normalized(host),
            None => self.any_host(),
        }
    }

    fn find_normalized(&self, host: &str) -> Option<(u32, &HostBlock)> {
        let index = &*self.index;
        if let Some(s) = self.find_in(&index.exact, host) {
            return Some((s.id, &s.block));
        }
        if !index.wildcard.is_empty()
            && let Some(s) = wildcard_suffix(host).and_then(|s| self.find_in(&index.wildcard, s))
        {
            return Some((s.id, &s.block));
        }
        self.any_host()
    }

    fn any_host(&self) -> Option<(u32, &HostBlock)> {
        let id = self.any?;
        Some((id, self.index.hosts.get(id as usize)?.as_deref()?))
    }

    fn find_in<'t>(&'t self, index: &'t HashTable<Slot>, name: &str) -> Option<&'t Slot> {
        let hash = self.hasher.hash_one(name);
        index.find(hash, |s| eq_bytes(s.name().as_bytes(), name.as_bytes()))
    }

    /// The route behind a [`RouteId`] of this table (`None` for an id of another table that
    /// is out of this one's range).
    pub fn route(&self, id: RouteId) -> Option<Route<'_>> {
        match id.0 {
            Id::Path { host, route } => {
                self.index.hosts.get(host as usize)?.as_ref()?.route_match(host, route)
            }
            Id::Default { host } => self.index.hosts.get(host as usize)?.as_ref()?.default_match(Some(host)),
            Id::CatchAll => self.catch_all.as_ref()?.default_match(None),
            Id::Controller => self.controller_default.as_ref().map(|b| self.controller_match(b)),
        }
    }

    /// Where requests go that no host's paths or default backend took.
    pub(crate) fn fallback(&self) -> Option<Route<'_>> {
        if let Some(block) = &self.catch_all {
            return block.default_match(None);
        }
        self.controller_default.as_ref().map(|b| self.controller_match(b))
    }

    fn controller_match<'t>(&'t self, backend: &'t Backend) -> Route<'t> {
        Route {
            id: RouteId(Id::Controller),
            backend,
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
        self.controller_default.as_ref()
    }

    /// The TLS SNI map compiled with this table.
    pub fn tls(&self) -> &TlsMap {
        &self.tls
    }

    /// Every backend the table can route to, including default backends: each once per
    /// host that uses it (hosts share endpoint slots, not entries).
    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        let hosts = self.index.hosts.iter().flatten().chain(&self.catch_all).flat_map(|h| h.backends.iter());
        hosts.chain(&self.controller_default).chain(self.streams.iter().map(|s| &s.backend))
    }

    /// A hash of what the table routes (hosts and paths, backends, TLS entries, stream
    /// services): tables built from the same input hash alike, a change shows
    /// (ingress-nginx's `config_hash`).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        // Hosts in any order: each block's hash, summed (as the indexes keep it).
        let hosts = self.index.fingerprint;
        let mut h = foldhash::fast::FixedState::default().build_hasher();
        hosts.hash(&mut h);
        self.catch_all.as_ref().map(|c| c.fingerprint).hash(&mut h);
        self.controller_default.as_ref().map(|b| &*b.key).hash(&mut h);
        self.tls.hosts.fingerprint().hash(&mut h);
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
        self.route_count
    }

    /// How many distinct hosts (exact, wildcard, or "any") the table holds.
    pub fn host_count(&self) -> usize {
        self.host_count
    }
}
