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

use crate::access_log::clock::Stamp;
use crate::access_log::format::{Facts, Var};
use crate::access_log::json::JsonLine;
use crate::handle::Shared;
use crate::metrics::Metrics;

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
    /// The session's line: Ferry's JSON object, or an nginx stream template
    /// (`log-format-stream`).
    pub log_format: Option<Arc<crate::LogTemplate>>,
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
            log_format: None,
        }
    }
}

/// The background service that owns the stream listeners.
pub(crate) struct Streams {
    pub(crate) shared: Arc<Shared>,
    /// The address every stream port binds.
    pub(crate) ip: IpAddr,
    /// TCP sessions count as requests in flight (a graceful stop waits for them).
    pub(crate) metrics: Arc<Metrics>,
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
                StreamProtocol::Udp => udp::listen(addr, shared, Arc::clone(&self.metrics), stopped).await,
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
pub(crate) fn candidates(slot: &ingress_core::EndpointSlot, tries: u32) -> Vec<SocketAddr> {
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

/// The session's line in the access log: Ferry's JSON object (client, protocol, status, bytes
/// each way, duration), or the `log-format-stream` template.
struct Session<'a> {
    service: &'a str,
    protocol: StreamProtocol,
    client: SocketAddr,
    /// The service's port.
    port: u16,
    upstream: Option<SocketAddr>,
    /// nginx's stream status: 200 served, 400 bad PROXY header, 502 no endpoint answered.
    status: u16,
    bytes_sent: u64,
    bytes_received: u64,
    took: Duration,
}

impl Session<'_> {
    fn log(&self, shared: &Shared, metrics: &Metrics) {
        let settings = shared.settings.load();
        if !settings.access_log || !settings.stream.access_log {
            return;
        }
        let at = Stamp::now();
        let line = match &settings.stream.log_format {
            Some(template) => template.line(&SessionLine { session: self, at }),
            None => {
                let mut line = JsonLine::new(&at, "session");
                line.str("client", &self.client.to_string())
                    .str("protocol", &self.protocol.to_string())
                    .num("status", self.status)
                    .num("bytes_sent", self.bytes_sent)
                    .num("bytes_received", self.bytes_received)
                    .num("duration_ms", self.took.as_secs_f64() * 1000.0)
                    .str("upstream_addr", &self.upstream.map(|a| a.to_string()).unwrap_or_default())
                    .str("upstream", self.service);
                line.finish()
            }
        };
        metrics.write_access_log(line);
    }
}

/// A session at the moment it is logged: what a `log-format-stream` template reads.
struct SessionLine<'s, 'a> {
    session: &'s Session<'a>,
    at: Stamp,
}

impl Facts for SessionLine<'_, '_> {
    fn value(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        use std::io::Write;
        let s = self.session;
        let _ = match var {
            Var::RemoteAddr => write!(out, "{}", s.client.ip()),
            Var::RemotePort => write!(out, "{}", s.client.port()),
            Var::TimeLocal | Var::TimeIso8601 | Var::Msec => {
                match var {
                    Var::TimeLocal => self.at.local(out),
                    Var::TimeIso8601 => self.at.iso8601(out),
                    _ => self.at.msec(out),
                }
                Ok(())
            }
            Var::Status => write!(out, "{}", s.status),
            Var::ServerPort => write!(out, "{}", s.port),
            Var::BytesSent => write!(out, "{}", s.bytes_sent),
            Var::BytesReceived => write!(out, "{}", s.bytes_received),
            Var::SessionTime => write!(out, "{}.{:03}", s.took.as_secs(), s.took.subsec_millis()),
            Var::UpstreamAddr => match s.upstream {
                Some(addr) => write!(out, "{addr}"),
                None => return false,
            },
            Var::ProxyUpstreamName => write!(out, "{}", s.service),
            Var::Protocol => write!(out, "{}", s.protocol),
            Var::Hostname => write!(out, "{}", crate::access_log::hostname()),
            Var::Pid => write!(out, "{}", std::process::id()),
            _ => return false,
        };
        true
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
