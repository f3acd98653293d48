//! Ingresses, Services and EndpointSlices as the stores keep them: only what translation (and
//! `inspect`) reads.
//!
//! A cluster has two Services and slices for every Ingress, and the API server's objects carry
//! far more than routing needs (a Service's selector, IP families, cluster IPs list; a slice's
//! Pod references, node and zone names, the conditions of endpoints that are not ready). Kept
//! whole, they were the largest part of the feed's heap at 10,000 Ingresses (92 of 256 MiB in
//! `benches/feed_memory.rs`; 11 MiB as stored here). Their names are the store keys, so they
//! are not kept twice. An Ingress's paths, in the API types, take 176 bytes each before their
//! strings (a backend has room for a resource reference and a port of both kinds); here 48,
//! their backends shared.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use crate::objects::Key;
use crate::translate::SERVICE_NAME_LABEL;

/// A Service: its ports, cluster IP and the addresses `--publish-service` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredService {
    /// `spec.ports`, in order.
    pub ports: Vec<StoredServicePort>,
    /// `spec.clusterIP` (`None` for the value `None` of a headless Service, or none at all).
    pub cluster_ip: Option<IpAddr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<String>,
    /// `status.loadBalancer.ingress`: each entry's IP, else its hostname.
    pub load_balancer: Vec<String>,
}

/// One port of a [`StoredService`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredServicePort {
    /// `name` (optional on a Service of one port).
    pub name: Option<String>,
    /// `port`.
    pub port: i32,
    /// `protocol` (`None` is TCP).
    pub protocol: Option<String>,
}

impl StoredService {
    /// The number of the first port (`default-backend`, `--default-backend-service`).
    pub fn first_port(&self) -> Option<u16> {
        self.ports.first().and_then(|p| u16::try_from(p.port).ok())
    }
}

impl From<Service> for StoredService {
    fn from(service: Service) -> Self {
        let spec = service.spec.unwrap_or_default();
        let ports = spec.ports.unwrap_or_default().into_iter();
        let load_balancer = service.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress);
        Self {
            ports: compact(ports.map(|p| StoredServicePort {
                name: p.name,
                port: p.port,
                protocol: p.protocol,
            })),
            cluster_ip: spec.cluster_ip.and_then(|ip| ip.parse().ok()),
            external_ips: compact(spec.external_ips.unwrap_or_default().into_iter()),
            load_balancer: ip_or_hostname(
                load_balancer.unwrap_or_default().into_iter().map(|i| (i.ip, i.hostname)),
            ),
        }
    }
}

/// An EndpointSlice: its Service, its ports and the addresses of its ready endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSlice {
    /// The Service it belongs to (its `kubernetes.io/service-name` label), in its namespace.
    pub service: Option<String>,
    /// `ports`: name (empty for none) and number.
    pub ports: Vec<(String, Option<i32>)>,
    /// The addresses of the endpoints that take traffic: ready (an unset `ready` is ready) and
    /// not terminating. Addresses that are not IPs (an `FQDN` slice's) are left out, as
    /// nothing can dial them.
    pub ready: Vec<IpAddr>,
}

impl StoredSlice {
    /// The key of the Service of the slice stored under `key`, if it is labelled with one.
    pub fn service_key(&self, key: &Key) -> Option<Key> {
        self.service.as_deref().map(|name| (key.0.clone(), name.into()))
    }
}

impl From<EndpointSlice> for StoredSlice {
    fn from(slice: EndpointSlice) -> Self {
        let service = slice.metadata.labels.and_then(|mut labels| labels.remove(SERVICE_NAME_LABEL));
        let ports = slice.ports.unwrap_or_default().into_iter();
        let mut ready = Vec::new();
        for endpoint in slice.endpoints.iter().flatten() {
            let conditions = endpoint.conditions.as_ref();
            let taking = conditions.and_then(|c| c.ready).unwrap_or(true)
                && !conditions.and_then(|c| c.terminating).unwrap_or(false);
            if taking {
                ready.extend(endpoint.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()));
            }
        }
        ready.shrink_to_fit();
        Self { service, ports: compact(ports.map(|p| (p.name.unwrap_or_default(), p.port))), ready }
    }
}

/// An Ingress: its identity, annotations, class, rules, TLS sections and load-balancer status.
/// Its namespace and name are its store key's ([`Key`](crate::Key)), not repeated here.
/// Each list keeps the order and length of the object's, so field paths
/// (`spec.rules[r].http.paths[p]`) name the same entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredIngress {
    /// `metadata.uid` (shared with the translation's [`IngressInfo`](crate::IngressInfo)).
    pub uid: Option<Arc<str>>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp`, seconds since the Unix epoch (0 when absent).
    pub created: i64,
    /// `metadata.annotations`.
    pub annotations: StoredAnnotations,
    /// `spec.ingressClassName`.
    pub class_name: Option<String>,
    /// `spec.defaultBackend` (behind a pointer, as the paths' backends: most Ingresses have
    /// none).
    pub default_backend: Option<Arc<StoredBackend>>,
    /// `spec.rules`.
    pub rules: Vec<StoredRule>,
    /// `spec.tls`: each section's hosts and Secret name.
    pub tls: Vec<(Vec<String>, Option<String>)>,
    /// `status.loadBalancer.ingress`: each entry's IP, else its hostname.
    pub status: Vec<String>,
}

/// The annotations of a [`StoredIngress`]: name and value, sorted by name, in a list of their
/// number. A `BTreeMap` keeps them in nodes with room for eleven (536 bytes for the one
/// annotation most Ingresses have): 5 of the 17.6 MiB the stores held for 10,000 Ingresses in
/// `benches/feed_memory.rs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StoredAnnotations(Box<[(String, String)]>);

impl StoredAnnotations {
    /// The value of annotation `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        let at = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok()?;
        Some(&self.0[at].1)
    }

    /// Each annotation, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.into_iter()
    }
}

impl From<BTreeMap<String, String>> for StoredAnnotations {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Sorted and unique already, as the map was.
        Self(map.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a StoredAnnotations {
    type Item = (&'a String, &'a String);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, String)>, fn(&'a (String, String)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, v)| (n, v))
    }
}

/// One rule of a [`StoredIngress`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRule {
    /// `host`.
    pub host: Option<String>,
    /// `http.paths`; `None` when the rule has no `http`.
    pub paths: Option<Vec<StoredPath>>,
}

/// One path of a [`StoredRule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPath {
    /// `path`.
    pub path: Option<Box<str>>,
    /// `pathType`.
    pub path_type: StoredPathType,
    /// `backend`, shared with the Ingress's other paths naming the same one (most paths of an
    /// Ingress name one of a few backends): a path takes 40 bytes this way.
    pub backend: Arc<StoredBackend>,
}

/// A `pathType`: one of the three the API knows, or the text of another (which a manifest file
/// may hold; the API server refuses it). 16 bytes: the rare other text is behind a thin
/// pointer (with a `Box<str>`, 24).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredPathType {
    /// `Exact`.
    Exact,
    /// `Prefix`.
    Prefix,
    /// `ImplementationSpecific`.
    ImplementationSpecific,
    /// Anything else, as written.
    Other(Box<String>),
}

impl StoredPathType {
    /// The text as written.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Exact => "Exact",
            Self::Prefix => "Prefix",
            Self::ImplementationSpecific => "ImplementationSpecific",
            Self::Other(text) => text,
        }
    }
}

impl From<String> for StoredPathType {
    fn from(text: String) -> Self {
        match text.as_str() {
            "Exact" => Self::Exact,
            "Prefix" => Self::Prefix,
            "ImplementationSpecific" => Self::ImplementationSpecific,
            _ => Self::Other(Box::new(text)),
        }
    }
}

/// A backend (`IngressBackend`): a Service port, and whether a resource is named as well.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredBackend {
    /// `resource` is set (Ferry serves no resource backend).
    pub resource: bool,
    /// `service`.
    pub service: Option<StoredServiceBackend>,
}

/// `IngressServiceBackend`: a Service's name and port (`port.name`, `port.number`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredServiceBackend {
    /// `name`.
    pub name: Box<str>,
    /// `port`: `None` when absent; else its `name` and `number`.
    pub port: Option<(Option<Box<str>>, Option<i32>)>,
}

impl From<IngressBackend> for StoredBackend {
    fn from(backend: IngressBackend) -> Self {
        Self {
            resource: backend.resource.is_some(),
            service: backend.service.map(|s| StoredServiceBackend {
                name: s.name.into_boxed_str(),
                port: s.port.map(|p| (p.name.map(String::into_boxed_str), p.number)),
            }),
        }
    }
}

impl From<Ingress> for StoredIngress {
    fn from(ingress: Ingress) -> Self {
        let meta = ingress.metadata;
        let spec = ingress.spec.unwrap_or_default();
        let mut backends = Vec::new();
        let rules = spec.rules.unwrap_or_default().into_iter().map(|rule| StoredRule {
            host: rule.host,
            paths: rule.http.map(|http| {
                let paths = http.paths.into_iter().map(|p| StoredPath {
                    path: p.path.map(String::into_boxed_str),
                    path_type: p.path_type.into(),
                    backend: shared(&mut backends, p.backend.into()),
                });
                compact(paths)
            }),
        });
        let status = ingress.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress);
        Self {
            uid: meta.uid.map(Arc::from),
            generation: meta.generation,
            created: meta.creation_timestamp.map_or(0, |t| t.0.as_second()),
            annotations: meta.annotations.unwrap_or_default().into(),
            class_name: spec.ingress_class_name,
            default_backend: spec.default_backend.map(|b| Arc::new(b.into())),
            rules: compact(rules),
            tls: spec
                .tls
                .unwrap_or_default()
                .into_iter()
                .map(|t| (compact(t.hosts.unwrap_or_default().into_iter()), t.secret_name))
                .collect(),
            status: ip_or_hostname(status.unwrap_or_default().into_iter().map(|i| (i.ip, i.hostname))),
        }
    }
}

impl StoredIngress {
    /// Whether `self` and `other` differ at most in `status`: a new version that changes only
    /// the status (as each status write makes) changes nothing a route table is made of.
    pub fn same_but_status(&self, other: &Self) -> bool {
        // Taken apart, so a field added later is compared (or left out) on purpose.
        let Self {
            uid,
            generation,
            created,
            annotations,
            class_name,
            default_backend,
            rules,
            tls,
            status: _,
        } = self;
        *uid == other.uid
            && *generation == other.generation
            && *created == other.created
            && *annotations == other.annotations
            && *class_name == other.class_name
            && *default_backend == other.default_backend
            && *rules == other.rules
            && *tls == other.tls
    }
}

/// How many distinct values (the backends of one Ingress) [`shared`] looks through for one to
/// share: a linear search, so an Ingress naming more backends shares only those.
const SHARED: usize = 16;

/// `value` as one of `seen` if an equal one is there, else a new `Arc` (remembered): the paths
/// of an Ingress mostly name one of a few backends, which they share this way, as stored and
/// as translated.
pub(crate) fn shared<T: PartialEq>(seen: &mut Vec<Arc<T>>, value: T) -> Arc<T> {
    if let Some(same) = seen.iter().find(|v| ***v == value) {
        return Arc::clone(same);
    }
    let value = Arc::new(value);
    if seen.len() < SHARED {
        seen.push(Arc::clone(&value));
    }
    value
}

/// Load-balancer status entries (`ip`, `hostname`) → each one's IP, else its hostname, as
/// ingress-nginx lists them.
fn ip_or_hostname(entries: impl Iterator<Item = (Option<String>, Option<String>)>) -> Vec<String> {
    compact(entries.filter_map(|(ip, hostname)| ip.or(hostname)))
}

/// Collects `items` into a vector of their number. A list read from the API server's JSON has
/// room to spare (it grew as it was read), and a list collected from another one reuses the
/// other's memory when it can (`StoredPath`s in the room of the API's paths, twice as large):
/// kept as they are, the stores held 43 MiB of Ingresses at 10,000 instead of the 21 this
/// leaves (`benches/feed_memory.rs`).
fn compact<T>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut list: Vec<T> = items.collect();
    list.shrink_to_fit();
    list
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_naming_the_same_backend_share_it() {
        let ingress: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app", "namespace": "a"},
            "spec": {"rules": [
                {"host": "a.test", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}
                ]}},
                {"host": "b.test", "http": {"paths": [
                    {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/x", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
                ]}}
            ]}
        }))
        .unwrap();
        let stored = StoredIngress::from(ingress);
        let paths: Vec<&StoredPath> = stored.rules.iter().flat_map(|r| r.paths.iter().flatten()).collect();
        assert!(Arc::ptr_eq(&paths[0].backend, &paths[2].backend), "web:80 twice: one backend");
        assert!(!Arc::ptr_eq(&paths[0].backend, &paths[1].backend));
        assert!(!Arc::ptr_eq(&paths[0].backend, &paths[3].backend), "another port: another backend");
        assert_eq!(paths[3].backend.service.as_ref().unwrap().port, Some((Some("http".into()), None)));
    }

    #[test]
    fn a_path_takes_forty_bytes_and_keeps_an_unknown_type_as_written() {
        // 100,000 paths at 10,000 Ingresses: each 8 bytes is 0.8 MiB of the feed's heap.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<StoredPath>(), 40);
        let other = StoredPathType::from("Regex".to_owned());
        assert_eq!(other, StoredPathType::Other(Box::new("Regex".to_owned())));
        assert_eq!(other.as_str(), "Regex");
        assert_eq!(StoredPathType::from("Exact".to_owned()), StoredPathType::Exact);
        assert_eq!(
            StoredPathType::from("exact".to_owned()).as_str(),
            "exact",
            "the API's names are case-sensitive"
        );
    }

    #[test]
    fn sharing_looks_through_a_bounded_number_of_values() {
        let mut seen = Vec::new();
        let first: Vec<Arc<u32>> = (0..40).map(|n| shared(&mut seen, n)).collect();
        assert_eq!(seen.len(), SHARED);
        assert!(Arc::ptr_eq(&first[3], &shared(&mut seen, 3)), "one of the first: shared");
        assert!(!Arc::ptr_eq(&first[30], &shared(&mut seen, 30)), "past the bound: a new one, still equal");
        assert_eq!(*shared(&mut seen, 30), 30);
    }
}
