//! ingress-nginx's `nginx_ingress_controller_*` series, beside Ferry's own, so its Grafana
//! dashboards and alerts keep working after the switch: the same names, labels (the
//! controller's `controller_namespace`, `controller_class`, `controller_pod` on each) and
//! buckets (its flags' defaults).
//!
//! What Ferry counts for each: requests as ingress-nginx's Lua monitor reports them (only on
//! routes of exact Ingress hosts, labelled by host, unless `--metrics-per-host=false`);
//! "reloads" are routing tables installed (`success`, `config_last_reload_successful`, its
//! timestamp, and `config_hash` of the table); the `nginx_process_*` series describe Ferry's
//! own process; `ssl_expire_time_seconds` each certificate of the table by host.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::forget::Gone;
use super::series::{Kind, Registered, SeriesSet};

/// Who the controller is, as ingress-nginx labels every series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerLabels {
    /// The controller's namespace (`POD_NAMESPACE`).
    pub namespace: String,
    /// Its controller class (`--controller-class`).
    pub class: String,
    /// Its pod (`POD_NAME`).
    pub pod: String,
    /// Requests carry a `host` label, and only requests for an Ingress's exact host are
    /// counted (`--metrics-per-host`, true).
    pub per_host: bool,
}

/// ingress-nginx's request labels, in its order (`host` last, with `per_host`).
const REQUEST_LABELS: [&str; 8] =
    ["status", "method", "path", "namespace", "ingress", "service", "canary", "host"];

/// prometheus.DefBuckets (`--time-buckets`).
const TIME_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// prometheus.LinearBuckets(10, 10, 10) (`--length-buckets`).
const LENGTH_BUCKETS: [f64; 10] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0];

/// One finished request, as the series label and measure it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample<'a> {
    pub(crate) status: u16,
    pub(crate) method: &'static str,
    /// The rule's path (`/` for the root).
    pub(crate) path: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) ingress: &'a str,
    pub(crate) service: &'a str,
    /// The canary's Service when the canary served the request.
    pub(crate) canary: &'a str,
    /// The exact Ingress host the request was for (`None`: not one).
    pub(crate) host: Option<&'a str>,
    pub(crate) took: Duration,
    /// From the first connect to an endpoint to the end of its response.
    pub(crate) upstream: Option<Duration>,
    /// Request line, headers and body, as received.
    pub(crate) request_size: u64,
    /// Response head and body, as sent.
    pub(crate) response_size: u64,
}

/// The request families in [`NginxMetrics::requests`], in order.
const REQUESTS: usize = 0;
const DURATION: usize = 1;
/// Absent for a label set until a request of it reached an endpoint.
const UPSTREAM: usize = 2;
const REQUEST_SIZE: usize = 3;
const RESPONSE_SIZE: usize = 4;

/// The series, registered in the proxy's registry.
#[derive(Debug)]
pub(crate) struct NginxMetrics {
    per_host: bool,
    /// The request counter and the four histograms, by request labels.
    requests: Arc<SeriesSet>,
    config_hash: Gauge,
    reload_ok: IntGauge,
    reload_time: IntGauge,
    reloads: IntCounter,
    pub(crate) ssl_expire: GaugeVec,
    connections: IntGaugeVec,
    connections_total: IntCounterVec,
    requests_total: IntCounter,
    memory: IntGauge,
    virtual_memory: IntGauge,
    cpu: Gauge,
    num_procs: IntGauge,
    start_time: Gauge,
}

impl NginxMetrics {
    pub(crate) fn new(registry: &Registry, labels: &ControllerLabels) -> prometheus::Result<Self> {
        let constant: HashMap<String, String> = [
            ("controller_namespace", &labels.namespace),
            ("controller_class", &labels.class),
            ("controller_pod", &labels.pod),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
        let request_labels: &[&str] = if labels.per_host { &REQUEST_LABELS } else { &REQUEST_LABELS[..7] };
        let opts = |name: &str, help: &str| {
            Opts::new(format!("nginx_ingress_controller_{name}"), help).const_labels(constant.clone())
        };
        let name = |name: &str| format!("nginx_ingress_controller_{name}");
        let (requests, duration, upstream, request_size, response_size) = (
            name("requests"),
            name("request_duration_seconds"),
            name("response_duration_seconds"),
            name("request_size"),
            name("response_size"),
        );
        let requests = Arc::new(SeriesSet::new(
            request_labels,
            &constant,
            &[
                (&requests, "The total number of client requests", Kind::Counter),
                (&duration, "The request processing time in milliseconds", Kind::Histogram(&TIME_BUCKETS)),
                (
                    &upstream,
                    "The time spent on receiving the response from the upstream server",
                    Kind::Histogram(&TIME_BUCKETS),
                ),
                (
                    &request_size,
                    "The request length (including request line, header, and request body)",
                    Kind::Histogram(&LENGTH_BUCKETS),
                ),
                (
                    &response_size,
                    "The response length (including request line, header, and request body)",
                    Kind::Histogram(&LENGTH_BUCKETS),
                ),
            ],
        )?);
        let config_hash =
            Gauge::with_opts(opts("config_hash", "Running configuration hash actually running"))?;
        let reload_ok = IntGauge::with_opts(opts(
            "config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
        ))?;
        let reload_time = IntGauge::with_opts(opts(
            "config_last_reload_successful_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
        ))?;
        let reloads = IntCounter::with_opts(opts(
            "success",
            "Cumulative number of Ingress controller reload operations",
        ))?;
        let ssl_expire = GaugeVec::new(
            Opts::new(
                "nginx_ingress_controller_ssl_expire_time_seconds",
                "Number of seconds since 1970 to the SSL Certificate expire.",
            ),
            &["namespace", "class", "host", "secret_name", "identifier"],
        )?;
        let connections = IntGaugeVec::new(
            opts(
                "nginx_process_connections",
                "current number of client connections with state {active, reading, writing, waiting}",
            ),
            &["state"],
        )?;
        let connections_total = IntCounterVec::new(
            opts(
                "nginx_process_connections_total",
                "total number of connections with state {accepted, handled}",
            ),
            &["state"],
        )?;
        let requests_total =
            IntCounter::with_opts(opts("nginx_process_requests_total", "total number of client requests"))?;
        let memory = IntGauge::with_opts(opts(
            "nginx_process_resident_memory_bytes",
            "number of bytes of memory in use",
        ))?;
        let virtual_memory = IntGauge::with_opts(opts(
            "nginx_process_virtual_memory_bytes",
            "number of bytes of memory in use",
        ))?;
        let cpu = Gauge::with_opts(opts("nginx_process_cpu_seconds_total", "Cpu usage in seconds"))?;
        let num_procs = IntGauge::with_opts(opts("nginx_process_num_procs", "number of processes"))?;
        let start_time = Gauge::with_opts(opts(
            "nginx_process_oldest_start_time_seconds",
            "start time in seconds since 1970/01/01",
        ))?;
        registry.register(Box::new(Registered(Arc::clone(&requests))))?;
        registry.register(Box::new(config_hash.clone()))?;
        registry.register(Box::new(reload_ok.clone()))?;
        registry.register(Box::new(reload_time.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(ssl_expire.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_total.clone()))?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(memory.clone()))?;
        registry.register(Box::new(virtual_memory.clone()))?;
        registry.register(Box::new(cpu.clone()))?;
        registry.register(Box::new(num_procs.clone()))?;
        registry.register(Box::new(start_time.clone()))?;
        Ok(Self {
            per_host: labels.per_host,
            requests,
            config_hash,
            reload_ok,
            reload_time,
            reloads,
            ssl_expire,
            connections,
            connections_total,
            requests_total,
            memory,
            virtual_memory,
            cpu,
            num_procs,
            start_time,
        })
    }

    /// Counts a finished request, as ingress-nginx's monitor would.
    pub(crate) fn observe(&self, s: &Sample<'_>) {
        self.requests_total.inc();
        // ingress-nginx (metrics-per-host, not per undefined host) counts only the hosts of its
        // servers: made-up names never become series.
        let host = match (self.per_host, s.host) {
            (true, None) => return,
            (true, Some(h)) => h,
            (false, _) => "",
        };
        let path = if s.path.is_empty() { "/" } else { s.path };
        let mut digits = itoa::Buffer::new();
        let status = digits.format(s.status);
        // Without `per_host`, the set has no `host` label and takes the first seven.
        let values = [status, s.method, path, s.namespace, s.ingress, s.service, s.canary, host];
        self.requests.with(&values, s.took, |series| {
            series.inc(REQUESTS);
            series.observe(DURATION, s.took.as_secs_f64());
            if let Some(upstream) = s.upstream {
                series.observe(UPSTREAM, upstream.as_secs_f64());
            }
            series.observe(REQUEST_SIZE, s.request_size as f64);
            series.observe(RESPONSE_SIZE, s.response_size as f64);
        });
    }

    /// Drops the request series of what is in `gone`; how many label sets went.
    pub(crate) fn forget(&self, gone: &Arc<Gone>) -> usize {
        gone.remove_from(&self.requests)
    }

    /// `count` routing tables went into service, the last with `hash` at `at` (Unix seconds):
    /// ingress-nginx's successful reloads.
    pub(crate) fn installed(&self, count: u64, hash: u64, at: u64) {
        self.reloads.inc_by(count);
        self.reload_ok.set(1);
        self.reload_time.set(i64::try_from(at).unwrap_or(i64::MAX));
        // A gauge holds an f64: keep the hash within its exact integers.
        self.config_hash.set((hash >> 11) as f64);
    }

    /// The expiry of each certificate of the installed table, by host.
    pub(crate) fn certificates(&self, handle: &crate::ProxyHandle) {
        self.ssl_expire.reset();
        for (host, secret, not_after) in handle.certificate_expiries() {
            let (namespace, name) = secret;
            self.ssl_expire
                .with_label_values(&[namespace.as_str(), "", host.as_str(), name.as_str(), ""])
                .set(not_after as f64);
        }
    }

    /// Refreshes the process series (before each scrape).
    pub(crate) fn refresh(&self, open: i64, in_flight: i64, accepted: u64) {
        self.connections.with_label_values(&["active"]).set(open);
        self.connections.with_label_values(&["writing"]).set(in_flight);
        self.connections.with_label_values(&["reading"]).set(0);
        self.connections.with_label_values(&["waiting"]).set((open - in_flight).max(0));
        for state in ["accepted", "handled"] {
            let counter = self.connections_total.with_label_values(&[state]);
            counter.inc_by(accepted.saturating_sub(counter.get()));
        }
        self.num_procs.set(1);
        if let Some(p) = process() {
            self.memory.set(p.resident);
            self.virtual_memory.set(p.virtual_size);
            self.cpu.set(p.cpu_seconds);
            self.start_time.set(p.start_time);
        }
    }
}

/// What `/proc/self` says about the process.
struct Process {
    resident: i64,
    virtual_size: i64,
    cpu_seconds: f64,
    start_time: f64,
}

fn process() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let ticks = 100.0; // USER_HZ on Linux
    let page = 4096.0;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))?;
    Some(Process {
        resident: (field(24)? * page) as i64,
        virtual_size: field(23)? as i64,
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        start_time: boot + field(22)? / ticks,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(per_host: bool) -> ControllerLabels {
        ControllerLabels {
            namespace: "ingress-nginx".into(),
            class: "k8s.io/ingress-nginx".into(),
            pod: "c-0".into(),
            per_host,
        }
    }

    fn sample<'a>(host: Option<&'a str>) -> Sample<'a> {
        Sample {
            status: 503,
            method: "GET",
            path: "",
            namespace: "default",
            ingress: "app",
            service: "web",
            canary: "",
            host,
            took: Duration::from_millis(7),
            upstream: None,
            request_size: 75,
            response_size: 180,
        }
    }

    fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn requests_carry_ingress_nginx_labels_and_buckets() {
        let registry = Registry::new();
        let m = NginxMetrics::new(&registry, &labels(true)).unwrap();
        m.observe(&sample(Some("app.example.com")));
        m.observe(&sample(None)); // not an exact Ingress host: not counted
        let text = render(&registry);
        assert!(text.contains(r#"nginx_ingress_controller_requests{canary="",controller_class="k8s.io/ingress-nginx",controller_namespace="ingress-nginx",controller_pod="c-0",host="app.example.com",ingress="app",method="GET",namespace="default",path="/",service="web",status="503"} 1"#), "{text}");
        assert!(
            text.contains(r#"nginx_ingress_controller_request_size_bucket{"#)
                && text.contains(r#"le="100"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"le="0.01"} 1"#), "7 ms lands in the 10 ms bucket: {text}");
        assert!(
            !text.contains("nginx_ingress_controller_response_duration_seconds_count{"),
            "no upstream: {text}"
        );
        assert!(text.contains("nginx_ingress_controller_nginx_process_requests_total{controller_class=\"k8s.io/ingress-nginx\",controller_namespace=\"ingress-nginx\",controller_pod=\"c-0\"} 2"), "{text}");
    }

    #[test]
    fn a_gone_ingress_loses_its_series_and_counts_afresh_when_made_again() {
        let registry = Registry::new();
        let m = NginxMetrics::new(&registry, &labels(true)).unwrap();
        let upstream = Sample { upstream: Some(Duration::from_millis(2)), ..sample(Some("app.example.com")) };
        m.observe(&upstream);
        m.observe(&upstream);
        let other = Sample { ingress: "other", ..sample(Some("other.example.com")) };
        m.observe(&other);
        let gone = Arc::new(Gone::ingresses([("default", "app")]));
        assert_eq!(m.forget(&gone), 1, "the label set of the requests and the four histograms");
        let text = render(&registry);
        assert!(!text.contains(r#"ingress="app""#), "{text}");
        assert!(text.contains(r#"ingress="other""#), "{text}");
        // A request that began before the removal (7 ms ago) does not bring the series back.
        m.observe(&sample(Some("app.example.com")));
        assert!(!render(&registry).contains(r#"ingress="app""#));
        // This thread's cached handles went with them: a request that began after the removal
        // (the Ingress made again) registers the series again.
        m.observe(&Sample { took: Duration::ZERO, ..sample(Some("app.example.com")) });
        let text = render(&registry);
        assert!(
            text.contains(r#"host="app.example.com",ingress="app",method="GET",namespace="default",path="/",service="web",status="503"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn without_per_host_every_request_counts_and_no_host_label() {
        let registry = Registry::new();
        let m = NginxMetrics::new(&registry, &labels(false)).unwrap();
        m.observe(&sample(None));
        let text = render(&registry);
        assert!(text.contains(r#"path="/",service="web",status="503"} 1"#), "{text}");
        assert!(!text.contains("host="), "{text}");
        m.installed(3, 1 << 20, 1_700_000_000);
        let text = render(&registry);
        assert!(text.contains("nginx_ingress_controller_success{") && text.contains("} 3"), "{text}");
        assert!(text.contains("nginx_ingress_controller_config_last_reload_successful_timestamp_seconds{controller_class=\"k8s.io/ingress-nginx\",controller_namespace=\"ingress-nginx\",controller_pod=\"c-0\"} 1700000000"), "{text}");
    }
}
