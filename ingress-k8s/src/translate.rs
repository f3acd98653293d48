//! The one pure translation: the stores' contents → the routing model's input.
//!
//! No I/O, no clock other than certificate validity: tests call [`translate`] with objects read
//! from YAML fixtures and compare the result.

mod cache;
mod certs;
pub(crate) mod class;
mod endpoint_list;
mod endpoints;
mod ingress;
mod keys;
mod list;
mod streams;

pub use cache::{CacheStats, TranslationCache};
pub use certs::CertificateCache;
pub use endpoint_list::{EndpointEntry, EndpointList, ServiceEndpoints};
pub use list::{IngressList, Keyed, SortedList};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use ingress_core::{BackendRef, CertificatePem, CertificateRef, Field, TableBuilder};

pub(crate) use endpoints::{SERVICE_NAME_LABEL, cluster_ip_endpoints, service_endpoints, slice_service};

use crate::annotations::AnnotationReport;
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressInfo {
    /// `(namespace, name)`.
    pub key: Key,
    /// `metadata.uid`, for Event references (the stored Ingress's, shared).
    pub uid: Option<Arc<str>>,
    /// `metadata.generation`: a new one is a new spec, worth a `Sync` Event.
    pub generation: Option<i64>,
    /// The addresses currently in `status.loadBalancer.ingress` (IPs or hostnames).
    pub status: Vec<String>,
    /// A verdict for each of its annotations under the prefix, sorted by key.
    pub annotations: Vec<AnnotationReport>,
    /// Why its paths answer `503`, when an access restriction it asks for is not applied.
    pub closed: Option<String>,
    /// The core Ingress it was translated to (the table's routes come from it), shared with
    /// the builder: what a consumer compares to see which routes a changed Ingress dropped
    /// (the request series of those go, see `ProxyHandle::forget_routes`).
    pub core: Option<Arc<ingress_core::Ingress>>,
}

impl IngressInfo {
    /// What changed from one snapshot's list of Ingresses to the next: the entries of `last`
    /// not in `now`, and those of `now` not in `last` (an Ingress in a new version is in both).
    /// Successive lists share their unchanged chunks, and an unchanged Ingress is the same `Arc`
    /// (the translation cache keeps it), so this is a walk down both lists that skips shared
    /// chunks and compares addresses, and keys only where they differ: it costs what changed,
    /// which matters as each snapshot is compared this way by the status writer, Events and
    /// the metrics.
    pub fn changes<'l, 'n>(
        last: &'l IngressList,
        now: &'n IngressList,
    ) -> (Vec<&'l IngressInfo>, Vec<&'n IngressInfo>) {
        IngressList::changes(last, now)
    }
}

/// What [`translate`] produces: everything a route table and its endpoints are made of.
#[derive(Debug, Default)]
pub struct Translation {
    /// The core builder, loaded with our Ingresses, the Services, defaults and certificates.
    pub builder: TableBuilder,
    /// The ready endpoints of every Service port, keyed as the table keys backends (shared
    /// with the [`TranslationCache`], which makes them again only for the Services whose
    /// object or EndpointSlices changed, and shares the rest with the list it handed out last).
    pub endpoints: EndpointList,
    /// Problems found while translating (the core builder adds its own rejections).
    pub problems: Vec<Problem>,
    /// Our Ingresses, sorted by key (shared with the [`TranslationCache`], which keeps the list
    /// up to date as Ingresses change).
    pub ingresses: IngressList,
    /// The `--configmap` ConfigMap's data (empty when absent).
    pub config: BTreeMap<String, String>,
    /// The data of the ConfigMaps that `config` names (`add-headers`, `proxy-set-headers`), by
    /// the value naming them (`namespace/name`); a missing one is absent.
    pub config_references: BTreeMap<String, BTreeMap<String, String>>,
    /// Every ConfigMap something names (the controller ConfigMap's references, `custom-headers`
    /// of our Ingresses): the cluster source watches these, and only these.
    pub referenced_config_maps: Arc<BTreeSet<Key>>,
    /// Every Secret an Ingress of ours names besides its TLS ones (`auth-secret`): the cluster
    /// source watches these by name; only these are read whatever their type.
    pub referenced_secrets: Arc<BTreeSet<Key>>,
    /// The addresses to write into our Ingresses' status.
    pub status_addresses: Vec<String>,
    /// Every Service this translation looked for, found or not (our Ingresses' backends,
    /// `default-backend`, `--default-backend-service`, `--publish-service`, TCP/UDP
    /// services): a change to any other Service cannot change the table.
    pub used_services: Arc<BTreeSet<Key>>,
    /// Every Secret this translation looked for, found or not (TLS, `auth-*`, `proxy-ssl-*`,
    /// `--default-ssl-certificate`): a change to any other Secret cannot change the table.
    pub used_secrets: Arc<BTreeSet<Key>>,
    /// Per Ingress, where each core rule and path came from in the Kubernetes object, so core
    /// rejections name the field as written (shared with the [`TranslationCache`]).
    index: Arc<HashMap<Key, Arc<IndexMap>>>,
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

impl IndexMap {
    /// Whether every core index is its Kubernetes index (nothing was left out before the end):
    /// such a map is not kept, since a missing map reads as that.
    fn is_identity(&self) -> bool {
        let same = |(i, n): (usize, &u32)| usize::try_from(*n).is_ok_and(|n| n == i);
        self.rules
            .iter()
            .enumerate()
            .all(|(i, (r, paths))| same((i, r)) && paths.iter().enumerate().all(same))
            && self.tls.iter().enumerate().all(same)
    }
}

impl Translation {
    /// Compiles the route table against `store`, after loading this translation's endpoint
    /// sets into it, and returns it with every problem (core rejections included), sorted.
    /// Takes the builder, endpoints and problems out; the rest stays for the caller.
    ///
    /// This is what an offline check of a manifest directory needs; the controller, which
    /// builds again on every change, uses [`Translation::compile_with`].
    pub fn compile(
        &mut self,
        store: &mut ingress_core::EndpointStore,
    ) -> (ingress_core::RouteTable, Vec<Problem>) {
        self.compile_with(store, &mut ingress_core::Rebuilder::new(), &EndpointList::default())
    }

    /// [`Translation::compile`] through `rebuilder`, which keeps what the last build made: only
    /// the hosts of the Ingresses that changed since are built again (the translation cache
    /// hands unchanged Ingresses over as the same `Arc`s). `loaded` are the endpoints of the
    /// last translation compiled into `store`: only the sets that differ from those (by
    /// identity, [`EndpointList::changes`]) are loaded.
    pub fn compile_with(
        &mut self,
        store: &mut ingress_core::EndpointStore,
        rebuilder: &mut ingress_core::Rebuilder,
        loaded: &EndpointList,
    ) -> (ingress_core::RouteTable, Vec<Problem>) {
        let endpoints = std::mem::take(&mut self.endpoints);
        let (_, fresh) = EndpointList::changes(loaded, &endpoints);
        for entry in fresh {
            // A set equal to the slot's (most, when little changed) is left in place.
            if store.get(&entry.0).is_none_or(|now| *now != *entry.1) {
                store.set_shared(&entry.0, Arc::clone(&entry.1));
            }
        }
        let built = rebuilder.build(&std::mem::take(&mut self.builder), store);
        let mut problems = std::mem::take(&mut self.problems);
        problems.extend(built.rejected.iter().map(|r| self.problem_from(r)));
        problems.sort();
        (built.table, problems)
    }

    /// Turns a core rejection into a [`Problem`] naming the field as written in the object.
    pub fn problem_from(&self, rejection: &ingress_core::Rejection) -> Problem {
        let key: Key = (rejection.origin.namespace.clone(), rejection.origin.name.clone());
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
    translate_with(objects, config, &mut TranslationCache::default())
}

/// [`translate`], remaking only what changed since `cache` last translated: the Ingresses
/// whose object, or an object their translation read, changed; the Services whose object or
/// EndpointSlices changed; the TLS Secrets not parsed in their stored version. The result is
/// the same as [`translate`]'s (the controller keeps one cache across its translations).
pub fn translate_with(objects: &Objects, config: &Config, cache: &mut TranslationCache) -> Translation {
    translate_changed(objects, config, cache, &crate::Changed::default())
}

/// [`translate_with`], told which objects can have changed since `cache` last translated:
/// `changed` must hold every key of `objects` whose object was added, replaced or removed since
/// then (it may hold more; a relist marks its whole kind). Then only those objects are compared
/// with what the cache saw, instead of every object of the stores. The engine keeps such a
/// journal beside its cache and clears it after each translation.
pub fn translate_changed(
    objects: &Objects,
    config: &Config,
    cache: &mut TranslationCache,
    changed: &crate::Changed,
) -> Translation {
    let mut out = Translation { prefix: config.annotations_prefix.clone(), ..Translation::default() };
    // What the controller settings name, besides what the Ingresses name.
    let mut globals = ingress::Names::default();
    if let Some(name) = &config.configmap {
        let key = name.key();
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
        let key: Key = (ns.into(), name.into());
        if let Some(data) = objects.config_maps.get(&key).and_then(|c| c.data.clone()) {
            out.config_references.insert(value.trim().to_owned(), data);
        }
        globals.referenced_config_maps.push(key);
    }

    cache.refresh(objects, config, &out.config, changed);
    cache.add_services(objects, changed, &mut out);
    let cluster_ip_backends = cache.add_ingresses(objects, config, changed, &mut out);
    let mut cluster_ip = Vec::new();
    for backend in cluster_ip_backends {
        let key: Key = (backend.namespace.clone(), backend.service.clone());
        let Some(service) = objects.services.get(&key) else { continue };
        cluster_ip.extend(cluster_ip_endpoints(service, &backend, cache.service_endpoints(&key)));
    }
    out.endpoints = cache.endpoint_list(cluster_ip);

    if let Some(name) = &config.default_backend_service {
        let key = name.key();
        globals.used_services.push(key.clone());
        let port = objects.services.get(&key).and_then(|s| s.first_port());
        match port {
            Some(port) => {
                let (namespace, name) = key;
                out.builder.default_backend(BackendRef::new(namespace, name, port));
            }
            None => out.problems.push(controller_problem(
                "--default-backend-service",
                format!("service {name} not found or has no port"),
            )),
        }
    }
    if let Some(name) = &config.default_ssl_certificate {
        let key = name.key();
        let mut certs = Certs { seen: HashMap::new(), cache: cache.certificates() };
        match load_certificate(objects, &key, &mut certs).0 {
            Ok((certificate, pem)) => {
                out.builder.certificate(certificate.clone(), pem);
                out.builder.default_certificate(certificate);
            }
            Err(why) => out.problems.push(controller_problem("--default-ssl-certificate", why)),
        }
        globals.used_secrets.push(key);
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
            &mut globals.used_services,
        );
        out.problems.extend(found);
        globals.referenced_config_maps.push(name.key());
    }
    out.status_addresses = status_addresses(objects, config);
    if let Some(name) = &config.publish_service {
        globals.used_services.push(name.key());
    }
    cache.finish(objects, globals, &mut out);
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

fn core_service((namespace, name): &Key, service: &crate::StoredService) -> ingress_core::Service {
    ingress_core::Service {
        namespace: Arc::clone(namespace),
        name: Arc::clone(name),
        ports: service
            .ports
            .iter()
            .filter_map(|p| {
                Some(ingress_core::ServicePort { name: p.name.clone(), port: u16::try_from(p.port).ok()? })
            })
            .collect(),
    }
}

/// The TLS Secrets of one translation: each checked once, through the controller's cache,
/// with the second from which its verdict may change (see [`CertificateCache`]).
struct Certs<'c> {
    seen: HashMap<Key, (Result<Arc<CertificatePem>, String>, i64)>,
    cache: &'c mut CertificateCache,
}

/// Validates a Secret once per translation: its certificate and material, or why not, and the
/// Unix second from which that may change.
fn load_certificate(
    objects: &Objects,
    key: &Key,
    certs: &mut Certs<'_>,
) -> (Result<(CertificateRef, Arc<CertificatePem>), String>, i64) {
    let certificate = CertificateRef::new(&*key.0, &*key.1);
    let (result, until) = match certs.seen.get(key) {
        Some(done) => done.clone(),
        None => {
            let done = match objects.secrets.get(key) {
                None => (Err(format!("TLS secret {}/{} not found", key.0, key.1)), i64::MAX),
                Some(secret) => {
                    let (result, until) = certs.cache.get_until(key, secret);
                    (result.map_err(|why| format!("TLS secret {}/{}: {why}", key.0, key.1)), until)
                }
            };
            certs.seen.insert(key.clone(), done.clone());
            done
        }
    };
    (result.map(|pem| (certificate, pem)), until)
}

/// The addresses of load-balancer status entries (an Ingress's or a Service's, two types with
/// the same two fields): each entry's IP, else its hostname.
fn status_addresses(objects: &Objects, config: &Config) -> Vec<String> {
    if !config.publish_status_address.is_empty() {
        return config.publish_status_address.clone();
    }
    let Some(name) = &config.publish_service else { return Vec::new() };
    let Some(service) = objects.services.get(&name.key()) else {
        return Vec::new();
    };
    if !service.load_balancer.is_empty() {
        return service.load_balancer.clone();
    }
    service.external_ips.clone()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{IndexMap, IngressInfo, IngressList};

    #[test]
    fn changes_between_lists_are_found_by_address_then_key() {
        let info = |name: &str| {
            Arc::new(IngressInfo { key: ("default".into(), name.into()), ..IngressInfo::default() })
        };
        let names =
            |list: Vec<&IngressInfo>| list.into_iter().map(|i| i.key.1.to_string()).collect::<Vec<_>>();
        let list = |items: &[&Arc<IngressInfo>]| items.iter().map(|i| Arc::clone(i)).collect::<IngressList>();
        let [a, b, c, d] = ["a", "b", "c", "d"].map(info);
        let last = list(&[&a, &b, &c]);
        let same = last.clone();
        let (gone, fresh) = IngressInfo::changes(&last, &same);
        assert!(gone.is_empty() && fresh.is_empty());
        // `a` deleted, `b` in a new version, `d` created at the end.
        let new_b = info("b");
        let now = list(&[&new_b, &c, &d]);
        let (gone, fresh) = IngressInfo::changes(&last, &now);
        assert_eq!(
            (names(gone), names(fresh)),
            (vec!["a".to_owned(), "b".into()], vec!["b".to_owned(), "d".into()])
        );
        // Created at the start and in the middle; deleted at the end.
        let c_d = list(&[&c, &d]);
        let (gone, fresh) = IngressInfo::changes(&c_d, &last);
        assert_eq!((names(gone), names(fresh)), (vec!["d".to_owned()], vec!["a".to_owned(), "b".into()]));
        let empty = IngressList::default();
        let (gone, fresh) = IngressInfo::changes(&empty, &now);
        assert_eq!((gone.len(), fresh.len()), (0, 3));
        // Long lists sharing chunks: only the changes are found, whatever the chunk bounds.
        let many: Vec<Arc<IngressInfo>> = (0..1000).map(|i| info(&format!("{i:04}"))).collect();
        let before: IngressList = many.iter().cloned().collect();
        let mut after = before.clone();
        after.remove(&("default".into(), "0100".into()));
        after.put(info("0500"));
        for i in 0..200 {
            after.put(info(&format!("0700-{i:03}")));
        }
        let (gone, fresh) = IngressInfo::changes(&before, &after);
        assert_eq!(names(gone), ["0100", "0500"]);
        assert_eq!(fresh.len(), 201);
        assert_eq!(&*fresh[0].key.1, "0500");
    }

    #[test]
    fn a_map_that_changes_no_index_is_identity() {
        let map = |rules: &[(u32, &[u32])], tls: &[u32]| IndexMap {
            rules: rules.iter().map(|(r, p)| (*r, p.to_vec())).collect(),
            tls: tls.to_vec(),
        };
        assert!(map(&[], &[]).is_identity());
        assert!(map(&[(0, &[0, 1, 2]), (1, &[0])], &[0, 1]).is_identity());
        // Only the last path or TLS entry left out: the rest keep their indices.
        assert!(map(&[(0, &[0, 1])], &[0]).is_identity());
        assert!(!map(&[(0, &[1, 2])], &[]).is_identity(), "path 0 left out");
        assert!(!map(&[(1, &[0])], &[]).is_identity(), "rule 0 left out");
        assert!(!map(&[], &[1]).is_identity(), "TLS entry 0 left out");
    }
}
