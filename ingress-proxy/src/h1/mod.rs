//! The HTTP/1.1 fast path: the proxy's entry point for every client connection.
//!
//! Why it exists: Pingora's HTTP/1 session and proxy framework cost more CPU per request than
//! nginx spends in total (`benches/proxy/`: a minimal Pingora proxy alone measured 1.31× nginx's
//! CPU per request, and its request and response header maps, boxed futures and per-request
//! context most of that). Most ingress traffic is bodyless HTTP/1.1 (`GET`, `HEAD`,
//! `DELETE`) on keep-alive connections, which needs none of it.
//!
//! So each connection starts here. A request that [`head::parse`] accepts (bodyless
//! HTTP/1.1, origin-form target, one `Host`, no `Upgrade` or `Expect`) is served in place:
//! its head is read straight from the connection's buffer, written out again for the upstream
//! with the forwarding headers, and the response is relayed back in its own framing
//! ([`response`], [`body`]), on the same pooled upstream connections, with the same routing,
//! selection, retry, status, metrics and access-log policy as the rest of the proxy. Anything
//! else — request bodies, upgrades, HTTP/1.0, HTTP/2, malformed heads — is handed, with the
//! bytes already read, to Pingora's HTTP/1 session and the [`crate::service`] phases; when
//! Pingora is done with a request and keeps the connection, the next request starts here
//! again.

mod body;
mod chunks;
mod exchange;
mod head;
mod response;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use ingress_core::{Route, RoutePolicy};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::connectors::TransportConnector;
use pingora::prelude::HttpPeer;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{ALPN, Stream};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncReadExt;

use self::exchange::{answer, exchange};
use self::head::{BodyFraming, Forwarding, Head, Parsed};
use self::upload::Upload;
use crate::config::{RouteLimits, RuntimeSettings, Timeouts};
use crate::handle::Shared;
use crate::metrics::Metrics;
use crate::pool::IdlePool;
use crate::response::status_for;
use crate::service::{ActiveRequest, Ferry, Finished};
use crate::upstream::{Selector, connect_failure_is_retryable, stale_connection_is_retryable};

/// How long a client connection may sit idle between requests (Pingora's HTTP/1 default), and
/// how long a request head may take to arrive from its first byte (nginx's
/// `client_header_timeout`).
const KEEPALIVE: Duration = Duration::from_secs(60);

/// How long, and for how many bytes, a connection closed with its request body unread keeps
/// reading it (see [`linger`]).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// A request head not complete within this many bytes goes to Pingora, which has its own
/// limits and answers for oversized heads.
const MAX_HEAD: usize = 32 * 1024;

/// The proxy's [`ServerApp`]: serves what the fast path takes, hands the rest to Pingora.
pub(crate) struct Front {
    pub(crate) pingora: Arc<HttpProxy<Ferry>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) selector: Arc<dyn Selector>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) transport: TransportConnector,
    pub(crate) pool: Arc<IdlePool>,
}

/// One client connection and the buffers its requests reuse.
struct Conn {
    client: Stream,
    /// The peer address, for logs.
    peer: Option<SocketAddr>,
    /// The client's IP address and the local port, formatted for the forwarding headers.
    client_ip: Option<String>,
    local_port: Option<String>,
    tls: bool,
    /// The request going upstream.
    request: Vec<u8>,
    /// The response head going to the client (and small writes with it).
    head: Vec<u8>,
    /// Bytes read from the upstream.
    upstream: BytesMut,
}

/// What happens to the client connection after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// What the access log and metrics need to know about a request that went upstream.
#[derive(Debug, Default)]
struct Outcome {
    status: u16,
    upstream: Option<SocketAddr>,
    upstream_status: Option<u16>,
    bytes: u64,
    /// The response head went out, so a failure can no longer become an error response.
    committed: bool,
    /// The response told the client the connection closes after it.
    closing: bool,
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.pingora, stream, shutdown).await;
        }
        let socket = stream.get_socket_digest();
        let peer = socket.as_ref().and_then(|s| s.peer_addr()).and_then(|a| a.as_inet()).copied();
        let local_port =
            socket.as_ref().and_then(|s| s.local_addr()).and_then(|a| a.as_inet()).map(|a| a.port());
        let tls = stream.get_ssl_digest().is_some();
        let mut conn = Conn {
            client: stream,
            peer,
            client_ip: peer.map(|a| a.ip().to_string()),
            local_port: local_port.map(|p| p.to_string()),
            tls,
            request: Vec::with_capacity(1024),
            head: Vec::with_capacity(1024),
            upstream: BytesMut::new(),
        };
        let mut buf = BytesMut::with_capacity(4096);
        let mut head_started = None;
        loop {
            let mut headers = head::header_slots();
            match head::parse(&buf, &mut headers) {
                Parsed::Fast(head) => {
                    let close = head.close || *shutdown.borrow();
                    let settings = self.shared.settings.load_full();
                    let mut upload =
                        Upload::new(head.body, &buf[head.len..], head.is_idempotent(), KEEPALIVE);
                    let next = self.serve(&head, &mut upload, &settings, close, &mut conn).await;
                    if next == Next::Close {
                        if !upload.is_complete() {
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
                Parsed::Partial if buf.len() < MAX_HEAD => {
                    // Idle: the keep-alive timeout. Inside a head: what is left of the time
                    // the head has from its first byte (a trickled head does not last forever).
                    let now = Instant::now();
                    let wait = if buf.is_empty() {
                        KEEPALIVE
                    } else {
                        (*head_started.get_or_insert(now) + KEEPALIVE).saturating_duration_since(now)
                    };
                    if !read_client(&mut conn.client, &mut buf, wait).await {
                        return None;
                    }
                }
                Parsed::Partial | Parsed::Other => {
                    conn.client = self.hand_over(conn.client, buf.split(), shutdown).await?;
                    head_started = None;
                }
            }
        }
    }

    async fn cleanup(&self) {
        self.pingora.http_cleanup().await;
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
    matches!(pingora::time::timeout(wait, client.read_buf(buf)).await, Ok(Ok(n)) if n > 0)
}

impl Front {
    /// Lets Pingora serve the request at the start of `prefix` (and its body, still on the
    /// connection). Returns the connection if Pingora keeps it alive.
    async fn hand_over(
        self: &Arc<Self>,
        client: Stream,
        prefix: BytesMut,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut session = ServerSession::new_http1(client);
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(KEEPALIVE.as_secs()) });
        if !prefix.is_empty() {
            session.set_pipelined_prefix(prefix);
        }
        let reused = self.pingora.process_new_http(session, shutdown).await?;
        // Pingora keeps no pipelined bytes unless pipelining is switched on, which it is not.
        Some(reused.consume().0)
    }

    /// Serves one fast-path request, start to access log.
    async fn serve(
        &self,
        head: &Head<'_>,
        upload: &mut Upload<'_>,
        settings: &RuntimeSettings,
        close: bool,
        conn: &mut Conn,
    ) -> Next {
        let started = Instant::now();
        self.metrics.active_requests.inc();
        let _active = ActiveRequest(self.metrics.active_requests.clone());
        let snapshot = self.shared.snapshot.load_full();
        let generated;
        let request_id = match head.request_id {
            Some(id) => id,
            None => {
                generated = head::new_request_id();
                &generated[..]
            }
        };
        let route = snapshot.as_deref().and_then(|s| s.table.lookup(head.host, head.path));
        let limits = settings.limits_for(route.as_ref().map_or(&RoutePolicy::default(), |r| r.policy));
        upload.limit(limits.max_body_size);
        let mut outcome = Outcome::default();
        let declared = match head.body {
            BodyFraming::Length(n) => Some(n),
            BodyFraming::None | BodyFraming::Chunked => None,
        };
        let next = match &route {
            Some(_) if limits.max_body_size.zip(declared).is_some_and(|(limit, n)| n > limit) => {
                answer(conn, 413, true, &mut outcome).await
            }
            // Answered without the body: the connection stays only if the body was all read
            // with the head.
            None => answer(conn, 404, close || !upload.skip_prefix(), &mut outcome).await,
            Some(route) if route.backend.endpoints().is_empty() => {
                answer(conn, 503, close || !upload.skip_prefix(), &mut outcome).await
            }
            Some(route) => {
                let forwarding = Forwarding {
                    client: conn.client_ip.as_deref(),
                    tls: conn.tls,
                    port: conn.local_port.as_deref(),
                    request_id,
                };
                head.write_upstream(&forwarding, &mut conn.request);
                self.proxy(head, upload, route, settings, &limits, close, conn, &mut outcome).await
            }
        };
        Finished {
            client: conn.peer,
            host: head.host,
            method: head.method,
            path: head.path,
            status: outcome.status,
            bytes: outcome.bytes,
            took: started.elapsed(),
            upstream_addr: outcome.upstream,
            upstream_status: outcome.upstream_status,
            labels: route.as_ref().map(crate::service::route_labels).unwrap_or_default(),
            request_id: std::str::from_utf8(request_id).unwrap_or(""),
        }
        .record(&self.metrics, settings.access_log);
        next
    }

    /// Sends the request to the route's endpoints until one answers or the attempt budget
    /// runs out (the policy of [`crate::forward`]), and relays the response.
    #[allow(clippy::too_many_arguments)] // one request's parts, each borrowed separately
    async fn proxy(
        &self,
        head: &Head<'_>,
        upload: &mut Upload<'_>,
        route: &Route<'_>,
        settings: &RuntimeSettings,
        limits: &RouteLimits,
        close: bool,
        conn: &mut Conn,
        outcome: &mut Outcome,
    ) -> Next {
        let backend = route.backend;
        let endpoints = backend.endpoints();
        let timeouts = limits.timeouts;
        let mut tried = Vec::new();
        let mut failure_status = None;
        let mut attempts = 0;
        let mut sent_before = false;
        loop {
            let Some(endpoint) = self.selector.select(backend, &endpoints, &tried) else {
                return answer(conn, failure_status.unwrap_or(503), true, outcome).await;
            };
            attempts += 1;
            let addr = endpoint.addr;
            outcome.upstream = Some(addr);
            let (mut up, reused) = match self.pool.take(addr) {
                Some(stream) => (stream, true),
                None => {
                    let connecting = Instant::now();
                    match self.transport.new_stream(&peer(addr, &timeouts)).await {
                        Ok(stream) => {
                            self.metrics.observe_connect(connecting.elapsed());
                            (stream, false)
                        }
                        Err(e) => {
                            tried.push(addr);
                            let e = e.into_up();
                            failure_status = Some(status_for(e.etype(), e.esource()));
                            if connect_failure_is_retryable(e.etype()) && attempts < limits.max_attempts {
                                continue;
                            }
                            tracing::debug!(error = %e, "connecting upstream failed");
                            return answer(conn, failure_status.unwrap_or(502), true, outcome).await;
                        }
                    }
                }
            };
            let retry = std::mem::replace(&mut sent_before, true);
            match exchange(head, upload, retry, &mut up, close, &timeouts, conn, outcome).await {
                Ok(reusable) => {
                    if reusable {
                        self.pool.put(addr, backend.shared_slot(), up, settings.upstream_keepalive_timeout);
                    }
                    let keep = !close && !outcome.closing && upload.is_complete();
                    return if keep { Next::KeepAlive } else { Next::Close };
                }
                // A pooled connection the upstream had closed: sent again on another one, as
                // [`crate::forward`] does.
                Err(e)
                    if reused
                        && !outcome.committed
                        && stale_connection_is_retryable(&e)
                        && head.is_idempotent()
                        && upload.replayable()
                        && attempts < limits.max_attempts =>
                {
                    tracing::debug!(error = %e, "stale pooled connection, retrying");
                }
                Err(e) if outcome.committed => {
                    tracing::debug!(error = %e, "response relay failed");
                    return Next::Close;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "upstream exchange failed");
                    let status = status_for(e.etype(), e.esource());
                    if status == 0 {
                        return Next::Close;
                    }
                    return answer(conn, status, true, outcome).await;
                }
            }
        }
    }
}

/// A Pingora peer for a new connection to `addr` with the backend's timeouts.
fn peer(addr: SocketAddr, timeouts: &Timeouts) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = Some(timeouts.connect);
    peer
}
