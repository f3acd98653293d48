//! The HTTP/2 driver: Pingora's `ProxyHttp` phases, each a call into the [`crate::pipeline`].
//!
//! Pingora's session reads HTTP/2 from the client (TLS with ALPN `h2`; the HTTP/1 engine in
//! [`crate::h1`] hands such connections over) and speaks HTTP/1.1 to the endpoint; this file
//! only moves the pipeline's decisions onto Pingora's `RequestHeader` and `ResponseHeader`:
//!
//! 1. [`ProxyHttp::request_filter`]: admission (route and policy, local answers).
//! 2. [`ProxyHttp::upstream_peer`]: the endpoint of each attempt.
//! 3. [`ProxyHttp::connected_to_upstream`]: connect latency of new connections.
//! 4. [`ProxyHttp::upstream_request_filter`]: the request's header edits.
//! 5. [`ProxyHttp::request_body_filter`]: the route's body size limit while streaming.
//! 6. [`ProxyHttp::upstream_response_filter`]: the response's header edits.
//! 7. [`ProxyHttp::fail_to_connect`] / [`ProxyHttp::error_while_proxy`]: retry or not.
//! 8. [`ProxyHttp::fail_to_proxy`]: the status a failure becomes.
//! 9. [`ProxyHttp::logging`]: metrics and the access log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use ingress_core::{Route, RouteId, RoutePolicy};
use pingora::ErrorType::HTTPStatus;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, Result};

use crate::LogFormat;
use crate::config::{Forwarding, RouteLimits, RuntimeSettings};
use crate::handle::{Shared, Snapshot};
use crate::metrics::{ActiveRequest, Metrics};
use crate::pipeline::answer::{body_for, status_for};
use crate::pipeline::balance::Choice;
use crate::pipeline::client::{Client, Connection, Sent, identify};
use crate::pipeline::edits::{
    HSTS, Names, RequestEdits, ResponseEdits, X_REQUEST_ID, new_request_id, usable_request_id,
};
use crate::pipeline::errors::{self, ErrorPages, PageRequest};
use crate::pipeline::external_auth::{self, Granted, Verdict};
use crate::pipeline::log::{Finished, NginxFacts, Received, RequestHeaders, route_labels};
use crate::pipeline::request_vars::RequestVars;
use crate::pipeline::subrequest::Page;
use crate::pipeline::{AfterFailure, Attempts, Exchange, Facts, admit, backend_for, is_idempotent};
use crate::upstream::Selector;

/// The HTTP/2 driver Pingora runs.
pub(crate) struct H2 {
    pub(crate) shared: Arc<Shared>,
    pub(crate) selector: Arc<dyn Selector>,
    pub(crate) metrics: Arc<Metrics>,
    /// The routes' TLS settings to endpoints, compiled.
    pub(crate) connectors: Arc<crate::upstream_tls::Connectors>,
}

/// Which of a route's backends a request goes to (decided once, in `request_filter`).
#[derive(Debug, Clone, Copy)]
enum Chosen {
    Route,
    Canary,
    Fallback,
}

impl Chosen {
    fn of<'t>(self, route: &Route<'t>) -> &'t ingress_core::Backend {
        match self {
            Chosen::Canary => route.canary.map_or(route.backend, |c| c.backend),
            Chosen::Fallback => route.fallback.unwrap_or(route.backend),
            Chosen::Route => route.backend,
        }
    }
}

/// Per-request state, carried across phases.
pub(crate) struct Ctx {
    started: Instant,
    /// The snapshot this request routes with, from start to end.
    snapshot: Option<Arc<Snapshot>>,
    settings: Arc<RuntimeSettings>,
    /// The request's route in `snapshot`.
    route: Option<RouteId>,
    /// The path routed on.
    path: String,
    limits: RouteLimits,
    attempts: Attempts,
    /// The request id sent upstream (the client's, or generated).
    request_id: String,
    /// A status the proxy answered itself.
    local_status: Option<u16>,
    /// The client's address (the real one, behind a trusted proxy), for the log.
    client: Option<IpAddr>,
    /// The request target upstream when the route rewrites the path.
    upstream_target: Option<String>,
    /// `Access-Control-Allow-Origin` when the request gets CORS headers.
    cors_origin: Option<String>,
    /// Which of its route's backends the request goes to.
    backend: Chosen,
    /// The request's place in its route's `limit-connections` count, until it ends.
    in_flight: Option<crate::pipeline::limits::InFlight>,
    /// What the auth service's answer adds to the upstream request and the response.
    granted: Granted,
    connect_started: Option<Instant>,
    upstream_status: Option<u16>,
    body_bytes: u64,
    _active: ActiveRequest,
}

impl Ctx {
    /// The request's route, found again by its id.
    fn route(&self) -> Option<Route<'_>> {
        route_in(self.snapshot.as_deref(), self.route)
    }
}

/// The route `id` of `snapshot`.
fn route_in(snapshot: Option<&Snapshot>, id: Option<RouteId>) -> Option<Route<'_>> {
    snapshot.zip(id).and_then(|(s, id)| s.table.route(id))
}

/// The host a request is for: `:authority`, else `Host`.
fn request_host(req: &RequestHeader) -> &str {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("")
}

/// The declared `Content-Length`, if any and valid.
fn content_length(req: &RequestHeader) -> Option<u64> {
    req.headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Pingora's request and response headers, as edit lists apply to them.
trait Headers {
    fn map(&self) -> &http::HeaderMap;
    fn remove(&mut self, name: &http::HeaderName);
    fn append(&mut self, name: String, value: Vec<u8>) -> Result<()>;
}

impl Headers for RequestHeader {
    fn map(&self) -> &http::HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &http::HeaderName) {
        self.remove_header(name);
    }
    fn append(&mut self, name: String, value: Vec<u8>) -> Result<()> {
        self.append_header(name, value).map(|_| ())
    }
}

impl Headers for ResponseHeader {
    fn map(&self) -> &http::HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &http::HeaderName) {
        self.remove_header(name);
    }
    fn append(&mut self, name: String, value: Vec<u8>) -> Result<()> {
        self.append_header(name, value).map(|_| ())
    }
}

/// Rewrites the upstream header values the route rewrites (`Location`, `Refresh`,
/// `Set-Cookie`), each line in its place among its name's lines.
fn rewrite_values(response: &mut ResponseHeader, edits: &ResponseEdits<'_>) -> Result<()> {
    if edits.rewrites.is_none() {
        return Ok(());
    }
    for name in [http::header::LOCATION, http::header::REFRESH, http::header::SET_COOKIE] {
        let values: Vec<Vec<u8>> =
            response.headers.get_all(&name).iter().map(|v| v.as_bytes().to_vec()).collect();
        let new: Vec<Option<String>> = values.iter().map(|v| edits.rewritten(name.as_str(), v)).collect();
        if new.iter().all(Option::is_none) {
            continue;
        }
        response.remove_header(&name);
        for (old, new) in values.into_iter().zip(new) {
            response.append_header(name.clone(), new.map_or(old, String::into_bytes))?;
        }
    }
    Ok(())
}

/// Applies one of the pipeline's edit lists: the lines `keeps` refuses go, then the lines
/// `added` gives are appended.
fn apply(
    headers: &mut impl Headers,
    keeps: impl Fn(&str) -> bool,
    added: impl FnOnce(&mut dyn FnMut(&str, &[&[u8]])),
) -> Result<()> {
    let dropped: Vec<http::HeaderName> =
        headers.map().keys().filter(|n| !keeps(n.as_str())).cloned().collect();
    for name in &dropped {
        headers.remove(name);
    }
    let mut result = Ok(());
    added(&mut |name, value| {
        if result.is_ok() {
            result = headers.append(name.to_owned(), value.concat());
        }
    });
    result
}

/// The gRPC status of an HTTP status the proxy answers itself (gRPC's HTTP to gRPC status
/// mapping: 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429 and 502–504
/// UNAVAILABLE, other errors UNKNOWN, 400 INTERNAL).
fn grpc_status(status: u16) -> u8 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// Whether the request is gRPC (`content-type: application/grpc…`).
fn is_grpc(session: &Session) -> bool {
    let content_type = session.req_header().headers.get(http::header::CONTENT_TYPE);
    content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Answers a gRPC request the proxy cannot pass on as gRPC clients expect it: `200` with
/// `grpc-status` and `grpc-message` in a headers-only response (a "trailers-only" answer),
/// so the client sees UNAVAILABLE rather than a protocol error.
async fn write_grpc_error(session: &mut Session, status: u16, lines: &[(String, String)]) -> Result<()> {
    let mut header = ResponseHeader::build(200, Some(3 + lines.len()))?;
    header.insert_header(http::header::CONTENT_TYPE, "application/grpc")?;
    header.insert_header("grpc-status", grpc_status(status).to_string())?;
    header.insert_header("grpc-message", format!("proxy answered HTTP {status}"))?;
    for (name, value) in lines {
        header.append_header(name.clone(), value.as_str())?;
    }
    session.write_response_header(Box::new(header), true).await
}

/// Writes a complete response with a fixed text body (for a gRPC request, the same as a gRPC
/// error).
async fn write_text(session: &mut Session, status: u16, lines: &[(String, String)]) -> Result<()> {
    if status >= 400 && is_grpc(session) {
        return write_grpc_error(session, status, lines).await;
    }
    let body = body_for(status);
    let mut header = ResponseHeader::build(status, Some(3 + lines.len()))?;
    // A 204 has no content, and says nothing about it (as nginx strips both headers).
    if status != 204 {
        header.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    }
    for (name, value) in lines {
        // An `add-headers` `Content-Type` replaces the proxy's.
        if name.eq_ignore_ascii_case("content-type") {
            header.insert_header(http::header::CONTENT_TYPE, value.as_str())?;
        } else {
            header.append_header(name.clone(), value.as_str())?;
        }
    }
    session.write_response_header(Box::new(header), body.is_empty()).await?;
    if !body.is_empty() {
        session.write_response_body(Some(Bytes::from_static(body.as_bytes())), true).await?;
    }
    Ok(())
}

/// Writes an error page (`custom-http-errors`): the error backend's status, headers (minus
/// those every response has replaced or removed, `global`) and body, then `lines`.
async fn write_page(
    session: &mut Session,
    page: &Page,
    lines: &[(String, String)],
    global: &[ingress_core::HeaderOp],
) -> Result<()> {
    let every = ResponseEdits { global, ..ResponseEdits::default() };
    let mut header = ResponseHeader::build(page.status, Some(2 + page.headers.len() + lines.len()))?;
    for (name, value) in page.headers.iter().filter(|(n, _)| every.keeps(n)) {
        header.append_header(name.clone(), value.as_str())?;
    }
    if page.status != 204 {
        header.insert_header(http::header::CONTENT_LENGTH, page.body.len())?;
    }
    for (name, value) in lines {
        header.append_header(name.clone(), value.as_str())?;
    }
    let head_request = session.req_header().method == http::Method::HEAD;
    let no_body = page.body.is_empty() || head_request;
    session.write_response_header(Box::new(header), no_body).await?;
    if !no_body {
        session.write_response_body(Some(page.body.clone()), true).await?;
    }
    Ok(())
}

impl H2 {
    /// Writes `status` as the proxy's own answer with `lines`, or the error page the
    /// request's route gives that status (`custom-http-errors`); returns the status sent.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        status: u16,
        lines: &[(String, String)],
    ) -> Result<u16> {
        let snapshot = ctx.snapshot.clone();
        let route = route_in(snapshot.as_deref(), ctx.route);
        let table = snapshot.as_deref().map(|s| &*s.table);
        let pages = ErrorPages::of(route.as_ref(), table, &ctx.settings).filter(|p| p.wants(status));
        let (Some(pages), Some(route)) = (pages, route) else {
            write_text(session, status, lines).await?;
            return Ok(status);
        };
        let req = session.req_header();
        let host = request_host(req).to_owned();
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let accept = req.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let client = ctx.client.map(|ip| ip.to_string()).unwrap_or_default();
        let request = PageRequest {
            code: status,
            head: req.method == http::Method::HEAD,
            host: &host,
            target: &target,
            accept: accept.as_deref(),
            request_id: &ctx.request_id,
            client: &client,
        };
        let page = errors::fetch(&pages, &route, &request, &*self.selector, &ctx.limits.timeouts).await;
        write_page(session, &page, lines, &ctx.settings.response_headers).await?;
        Ok(page.status)
    }
}

/// Concurrent calls on one HTTP/2 upstream connection (gRPC backends).
const H2_UPSTREAM_STREAMS: usize = 100;

impl H2 {
    /// The Pingora peer for `addr` on `route`: HTTP/1.1 or HTTP/2 (gRPC; without TLS, h2c
    /// with prior knowledge), over TLS as the route's `backend-protocol` and `proxy-ssl-*`
    /// say. Pingora checks a certificate only with a server name to check it for, so with
    /// `proxy-ssl-verify` on the name is sent as SNI too; the verify depth, protocols and
    /// ciphers are Pingora's own here (HTTP/2 clients only: the HTTP/1 engine applies them).
    fn peer(&self, route: &Route<'_>, addr: std::net::SocketAddr, client_tls: bool) -> Result<HttpPeer> {
        let protocol = route.policy.backend_protocol();
        let mut peer = if protocol.tls(client_tls) {
            let compiled = self.connectors.get(route.policy.upstream_tls()).map_err(|e| {
                tracing::warn!(error = %e, "a route's TLS to endpoints cannot be set up: 502");
                Error::explain(HTTPStatus(502), "TLS to endpoints cannot be set up")
            })?;
            let settings = &compiled.settings;
            let sni =
                if settings.server_name || settings.verify { settings.name.clone() } else { String::new() };
            let mut peer = HttpPeer::new(addr, true, sni);
            peer.options.verify_cert = settings.verify;
            peer.options.verify_hostname = settings.verify;
            peer.options.ca.clone_from(&compiled.ca);
            peer.client_cert_key.clone_from(&compiled.client);
            // Pingora pools connections by a hash that leaves the CAs out: a connection
            // checked against other CAs (or not at all) must never serve this route.
            peer.group_key = compiled.id;
            peer
        } else {
            HttpPeer::new(addr, false, String::new())
        };
        if protocol.http2() {
            peer.options.set_http_version(2, 2);
            // Calls share upstream connections, as gRPC clients share theirs (Pingora's default
            // is one stream per connection).
            peer.options.max_h2_streams = H2_UPSTREAM_STREAMS;
        }
        Ok(peer)
    }
}

#[async_trait]
impl ProxyHttp for H2 {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        let settings = self.shared.settings.load_full();
        let limits = settings.limits_for(&RoutePolicy::default());
        Ctx {
            started: Instant::now(),
            snapshot: None,
            settings,
            route: None,
            path: String::new(),
            limits,
            attempts: Attempts::new(&limits),
            request_id: String::new(),
            local_status: None,
            connect_started: None,
            upstream_status: None,
            body_bytes: 0,
            client: None,
            upstream_target: None,
            cors_origin: None,
            backend: Chosen::Route,
            in_flight: None,
            granted: Granted::default(),
            _active: ActiveRequest::start(&self.metrics),
        }
    }

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {
        // No response compression: ingress-nginx does not compress by default, and an unused
        // module still costs a context per request.
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let req = session.req_header();
        ctx.request_id = match req.headers.get(X_REQUEST_ID).and_then(|v| usable_request_id(v.as_bytes())) {
            Some(id) => String::from_utf8_lossy(id).into_owned(),
            None => String::from_utf8_lossy(&new_request_id()).into_owned(),
        };
        ctx.snapshot = self.shared.snapshot.load_full();
        let (peer, port) = peer_text(session);
        let settings = Arc::clone(&ctx.settings);
        let client = client_of(session, &settings.forwarding, &peer, &port);
        ctx.client = client.ip;
        let req = session.req_header();
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        // What the handshake said of a client certificate (hosts with `auth-tls-*` only).
        let tls_digest = session.digest().and_then(|d| d.ssl_digest.clone());
        let facts = Facts {
            host: request_host(req),
            target,
            length: content_length(req),
            tls: is_tls(session),
            scheme: client.scheme,
            forwarded_host: client.host,
            port: client.port,
            method: req.method.as_str(),
            origin: client.origin,
            client: client.ip,
            authorization: req.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
            client_cert: tls_digest.as_deref().and_then(|d| d.extension.get()),
        };
        let snapshot = ctx.snapshot.clone();
        let mut admitted =
            admit(snapshot.as_deref().map(|s| &*s.table), &settings, &self.shared.state, &facts);
        ctx.in_flight = admitted.in_flight.take();
        ctx.route = admitted.route.map(|r| r.id());
        ctx.path = admitted.path.to_string();
        ctx.limits = admitted.limits;
        ctx.upstream_target = admitted.upstream_target.clone();
        // The request's variables, for external authentication and the balancing that reads
        // the request (hashing, affinity); its header lines also for a canary split. Collected
        // only for such routes.
        let pending = admitted.auth.take();
        let needs_vars = pending.is_some() || admitted.route.as_ref().is_some_and(Choice::needs_request);
        let lines: Vec<(&str, &[u8])> =
            if needs_vars || admitted.route.as_ref().is_some_and(|r| r.canary.is_some()) {
                req.headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes())).collect()
            } else {
                Vec::new()
            };
        let vars = admitted.route.as_ref().filter(|_| needs_vars).map(|route| RequestVars {
            method: req.method.as_str(),
            target,
            path: &admitted.path,
            host: facts.host,
            headers: &lines,
            client: &client,
            tls: facts.tls,
            request_id: &ctx.request_id,
            route,
        });
        let choice = admitted.route.as_ref().map(|route| Choice::of(route, &settings, vars.as_ref()));
        ctx.attempts = Attempts::new(&admitted.limits).choosing(choice.unwrap_or_default());
        ctx.backend = admitted
            .route
            .as_ref()
            .map(|route| {
                let chosen = backend_for(route, lines.iter().copied());
                if std::ptr::eq(chosen, route.backend) {
                    Chosen::Route
                } else if route.canary.is_some_and(|c| std::ptr::eq(chosen, c.backend)) {
                    Chosen::Canary
                } else {
                    Chosen::Fallback
                }
            })
            .unwrap_or(Chosen::Route);
        ctx.cors_origin = admitted.cors.map(|(_, origin)| origin.to_owned());
        ctx.granted = Granted::unasked(admitted.external);
        if let Some(pending) = pending {
            let verdict = match vars.as_ref() {
                Some(vars) => {
                    let names = Names::of(&settings.client);
                    let cache = &self.shared.state.auth_cache;
                    external_auth::ask(pending, vars, names, &admitted.limits.timeouts, cache).await
                }
                // Pending authentication always has a route, so variables; never let it through.
                None => Verdict::Refused { status: 500, lines: Vec::new() },
            };
            match verdict {
                Verdict::Allowed(granted) => ctx.granted = granted,
                Verdict::Refused { status, lines } => {
                    admitted.answer = Some(status);
                    admitted.auth_lines = lines;
                }
            }
        }
        // The `ssl-client-*` headers win over the client's, as the auth service's do.
        ctx.granted.upstream.append(&mut admitted.client_cert);
        let Some(status) = admitted.answer else { return Ok(false) };
        ctx.local_status = Some(status);
        let hsts = settings.https.hsts.as_deref().filter(|_| is_tls(session));
        let lines: Vec<(String, String)> = admitted
            .answer_headers(hsts, &settings.response_headers)
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.into_owned()))
            .collect();
        drop(client);
        ctx.local_status = Some(self.answer(session, ctx, status, &lines).await?);
        Ok(true)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let snapshot = ctx.snapshot.clone();
        let route = route_in(snapshot.as_deref(), ctx.route)
            .ok_or_else(|| Error::explain(HTTPStatus(404), "route vanished"))?;
        let addr = ctx
            .attempts
            .next(&*self.selector, ctx.backend.of(&route), &self.shared.state)
            .map_err(|status| Error::explain(HTTPStatus(status), "no endpoint left to try"))?;
        let timeouts = ctx.limits.timeouts;
        let mut peer = self.peer(&route, addr, is_tls(session))?;
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.read_timeout = Some(timeouts.read);
        peer.options.write_timeout = Some(timeouts.write);
        peer.options.idle_timeout = Some(ctx.settings.upstream_keepalive_timeout);
        ctx.connect_started = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (false, Some(started)) = (reused, ctx.connect_started) {
            self.metrics.observe_connect(started.elapsed());
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let (peer, port) = peer_text(session);
        let client = client_of(session, &ctx.settings.forwarding, &peer, &port);
        let route = ctx.route();
        if let Some(target) = &ctx.upstream_target {
            let uri = http::Uri::try_from(target.as_str())
                .map_err(|e| Error::because(pingora::ErrorType::InvalidHTTPHeader, "rewritten target", e))?;
            upstream.set_uri(uri);
        }
        let policy = route.as_ref().map(|r| r.policy);
        if let Some(host) = policy.and_then(|p| p.upstream_host.as_deref()) {
            upstream.insert_header(http::header::HOST, host)?;
        }
        let edits = RequestEdits {
            target: None,
            host: None,
            forwarded_prefix: policy
                .and_then(|p| p.forwarded_prefix.as_deref())
                .filter(|_| ctx.upstream_target.is_some()),
            client: &client,
            request_id: ctx.request_id.as_bytes(),
            nominated: &[],
            names: Names::of(&ctx.settings.client),
            global: &ctx.settings.request_headers,
            route: route.as_ref().map_or(&[], |r| &r.policy.request_headers),
            auth: &ctx.granted.upstream,
        };
        apply(upstream, |name| edits.keeps(name), |line| edits.added(line))
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
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
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = response.status.as_u16();
        ctx.upstream_status = Some(status);
        let route = ctx.route();
        let table = ctx.snapshot.as_deref().map(|s| &*s.table);
        if ErrorPages::of(route.as_ref(), table, &ctx.settings).is_some_and(|p| p.wants(status)) {
            // `fail_to_proxy` answers with the error page instead.
            return Err(Error::explain(HTTPStatus(status), "answered with an error page"));
        }
        let hsts = ctx.settings.https.hsts.as_deref().filter(|_| is_tls(session));
        let policy = route.as_ref().map(|r| r.policy);
        let cors = policy.and_then(|p| p.cors.as_ref()).zip(ctx.cors_origin.as_deref());
        let edits = ResponseEdits {
            hsts,
            cors,
            global: &ctx.settings.response_headers,
            route: policy.map_or(&[], |p| &p.response_headers),
            rewrites: policy.and_then(|p| p.response_rewrites.as_deref()),
            auth: &ctx.granted.cookies,
            auth_always: ctx.granted.always,
            set_cookie: ctx.attempts.set_cookie(),
        }
        .at(status);
        if edits.is_empty() {
            return Ok(());
        }
        rewrite_values(response, &edits)?;
        apply(response, |name| edits.keeps(name), |line| edits.added(line))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        let mut e = e.into_up();
        let retry = ctx.attempts.connect_failed(&e) == AfterFailure::Retry;
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        let exchange = Exchange {
            reused: client_reused,
            idempotent: is_idempotent(session.req_header().method.as_str()),
            replayable: !session.as_ref().retry_buffer_truncated(),
            committed: session.response_written().is_some(),
        };
        let retry = ctx.attempts.exchange_failed(&e, exchange) == AfterFailure::Retry;
        e.set_retry(retry);
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let mut code = status_for(e.etype(), e.esource());
        if code > 0 && session.response_written().is_none() {
            let mut lines = Vec::new();
            if let Some(hsts) = ctx.settings.https.hsts.as_deref().filter(|_| is_tls(session)) {
                lines.push((HSTS.to_owned(), hsts.to_owned()));
            }
            let route = ctx.route();
            let cors = route.as_ref().and_then(|r| r.policy.cors.as_ref()).zip(ctx.cors_origin.as_deref());
            if let Some((cors, origin)) = cors {
                lines.extend(cors.headers(origin).map(|(n, v)| (n.to_owned(), v.into_owned())));
            }
            let global = ctx.settings.response_headers.iter();
            lines.extend(
                global
                    .filter(|op| op.action() == ingress_core::HeaderAction::Set)
                    .map(|op| (op.name().to_owned(), op.value().to_owned())),
            );
            match self.answer(session, ctx, code, &lines).await {
                Ok(sent) => code = sent,
                Err(write) => tracing::debug!(error = %write, "could not send error response"),
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

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, error: &Error) -> bool {
        // Statuses chosen on purpose (404, 503, 413) are not errors worth a log line.
        matches!(error.etype(), HTTPStatus(_))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        // Only an answer's latency counts (a failure's would make a broken endpoint look fast).
        if let (true, Some(addr), Some(started), Some(_)) = (
            ctx.attempts.measures_latency(),
            ctx.attempts.upstream(),
            ctx.connect_started,
            ctx.upstream_status,
        ) {
            self.shared.state.ewma.observe(addr, started.elapsed());
        }
        let status = session.response_written().map(|r| r.status.as_u16()).or(ctx.local_status).unwrap_or(0);
        let req = session.req_header();
        let route = ctx.route();
        let table = ctx.snapshot.as_deref().map(|s| &*s.table);
        let mut nginx = NginxFacts::routed(&self.metrics, table, route.as_ref(), request_host(req));
        if matches!(ctx.backend, Chosen::Canary) {
            nginx.served_by_canary(route.as_ref());
        }
        if self.metrics.keeps_nginx_series() || matches!(ctx.settings.log_format, LogFormat::Template(_)) {
            // HTTP/2 has no head bytes to count: the decoded lines, as nginx counts them.
            let lines =
                |h: &http::HeaderMap| h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum::<usize>();
            let target = req.uri.path_and_query().map_or(1, |p| p.as_str().len());
            let head = req.method.as_str().len() + target + lines(&req.headers) + 12;
            nginx.request_size = (head + session.body_bytes_read()) as u64;
            let sent_head = session.response_written().map_or(0, |r| lines(&r.headers) + 17);
            nginx.response_size = (sent_head + session.body_bytes_sent()) as u64;
            nginx.upstream_time = ctx.upstream_status.and(ctx.connect_started).map(|t| t.elapsed());
        }
        let local_port = session.server_addr().and_then(|a| a.as_inet()).map(|a| a.port().to_string());
        Finished {
            client: ctx.client,
            host: request_host(req),
            method: req.method.as_str(),
            path: &ctx.path,
            status,
            bytes: session.body_bytes_sent() as u64,
            took: ctx.started.elapsed(),
            upstream_addr: ctx.attempts.upstream(),
            upstream_status: ctx.upstream_status,
            labels: route_labels(route.as_ref()),
            request_id: &ctx.request_id,
            backend: route.as_ref().map(|r| r.backend.key()),
            nginx,
            received: Received {
                target: req.uri.path_and_query().map_or("/", |p| p.as_str()),
                version: "HTTP/2.0",
                headers: RequestHeaders::Map(&req.headers),
                tls: is_tls(session),
                peer_port: session.client_addr().and_then(|a| a.as_inet()).map(|a| a.port()),
                local_port: local_port.as_deref().unwrap_or_default(),
            },
        }
        .record(&self.metrics, &ctx.settings, ctx.limits.access_log);
    }
}

/// The peer's address and the local port of `session`, as text.
fn peer_text(session: &Session) -> (String, String) {
    let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_string());
    let port = session.server_addr().and_then(|a| a.as_inet()).map(|a| a.port().to_string());
    (peer.unwrap_or_default(), port.unwrap_or_default())
}

/// Who the client of `session` is (the pipeline's client phase), with its peer and port as
/// [`peer_text`] gave them.
fn client_of<'a>(session: &'a Session, forwarding: &Forwarding, peer: &'a str, port: &'a str) -> Client<'a> {
    let req = session.req_header();
    let connection = Connection {
        peer: session.client_addr().and_then(|a| a.as_inet()).map(|a| (a.ip(), peer)),
        tls: is_tls(session),
        port,
    };
    let lines = req.headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()));
    identify(forwarding, connection, request_host(req), Sent::from_lines(forwarding, lines))
}

/// Whether the client's connection is TLS.
fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}
