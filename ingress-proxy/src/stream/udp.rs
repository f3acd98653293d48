//! One UDP service port: datagrams grouped into flows by client address, as nginx's stream
//! sessions. A flow has its own socket connected to one endpoint (chosen when it opens, so
//! endpoint changes apply to new flows), and the endpoint's replies go back to that client
//! from the service port. A flow ends once it got `proxy-stream-responses` replies per client
//! datagram, or after `proxy-stream-timeout` without traffic; the client's next datagram then
//! opens a new one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use ingress_core::StreamProtocol;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::{Session, StreamSettings, candidates};
use crate::handle::Shared;
use crate::metrics::Metrics;

/// The largest datagram relayed (the largest UDP payload over IPv4).
const MAX_DATAGRAM: usize = 65_507;

/// Binds `addr` and relays until `stop`'s sender is dropped; then every flow ends.
pub(super) async fn listen(
    addr: SocketAddr,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<()>,
) -> std::io::Result<()> {
    let socket = Arc::new(UdpSocket::bind(addr).await?);
    tokio::spawn(relay(socket, shared, metrics, addr.port(), stop));
    Ok(())
}

/// Replies expected and received, and whether the flow has ended. Locked by the receive loop
/// before it sends a datagram on the flow and by the flow before it ends, so a datagram is
/// never sent on a flow that has stopped listening for replies.
#[derive(Debug)]
struct Count {
    expected: u64,
    received: u64,
    ended: bool,
    /// Bytes the client sent on the flow.
    bytes_in: u64,
    /// The last datagram either way: the idle timeout counts from it (nginx's `proxy_timeout`).
    last: Instant,
}

impl Count {
    fn new() -> Self {
        Self { expected: 0, received: 0, ended: false, bytes_in: 0, last: Instant::now() }
    }
}

thread_local! {
    /// One receive buffer per worker thread, shared by its flows: a flow costs its socket, not
    /// 64 KiB of buffer.
    static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; MAX_DATAGRAM]);
}

struct Flow {
    id: u64,
    upstream: Arc<UdpSocket>,
    count: Arc<Mutex<Count>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    port: u16,
    mut stop: watch::Receiver<()>,
) {
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut next_id = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(error) => {
                    // An ICMP error for an earlier reply, on some systems: not fatal.
                    tracing::debug!(port, %error, "UDP service receive failed");
                    continue;
                }
            },
            Some((client, id)) = ended.recv() => {
                if flows.get(&client).is_some_and(|f| f.id == id) {
                    flows.remove(&client);
                }
                continue;
            }
            _ = stop.changed() => return,
        };
        let settings = shared.settings.load().stream.clone();
        let datagram = &buf[..n];
        // An open flow takes the datagram unless it has just ended.
        if let Some(flow) = flows.get(&client) {
            let taken = {
                let mut count = flow.count.lock().unwrap_or_else(PoisonError::into_inner);
                if !count.ended {
                    count.expected += u64::from(settings.responses);
                    count.bytes_in += n as u64;
                    count.last = Instant::now();
                }
                !count.ended
            };
            if taken {
                let _ = flow.upstream.send(datagram).await;
                continue;
            }
            flows.remove(&client);
        }
        if flows.len() >= settings.max_flows {
            tracing::warn!(port, %client, "UDP service at its flow limit; datagram dropped");
            continue;
        }
        next_id += 1;
        let opened =
            open(&shared, &metrics, &socket, port, client, next_id, &settings, ended_tx.clone()).await;
        if let Some(flow) = opened {
            {
                let mut count = flow.count.lock().unwrap_or_else(PoisonError::into_inner);
                count.expected += u64::from(settings.responses);
                count.bytes_in += n as u64;
            }
            let _ = flow.upstream.send(datagram).await;
            // `proxy-stream-responses: 0`: no reply is expected, the session ends once the
            // datagram is sent (nginx's `proxy_responses 0`); dropping the flow closes it.
            if settings.responses > 0 {
                flows.insert(client, flow);
            }
        }
    }
}

/// A new flow for `client`: a socket connected to the next endpoint, and the task relaying its
/// replies. `None` (logged) when the service or its endpoints are gone.
#[allow(clippy::too_many_arguments)] // a new flow's whole context
async fn open(
    shared: &Arc<Shared>,
    metrics: &Arc<Metrics>,
    socket: &Arc<UdpSocket>,
    port: u16,
    client: SocketAddr,
    id: u64,
    settings: &StreamSettings,
    ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
) -> Option<Flow> {
    let (name, slot) = shared.snapshot.load().as_ref().and_then(|s| {
        let route = s.table.stream(StreamProtocol::Udp, port)?;
        Some((route.service().upstream_name(), route.backend().shared_slot()))
    })?;
    let started = Instant::now();
    let mut session = Session {
        service: &name,
        protocol: StreamProtocol::Udp,
        client,
        port,
        upstream: None,
        status: 502,
        bytes_sent: 0,
        bytes_received: 0,
        took: Default::default(),
    };
    // A UDP "connect" only fails locally; the first endpoint that takes one is the flow's.
    let mut upstream = None;
    for addr in candidates(&slot, 1) {
        let unspecified: IpAddr =
            if addr.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
        let Ok(sock) = UdpSocket::bind(SocketAddr::new(unspecified, 0)).await else { continue };
        if sock.connect(addr).await.is_ok() {
            upstream = Some((Arc::new(sock), addr));
            break;
        }
    }
    let Some((upstream, addr)) = upstream else {
        tracing::warn!(service = %name, "no endpoint for a UDP service flow");
        session.took = started.elapsed();
        session.log(shared, metrics);
        return None;
    };
    let count = Arc::new(Mutex::new(Count::new()));
    let task = tokio::spawn(replies(
        (Arc::clone(shared), Arc::clone(metrics)),
        Arc::clone(socket),
        Arc::clone(&upstream),
        Arc::clone(&count),
        (name.clone(), port),
        client,
        addr,
        settings.clone(),
        (id, ended),
    ));
    Some(Flow { id, upstream, count, task })
}

/// Relays one flow's replies to its client until it has them all or is idle.
#[allow(clippy::too_many_arguments)] // one flow's whole state, handed over once
async fn replies(
    (shared, metrics): (Arc<Shared>, Arc<Metrics>),
    socket: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    count: Arc<Mutex<Count>>,
    (name, port): (String, u16),
    client: SocketAddr,
    addr: SocketAddr,
    settings: StreamSettings,
    (id, ended): (u64, mpsc::UnboundedSender<(SocketAddr, u64)>),
) {
    let started = Instant::now();
    let mut sent = 0u64;
    loop {
        let idle_until = count.lock().unwrap_or_else(PoisonError::into_inner).last + settings.timeout;
        tokio::select! {
            ready = upstream.readable() => if ready.is_err() { break },
            () = tokio::time::sleep_until(idle_until.into()) => {
                let last = count.lock().unwrap_or_else(PoisonError::into_inner).last;
                if last + settings.timeout <= Instant::now() {
                    break; // idle both ways
                }
                continue;
            }
        }
        // Received and sent on without waiting, so the thread's buffer is never held across an
        // await; a reply the client's socket cannot take at once is dropped, as UDP may.
        let received = BUF.with_borrow_mut(|buf| match upstream.try_recv(buf) {
            Ok(n) => Ok(Some(socket.try_send_to(&buf[..n], client).map_or(0, |_| n))),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        });
        let n = match received {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(_) => break, // the endpoint refused (ICMP): the flow ends
        };
        sent += n as u64;
        let mut c = count.lock().unwrap_or_else(PoisonError::into_inner);
        c.received += 1;
        c.last = Instant::now();
        if c.received >= c.expected {
            c.ended = true;
            break;
        }
    }
    count.lock().unwrap_or_else(PoisonError::into_inner).ended = true;
    let _ = ended.send((client, id));
    let received = count.lock().unwrap_or_else(PoisonError::into_inner).bytes_in;
    Session {
        service: &name,
        protocol: StreamProtocol::Udp,
        client,
        port,
        upstream: Some(addr),
        status: 200,
        bytes_sent: sent,
        bytes_received: received,
        took: started.elapsed(),
    }
    .log(&shared, &metrics);
}
