//! Prometheus metrics, in a registry of the proxy's own (so several proxies in one process,
//! as in tests or an embedding gateway, never mix their numbers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::ProxyHandle;
use crate::Result;
use crate::access_log::AccessLog;

mod forget;
mod nginx;
mod series;

pub(crate) use forget::Gone;
pub use nginx::ControllerLabels;
pub(crate) use nginx::{NginxMetrics, Sample};
use series::{Kind, Registered, SeriesSet};

/// Labels of the per-request series, in order.
const REQUEST_LABELS: [&str; 5] = ["namespace", "ingress", "service", "status_class", "method"];

/// Ferry's request families in its [`SeriesSet`]: the counter and the duration histogram.
const REQUESTS: usize = 0;
const DURATION: usize = 1;

/// Buckets of `ferry_request_duration_seconds`.
const DURATION_BUCKETS: [f64; 13] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

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
    registry: Registry,
    /// `ferry_requests_total` and `ferry_request_duration_seconds`.
    requests: Arc<SeriesSet>,
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
        let requests = Arc::new(SeriesSet::new(
            &REQUEST_LABELS,
            &HashMap::new(),
            &[
                (
                    "ferry_requests_total",
                    "Requests answered, by route, status class and method.",
                    Kind::Counter,
                ),
                (
                    "ferry_request_duration_seconds",
                    "Time from request start to the end of the response.",
                    Kind::Histogram(&DURATION_BUCKETS),
                ),
            ],
        )?);
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
        registry.register(Box::new(Registered(Arc::clone(&requests))))?;
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
        Ok(Self {
            registry,
            requests,
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
        let requests = self.requests.total(REQUESTS);
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
        let labels = [route.namespace, route.ingress, route.service, status_class, method];
        self.requests.with(&labels, took, |series| {
            series.inc(REQUESTS);
            series.observe(DURATION, took.as_secs_f64());
        });
    }

    /// Drops the request series of what is in `gone` (Ingresses, or routes of Ingresses that
    /// changed), Ferry's and ingress-nginx's (see [`forget`]).
    pub(crate) fn forget(&self, gone: &Arc<Gone>) {
        let removed = gone.remove_from(&self.requests) + self.nginx.as_ref().map_or(0, |n| n.forget(gone));
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
        m.forget(&Arc::new(Gone::ingresses([("ns", "ing")])));
        let text = String::from_utf8(m.render(&ProxyHandle::new())).unwrap();
        assert!(!text.contains(r#"ingress="ing""#), "{text}");
        // A request that began before the removal (a minute ago) does not bring the series back;
        // one that began after it (an Ingress of that name made again) makes it afresh.
        m.observe_request(labels, "2xx", "GET", Duration::from_secs(60));
        let text = String::from_utf8(m.render(&ProxyHandle::new())).unwrap();
        assert!(!text.contains(r#"ingress="ing""#), "{text}");
        m.observe_request(labels, "2xx", "GET", Duration::ZERO);
        let text = String::from_utf8(m.render(&ProxyHandle::new())).unwrap();
        assert!(text.contains(r#"ferry_requests_total{ingress="ing",method="GET",namespace="ns",service="svc",status_class="2xx"} 1"#), "{text}");
        assert_eq!(method_label("BREW"), "OTHER");
        assert_eq!(method_label("PATCH"), "PATCH");
    }
}
