//! Services and EndpointSlices as the stores keep them: only what translation reads.
//!
//! A cluster has two of these for every Ingress, and the API server's objects carry far more
//! than routing needs (a Service's selector, IP families, cluster IPs list; a slice's Pod
//! references, node and zone names, the conditions of endpoints that are not ready). Kept
//! whole, they were the largest part of the feed's heap at 10,000 Ingresses (92 of 256 MiB in
//! `benches/feed_memory.rs`; 13 MiB as stored here). Their names are the store keys, so they
//! are not kept twice.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

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
            ports: ports
                .map(|p| StoredServicePort { name: p.name, port: p.port, protocol: p.protocol })
                .collect(),
            cluster_ip: spec.cluster_ip.and_then(|ip| ip.parse().ok()),
            external_ips: spec.external_ips.unwrap_or_default(),
            load_balancer: load_balancer
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.ip.or(i.hostname))
                .collect(),
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
        self.service.as_ref().map(|name| (key.0.clone(), name.clone()))
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
        Self { service, ports: ports.map(|p| (p.name.unwrap_or_default(), p.port)).collect(), ready }
    }
}
