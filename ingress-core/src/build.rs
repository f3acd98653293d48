//! The builder: validates Ingress-like input and compiles it into a [`RouteTable`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::path::{self, MatchKind};
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::table::{CompiledRoute, HostEntry, Shadowed, Span, Target};
use crate::tls::TlsEntry;
use crate::{
    Backend, BackendRef, CertificatePem, CertificateRef, EndpointStore, Field, HostPattern, Ingress, Origin,
    PathType, PortRef, Reason, Rejection, RouteTable, Service, ServicePort, TlsMap,
};

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
    ingresses: Vec<Ingress>,
    services: HashMap<(String, String), Vec<ServicePort>>,
    default_backend: Option<BackendRef>,
    default_certificate: Option<CertificateRef>,
    certificates: HashMap<CertificateRef, Arc<CertificatePem>>,
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

    /// Adds an Ingress.
    pub fn ingress(&mut self, ingress: Ingress) -> &mut Self {
        self.ingresses.push(ingress);
        self
    }

    /// Declares a Service, so backends naming it resolve named ports to numbers and refer to
    /// ports it has. Backends of undeclared Services are kept as written.
    pub fn service(&mut self, service: Service) -> &mut Self {
        self.services.insert((service.namespace, service.name), service.ports);
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

    /// Compiles the table. Never fails as a whole: invalid or conflicting rules are left out
    /// and listed in [`Built::rejected`]. Backends get their endpoint slots from `endpoints`,
    /// creating empty ones for backends it has not heard of.
    pub fn build(mut self, endpoints: &mut EndpointStore) -> Built {
        // Oldest first: the first rule to claim a (host, path, kind) wins.
        self.ingresses.sort_by(|a, b| a.origin.cmp(&b.origin));
        let mut state = State::new(endpoints);
        if let Some(b) = &self.default_backend {
            state.controller_default = Some(state.backend(b));
        }
        for ingress in &self.ingresses {
            state.add_ingress(ingress, &self.services);
        }
        if let Some(cert) = self.default_certificate {
            state.tls.default = Some(TlsEntry { host: HostPattern::Any, certificate: cert, origin: None });
        }
        state.tls.material = self.certificates;
        state.finish()
    }
}

/// Resolves a backend's port against the declared Services.
fn resolve(
    backend: &BackendRef,
    services: &HashMap<(String, String), Vec<ServicePort>>,
) -> Result<BackendRef, Reason> {
    let Some(ports) = services.get(&(backend.namespace.clone(), backend.service.clone())) else {
        return Ok(backend.clone());
    };
    let found = match &backend.port {
        PortRef::Number(n) => ports.iter().find(|p| p.port == *n),
        PortRef::Name(name) => ports.iter().find(|p| p.name.as_deref() == Some(name.as_str())),
    };
    match (found, &backend.port) {
        (Some(p), _) => Ok(BackendRef { port: PortRef::Number(p.port), ..backend.clone() }),
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

/// A path rule accepted so far, before sorting and before its path moves into the arena.
struct PendingRoute {
    path: Box<str>,
    kind: MatchKind,
    path_type: PathType,
    backend: u32,
    origin: u32,
    rule: u32,
    index: u32,
}

impl PendingRoute {
    fn field(&self) -> Field {
        Field::Path { rule: self.rule, path: self.index }
    }
}

/// The order of routes within a host: longest path first, `Exact` before `Prefix` at equal
/// length, then the older Ingress, then the order written. This one comparison is the whole of
/// path precedence.
fn precedence(a: &PendingRoute, b: &PendingRoute, origins: &[Origin]) -> Ordering {
    let key = |r: &PendingRoute| (Reverse(r.path.len()), r.kind, r.path_type);
    key(a)
        .cmp(&key(b))
        .then_with(|| origins[a.origin as usize].cmp(&origins[b.origin as usize]))
        .then_with(|| (a.rule, a.index).cmp(&(b.rule, b.index)))
}

#[derive(Default)]
struct HostAcc {
    routes: Vec<PendingRoute>,
    /// (kind, compiled path) → index in `routes`: the conflict key.
    claimed: HashMap<(MatchKind, Box<str>), usize>,
    default: Option<Target>,
    shadowed: Vec<(PendingRoute, usize)>,
}

struct State<'e> {
    endpoints: &'e mut EndpointStore,
    backend_index: HashMap<Arc<BackendRef>, u32>,
    backends: Vec<Backend>,
    origins: Vec<Origin>,
    hosts: BTreeMap<HostPattern, HostAcc>,
    catch_all: Option<(Target, Field)>,
    controller_default: Option<u32>,
    tls: TlsMap,
    tls_claims: HashMap<HostPattern, (u32, Field)>,
    rejected: Vec<Rejection>,
}

fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'e> State<'e> {
    fn new(endpoints: &'e mut EndpointStore) -> Self {
        Self {
            endpoints,
            backend_index: HashMap::new(),
            backends: Vec::new(),
            origins: Vec::new(),
            hosts: BTreeMap::new(),
            catch_all: None,
            controller_default: None,
            tls: TlsMap::default(),
            tls_claims: HashMap::new(),
            rejected: Vec::new(),
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

    fn reject(&mut self, origin: &Origin, field: Field, reason: Reason) {
        self.rejected.push(Rejection { origin: origin.clone(), field, reason });
    }

    fn add_ingress(&mut self, ing: &Ingress, services: &HashMap<(String, String), Vec<ServicePort>>) {
        if ing.rules.is_empty() && ing.default_backend.is_none() {
            self.reject(&ing.origin, Field::Object, Reason::Empty);
            return;
        }
        let origin = index(self.origins.len());
        self.origins.push(ing.origin.clone());

        let default = match ing.default_backend.as_ref().map(|b| resolve(b, services)) {
            None => None,
            Some(Ok(b)) => Some(Target { backend: self.backend(&b), origin }),
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

        let mut rule_hosts = Vec::new();
        for (ri, rule) in ing.rules.iter().enumerate() {
            let ri = index(ri);
            let pattern = match HostPattern::parse(rule.host.as_deref()) {
                Ok(p) => p,
                Err(why) => {
                    let host = rule.host.clone().unwrap_or_default();
                    self.reject(&ing.origin, Field::Host { rule: ri }, Reason::InvalidHost { host, why });
                    continue;
                }
            };
            rule_hosts.push(pattern.clone());
            let acc = self.hosts.entry(pattern.clone()).or_default();
            if acc.default.is_none() {
                acc.default = default;
            }
            for (pi, p) in rule.paths.iter().enumerate() {
                let field = Field::Path { rule: ri, path: index(pi) };
                let compiled = match path::compile(&p.path, p.path_type) {
                    Ok(c) => c,
                    Err(why) => {
                        self.reject(&ing.origin, field, Reason::InvalidPath { path: p.path.clone(), why });
                        continue;
                    }
                };
                let backend = match resolve(&p.backend, services) {
                    Ok(b) => self.backend(&b),
                    Err(reason) => {
                        self.reject(&ing.origin, field, reason);
                        continue;
                    }
                };
                let kind = MatchKind::of(p.path_type);
                let route = PendingRoute {
                    path: compiled.into_boxed_str(),
                    kind,
                    path_type: p.path_type,
                    backend,
                    origin,
                    rule: ri,
                    index: index(pi),
                };
                let acc = self.hosts.entry(pattern.clone()).or_default();
                let key = (kind, route.path.clone());
                if let Some(&winner) = acc.claimed.get(&key) {
                    let w = &acc.routes[winner];
                    let reason = Reason::Duplicate {
                        winner: self.origins[w.origin as usize].clone(),
                        winner_field: w.field(),
                    };
                    acc.shadowed.push((route, winner));
                    self.reject(&ing.origin, field, reason);
                } else {
                    acc.claimed.insert(key, acc.routes.len());
                    acc.routes.push(route);
                }
            }
        }
        self.add_tls(ing, &rule_hosts);
    }

    fn add_tls(&mut self, ing: &Ingress, rule_hosts: &[HostPattern]) {
        for (ti, entry) in ing.tls.iter().enumerate() {
            let ti = index(ti);
            let hosts: Vec<(Field, TlsHost)> = if entry.hosts.is_empty() {
                rule_hosts
                    .iter()
                    .filter(|h| **h != HostPattern::Any)
                    .map(|h| (Field::Tls { entry: ti, host: None }, Ok(h.clone())))
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

    fn finish(self) -> Built {
        let route_count: usize = self.hosts.values().map(|h| h.routes.len()).sum();
        let arena_len: usize = self
            .hosts
            .iter()
            .map(|(p, h)| {
                p.to_string().len()
                    + h.routes
                        .iter()
                        .chain(h.shadowed.iter().map(|s| &s.0))
                        .map(|r| r.path.len())
                        .sum::<usize>()
            })
            .sum();
        let mut arena = String::with_capacity(arena_len);
        let mut push = |text: &str| {
            let span = Span { start: index(arena.len()), len: index(text.len()) };
            arena.push_str(text);
            span
        };
        let hasher = RandomState::default();
        let mut exact = HashTable::with_capacity(self.hosts.len());
        let mut wildcard = HashTable::new();
        let mut any = None;
        let mut hosts = Vec::with_capacity(self.hosts.len());
        let mut names = Vec::with_capacity(self.hosts.len());
        let mut routes = Vec::with_capacity(route_count);
        let mut shadowed = Vec::new();
        for (pattern, mut acc) in self.hosts {
            let host = index(hosts.len());
            let (kind, name) = match &pattern {
                HostPattern::Exact(h) => (0, h.as_str()),
                HostPattern::Wildcard(s) => (1, s.as_str()),
                HostPattern::Any => (2, ""),
            };
            let name_span = push(name);
            let start = index(routes.len());
            // Sort positions, not routes: shadowed entries refer to positions.
            let mut order: Vec<usize> = (0..acc.routes.len()).collect();
            order.sort_by(|&a, &b| precedence(&acc.routes[a], &acc.routes[b], &self.origins));
            let mut new_pos = vec![0u32; acc.routes.len()];
            for (pos, &old) in order.iter().enumerate() {
                new_pos[old] = start + index(pos);
                let r = &acc.routes[old];
                routes.push(compiled(r, push(&r.path)));
            }
            for (r, winner) in acc.shadowed.drain(..) {
                shadowed.push(Shadowed { host, route: compiled(&r, push(&r.path)), winner: new_pos[winner] });
            }
            names.push(name.to_owned());
            let entry = HostEntry {
                id: host,
                kind,
                name: name_span,
                routes: (start, index(routes.len())),
                default: acc.default,
            };
            let rehash = |h: &HostEntry| hasher.hash_one(names[h.id as usize].as_str());
            match kind {
                0 => {
                    exact.insert_unique(hasher.hash_one(name), entry, rehash);
                }
                1 => {
                    wildcard.insert_unique(hasher.hash_one(name), entry, rehash);
                }
                _ => any = Some(host),
            }
            hosts.push(entry);
        }
        Built {
            table: RouteTable {
                hasher,
                exact,
                wildcard,
                any,
                arena: arena.into_boxed_str(),
                hosts,
                routes,
                backends: self.backends,
                origins: self.origins,
                catch_all: self.catch_all.map(|(t, _)| t),
                controller_default: self.controller_default,
                tls: self.tls,
                shadowed,
            },
            rejected: self.rejected,
        }
    }
}

fn compiled(r: &PendingRoute, path: Span) -> CompiledRoute {
    CompiledRoute {
        path,
        backend: r.backend,
        origin: r.origin,
        rule: r.rule,
        index: r.index,
        kind: r.kind,
        path_type: r.path_type,
    }
}
