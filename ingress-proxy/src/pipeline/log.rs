//! The last phase: a finished request counted in the metrics and written to the access log.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ingress_core::{BackendRef, MatchedBy, Route};

use super::answer::status_class;
use crate::RuntimeSettings;
use crate::access_log::LogFormat;
use crate::access_log::clock::Stamp;
use crate::access_log::format::{Facts, Var};
use crate::access_log::json::JsonLine;
use crate::metrics::{Metrics, RouteLabels, method_label};

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
    /// The route's backend (`None`: the built-in default backend answered).
    pub(crate) backend: Option<&'a BackendRef>,
    /// What ingress-nginx's series measure besides.
    pub(crate) nginx: NginxFacts<'a>,
    /// What the client sent, for log templates.
    pub(crate) received: Received<'a>,
}

/// What the client sent and where, as log templates name it (`$request`, `$http_*`…).
#[derive(Debug, Default)]
pub(crate) struct Received<'a> {
    /// The target as sent, path and query (nginx's `$request_uri`).
    pub(crate) target: &'a str,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0` (empty: the head could not be read).
    pub(crate) version: &'static str,
    pub(crate) headers: RequestHeaders<'a>,
    /// The connection is TLS.
    pub(crate) tls: bool,
    /// The peer's port (the PROXY protocol's source port, when it is believed).
    pub(crate) peer_port: Option<u16>,
    /// The port the client connected to.
    pub(crate) local_port: &'a str,
}

/// A request's header lines, whichever transport read them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) enum RequestHeaders<'a> {
    /// None read.
    #[default]
    None,
    /// HTTP/1's lines.
    Lines(&'a [httparse::Header<'a>]),
    /// HTTP/2's map.
    Map(&'a http::HeaderMap),
}

impl RequestHeaders<'_> {
    /// Appends the values of header `name` (lower case), joined as nginx joins repeated
    /// headers (`; ` for `Cookie`, `, ` otherwise); false when there is none.
    fn append(&self, name: &str, out: &mut Vec<u8>) -> bool {
        let separator: &[u8] = if name == "cookie" { b"; " } else { b", " };
        let mut found = false;
        let mut add = |value: &[u8]| {
            if found {
                out.extend_from_slice(separator);
            }
            out.extend_from_slice(value);
            found = true;
        };
        match self {
            RequestHeaders::None => {}
            RequestHeaders::Lines(lines) => {
                lines.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).for_each(|h| add(h.value));
            }
            RequestHeaders::Map(map) => map.get_all(name).iter().for_each(|v| add(v.as_bytes())),
        }
        found
    }
}

/// What ingress-nginx's request series label and measure, beyond the access log's facts.
#[derive(Debug, Default)]
pub(crate) struct NginxFacts<'a> {
    /// The matched rule's path as written (ingress-nginx's `$location_path`: `/api/` for a
    /// `Prefix` path written so, though it is matched as `/api`).
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
    /// `$proxy_alternative_upstream_name`) when the canary served the request (set whether
    /// the series are kept or not: the access log names it too).
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
            Some(MatchedBy::Path { written, .. }) => written,
            _ => "",
        };
        Self { rule_path, exact_host: table.and_then(|t| t.exact_host(host)), ..Self::default() }
    }

    /// Records that the canary of `route` served the request.
    pub(crate) fn served_by_canary(&mut self, route: Option<&Route<'_>>) {
        if let Some(canary) = route.and_then(|r| r.canary) {
            self.canary = Some(canary_upstream_name(canary.backend.key()));
        }
    }
}

/// A canary backend's upstream name as ingress-nginx writes it (`namespace-service-port`): the
/// `canary` label and the access log's `$proxy_alternative_upstream_name`.
pub(crate) fn canary_upstream_name(key: &ingress_core::BackendRef) -> String {
    format!("{}-{}-{}", key.namespace, key.service, key.port)
}

/// The metric labels of a route: the Ingress that defined it and the Service it goes to.
pub(crate) fn route_labels<'t>(route: Option<&Route<'t>>) -> RouteLabels<'t> {
    let Some(route) = route else { return RouteLabels::default() };
    let key = route.backend.key();
    let (namespace, ingress) = match route.matched_by {
        MatchedBy::Path { origin, .. } | MatchedBy::IngressDefault { origin } => {
            (&*origin.namespace, &*origin.name)
        }
        MatchedBy::ControllerDefault => (&*key.namespace, ""),
    };
    RouteLabels { namespace, ingress, service: &key.service }
}

impl Finished<'_> {
    /// Counts the request in the metrics and, when `logged` and its target is not one of
    /// `skip-access-log-urls`, queues its access log line in the format `settings` say.
    pub(crate) fn record(&self, metrics: &Metrics, settings: &RuntimeSettings, logged: bool) {
        let labels = self.labels;
        metrics.observe_request(labels, status_class(self.status), method_label(self.method), self.took);
        if let Some(nginx) = metrics.nginx() {
            // Requests no route took (the built-in 404, refused heads) are ingress-nginx's
            // default server's, which it does not count.
            if !labels.service.is_empty() {
                nginx.observe(&crate::metrics::Sample {
                    status: self.nginx_status(),
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
        let target = self.received.target;
        if !logged || settings.skip_access_log_urls.iter().any(|url| url.eq_ignore_ascii_case(target)) {
            return;
        }
        let at = Stamp::now();
        let line = match &settings.log_format {
            LogFormat::Json => self.json(&at),
            LogFormat::Template(template) => template.line(&Line { finished: self, at }),
        };
        metrics.write_access_log(line);
    }

    /// The status as ingress-nginx logs and counts it: none (the client went away first) is
    /// nginx's 499.
    fn nginx_status(&self) -> u16 {
        if self.status == 0 { 499 } else { self.status }
    }

    /// Ferry's JSON line.
    fn json(&self, at: &Stamp) -> Vec<u8> {
        let mut line = JsonLine::new(at, "request");
        line.str("client", &self.client.map(|a| a.to_string()).unwrap_or_default())
            .str("host", self.host)
            .str("method", self.method)
            .str("path", self.path)
            .num("status", self.status)
            .num("bytes", self.bytes)
            .num("duration_ms", self.took.as_secs_f64() * 1000.0)
            .str("upstream_addr", &self.upstream_addr.map(|a| a.to_string()).unwrap_or_default())
            .num("upstream_status", self.upstream_status.unwrap_or(0))
            .str("namespace", self.labels.namespace)
            .str("ingress", self.labels.ingress)
            .str("service", self.labels.service)
            .str("request_id", self.request_id);
        line.finish()
    }
}

/// A finished request at the moment it is logged: what a template's variables read.
struct Line<'f, 'a> {
    finished: &'f Finished<'a>,
    at: Stamp,
}

/// Appends `s`; true (the value is there, even empty).
fn put(out: &mut Vec<u8>, s: &str) -> bool {
    out.extend_from_slice(s.as_bytes());
    true
}

/// Seconds with milliseconds, as nginx writes durations.
fn seconds(d: Duration, out: &mut Vec<u8>) {
    let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
}

/// The host without its port, in lower case (nginx's `$host`).
fn bare_host(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

impl Facts for Line<'_, '_> {
    fn value(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        let f = self.finished;
        let r = &f.received;
        match var {
            Var::RemoteAddr => return f.client.is_some_and(|ip| put(out, &ip.to_string())),
            Var::RemotePort => return r.peer_port.is_some_and(|p| put(out, &p.to_string())),
            Var::TimeLocal => self.at.local(out),
            Var::TimeIso8601 => self.at.iso8601(out),
            Var::Msec => self.at.msec(out),
            Var::Status => {
                let _ = write!(out, "{:03}", f.nginx_status());
            }
            Var::ServerPort => return put(out, r.local_port),
            Var::BytesSent => {
                let _ = write!(out, "{}", f.nginx.response_size);
            }
            Var::BodyBytesSent => {
                let _ = write!(out, "{}", f.bytes);
            }
            Var::UpstreamAddr => return f.upstream_addr.is_some_and(|a| put(out, &a.to_string())),
            Var::ProxyUpstreamName => match f.backend {
                Some(b) => {
                    let _ = write!(out, "{}-{}-{}", b.namespace, b.service, b.port);
                }
                None => return put(out, "upstream-default-backend"),
            },
            Var::ProxyAlternativeUpstreamName => {
                return put(out, f.nginx.canary.as_deref().unwrap_or_default());
            }
            Var::Hostname => return put(out, crate::access_log::hostname()),
            Var::Pid => {
                let _ = write!(out, "{}", std::process::id());
            }
            Var::RemoteUser => {
                let mut authorization = Vec::new();
                let user = r
                    .headers
                    .append("authorization", &mut authorization)
                    .then(|| std::str::from_utf8(&authorization).ok().and_then(super::auth::basic_user));
                return user.flatten().is_some_and(|u| put(out, &u));
            }
            Var::Request if f.method.is_empty() => return false,
            Var::Request => {
                let _ = write!(out, "{} {} {}", f.method, r.target, r.version);
            }
            Var::RequestMethod => return !f.method.is_empty() && put(out, f.method),
            Var::RequestUri => return put(out, r.target),
            Var::Uri => return put(out, f.path),
            Var::Args => return r.target.split_once('?').is_some_and(|(_, args)| put(out, args)),
            Var::IsArgs => return put(out, if r.target.contains('?') { "?" } else { "" }),
            Var::ServerProtocol => return !r.version.is_empty() && put(out, r.version),
            Var::Scheme => return put(out, if r.tls { "https" } else { "http" }),
            Var::Host => return !f.host.is_empty() && put(out, &bare_host(f.host).to_ascii_lowercase()),
            Var::RequestLength => {
                let _ = write!(out, "{}", f.nginx.request_size);
            }
            Var::RequestTime => seconds(f.took, out),
            Var::UpstreamStatus => return f.upstream_status.is_some_and(|s| put(out, &s.to_string())),
            Var::UpstreamResponseTime => match f.nginx.upstream_time.filter(|_| f.upstream_addr.is_some()) {
                Some(t) => seconds(t, out),
                None => return false,
            },
            Var::UpstreamResponseLength => {
                return f.upstream_status.is_some() && put(out, &f.bytes.to_string());
            }
            Var::ReqId => return !f.request_id.is_empty() && put(out, f.request_id),
            Var::Namespace => return put(out, f.labels.namespace),
            Var::IngressName => return put(out, f.labels.ingress),
            Var::ServiceName => return put(out, f.labels.service),
            Var::ServicePort => return put(out, &f.backend.map(|b| b.port.to_string()).unwrap_or_default()),
            Var::Header(name) => return r.headers.append(name, out),
            Var::Protocol | Var::BytesReceived | Var::SessionTime => return false,
        }
        true
    }
}
