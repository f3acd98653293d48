//! The TLS SNI map: which certificate a TLS handshake for a server name gets.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::host::{HostBuf, wildcard_suffix};
use crate::{CertificateRef, HostPattern, Origin};

/// The PEM text of a certificate chain and its private key, as found in a
/// `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`). The model does not parse it; whoever made
/// it may attach what it parsed it into while checking it ([`CertificatePem::with_prepared`]),
/// so the proxy does not parse it again; else the proxy parses it, once per distinct content.
#[derive(Clone)]
pub struct CertificatePem {
    /// The certificate chain, leaf first, PEM encoded.
    pub chain: String,
    /// The private key, PEM encoded.
    pub key: String,
    /// The parsed form, of a type producer and consumer agree on (not part of equality).
    prepared: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl CertificatePem {
    /// Material from PEM text, nothing prepared.
    pub fn new(chain: impl Into<String>, key: impl Into<String>) -> Self {
        Self { chain: chain.into(), key: key.into(), prepared: None }
    }

    /// The same material with its parsed form attached: parsing a private key takes most of a
    /// millisecond, and a controller that checked a Secret has already done it.
    pub fn with_prepared(mut self, prepared: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self.prepared = Some(prepared);
        self
    }

    /// The parsed form, if one of type `T` is attached.
    pub fn prepared<T: std::any::Any>(&self) -> Option<&T> {
        self.prepared.as_deref()?.downcast_ref()
    }
}

impl PartialEq for CertificatePem {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain && self.key == other.key
    }
}

impl Eq for CertificatePem {}

impl std::fmt::Debug for CertificatePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("CertificatePem").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

/// One host → certificate entry, with the Ingress that declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsEntry {
    /// The host (exact or wildcard) the certificate serves.
    pub host: HostPattern,
    /// The certificate.
    pub certificate: CertificateRef,
    /// The Ingress whose `spec.tls` declared it, `None` for the controller's default.
    pub origin: Option<Origin>,
}

/// Host (exact or wildcard) → certificate, plus a default certificate.
///
/// Lookup order for a server name: exact host, then single-label wildcard, then the default.
///
/// # Examples
///
/// ```
/// use ingress_core::{CertificateRef, EndpointStore, Ingress, Origin, TableBuilder};
///
/// let mut builder = TableBuilder::new();
/// builder.ingress(Ingress::new(Origin::new("default", "web"))
///     .default_backend(ingress_core::BackendRef::new("default", "web", 80))
///     .tls(["*.example.com"], CertificateRef::new("default", "wildcard-tls")));
/// builder.default_certificate(CertificateRef::new("ingress-ferry", "default-tls"));
/// let table = builder.build(&mut EndpointStore::new()).table;
///
/// let tls = table.tls();
/// assert_eq!(tls.certificate_for(Some("a.example.com")).unwrap().certificate.name, "wildcard-tls");
/// assert_eq!(tls.certificate_for(Some("example.com")).unwrap().certificate.name, "default-tls");
/// assert_eq!(tls.certificate_for(None).unwrap().certificate.name, "default-tls");
/// ```
#[derive(Debug, Default)]
pub struct TlsMap {
    /// Which certificate each host gets: shared by the next map while no claim changed, so a
    /// certificate's new content (a Secret updated) costs a new map of two pointers.
    pub(crate) hosts: Arc<TlsHosts>,
    pub(crate) material: Arc<HashMap<CertificateRef, Arc<CertificatePem>>>,
}

/// The host → certificate part of a [`TlsMap`].
#[derive(Debug, Default)]
pub(crate) struct TlsHosts {
    pub(crate) entries: Vec<TlsEntry>,
    pub(crate) exact: HashMap<Box<str>, u32, RandomState>,
    pub(crate) wildcard: HashMap<Box<str>, u32, RandomState>,
    pub(crate) default: Option<TlsEntry>,
    /// A hash of the entries (see [`TlsHosts::fingerprint`]), made at the first call.
    fingerprint: std::sync::OnceLock<u64>,
}

impl TlsHosts {
    pub(crate) fn insert(&mut self, entry: TlsEntry) {
        let index = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        match &entry.host {
            HostPattern::Exact(h) => {
                self.exact.insert(h.as_str().into(), index);
            }
            HostPattern::Wildcard(s) => {
                self.wildcard.insert(s.as_str().into(), index);
            }
            HostPattern::Any => return,
        }
        self.entries.push(entry);
    }

    /// A hash of each host's certificate name (not its content), in any order: the TLS part of
    /// [`RouteTable::fingerprint`](crate::RouteTable::fingerprint). Made once per map of hosts,
    /// which successive tables share.
    pub(crate) fn fingerprint(&self) -> u64 {
        *self.fingerprint.get_or_init(|| {
            use std::hash::BuildHasher;
            let mut tls: Vec<(String, &CertificateRef)> =
                self.entries.iter().map(|e| (e.host.to_string(), &e.certificate)).collect();
            tls.sort_unstable();
            foldhash::fast::FixedState::default().hash_one(&tls)
        })
    }
}

impl TlsMap {
    /// The certificate for a TLS server name (SNI); `None` as the name means the client sent
    /// none. Returns `None` only when no entry matches and there is no default certificate.
    pub fn certificate_for(&self, server_name: Option<&str>) -> Option<&TlsEntry> {
        let mut buf: HostBuf = [0; 254];
        // Handshakes are rarer than requests: the buffer's cost does not matter here.
        if let Some(name) = server_name.and_then(|n| crate::normalize_host(n, &mut buf)) {
            let hosts = &*self.hosts;
            let hit =
                hosts.exact.get(name).or_else(|| wildcard_suffix(name).and_then(|s| hosts.wildcard.get(s)));
            if let Some(&i) = hit {
                return Some(&hosts.entries[i as usize]);
            }
        }
        self.hosts.default.as_ref()
    }

    /// Every entry, in no particular order (without the default).
    pub fn entries(&self) -> &[TlsEntry] {
        &self.hosts.entries
    }

    /// The default certificate, if one was configured.
    pub fn default_certificate(&self) -> Option<&CertificateRef> {
        self.hosts.default.as_ref().map(|e| &e.certificate)
    }

    /// Every distinct certificate the map can hand out, the default included.
    pub fn certificates(&self) -> Vec<&CertificateRef> {
        let mut all: Vec<&CertificateRef> =
            self.hosts.entries.iter().chain(self.hosts.default.as_ref()).map(|e| &e.certificate).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The PEM material registered for a certificate with
    /// [`TableBuilder::certificate`](crate::TableBuilder::certificate), if any.
    pub fn material(&self, certificate: &CertificateRef) -> Option<&Arc<CertificatePem>> {
        self.material.get(certificate)
    }
}
