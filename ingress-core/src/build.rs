//! The builder: validates Ingress-like input and compiles it into a [`RouteTable`].

mod block;
mod global;
mod ingress;
mod rebuild;
mod services;
mod tls_map;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use rebuild::Rebuilder;

use crate::{
    BackendRef, CertificateMaterial, CertificatePem, CertificateRef, EndpointStore, Ingress, PortRef, Reason,
    Rejection, RouteTable, Service, StreamProtocol, StreamService,
};

use services::Services;

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
    /// A list of Ingresses the caller keeps between builds (see [`Self::ingress_list`]).
    list: Arc<Vec<Arc<Ingress>>>,
    /// The list's version and what changed in it, when the caller says so
    /// ([`Self::ingress_list_changed`]).
    list_changes: Option<ListChanges>,
    ingresses: Vec<Arc<Ingress>>,
    services: Services,
    default_backend: Option<BackendRef>,
    default_certificate: Option<CertificateRef>,
    certificates: CertificateMaterial,
    /// TCP and UDP services by protocol and port.
    streams: BTreeMap<(StreamProtocol, u16), StreamService>,
}

/// One version of an Ingress list handed to builders: unique in the process, so a [`Rebuilder`]
/// can tell whether the changes it is given start from the list it last built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListVersion(u64);

impl ListVersion {
    /// A version no list had before.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What changed in an Ingress list from one version to the next
/// ([`TableBuilder::ingress_list_changed`]).
#[derive(Debug, Clone)]
pub struct ListChanges {
    /// The version of the list as handed over before, when known (`None`: read the whole list).
    pub since: Option<ListVersion>,
    /// This version.
    pub version: ListVersion,
    /// The Ingresses taken out of the list since (the `Arc`s the list held).
    pub removed: Vec<Arc<Ingress>>,
    /// The Ingresses put in since (a changed Ingress is taken out and put in again).
    pub added: Vec<Arc<Ingress>>,
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

    /// Adds every Ingress of `list`, in place of the list given before, if any: a caller that
    /// keeps all its Ingresses in one list between builds hands it over whole, which costs
    /// nothing however long it is (and, once the builder is dropped, can change it in place
    /// again with [`Arc::make_mut`]).
    pub fn ingress_list(&mut self, list: Arc<Vec<Arc<Ingress>>>) -> &mut Self {
        self.list = list;
        self.list_changes = None;
        self
    }

    /// As [`Self::ingress_list`], saying which version of the list this is and what changed
    /// since the version handed over before. A [`Rebuilder`] whose last build had that earlier
    /// version (and no Ingress besides the list) then reads only the changes, not the list: a
    /// build costs what changed, however long the list. The changes must be exact; a rebuilder
    /// that finds them inconsistent with what it built reads the whole list.
    pub fn ingress_list_changed(&mut self, list: Arc<Vec<Arc<Ingress>>>, changes: ListChanges) -> &mut Self {
        self.list = list;
        self.list_changes = Some(changes);
        self
    }

    /// Every Ingress added, the list's first.
    fn all_ingresses(&self) -> impl Iterator<Item = &Arc<Ingress>> {
        self.list.iter().chain(&self.ingresses)
    }

    /// Declares a Service, so backends naming it resolve named ports to numbers and refer to
    /// ports it has. Backends of undeclared Services are kept as written.
    pub fn service(&mut self, service: Service) -> &mut Self {
        self.services.insert(&service.namespace, service.name, service.ports);
        self
    }

    /// Takes out a Service declared before (a builder kept from one build to the next, as a
    /// translation cache keeps one, learns of a deleted Service this way).
    pub fn forget_service(&mut self, namespace: &str, name: &str) -> &mut Self {
        self.services.remove(namespace, name);
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
    /// be left out, so its hosts get the default certificate. Hand over the same `Arc` while the
    /// material is unchanged: the proxy parses material once per `Arc`.
    pub fn certificate(
        &mut self,
        certificate: CertificateRef,
        pem: impl Into<Arc<CertificatePem>>,
    ) -> &mut Self {
        self.certificates.insert(certificate, pem.into());
        self
    }

    /// Registers the material of every certificate at once, replacing any registered before,
    /// as one shared map ([`TableBuilder::certificate`] for each). A [`Rebuilder`] handed the
    /// same map (the same `Arc`) as its last build knows without reading it that no certificate
    /// changed.
    pub fn certificates(&mut self, all: CertificateMaterial) -> &mut Self {
        self.certificates = all;
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
        Rebuilder::new().build(self, endpoints)
    }
}

/// Resolves a backend's port against the declared Services: `Ok(None)` keeps the backend as
/// written (undeclared Service, or already the port number), `Ok(Some)` is the named port
/// resolved to its number.
fn resolve(backend: &BackendRef, services: &Services) -> Result<Option<BackendRef>, Reason> {
    let Some(ports) = services.get(&backend.namespace, &backend.service) else {
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
            namespace: backend.namespace.to_string(),
            service: backend.service.to_string(),
            port: *n,
        }),
        (None, PortRef::Name(name)) => Err(Reason::UnknownPortName {
            namespace: backend.namespace.to_string(),
            service: backend.service.to_string(),
            port: name.clone(),
        }),
    }
}

fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
