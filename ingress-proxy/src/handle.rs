//! The snapshot handle: how the controller hands the proxy a new routing table, and how each
//! request finds the current one without taking a lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::{ArcSwap, ArcSwapOption};
use ingress_core::{CertificateRef, Ingress, RouteTable};

use crate::Error;
use crate::config::RuntimeSettings;
use crate::metrics::{Gone, Metrics};
use crate::tls::{CertCache, ParsedCert};

/// One installed snapshot: the table (routes, endpoints slots, TLS map with PEM) plus the
/// certificates parsed from it.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) table: Arc<RouteTable>,
    certs: HashMap<CertificateRef, Arc<ParsedCert>>,
}

impl Snapshot {
    /// The parsed certificate for a server name: the table's choice (exact, wildcard, default)
    /// when it parsed, else the table's default certificate, else `None` (the start-up
    /// default applies).
    pub(crate) fn certificate_for(&self, server_name: Option<&str>) -> Option<Arc<ParsedCert>> {
        let tls = self.table.tls();
        tls.certificate_for(server_name)
            .and_then(|entry| self.certs.get(&entry.certificate))
            .or_else(|| tls.default_certificate().and_then(|c| self.certs.get(c)))
            .cloned()
    }
}

/// State shared by the handle, the request path, the TLS callback and the admin endpoints.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) snapshot: ArcSwapOption<Snapshot>,
    pub(crate) settings: ArcSwap<RuntimeSettings>,
    generation: AtomicU64,
    swaps: AtomicU64,
    certs: Mutex<CertCache>,
    /// Ingresses per annotation verdict, as the feed last counted them.
    verdicts: Mutex<Vec<(String, u64)>>,
    /// The per-client counts of the Ingresses with limits (`limit-rps`…) and the verified
    /// credentials, kept across tables.
    pub(crate) state: crate::pipeline::State,
    /// The generation of each install, for those that act on installs (the stream listeners).
    pub(crate) installs: tokio::sync::watch::Sender<u64>,
    /// The installed table's [`RouteTable::fingerprint`], when a table of another fingerprint
    /// was last installed (Unix seconds), and how many times that happened: ingress-nginx's
    /// `config_hash`, reload timestamp and reload count (a table built again from unrelated
    /// changes is not a reload).
    installed: Mutex<(u64, u64, u64)>,
    /// The metrics of the proxies serving from this handle, for
    /// [`ProxyHandle::forget_ingresses`].
    pub(crate) metrics: Mutex<Vec<Weak<Metrics>>>,
}

/// What [`ProxyHandle::install`] did.
#[derive(Debug)]
pub struct Installed {
    /// The generation number of the snapshot now serving (1 for the first).
    pub generation: u64,
    /// Certificates that could not be parsed; their hosts get the default certificate.
    pub certificate_errors: Vec<Error>,
}

/// A cheap, cloneable handle to a proxy's live state: install routing snapshots and change
/// runtime settings while it serves.
///
/// Requests load the current snapshot once, lock-free (`arc-swap`), and keep it for their whole
/// life, so an install never stalls or changes a request in flight; new requests and new TLS
/// handshakes see the new snapshot immediately. Endpoint changes need no install at all: they
/// flow through the [`EndpointStore`](ingress_core::EndpointStore) slots the table shares.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use ingress_core::{EndpointStore, TableBuilder};
/// use ingress_proxy::{ProxyHandle, RuntimeSettings};
///
/// let handle = ProxyHandle::new();
/// assert!(!handle.is_ready());
/// let table = TableBuilder::new().build(&mut EndpointStore::new()).table;
/// let installed = handle.install(Arc::new(table));
/// assert_eq!(installed.generation, 1);
/// assert!(handle.is_ready());
/// handle.set_settings(RuntimeSettings { access_log: false, ..RuntimeSettings::default() });
/// assert!(!handle.settings().access_log);
/// ```
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    pub(crate) shared: Arc<Shared>,
}

impl Default for ProxyHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyHandle {
    /// A handle with no snapshot (the proxy answers the built-in 404 and `/readyz` says not
    /// ready) and default settings.
    pub fn new() -> Self {
        Self::with_settings(RuntimeSettings::default())
    }

    /// A handle with no snapshot and the given settings.
    pub fn with_settings(settings: RuntimeSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                snapshot: ArcSwapOption::empty(),
                settings: ArcSwap::from_pointee(settings),
                generation: AtomicU64::new(0),
                swaps: AtomicU64::new(0),
                certs: Mutex::new(CertCache::default()),
                verdicts: Mutex::new(Vec::new()),
                state: crate::pipeline::State::default(),
                installs: tokio::sync::watch::Sender::new(0),
                installed: Mutex::new((0, 0, 0)),
                metrics: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Installs a new routing snapshot atomically. Certificates are parsed here, once per
    /// distinct content (unchanged certificates reuse the earlier parse). Never fails as a
    /// whole: a bad certificate is reported in [`Installed::certificate_errors`] and its hosts
    /// fall back to the default certificate.
    pub fn install(&self, table: Arc<RouteTable>) -> Installed {
        // Serialises installers (never requests), so generations are assigned in store order.
        let mut cache = self.shared.certs.lock().unwrap_or_else(PoisonError::into_inner);
        let (certs, certificate_errors) = cache.parse_all(&table);
        {
            let fingerprint = table.fingerprint();
            let mut installed = self.shared.installed.lock().unwrap_or_else(PoisonError::into_inner);
            if installed.2 == 0 || installed.0 != fingerprint {
                let at =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                *installed = (fingerprint, at.as_secs(), installed.2 + 1);
            }
        }
        for e in &certificate_errors {
            tracing::warn!(error = %e, "certificate left out of snapshot");
        }
        self.shared.snapshot.store(Some(Arc::new(Snapshot { table, certs })));
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.shared.swaps.fetch_add(1, Ordering::Relaxed);
        drop(cache);
        self.shared.installs.send_replace(generation);
        tracing::debug!(generation, "snapshot installed");
        Installed { generation, certificate_errors }
    }

    /// Drops the request series (Ferry's and ingress-nginx's) of Ingresses, by namespace and
    /// name, that are gone from the configuration, as ingress-nginx does after each reload.
    /// Call it after installing the table without them.
    pub fn forget_ingresses<'a>(&self, gone: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.forget(Gone::ingresses(gone));
    }

    /// Drops the request series of the paths, Services and hosts that Ingresses changed from
    /// `(before, after)` no longer route (`after` of the same namespace and name; `None` for
    /// one deleted, whose series all go), and those counted under the backends a canary
    /// Ingress no longer has, so that editing an Ingress in place does not keep the series of
    /// its old routes for as long as it lives. ingress-nginx keeps them (its `RemoveMetrics`
    /// goes by Ingress): a deliberate difference. Call it after installing the table with the
    /// changed Ingresses; it costs nothing unless something went.
    pub fn forget_routes<'a>(&self, changed: impl IntoIterator<Item = (&'a Ingress, Option<&'a Ingress>)>) {
        let mut gone = Gone::default();
        for (before, after) in changed {
            gone.changed(before, after);
        }
        self.forget(gone);
    }

    fn forget(&self, gone: Gone) {
        if gone.is_empty() {
            return;
        }
        let gone = Arc::new(gone);
        let mut proxies = self.shared.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        proxies.retain(|m| m.strong_count() > 0);
        for metrics in proxies.iter().filter_map(Weak::upgrade) {
            metrics.forget(&gone);
        }
    }

    /// The table currently serving, if any was installed.
    pub fn current(&self) -> Option<Arc<RouteTable>> {
        self.shared.snapshot.load().as_ref().map(|s| Arc::clone(&s.table))
    }

    /// Replaces the runtime settings; the next request uses them.
    pub fn set_settings(&self, settings: RuntimeSettings) {
        self.shared.settings.store(Arc::new(settings));
        self.shared.swaps.fetch_add(1, Ordering::Relaxed);
    }

    /// The runtime settings in force.
    pub fn settings(&self) -> Arc<RuntimeSettings> {
        self.shared.settings.load_full()
    }

    /// Whether a first snapshot was installed (what `/readyz` reports).
    pub fn is_ready(&self) -> bool {
        self.shared.snapshot.load().is_some()
    }

    /// The installed table's fingerprint, when a table of another fingerprint was last
    /// installed (Unix seconds), and how many such installs there were (zeros before the first).
    pub(crate) fn reloads(&self) -> (u64, u64, u64) {
        *self.shared.installed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Each TLS host of the installed table, its Secret and when its certificate expires (Unix
    /// seconds).
    pub(crate) fn certificate_expiries(&self) -> Vec<(String, (String, String), i64)> {
        let Some(snapshot) = self.shared.snapshot.load_full() else { return Vec::new() };
        let tls = snapshot.table.tls();
        tls.entries()
            .iter()
            .filter_map(|e| {
                let cert = snapshot.certs.get(&e.certificate)?;
                let secret = (e.certificate.namespace.clone(), e.certificate.name.clone());
                Some((e.host.to_string(), secret, cert.not_after()?))
            })
            .collect()
    }

    /// The generation of the snapshot serving: 0 before the first install, then 1, 2, …
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// How many swaps happened: snapshot installs plus settings changes.
    pub fn swap_count(&self) -> u64 {
        self.shared.swaps.load(Ordering::Relaxed)
    }

    /// Records how many Ingresses have at least one annotation of each verdict (`applied`,
    /// `ignored`…), for the `ferry_ingress_annotations` metric.
    pub fn set_annotation_verdicts(&self, counts: impl IntoIterator<Item = (impl Into<String>, u64)>) {
        let counts = counts.into_iter().map(|(v, n)| (v.into(), n)).collect();
        *self.shared.verdicts.lock().unwrap_or_else(PoisonError::into_inner) = counts;
    }

    /// What [`ProxyHandle::set_annotation_verdicts`] last recorded.
    pub fn annotation_verdicts(&self) -> Vec<(String, u64)> {
        self.shared.verdicts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many certificate PEM pairs were parsed since the handle was created; an install that
    /// keeps certificates unchanged does not increase it.
    pub fn certificates_parsed(&self) -> u64 {
        self.shared.certs.lock().unwrap_or_else(PoisonError::into_inner).parsed
    }
}
