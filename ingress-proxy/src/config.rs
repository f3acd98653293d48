//! Configuration: what is fixed at start-up ([`ProxyConfig`]) and what can change while the
//! proxy runs ([`RuntimeSettings`]).
//!
//! The split follows what Pingora can change live: listeners and worker threads are bound when
//! the server starts, while timeouts, retries, body limits and logging are read per request, so
//! a ConfigMap edit reaches the next request without a restart.

use std::net::SocketAddr;
use std::time::Duration;

use ingress_core::{BodyLimit, CertificatePem, Cidr, HeaderOp, RoutePolicy};

/// Start-up configuration of the proxy server, built once by the embedding binary.
///
/// Defaults follow ingress-nginx: HTTP on port 80, HTTPS on port 443, metrics and health on
/// port 10254, a 30 s grace period for in-flight requests on SIGTERM.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where plain HTTP is served; `None` disables the listener.
    pub http_addr: Option<SocketAddr>,
    /// Where HTTPS (HTTP/1.1 and HTTP/2 by ALPN) is served; `None` disables the listener.
    pub https_addr: Option<SocketAddr>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` disables the listener.
    pub admin_addr: Option<SocketAddr>,
    /// Worker threads of the proxy service (Pingora runs one runtime per service).
    pub threads: usize,
    /// Pingora's runtime flavour: `true` shares work between threads (tokio's multi-thread
    /// scheduler); `false` runs one single-threaded runtime per thread, which costs less per
    /// request when connections are many and short requests dominate.
    pub work_stealing: bool,
    /// After SIGTERM: how long listeners stay closed while in-flight requests finish, before
    /// the runtimes are stopped.
    pub grace_period: Duration,
    /// After the grace period: how long runtimes get to wind down before being dropped.
    pub shutdown_timeout: Duration,
    /// The certificate for handshakes the snapshot has no certificate for. `None` generates a
    /// self-signed one at start-up (ingress-nginx's "fake certificate").
    pub default_certificate: Option<CertificatePem>,
    /// Idle keep-alive upstream connections kept: per endpoint for the HTTP/1 engine's
    /// requests, and for all endpoints together in Pingora's pool (HTTP/2 clients' requests).
    pub upstream_keepalive_pool_size: usize,
    /// Whether SIGTERM (graceful) and SIGINT (fast) stop the server. Embedders that own the
    /// process signals, and tests running several servers in one process, turn this off and
    /// use [`RunningProxy::shutdown`](crate::RunningProxy::shutdown) instead.
    pub handle_signals: bool,
    /// Where the admin port's health check also answers (`--health-check-path`, `/healthz`).
    pub health_check_path: String,
    /// ingress-nginx's status listener (`--status-port`): `/nginx_status` and the health
    /// check path. `None`: not served.
    pub status_addr: Option<SocketAddr>,
    /// ingress-nginx's default server listener (`--default-server-port`): `404` for every
    /// request. `None`: not served.
    pub default_server_addr: Option<SocketAddr>,
    /// Where access log lines go (`None`: standard output).
    pub access_log: Option<crate::AccessLog>,
    /// TLS passthrough (`--enable-ssl-passthrough`): the HTTPS port's front reads each
    /// ClientHello and passes the connections of `ssl-passthrough` hosts to their backends;
    /// the others are terminated by the proxy's TLS listener at this loopback address
    /// (`--ssl-passthrough-proxy-port`). `None`: the HTTPS port terminates everything itself.
    pub ssl_passthrough: Option<SocketAddr>,
    /// The controller's identity, which ingress-nginx's `nginx_ingress_controller_*` series
    /// carry: with it, those series are kept beside Ferry's own (`None`: Ferry's only).
    pub controller_labels: Option<crate::ControllerLabels>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            http_addr: Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            https_addr: Some(SocketAddr::from(([0, 0, 0, 0], 443))),
            admin_addr: Some(SocketAddr::from(([0, 0, 0, 0], 10254))),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            work_stealing: true,
            grace_period: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            default_certificate: None,
            upstream_keepalive_pool_size: 1024,
            handle_signals: true,
            controller_labels: None,
            health_check_path: "/healthz".into(),
            status_addr: None,
            default_server_addr: None,
            access_log: None,
            ssl_passthrough: None,
        }
    }
}

/// Per-backend timeouts (connect, read, write), the ingress-nginx `proxy-*-timeout` trio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a TCP connection to an endpoint; exceeding it answers 504.
    pub connect: Duration,
    /// Waiting for the next bytes from the endpoint; exceeding it answers 504.
    pub read: Duration,
    /// Waiting to send the next bytes to the endpoint; exceeding it answers 504.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
            write: Duration::from_secs(60),
        }
    }
}

/// Settings read on every request, swapped atomically with
/// [`ProxyHandle::set_settings`](crate::ProxyHandle::set_settings) (the controller maps its
/// ConfigMap onto this).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// Timeouts for backends without an override.
    pub timeouts: Timeouts,
    /// Attempts per request when connecting fails (refused, reset, timed out before anything
    /// was sent): each attempt goes to the next endpoint. 1 means no retry.
    pub max_attempts: usize,
    /// Largest request body accepted, in bytes; larger ones get 413. `None` is unlimited.
    pub max_body_size: Option<u64>,
    /// Whether an access log line is written per request.
    pub access_log: bool,
    /// What the access log line says: Ferry's JSON object, or an nginx template
    /// (`log-format-upstream`, `log-format-escape-json`, `log-format-escape-none`).
    pub log_format: crate::LogFormat,
    /// Request targets not logged (`skip-access-log-urls`): nginx's `$request_uri`, the whole
    /// target with its query, compared without regard to case as nginx's `map` compares.
    pub skip_access_log_urls: Vec<String>,
    /// How long an idle pooled upstream connection is kept; it bounds how long a removed
    /// endpoint's idle connections linger.
    pub upstream_keepalive_timeout: Duration,
    /// What client connections may do: head and body deadlines, keep-alive, head sizes.
    pub client: ClientLimits,
    /// Why every route is closed: a global access restriction (the ConfigMap's source ranges,
    /// blocklists, global authentication) is asked for but not applied, so every routed request
    /// is answered `503` rather than served more openly than asked. Fail closed.
    pub closed: Option<String>,
    /// Which forwarding headers from clients are believed, and how the proxy's are written.
    pub forwarding: Forwarding,
    /// Redirects to HTTPS, and HSTS.
    pub https: HttpsSettings,
    /// Edits of every request going upstream, before the route's own (`proxy-set-headers`).
    pub request_headers: Vec<HeaderOp>,
    /// Edits of every response, before the route's own: the upstream's `Server` removed
    /// (unless `allow-backend-server-header`), `hide-headers`, `server-tokens`, `add-headers`
    /// (which the proxy's own answers get too). The default removes `Server`, as ingress-nginx
    /// sends none (`server-tokens` off, nginx's `proxy_hide_header Server`).
    pub response_headers: Vec<HeaderOp>,
    /// The statuses answered by the default backend instead, on routes without their own list
    /// (`custom-http-errors`).
    pub custom_errors: Vec<u16>,
    /// Who may connect, by address (the ConfigMap's source ranges).
    pub access: AccessRanges,
    /// The status of a request over `limit-rps`/`limit-rpm` (`limit-req-status-code`, 503).
    pub limit_req_status: u16,
    /// The status of a request over `limit-connections` (`limit-conn-status-code`, 503).
    pub limit_conn_status: u16,
    /// External authentication of every route without its own (`global-auth-url`), except
    /// those with `enable-global-auth: "false"` and the paths of `no_auth_locations`.
    pub global_auth: Option<std::sync::Arc<ingress_core::ExternalAuth>>,
    /// Path prefixes `global_auth` leaves alone (`no-auth-locations`, by default
    /// `/.well-known/acme-challenge`), compared with the rule's path as written.
    pub no_auth_locations: Vec<String>,
    /// How routes without their own balancing spread requests (`load-balance`).
    pub load_balance: ingress_core::LoadBalance,
    /// What TCP and UDP services do (`proxy-stream-*`).
    pub stream: crate::StreamSettings,
}

/// The ConfigMap's source ranges, on the client's real address: requests from `block` get
/// `403` everywhere (`block-cidrs`); on routes without their own ranges, `deny` is refused
/// and, when not empty, only `allow` is let in (`denylist-source-range`,
/// `whitelist-source-range`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRanges {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    pub block: Vec<Cidr>,
}

/// Redirects to HTTPS and HSTS: ingress-nginx's ConfigMap keys and defaults (in parentheses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSettings {
    /// Plain HTTP requests for hosts served over TLS are redirected to HTTPS, unless a route
    /// says otherwise (`ssl-redirect`, on).
    pub ssl_redirect: bool,
    /// Plain HTTP requests for every host are redirected (`force-ssl-redirect`, off).
    pub force_ssl_redirect: bool,
    /// The redirect's status (`http-redirect-code`, 308).
    pub redirect_code: u16,
    /// Rule paths never redirected, by prefix (`no-tls-redirect-locations`,
    /// `/.well-known/acme-challenge`: certificate challenges stay on HTTP).
    pub no_redirect_locations: Vec<String>,
    /// The `Strict-Transport-Security` value sent on every HTTPS response, `None` for none
    /// (`hsts`, on; `hsts-max-age` 31536000; `hsts-include-subdomains`, on; `hsts-preload`, off).
    pub hsts: Option<String>,
    /// The port the redirect names under `use-port-in-redirects` (the HTTPS listener's).
    pub https_port: u16,
}

impl Default for HttpsSettings {
    fn default() -> Self {
        Self {
            ssl_redirect: true,
            force_ssl_redirect: false,
            redirect_code: 308,
            no_redirect_locations: vec!["/.well-known/acme-challenge".into()],
            hsts: Some("max-age=31536000; includeSubDomains".into()),
            https_port: 443,
        }
    }
}

/// How the client's address, scheme and host are found and forwarded: ingress-nginx's
/// ConfigMap keys and defaults (in parentheses). By default nothing a client sends is
/// believed: `X-Forwarded-For` and `X-Real-IP` are the peer's address, the scheme is the
/// connection's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// Believe `X-Forwarded-Proto`, `-Host` and `-Port` from clients, and take the client
    /// address from the forwarded-for header of a trusted peer (`use-forwarded-headers`, off):
    /// for a controller behind another proxy or load balancer.
    pub use_forwarded_headers: bool,
    /// Take the client address from the forwarded-for header of a trusted peer, without
    /// believing the other forwarding headers (`enable-real-ip`, off).
    pub enable_real_ip: bool,
    /// The header the client address is read from, lower-case (`forwarded-for-header`,
    /// `x-forwarded-for`).
    pub forwarded_for_header: String,
    /// With `use_forwarded_headers`: `X-Forwarded-For` going upstream is the client's list
    /// with the peer appended, instead of the client address alone
    /// (`compute-full-forwarded-for`, off).
    pub compute_full_forwarded_for: bool,
    /// The peers whose forwarded-for header is believed, and the hops skipped in it
    /// (`proxy-real-ip-cidr`, `0.0.0.0/0`: every IPv4 peer, as in ingress-nginx).
    pub trusted: Vec<ingress_core::Cidr>,
    /// Every connection to the HTTP and HTTPS ports opens with a PROXY protocol header (v1 or
    /// v2, before TLS): its source is the client when the peer that sent it is `trusted`, and
    /// its destination port is the port forwarded (`use-proxy-protocol`, off). A connection
    /// without a valid header is closed, as nginx closes it.
    pub proxy_protocol: bool,
    /// How long a client may take to send its PROXY protocol header, here and on TCP service
    /// ports with `PROXY` (`proxy-protocol-header-timeout`, 5 s).
    pub proxy_protocol_timeout: Duration,
}

impl Default for Forwarding {
    fn default() -> Self {
        Self {
            use_forwarded_headers: false,
            enable_real_ip: false,
            forwarded_for_header: "x-forwarded-for".into(),
            compute_full_forwarded_for: false,
            trusted: vec![ingress_core::Cidr::ANY_IPV4],
            proxy_protocol: false,
            proxy_protocol_timeout: Duration::from_secs(5),
        }
    }
}

/// Limits on client connections and their requests, nginx's defaults as ingress-nginx sets
/// them (the ConfigMap keys in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// How long a request head may take to arrive, from its first byte (from the accept, for
    /// a connection's first request), whatever its size (`client-header-timeout`, 60 s). The
    /// connection is closed without an answer, as nginx closes it.
    pub header_timeout: Duration,
    /// How long each read of a request body may wait (`client-body-timeout`, 60 s). The whole
    /// body also has this long plus a second per 500 bytes received (a minimum rate nginx
    /// does not have; see `h1/upload.rs`).
    pub body_timeout: Duration,
    /// How long an idle client connection is kept between requests (`keep-alive`, 75 s);
    /// zero turns keep-alive off.
    pub keepalive_timeout: Duration,
    /// Requests served on one client connection before it is closed
    /// (`keep-alive-requests`, 1000).
    pub keepalive_requests: u32,
    /// nginx's first buffer for a request head (`client-header-buffer-size`, 1 KiB): a line
    /// may always be this long.
    pub header_buffer_size: usize,
    /// How many large buffers a request head may use (`large-client-header-buffers`, 4)…
    pub large_header_buffers: usize,
    /// …and their size (8 KiB): the longest request line (longer: `414`) or header line
    /// (longer: `431`); a head may not outgrow all of them together (`431`).
    pub large_header_buffer_size: usize,
    /// Whether header names with `_` are forwarded (`enable-underscores-in-headers`, off):
    /// off, they are dropped, as nginx drops them.
    pub underscores_in_headers: bool,
    /// Whether header names with characters other than letters, digits and `-` (and `_` when
    /// allowed) are dropped (`ignore-invalid-headers`, on). Off, every name the HTTP grammar
    /// allows is forwarded. Either way such a name is never read as a header the proxy acts
    /// on (`Transfer_Encoding` frames nothing).
    pub ignore_invalid_headers: bool,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            header_buffer_size: 1024,
            large_header_buffers: 4,
            large_header_buffer_size: 8 * 1024,
            underscores_in_headers: false,
            ignore_invalid_headers: true,
        }
    }
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            max_attempts: 3,
            max_body_size: None,
            access_log: true,
            log_format: crate::LogFormat::Json,
            skip_access_log_urls: Vec::new(),
            upstream_keepalive_timeout: Duration::from_secs(60),
            client: ClientLimits::default(),
            closed: None,
            forwarding: Forwarding::default(),
            https: HttpsSettings::default(),
            request_headers: Vec::new(),
            response_headers: HeaderOp::remove("server").into_iter().collect(),
            custom_errors: Vec::new(),
            access: AccessRanges::default(),
            limit_req_status: 503,
            limit_conn_status: 503,
            global_auth: None,
            no_auth_locations: vec!["/.well-known/acme-challenge".to_owned()],
            load_balance: ingress_core::LoadBalance::RoundRobin,
            stream: crate::StreamSettings::default(),
        }
    }
}

impl RuntimeSettings {
    /// What applies to a request on a route with `policy`: the policy's values where it sets
    /// them, these settings elsewhere.
    pub fn limits_for(&self, policy: &RoutePolicy) -> RouteLimits {
        RouteLimits {
            timeouts: Timeouts {
                connect: policy.connect_timeout.unwrap_or(self.timeouts.connect),
                read: policy.read_timeout.unwrap_or(self.timeouts.read),
                write: policy.send_timeout.unwrap_or(self.timeouts.write),
            },
            max_body_size: policy.max_body_size.map_or(self.max_body_size, BodyLimit::bytes),
            max_attempts: policy.max_attempts.map_or(self.max_attempts, |n| n as usize).max(1),
            access_log: policy.access_log.unwrap_or(self.access_log),
            next_upstream_timeout: policy.next_upstream_timeout,
        }
    }
}

/// The limits in force for one request: its route's policy over the global settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// Upstream timeouts.
    pub timeouts: Timeouts,
    /// Largest request body accepted, in bytes; `None` is unlimited.
    pub max_body_size: Option<u64>,
    /// Attempts per request (at least 1).
    pub max_attempts: usize,
    /// Whether the request is written to the access log.
    pub access_log: bool,
    /// How long a request may spend trying endpoints (`None`: no limit).
    pub next_upstream_timeout: Option<Duration>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ingress_nginx_defaults() {
        let s = RuntimeSettings::default();
        assert_eq!(s.timeouts.connect, Duration::from_secs(5));
        assert_eq!(s.timeouts.read, Duration::from_secs(60));
        assert_eq!(s.timeouts.write, Duration::from_secs(60));
        assert_eq!(s.max_attempts, 3);
        let c = ProxyConfig::default();
        assert_eq!(c.http_addr.map(|a| a.port()), Some(80));
        assert_eq!(c.https_addr.map(|a| a.port()), Some(443));
    }

    #[test]
    fn route_policy_overrides_the_settings() {
        let s = RuntimeSettings { max_body_size: Some(1 << 20), ..RuntimeSettings::default() };
        let plain = s.limits_for(&RoutePolicy::default());
        assert_eq!(plain.timeouts, Timeouts::default());
        assert_eq!((plain.max_body_size, plain.max_attempts), (Some(1 << 20), 3));
        let policy = RoutePolicy {
            read_timeout: Some(Duration::from_secs(600)),
            max_body_size: Some(BodyLimit::Unlimited),
            max_attempts: Some(0),
            ..RoutePolicy::default()
        };
        let limits = s.limits_for(&policy);
        assert_eq!(limits.timeouts, Timeouts { read: Duration::from_secs(600), ..Timeouts::default() });
        assert_eq!((limits.max_body_size, limits.max_attempts), (None, 1));
        let small = RoutePolicy { max_body_size: Some(BodyLimit::Bytes(8)), ..RoutePolicy::default() };
        assert_eq!(s.limits_for(&small).max_body_size, Some(8));
    }
}
