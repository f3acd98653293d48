//! The direct path: HTTP/1.x requests with no body or a small one forwarded from
//! [`ProxyHttp::request_filter`](pingora::proxy::ProxyHttp::request_filter) straight over a
//! pooled upstream connection.
//!
//! Most HTTP/1.1 requests never get this far: the fast path ([`crate::h1`]) serves them before
//! Pingora's session is built. What comes here is what it hands over: WebSocket handshakes
//! and other upgrades, HTTP/1.0, `Expect: 100-continue`, and heads it does not take.
//!
//! Why a second path: Pingora's generic pipeline runs every request as two concurrent halves
//! joined by task channels, so it can stream bodies both ways, upgrade, cache and retry with
//! replayed bodies. A request with no body, or a small one that fits the upstream's socket
//! buffer, needs none of that, and the machinery cost more CPU per request than nginx spends
//! in total (`benches/proxy/`).
//! This path writes the request, reads the response and streams its body back, with
//! Pingora's transport connector, HTTP/1 codecs and timeouts, and a lighter keep-alive pool of
//! its own ([`crate::pool`]). An upgrade the upstream accepts continues as a [`crate::tunnel`].
//! Anything else (streamed or larger bodies, HTTP/2 clients, absolute-form targets) takes
//! Pingora's pipeline; both paths share the routing, selection, retry, header and status
//! policy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, Version, header};
use ingress_core::EndpointSlot;
use pingora::ErrorType::HTTPStatus;
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::proxy::Session;
use pingora::{Error, Result};

use crate::service::{Ferry, RequestCtx};
use crate::upstream::{connect_failure_is_retryable, stale_connection_is_retryable};

/// The largest request body the direct path takes. Streamed upstream as it arrives, it fits
/// an upstream socket's send buffer, so writing it never waits on an upstream that answers
/// before reading it; and the copy kept of it (as Pingora keeps a retry buffer of the same
/// size) lets it go out again on the next connection when a pooled one turns out closed.
const DIRECT_BODY_MAX: u64 = 64 * 1024;

/// Whether the request can take the direct path: HTTP/1.x, origin-form target, no `Expect`,
/// and no body or a `Content-Length` one of at most [`DIRECT_BODY_MAX`] bytes.
pub(crate) fn is_direct(session: &mut Session) -> bool {
    let req = session.req_header();
    let plain = session.as_downstream().as_http1().is_some()
        && matches!(req.version, Version::HTTP_11 | Version::HTTP_10)
        && req.uri.authority().is_none()
        && !req.headers.contains_key(header::EXPECT);
    let small_body = !req.headers.contains_key(header::TRANSFER_ENCODING)
        && crate::headers::content_length(req).is_some_and(|n| n <= DIRECT_BODY_MAX);
    plain && (small_body || session.is_body_empty())
}

/// A request body on its way upstream: what the client sent so far (kept so another attempt
/// can send it again), and whether that is all of it.
#[derive(Default)]
struct RequestBody {
    sent: bytes::BytesMut,
    complete: bool,
}

impl RequestBody {
    /// Sends the body upstream: first what earlier attempts already read, then the rest as the
    /// client sends it, chunk by chunk.
    async fn send(&mut self, session: &mut Session, upstream: &mut UpstreamSession) -> Result<()> {
        if !self.sent.is_empty() {
            upstream.write_body(&self.sent).await.map_err(|e| e.into_up())?;
        }
        while !self.complete {
            let chunk = session.downstream_session.read_request_body().await.map_err(|e| e.into_down())?;
            let Some(chunk) = chunk else {
                self.complete = true;
                break;
            };
            if (self.sent.len() + chunk.len()) as u64 > DIRECT_BODY_MAX {
                // Pingora's reader stops at `Content-Length`; this is a second fence.
                return Err(Error::explain(HTTPStatus(413), "request body over the direct path's size"));
            }
            self.sent.extend_from_slice(&chunk);
            upstream.write_body(&chunk).await.map_err(|e| e.into_up())?;
        }
        if !self.sent.is_empty() {
            upstream.finish_body().await.map_err(|e| e.into_up())?;
        }
        Ok(())
    }
}

/// The request to send upstream: the client's, minus hop-by-hop headers (those named in
/// `Connection` too), as HTTP/1.1 so the upstream connection can be kept alive. An upgrade
/// request (HTTP/1.1 with `Upgrade`) keeps its `Upgrade` and says `Connection: upgrade`, as
/// ingress-nginx sends it.
pub(crate) fn upstream_request(req: &RequestHeader) -> RequestHeader {
    let upgrade = (req.version == Version::HTTP_11).then(|| req.headers.get(header::UPGRADE)).flatten();
    let mut up = req.clone();
    up.set_version(Version::HTTP_11);
    let nominated: Vec<HeaderName> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| crate::headers::may_be_nominated(token))
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in &nominated {
        up.remove_header(name);
    }
    for name in crate::headers::HOP_BY_HOP {
        up.remove_header(name);
    }
    if let Some(protocol) = upgrade {
        // Re-inserting values taken from a parsed header cannot fail.
        let _ = up.insert_header(header::UPGRADE, protocol.clone());
        let _ = up.insert_header(header::CONNECTION, "upgrade");
    }
    up
}

/// How an exchange ended.
enum Exchanged {
    /// The response went downstream in full.
    Answered,
    /// The upstream switched protocols: the connection now belongs to a tunnel.
    Switched,
}

impl Ferry {
    /// Forwards a request [`is_direct`] accepted: endpoint by endpoint until one answers or
    /// the attempt budget runs out. On success the response has been written downstream.
    pub(crate) async fn forward(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        // A bodyless request skips the body read (and the timer Pingora arms for it).
        let mut body = RequestBody { complete: session.is_body_empty(), ..RequestBody::default() };
        loop {
            let (peer, addr, slot) = self.next_endpoint(session, ctx)?;
            let (stream, reused) = match self.pool.take(addr) {
                Some(stream) => (stream, true),
                None => match self.transport.new_stream(&peer).await {
                    Ok(stream) => (stream, false),
                    Err(e) => {
                        let e = self.connect_failed(ctx, e);
                        if e.retry() {
                            continue;
                        }
                        return Err(e);
                    }
                },
            };
            self.connected(reused, ctx);
            let mut upstream = UpstreamSession::new_with_options(stream, &peer);
            upstream.read_timeout = peer.options.read_timeout;
            upstream.write_timeout = peer.options.write_timeout;
            match self.exchange(session, &mut upstream, &mut body, ctx).await {
                Ok(Exchanged::Switched) => {
                    let idle =
                        peer.options.read_timeout.unwrap_or_else(|| crate::config::Timeouts::default().read);
                    ctx.tunnelled = Some(crate::tunnel::join(session, upstream, idle).await?);
                    return Ok(());
                }
                Ok(Exchanged::Answered) => {
                    upstream.respect_keepalive();
                    if let Some(stream) = upstream.reuse().await {
                        self.pool.put(addr, slot, stream, ctx.settings.upstream_keepalive_timeout);
                    }
                    return Ok(());
                }
                // A pooled connection the upstream had closed (it may time out idle ones
                // before we do): the request goes out again on another connection, as Pingora
                // does, if it is idempotent and nothing reached the client yet. Timeouts are
                // not retried: the upstream may still be working on the request.
                Err(e)
                    if reused
                        && stale_connection_is_retryable(&e)
                        && session.response_written().is_none()
                        && session.req_header().method.is_idempotent()
                        && ctx.attempts < ctx.limits.max_attempts =>
                {
                    tracing::debug!(error = %e, "stale pooled connection, retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One request/response exchange on one upstream connection.
    async fn exchange(
        &self,
        session: &mut Session,
        upstream: &mut UpstreamSession,
        body: &mut RequestBody,
        ctx: &mut RequestCtx,
    ) -> Result<Exchanged> {
        let mut req = upstream_request(session.req_header());
        self.add_forwarding_headers(session, &mut req, ctx)?;
        upstream.write_request_header(Box::new(req)).await.map_err(|e| e.into_up())?;
        body.send(session, upstream).await?;
        upstream.read_response().await.map_err(|e| e.into_up())?;
        // 1xx (103 Early Hints and the like) are dropped, as nginx does; 101 ends the exchange.
        while upstream
            .resp_header()
            .is_some_and(|r| r.status.is_informational() && r.status != http::StatusCode::SWITCHING_PROTOCOLS)
        {
            upstream.read_response().await.map_err(|e| e.into_up())?;
        }
        let Some(resp) = upstream.resp_header() else {
            return Err(Error::explain(HTTPStatus(502), "no response header from upstream").into_up());
        };
        let mut resp = Box::new(resp.clone());
        ctx.upstream_status = Some(resp.status.as_u16());
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            if session.is_upgrade_req() {
                return Ok(Exchanged::Switched);
            }
            return Err(Error::explain(HTTPStatus(502), "101 answer to a request without Upgrade").into_up());
        }
        let done = upstream.is_body_done();
        if !done && needs_chunking(session.req_header(), &resp) {
            // A close-delimited (HTTP/1.0 style) body goes out chunked, so the client
            // connection survives it; as Pingora's pipeline does.
            resp.set_version(Version::HTTP_11);
            resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
        }
        session.write_response_header(resp, done).await.map_err(|e| e.into_down())?;
        while !upstream.is_body_done() {
            let chunk: Option<Bytes> = upstream.read_body_bytes().await.map_err(|e| e.into_up())?;
            let end = chunk.is_none() || upstream.is_body_done();
            session.write_response_body(chunk, end).await.map_err(|e| e.into_down())?;
        }
        Ok(Exchanged::Answered)
    }

    /// The endpoint of the next attempt, as a Pingora peer with the backend's timeouts.
    pub(crate) fn next_peer(&self, session: &Session, ctx: &mut RequestCtx) -> Result<HttpPeer> {
        self.next_endpoint(session, ctx).map(|(peer, _, _)| peer)
    }

    /// [`Ferry::next_peer`], the endpoint's address, and the endpoint set it was chosen from.
    fn next_endpoint(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
    ) -> Result<(HttpPeer, SocketAddr, Arc<EndpointSlot>)> {
        let route = ctx
            .route(session.req_header())
            .ok_or_else(|| Error::explain(HTTPStatus(404), "route vanished"))?;
        let backend = route.backend;
        let endpoints = backend.endpoints();
        let Some(endpoint) = self.selector.select(backend, &endpoints, &ctx.tried) else {
            let status = ctx.failure_status.unwrap_or(503);
            return Err(Error::explain(HTTPStatus(status), "no endpoint left to try"));
        };
        let timeouts = ctx.limits.timeouts;
        let slot = backend.shared_slot();
        let mut peer = HttpPeer::new(endpoint.addr, false, String::new());
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.read_timeout = Some(timeouts.read);
        peer.options.write_timeout = Some(timeouts.write);
        peer.options.idle_timeout = Some(ctx.settings.upstream_keepalive_timeout);
        ctx.attempts += 1;
        ctx.current = Some(endpoint.addr);
        ctx.connect_started = Some(Instant::now());
        Ok((peer, endpoint.addr, slot))
    }

    /// Records a failed connect and decides whether the next endpoint gets a try.
    pub(crate) fn connect_failed(&self, ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
        if let Some(addr) = ctx.current.take() {
            ctx.tried.push(addr);
        }
        e = e.into_up();
        ctx.failure_status = Some(crate::response::status_for(e.etype(), e.esource()));
        let retry = connect_failure_is_retryable(e.etype()) && ctx.attempts < ctx.limits.max_attempts;
        e.set_retry(retry);
        e
    }

    /// Observes the connect latency of a new (not pooled) upstream connection.
    pub(crate) fn connected(&self, reused: bool, ctx: &RequestCtx) {
        if let (false, Some(started)) = (reused, ctx.connect_started) {
            self.metrics.observe_connect(started.elapsed());
        }
    }
}

/// Whether a response body has no framing of its own (no `Content-Length`, not chunked) where
/// one is allowed, for a client that understands chunked encoding (an HTTP/1.0 client gets the
/// body close-delimited, as sent).
fn needs_chunking(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    req.version == Version::HTTP_11
        && req.method != http::Method::HEAD
        && !matches!(resp.status.as_u16(), 100..=199 | 204 | 304)
        && !resp.headers.contains_key(header::TRANSFER_ENCODING)
        && !resp.headers.contains_key(header::CONTENT_LENGTH)
}

/// The connector of the direct path: Pingora's transport connector (its pool unused).
pub(crate) fn connector(conf: &pingora::server::configuration::ServerConf) -> TransportConnector {
    TransportConnector::new(Some(pingora::connectors::ConnectorOptions::from_server_conf(conf)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_nominated_headers_are_dropped() {
        let mut req = RequestHeader::build("GET", b"/a?b=c", None).unwrap();
        req.set_version(Version::HTTP_10);
        req.insert_header("host", "example.com").unwrap();
        req.insert_header("connection", "keep-alive, X-Secret, Content-Length, host").unwrap();
        req.insert_header("content-length", "0").unwrap();
        req.insert_header("x-secret", "1").unwrap();
        req.insert_header("keep-alive", "timeout=5").unwrap();
        req.insert_header("te", "trailers").unwrap();
        req.insert_header("x-kept", "yes").unwrap();
        let up = upstream_request(&req);
        assert_eq!(up.version, Version::HTTP_11);
        assert_eq!(up.uri, "/a?b=c");
        for gone in ["connection", "x-secret", "keep-alive", "te"] {
            assert!(!up.headers.contains_key(gone), "{gone} forwarded");
        }
        assert_eq!(up.headers["host"], "example.com");
        assert_eq!(up.headers["x-kept"], "yes");
        // Framing and routing headers stay whatever `Connection` says.
        assert_eq!(up.headers["content-length"], "0");
    }

    #[test]
    fn upgrade_requests_keep_upgrade_and_say_connection_upgrade() {
        let mut req = RequestHeader::build("GET", b"/ws", None).unwrap();
        req.insert_header("host", "example.com").unwrap();
        req.insert_header("connection", "keep-alive, Upgrade").unwrap();
        req.insert_header("upgrade", "websocket").unwrap();
        let up = upstream_request(&req);
        assert_eq!(up.headers["upgrade"], "websocket");
        assert_eq!(up.headers.get_all("connection").iter().collect::<Vec<_>>(), ["upgrade"]);
        // HTTP/1.0 has no upgrades: the header is dropped like any hop-by-hop one.
        req.set_version(Version::HTTP_10);
        let up = upstream_request(&req);
        assert!(!up.headers.contains_key("upgrade") && !up.headers.contains_key("connection"));
    }
}
