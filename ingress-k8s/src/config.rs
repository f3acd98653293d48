//! The controller's settings: built once by the binary from its flags, never from the
//! environment here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;

/// A `namespace/name` pair, as flags like `--configmap ns/name` spell objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectName {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }

    /// The object's store key.
    pub fn key(&self) -> crate::Key {
        (self.namespace.as_str().into(), self.name.as_str().into())
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for ObjectName {
    type Err = Error;

    /// Parses `namespace/name`; both parts must be non-empty.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self::new(ns, name))
            }
            _ => {
                Err(Error::Config { field: "namespace/name", why: format!("`{s}` is not `namespace/name`") })
            }
        }
    }
}

/// Everything the Kubernetes feed needs to know, with ingress-nginx-like defaults.
///
/// # Examples
///
/// ```
/// let config = ingress_k8s::Config { ingress_class: "nginx".into(), ..Default::default() };
/// assert_eq!(config.controller_name, "ferry.dev/ingress-controller");
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Our class name (`--ingress-class`): matched against the legacy
    /// `kubernetes.io/ingress.class` annotation.
    pub ingress_class: String,
    /// Our controller value (`--controller-class`): an IngressClass whose `spec.controller`
    /// equals it is ours.
    pub controller_name: String,
    /// Also serve Ingresses with no class at all (`--watch-ingress-without-class`).
    pub watch_ingress_without_class: bool,
    /// The IngressClass named `ingress_class` is ours whatever its `spec.controller`
    /// (`--ingress-class-by-name`).
    pub ingress_class_by_name: bool,
    /// Ingresses with `spec.defaultBackend` are left out (`--disable-catch-all`).
    pub disable_catch_all: bool,
    /// Watch only this namespace (`--watch-namespace`); `None` watches all.
    pub watch_namespace: Option<String>,
    /// Serve only the Ingresses of namespaces whose labels this selects
    /// (`--watch-namespace-selector`); the Namespaces are watched with it.
    pub watch_namespace_selector: Option<crate::LabelSelector>,
    /// The ConfigMap whose data is published with each table (`--configmap`).
    pub configmap: Option<ObjectName>,
    /// The Service that gets requests no rule matches (`--default-backend-service`); its first
    /// port is used. `None`: the proxy answers `default backend - 404` itself.
    pub default_backend_service: Option<ObjectName>,
    /// The TLS Secret for handshakes no Ingress claims (`--default-ssl-certificate`); like
    /// every Secret it is read from the watched `kubernetes.io/tls` Secrets.
    pub default_ssl_certificate: Option<ObjectName>,
    /// The Service whose load-balancer address (else external IPs) goes into Ingress status
    /// (`--publish-service`). It is read from the watched Services, so with `watch_namespace`
    /// set it must live in that namespace.
    pub publish_service: Option<ObjectName>,
    /// Addresses for Ingress status instead of a Service (`--publish-status-address`).
    pub publish_status_address: Vec<String>,
    /// Whether to write Ingress status at all (`--update-status`).
    pub update_status: bool,
    /// Whether to record Kubernetes Events on Ingresses.
    pub emit_events: bool,
    /// The Lease name for leader election (`--election-id`).
    pub election_id: String,
    /// The namespace of the Lease (usually the controller's own).
    pub election_namespace: String,
    /// This replica's identity in the Lease (usually the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews (and others retry).
    pub lease_renew: Duration,
    /// How long at most changes are gathered into one rebuild after a rebuild: as long as the
    /// last rebuild took, up to this (a lone change is applied at once; only changes following
    /// within the window wait for it).
    pub coalesce_window: Duration,
    /// How often the manifest source looks for changed files (standalone mode).
    pub manifest_poll: Duration,
    /// The prefix of the annotations read (`--annotations-prefix`), ingress-nginx's by default.
    pub annotations_prefix: String,
    /// The ConfigMap of TCP services (`--tcp-services-configmap`): port → Service port.
    pub tcp_services_configmap: Option<ObjectName>,
    /// The ConfigMap of UDP services (`--udp-services-configmap`).
    pub udp_services_configmap: Option<ObjectName>,
    /// The ports the controller listens on itself (HTTP, HTTPS, admin): a stream service
    /// cannot take them.
    pub reserved_ports: Vec<u16>,
    /// TLS passthrough is on (`--enable-ssl-passthrough`): the `ssl-passthrough` annotation
    /// applies.
    pub ssl_passthrough: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ingress_class: "ferry".into(),
            controller_name: "ferry.dev/ingress-controller".into(),
            watch_ingress_without_class: false,
            ingress_class_by_name: false,
            disable_catch_all: false,
            watch_namespace: None,
            watch_namespace_selector: None,
            configmap: None,
            default_backend_service: None,
            default_ssl_certificate: None,
            publish_service: None,
            publish_status_address: Vec::new(),
            update_status: true,
            emit_events: true,
            election_id: "ingress-ferry-leader".into(),
            election_namespace: "ingress-ferry".into(),
            identity: "ferry".into(),
            lease_duration: Duration::from_secs(15),
            lease_renew: Duration::from_secs(2),
            coalesce_window: Duration::from_millis(5),
            manifest_poll: Duration::from_millis(500),
            annotations_prefix: crate::annotations::DEFAULT_PREFIX.into(),
            tcp_services_configmap: None,
            udp_services_configmap: None,
            reserved_ports: Vec::new(),
            ssl_passthrough: false,
        }
    }
}
