//! One exchange on one upstream connection ([`super`]): the request out, interim responses
//! dropped, the final one relayed (or, after a `101`, the two connections joined); and the
//! answers the proxy gives itself.

use bytes::Buf;
use pingora::ErrorType::{ConnectionClosed, InvalidHTTPHeader};
use pingora::{Error, ErrorSource, Result};

use super::body::{self, Relay};
use super::response::{self, Asked};
use super::upload::Upload;
use super::{Conn, Next, Outcome, tunnel};
use crate::config::Timeouts;
use crate::pipeline::answer::body_for;
use crate::pipeline::edits::ResponseEdits;
use crate::pool::Upstream;

/// Interim (1xx) responses dropped before the final one; an upstream sending more (each within
/// the read timeout, so none times out) is answered 502 rather than holding the request.
const MAX_INTERIM: usize = 16;

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exchanged {
    /// The response was relayed; whether the upstream connection can be used again.
    Answered { reusable: bool },
    /// The connection switched protocols and the tunnel over it has ended.
    Switched,
    /// The response's status is one the route answers with an error page instead
    /// (`custom-http-errors`): nothing was relayed, and the upstream connection is done.
    Intercepted { status: u16 },
}

/// One request/response exchange: the request (in `conn.request`) goes out with its body,
/// interim responses are dropped, the final one is relayed with `edits` (unless its status is
/// one `intercepts` takes).
#[allow(clippy::too_many_arguments)] // the exchange's parts, each borrowed separately
pub(super) async fn exchange(
    asked: Asked,
    edits: &ResponseEdits<'_>,
    intercepts: &(dyn Fn(u16) -> bool + Sync),
    upload: &mut Upload<'_>,
    retry: bool,
    up: &mut Upstream,
    timeouts: &Timeouts,
    conn: &mut Conn,
    outcome: &mut Outcome,
) -> Result<Exchanged> {
    conn.upstream.clear();
    upload.send(&conn.request, retry, up, &mut conn.upstream, &mut conn.client, timeouts.write).await?;
    // An upstream that answered before taking the whole body: the client's connection ends
    // with this response (the rest of the body is not read), and so does the upstream's.
    let asked = Asked { close: asked.close || !upload.is_complete(), ..asked };
    let mut interim = 0;
    let last = loop {
        let parsed = response::parse(&conn.upstream, &asked, edits, &mut conn.head)
            .map_err(|why| Error::explain(InvalidHTTPHeader, why).into_up())?;
        match parsed {
            response::Parsed::Final(last) => break last,
            response::Parsed::Switching(len) => {
                conn.upstream.advance(len);
                return switch(upload, up, timeouts, conn, outcome).await;
            }
            response::Parsed::Interim(_) if interim == MAX_INTERIM => {
                return Err(Error::explain(InvalidHTTPHeader, "too many interim responses").into_up());
            }
            response::Parsed::Interim(len) => {
                interim += 1;
                conn.upstream.advance(len);
            }
            response::Parsed::Partial => {
                if body::read_upstream(up, &mut conn.upstream, timeouts.read).await? == 0 {
                    return Err(
                        Error::explain(ConnectionClosed, "upstream closed before responding").into_up()
                    );
                }
            }
        }
    };
    outcome.upstream_status = Some(last.status);
    outcome.head_bytes = conn.head.len() as u64;
    if intercepts(last.status) {
        return Ok(Exchanged::Intercepted { status: last.status });
    }
    conn.upstream.advance(last.len);
    outcome.closing = last.close;
    let (result, sent, started) = if upload.is_written() {
        let mut relay = Relay {
            up,
            buf: &mut conn.upstream,
            client: &mut conn.client,
            read_timeout: timeouts.read,
            write_timeout: timeouts.write,
            sent: 0,
            started: false,
        };
        let result = relay.run(last.framing, &mut conn.head).await;
        (result, relay.sent, relay.started)
    } else {
        duplex(upload, up, last.framing, timeouts, conn).await
    };
    outcome.bytes = sent;
    // A body refused before anything went out (malformed first chunk) still becomes a 502.
    if started {
        outcome.status = last.status;
        outcome.committed = true;
    }
    let reusable = result? && last.keep_alive && upload.is_written();
    Ok(Exchanged::Answered { reusable })
}

/// After a `101`: the head goes to the client, then the tunnel runs until either side closes
/// or both stay idle for the read timeout.
async fn switch(
    upload: &Upload<'_>,
    up: &mut Upstream,
    timeouts: &Timeouts,
    conn: &mut Conn,
    outcome: &mut Outcome,
) -> Result<Exchanged> {
    outcome.upstream_status = Some(101);
    outcome.head_bytes = conn.head.len() as u64;
    body::write(&mut conn.client, &[&conn.head], timeouts.write).await.map_err(|e| e.into_down())?;
    outcome.status = 101;
    outcome.committed = true;
    outcome.closing = true;
    let moved = tunnel::join(&mut conn.client, up, &conn.upstream, upload.unread(), timeouts.read).await;
    outcome.bytes = moved.down;
    Ok(Exchanged::Switched)
}

/// Relays a response the upstream began before it had the whole body, while the rest of the
/// body goes on to it (an upstream that answers as it reads, like an echo). Ends when the
/// response does: a body still unfinished then is abandoned (the upstream did not want it),
/// and neither connection is used again. Returns what [`Relay::run`] returned, the body bytes
/// relayed, and whether writing to the client began.
async fn duplex(
    upload: &mut Upload<'_>,
    up: &mut Upstream,
    framing: response::Framing,
    timeouts: &Timeouts,
    conn: &mut Conn,
) -> (Result<bool>, u64, bool) {
    let (mut up_read, mut up_write) = tokio::io::split(up);
    let (mut client_read, mut client_write) = tokio::io::split(&mut conn.client);
    let mut relay = Relay {
        up: &mut up_read,
        buf: &mut conn.upstream,
        client: &mut client_write,
        read_timeout: timeouts.read,
        write_timeout: timeouts.write,
        sent: 0,
        started: false,
    };
    let result = {
        let response = relay.run(framing, &mut conn.head);
        let body = upload.finish(&mut up_write, &mut client_read, timeouts.write);
        tokio::pin!(response, body);
        let mut body_done = false;
        loop {
            tokio::select! {
                // The answer first: an upstream that answered and stopped reading (a `413` that
                // closes) still gets its answer relayed, whatever became of the body.
                biased;
                result = &mut response => break result,
                sent = &mut body, if !body_done => match sent {
                    Ok(()) => body_done = true,
                    // The upstream stopped reading: the rest of the body is not wanted, the
                    // answer goes on.
                    Err(e) if *e.esource() == ErrorSource::Upstream => body_done = true,
                    // The client stopped sending: the response cannot be relied on to finish.
                    Err(e) => break Err(e),
                },
            }
        }
    };
    (result, relay.sent, relay.started)
}

/// Answers without an upstream: the pipeline's local answers (`404`, `503`, `413`, redirects…),
/// and the status a failure became, with `extra` header lines (`Location`, HSTS); to a `HEAD`
/// request (`head_request`) without the body. Errors close the connection.
pub(super) async fn answer(
    conn: &mut Conn,
    status: u16,
    close: bool,
    head_request: bool,
    extra: &[(&str, std::borrow::Cow<'_, str>)],
    outcome: &mut Outcome,
) -> Next {
    // A 204 has no content, and says nothing about it (as nginx strips both headers); an
    // `add-headers` `Content-Type` (in `extra`) replaces the proxy's.
    let replaced = extra.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    let own: &[(&str, &str)] =
        if status == 204 || replaced { &[] } else { &[("content-type", "text/plain; charset=utf-8")] };
    let reply = Reply { status, headers: own, body: body_for(status).as_bytes() };
    write_reply(conn, &reply, close, head_request, extra, outcome).await
}

/// An answer the proxy writes: status, header lines besides the framing, body.
pub(super) struct Reply<'a> {
    pub(super) status: u16,
    pub(super) headers: &'a [(&'a str, &'a str)],
    pub(super) body: &'a [u8],
}

/// Writes `reply` with `extra` header lines (`Content-Length` unless a `204`); to a `HEAD`
/// request without the body. Errors close the connection.
pub(super) async fn write_reply(
    conn: &mut Conn,
    reply: &Reply<'_>,
    close: bool,
    head_request: bool,
    extra: &[(&str, std::borrow::Cow<'_, str>)],
    outcome: &mut Outcome,
) -> Next {
    let status = reply.status;
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let digits = &mut itoa::Buffer::new();
    let out = &mut conn.head;
    out.clear();
    for part in [&b"HTTP/1.1 "[..], digits.format(status).as_bytes(), b" ", reason.as_bytes(), b"\r\n"] {
        out.extend_from_slice(part);
    }
    let mut line = |name: &str, value: &str| {
        // A value that would break the head (expanded from the request) is left out, as
        // Pingora's HTTP/2 header map refuses it.
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return;
        }
        for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    };
    for &(name, value) in reply.headers {
        line(name, value);
    }
    if status != 204 {
        line("content-length", digits.format(reply.body.len()));
    }
    for (name, value) in extra {
        line(name, value);
    }
    response::end_head(out, close);
    outcome.head_bytes = out.len() as u64;
    // A response to `HEAD` says how long the body would be, and sends none.
    let body = if head_request { &[][..] } else { reply.body };
    out.extend_from_slice(body);
    outcome.status = status;
    outcome.committed = true;
    match body::write(&mut conn.client, &[out], super::SEND_TIMEOUT).await {
        Ok(()) => {
            outcome.bytes = body.len() as u64;
            if close { Next::Close } else { Next::KeepAlive }
        }
        Err(_) => Next::Close,
    }
}

/// Tells the client to send its body (`Expect: 100-continue`), as nginx does once it starts
/// reading the body.
pub(super) async fn continue_100(conn: &mut Conn, timeout: std::time::Duration) -> Result<()> {
    body::write(&mut conn.client, &[b"HTTP/1.1 100 Continue\r\n\r\n"], timeout)
        .await
        .map_err(|e| e.into_down())
}
