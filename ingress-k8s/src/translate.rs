//! The one pure translation: the stores' contents → the routing model's input.
//!
//! No I/O, no clock other than certificate validity: tests call [`translate`] with objects read
//! from YAML fixtures and compare the result.

mod certs;
pub use certs::CertificateCache;
pub(crate) mod class;
mod endpoints;
mod streams;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use ingress_core::{
    BackendRef, CertificatePem, CertificateRef, EndpointSet, Field, HostRule, Origin, PathRule, PathType,
    PortRef, TableBuilder,
};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

pub(crate) use endpoints::{
    SERVICE_NAME_LABEL, cluster_ip_endpoints, service_endpoints, slice_service, slices_by_service,
};

use crate::annotations::{self, AnnotationReport, Verdict};
use crate::objects::Key;
use crate::{Config, Kind, Objects};

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The rule is kept but will not work as meant (e.g. its Service is missing: 503).
    Warning,
    /// The rule (or TLS entry) was left out.
    Rejected,
}

/// Something wrong with one object, named down to the field, with the reason. Every other
/// object keeps working; the controller reports problems as Warning Events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    /// The kind of the object at fault (an Ingress). Problems with the controller's own
    /// settings have kind `ConfigMap`, an empty `object`, and the flag as `field` (e.g.
    /// `--default-backend-service`).
    pub kind: Kind,
    /// `(namespace, name)` of the object; empty for controller-wide settings.
    pub object: Key,
    /// The field, spelled as in the API (`spec.rules[0].http.paths[1].backend`).
    pub field: String,
    /// Why.
    pub reason: String,
    /// Whether the rule was kept or left out.
    pub severity: Severity,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.severity {
            Severity::Warning => "warning",
            Severity::Rejected => "rejected",
        };
        write!(
            f,
            "{} {}/{} {}: {verdict}: {}",
            self.kind, self.object.0, self.object.1, self.field, self.reason
        )
    }
}

/// One of our Ingresses, as status writing and events need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressInfo {
    /// `(namespace, name)`.
    pub key: Key,
    /// `metadata.uid`, for Event references.
    pub uid: Option<String>,
    /// `metadata.generation`: a new one is a new spec, worth a `Sync` Event.
    pub generation: Option<i64>,
    /// The addresses currently in `status.loadBalancer.ingress` (IPs or hostnames).
    pub status: Vec<String>,
    /// A verdict for each of its annotations under the prefix, sorted by key.
    pub annotations: Vec<AnnotationReport>,
    /// Why its paths answer `503`, when an access restriction it asks for is not applied.
    pub closed: Option<String>,
}

/// What [`translate`] produces: everything a route table and its endpoints are made of.
#[derive(Debug, Default)]
pub struct Translation {
    /// The core builder, loaded with our Ingresses, the Services, defaults and certificates.
    pub builder: TableBuilder,
    /// The ready endpoints of every Service port, keyed as the table keys backends.
    pub endpoints: Vec<(BackendRef, EndpointSet)>,
    /// Problems found while translating (the core builder adds its own rejections).
    pub problems: Vec<Problem>,
    /// Our Ingresses.
    pub ingresses: Vec<IngressInfo>,
    /// The `--configmap` ConfigMap's data (empty when absent).
    pub config: BTreeMap<String, String>,
    /// The data of the ConfigMaps that `config` names (`add-headers`, `proxy-set-headers`), by
    /// the value naming them (`namespace/name`); a missing one is absent.
    pub config_references: BTreeMap<String, BTreeMap<String, String>>,
    /// Every ConfigMap something names (the controller ConfigMap's references, `custom-headers`
    /// of our Ingresses): the cluster source watches these, and only these.
    pub referenced_config_maps: std::collections::BTreeSet<Key>,
    /// Every Secret an Ingress of ours names besides its TLS ones (`auth-secret`): the cluster
    /// source watches these by name; only these are read whatever their type.
    pub referenced_secrets: std::collections::BTreeSet<Key>,
    /// The addresses to write into our Ingresses' status.
    pub status_addresses: Vec<String>,
    /// Every Service this translation looked for, found or not (our Ingresses' backends,
    /// `default-backend`, `--default-backend-service`, `--publish-service`, TCP/UDP
    /// services): a change to any other Service cannot change the table.
    pub used_services: std::collections::BTreeSet<Key>,
    /// Every Secret this translation looked for, found or not (TLS, `auth-*`, `proxy-ssl-*`,
    /// `--default-ssl-certificate`): a change to any other Secret cannot change the table.
    pub used_secrets: std::collections::BTreeSet<Key>,
    /// The backends reached through their Service's cluster IP (`service-upstream`), as the
    /// Ingresses name them (the port may be a name).
    cluster_ip_backends: std::collections::BTreeSet<BackendRef>,
    /// Per Ingress, where each core rule and path came from in the Kubernetes object, so core
    /// rejections name the field as written.
    index: HashMap<(String, String), IndexMap>,
    /// `--annotations-prefix`, to name annotations in problems.
    prefix: String,
}

/// Core indices → Kubernetes indices for one Ingress (paths without a usable backend are
/// left out of the core input, so the two can differ).
#[derive(Debug, Default)]
struct IndexMap {
    rules: Vec<(u32, Vec<u32>)>,
    tls: Vec<u32>,
}

impl Translation {
    /// Compiles the route table against `store`, after loading this translation's endpoint
    /// sets into it, and returns it with every problem (core rejections included), sorted.
    /// Takes the builder, endpoints and problems out; the rest stays for the caller.
    ///
    /// This is what the controller does on each rebuild, and what an offline check of a
    /// manifest directory needs.
    pub fn compile(
        &mut self,
        store: &mut ingress_core::EndpointStore,
    ) -> (ingress_core::RouteTable, Vec<Problem>) {
        for (backend, set) in std::mem::take(&mut self.endpoints) {
            store.set(&backend, set);
        }
        let built = std::mem::take(&mut self.builder).build(store);
        let mut problems = std::mem::take(&mut self.problems);
        problems.extend(built.rejected.iter().map(|r| self.problem_from(r)));
        problems.sort();
        (built.table, problems)
    }

    /// Turns a core rejection into a [`Problem`] naming the field as written in the object.
    pub fn problem_from(&self, rejection: &ingress_core::Rejection) -> Problem {
        let key = (rejection.origin.namespace.clone(), rejection.origin.name.clone());
        let map = self.index.get(&key);
        let rule = |r: u32| map.and_then(|m| m.rules.get(r as usize));
        let field = match rejection.field {
            Field::Object => "spec".to_owned(),
            Field::DefaultBackend => "spec.defaultBackend".to_owned(),
            Field::Host { rule: r } => format!("spec.rules[{}].host", rule(r).map_or(r, |x| x.0)),
            Field::Path { rule: r, path } => {
                let (kr, kp) =
                    rule(r).map_or((r, path), |x| (x.0, x.1.get(path as usize).copied().unwrap_or(path)));
                format!("spec.rules[{kr}].http.paths[{kp}]")
            }
            Field::Tls { entry, host } => {
                let ke = map.and_then(|m| m.tls.get(entry as usize)).copied().unwrap_or(entry);
                match host {
                    Some(h) => format!("spec.tls[{ke}].hosts[{h}]"),
                    None => format!("spec.tls[{ke}]"),
                }
            }
            Field::Annotation(name) => format!("metadata.annotations[{}/{name}]", self.prefix),
        };
        Problem {
            kind: Kind::Ingress,
            object: key,
            field,
            reason: rejection.reason.to_string(),
            // An alias left to the host of that name is served as ingress-nginx serves it.
            severity: if matches!(rejection.reason, ingress_core::Reason::Alias { .. }) {
                Severity::Warning
            } else {
                Severity::Rejected
            },
        }
    }
}

/// The controller ConfigMap's keys whose value names another ConfigMap (`namespace/name`).
const CONFIG_REFERENCES: [&str; 2] = ["add-headers", "proxy-set-headers"];

/// Translates the stores' contents into the routing model's input. Pure: the same objects
/// and config always give the same translation (certificate validity aside).
pub fn translate(objects: &Objects, config: &Config) -> Translation {
    translate_with(objects, config, &mut CertificateCache::default())
}

/// [`translate`], parsing only the TLS Secrets `cache` has not seen in their stored version
/// (the controller keeps one cache across its translations).
pub fn translate_with(objects: &Objects, config: &Config, cache: &mut CertificateCache) -> Translation {
    let mut out = Translation { prefix: config.annotations_prefix.clone(), ..Translation::default() };
    let mut certs = Certs { seen: HashMap::new(), cache };
    if let Some(name) = &config.configmap {
        let key = (name.namespace.clone(), name.name.clone());
        if let Some(data) = objects.config_maps.get(&key).and_then(|c| c.data.clone()) {
            out.config = data;
        }
    }
    // The ConfigMaps the controller ConfigMap names (`add-headers`, `proxy-set-headers`).
    for key in CONFIG_REFERENCES {
        let Some(value) = out.config.get(key) else { continue };
        // `namespace/name`, as the settings read it (they report anything else).
        let Some((ns, name)) = value.trim().split_once('/') else { continue };
        if ns.is_empty() || name.is_empty() || name.contains('/') {
            continue;
        }
        let key = (ns.to_owned(), name.to_owned());
        if let Some(data) = objects.config_maps.get(&key).and_then(|c| c.data.clone()) {
            out.config_references.insert(value.trim().to_owned(), data);
        }
        out.referenced_config_maps.insert(key);
    }

    let slices = slices_by_service(objects);
    for (key, service) in &objects.services {
        let own = slices.get(key).map(Vec::as_slice).unwrap_or_default();
        out.endpoints.extend(service_endpoints(service, own));
        out.builder.service(core_service(service));
    }

    for (key, ingress) in &objects.ingresses {
        if !class::is_ours(ingress, objects, config) {
            continue;
        }
        // --disable-catch-all: an Ingress with a default backend is left out whole, as
        // ingress-nginx leaves it out of its store.
        if config.disable_catch_all && ingress.spec.as_ref().is_some_and(|s| s.default_backend.is_some()) {
            out.problems.push(Problem {
                kind: Kind::Ingress,
                object: key.clone(),
                field: "spec.defaultBackend".into(),
                reason: "a catch-all Ingress is not served while --disable-catch-all is set".into(),
                severity: Severity::Rejected,
            });
            continue;
        }
        add_ingress(&mut out, &mut certs, objects, config, key, ingress);
    }

    for backend in std::mem::take(&mut out.cluster_ip_backends) {
        let service = objects.services.get(&(backend.namespace.clone(), backend.service.clone()));
        if let Some(entry) = service.and_then(|s| cluster_ip_endpoints(s, &backend, &out.endpoints)) {
            out.endpoints.push(entry);
        }
    }

    if let Some(name) = &config.default_backend_service {
        let key = (name.namespace.clone(), name.name.clone());
        out.used_services.insert(key.clone());
        let port = objects
            .services
            .get(&key)
            .and_then(|s| s.spec.as_ref()?.ports.as_ref()?.first().map(|p| p.port))
            .and_then(|p| u16::try_from(p).ok());
        match port {
            Some(port) => {
                out.builder.default_backend(BackendRef::new(&key.0, &key.1, port));
            }
            None => out.problems.push(controller_problem(
                "--default-backend-service",
                format!("service {name} not found or has no port"),
            )),
        }
    }
    if let Some(name) = &config.default_ssl_certificate {
        let key = (name.namespace.clone(), name.name.clone());
        match load_certificate(objects, &key, &mut out.builder, &mut certs) {
            Ok(certificate) => {
                out.builder.default_certificate(certificate);
            }
            Err(why) => out.problems.push(controller_problem("--default-ssl-certificate", why)),
        }
    }
    let stream_maps = [
        (&config.tcp_services_configmap, ingress_core::StreamProtocol::Tcp),
        (&config.udp_services_configmap, ingress_core::StreamProtocol::Udp),
    ];
    for (name, protocol) in stream_maps {
        let Some(name) = name else { continue };
        let found = streams::add(
            &mut out.builder,
            objects,
            name,
            protocol,
            &config.reserved_ports,
            &mut out.used_services,
        );
        out.problems.extend(found);
        out.referenced_config_maps.insert((name.namespace.clone(), name.name.clone()));
    }
    out.status_addresses = status_addresses(objects, config);
    if let Some(name) = &config.publish_service {
        out.used_services.insert((name.namespace.clone(), name.name.clone()));
    }
    out.used_secrets.extend(certs.seen.into_keys());
    certs.cache.retain(&objects.secrets);
    out.used_secrets.extend(out.referenced_secrets.iter().cloned());
    out
}

fn controller_problem(field: &str, reason: String) -> Problem {
    Problem {
        kind: Kind::ConfigMap,
        object: Key::default(),
        field: field.into(),
        reason,
        severity: Severity::Rejected,
    }
}

fn core_service(service: &k8s_openapi::api::core::v1::Service) -> ingress_core::Service {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default();
    ingress_core::Service {
        namespace: service.metadata.namespace.clone().unwrap_or_default(),
        name: service.metadata.name.clone().unwrap_or_default(),
        ports: ports
            .iter()
            .filter_map(|p| {
                Some(ingress_core::ServicePort { name: p.name.clone(), port: u16::try_from(p.port).ok()? })
            })
            .collect(),
    }
}

/// The TLS Secrets of one translation: each checked once, through the controller's cache.
struct Certs<'c> {
    seen: HashMap<Key, Result<(), String>>,
    cache: &'c mut CertificateCache,
}

/// Validates a Secret once per translation and registers its material with the builder.
fn load_certificate(
    objects: &Objects,
    key: &Key,
    builder: &mut TableBuilder,
    certs: &mut Certs<'_>,
) -> Result<CertificateRef, String> {
    let certificate = CertificateRef::new(&key.0, &key.1);
    if let Some(done) = certs.seen.get(key) {
        return done.clone().map(|()| certificate);
    }
    let result = match objects.secrets.get(key) {
        None => Err(format!("TLS secret {}/{} not found", key.0, key.1)),
        Some(secret) => {
            certs.cache.get(key, secret).map_err(|why| format!("TLS secret {}/{}: {why}", key.0, key.1))
        }
    };
    let result = result.map(|pem: CertificatePem| {
        builder.certificate(certificate.clone(), pem);
    });
    certs.seen.insert(key.clone(), result.clone());
    result.map(|()| certificate)
}

fn add_ingress(
    out: &mut Translation,
    certs: &mut Certs<'_>,
    objects: &Objects,
    config: &Config,
    key: &Key,
    ingress: &Ingress,
) {
    let meta = &ingress.metadata;
    let created = meta.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second());
    let no_annotations = BTreeMap::new();
    let annotations = meta.annotations.as_ref().unwrap_or(&no_annotations);
    // The Services and Secrets the annotations look for, found or not.
    let asked_services = std::cell::RefCell::new(Vec::new());
    let asked_secrets = std::cell::RefCell::new(Vec::new());
    let service_port = |name: &str| {
        asked_services.borrow_mut().push((key.0.clone(), name.to_owned()));
        let service = objects.services.get(&(key.0.clone(), name.to_owned()))?;
        let port = service.spec.as_ref()?.ports.as_ref()?.first()?.port;
        u16::try_from(port).ok()
    };
    let config_map = |ns: &str, name: &str| {
        objects.config_maps.get(&(ns.to_owned(), name.to_owned())).map(|c| c.data.clone().unwrap_or_default())
    };
    let allowed: Vec<String> = out
        .config
        .get("global-allowed-response-headers")
        .map(|v| v.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    // `stringData` too: the API server folds it into `data`, a manifest file keeps it.
    let secret = |ns: &str, name: &str| {
        asked_secrets.borrow_mut().push((ns.to_owned(), name.to_owned()));
        let s = objects.secrets.get(&(ns.to_owned(), name.to_owned()))?;
        let data = s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
        let strings = s.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
        Some(data.chain(strings).collect())
    };
    let lookup = annotations::Lookup {
        service_port: &service_port,
        config_map: &config_map,
        allowed_response_headers: &allowed,
        namespace: &key.0,
        secret: &secret,
        ssl_passthrough: config.ssl_passthrough,
    };
    let mut read = annotations::read_with(annotations, &config.annotations_prefix, &lookup);
    if let Some(limit) = read.policy.rate_limit.as_mut() {
        // The Ingress's routes share one count per client address, as its nginx zone.
        limit.zone = format!("{}/{}", key.0, key.1);
    }
    out.referenced_config_maps.extend(read.config_maps.iter().cloned());
    out.referenced_secrets.extend(read.secrets.iter().cloned());
    out.used_services.extend(asked_services.take());
    out.used_secrets.extend(asked_secrets.take());
    let spec_backends = ingress.spec.iter().flat_map(|spec| {
        let paths = spec.rules.iter().flatten().filter_map(|r| r.http.as_ref()).flat_map(|h| &h.paths);
        spec.default_backend.iter().chain(paths.map(|p| &p.backend))
    });
    // Each name once (an Ingress names few Services over many paths), copied once.
    let names: std::collections::BTreeSet<&str> =
        spec_backends.filter_map(|b| Some(b.service.as_ref()?.name.as_str())).collect();
    out.used_services.extend(names.into_iter().map(|name| (key.0.clone(), name.to_owned())));
    let closed = read.policy.closed.clone();
    let mut core =
        ingress_core::Ingress::new(Origin::new(&key.0, &key.1).created_at(created)).policy(read.policy);
    if let Some(rule) = read.canary {
        core = core.as_canary(rule);
    }
    if let Some((service, port)) = read.fallback {
        core = core.fallback(BackendRef::new(&key.0, service, port));
    }
    core = core.aliases(read.aliases);
    if read.www_redirect {
        core = core.with_www_redirect();
    }
    if read.ssl_passthrough {
        core = core.with_ssl_passthrough();
    }
    if let Some(auth) = read.client_auth.clone() {
        core = core.with_client_auth(auth);
    }
    let mut index = IndexMap::default();
    let mut problems = Vec::new();
    let mut problem = |field: String, reason: String, severity| {
        problems.push(Problem { kind: Kind::Ingress, object: key.clone(), field, reason, severity });
    };
    for report in read.reports.iter().filter(|r| r.verdict != Verdict::Applied || r.closes) {
        let severity = if report.verdict == Verdict::Rejected || report.closes {
            Severity::Rejected
        } else {
            Severity::Warning
        };
        // A rejected value's problem is already `rejected`; other verdicts say theirs.
        let reason = if report.verdict == Verdict::Rejected { report.detail() } else { report.to_string() };
        problem(format!("metadata.annotations[{}]", report.key), reason, severity);
    }
    let empty = k8s_openapi::api::networking::v1::IngressSpec::default();
    let spec = ingress.spec.as_ref().unwrap_or(&empty);
    // service-upstream: the annotation, else the ConfigMap's (false).
    let via_cluster_ip = read.service_upstream.unwrap_or_else(|| {
        out.config
            .get("service-upstream")
            .is_some_and(|v| matches!(v.trim(), "1" | "t" | "T" | "TRUE" | "true" | "True"))
    });
    let mut through_cluster_ip = Vec::new();
    let mut backend_ref = |ns: &str, backend: &IngressBackend, objects: &Objects| {
        backend_ref(ns, backend, objects).map(|(b, warning)| {
            if via_cluster_ip {
                through_cluster_ip.push(b.clone().via_cluster_ip());
                (b.via_cluster_ip(), warning)
            } else {
                (b, warning)
            }
        })
    };

    if let Some(backend) = &spec.default_backend {
        match backend_ref(&key.0, backend, objects) {
            Ok((b, warning)) => {
                if let Some(w) = warning {
                    problem("spec.defaultBackend".into(), w, Severity::Warning);
                }
                core = core.default_backend(b);
            }
            Err(why) => problem("spec.defaultBackend".into(), why, Severity::Rejected),
        }
    }
    for (r, rule) in spec.rules.iter().flatten().enumerate() {
        let Some(http) = &rule.http else { continue };
        let mut host = match &rule.host {
            Some(h) if !h.is_empty() => HostRule::host(h),
            _ => HostRule::any_host(),
        };
        let mut kept = Vec::new();
        for (p, path) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{r}].http.paths[{p}].backend");
            let (backend, warning) = match backend_ref(&key.0, &path.backend, objects) {
                Ok(found) => found,
                Err(why) => {
                    problem(field, why, Severity::Rejected);
                    continue;
                }
            };
            if let Some(w) = warning {
                problem(field, w, Severity::Warning);
            }
            let path_type = match path.path_type.as_str() {
                "Exact" => PathType::Exact,
                "Prefix" => PathType::Prefix,
                _ => PathType::ImplementationSpecific,
            };
            let text = path.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
            host = host.path(PathRule::new(text, path_type, backend));
            kept.push(index_u32(p));
        }
        if !kept.is_empty() {
            core = core.rule(host);
            index.rules.push((index_u32(r), kept));
        }
    }
    out.cluster_ip_backends.extend(through_cluster_ip);
    if spec.tls.as_ref().is_some_and(|t| !t.is_empty()) {
        core = core.with_tls_section();
    }
    for (t, tls) in spec.tls.iter().flatten().enumerate() {
        // No secret: the hosts get the default certificate, as in ingress-nginx.
        let Some(secret) = tls.secret_name.clone().filter(|s| !s.is_empty()) else { continue };
        match load_certificate(objects, &(key.0.clone(), secret), &mut out.builder, certs) {
            Ok(certificate) => {
                core = core.tls(tls.hosts.iter().flatten(), certificate);
                index.tls.push(index_u32(t));
            }
            Err(why) => problem(
                format!("spec.tls[{t}].secretName"),
                format!("{why}; its hosts get the default certificate"),
                Severity::Rejected,
            ),
        }
    }
    out.problems.extend(problems);
    out.index.insert(key.clone(), index);
    out.builder.ingress(core);
    let status = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| lb_addresses(list.iter().map(|i| (&i.ip, &i.hostname))))
        .unwrap_or_default();
    out.ingresses.push(IngressInfo {
        key: key.clone(),
        uid: meta.uid.clone(),
        generation: meta.generation,
        status,
        annotations: read.reports,
        closed,
    });
}

/// The addresses of load-balancer status entries (an Ingress's or a Service's, two types with
/// the same two fields): each entry's IP, else its hostname.
fn lb_addresses<'a>(entries: impl Iterator<Item = (&'a Option<String>, &'a Option<String>)>) -> Vec<String> {
    entries.filter_map(|(ip, hostname)| ip.clone().or_else(|| hostname.clone())).collect()
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A Kubernetes backend → a core backend, plus a warning when its Service is missing (the
/// rule is kept and answers 503, like ingress-nginx).
fn backend_ref(
    namespace: &str,
    backend: &IngressBackend,
    objects: &Objects,
) -> Result<(BackendRef, Option<String>), String> {
    if backend.resource.is_some() {
        return Err("resource backends are not supported".into());
    }
    let Some(service) = &backend.service else {
        return Err("backend names no service".into());
    };
    let port = match service.port.as_ref() {
        Some(p) => match (&p.name, p.number) {
            (Some(name), _) if !name.is_empty() => PortRef::Name(name.clone()),
            (_, Some(n)) => PortRef::Number(u16::try_from(n).map_err(|_| format!("port {n} out of range"))?),
            _ => return Err(format!("service {} backend names no port", service.name)),
        },
        None => return Err(format!("service {} backend names no port", service.name)),
    };
    let warning = (!objects.services.contains_key(&(namespace.to_owned(), service.name.clone())))
        .then(|| format!("service {namespace}/{} not found; requests get 503", service.name));
    Ok((BackendRef::new(namespace, &service.name, port), warning))
}

fn status_addresses(objects: &Objects, config: &Config) -> Vec<String> {
    if !config.publish_status_address.is_empty() {
        return config.publish_status_address.clone();
    }
    let Some(name) = &config.publish_service else { return Vec::new() };
    let Some(service) = objects.services.get(&(name.namespace.clone(), name.name.clone())) else {
        return Vec::new();
    };
    let from_lb: Vec<String> = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| lb_addresses(list.iter().map(|i| (&i.ip, &i.hostname))))
        .unwrap_or_default();
    if !from_lb.is_empty() {
        return from_lb;
    }
    service.spec.as_ref().and_then(|s| s.external_ips.clone()).unwrap_or_default()
}
