//! The HTTP/1 engine: the proxy's entry point for every client connection, and the driver of
//! the [`crate::pipeline`] for every HTTP/1.x request.
//!
//! Pingora runs the listeners and TLS; each accepted connection comes here. One that
//! negotiated HTTP/2 (ALPN `h2`) goes to Pingora's session and the HTTP/2 driver
//! ([`crate::h2`]); every other is served here, request after request:
//! - the head is parsed in place in the connection's buffer and checked ([`head`]), within
//!   nginx's limits and deadlines ([`crate::ClientLimits`]): a head has `client-header-timeout`
//!   from its first byte (from the accept, for the first request), an idle connection
//!   `keep-alive`, and a connection serves at most `keep-alive-requests` requests;
//! - the pipeline admits it and picks endpoints; the request goes out over a pooled
//!   connection, written as bytes with the pipeline's header edits ([`request`]), the head
//!   together with the body bytes read with it;
//! - the body follows as the client sends it ([`upload`]), `Content-Length` as is, chunked
//!   decoded and re-framed ([`chunks`]); `Expect: 100-continue` is answered by the proxy;
//! - the response is relayed in its own framing, or re-framed for what the client can read
//!   ([`response`], [`body`]); after a `101` the connections are joined ([`tunnel`]);
//! - pipelined requests are served in order.

mod body;
pub(crate) mod chunks;
mod exchange;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod head;
mod request;
mod response;
mod target;
mod tunnel;
mod upload;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use ingress_core::Route;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::{ALPN, Stream};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncReadExt;

use self::exchange::{Exchanged, Reply, answer, continue_100, exchange, write_reply};
use self::head::{BodyFraming, Head, HeadLimits, Parsed};
use self::response::Asked;
use self::upload::Upload;
use crate::config::{ClientLimits, RouteLimits, RuntimeSettings, Timeouts};
use crate::handle::Shared;
use crate::metrics::{ActiveRequest, Metrics};
use crate::pipeline::balance::Choice;
use crate::pipeline::client::{Connection, Sent, identify};
use crate::pipeline::edits::{Names, RequestEdits, ResponseEdits, new_request_id};
use crate::pipeline::errors::{self, ErrorPages, PageRequest};
use crate::pipeline::external_auth::{self, Granted, Verdict};
use crate::pipeline::log::{Finished, NginxFacts, Received, RequestHeaders, route_labels};
use crate::pipeline::request_vars::RequestVars;
use crate::pipeline::{AfterFailure, Attempts, Exchange, Facts, admit, backend_for, is_idempotent};
use crate::pool::{IdlePool, Upstream};
use crate::upstream::Selector;
use crate::upstream_tls::{Compiled, Connectors};

/// How long, and for how many bytes, a connection closed with its request body unread keeps
/// reading it (see [`linger`]).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// How long a write of the proxy's own answer to the client may take (nginx's `send_timeout`).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxy's [`ServerApp`]: HTTP/1 connections served here, HTTP/2 handed to Pingora.
pub(crate) struct Front {
    /// Pingora's HTTP/2 session and the HTTP/2 driver.
    pub(crate) h2: Arc<HttpProxy<crate::h2::H2>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) selector: Arc<dyn Selector>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) pool: Arc<IdlePool>,
    /// The routes' TLS settings to endpoints, compiled.
    pub(crate) connectors: Arc<Connectors>,
}

/// One client connection and the buffers its requests reuse.
struct Conn {
    client: Stream,
    /// The peer address, for logs.
    peer: Option<SocketAddr>,
    /// Requests read on this connection.
    requests: u32,
    /// The request going upstream.
    request: Vec<u8>,
    /// The response head going to the client (and small writes with it).
    head: Vec<u8>,
    /// Bytes read from the upstream.
    upstream: BytesMut,
}

/// What the proxy adds to a response it makes itself after trying the upstream (a `502`,
/// `504`…), and to the upstream's.
struct Local<'a> {
    hsts: Option<&'a str>,
    cors: Option<(&'a ingress_core::Cors, &'a str)>,
    /// The edits of every response (`add-headers`, `hide-headers`, `Server`).
    global: &'a [ingress_core::HeaderOp],
    /// The header lines of the proxy's own answers.
    headers: Vec<(&'a str, Cow<'a, str>)>,
    /// The request is a `HEAD`: answers have no body.
    head_request: bool,
    /// The statuses the route answers with an error page (`custom-http-errors`), and what
    /// the error backend is told.
    pages: Option<(ErrorPages<'a>, PageRequest<'a>)>,
    /// The client's connection is TLS (`backend-protocol: AUTO_HTTP` follows it).
    client_tls: bool,
}

/// Where a connection comes from, formatted once for the forwarding headers of its requests.
struct Peer {
    addr: Option<SocketAddr>,
    ip: String,
    local_port: String,
    tls: bool,
}

impl Peer {
    fn connection(&self) -> Connection<'_> {
        Connection {
            peer: self.addr.map(|a| (a.ip(), self.ip.as_str())),
            tls: self.tls,
            port: &self.local_port,
        }
    }
}

/// What happens to the client connection after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// What the access log and metrics need to know about a request.
#[derive(Debug, Default)]
struct Outcome {
    status: u16,
    upstream: Option<SocketAddr>,
    upstream_status: Option<u16>,
    bytes: u64,
    /// Bytes of the response head sent.
    head_bytes: u64,
    /// When the first attempt to reach an endpoint began.
    upstream_started: Option<Instant>,
    /// The route's canary served the request.
    canary: bool,
    /// The response head went out, so a failure can no longer become an error response.
    committed: bool,
    /// The response told the client the connection closes after it.
    closing: bool,
}

impl ClientLimits {
    /// The head limits these say.
    fn head(&self) -> HeadLimits {
        let line = self.large_header_buffer_size.max(self.header_buffer_size);
        HeadLimits { line, total: (self.large_header_buffers * self.large_header_buffer_size).max(line) }
    }
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.h2, stream, shutdown).await;
        }
        let mut stream = stream;
        let socket = stream.get_socket_digest();
        let mut peer = socket.as_ref().and_then(|s| s.peer_addr()).and_then(|a| a.as_inet()).copied();
        let mut local_port =
            socket.as_ref().and_then(|s| s.local_addr()).and_then(|a| a.as_inet()).map(|a| a.port());
        let tls = stream.get_ssl_digest().is_some();
        let mut buf = BytesMut::with_capacity(4096);
        // `use-proxy-protocol` on plain HTTP (over TLS, `tls::PreTls` read it before the
        // handshake and the socket digest already says what it said).
        // Only while the header is read: a connection does not keep old settings alive.
        let settings = self.shared.settings.load_full();
        let mut believed = None;
        if settings.forwarding.proxy_protocol && !tls {
            let forwarding = &settings.forwarding;
            let (header, rest) =
                crate::proxy_protocol::read(&mut stream, forwarding.proxy_protocol_timeout).await.ok()?;
            believed = crate::proxy_protocol::believed(&header, peer, &forwarding.trusted);
            if let Some((client, local)) = believed {
                (peer, local_port) = (Some(client), Some(local.port()));
            }
            buf.extend_from_slice(&rest);
        }
        drop(settings);
        let mut conn = Conn {
            client: stream,
            peer,
            requests: 0,
            request: Vec::with_capacity(1024),
            head: Vec::with_capacity(1024),
            upstream: BytesMut::new(),
        };
        let from = Peer {
            addr: peer,
            ip: peer.map(|a| a.ip().to_string()).unwrap_or_default(),
            local_port: local_port.map(|p| p.to_string()).unwrap_or_default(),
            tls,
        };
        let mut stopping = shutdown.clone();
        // The first head's time counts from the accept, as nginx counts it.
        let mut head_started = Some(Instant::now());
        loop {
            let settings = self.shared.settings.load_full();
            let limits = settings.client;
            // HTTP/2 with prior knowledge on the plain port (h2c, as gRPC clients speak it
            // without TLS): the connection goes to the HTTP/2 driver, bytes read included.
            if conn.requests == 0 && !tls && buf.starts_with(H2C_PREFACE_START) {
                return self.h2c(conn.client, &buf, believed, shutdown).await;
            }
            let mut slots = head::header_slots();
            match head::parse(&buf, &mut slots, limits.head()) {
                Parsed::Request(head) => {
                    conn.requests += 1;
                    let close = head.close
                        || *shutdown.borrow()
                        || conn.requests >= limits.keepalive_requests
                        || limits.keepalive_timeout.is_zero();
                    let replay = is_idempotent(head.method);
                    let mut upload = Upload::new(head.body, &buf[head.len..], replay, limits.body_timeout);
                    let next = self.serve(&head, &mut upload, &settings, close, &from, &mut conn).await;
                    if next == Next::Close {
                        // Bytes the client sent that were not read (a body, or requests it
                        // pipelined behind one the proxy answered last) would make the kernel
                        // reset the connection, and the client lose the last response.
                        let unread = !upload.is_complete()
                            || !upload.unread().is_empty()
                            || !upload.leftover.is_empty()
                            || !head.close;
                        if unread {
                            linger(conn.client).await;
                        }
                        return None;
                    }
                    // The next request: what followed the body in the buffer (nothing, if the
                    // body went on past it), then what was read past the body.
                    let (used, leftover) = (head.len + upload.consumed, upload.leftover);
                    buf.advance(used);
                    buf.extend_from_slice(&leftover);
                    head_started = None;
                }
                Parsed::Partial => {
                    // Idle between requests: the keep-alive timeout. Inside a head: what is
                    // left of the time the head has (a trickled head does not last forever).
                    let wait = match head_started {
                        None if buf.is_empty() => limits.keepalive_timeout,
                        _ => {
                            let now = Instant::now();
                            (*head_started.get_or_insert(now) + limits.header_timeout)
                                .saturating_duration_since(now)
                        }
                    };
                    let idle = head_started.is_none() && buf.is_empty();
                    // A graceful stop closes idle keep-alive connections at once (as nginx
                    // does), so the drain waits only for requests.
                    if wait.is_zero() || (idle && *stopping.borrow()) {
                        return None;
                    }
                    let read = read_client(&mut conn.client, &mut buf, wait);
                    let got = if idle {
                        tokio::select! {
                            got = read => got,
                            _ = stopping.changed() => false,
                        }
                    } else {
                        read.await
                    };
                    if !got {
                        return None;
                    }
                }
                Parsed::Refused(refusal) => {
                    tracing::debug!(status = refusal.status, why = refusal.why, client = ?conn.peer, "request refused");
                    self.refuse(refusal.status, &settings, &mut conn).await;
                    linger(conn.client).await;
                    return None;
                }
            }
        }
    }

    async fn cleanup(&self) {
        self.h2.http_cleanup().await;
    }
}

/// Closes a connection whose request body was not read: says so with a FIN, then reads and
/// drops what the client still sends for a moment, so its unread bytes do not make the kernel
/// reset the connection before the client has read the response (nginx's lingering close).
async fn linger(mut client: Stream) {
    use tokio::io::AsyncWriteExt;
    let drain = async {
        let _ = client.shutdown().await;
        let mut sink = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = pingora::time::timeout(LINGER_TIME, drain).await;
}

/// Waits up to `wait` for more of the next request; false when the client closed, failed or
/// ran out of time.
async fn read_client(client: &mut Stream, buf: &mut BytesMut, wait: Duration) -> bool {
    buf.reserve(4096);
    matches!(body::within(wait, client.read_buf(buf)).await, Ok(Ok(n)) if n > 0)
}

/// How an HTTP/2 connection preface starts (RFC 9113 section 3.4): no HTTP/1 request does.
const H2C_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

impl Front {
    /// Hands a plain connection that opened with HTTP/2's preface to the HTTP/2 driver, with
    /// the bytes already read put back, and the addresses a PROXY header gave in its socket
    /// digest.
    async fn h2c(
        &self,
        stream: Stream,
        read: &[u8],
        believed: Option<(SocketAddr, SocketAddr)>,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(mut l4) = stream.into_any().downcast::<pingora::protocols::l4::stream::Stream>() else {
            tracing::debug!("an h2c connection on a stream that cannot take bytes back: closed");
            return None;
        };
        l4.rewind(read);
        if let Some((client, local)) = believed {
            crate::tls::set_addresses(&mut l4, client, local);
        }
        let stream: Stream = l4;
        ServerApp::process_new(&self.h2, stream, shutdown).await
    }

    /// The TLS settings of `route`'s upstream connections (`None`: plain TCP). gRPC's
    /// HTTP/2 cannot be spoken from the HTTP/1 engine: `502`.
    fn upstream_tls(&self, route: &Route<'_>, client_tls: bool) -> Result<Option<Arc<Compiled>>, u16> {
        let protocol = route.policy.backend_protocol();
        if protocol.http2() {
            tracing::debug!(%protocol, "an HTTP/1 request for a gRPC backend: 502");
            return Err(502);
        }
        if !protocol.tls(client_tls) {
            return Ok(None);
        }
        self.connectors.get(route.policy.upstream_tls()).map(Some).map_err(|error| {
            tracing::warn!(%error, "a route's TLS to endpoints cannot be set up: 502");
            502
        })
    }

    /// Answers a head the engine refused, and logs it.
    async fn refuse(&self, status: u16, settings: &RuntimeSettings, conn: &mut Conn) {
        let started = Instant::now();
        let mut outcome = Outcome::default();
        answer(conn, status, true, false, &[], &mut outcome).await;
        Finished {
            client: conn.peer.map(|a| a.ip()),
            host: "",
            method: "",
            path: "",
            status: outcome.status,
            bytes: outcome.bytes,
            took: started.elapsed(),
            upstream_addr: None,
            upstream_status: None,
            labels: route_labels(None),
            request_id: "",
            backend: None,
            nginx: NginxFacts::default(),
            received: Received { peer_port: conn.peer.map(|a| a.port()), ..Received::default() },
        }
        .record(&self.metrics, settings, settings.access_log);
    }

    /// Serves one request, start to access log: the pipeline's phases, driven over bytes.
    async fn serve(
        &self,
        head: &Head<'_>,
        upload: &mut Upload<'_>,
        settings: &RuntimeSettings,
        close: bool,
        from: &Peer,
        conn: &mut Conn,
    ) -> Next {
        let started = Instant::now();
        let _active = ActiveRequest::start(&self.metrics);
        let snapshot = self.shared.snapshot.load_full();
        let generated;
        let request_id = match head.request_id {
            Some(id) => id,
            None => {
                generated = new_request_id();
                &generated[..]
            }
        };
        let declared = match head.body {
            BodyFraming::Length(n) => Some(n),
            BodyFraming::None | BodyFraming::Chunked => None,
        };
        let connection = from.connection();
        let sent = Sent::from_lines(&settings.forwarding, head.headers.iter().map(|h| (h.name, h.value)));
        let client = identify(&settings.forwarding, connection, head.host, sent);
        // What the handshake said of a client certificate (hosts with `auth-tls-*` only).
        let tls_digest = if from.tls { conn.client.get_ssl_digest() } else { None };
        let facts = Facts {
            host: head.host,
            target: head.origin_form,
            length: declared,
            tls: from.tls,
            scheme: client.scheme,
            forwarded_host: client.host,
            port: client.port,
            method: head.method,
            origin: client.origin,
            client: client.ip,
            authorization: head
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                .and_then(|h| std::str::from_utf8(h.value).ok()),
            client_cert: tls_digest.as_deref().and_then(|d| d.extension.get()),
        };
        let hsts = settings.https.hsts.as_deref().filter(|_| from.tls);
        let table = snapshot.as_deref().map(|s| &*s.table);
        let mut admitted = admit(table, settings, &self.shared.state, &facts);
        // The request's variables, for external authentication and the balancing that reads
        // the request (hashing, affinity).
        let pending = admitted.auth.take();
        let needs_vars = pending.is_some() || admitted.route.as_ref().is_some_and(Choice::needs_request);
        let lines: Vec<(&str, &[u8])> =
            if needs_vars { head.headers.iter().map(|h| (h.name, h.value)).collect() } else { Vec::new() };
        let vars = admitted.route.as_ref().filter(|_| needs_vars).map(|route| RequestVars {
            method: head.method,
            target: head.origin_form,
            path: &admitted.path,
            host: head.host,
            headers: &lines,
            client: &client,
            tls: from.tls,
            request_id: std::str::from_utf8(request_id).unwrap_or(""),
            route,
        });
        let choice = admitted.route.as_ref().map(|route| Choice::of(route, settings, vars.as_ref()));
        let granted = match (pending, vars.as_ref()) {
            (Some(pending), Some(vars)) => {
                let names = Names::of(&settings.client);
                let cache = &self.shared.state.auth_cache;
                external_auth::ask(pending, vars, names, &admitted.limits.timeouts, cache).await
            }
            // Pending authentication always has a route, so variables; never let it through.
            (Some(_), None) => Verdict::Refused { status: 500, lines: Vec::new() },
            (None, _) => Verdict::Allowed(Granted::unasked(admitted.external)),
        };
        let mut granted = match granted {
            Verdict::Allowed(granted) => granted,
            Verdict::Refused { status, lines } => {
                admitted.answer = Some(status);
                admitted.auth_lines = lines;
                Granted::default()
            }
        };
        // The `ssl-client-*` headers win over the client's, as the auth service's do.
        granted.upstream.append(&mut admitted.client_cert);
        upload.limit(admitted.limits.max_body_size);
        let mut outcome = Outcome::default();
        let global = &settings.response_headers[..];
        let pages = ErrorPages::of(admitted.route.as_ref(), table, settings).map(|pages| {
            let request = PageRequest {
                code: 0,
                head: head.method == "HEAD",
                host: head.host,
                target: head.origin_form,
                accept: head
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("accept"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()),
                request_id: std::str::from_utf8(request_id).unwrap_or(""),
                client: &client.ip_text,
            };
            (pages, request)
        });
        let local = Local {
            hsts,
            cors: admitted.cors,
            global,
            headers: admitted.answer_headers(hsts, global),
            head_request: head.method == "HEAD",
            pages,
            client_tls: from.tls,
        };
        let next = match (admitted.answer, &admitted.route) {
            (None, Some(route)) => {
                let edits = RequestEdits {
                    target: admitted.upstream_target.as_deref(),
                    host: route.policy.upstream_host.as_deref(),
                    forwarded_prefix: route
                        .policy
                        .forwarded_prefix
                        .as_deref()
                        .filter(|_| admitted.upstream_target.is_some()),
                    client: &client,
                    request_id,
                    nominated: head.nominated(),
                    names: Names::of(&settings.client),
                    global: &settings.request_headers,
                    route: &route.policy.request_headers,
                    auth: &granted.upstream,
                };
                request::write(head, &edits, &mut conn.request);
                let attempts = Attempts::new(&admitted.limits).choosing(choice.unwrap_or_default());
                let limits = &admitted.limits;
                self.proxy(head, upload, route, limits, attempts, close, &local, &granted, conn, &mut outcome)
                    .await
            }
            // Answered without the body: the connection stays only if the body was all read
            // with the head, and never after a 400 or 413 (as nginx closes it).
            (status, route) => {
                let status = status.unwrap_or(404);
                let close = close || matches!(status, 400 | 413) || !upload.skip_prefix();
                let timeouts = &admitted.limits.timeouts;
                self.respond(conn, status, close, route.as_ref(), &local, timeouts, &mut outcome).await
            }
        };
        let mut nginx = NginxFacts::routed(&self.metrics, table, admitted.route.as_ref(), head.host);
        nginx.upstream_time = outcome.upstream.and(outcome.upstream_started).map(|t| t.elapsed());
        nginx.request_size = (head.len as u64).saturating_add(upload.body_bytes());
        nginx.response_size = outcome.head_bytes.saturating_add(outcome.bytes);
        if outcome.canary {
            nginx.served_by_canary(admitted.route.as_ref());
        }
        Finished {
            client: client.ip,
            host: head.host,
            method: head.method,
            path: &admitted.path,
            status: outcome.status,
            bytes: outcome.bytes,
            took: started.elapsed(),
            upstream_addr: outcome.upstream,
            upstream_status: outcome.upstream_status,
            labels: route_labels(admitted.route.as_ref()),
            request_id: std::str::from_utf8(request_id).unwrap_or(""),
            backend: admitted.route.as_ref().map(|r| r.backend.key()),
            nginx,
            received: Received {
                target: head.origin_form,
                version: if head.minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" },
                headers: RequestHeaders::Lines(head.headers),
                tls: from.tls,
                peer_port: from.addr.map(|a| a.port()),
                local_port: &from.local_port,
            },
        }
        .record(&self.metrics, settings, admitted.limits.access_log);
        next
    }

    /// Answers with `status` (the proxy's own answer, with `local`'s header lines), or with the
    /// error page the route gives that status (`custom-http-errors`).
    #[allow(clippy::too_many_arguments)] // one answer's parts, each borrowed separately
    async fn respond(
        &self,
        conn: &mut Conn,
        status: u16,
        close: bool,
        route: Option<&Route<'_>>,
        local: &Local<'_>,
        timeouts: &Timeouts,
        outcome: &mut Outcome,
    ) -> Next {
        let head_request = local.head_request;
        let Some(((pages, request), route)) =
            local.pages.as_ref().zip(route).filter(|((p, _), _)| p.wants(status))
        else {
            return answer(conn, status, close, head_request, &local.headers, outcome).await;
        };
        let request = PageRequest { code: status, ..*request };
        let page = errors::fetch(pages, route, &request, &*self.selector, timeouts).await;
        // The error backend's lines, minus those every response has replaced or removed.
        let every = ResponseEdits { global: local.global, ..ResponseEdits::default() };
        let headers: Vec<(&str, &str)> = page
            .headers
            .iter()
            .filter(|(n, _)| every.keeps(n))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let reply = Reply { status: page.status, headers: &headers, body: &page.body };
        write_reply(conn, &reply, close, head_request, &local.headers, outcome).await
    }

    /// Sends the request to the route's endpoints until one answers or the pipeline says to
    /// stop, and relays the response.
    #[allow(clippy::too_many_arguments)] // one request's parts, each borrowed separately
    async fn proxy(
        &self,
        head: &Head<'_>,
        upload: &mut Upload<'_>,
        route: &Route<'_>,
        limits: &RouteLimits,
        mut attempts: Attempts,
        close: bool,
        local: &Local<'_>,
        granted: &Granted,
        conn: &mut Conn,
        outcome: &mut Outcome,
    ) -> Next {
        outcome.upstream_started = Some(Instant::now());
        let waiting = head.expect_continue && head.body != BodyFraming::None && upload.unread().is_empty();
        if waiting && continue_100(conn, SEND_TIMEOUT).await.is_err() {
            return Next::Close;
        }
        let asked =
            Asked { head: head.method == "HEAD", minor: head.minor, close, upgrade: head.upgrade.is_some() };
        let edits = ResponseEdits {
            hsts: local.hsts,
            cors: local.cors,
            global: local.global,
            route: &route.policy.response_headers,
            rewrites: route.policy.response_rewrites.as_deref(),
            auth: &granted.cookies,
            auth_always: granted.always,
            set_cookie: None,
        };
        let backend = backend_for(route, head.headers.iter().map(|h| (h.name, h.value)));
        outcome.canary = route.canary.is_some_and(|c| std::ptr::eq(backend, c.backend));
        let tls = match self.upstream_tls(route, local.client_tls) {
            Ok(tls) => tls,
            Err(status) => {
                return self.respond(conn, status, true, Some(route), local, &limits.timeouts, outcome).await;
            }
        };
        let pool_key = |addr| (addr, tls.as_ref().map_or(0, |c| c.id));
        let mut sent_before = false;
        loop {
            let attempt_started = Instant::now();
            let addr = match attempts.next(&*self.selector, backend, &self.shared.state) {
                Ok(addr) => addr,
                Err(status) => {
                    return self
                        .respond(conn, status, true, Some(route), local, &limits.timeouts, outcome)
                        .await;
                }
            };
            outcome.upstream = Some(addr);
            let (mut up, reused) = match self.pool.take(pool_key(addr)) {
                Some(stream) => (stream, true),
                None => {
                    let connecting = Instant::now();
                    match connect(addr, limits.timeouts.connect, tls.as_deref()).await {
                        Ok(stream) => {
                            self.metrics.observe_connect(connecting.elapsed());
                            (stream, false)
                        }
                        Err(e) => match attempts.connect_failed(&e) {
                            AfterFailure::Retry => continue,
                            AfterFailure::Fail(status) => {
                                tracing::debug!(error = %e, "connecting upstream failed");
                                let timeouts = &limits.timeouts;
                                return self
                                    .respond(conn, status, true, Some(route), local, timeouts, outcome)
                                    .await;
                            }
                        },
                    }
                }
            };
            let retry = std::mem::replace(&mut sent_before, true);
            let intercepts = |status| local.pages.as_ref().is_some_and(|(pages, _)| pages.wants(status));
            let cookie = attempts.set_cookie().map(str::to_owned);
            let edits = ResponseEdits { set_cookie: cookie.as_deref(), ..edits };
            let exchanged =
                exchange(asked, &edits, &intercepts, upload, retry, &mut up, &limits.timeouts, conn, outcome)
                    .await;
            // An answer's latency counts; a failed exchange's would make a broken endpoint look fast.
            if attempts.measures_latency() && exchanged.is_ok() {
                self.shared.state.ewma.observe(addr, attempt_started.elapsed());
            }
            match exchanged {
                Ok(Exchanged::Switched) => return Next::Close,
                // The upstream connection is left unread, so it goes; so does the client's if
                // its body was not all read.
                Ok(Exchanged::Intercepted { status }) => {
                    let close = close || !upload.is_complete();
                    return self
                        .respond(conn, status, close, Some(route), local, &limits.timeouts, outcome)
                        .await;
                }
                Ok(Exchanged::Answered { reusable }) => {
                    if reusable {
                        let keepalive = self.shared.settings.load().upstream_keepalive_timeout;
                        self.pool.put(pool_key(addr), backend.shared_slot(), up, keepalive);
                    }
                    let keep = !close && !outcome.closing && upload.is_complete();
                    return if keep { Next::KeepAlive } else { Next::Close };
                }
                Err(e) => {
                    let exchange = Exchange {
                        reused,
                        idempotent: is_idempotent(head.method),
                        replayable: upload.replayable(),
                        committed: outcome.committed,
                    };
                    match attempts.exchange_failed(&e, exchange) {
                        AfterFailure::Retry => {
                            tracing::debug!(error = %e, "stale pooled connection, retrying");
                        }
                        AfterFailure::Fail(0) => {
                            tracing::debug!(error = %e, "exchange failed");
                            return Next::Close;
                        }
                        AfterFailure::Fail(status) => {
                            tracing::debug!(error = %e, "upstream exchange failed");
                            return self
                                .respond(conn, status, true, Some(route), local, &limits.timeouts, outcome)
                                .await;
                        }
                    }
                }
            }
        }
    }
}

/// A new connection to `addr`, over TLS when `tls` says, within `timeout`; a failure is the
/// Pingora error the retry rules and statuses know (refused, timed out, no route, TLS, other).
async fn connect(addr: SocketAddr, timeout: Duration, tls: Option<&Compiled>) -> pingora::Result<Upstream> {
    use pingora::ErrorType::{
        ConnectError, ConnectNoRoute, ConnectRefused, ConnectTimedout, TLSHandshakeFailure,
    };
    let started = Instant::now();
    let stream = match body::within(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let etype = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ConnectRefused,
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    ConnectNoRoute
                }
                _ => ConnectError,
            };
            return Err(pingora::Error::because(etype, format!("connecting to {addr}"), e).into_up());
        }
        Err(_) => {
            return Err(pingora::Error::explain(ConnectTimedout, format!("connecting to {addr}")).into_up());
        }
    };
    // Requests go out whole, in one write: nothing for Nagle's algorithm to gather.
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else { return Ok(Upstream::Plain(stream)) };
    // The handshake counts against the connect timeout, as nginx's `proxy_connect_timeout`.
    let left = timeout.saturating_sub(started.elapsed());
    match body::within(left, crate::upstream_tls::handshake(tls, stream)).await {
        Ok(Ok(upstream)) => Ok(upstream),
        Ok(Err(e)) => {
            Err(pingora::Error::because(TLSHandshakeFailure, format!("TLS to {addr}"), e).into_up())
        }
        Err(_) => Err(pingora::Error::explain(ConnectTimedout, format!("TLS to {addr}")).into_up()),
    }
}
