//! TCP and UDP services: a listener per [`StreamService`](ingress_core::StreamService) of the
//! installed table, opened and closed live as tables are installed (no restart; the other
//! ports are never touched).
//!
//! [`Streams`] runs as a Pingora background service. After every install it compares the
//! table's services with the listeners it has: a new port is bound, a removed one stops
//! accepting while its open connections carry on to their end (drained), a port that could not
//! be bound is tried again every [`RETRY`]. Each connection or flow looks its service up in the
//! current table when it starts, so a changed backend applies to new connections and endpoint
//! changes need no install at all.

mod tcp;
mod udp;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ingress_core::StreamProtocol;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::watch;

use crate::handle::Shared;

/// How often a port that could not be bound is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// What TCP and UDP services do, from the ConfigMap's `proxy-stream-*` keys (their defaults
/// are ingress-nginx's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// A connection or flow with no data either way for this long is closed
    /// (`proxy-stream-timeout`, 600 s; nginx's `proxy_timeout`).
    pub timeout: Duration,
    /// Whether a failed connect is tried on the next endpoint (`proxy-stream-next-upstream`).
    pub next_upstream: bool,
    /// Endpoints tried per connection, at most (`proxy-stream-next-upstream-tries`, 3; 0 is
    /// every endpoint).
    pub next_upstream_tries: u32,
    /// How long the endpoints are tried for (`proxy-stream-next-upstream-timeout`, 600 s).
    pub next_upstream_timeout: Duration,
    /// How long one connect may take (nginx's `proxy_connect_timeout`, 60 s: ingress-nginx
    /// leaves the stream default).
    pub connect_timeout: Duration,
    /// UDP: the replies expected per client datagram; a flow that got them all ends, so the
    /// client's next datagram may go to another endpoint (`proxy-stream-responses`, 1; 0
    /// expects none: the flow ends once the datagram is sent, as nginx's `proxy_responses 0`).
    pub responses: u32,
    /// UDP flows per port at once; a datagram that would open one more is dropped.
    pub max_flows: usize,
    /// A line per session in the access log, when the access log is on
    /// (`disable-stream-access-log`).
    pub access_log: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
            next_upstream: true,
            next_upstream_tries: 3,
            next_upstream_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(60),
            responses: 1,
            max_flows: 16_384,
            access_log: true,
        }
    }
}

/// The background service that owns the stream listeners.
pub(crate) struct Streams {
    pub(crate) shared: Arc<Shared>,
    /// The address every stream port binds.
    pub(crate) ip: IpAddr,
    /// TCP sessions count as requests in flight (a graceful stop waits for them).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// An open listener; dropping `stop` ends its accept loop.
struct Listener {
    _stop: watch::Sender<()>,
}

#[async_trait]
impl BackgroundService for Streams {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut installs = self.shared.installs.subscribe();
        let mut open: BTreeMap<(StreamProtocol, u16), Listener> = BTreeMap::new();
        loop {
            let failed = self.reconcile(&mut open).await;
            let retry = async {
                if failed {
                    tokio::time::sleep(RETRY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                changed = installs.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
                () = retry => {}
            }
        }
        // Stop accepting; open connections finish within the shutdown grace period.
        open.clear();
    }
}

impl Streams {
    /// Opens the ports of the current table's services that are not open, closes those it no
    /// longer has. Returns whether a port could not be bound.
    async fn reconcile(&self, open: &mut BTreeMap<(StreamProtocol, u16), Listener>) -> bool {
        let wanted: Vec<(StreamProtocol, u16)> =
            self.shared.snapshot.load().as_ref().map_or_else(Vec::new, |s| {
                s.table.streams().iter().map(|r| (r.service().protocol, r.service().port)).collect()
            });
        open.retain(|key, _| {
            let keep = wanted.contains(key);
            if !keep {
                tracing::info!(protocol = %key.0, port = key.1, "stream service removed: port closed, open connections drained");
            }
            keep
        });
        let mut failed = false;
        for key in wanted {
            if open.contains_key(&key) {
                continue;
            }
            let (protocol, port) = key;
            let addr = SocketAddr::new(self.ip, port);
            let (stop, stopped) = watch::channel(());
            let shared = Arc::clone(&self.shared);
            let bound = match protocol {
                StreamProtocol::Tcp => tcp::listen(addr, shared, Arc::clone(&self.metrics), stopped).await,
                StreamProtocol::Udp => udp::listen(addr, shared, stopped).await,
            };
            match bound {
                Ok(()) => {
                    tracing::info!(%protocol, %addr, "stream service listening");
                    open.insert(key, Listener { _stop: stop });
                }
                Err(error) => {
                    tracing::error!(%protocol, %addr, %error, "cannot listen for a stream service; retrying");
                    failed = true;
                }
            }
        }
        failed
    }
}

/// The endpoints a connection or flow may try, in round-robin order from the slot's cursor:
/// at most `tries` of them (0 is all), each once.
fn candidates(slot: &ingress_core::EndpointSlot, tries: u32) -> Vec<SocketAddr> {
    let set = slot.load();
    let endpoints = set.as_slice();
    if endpoints.is_empty() {
        return Vec::new();
    }
    let limit = match tries {
        0 => endpoints.len(),
        n => endpoints.len().min(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let start = slot.next_cursor();
    (0..limit).filter_map(|i| endpoints.get((start + i) % endpoints.len()).map(|e| e.addr)).collect()
}

/// The session's line in the access log (nginx's stream `log_format`: client, protocol,
/// status, bytes each way, duration).
struct Session<'a> {
    service: &'a str,
    protocol: StreamProtocol,
    client: SocketAddr,
    upstream: Option<SocketAddr>,
    /// nginx's stream status: 200 served, 400 bad PROXY header, 502 no endpoint answered.
    status: u16,
    bytes_sent: u64,
    bytes_received: u64,
    took: Duration,
}

impl Session<'_> {
    fn log(&self, shared: &Shared) {
        let settings = shared.settings.load();
        if !settings.access_log || !settings.stream.access_log {
            return;
        }
        tracing::info!(
            target: crate::ACCESS_LOG_TARGET,
            client = %self.client,
            protocol = %self.protocol,
            status = self.status,
            bytes_sent = self.bytes_sent,
            bytes_received = self.bytes_received,
            duration_ms = self.took.as_secs_f64() * 1000.0,
            upstream_addr = %self.upstream.map(|a| a.to_string()).unwrap_or_default(),
            upstream = self.service,
            "session"
        );
    }
}

#[cfg(test)]
mod tests {
    use ingress_core::{EndpointSet, EndpointSlot};

    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().filter_map(|a| a.parse().ok()).collect()
    }

    #[test]
    fn candidates_rotate_and_never_repeat_an_endpoint() {
        let slot = EndpointSlot::default();
        assert!(candidates(&slot, 3).is_empty());
        slot.store(EndpointSet::new(addrs(&["10.0.0.1:1", "10.0.0.2:1"])));
        let first = candidates(&slot, 3);
        assert_eq!(first.len(), 2, "never more tries than endpoints");
        let second = candidates(&slot, 1);
        assert_eq!(second.len(), 1);
        assert_ne!(first[0], second[0], "the next connection starts at the next endpoint");
        assert_eq!(candidates(&slot, 0).len(), 2);
    }
}
