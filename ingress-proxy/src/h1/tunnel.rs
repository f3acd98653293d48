//! HTTP/1.1 upgrades (WebSocket and the like) after the upstream's `101` ([`super`]): the
//! two connections joined byte for byte until either side closes or both stay idle past the
//! read timeout (nginx's `proxy_read_timeout` for upgraded connections).
//!
//! `tokio::io::copy_bidirectional` runs both directions at once, so a busy direction never
//! stalls the other.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pingora::ErrorType::{ConnectionClosed, ReadTimedout};
use pingora::protocols::Stream;
use pingora::{Error, OrErr, Result};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::pool::Upstream;

/// Bytes a tunnel moved each way.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Moved {
    /// From the client to the upstream.
    pub(crate) up: u64,
    /// From the upstream to the client, after the `101`.
    pub(crate) down: u64,
}

/// Joins `client` and `server` once the `101` went out: first the bytes already read past
/// either head (`to_client`: what the upstream sent after its `101`; `to_server`: what the
/// client sent after its request), then both directions until either side closes or no byte
/// moves for `idle`. Whatever ends the tunnel ends it quietly: the `101` is out.
pub(crate) async fn join(
    client: &mut Stream,
    server: &mut Upstream,
    to_client: &[u8],
    to_server: &[u8],
    idle: Duration,
) -> Moved {
    let mut moved = Moved::default();
    let early = async {
        client.write_all(to_client).await?;
        client.flush().await?;
        server.write_all(to_server).await?;
        server.flush().await
    };
    if let Err(e) =
        pingora::time::timeout(idle, early).await.unwrap_or(Err(std::io::ErrorKind::TimedOut.into()))
    {
        tracing::debug!(error = %e, "upgraded connection ended before the tunnel");
        return moved;
    }
    moved.down += to_client.len() as u64;
    moved.up += to_server.len() as u64;
    match copy_until_idle(client, server, idle).await {
        Ok((up, down)) => {
            moved.up += up;
            moved.down += down;
        }
        Err(e) => tracing::debug!(error = %e, "upgraded connection ended"),
    }
    tracing::debug!(up = moved.up, down = moved.down, "upgraded connection closed");
    moved
}

/// `copy_bidirectional`, ended early once no byte moved either way for `idle`.
async fn copy_until_idle<C, S>(client: &mut C, server: &mut S, idle: Duration) -> Result<(u64, u64)>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
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
struct Watched<'a, S> {
    io: &'a mut S,
    activity: &'a Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
