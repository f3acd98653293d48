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
    pub(crate) material: CertificateMaterial,
}

/// Shards of a [`CertificateMaterial`]: a change copies one, about 1/64 of the certificates.
const SHARDS: usize = 64;

type Shard = HashMap<CertificateRef, Arc<CertificatePem>, foldhash::fast::FixedState>;

/// The PEM material of every certificate, by certificate: what a table carries to the proxy.
/// Cloning one is cloning an `Arc`, and changing the clone copies only the shard the
/// certificate is in, so successive builders and tables share what did not change (at 5,000
/// certificates, a copy of the whole map cost about 2 ms per Secret change).
#[derive(Debug, Clone, Default)]
pub struct CertificateMaterial {
    shards: Arc<Vec<Arc<Shard>>>,
    len: usize,
}

impl PartialEq for CertificateMaterial {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(c, pem)| other.get(c).is_some_and(|o| **o == **pem))
    }
}

impl CertificateMaterial {
    fn shard(certificate: &CertificateRef) -> usize {
        use std::hash::BuildHasher;
        // A fixed seed: a certificate is in the same shard in every copy.
        (foldhash::fast::FixedState::default().hash_one(certificate) % SHARDS as u64) as usize
    }

    /// The material of `certificate`.
    pub fn get(&self, certificate: &CertificateRef) -> Option<&Arc<CertificatePem>> {
        self.shards.get(Self::shard(certificate))?.get(certificate)
    }

    /// Registers (or replaces) the material of `certificate`.
    pub fn insert(&mut self, certificate: CertificateRef, pem: Arc<CertificatePem>) {
        let shards = Arc::make_mut(&mut self.shards);
        if shards.is_empty() {
            shards.resize_with(SHARDS, Arc::default);
        }
        let at = Self::shard(&certificate);
        if let Some(shard) = shards.get_mut(at) {
            self.len += usize::from(Arc::make_mut(shard).insert(certificate, pem).is_none());
        }
    }

    /// Takes the material of `certificate` out.
    pub fn remove(&mut self, certificate: &CertificateRef) {
        let at = Self::shard(certificate);
        if !self.shards.get(at).is_some_and(|s| s.contains_key(certificate)) {
            return;
        }
        if let Some(shard) = Arc::make_mut(&mut self.shards).get_mut(at) {
            self.len -= usize::from(Arc::make_mut(shard).remove(certificate).is_some());
        }
    }

    /// Every certificate with its material, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&CertificateRef, &Arc<CertificatePem>)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// How many certificates have material.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no certificate has material.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether two are the same version (one cloned from the other, neither changed since).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shards, &other.shards)
    }
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
    /// Every distinct certificate (see [`TlsMap::certificates`]), made at the first call.
    certificates: std::sync::OnceLock<Vec<CertificateRef>>,
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

    /// Every distinct certificate the map can hand out, the default included, sorted. Made once
    /// per map of hosts, which successive tables share while no claim changed (the proxy reads
    /// it at every install).
    pub fn certificates(&self) -> &[CertificateRef] {
        let hosts = &*self.hosts;
        hosts.certificates.get_or_init(|| {
            let mut all: Vec<CertificateRef> =
                hosts.entries.iter().chain(hosts.default.as_ref()).map(|e| e.certificate.clone()).collect();
            all.sort_unstable();
            all.dedup();
            all
        })
    }

    /// The PEM material registered for a certificate with
    /// [`TableBuilder::certificate`](crate::TableBuilder::certificate), if any.
    pub fn material(&self, certificate: &CertificateRef) -> Option<&Arc<CertificatePem>> {
        self.material.get(certificate)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn cert(name: &str) -> CertificateRef {
        CertificateRef { namespace: "default".into(), name: name.into() }
    }

    /// A change to a copy copies one shard: the rest stay shared with the original, which is
    /// unchanged.
    #[test]
    fn material_changes_copy_one_shard() {
        let mut material = CertificateMaterial::default();
        for i in 0..500 {
            material
                .insert(cert(&format!("c{i}")), Arc::new(CertificatePem::new(format!("chain {i}"), "key")));
        }
        assert_eq!((material.len(), material.iter().count()), (500, 500));
        let before = material.clone();
        assert!(before.same(&material) && before == material);
        let new = Arc::new(CertificatePem::new("renewed", "key"));
        material.insert(cert("c7"), Arc::clone(&new));
        material.remove(&cert("c8"));
        material.remove(&cert("absent"));
        assert_eq!(material.len(), 499);
        assert!(Arc::ptr_eq(material.get(&cert("c7")).unwrap(), &new));
        assert!(material.get(&cert("c8")).is_none() && before.get(&cert("c8")).is_some());
        assert_eq!(before.get(&cert("c7")).unwrap().chain, "chain 7", "the original is unchanged");
        assert!(!before.same(&material) && before != material);
        let shared =
            before.shards.iter().zip(material.shards.iter()).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        let changed = [cert("c7"), cert("c8")].iter().map(CertificateMaterial::shard).collect::<HashSet<_>>();
        assert_eq!(shared, SHARDS - changed.len());
    }
}
