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
