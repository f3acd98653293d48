//! The builder: validates Ingress-like input and compiles it into a [`RouteTable`].

mod compile;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::path::{self, MatchKind};
use crate::table::Target;
use crate::tls::TlsEntry;
use crate::{
    Backend, BackendRef, CertificatePem, CertificateRef, EndpointStore, Field, HostPattern, Ingress, Origin,
    PathType, PortRef, Reason, Rejection, RoutePolicy, RouteTable, Service, ServicePort, StreamProtocol,
    StreamService, TlsMap,
};

/// Declared Services: namespace → name → ports (nested so lookups borrow, never allocate).
type Services = HashMap<String, HashMap<String, Vec<ServicePort>>>;

/// Collects Ingresses and controller-wide settings, then compiles them with [`build`].
///
/// The order in which Ingresses are added never changes the result: conflicts are settled by
/// age (see [`Origin`]).
///
/// [`build`]: TableBuilder::build
///
/// # Examples
///
/// ```
/// use ingress_core::{BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder};
///
/// let mut builder = TableBuilder::new();
/// builder
///     .ingress(Ingress::new(Origin::new("default", "ok"))
///         .rule(HostRule::host("ok.example.com").path(PathRule::prefix("/", BackendRef::new("default", "ok", 80)))))
///     .ingress(Ingress::new(Origin::new("default", "broken"))
///         .rule(HostRule::host("bad..host").path(PathRule::prefix("/", BackendRef::new("default", "x", 80)))))
///     .default_backend(BackendRef::new("ingress-ferry", "default-http-backend", 80));
/// let built = builder.build(&mut EndpointStore::new());
///
/// // The broken Ingress is reported, the good one still routes.
/// assert_eq!(built.rejected.len(), 1);
/// assert_eq!(built.rejected[0].to_string(),
///     "ingress default/broken spec.rules[0].host: invalid host `bad..host`: must not contain empty labels (`..`, or a leading or trailing dot)");
/// assert!(built.table.lookup("ok.example.com", "/").is_some());
/// ```
#[derive(Debug, Default, Clone)]
pub struct TableBuilder {
    ingresses: Vec<Arc<Ingress>>,
    services: Services,
    default_backend: Option<BackendRef>,
    default_certificate: Option<CertificateRef>,
    certificates: HashMap<CertificateRef, Arc<CertificatePem>>,
    /// TCP and UDP services by protocol and port.
    streams: BTreeMap<(StreamProtocol, u16), StreamService>,
}

/// What [`TableBuilder::build`] returns: a table that always exists, and what was left out.
#[derive(Debug)]
pub struct Built {
    /// The compiled table.
    pub table: RouteTable,
    /// Every rule that was refused, with origin, field and reason.
    pub rejected: Vec<Rejection>,
}

impl TableBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an Ingress, owned or shared (a caller that keeps its Ingresses between builds
    /// passes them as `Arc`s, so adding one copies nothing).
    pub fn ingress(&mut self, ingress: impl Into<Arc<Ingress>>) -> &mut Self {
        self.ingresses.push(ingress.into());
        self
    }

    /// Declares a Service, so backends naming it resolve named ports to numbers and refer to
    /// ports it has. Backends of undeclared Services are kept as written.
    pub fn service(&mut self, service: Service) -> &mut Self {
        self.services.entry(service.namespace).or_default().insert(service.name, service.ports);
        self
    }

    /// The controller-wide default backend (`--default-backend-service`).
    pub fn default_backend(&mut self, backend: BackendRef) -> &mut Self {
        self.default_backend = Some(backend);
        self
    }

    /// The certificate for TLS handshakes no Ingress claims (`--default-ssl-certificate`).
    pub fn default_certificate(&mut self, certificate: CertificateRef) -> &mut Self {
        self.default_certificate = Some(certificate);
        self
    }

    /// Registers the PEM material of a certificate, so the table carries it to the proxy.
    /// Whoever feeds the builder validates it first: a TLS entry whose Secret is invalid should
    /// be left out, so its hosts get the default certificate.
    pub fn certificate(&mut self, certificate: CertificateRef, pem: CertificatePem) -> &mut Self {
        self.certificates.insert(certificate, Arc::new(pem));
        self
    }

    /// Adds a TCP or UDP service (`tcp-services`, `udp-services`). A later service on the same
    /// protocol and port replaces the earlier one.
    pub fn stream(&mut self, service: StreamService) -> &mut Self {
        self.streams.insert((service.protocol, service.port), service);
        self
    }

    /// Compiles the table. Never fails as a whole: invalid or conflicting rules are left out
    /// and listed in [`Built::rejected`]. Backends get their endpoint slots from `endpoints`,
    /// creating empty ones for backends it has not heard of.
    ///
    /// The builder is only read, so it can be kept (to add to it and build again) or dropped
    /// off the hot path.
    pub fn build(&self, endpoints: &mut EndpointStore) -> Built {
        // Oldest first, so origin indices order Ingresses by age and the first rule to claim a
        // (host, path, kind) is the oldest.
        let mut ingresses: Vec<&Ingress> = self.ingresses.iter().map(|i| &**i).collect();
        ingresses.sort_by(|a, b| a.origin.cmp(&b.origin));
        let paths: usize = ingresses.iter().flat_map(|i| &i.rules).map(|r| r.paths.len()).sum();
        let mut state = State::new(endpoints, ingresses.len(), paths);
        if let Some(b) = &self.default_backend {
            state.controller_default = Some(state.backend(b));
        }
        let (canaries, mains): (Vec<&Ingress>, Vec<&Ingress>) =
            ingresses.into_iter().partition(|i| i.canary.is_some());
        for ingress in mains {
            state.add_ingress(ingress, &self.services);
        }
        // Canaries after every route exists, oldest first: each path splits the route it names.
        for ingress in canaries {
            state.add_canary(ingress, &self.services);
        }
        if let Some(cert) = &self.default_certificate {
            state.tls.default =
                Some(TlsEntry { host: HostPattern::Any, certificate: cert.clone(), origin: None });
        }
        state.tls.material = self.certificates.clone();
        for service in self.streams.values() {
            let backend = state.backend(&service.backend);
            state.streams.push((service.clone(), backend));
        }
        state.finish()
    }
}

/// Resolves a backend's port against the declared Services: `Ok(None)` keeps the backend as
/// written (undeclared Service, or already the port number), `Ok(Some)` is the named port
/// resolved to its number.
fn resolve(backend: &BackendRef, services: &Services) -> Result<Option<BackendRef>, Reason> {
    let Some(ports) = services.get(&backend.namespace).and_then(|s| s.get(&backend.service)) else {
        return Ok(None);
    };
    let found = match &backend.port {
        PortRef::Number(n) => ports.iter().find(|p| p.port == *n),
        PortRef::Name(name) => ports.iter().find(|p| p.name.as_deref() == Some(name.as_str())),
    };
    match (found, &backend.port) {
        (Some(_), PortRef::Number(_)) => Ok(None),
        (Some(p), PortRef::Name(_)) => {
            Ok(Some(BackendRef { port: PortRef::Number(p.port), ..backend.clone() }))
        }
        (None, PortRef::Number(n)) => Err(Reason::UnknownPortNumber {
            namespace: backend.namespace.clone(),
            service: backend.service.clone(),
            port: *n,
        }),
        (None, PortRef::Name(name)) => Err(Reason::UnknownPortName {
            namespace: backend.namespace.clone(),
            service: backend.service.clone(),
            port: name.clone(),
        }),
    }
}

/// A TLS host as parsed: the pattern, or the host as written and what is wrong with it.
type TlsHost = Result<HostPattern, (String, String)>;

/// A path rule accepted so far. Its path borrows the input (compiling a path only trims it), so
/// accepting a rule allocates nothing.
struct PendingRoute<'a> {
    /// The path as matched outside regex mode (a `Prefix` path without its trailing slash).
    path: &'a str,
    /// The path as written: the regex in regex mode.
    written: &'a str,
    /// Its Ingress asks for regex mode on its hosts.
    regex: bool,
    /// The canary splitting this route's traffic, by index in `State::canaries`.
    canary: Option<u32>,
    kind: MatchKind,
    path_type: PathType,
    backend: u32,
    /// Index in `State::origins`, which are in age order: comparing indices compares ages.
    origin: u32,
    rule: u32,
    index: u32,
}

impl PendingRoute<'_> {
    fn field(&self) -> Field {
        Field::Path { rule: self.rule, path: self.index }
    }
}

/// Everything known about one host while building.
struct HostAcc<'a> {
    pattern: HostPattern,
    routes: Vec<PendingRoute<'a>>,
    default: Option<Target>,
    /// An Ingress with a TLS section has a rule for this host.
    tls: bool,
    /// The host's aliases (`server-alias`) and the Ingress that named them first (by origin).
    aliases: Option<(u32, &'a [String])>,
    /// An Ingress with a rule for this host asks for `from-to-www-redirect`.
    www_redirect: bool,
    /// The first Ingress (by origin) with a rule for this host that asks for `ssl-passthrough`.
    passthrough: Option<u32>,
    /// The client certificate settings of the first Ingress of this host that has them.
    client_auth: Option<std::sync::Arc<crate::ClientAuth>>,
}

struct State<'a, 'e> {
    endpoints: &'e mut EndpointStore,
    backend_index: HashMap<Arc<BackendRef>, u32, RandomState>,
    backends: Vec<Backend>,
    origins: Vec<Origin>,
    /// The policy of each origin, by the same index.
    policies: Vec<Arc<RoutePolicy>>,
    host_index: HashMap<HostPattern, u32, RandomState>,
    hosts: Vec<HostAcc<'a>>,
    catch_all: Option<(Target, Field)>,
    controller_default: Option<u32>,
    tls: TlsMap,
    tls_claims: HashMap<HostPattern, (u32, Field)>,
    rejected: Vec<Rejection>,
    canaries: Vec<crate::table::CompiledCanary>,
    /// The fallback backend of each origin (`default-backend`), by the same index.
    fallbacks: Vec<Option<u32>>,
    /// The stream services with their backend index, by protocol and port.
    streams: Vec<(StreamService, u32)>,
}

fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a, 'e> State<'a, 'e> {
    /// A state sized for `ingresses` Ingresses with `paths` paths in all (at most that many
    /// hosts and backends), so building never re-hashes.
    fn new(endpoints: &'e mut EndpointStore, ingresses: usize, paths: usize) -> Self {
        let hosts = ingresses.max(paths / 4);
        Self {
            endpoints,
            backend_index: HashMap::with_capacity_and_hasher(hosts, RandomState::default()),
            backends: Vec::with_capacity(hosts),
            origins: Vec::with_capacity(ingresses),
            policies: Vec::with_capacity(ingresses),
            host_index: HashMap::with_capacity_and_hasher(hosts, RandomState::default()),
            hosts: Vec::with_capacity(hosts),
            catch_all: None,
            controller_default: None,
            tls: TlsMap::default(),
            tls_claims: HashMap::new(),
            rejected: Vec::new(),
            canaries: Vec::new(),
            fallbacks: Vec::new(),
            streams: Vec::new(),
        }
    }

    fn backend(&mut self, key: &BackendRef) -> u32 {
        if let Some(&i) = self.backend_index.get(key) {
            return i;
        }
        let i = index(self.backends.len());
        let (key, endpoints) = self.endpoints.slot(key);
        self.backends.push(Backend { key: Arc::clone(&key), endpoints });
        self.backend_index.insert(key, i);
        i
    }

    /// The backend index for a reference as written, resolving named ports.
    fn resolved_backend(&mut self, backend: &BackendRef, services: &Services) -> Result<u32, Reason> {
        Ok(match resolve(backend, services)? {
            None => self.backend(backend),
            Some(resolved) => self.backend(&resolved),
        })
    }

    fn host(&mut self, pattern: HostPattern, paths: usize) -> u32 {
        if let Some(&h) = self.host_index.get(&pattern) {
            return h;
        }
        let h = index(self.hosts.len());
        self.host_index.insert(pattern.clone(), h);
        self.hosts.push(HostAcc {
            pattern,
            routes: Vec::with_capacity(paths),
            default: None,
            tls: false,
            aliases: None,
            www_redirect: false,
            passthrough: None,
            client_auth: None,
        });
        h
    }

    fn reject(&mut self, origin: &Origin, field: Field, reason: Reason) {
        self.rejected.push(Rejection { origin: origin.clone(), field, reason });
    }

    fn add_ingress(&mut self, ing: &'a Ingress, services: &Services) {
        if ing.rules.is_empty() && ing.default_backend.is_none() {
            self.reject(&ing.origin, Field::Object, Reason::Empty);
            return;
        }
        let origin = index(self.origins.len());
        self.origins.push(ing.origin.clone());
        self.policies.push(Arc::clone(&ing.policy));
        let fallback = match ing.fallback.as_ref().map(|b| self.resolved_backend(b, services)) {
            None => None,
            Some(Ok(backend)) => Some(backend),
            Some(Err(reason)) => {
                self.reject(&ing.origin, Field::Object, reason);
                None
            }
        };
        self.fallbacks.push(fallback);

        let default = match ing.default_backend.as_ref().map(|b| self.resolved_backend(b, services)) {
            None => None,
            Some(Ok(backend)) => Some(Target { backend, origin }),
            Some(Err(reason)) => {
                self.reject(&ing.origin, Field::DefaultBackend, reason);
                None
            }
        };
        if let (true, Some(t)) = (ing.rules.is_empty(), default) {
            match self.catch_all {
                None => self.catch_all = Some((t, Field::DefaultBackend)),
                Some((winner, winner_field)) => {
                    let winner = self.origins[winner.origin as usize].clone();
                    self.reject(
                        &ing.origin,
                        Field::DefaultBackend,
                        Reason::Duplicate { winner, winner_field },
                    );
                }
            }
        }

        let mut rule_hosts = Vec::with_capacity(ing.rules.len());
        // An Ingress names few Services, many times: compare with the ones it already named
        // before hashing (building hashes nothing else per path).
        let mut named: Vec<(&'a BackendRef, u32)> = Vec::new();
        for (ri, rule) in ing.rules.iter().enumerate() {
            let ri = index(ri);
            let host = match HostPattern::parse(rule.host.as_deref()) {
                Ok(p) => self.host(p, rule.paths.len()),
                Err(why) => {
                    let host = rule.host.clone().unwrap_or_default();
                    self.reject(&ing.origin, Field::Host { rule: ri }, Reason::InvalidHost { host, why });
                    continue;
                }
            };
            rule_hosts.push(host);
            let acc = &mut self.hosts[host as usize];
            if acc.default.is_none() {
                acc.default = default;
            }
            for (pi, p) in rule.paths.iter().enumerate() {
                let field = Field::Path { rule: ri, path: index(pi) };
                // A path that asks for regex mode (`use-regex`, or a rewrite to something else)
                // may hold regex syntax (`?`): it is checked as a regex when its host is built.
                let regex = ing.policy.use_regex
                    || ing.policy.rewrite_target.as_ref().is_some_and(|t| t.as_str() != p.path);
                let compiled = match path::compile(&p.path, p.path_type, regex) {
                    Ok(c) => c,
                    Err(why) => {
                        self.reject(&ing.origin, field, Reason::InvalidPath { path: p.path.clone(), why });
                        continue;
                    }
                };
                let cached = named.iter().find(|(b, _)| **b == p.backend).map(|&(_, i)| i);
                let backend = match cached.map_or_else(|| self.resolved_backend(&p.backend, services), Ok) {
                    Ok(b) => b,
                    Err(reason) => {
                        self.reject(&ing.origin, field, reason);
                        continue;
                    }
                };
                if cached.is_none() {
                    named.push((&p.backend, backend));
                }
                self.hosts[host as usize].routes.push(PendingRoute {
                    path: compiled,
                    written: if p.path.is_empty() { "/" } else { &p.path },
                    regex,
                    canary: None,
                    kind: MatchKind::of(p.path_type),
                    path_type: p.path_type,
                    backend,
                    origin,
                    rule: ri,
                    index: index(pi),
                });
            }
        }
        let tls = ing.tls_section || !ing.tls.is_empty();
        for &h in &rule_hosts {
            let acc = &mut self.hosts[h as usize];
            acc.tls |= tls;
            acc.www_redirect |= ing.www_redirect;
            if ing.ssl_passthrough && acc.passthrough.is_none() {
                acc.passthrough = Some(origin);
            }
            if acc.client_auth.is_none() {
                acc.client_auth.clone_from(&ing.client_auth);
            }
            match acc.aliases {
                _ if ing.aliases.is_empty() => {}
                None => acc.aliases = Some((origin, &ing.aliases)),
                // ingress-nginx keeps the first Ingress's aliases for a host, and skips the rest.
                Some((first, _)) if first != origin => {
                    let why = format!(
                        "host `{}` already has the aliases of {}, which takes precedence (older, or first)",
                        acc.pattern, self.origins[first as usize]
                    );
                    for alias in &ing.aliases {
                        self.reject(
                            &ing.origin,
                            Field::Annotation("server-alias"),
                            Reason::Alias { alias: alias.clone(), why: why.clone() },
                        );
                    }
                }
                Some(_) => {}
            }
        }
        self.add_tls(ing, &rule_hosts);
    }

    /// A canary Ingress: each of its paths becomes the alternative backend of the route with
    /// the same host, path and path type; the rest of it routes nothing.
    fn add_canary(&mut self, ing: &'a Ingress, services: &Services) {
        let Some(rule) = &ing.canary else { return };
        let origin = index(self.origins.len());
        self.origins.push(ing.origin.clone());
        self.policies.push(Arc::clone(&ing.policy));
        self.fallbacks.push(None);
        let pattern = match rule.header_pattern.as_deref().map(crate::canary::header_pattern).transpose() {
            Ok(pattern) => pattern,
            Err(why) => {
                self.reject(
                    &ing.origin,
                    Field::Object,
                    Reason::Canary { why: format!("canary-by-header-pattern {why}") },
                );
                return;
            }
        };
        if ing.default_backend.is_some() {
            let why = "a canary's default backend is not supported (only its paths split traffic)".to_owned();
            self.reject(&ing.origin, Field::DefaultBackend, Reason::Canary { why });
        }
        for (ri, r) in ing.rules.iter().enumerate() {
            let ri = index(ri);
            let host =
                HostPattern::parse(r.host.as_deref()).ok().and_then(|p| self.host_index.get(&p).copied());
            for (pi, p) in r.paths.iter().enumerate() {
                let field = Field::Path { rule: ri, path: index(pi) };
                let written = if p.path.is_empty() { "/" } else { p.path.as_str() };
                let found = host.and_then(|h| {
                    let routes = &self.hosts[h as usize].routes;
                    routes
                        .iter()
                        .position(|m| m.written == written && m.path_type == p.path_type)
                        .map(|i| (h, i))
                });
                let Some((h, i)) = found else {
                    let why = format!(
                        "no other Ingress routes host `{}`, path `{written}` ({}): nothing to split",
                        r.host.as_deref().unwrap_or("*"),
                        p.path_type
                    );
                    self.reject(&ing.origin, field, Reason::Canary { why });
                    continue;
                };
                if let Some(other) = self.hosts[h as usize].routes[i].canary {
                    let winner = self.origins[self.canaries[other as usize].origin as usize].clone();
                    let why = format!("{winner} already splits this route (the older canary wins)");
                    self.reject(&ing.origin, field, Reason::Canary { why });
                    continue;
                }
                let backend = match self.resolved_backend(&p.backend, services) {
                    Ok(b) => b,
                    Err(reason) => {
                        self.reject(&ing.origin, field, reason);
                        continue;
                    }
                };
                let canary = index(self.canaries.len());
                self.canaries.push(crate::table::CompiledCanary {
                    backend,
                    origin,
                    rule: rule.clone(),
                    pattern: pattern.clone(),
                });
                self.hosts[h as usize].routes[i].canary = Some(canary);
            }
        }
    }

    fn add_tls(&mut self, ing: &Ingress, rule_hosts: &[u32]) {
        for (ti, entry) in ing.tls.iter().enumerate() {
            let ti = index(ti);
            let hosts: Vec<(Field, TlsHost)> = if entry.hosts.is_empty() {
                rule_hosts
                    .iter()
                    .map(|&h| &self.hosts[h as usize].pattern)
                    .filter(|p| **p != HostPattern::Any)
                    .map(|p| (Field::Tls { entry: ti, host: None }, Ok(p.clone())))
                    .collect()
            } else {
                entry
                    .hosts
                    .iter()
                    .enumerate()
                    .map(|(hi, h)| {
                        let parsed = match HostPattern::parse(Some(h)) {
                            Ok(HostPattern::Any) => Err((h.clone(), "must not be empty".to_owned())),
                            Ok(p) => Ok(p),
                            Err(why) => Err((h.clone(), why)),
                        };
                        (Field::Tls { entry: ti, host: Some(index(hi)) }, parsed)
                    })
                    .collect()
            };
            for (field, parsed) in hosts {
                let pattern = match parsed {
                    Ok(p) => p,
                    Err((host, why)) => {
                        self.reject(&ing.origin, field, Reason::InvalidHost { host, why });
                        continue;
                    }
                };
                if let Some(&(winner, winner_field)) = self.tls_claims.get(&pattern) {
                    let same = self.tls.entries[winner as usize].certificate == entry.certificate;
                    if !same {
                        let winner = self.tls.entries[winner as usize]
                            .origin
                            .clone()
                            .unwrap_or_else(|| ing.origin.clone());
                        self.reject(&ing.origin, field, Reason::Duplicate { winner, winner_field });
                    }
                    continue;
                }
                self.tls_claims.insert(pattern.clone(), (index(self.tls.entries.len()), field));
                self.tls.insert(TlsEntry {
                    host: pattern,
                    certificate: entry.certificate.clone(),
                    origin: Some(ing.origin.clone()),
                });
            }
        }
    }
}
