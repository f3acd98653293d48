//! The last phase: a finished request counted in the metrics and written to the access log.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ingress_core::{MatchedBy, Route};

use super::answer::status_class;
use crate::metrics::{Metrics, RouteLabels, method_label};

/// The `tracing` target of access log lines.
pub const ACCESS_LOG_TARGET: &str = "ingress_proxy::access";

/// A finished request, as metrics and the access log see it (whichever driver served it).
#[derive(Debug)]
pub(crate) struct Finished<'a> {
    /// The client's address (the real one, behind a trusted proxy).
    pub(crate) client: Option<IpAddr>,
    pub(crate) host: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// The status the client got (0: none).
    pub(crate) status: u16,
    /// Response body bytes sent to the client (for a tunnel: the bytes relayed to it).
    pub(crate) bytes: u64,
    pub(crate) took: Duration,
    pub(crate) upstream_addr: Option<SocketAddr>,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) labels: RouteLabels<'a>,
    pub(crate) request_id: &'a str,
    /// What ingress-nginx's series measure besides.
    pub(crate) nginx: NginxFacts<'a>,
}

/// What ingress-nginx's request series label and measure, beyond the access log's facts.
#[derive(Debug, Default)]
pub(crate) struct NginxFacts<'a> {
    /// The matched rule's path.
    pub(crate) rule_path: &'a str,
    /// The request's host, when it is an Ingress's exact host ([`RouteTable::exact_host`]).
    ///
    /// [`RouteTable::exact_host`]: ingress_core::RouteTable::exact_host
    pub(crate) exact_host: Option<&'a str>,
    /// From the first attempt to reach an endpoint to the end of the response.
    pub(crate) upstream_time: Option<Duration>,
    /// Request line, headers and body.
    pub(crate) request_size: u64,
    /// Response head and body.
    pub(crate) response_size: u64,
    /// The canary's upstream name (`namespace-service-port`, ingress-nginx's
    /// `$proxy_alternative_upstream_name`) when the canary served the request.
    pub(crate) canary: Option<String>,
}

impl<'a> NginxFacts<'a> {
    /// The facts of a request routed by `route` for `host`, when the series are kept.
    pub(crate) fn routed(
        metrics: &Metrics,
        table: Option<&'a ingress_core::RouteTable>,
        route: Option<&Route<'a>>,
        host: &str,
    ) -> Self {
        if !metrics.keeps_nginx_series() {
            return Self::default();
        }
        let rule_path = match route.map(|r| r.matched_by) {
            Some(MatchedBy::Path { path, .. }) => path,
            _ => "",
        };
        Self { rule_path, exact_host: table.and_then(|t| t.exact_host(host)), ..Self::default() }
    }

    /// Records that the canary of `route` served the request.
    pub(crate) fn served_by_canary(&mut self, route: Option<&Route<'_>>) {
        if let Some(canary) = route.and_then(|r| r.canary) {
            let key = canary.backend.key();
            self.canary = Some(format!("{}-{}-{}", key.namespace, key.service, key.port));
        }
    }
}

/// The metric labels of a route: the Ingress that defined it and the Service it goes to.
pub(crate) fn route_labels<'t>(route: Option<&Route<'t>>) -> RouteLabels<'t> {
    let Some(route) = route else { return RouteLabels::default() };
    let key = route.backend.key();
    let (namespace, ingress) = match route.matched_by {
        MatchedBy::Path { origin, .. } | MatchedBy::IngressDefault { origin } => {
            (origin.namespace.as_str(), origin.name.as_str())
        }
        MatchedBy::ControllerDefault => (key.namespace.as_str(), ""),
    };
    RouteLabels { namespace, ingress, service: &key.service }
}

impl Finished<'_> {
    /// Counts the request in the metrics and, when `access_log`, writes its JSON log line.
    pub(crate) fn record(&self, metrics: &Metrics, access_log: bool) {
        let labels = self.labels;
        metrics.observe_request(labels, status_class(self.status), method_label(self.method), self.took);
        if let Some(nginx) = metrics.nginx() {
            // Requests no route took (the built-in 404, refused heads) are ingress-nginx's
            // default server's, which it does not count.
            if !labels.service.is_empty() {
                nginx.observe(&crate::metrics::Sample {
                    // No status: the client went away first, nginx's 499.
                    status: if self.status == 0 { 499 } else { self.status },
                    method: method_label(self.method),
                    path: self.nginx.rule_path,
                    namespace: labels.namespace,
                    ingress: labels.ingress,
                    service: labels.service,
                    canary: self.nginx.canary.as_deref().unwrap_or_default(),
                    host: self.nginx.exact_host,
                    took: self.took,
                    upstream: self.nginx.upstream_time,
                    request_size: self.nginx.request_size,
                    response_size: self.nginx.response_size,
                });
            }
        }
        if access_log {
            tracing::info!(
                target: ACCESS_LOG_TARGET,
                client = %self.client.map(|a| a.to_string()).unwrap_or_default(),
                host = self.host,
                method = self.method,
                path = self.path,
                status = self.status,
                bytes = self.bytes,
                duration_ms = self.took.as_secs_f64() * 1000.0,
                upstream_addr = %self.upstream_addr.map(|a| a.to_string()).unwrap_or_default(),
                upstream_status = self.upstream_status.unwrap_or(0),
                namespace = labels.namespace,
                ingress = labels.ingress,
                service = labels.service,
                request_id = self.request_id,
                "request"
            );
        }
    }
}
