//! What one Ingress contributes to a build on its own: the hosts it has rules for, the Services
//! it names, its TLS claims, and the rejections that concern it as a whole. Computed once per
//! version of the Ingress (and again when a Service it names changes).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::{Services, index, resolve};
use crate::{BackendRef, Field, HostPattern, Ingress, Reason, Rejection};

/// A Service an Ingress names, as one of its backends naming it (shared with the Ingress, not
/// copied): equal, and hashed, by namespace and name only, as the [`ServiceRef`] that finds it.
#[derive(Debug, Clone)]
pub(super) struct ServiceName(Arc<BackendRef>);

impl PartialEq for ServiceName {
    fn eq(&self, other: &Self) -> bool {
        self.0.namespace == other.0.namespace && self.0.service == other.0.service
    }
}

impl Eq for ServiceName {}

impl Hash for ServiceName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        ServiceRef(&self.0.namespace, &self.0.service).hash(state);
    }
}

/// A Service (`namespace`, `name`) to look a [`ServiceName`] up with.
#[derive(Hash)]
pub(super) struct ServiceRef<'a>(pub(super) &'a str, pub(super) &'a str);

impl hashbrown::Equivalent<ServiceName> for ServiceRef<'_> {
    fn equivalent(&self, key: &ServiceName) -> bool {
        self.0 == &*key.0.namespace && self.1 == &*key.0.service
    }
}

/// A host named by a TLS entry of an Ingress, and where.
pub(super) type TlsClaim = (Field, HostPattern);

/// One Ingress as the incremental build keeps it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) ingress: Arc<Ingress>,
    /// The hosts of its rules that parse, each once.
    pub(super) hosts: Vec<HostPattern>,
    /// The Services it names, each once.
    pub(super) services: Vec<ServiceName>,
    /// The hosts its TLS entries claim, in order (none for a canary or an empty Ingress).
    pub(super) tls: Vec<TlsClaim>,
    /// A default backend that resolves and no rules: a candidate for the catch-all.
    pub(super) catch_all: bool,
    /// The rejections that concern the Ingress as a whole.
    pub(super) rejected: Vec<Rejection>,
}

impl Entry {
    /// The entry of `ingress`, against the declared `services`.
    pub(super) fn new(ingress: Arc<Ingress>, services: &Services) -> Self {
        let ing = &*ingress;
        let mut rejected = Vec::new();
        let mut reject =
            |field, reason| rejected.push(Rejection { origin: ing.origin.clone(), field, reason });
        let mut hosts = Vec::new();
        let mut names: Vec<ServiceName> = Vec::new();
        let backends = ing.rules.iter().flat_map(|r| &r.paths).map(|p| &p.backend);
        for b in backends.chain(&ing.default_backend).chain(&ing.fallback) {
            if !names.iter().any(|n| n.0.namespace == b.namespace && n.0.service == b.service) {
                names.push(ServiceName(Arc::clone(b)));
            }
        }
        let mut tls = Vec::new();
        let mut catch_all = false;
        if let Some(rule) = &ing.canary {
            if let Err(why) = rule.header_pattern.as_deref().map(crate::canary::header_pattern).transpose() {
                reject(Field::Object, Reason::Canary { why: format!("canary-by-header-pattern {why}") });
                return Self::kept(ingress, hosts, names, tls, catch_all, rejected);
            }
            if ing.default_backend.is_some() {
                let why =
                    "a canary's default backend is not supported (only its paths split traffic)".to_owned();
                reject(Field::DefaultBackend, Reason::Canary { why });
            }
            for (ri, r) in ing.rules.iter().enumerate() {
                match HostPattern::parse(r.host.as_deref()) {
                    Ok(p) => push_once(&mut hosts, p),
                    Err(_) => {
                        for (pi, p) in r.paths.iter().enumerate() {
                            let written = if p.path.is_empty() { "/" } else { &p.path };
                            reject(
                                Field::Path { rule: index(ri), path: index(pi) },
                                super::block::no_route_to_split(r.host.as_deref(), written, p.path_type),
                            );
                        }
                    }
                }
            }
            return Self::kept(ingress, hosts, names, tls, catch_all, rejected);
        }
        if ing.rules.is_empty() && ing.default_backend.is_none() {
            reject(Field::Object, Reason::Empty);
            return Self::kept(ingress, hosts, names, tls, catch_all, rejected);
        }
        if let Some(Err(reason)) = ing.fallback.as_ref().map(|b| resolve(b, services)) {
            reject(Field::Object, reason);
        }
        match ing.default_backend.as_ref().map(|b| resolve(b, services)) {
            Some(Err(reason)) => reject(Field::DefaultBackend, reason),
            Some(Ok(_)) => catch_all = ing.rules.is_empty(),
            None => {}
        }
        let mut rule_hosts = Vec::with_capacity(ing.rules.len());
        for (ri, rule) in ing.rules.iter().enumerate() {
            match HostPattern::parse(rule.host.as_deref()) {
                Ok(p) => {
                    rule_hosts.push(p.clone());
                    push_once(&mut hosts, p);
                }
                Err(why) => {
                    let host = rule.host.clone().unwrap_or_default();
                    reject(Field::Host { rule: index(ri) }, Reason::InvalidHost { host, why });
                }
            }
        }
        for (ti, entry) in ing.tls.iter().enumerate() {
            let ti = index(ti);
            if entry.hosts.is_empty() {
                let named = rule_hosts.iter().filter(|p| **p != HostPattern::Any);
                tls.extend(named.map(|p| (Field::Tls { entry: ti, host: None }, p.clone())));
                continue;
            }
            for (hi, h) in entry.hosts.iter().enumerate() {
                let field = Field::Tls { entry: ti, host: Some(index(hi)) };
                match HostPattern::parse(Some(h)) {
                    Ok(HostPattern::Any) => {
                        let why = "must not be empty".to_owned();
                        reject(field, Reason::InvalidHost { host: h.clone(), why });
                    }
                    Ok(p) => tls.push((field, p)),
                    Err(why) => reject(field, Reason::InvalidHost { host: h.clone(), why }),
                }
            }
        }
        Self::kept(ingress, hosts, names, tls, catch_all, rejected)
    }

    /// An entry of these parts, in no more room than they take: the rebuilder keeps it as long
    /// as the Ingress is unchanged (a first push makes room for four).
    fn kept(
        ingress: Arc<Ingress>,
        mut hosts: Vec<HostPattern>,
        mut services: Vec<ServiceName>,
        mut tls: Vec<TlsClaim>,
        catch_all: bool,
        mut rejected: Vec<Rejection>,
    ) -> Self {
        hosts.shrink_to_fit();
        services.shrink_to_fit();
        tls.shrink_to_fit();
        rejected.shrink_to_fit();
        Self { ingress, hosts, services, tls, catch_all, rejected }
    }

    /// The certificate of TLS claim `field` (a `Field::Tls`).
    pub(super) fn certificate(&self, field: Field) -> Option<&crate::CertificateRef> {
        let Field::Tls { entry, .. } = field else { return None };
        self.ingress.tls.get(entry as usize).map(|t| &t.certificate)
    }

    /// Whether `other` makes the same TLS claims: the same hosts, fields and certificates, in
    /// the same order (what the TLS map is made of).
    pub(super) fn same_tls(&self, other: &Entry) -> bool {
        self.tls == other.tls
            && self.tls.iter().all(|(field, _)| self.certificate(*field) == other.certificate(*field))
    }
}

fn push_once(hosts: &mut Vec<HostPattern>, pattern: HostPattern) {
    if !hosts.contains(&pattern) {
        hosts.push(pattern);
    }
}
