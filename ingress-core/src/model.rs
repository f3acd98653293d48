//! The input of the routing model: plain Rust descriptions of Ingress-like objects.
//!
//! These types mirror the shape of a Kubernetes `networking.k8s.io/v1` Ingress closely enough
//! that a translation is a field-by-field copy, but they carry no Kubernetes types, so a gateway
//! with no cluster can build them in code.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::RoutePolicy;

/// The object a rule came from: an Ingress (or anything playing its part).
///
/// Origins order conflicts: the oldest object (smallest `created`) wins, then namespace/name
/// order, so the outcome never depends on the order in which objects were added.
///
/// The names are shared (`Arc<str>`): a translation hands over the ones its object store keys
/// hold, and a table keeps an origin in every host block the object routes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Namespace of the object.
    pub namespace: Arc<str>,
    /// Name of the object.
    pub name: Arc<str>,
    /// Creation time, seconds since the Unix epoch (Kubernetes `metadata.creationTimestamp`).
    pub created: i64,
}

impl Origin {
    /// An origin with creation time 0; set [`Origin::created`] when age matters.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self { namespace: namespace.into(), name: name.into(), created: 0 }
    }

    /// The same origin with the given creation time (seconds since the Unix epoch).
    #[must_use]
    pub fn created_at(mut self, created: i64) -> Self {
        self.created = created;
        self
    }
}

impl Ord for Origin {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.created, &self.namespace, &self.name).cmp(&(other.created, &other.namespace, &other.name))
    }
}

impl PartialOrd for Origin {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service port, by number or by name (Kubernetes `ServiceBackendPort`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortRef {
    /// The Service port number.
    Number(u16),
    /// The Service port name.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

impl From<u16> for PortRef {
    fn from(n: u16) -> Self {
        PortRef::Number(n)
    }
}

impl From<&str> for PortRef {
    fn from(name: &str) -> Self {
        PortRef::Name(name.to_owned())
    }
}

/// A reference to a Service port: what a rule sends traffic to.
///
/// It is also the key of the backend's endpoint set in an
/// [`EndpointStore`](crate::EndpointStore). The names are shared (`Arc<str>`), as
/// [`Origin`]'s are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendRef {
    /// Namespace of the Service.
    pub namespace: Arc<str>,
    /// Name of the Service.
    pub service: Arc<str>,
    /// Which port of the Service.
    pub port: PortRef,
    /// Requests go to the Service's cluster IP instead of its endpoints (ingress-nginx's
    /// `service-upstream`): a backend of its own, with one endpoint.
    pub cluster_ip: bool,
}

impl BackendRef {
    /// A reference to `namespace/service:port`.
    pub fn new(
        namespace: impl Into<Arc<str>>,
        service: impl Into<Arc<str>>,
        port: impl Into<PortRef>,
    ) -> Self {
        Self { namespace: namespace.into(), service: service.into(), port: port.into(), cluster_ip: false }
    }

    /// The same Service port, reached through its cluster IP (`service-upstream`).
    pub fn via_cluster_ip(self) -> Self {
        Self { cluster_ip: true, ..self }
    }
}

impl fmt::Display for BackendRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)?;
        if self.cluster_ip {
            f.write_str(" (cluster IP)")?;
        }
        Ok(())
    }
}

/// How a rule's path is compared with the request path (Kubernetes `pathType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathType {
    /// The request path must equal the rule path, case-sensitively.
    Exact,
    /// Element-wise prefix match on `/`-separated segments; a trailing slash is ignored.
    Prefix,
    /// Left to the controller. Ferry treats it as [`PathType::Prefix`].
    ImplementationSpecific,
}

impl fmt::Display for PathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        })
    }
}

/// One path of a host rule (Kubernetes `HTTPIngressPath`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The path, starting with `/` (boxed: a table keeps every path it routes, and a `String`'s
    /// spare-room field took 8 of a path's 40 bytes).
    pub path: Box<str>,
    /// How `path` is compared with the request path.
    pub path_type: PathType,
    /// Where matching requests go. Shared: the paths of an Ingress mostly name a few
    /// backends, and a path takes 40 bytes this way where it took 112 (a third of the
    /// translation's memory at 100,000 paths was paths).
    pub backend: Arc<BackendRef>,
}

impl PathRule {
    /// A path rule of any type (`backend` a [`BackendRef`], or one shared with other paths).
    pub fn new(path: impl Into<Box<str>>, path_type: PathType, backend: impl Into<Arc<BackendRef>>) -> Self {
        Self { path: path.into(), path_type, backend: backend.into() }
    }

    /// A `Prefix` path rule.
    pub fn prefix(path: impl Into<Box<str>>, backend: impl Into<Arc<BackendRef>>) -> Self {
        Self::new(path, PathType::Prefix, backend)
    }

    /// An `Exact` path rule.
    pub fn exact(path: impl Into<Box<str>>, backend: impl Into<Arc<BackendRef>>) -> Self {
        Self::new(path, PathType::Exact, backend)
    }
}

/// A host and its paths (Kubernetes `IngressRule`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostRule {
    /// `None` matches every host; otherwise an exact name or a `*.` single-label wildcard.
    pub host: Option<String>,
    /// The paths served under this host.
    pub paths: Vec<PathRule>,
}

impl HostRule {
    /// A rule for `host` with no paths yet.
    pub fn host(host: impl Into<String>) -> Self {
        Self { host: Some(host.into()), paths: Vec::new() }
    }

    /// A rule that matches every host.
    pub fn any_host() -> Self {
        Self { host: None, paths: Vec::new() }
    }

    /// The same rule with one more path.
    #[must_use]
    pub fn path(mut self, path: PathRule) -> Self {
        self.paths.push(path);
        self
    }
}

/// A reference to a TLS certificate and key (a Kubernetes `kubernetes.io/tls` Secret).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertificateRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
}

impl CertificateRef {
    /// A reference to the Secret `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for CertificateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A TLS entry: which hosts a certificate serves (Kubernetes `IngressTLS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRule {
    /// Hosts (exact or `*.` wildcard) the certificate is for. Empty means every host of the
    /// Ingress's rules.
    pub hosts: Vec<String>,
    /// The certificate to present.
    pub certificate: CertificateRef,
}

/// One Ingress: the unit that rules come from, conflicts are judged by, and rejections name.
///
/// # Examples
///
/// ```
/// use ingress_core::{BackendRef, HostRule, Ingress, Origin, PathRule};
///
/// let ingress = Ingress::new(Origin::new("default", "demo-ingress"))
///     .rule(HostRule::host("demo.example.com")
///         .path(PathRule::prefix("/", BackendRef::new("default", "demo-app", 80))));
/// assert_eq!(ingress.rules.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    /// Which object this is.
    pub origin: Origin,
    /// Where requests for this Ingress's hosts go when no path matches; for an Ingress without
    /// rules, where every otherwise unmatched request goes. Behind a pointer, like the other
    /// fields most Ingresses leave unset: each `Ingress` is kept as long as it exists, and they
    /// would otherwise make it hundreds of bytes larger.
    pub default_backend: Option<Arc<BackendRef>>,
    /// Host rules, in the order written.
    pub rules: Vec<HostRule>,
    /// TLS entries, in the order written.
    pub tls: Vec<TlsRule>,
    /// What the Ingress's routes (its paths and its default backend) do besides routing.
    pub policy: Arc<RoutePolicy>,
    /// The Ingress has a TLS section, even if none of its entries made it into `tls` (no
    /// Secret, a bad one): its rule hosts are served over TLS all the same (with the default
    /// certificate), as ingress-nginx serves them. See [`RouteTable::serves_tls`](crate::RouteTable::serves_tls).
    pub tls_section: bool,
    /// Set for a canary Ingress (`canary: "true"`): it adds no routes; each of its paths splits
    /// the traffic of the route with the same host, path and path type (another Ingress's) by
    /// this rule. See [`CanaryRule`](crate::CanaryRule).
    pub canary: Option<Box<crate::CanaryRule>>,
    /// Where this Ingress's routes send requests while their own backend has no ready
    /// endpoint (`default-backend`), instead of answering `503`.
    pub fallback: Option<Arc<BackendRef>>,
    /// More names for the hosts of this Ingress's rules (`server-alias`): each serves what its
    /// host serves, unless it is a host of its own. The oldest Ingress that names aliases for
    /// a host sets them, as in ingress-nginx.
    pub aliases: Vec<String>,
    /// `from-to-www-redirect`: requests for the `www.` twin of each exact host of this
    /// Ingress's rules (or, for a `www.` host, for the name without it) are redirected to it,
    /// unless the twin is a host of its own. See [`RouteTable::host_redirect`](crate::RouteTable::host_redirect).
    pub www_redirect: bool,
    /// `ssl-passthrough`: TLS connections whose server name is one of this Ingress's rule
    /// hosts are not terminated but passed, as they are, to the backend of the host's `/`
    /// path. See [`RouteTable::passthrough`](crate::RouteTable::passthrough).
    pub ssl_passthrough: bool,
    /// Client certificates for the hosts of this Ingress's rules (`auth-tls-*`); the oldest
    /// Ingress of a host that has them sets them, as ingress-nginx's server-level settings.
    pub client_auth: Option<std::sync::Arc<crate::ClientAuth>>,
}

impl Ingress {
    /// An Ingress with no rules yet.
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            default_backend: None,
            rules: Vec::new(),
            tls: Vec::new(),
            policy: no_policy(),
            tls_section: false,
            canary: None,
            fallback: None,
            aliases: Vec::new(),
            www_redirect: false,
            ssl_passthrough: false,
            client_auth: None,
        }
    }

    /// The same Ingress with one more host rule.
    #[must_use]
    pub fn rule(mut self, mut rule: HostRule) -> Self {
        // Kept for the Ingress's life: no room for paths that will never come.
        rule.paths.shrink_to_fit();
        self.rules.push(rule);
        self
    }

    /// The same Ingress with a default backend.
    #[must_use]
    pub fn default_backend(mut self, backend: BackendRef) -> Self {
        self.default_backend = Some(Arc::new(backend));
        self
    }

    /// The same Ingress with a policy for all its routes.
    #[must_use]
    pub fn policy(mut self, policy: RoutePolicy) -> Self {
        self.policy = if policy == RoutePolicy::default() { no_policy() } else { Arc::new(policy) };
        self
    }

    /// The same Ingress with a fallback backend for its routes ([`Ingress::fallback`]).
    #[must_use]
    pub fn fallback(mut self, backend: BackendRef) -> Self {
        self.fallback = Some(Arc::new(backend));
        self
    }

    /// The same Ingress as a canary of the routes it names ([`Ingress::canary`]).
    #[must_use]
    pub fn as_canary(mut self, rule: crate::CanaryRule) -> Self {
        self.canary = Some(Box::new(rule));
        self
    }

    /// The same Ingress with more names for its rules' hosts ([`Ingress::aliases`]).
    #[must_use]
    pub fn aliases(mut self, aliases: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.aliases.extend(aliases.into_iter().map(Into::into));
        self
    }

    /// The same Ingress, redirecting the `www.` twins of its hosts ([`Ingress::www_redirect`]).
    #[must_use]
    pub fn with_www_redirect(mut self) -> Self {
        self.www_redirect = true;
        self
    }

    /// The same Ingress, asking its hosts' clients for certificates ([`Ingress::client_auth`]).
    #[must_use]
    pub fn with_client_auth(mut self, auth: crate::ClientAuth) -> Self {
        self.client_auth = Some(std::sync::Arc::new(auth));
        self
    }

    /// The same Ingress, passing TLS through to its hosts' `/` backends
    /// ([`Ingress::ssl_passthrough`]).
    #[must_use]
    pub fn with_ssl_passthrough(mut self) -> Self {
        self.ssl_passthrough = true;
        self
    }

    /// The same Ingress, marked as having a TLS section ([`Ingress::tls_section`]).
    #[must_use]
    pub fn with_tls_section(mut self) -> Self {
        self.tls_section = true;
        self
    }

    /// The same Ingress with one more TLS entry.
    #[must_use]
    pub fn tls(
        mut self,
        hosts: impl IntoIterator<Item = impl Into<String>>,
        certificate: CertificateRef,
    ) -> Self {
        self.tls.push(TlsRule { hosts: hosts.into_iter().map(Into::into).collect(), certificate });
        self
    }
}

/// The empty policy, one allocation shared by every Ingress without a policy of its own (a
/// `RoutePolicy` is a few hundred bytes: one per Ingress would cost tens of bytes per route).
fn no_policy() -> Arc<RoutePolicy> {
    static EMPTY: std::sync::LazyLock<Arc<RoutePolicy>> = std::sync::LazyLock::new(Arc::default);
    Arc::clone(&EMPTY)
}

/// A Service's port, used to resolve [`PortRef::Name`] and to check port numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name, if it has one.
    pub name: Option<String>,
    /// The port number.
    pub port: u16,
}

/// A Service known to the builder: lets it resolve named ports and reject unknown ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Namespace of the Service (the builder keeps this name, shared: pass the one the
    /// Service is stored under).
    pub namespace: Arc<str>,
    /// Name of the Service (kept, shared, as the namespace).
    pub name: Arc<str>,
    /// The Service's ports.
    pub ports: Vec<ServicePort>,
}
