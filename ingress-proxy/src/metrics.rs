//! Prometheus metrics, in a registry of the proxy's own (so several proxies in one process,
//! as in tests or an embedding gateway, never mix their numbers).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::ProxyHandle;
use crate::Result;
use crate::access_log::AccessLog;

mod forget;
mod nginx;

pub(crate) use forget::Gone;
pub use nginx::ControllerLabels;
pub(crate) use nginx::{NginxMetrics, Sample};

/// A request series, looked up once per thread: `with_label_values` hashes the labels and
/// takes a lock on every call, a cost that showed in the proxy's profile.
struct Series {
    metrics: u64,
    route: [Box<str>; 3],
    status_class: &'static str,
    method: &'static str,
    requests: IntCounter,
    duration: Histogram,
}

/// Series kept per thread before the cache starts over.
const MAX_CACHED_SERIES: usize = 4096;

type SeriesKey<'a> = (u64, &'a str, &'a str, &'a str, &'static str, &'static str);

impl Series {
    fn is(&self, (metrics, namespace, ingress, service, status_class, method): SeriesKey<'_>) -> bool {
        self.metrics == metrics
            && *self.route[0] == *namespace
            && *self.route[1] == *ingress
            && *self.route[2] == *service
            && self.status_class == status_class
            && self.method == method
    }
}

thread_local! {
    /// The series this thread looked up, and the [`forget::epoch`] they were looked up in.
    static SERIES: RefCell<(u64, SeriesCache)> = RefCell::default();
}

/// A thread's series, by the hash of their key.
type SeriesCache = HashMap<u64, Series, BuildHasherDefault<NoHash>>;

/// The cache's keys are hashes already.
#[derive(Default)]
struct NoHash(u64);

impl Hasher for NoHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Labels of the per-request series, in order.
const REQUEST_LABELS: [&str; 5] = ["namespace", "ingress", "service", "status_class", "method"];

/// Who a request was for, as metric labels.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RouteLabels<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) ingress: &'a str,
    pub(crate) service: &'a str,
}

/// The proxy's metrics, and the access log whose dropped lines they count: both record each
/// finished request.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Tells this registry's series apart from another's in the per-thread cache.
    id: u64,
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    connect: Histogram,
    pub(crate) active_requests: IntGauge,
    pub(crate) active_connections: IntGauge,
    generation: IntGauge,
    verdicts: IntGaugeVec,
    swaps: IntCounter,
    swaps_seen: Mutex<u64>,
    /// ingress-nginx's series, when the controller's labels are known.
    nginx: Option<NginxMetrics>,
    /// Client connections accepted.
    pub(crate) accepted: AtomicU64,
    /// The reloads (installs of a changed table) the ingress-nginx series counted so far.
    installs_seen: Mutex<u64>,
    /// Where access log lines go.
    access_log: AccessLog,
    /// Lines the access log dropped because its writer was behind.
    access_log_dropped: IntCounter,
}

impl Metrics {
    /// Ferry's series, and ingress-nginx's too when `controller` is given.
    pub(crate) fn new(controller: Option<&ControllerLabels>, access_log: AccessLog) -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("ferry_requests_total", "Requests answered, by route, status class and method."),
            &REQUEST_LABELS,
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "ferry_request_duration_seconds",
                "Time from request start to the end of the response.",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &REQUEST_LABELS,
        )?;
        let connect = Histogram::with_opts(
            HistogramOpts::new(
                "ferry_upstream_connect_duration_seconds",
                "Time to establish a new upstream connection (pool hits are not counted).",
            )
            .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0]),
        )?;
        let active_requests = IntGauge::new(
            "ferry_active_requests",
            "Requests in flight, open WebSocket and other upgraded connections and TCP service sessions included.",
        )?;
        let active_connections = IntGauge::new(
            "ferry_active_connections",
            "Client connections open to the proxy (HTTP/1.x and HTTP/2, TLS included).",
        )?;
        let generation =
            IntGauge::new("ferry_snapshot_generation", "Generation of the routing snapshot serving.")?;
        let verdicts = IntGaugeVec::new(
            Opts::new(
                "ferry_ingress_annotations",
                "Ingresses with at least one annotation of this verdict (applied, ignored, rejected, unknown).",
            ),
            &["verdict"],
        )?;
        let swaps = IntCounter::new(
            "ferry_snapshot_swaps_total",
            "Swaps of routing snapshots and runtime settings.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(connect.clone()))?;
        registry.register(Box::new(active_requests.clone()))?;
        registry.register(Box::new(active_connections.clone()))?;
        registry.register(Box::new(generation.clone()))?;
        registry.register(Box::new(verdicts.clone()))?;
        let access_log_dropped = IntCounter::new(
            "ferry_access_log_dropped_total",
            "Access log lines dropped because the log's writer was behind (the proxy never waits for it).",
        )?;
        registry.register(Box::new(swaps.clone()))?;
        registry.register(Box::new(access_log_dropped.clone()))?;
        let nginx = controller.map(|labels| NginxMetrics::new(&registry, labels)).transpose()?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registry,
            requests,
            duration,
            connect,
            active_requests,
            active_connections,
            generation,
            verdicts,
            swaps,
            swaps_seen: Mutex::new(0),
            nginx,
            accepted: AtomicU64::new(0),
            installs_seen: Mutex::new(0),
            access_log,
            access_log_dropped,
        })
    }

    /// Queues an access log line (ending in its newline), or counts it dropped.
    pub(crate) fn write_access_log(&self, line: Vec<u8>) {
        if !self.access_log.write(line) {
            self.access_log_dropped.inc();
        }
    }

    /// Waits up to `wait` for the access log's queued lines to be written.
    pub(crate) fn flush_access_log(&self, wait: Duration) -> bool {
        self.access_log.flush(wait)
    }

    /// nginx's `stub_status` page, from the proxy's own counts: active connections, accepted
    /// (and handled) connections, requests, and how many connections are reading a request,
    /// writing a response, or waiting idle.
    pub(crate) fn stub_status(&self) -> String {
        let active = self.active_connections.get().max(0);
        let writing = self.active_requests.get().max(0);
        let accepted = self.accepted.load(Ordering::Relaxed);
        let families = prometheus::core::Collector::collect(&self.requests);
        // Counters hold whole numbers.
        let requests: u64 =
            families.iter().flat_map(|f| f.get_metric()).map(|m| m.get_counter().get_value() as u64).sum();
        format!(
            "Active connections: {active} \nserver accepts handled requests\n {accepted} {accepted} {requests} \nReading: 0 Writing: {writing} Waiting: {} \n",
            (active - writing).max(0)
        )
    }

    /// ingress-nginx's series, if kept.
    pub(crate) fn nginx(&self) -> Option<&NginxMetrics> {
        self.nginx.as_ref()
    }

    /// Whether ingress-nginx's series are kept (so their facts are worth collecting).
    pub(crate) fn keeps_nginx_series(&self) -> bool {
        self.nginx.is_some()
    }

    /// Counts one finished request.
    pub(crate) fn observe_request(
        &self,
        route: RouteLabels<'_>,
        status_class: &'static str,
        method: &'static str,
        took: Duration,
    ) {
        let key = (self.id, route.namespace, route.ingress, route.service, status_class, method);
        let hash = foldhash::fast::FixedState::default().hash_one(key);
        SERIES.with_borrow_mut(|(epoch, series)| {
            // Routes come and go: forget them all now and then rather than keep them forever,
            // and after series were removed.
            if series.len() > MAX_CACHED_SERIES || *epoch != forget::epoch() {
                series.clear();
                *epoch = forget::epoch();
            }
            let found = series.get(&hash).filter(|s| s.is(key));
            let found = match found {
                Some(found) => found,
                None => {
                    let labels = [route.namespace, route.ingress, route.service, status_class, method];
                    let fresh = Series {
                        metrics: self.id,
                        route: [route.namespace.into(), route.ingress.into(), route.service.into()],
                        status_class,
                        method,
                        requests: self.requests.with_label_values(&labels),
                        duration: self.duration.with_label_values(&labels),
                    };
                    series.insert(hash, fresh);
                    &series[&hash]
                }
            };
            found.requests.inc();
            found.duration.observe(took.as_secs_f64());
        });
    }

    /// Drops the request series of what is in `gone` (Ingresses, or routes of Ingresses that
    /// changed), Ferry's and ingress-nginx's (see [`forget`]).
    pub(crate) fn forget(&self, gone: &Gone<'_>) {
        let removed = forget::remove(&self.requests, &[&self.requests, &self.duration], gone)
            + self.nginx.as_ref().map_or(0, |n| n.forget(gone));
        if removed > 0 {
            let (ingresses, routes) = gone.len();
            tracing::debug!(removed, ingresses, routes, "series of removed Ingresses and routes dropped");
        }
    }

    /// Records how long a new upstream connection took.
    pub(crate) fn observe_connect(&self, took: Duration) {
        self.connect.observe(took.as_secs_f64());
    }

    /// The text exposition of every metric, snapshot counters refreshed from `handle`.
    pub(crate) fn render(&self, handle: &ProxyHandle) -> Vec<u8> {
        self.generation.set(i64::try_from(handle.generation()).unwrap_or(i64::MAX));
        for (verdict, n) in handle.annotation_verdicts() {
            self.verdicts.with_label_values(&[verdict.as_str()]).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        {
            let mut seen = self.swaps_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = handle.swap_count();
            self.swaps.inc_by(now.saturating_sub(*seen));
            *seen = now.max(*seen);
        }
        if let Some(nginx) = &self.nginx {
            let mut seen = self.installs_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (fingerprint, at, reloads) = handle.reloads();
            if reloads > *seen {
                nginx.installed(reloads - *seen, fingerprint, at);
                *seen = reloads;
            }
            drop(seen);
            nginx.refresh(
                self.active_connections.get(),
                self.active_requests.get(),
                self.accepted.load(Ordering::Relaxed),
            );
            nginx.certificates(handle);
        }
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        out
    }
}

/// Keeps the active-requests gauge honest whichever way a request ends.
#[derive(Debug)]
pub(crate) struct ActiveRequest(IntGauge);

impl ActiveRequest {
    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn start(metrics: &Metrics) -> Self {
        metrics.active_requests.inc();
        Self(metrics.active_requests.clone())
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Methods as a bounded label set: anything unusual is `OTHER`, so clients cannot grow the
/// series count.
pub(crate) fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("OTHER")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_and_generation() {
        let m = Metrics::new(None, AccessLog::to_writer(std::io::sink(), 16).unwrap()).unwrap();
        let labels = RouteLabels { namespace: "ns", ingress: "ing", service: "svc" };
        m.observe_request(labels, "2xx", "GET", Duration::from_millis(3));
        let text = String::from_utf8(m.render(&ProxyHandle::new())).unwrap();
        assert!(text.contains(
            r#"ferry_requests_total{ingress="ing",method="GET",namespace="ns",service="svc",status_class="2xx"} 1"#
        ));
        assert!(text.contains("ferry_snapshot_generation 0"));
        m.forget(&Gone::ingresses([("ns", "ing")]));
        let text = String::from_utf8(m.render(&ProxyHandle::new())).unwrap();
        assert!(!text.contains(r#"ingress="ing""#), "{text}");
        m.observe_request(labels, "2xx", "GET", Duration::from_millis(3));
        let text = String::from_utf8(m.render(&ProxyHandle::new())).unwrap();
        assert!(text.contains(r#"ferry_requests_total{ingress="ing",method="GET",namespace="ns",service="svc",status_class="2xx"} 1"#), "{text}");
        assert_eq!(method_label("BREW"), "OTHER");
        assert_eq!(method_label("PATCH"), "PATCH");
    }
}
