//! The request path of what the fast path ([`crate::h1`]) hands to Pingora: one small function
//! per Pingora phase, in the order Pingora calls them.
//!
//! 1. [`ProxyHttp::request_filter`]: load the snapshot, assign the request id, answer what needs
//!    no upstream (built-in 404, 503 without endpoints, 413 over the body limit), and forward
//!    HTTP/1.x requests with no or a small body directly ([`crate::forward`]), WebSocket
//!    upgrades included ([`crate::tunnel`]); the rest continue below.
//! 2. [`ProxyHttp::upstream_peer`]: pick an endpoint with the [`Selector`], per attempt.
//! 3. [`ProxyHttp::connected_to_upstream`]: connect latency of new connections.
//! 4. [`ProxyHttp::upstream_request_filter`]: forwarding headers.
//! 5. [`ProxyHttp::request_body_filter`]: body size limit while streaming.
//! 6. [`ProxyHttp::upstream_response_filter`]: note the upstream status.
//! 7. [`ProxyHttp::fail_to_connect`] / [`ProxyHttp::error_while_proxy`]: retry policy.
//! 8. [`ProxyHttp::fail_to_proxy`]: the status a failure becomes.
//! 9. [`ProxyHttp::logging`]: metrics and the access log.
//!
//! Policy (routing, selection, retry and status rules) lives in `ingress-core`,
//! [`crate::upstream`] and [`crate::response`]; this file only moves data between them and the
//! session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use ingress_core::{MatchedBy, Route, RoutePolicy, RouteTable};
use pingora::ErrorType::HTTPStatus;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, Result};

use crate::config::{RouteLimits, SharedSettings};
use crate::forward;
use crate::handle::{Shared, Snapshot};
use crate::headers;
use crate::metrics::{Metrics, RouteLabels, method_label};
use crate::response::{self, body_for, status_for};
use crate::upstream::Selector;

/// The `tracing` target of access log lines.
pub const ACCESS_LOG_TARGET: &str = "ingress_proxy::access";

/// The proxy logic Pingora drives.
pub(crate) struct Ferry {
    pub(crate) shared: Arc<Shared>,
    pub(crate) selector: Arc<dyn Selector>,
    pub(crate) metrics: Arc<Metrics>,
    /// Connects the direct path ([`crate::forward`]) to endpoints.
    pub(crate) transport: pingora::connectors::TransportConnector,
    /// Idle keep-alive connections of the direct path.
    pub(crate) pool: Arc<crate::pool::IdlePool>,
}

/// Per-request state, carried across phases.
pub(crate) struct RequestCtx {
    started: Instant,
    /// The snapshot this request routes with, from start to end.
    snapshot: Option<Arc<Snapshot>>,
    pub(crate) settings: SharedSettings,
    /// The limits of the request's route (the settings' until a route is found).
    pub(crate) limits: RouteLimits,
    /// The request id sent upstream (the client's, or generated).
    request_id: Option<http::HeaderValue>,
    /// A status the proxy answered itself.
    local_status: Option<u16>,
    /// The status the last failed attempt would give, if no endpoint is left to try.
    pub(crate) failure_status: Option<u16>,
    pub(crate) attempts: usize,
    pub(crate) current: Option<SocketAddr>,
    pub(crate) tried: Vec<SocketAddr>,
    pub(crate) connect_started: Option<Instant>,
    pub(crate) upstream_status: Option<u16>,
    /// Set once an upgraded connection (WebSocket) has been relayed and closed.
    pub(crate) tunnelled: Option<crate::tunnel::Tunnelled>,
    body_bytes: u64,
    _active: ActiveRequest,
}

/// Keeps the active-requests gauge honest whichever way a request ends.
pub(crate) struct ActiveRequest(pub(crate) prometheus::IntGauge);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The host a request is for: `Host`, else the `:authority` of HTTP/2.
fn request_host(req: &RequestHeader) -> &str {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

fn lookup<'t>(table: &'t RouteTable, req: &RequestHeader) -> Option<Route<'t>> {
    table.lookup(request_host(req), req.uri.path())
}

/// The metric labels of a route: the Ingress that defined it and the Service it goes to.
pub(crate) fn route_labels<'t>(route: &Route<'t>) -> RouteLabels<'t> {
    let key = route.backend.key();
    let (namespace, ingress) = match route.matched_by {
        MatchedBy::Path { origin, .. } | MatchedBy::IngressDefault { origin } => {
            (origin.namespace.as_str(), origin.name.as_str())
        }
        MatchedBy::ControllerDefault => (key.namespace.as_str(), ""),
    };
    RouteLabels { namespace, ingress, service: &key.service }
}

impl RequestCtx {
    /// The route of `req` in the request's snapshot.
    pub(crate) fn route(&self, req: &RequestHeader) -> Option<Route<'_>> {
        Ferry::table(self).and_then(|t| lookup(t, req))
    }
}

impl Ferry {
    /// The table of the request's snapshot.
    fn table(ctx: &RequestCtx) -> Option<&RouteTable> {
        ctx.snapshot.as_deref().map(|s| &*s.table)
    }

    /// Sets the forwarding headers (`X-Forwarded-*`, `X-Real-IP`, `X-Request-ID`) on the
    /// request going upstream.
    pub(crate) fn add_forwarding_headers(
        &self,
        session: &Session,
        upstream_request: &mut RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        let client = session.client_addr().and_then(|a| a.as_inet()).map(SocketAddr::ip);
        let local_port = session.server_addr().and_then(|a| a.as_inet()).map(SocketAddr::port);
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let host = request_host(session.req_header());
        headers::set_forwarded(
            upstream_request,
            &headers::Forwarded { client, tls, host, port: local_port, request_id: ctx.request_id.as_ref() },
        )
    }

    /// Answers a request without an upstream.
    async fn answer(session: &mut Session, ctx: &mut RequestCtx, status: u16) -> Result<bool> {
        ctx.local_status = Some(status);
        response::write_text(session, status, body_for(status)).await?;
        Ok(true)
    }
}

#[async_trait]
impl ProxyHttp for Ferry {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        self.metrics.active_requests.inc();
        let settings = self.shared.settings.load_full();
        RequestCtx {
            started: Instant::now(),
            snapshot: None,
            settings: Arc::clone(&settings),
            limits: settings.limits_for(&RoutePolicy::default()),
            request_id: None,
            local_status: None,
            failure_status: None,
            attempts: 0,
            current: None,
            tried: Vec::new(),
            connect_started: None,
            upstream_status: None,
            tunnelled: None,
            body_bytes: 0,
            _active: ActiveRequest(self.metrics.active_requests.clone()),
        }
    }

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {
        // No response compression: ingress-nginx does not compress by default, and an unused
        // module still costs a context per request.
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.snapshot = self.shared.snapshot.load_full();
        ctx.request_id = Some(headers::request_id(session.req_header()));
        let Some(route) = Self::table(ctx).and_then(|t| lookup(t, session.req_header())) else {
            return Self::answer(session, ctx, 404).await;
        };
        let limits = ctx.settings.limits_for(route.policy);
        let empty = route.backend.endpoints().is_empty();
        ctx.limits = limits;
        if let (Some(limit), Some(length)) =
            (limits.max_body_size, headers::content_length(session.req_header()))
            && length > limit
        {
            return Self::answer(session, ctx, 413).await;
        }
        if empty {
            return Self::answer(session, ctx, 503).await;
        }
        if forward::is_direct(session) {
            self.forward(session, ctx).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        self.next_peer(session, ctx).map(Box::new)
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.connected(reused, ctx);
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.add_forwarding_headers(session, upstream_request, ctx)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(limit) = ctx.limits.max_body_size else { return Ok(()) };
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > limit {
            return Err(Error::explain(HTTPStatus(413), "request body over the size limit"));
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_status = Some(upstream_response.status.as_u16());
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        self.connect_failed(ctx, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        // Pingora's own policy (retry a stale pooled connection for idempotent requests whose
        // body can be replayed), bounded by our attempt budget.
        let mut e = e.more_context(format!("peer: {peer}"));
        if !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
            || ctx.attempts >= ctx.limits.max_attempts
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let mut code = status_for(e.etype(), e.esource());
        if code > 0 && session.response_written().is_none() {
            if let Err(write) = response::write_text(session, code, body_for(code)).await {
                tracing::debug!(error = %write, "could not send error response");
            }
        } else if session.response_written().is_some() {
            // Headers already went out: the status the client saw stands.
            code = 0;
        }
        if code > 0 {
            ctx.local_status = Some(code);
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        // Statuses we chose on purpose (404, 503, 413) are not errors worth a log line.
        matches!(error.etype(), HTTPStatus(_))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        // A tunnel's session holds a stand-in for the client connection: its status, client
        // and byte count come from the tunnel.
        let tunnel = ctx.tunnelled.as_ref();
        let status = match tunnel {
            Some(_) => 101,
            None => session.response_written().map(|r| r.status.as_u16()).or(ctx.local_status).unwrap_or(0),
        };
        let req = session.req_header();
        let route = Self::table(ctx).and_then(|t| lookup(t, req));
        let labels = route.as_ref().map(route_labels).unwrap_or_default();
        let upstream_addr = ctx.current.or_else(|| ctx.tried.last().copied());
        Finished {
            client: tunnel
                .map_or(session.client_addr(), |t| t.client.as_ref())
                .and_then(|a| a.as_inet())
                .copied(),
            host: request_host(req),
            method: req.method.as_str(),
            path: req.uri.path(),
            status,
            bytes: tunnel.map_or(session.body_bytes_sent() as u64, |t| t.down),
            took: ctx.started.elapsed(),
            upstream_addr,
            upstream_status: ctx.upstream_status,
            labels,
            request_id: ctx.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
        }
        .record(&self.metrics, ctx.settings.access_log);
    }
}

/// A finished request, as metrics and the access log see it (whichever path served it).
pub(crate) struct Finished<'a> {
    pub(crate) client: Option<SocketAddr>,
    pub(crate) host: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// The status the client got (0: none).
    pub(crate) status: u16,
    /// Response body bytes sent to the client.
    pub(crate) bytes: u64,
    pub(crate) took: std::time::Duration,
    pub(crate) upstream_addr: Option<SocketAddr>,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) labels: RouteLabels<'a>,
    pub(crate) request_id: &'a str,
}

impl Finished<'_> {
    /// Counts the request in the metrics and, when `access_log`, writes its JSON log line.
    pub(crate) fn record(&self, metrics: &Metrics, access_log: bool) {
        let labels = self.labels;
        metrics.observe_request(
            labels,
            response::status_class(self.status),
            method_label(self.method),
            self.took,
        );
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
