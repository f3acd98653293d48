//! Idle keep-alive upstream connections of the HTTP/1 engine ([`crate::h1`]), per endpoint.
//!
//! Why not Pingora's pool: it parks every released connection behind a mutex with a spawned
//! watcher task, so each pooled request pays a task spawn, a wake-up and two liveness probes.
//! Here a released connection is a stack entry; whether the upstream closed it meanwhile is
//! probed once, when it is taken again, and a sweeper closes those idle past the keep-alive
//! timeout and those whose endpoint has been out of its backend's set for [`GONE_GRACE`]. The
//! sweeper runs only while the pool holds connections, so an idle proxy does not wake up for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ingress_core::EndpointSlot;
use tokio::io::AsyncReadExt;

/// An upstream connection of the HTTP/1 engine: plain TCP or TLS (Pingora's `Stream`
/// wrapper buffers writes and times every read and write that waits, which the engine does not
/// need).
pub(crate) use crate::upstream_tls::Upstream;

/// Which idle connections may serve a request: the endpoint, and the TLS settings they were
/// made with (0: plain TCP).
pub(crate) type PoolKey = (SocketAddr, u64);

/// How often the sweeper looks for connections idle too long.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Idle upstream connections, most recently used last.
#[derive(Debug)]
pub(crate) struct IdlePool {
    idle: Mutex<Idles>,
    /// Idle connections kept per endpoint; more are closed.
    per_endpoint: usize,
    /// [`GONE_GRACE`], shorter in tests.
    gone_grace: Duration,
    /// A clock read by the sweeper (and when it starts), so taking and parking a connection
    /// need not read the system clock: nanoseconds since `epoch`, behind by up to a sweep.
    coarse: AtomicU64,
    epoch: Instant,
}

/// How long an endpoint must stay out of its backend's set before its idle connections are
/// closed. ingress-nginx keeps them until `upstream-keepalive-timeout` whatever the endpoint
/// does; closing them sooner frees what a departed pod held, and waiting this long first means
/// an endpoint back within 10 s (an EndpointSlice rewritten in steps, a readiness flap shorter
/// than this) finds its connections still there, instead of opening a burst of new ones. An
/// endpoint out for longer (a failed readiness probe keeps it out for at least one
/// `periodSeconds`, 10 s by default) reconnects as it would have without the grace.
const GONE_GRACE: Duration = Duration::from_secs(10);

/// How far behind the coarse clock may be before [`IdlePool::take`] reads the real one (a
/// sweep, and ample room for a late sweeper).
const COARSE_SLACK: Duration = Duration::from_secs(1);

/// The pool's state, under its lock.
#[derive(Debug, Default)]
struct Idles {
    by_endpoint: HashMap<PoolKey, Stack>,
    /// Whether a sweeper task is running (it stops when nothing is left to sweep).
    sweeping: bool,
}

/// The idle connections to one endpoint, most recently used last.
#[derive(Debug, Default)]
struct Stack {
    idle: Vec<Idle>,
    /// Since when the sweeper has found the endpoint in none of its connections' sets (reset
    /// when it finds it again, or when a connection to it is parked: it was just chosen).
    gone_since: Option<Instant>,
}

#[derive(Debug)]
struct Idle {
    stream: Upstream,
    expires: Instant,
    /// The endpoint set the connection's endpoint was chosen from.
    slot: Arc<EndpointSlot>,
}

impl IdlePool {
    /// A pool keeping up to `per_endpoint` idle connections to each endpoint.
    pub(crate) fn new(per_endpoint: usize) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Idles::default()),
            per_endpoint: per_endpoint.max(1),
            gone_grace: GONE_GRACE,
            coarse: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// The most recently released live connection to `key`, if any. Connections the upstream
    /// closed (or sent unsolicited bytes on) while idle are dropped on the way.
    pub(crate) fn take(&self, key: PoolKey) -> Option<Upstream> {
        loop {
            let mut idle = self.lock().by_endpoint.get_mut(&key)?.idle.pop()?;
            if self.alive_at(idle.expires) && still_open(&mut idle.stream) {
                return Some(idle.stream);
            }
            // Expired, closed by the upstream, or not quiet: dropped (closed) here.
        }
    }

    /// Parks a connection the exchange left reusable, for `keepalive` at most, and closed
    /// sooner if its endpoint stays out of `slot`'s endpoint set for [`GONE_GRACE`].
    pub(crate) fn put(
        self: &Arc<Self>,
        key: PoolKey,
        slot: Arc<EndpointSlot>,
        stream: Upstream,
        keepalive: Duration,
    ) {
        let (evicted, start_sweeper) = {
            let mut idle = self.lock();
            // Without a sweeper running the coarse clock may be old: read the real one.
            let now = if idle.sweeping { self.coarse_now() } else { self.tick() };
            let stack = idle.by_endpoint.entry(key).or_default();
            stack.gone_since = None;
            let evicted = (stack.idle.len() >= self.per_endpoint).then(|| stack.idle.remove(0));
            stack.idle.push(Idle { stream, expires: now + keepalive, slot });
            (evicted, !std::mem::replace(&mut idle.sweeping, true))
        };
        if start_sweeper {
            self.start_sweeper();
        }
        // Closed outside the lock, like everything this pool closes: closing is a syscall.
        drop(evicted);
    }

    /// Closes connections idle past their keep-alive timeout, and those to endpoints that have
    /// been in none of their connections' backend sets for [`GONE_GRACE`]. Returns whether any
    /// connection is left (else the sweeper stops).
    fn sweep(&self) -> bool {
        let now = self.tick();
        let (expired, left) = {
            let mut idle = self.lock();
            let mut out = Vec::new();
            idle.by_endpoint.retain(|(addr, _), stack| {
                let present =
                    stack.idle.iter().any(|i| i.slot.load().as_slice().iter().any(|e| e.addr == *addr));
                let gone_since = if present { None } else { Some(*stack.gone_since.get_or_insert(now)) };
                stack.gone_since = gone_since;
                if gone_since.is_some_and(|since| now.duration_since(since) >= self.gone_grace) {
                    out.append(&mut stack.idle);
                } else {
                    out.extend(stack.idle.extract_if(.., |i| i.expires <= now));
                }
                !stack.idle.is_empty()
            });
            let left = !idle.by_endpoint.is_empty();
            // Decided under the lock, so a concurrent `put` either sees the sweeper running
            // or starts a new one.
            idle.sweeping = left;
            (out, left)
        };
        drop(expired);
        left
    }

    /// Runs the sweeper on the current runtime until the pool is empty or dropped.
    fn start_sweeper(self: &Arc<Self>) {
        let pool: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(pool) = pool.upgrade() else { return };
                if !pool.sweep() {
                    return;
                }
            }
        });
    }

    /// Reads the system clock into the coarse one; returns it.
    fn tick(&self) -> Instant {
        let now = Instant::now();
        let nanos = u64::try_from(now.duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        self.coarse.fetch_max(nanos, Ordering::Relaxed);
        now
    }

    /// The coarse clock (behind by at most a sweep while connections are parked).
    fn coarse_now(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.coarse.load(Ordering::Relaxed))
    }

    /// Whether a connection expiring at `expires` is still within its keep-alive time: by the
    /// coarse clock when that is clear, else by the system clock.
    fn alive_at(&self, expires: Instant) -> bool {
        expires > self.coarse_now() + COARSE_SLACK || expires > Instant::now()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idles> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether an idle connection is open and quiet: a read on it would block. (An upstream that
/// closed it shows end-of-stream; one that sent bytes unasked cannot be trusted with a request.)
fn still_open(stream: &mut Upstream) -> bool {
    let mut buf = [0u8; 1];
    // `unconstrained`: tokio's cooperative budget must not turn a ready read into `Pending`.
    let read = pin!(tokio::task::unconstrained(stream.read(&mut buf)));
    matches!(read.poll(&mut Context::from_waker(Waker::noop())), Poll::Pending)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A slot holding exactly `addr`.
    fn slot_with(addr: SocketAddr) -> Arc<EndpointSlot> {
        let slot = Arc::new(EndpointSlot::default());
        slot.store(ingress_core::EndpointSet::new([addr]));
        slot
    }

    fn boxed(stream: TcpStream) -> Upstream {
        Upstream::Plain(stream)
    }

    /// A connected pair on loopback: the pool's side as a Pingora stream, and the upstream's.
    async fn pair() -> (SocketAddr, Upstream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ours = TcpStream::connect(addr).await.unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        (addr, boxed(ours), theirs)
    }

    #[tokio::test]
    async fn hands_back_live_connections_and_drops_dead_or_expired_ones() {
        let pool = IdlePool::new(2);
        let (addr, stream, _upstream) = pair().await;
        pool.put((addr, 0), slot_with(addr), stream, Duration::from_secs(60));
        assert!(pool.take((addr, 0)).is_some(), "a quiet open connection is reused");
        assert!(pool.take((addr, 0)).is_none(), "taken once");

        let (addr, stream, upstream) = pair().await;
        pool.put((addr, 0), slot_with(addr), stream, Duration::from_secs(60));
        drop(upstream);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take((addr, 0)).is_none(), "closed by the upstream while idle");

        let (addr, stream, mut upstream) = pair().await;
        pool.put((addr, 0), slot_with(addr), stream, Duration::from_secs(60));
        upstream.write_all(b"HTTP/1.1 408 unasked\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take((addr, 0)).is_none(), "unsolicited bytes make it unusable");

        let (addr, stream, _upstream) = pair().await;
        pool.put((addr, 0), slot_with(addr), stream, Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(pool.take((addr, 0)).is_none(), "past its keep-alive timeout");
    }

    #[tokio::test]
    async fn keeps_a_bounded_number_per_endpoint_and_sweeps_expired_ones() {
        let pool = IdlePool::new(2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slot = slot_with(addr);
        let mut upstreams = Vec::new();
        for _ in 0..3 {
            let ours = TcpStream::connect(addr).await.unwrap();
            upstreams.push(listener.accept().await.unwrap().0);
            pool.put((addr, 0), Arc::clone(&slot), boxed(ours), Duration::from_millis(150));
        }
        assert_eq!(
            pool.lock().by_endpoint[&(addr, 0)].idle.len(),
            2,
            "the oldest is closed beyond the bound"
        );
        tokio::time::sleep(Duration::from_millis(150) + 3 * SWEEP_EVERY).await;
        assert!(!pool.lock().by_endpoint.contains_key(&(addr, 0)), "the sweeper closed expired connections");
        assert!(!pool.lock().sweeping, "nothing left: the sweeper stopped");
        // The next connection parked starts it again.
        let ours = TcpStream::connect(addr).await.unwrap();
        upstreams.push(listener.accept().await.unwrap().0);
        pool.put((addr, 0), Arc::clone(&slot), boxed(ours), Duration::from_millis(50));
        assert!(pool.lock().sweeping);
        tokio::time::sleep(Duration::from_millis(50) + 3 * SWEEP_EVERY).await;
        assert!(pool.lock().by_endpoint.is_empty());
        // The upstream sees them closed.
        let mut buf = [0u8; 1];
        for mut upstream in upstreams {
            assert_eq!(upstream.read(&mut buf).await.unwrap(), 0);
        }
    }

    #[tokio::test]
    async fn closes_connections_to_endpoints_out_of_their_set_past_the_grace() {
        let mut pool = IdlePool::new(4);
        Arc::get_mut(&mut pool).unwrap().gone_grace = 12 * SWEEP_EVERY;
        let (addr, stream, mut upstream) = pair().await;
        let slot = slot_with(addr);
        pool.put((addr, 0), Arc::clone(&slot), stream, Duration::from_secs(60));
        tokio::time::sleep(3 * SWEEP_EVERY).await;
        assert!(pool.lock().by_endpoint.contains_key(&(addr, 0)), "still in the set: kept");
        // Out of the set and back within the grace, twice: kept (a flapping readiness probe).
        for _ in 0..2 {
            slot.store(ingress_core::EndpointSet::default());
            tokio::time::sleep(3 * SWEEP_EVERY).await;
            assert!(pool.lock().by_endpoint[&(addr, 0)].gone_since.is_some(), "seen gone");
            slot.store(ingress_core::EndpointSet::new([addr]));
            tokio::time::sleep(2 * SWEEP_EVERY).await;
            assert!(pool.lock().by_endpoint[&(addr, 0)].gone_since.is_none(), "seen back");
        }
        // Gone for longer than the grace: closed.
        slot.store(ingress_core::EndpointSet::default());
        tokio::time::sleep(16 * SWEEP_EVERY).await;
        assert!(!pool.lock().by_endpoint.contains_key(&(addr, 0)), "out of the set past the grace: closed");
        let mut buf = [0u8; 1];
        assert_eq!(upstream.read(&mut buf).await.unwrap(), 0);

        // Parking a connection says its endpoint was just chosen: the grace starts again.
        let (addr, stream, _upstream) = pair().await;
        let gone = Arc::new(EndpointSlot::default());
        pool.put((addr, 0), Arc::clone(&gone), stream, Duration::from_secs(60));
        tokio::time::sleep(3 * SWEEP_EVERY).await;
        assert!(pool.lock().by_endpoint[&(addr, 0)].gone_since.is_some());
        let (_, stream, _upstream2) = pair().await;
        pool.put((addr, 0), gone, stream, Duration::from_secs(60));
        assert!(pool.lock().by_endpoint[&(addr, 0)].gone_since.is_none(), "reset by the park");
    }
}
