//! HTTP/1.1 upgrades (WebSocket and the like) after the upstream's `101`: the two connections
//! joined byte for byte until either side closes or both stay idle past the read timeout.
//!
//! Why not Pingora's pipeline: in pingora-proxy 0.9 its upstream half ends an upgraded
//! connection when it reads the `101` before the (empty) end of the upgrade request's body,
//! a race lost under load (cloudflare/pingora#946): the client gets `101`, then end of
//! stream. Here the handshake goes through the direct path ([`crate::forward`]) and the
//! tunnel is `tokio::io::copy_bidirectional` over the raw streams, both directions at once so
//! neither can stall the other.

use std::io::Cursor;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::ErrorType::{ConnectionClosed, ReadTimedout};
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::proxy::Session;
use pingora::{Error, OrErr, Result};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// What a finished tunnel leaves for the access log (its session no longer knows).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tunnelled {
    /// The client's address.
    pub(crate) client: Option<SocketAddr>,
    /// Bytes from the client to the upstream.
    pub(crate) up: u64,
    /// Bytes from the upstream to the client, after the `101`.
    pub(crate) down: u64,
}

/// Sends the upstream's `101` to the client, then joins the two connections until either
/// closes or no byte moves for `idle`. `session` is left holding a closed stand-in for the
/// client connection (same request header, no keep-alive), so Pingora's logging and clean-up
/// after the request work as usual. An error means nothing reached the client; once the `101`
/// is out, whatever ends the tunnel (a close, a reset, the idle timeout) ends it quietly.
pub(crate) async fn join(
    session: &mut Session,
    mut upstream: UpstreamSession,
    idle: Duration,
) -> Result<Tunnelled> {
    let Some(switching) = upstream.resp_header().cloned() else {
        return Error::e_explain(ConnectionClosed, "no 101 to relay");
    };
    // Prepared before the 101 goes out, so a failure here can still become a 502.
    let stand_in = stand_in_for(session.req_header()).await?;
    session.write_response_header(Box::new(switching), false).await.map_err(|e| e.into_down())?;
    let mut moved = Tunnelled { client: session.client_addr().cloned(), ..Tunnelled::default() };

    // Bytes already read past either head belong to the new protocol: relay them first.
    let mut early_up = Vec::new();
    while let Some(Ok(Some(bytes))) = ready_now(session.downstream_session.read_request_body()) {
        early_up.push(bytes);
    }
    let mut early_down = Vec::new();
    while let Some(Ok(Some(bytes))) = ready_now(upstream.read_body_bytes()) {
        early_down.push(bytes);
    }

    let mut client = match std::mem::replace(&mut *session.downstream_session, stand_in) {
        ServerSession::H1(client) => client.into_inner(),
        other => {
            // Unreachable (only HTTP/1.1 sessions upgrade), but never lose a session.
            *session.downstream_session = other;
            return Error::e_explain(pingora::ErrorType::InternalError, "upgrade on a non-HTTP/1 session");
        }
    };
    let mut server = upstream.into_inner();
    if let Err(e) = relay(&mut client, &mut server, early_down, early_up, &mut moved).await {
        tracing::debug!(error = %e, "upgraded connection ended before the tunnel");
        return Ok(moved);
    }
    match copy_until_idle(&mut client, &mut server, idle).await {
        Ok((up, down)) => {
            moved.up += up;
            moved.down += down;
        }
        Err(e) => tracing::debug!(error = %e, "upgraded connection ended"),
    }
    tracing::debug!(up = moved.up, down = moved.down, "upgraded connection closed");
    Ok(moved)
}

/// Writes the bytes read early to their destinations, and flushes the `101`.
async fn relay(
    client: &mut Stream,
    server: &mut Stream,
    early_down: Vec<Bytes>,
    early_up: Vec<Bytes>,
    moved: &mut Tunnelled,
) -> std::io::Result<()> {
    for bytes in early_down {
        client.write_all(&bytes).await?;
        moved.down += bytes.len() as u64;
    }
    client.flush().await?;
    for bytes in early_up {
        server.write_all(&bytes).await?;
        moved.up += bytes.len() as u64;
    }
    Ok(())
}

/// A closed HTTP/1.1 session that has read `req` and will not be kept alive: what a session
/// holds once its connection left for a tunnel.
async fn stand_in_for(req: &RequestHeader) -> Result<ServerSession> {
    let mut stand_in = ServerSession::new_http1(Box::new(Cursor::new(request_head(req))));
    stand_in.read_request().await?;
    stand_in.set_keepalive(None);
    Ok(stand_in)
}

/// `req` as an HTTP/1.1 request head.
fn request_head(req: &RequestHeader) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(req.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(req.raw_path());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &req.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// `copy_bidirectional`, ended early once no byte moved either way for `idle`.
async fn copy_until_idle(client: &mut Stream, server: &mut Stream, idle: Duration) -> Result<(u64, u64)> {
    let activity = Activity::new();
    let mut client = Watched { io: client, activity: &activity };
    let mut server = Watched { io: server, activity: &activity };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
    tokio::pin!(copy);
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            moved = &mut copy => return moved.or_err(ConnectionClosed, "upgraded connection"),
            () = tokio::time::sleep_until(deadline.into()) => {
                // Bytes that moved meanwhile pushed the deadline back.
                if activity.last() + idle <= Instant::now() {
                    return Error::e_explain(ReadTimedout, format!("upgraded connection idle for {idle:?}"));
                }
            }
        }
    }
}

/// The value of `future` if it is ready without waiting: bytes already buffered or readable
/// now. Dropping the unfinished read loses nothing (Pingora's reads consume bytes only when
/// they complete).
fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let future = std::pin::pin!(tokio::task::unconstrained(future));
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

/// When bytes last moved through a tunnel, shared by its two ends (one task, but the tunnel
/// future must be `Send`).
struct Activity {
    start: Instant,
    nanos: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { start: Instant::now(), nanos: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.store(nanos, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// A stream that records in `activity` each read that returned bytes.
struct Watched<'a> {
    io: &'a mut Stream,
    activity: &'a Activity,
}

impl AsyncRead for Watched<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut **self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut **self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut **self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut **self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_head_round_trips_through_pingoras_parser() {
        let mut req = RequestHeader::build("GET", b"/chat?room=1", None).unwrap();
        req.insert_header("host", "ws.example.com").unwrap();
        req.insert_header("upgrade", "websocket").unwrap();
        let head = request_head(&req);
        assert!(head.starts_with(b"GET /chat?room=1 HTTP/1.1\r\n"));
        assert!(head.ends_with(b"\r\n\r\n"));
        let mut parsed = ServerSession::new_http1(Box::new(Cursor::new(head)));
        assert!(parsed.read_request().await.unwrap());
        assert_eq!(parsed.req_header().uri, "/chat?room=1");
        assert_eq!(parsed.req_header().headers["upgrade"], "websocket");
    }

    #[tokio::test]
    async fn idle_tunnels_end_and_busy_ones_do_not() {
        use tokio::io::AsyncReadExt;
        let pair = || async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let near = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (far, _) = listener.accept().await.unwrap();
            let near: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(near));
            (near, far)
        };
        let ((mut a, mut a_far), (mut b, mut b_far)) = (pair().await, pair().await);
        let idle = Duration::from_millis(300);
        let tunnel = tokio::spawn(async move {
            let started = Instant::now();
            let ended = copy_until_idle(&mut a, &mut b, idle).await;
            (ended.map_err(|e| e.etype().clone()), started.elapsed())
        });
        // Traffic every 100 ms for 600 ms keeps it open past `idle`.
        for i in 0..6u8 {
            a_far.write_all(&[i]).await.unwrap();
            let mut byte = [0u8; 1];
            b_far.read_exact(&mut byte).await.unwrap();
            assert_eq!(byte[0], i);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (ended, took) = tunnel.await.unwrap();
        assert_eq!(ended, Err(ReadTimedout));
        assert!(took >= Duration::from_millis(800), "ended after {took:?}, while busy");
        assert!(took < Duration::from_secs(3), "ended after {took:?}");
    }
}
