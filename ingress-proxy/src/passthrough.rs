//! TLS passthrough (`--enable-ssl-passthrough`): the HTTPS port is served by a front that
//! reads each connection's ClientHello, unencrypted, and sends it one of two ways:
//! - its server name belongs to a host with `ssl-passthrough`
//!   ([`RouteTable::passthrough`](ingress_core::RouteTable::passthrough)): the connection, bytes
//!   read included, is spliced to an endpoint of the host's `/` backend, which does the TLS;
//! - anything else: it goes to the proxy's own TLS listener on the loopback, behind a PROXY
//!   protocol header naming the client, and is terminated and routed as without passthrough.
//!
//! This is ingress-nginx's design (its Go TCP proxy in front of nginx), and its cost is the
//! same: terminated TLS crosses one more local hop while the flag is on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ingress_core::Cidr;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::handle::Shared;
use crate::metrics::{ActiveRequest, Metrics};
use crate::proxy_protocol;

pub(crate) mod hello;

use hello::Hello;

/// The front of the HTTPS port when TLS passthrough is on.
pub(crate) struct Front {
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<Metrics>,
    /// The public HTTPS address.
    pub(crate) listen: SocketAddr,
    /// The proxy's own TLS listener, on the loopback.
    pub(crate) terminator: SocketAddr,
}

/// The peers whose PROXY header the terminating listener believes: only the front, on the
/// loopback.
pub(crate) fn loopback() -> Vec<Cidr> {
    ingress_core::parse_cidrs("127.0.0.0/8, ::1/128").unwrap_or_default()
}

#[async_trait]
impl BackgroundService for Front {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match TcpListener::bind(self.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(addr = %self.listen, %error, "cannot listen for TLS passthrough");
                return;
            }
        };
        let route = Arc::new(Route {
            shared: Arc::clone(&self.shared),
            metrics: Arc::clone(&self.metrics),
            terminator: self.terminator,
            listen: self.listen,
        });
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((conn, peer)) => {
                        let _ = conn.set_nodelay(true);
                        tokio::spawn(Arc::clone(&route).serve(conn, peer));
                    }
                    Err(error) => {
                        // Out of descriptors, most likely: wait a little rather than spin.
                        tracing::warn!(addr = %self.listen, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// What one connection needs to be sent on its way.
struct Route {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    terminator: SocketAddr,
    listen: SocketAddr,
}

/// Why a connection went nowhere.
#[derive(Debug, thiserror::Error)]
enum Dropped {
    #[error("bad PROXY protocol header: {0}")]
    ProxyHeader(proxy_protocol::Invalid),
    #[error("no complete ClientHello within the client header timeout")]
    Hello,
    #[error("no endpoint of {0} accepted the connection")]
    NoEndpoint(String),
    #[error("the proxy's own TLS listener refused the connection: {0}")]
    Terminator(std::io::Error),
}

impl Route {
    async fn serve(self: Arc<Self>, mut conn: TcpStream, peer: SocketAddr) {
        if let Err(error) = self.route(&mut conn, peer).await {
            tracing::debug!(%peer, %error, "TLS connection dropped before it was passed on");
        }
    }

    async fn route(&self, conn: &mut TcpStream, peer: SocketAddr) -> Result<(), Dropped> {
        let settings = self.shared.settings.load_full();
        let mut client = peer;
        let mut local = conn.local_addr().unwrap_or(self.listen);
        let mut first = Vec::new();
        let forwarding = &settings.forwarding;
        if forwarding.proxy_protocol {
            let (header, rest) = proxy_protocol::read(conn, forwarding.proxy_protocol_timeout)
                .await
                .map_err(Dropped::ProxyHeader)?;
            if let Some((c, l)) = proxy_protocol::believed(&header, Some(peer), &forwarding.trusted) {
                (client, local) = (c, l);
            }
            first = rest;
        }
        let hello = read_hello(conn, &mut first, settings.client.header_timeout).await?;
        let passed = match &hello {
            Hello::Name(name) => self.shared.snapshot.load().as_ref().and_then(|s| {
                let backend = s.table.passthrough(name)?;
                Some((backend.key().to_string(), backend.shared_slot()))
            }),
            _ => None,
        };
        match passed {
            Some((name, slot)) => {
                let _in_flight = ActiveRequest::start(&self.metrics);
                let tries = u32::try_from(settings.max_attempts).unwrap_or(u32::MAX);
                let timeout = settings.timeouts.connect;
                for addr in crate::stream::candidates(&slot, tries) {
                    if let Ok(Ok(mut upstream)) =
                        tokio::time::timeout(timeout, TcpStream::connect(addr)).await
                    {
                        let _ = upstream.set_nodelay(true);
                        if upstream.write_all(&first).await.is_ok() {
                            splice(conn, &mut upstream).await;
                        }
                        return Ok(());
                    }
                }
                Err(Dropped::NoEndpoint(name))
            }
            None => {
                let mut upstream = TcpStream::connect(self.terminator).await.map_err(Dropped::Terminator)?;
                let _ = upstream.set_nodelay(true);
                let mut opening = proxy_protocol::v1(client, local).into_bytes();
                opening.extend_from_slice(&first);
                upstream.write_all(&opening).await.map_err(Dropped::Terminator)?;
                splice(conn, &mut upstream).await;
                Ok(())
            }
        }
    }
}

/// How long the other direction may go on once one side is done (a TLS `close_notify`
/// answered), before both are closed.
const LINGER: Duration = Duration::from_secs(5);

/// Relays both ways until one side is done, lets the other finish within [`LINGER`], then
/// closes both: a peer that stops talking after the other closed cannot hold the connection
/// (as ingress-nginx's TCP proxy, which closes both when either side is done).
async fn splice(a: &mut TcpStream, b: &mut TcpStream) {
    let (mut a_read, mut a_write) = a.split();
    let (mut b_read, mut b_write) = b.split();
    let a_to_b = async {
        let _ = tokio::io::copy(&mut a_read, &mut b_write).await;
        let _ = b_write.shutdown().await;
    };
    let b_to_a = async {
        let _ = tokio::io::copy(&mut b_read, &mut a_write).await;
        let _ = a_write.shutdown().await;
    };
    tokio::pin!(a_to_b, b_to_a);
    tokio::select! {
        () = &mut a_to_b => { let _ = tokio::time::timeout(LINGER, b_to_a).await; }
        () = &mut b_to_a => { let _ = tokio::time::timeout(LINGER, a_to_b).await; }
    }
}

/// Reads from `conn` into `buf` until it holds a whole ClientHello, or shows it is not one;
/// within `wait`.
async fn read_hello(conn: &mut TcpStream, buf: &mut Vec<u8>, wait: Duration) -> Result<Hello, Dropped> {
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            // Parsed again only when a record is whole: a hello dribbled in byte by byte
            // costs a parse per record, not per byte.
            let hello = if buf.len() >= hello::wanted(buf) { hello::parse(buf) } else { Hello::Partial };
            // Never read much past what a ClientHello can be.
            if hello != Hello::Partial || buf.len() > hello::MAX_HELLO + 4096 {
                return Ok(hello);
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(Dropped::Hello),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(wait, read).await.unwrap_or(Err(Dropped::Hello))
}
