//! One TCP service port: accept, read the client's PROXY header when the service asks for
//! one, connect to an endpoint (the next one after a failed connect, as nginx's
//! `proxy_next_upstream`), send the upstream a PROXY header when asked, then copy bytes both
//! ways until both sides are done or the connection is idle for `proxy-stream-timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ingress_core::StreamProtocol;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Session, StreamSettings, candidates};
use crate::handle::Shared;
use crate::metrics::Metrics;
use crate::proxy_protocol;

/// Binds `addr` and accepts on it until `stop`'s sender is dropped. Connections already
/// accepted are not stopped: they end on their own.
pub(super) async fn listen(
    addr: SocketAddr,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<()>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((conn, peer)) => {
                        // nginx's `tcp_nodelay on`, its default in `stream` too.
                        let _ = conn.set_nodelay(true);
                        tokio::spawn(serve(Arc::clone(&shared), Arc::clone(&metrics), conn, peer, addr.port()));
                    }
                    Err(error) => {
                        // Out of descriptors, most likely: wait a little rather than spin.
                        tracing::warn!(%addr, %error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    });
    Ok(())
}

/// One client connection, start to end.
async fn serve(shared: Arc<Shared>, metrics: Arc<Metrics>, mut conn: TcpStream, peer: SocketAddr, port: u16) {
    let _in_flight = crate::metrics::ActiveRequest::start(&metrics);
    let started = Instant::now();
    let Some((service, slot)) = shared.snapshot.load().as_ref().and_then(|s| {
        let route = s.table.stream(StreamProtocol::Tcp, port)?;
        Some((route.service().clone(), route.backend().shared_slot()))
    }) else {
        return; // The service went away between accept and now.
    };
    let (settings, forwarding) = {
        let all = shared.settings.load();
        (all.stream.clone(), all.forwarding.clone())
    };
    let name = service.upstream_name();
    let mut session = Session {
        service: &name,
        protocol: StreamProtocol::Tcp,
        client: peer,
        port,
        upstream: None,
        status: 200,
        bytes_sent: 0,
        bytes_received: 0,
        took: Default::default(),
    };
    let mut early = Vec::new();
    if service.proxy_protocol.decode {
        match proxy_protocol::read(&mut conn, forwarding.proxy_protocol_timeout).await {
            Ok((header, rest)) => {
                // Only from a peer in `proxy-real-ip-cidr`, as on the HTTP ports.
                let believed = proxy_protocol::believed(&header, Some(peer), &forwarding.trusted);
                session.client = believed.map_or(peer, |(client, _)| client);
                early = rest;
            }
            Err(error) => {
                tracing::debug!(%peer, %error, service = %name, "PROXY protocol header refused");
                session.status = 400;
                session.took = started.elapsed();
                session.log(&shared, &metrics);
                return;
            }
        }
    }
    let local = conn.local_addr().unwrap_or(SocketAddr::new(peer.ip(), port));
    let Some((mut upstream, addr)) = connect(&slot, &settings, started).await else {
        // Logged once per connection at debug level (the access log has its 502): a client
        // cannot flood the diagnostics.
        tracing::debug!(service = %name, "no endpoint of a TCP service accepted the connection");
        session.status = 502;
        session.took = started.elapsed();
        session.log(&shared, &metrics);
        return;
    };
    session.upstream = Some(addr);
    let mut opening = Vec::new();
    if service.proxy_protocol.encode {
        opening.extend_from_slice(proxy_protocol::v1(session.client, local).as_bytes());
    }
    opening.extend_from_slice(&early);
    if upstream.write_all(&opening).await.is_err() {
        session.status = 502;
    } else {
        session.bytes_received = early.len() as u64;
        let (sent, received) = splice(conn, upstream, settings.timeout).await;
        session.bytes_sent = sent;
        session.bytes_received += received;
    }
    session.took = started.elapsed();
    session.log(&shared, &metrics);
}

/// A connection to one of the service's endpoints, trying the next after a failed connect
/// while the settings allow.
async fn connect(
    slot: &ingress_core::EndpointSlot,
    settings: &StreamSettings,
    started: Instant,
) -> Option<(TcpStream, SocketAddr)> {
    let tries = if settings.next_upstream { settings.next_upstream_tries } else { 1 };
    for addr in candidates(slot, tries) {
        let attempt = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await;
        match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, addr));
            }
            Ok(Err(error)) => tracing::debug!(%addr, %error, "TCP service endpoint refused"),
            Err(_) => tracing::debug!(%addr, "TCP service endpoint timed out"),
        }
        if started.elapsed() >= settings.next_upstream_timeout {
            break;
        }
    }
    None
}

/// Copies `client` ⇄ `upstream` until either side ends its stream (passed on to the other,
/// then the session ends, as nginx's default `proxy_half_close off`), either fails, or nothing
/// moves either way for `idle`. Returns the bytes sent to the client and received from it.
pub(super) async fn splice<C, U>(client: C, upstream: U, idle: std::time::Duration) -> (u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let (sent, received) = (AtomicU64::new(0), AtomicU64::new(0));
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let watchdog = async {
        loop {
            let quiet = epoch.elapsed().saturating_sub(millis(last.load(Ordering::Relaxed)));
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };
    tokio::select! {
        _ = pipe(client_read, upstream_write, &received, &last, epoch) => {}
        _ = pipe(upstream_read, client_write, &sent, &last, epoch) => {}
        () = watchdog => {}
    }
    (sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed))
}

fn millis(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

/// One direction: reads until end of stream, writing each piece on; then half-closes.
async fn pipe<R, W>(
    mut from: R,
    mut to: W,
    count: &AtomicU64,
    last: &AtomicU64,
    epoch: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        last.store(u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn splice_copies_both_ways_and_ends_at_the_first_end_of_stream() {
        let (mut client, proxy_client) = tokio::io::duplex(1024);
        let (proxy_upstream, mut upstream) = tokio::io::duplex(1024);
        let relay = tokio::spawn(splice(proxy_client, proxy_upstream, Duration::from_secs(5)));
        upstream.write_all(b"hello").await.unwrap_or_else(|e| panic!("{e}"));
        let mut greeting = [0u8; 5];
        client.read_exact(&mut greeting).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&greeting, b"hello");
        client.write_all(b"ping").await.unwrap_or_else(|e| panic!("{e}"));
        client.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        let mut got = Vec::new();
        upstream.read_to_end(&mut got).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, b"ping", "the client's end of stream reaches the upstream");
        let counts = relay.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counts, (5, 4));
        // The session is over: the client's side is closed too.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_but_a_busy_one_is_not() {
        let (mut client, proxy_client) = tokio::io::duplex(1024);
        let (proxy_upstream, mut upstream) = tokio::io::duplex(1024);
        let relay = tokio::spawn(splice(proxy_client, proxy_upstream, Duration::from_millis(300)));
        // Busy for longer than the idle timeout: one byte every 100 ms.
        for _ in 0..6 {
            client.write_all(b"x").await.unwrap_or_else(|e| panic!("{e}"));
            let mut one = [0u8; 1];
            upstream.read_exact(&mut one).await.unwrap_or_else(|e| panic!("{e}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!relay.is_finished());
        let quiet = Instant::now();
        let counts = relay.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counts, (0, 6));
        assert!(quiet.elapsed() < Duration::from_secs(2));
    }
}
