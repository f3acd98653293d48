//! Per-client request and connection limits: ingress-nginx's `limit-rps`, `limit-rpm` and
//! `limit-connections`, counted as nginx's `limit_req` (a leaky bucket with a burst, `nodelay`)
//! and `limit_conn` (requests in flight) count them: per client address, per Ingress, in this
//! replica's memory (as ingress-nginx counts them per replica).
//!
//! State lives here, not in the route table: a new table (any configuration change) keeps the
//! counts of every Ingress whose limits did not change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use ingress_core::RateLimit;

/// Client addresses tracked per Ingress; past it, the one idle longest is forgotten first (as
/// nginx evicts from a full zone).
const MAX_CLIENTS: usize = 100_000;

/// Zones kept; past it, those no request used for the longest are dropped.
const MAX_ZONES: usize = 10_000;

/// Every Ingress's counts, by Ingress and limits (changed limits start afresh).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    zones: Mutex<HashMap<ZoneKey, Arc<Zone>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ZoneKey {
    zone: String,
    rps: u32,
    rpm: u32,
    connections: u32,
    burst_multiplier: u32,
}

#[derive(Debug)]
struct Zone {
    clients: Mutex<HashMap<IpAddr, Client>>,
    used: Mutex<Instant>,
}

/// One client address's counts in one zone.
#[derive(Debug, Clone, Copy)]
struct Client {
    /// Requests over the rate, in thousandths (nginx's `excess`), per second and per minute.
    excess_rps: u64,
    excess_rpm: u64,
    last: Instant,
    in_flight: u32,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Over `limit-rps` or `limit-rpm` and their burst (`limit-req-status-code`).
    Requests,
    /// Over `limit-connections` (`limit-conn-status-code`).
    Connections,
}

/// A request counted in flight for `limit-connections`: dropping it ends the count.
#[derive(Debug)]
pub(crate) struct InFlight {
    zone: Arc<Zone>,
    ip: IpAddr,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.zone.clients).get_mut(&self.ip) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The counts stay usable after a panic elsewhere: they are plain numbers.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// nginx's leaky bucket: the excess (thousandths of a request) with this request, after `ms`
/// milliseconds at `per_sec_milli` thousandths per second: `max(0, excess + 1000 - leaked)`.
fn leak(excess: u64, per_sec_milli: u64, ms: u64) -> u64 {
    excess.saturating_add(1000).saturating_sub(per_sec_milli.saturating_mul(ms) / 1000)
}

impl Limits {
    /// Counts a request from `client` against `limit` at `now`: `Ok` with its in-flight count
    /// when `limit-connections` is set (held until the request ends), `Err` when a limit
    /// refuses it. A client in the allowlist, or without an address, is not counted.
    pub(crate) fn admit(
        &self,
        limit: &RateLimit,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Result<Option<InFlight>, Refused> {
        let Some(ip) = client.map(ingress_core::canonical_ip) else { return Ok(None) };
        if limit.allowlist.iter().any(|c| c.contains(ip)) {
            return Ok(None);
        }
        let zone = self.zone(limit, now);
        let mut clients = lock(&zone.clients);
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
            forget(&mut clients, now);
        }
        let known = clients.contains_key(&ip);
        let c = clients.entry(ip).or_insert(Client { excess_rps: 0, excess_rpm: 0, last: now, in_flight: 0 });
        let ms = u64::try_from(now.saturating_duration_since(c.last).as_millis()).unwrap_or(u64::MAX);
        let (rate_rps, rate_rpm) = (u64::from(limit.rps) * 1000, u64::from(limit.rpm) * 1000 / 60);
        let drained = |excess: u64, rate: u64| excess.saturating_sub(rate.saturating_mul(ms) / 1000) == 0;
        // A client's first request starts its buckets empty and uncounted, as nginx's new node;
        // so does one after a minute idle with the buckets drained (nginx expires such a node).
        let expired = ms >= 60_000 && drained(c.excess_rps, rate_rps) && drained(c.excess_rpm, rate_rpm);
        let fresh = !known || expired;
        let multiplier = u64::from(limit.burst_multiplier);
        let counted = |excess, rate| if fresh { 0 } else { leak(excess, rate, ms) };
        let rps = (limit.rps > 0).then(|| counted(c.excess_rps, rate_rps));
        let rpm = (limit.rpm > 0).then(|| counted(c.excess_rpm, rate_rpm));
        let over = |excess: Option<u64>, rate: u32| {
            excess.is_some_and(|e| e > u64::from(rate).saturating_mul(multiplier).saturating_mul(1000))
        };
        if over(rps, limit.rps) || over(rpm, limit.rpm) {
            return Err(Refused::Requests);
        }
        if let Some(e) = rps {
            c.excess_rps = e;
        }
        if let Some(e) = rpm {
            c.excess_rpm = e;
        }
        c.last = now;
        if limit.connections == 0 {
            return Ok(None);
        }
        if c.in_flight >= limit.connections {
            return Err(Refused::Connections);
        }
        c.in_flight += 1;
        drop(clients);
        Ok(Some(InFlight { zone, ip }))
    }

    /// The zone of `limit`, made on first use.
    fn zone(&self, limit: &RateLimit, now: Instant) -> Arc<Zone> {
        let key = ZoneKey {
            zone: limit.zone.clone(),
            rps: limit.rps,
            rpm: limit.rpm,
            connections: limit.connections,
            burst_multiplier: limit.burst_multiplier,
        };
        let mut zones = lock(&self.zones);
        if let Some(zone) = zones.get(&key) {
            *lock(&zone.used) = now;
            return Arc::clone(zone);
        }
        // A new zone: drop those unused for ten minutes (of deleted Ingresses, or old limits),
        // and, past the bound, the half used longest ago.
        zones.retain(|_, z| now.saturating_duration_since(*lock(&z.used)).as_secs() < 600);
        if zones.len() >= MAX_ZONES {
            let mut used: Vec<Instant> = zones.values().map(|z| *lock(&z.used)).collect();
            used.sort_unstable();
            let cut = used.get(used.len() / 2).copied().unwrap_or(now);
            zones.retain(|_, z| *lock(&z.used) > cut);
        }
        let zone = Arc::new(Zone { clients: Mutex::new(HashMap::new()), used: Mutex::new(now) });
        zones.insert(key, Arc::clone(&zone));
        zone
    }
}

/// Makes room in a full zone, in one pass so a flood of new addresses costs amortized
/// constant time per request: first the clients idle for a minute; if that frees less than a
/// tenth, every client without a request in flight (their counts start afresh). A client with
/// requests in flight is never forgotten, so its `limit-connections` count stays right.
fn forget(clients: &mut HashMap<IpAddr, Client>, now: Instant) {
    clients.retain(|_, c| c.in_flight > 0 || now.saturating_duration_since(c.last).as_secs() < 60);
    if clients.len() > MAX_CLIENTS - MAX_CLIENTS / 10 {
        clients.retain(|_, c| c.in_flight > 0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit(rps: u32, rpm: u32, connections: u32) -> RateLimit {
        RateLimit { zone: "ns/app".into(), rps, rpm, connections, burst_multiplier: 5, allowlist: Vec::new() }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn rps_allows_the_rate_plus_its_burst_then_refuses() {
        let limits = Limits::default();
        let l = limit(2, 0, 0);
        let t0 = Instant::now();
        // At one instant: 1 request plus a burst of 2 × 5 = 11 pass, the 12th is refused.
        let passed = (0..20).take_while(|_| limits.admit(&l, ip("10.0.0.1"), t0).is_ok()).count();
        assert_eq!(passed, 11);
        assert_eq!(limits.admit(&l, ip("10.0.0.2"), t0).map(|_| ()), Ok(()), "per client address");
        // Half a second leaks one request at 2 r/s: one more passes, then none.
        let later = t0 + Duration::from_millis(500);
        assert!(limits.admit(&l, ip("10.0.0.1"), later).is_ok());
        assert_eq!(limits.admit(&l, ip("10.0.0.1"), later).map(|_| ()), Err(Refused::Requests));
        // A minute idle with the bucket drained starts afresh (nginx expires the node).
        let much_later = t0 + Duration::from_secs(61);
        assert_eq!((0..20).take_while(|_| limits.admit(&l, ip("10.0.0.1"), much_later).is_ok()).count(), 11);
    }

    #[test]
    fn a_zero_burst_lets_a_client_at_the_rate_through() {
        let limits = Limits::default();
        let l = RateLimit { burst_multiplier: 0, ..limit(1, 0, 0) };
        let t0 = Instant::now();
        for second in 0..5 {
            let at = t0 + Duration::from_secs(second);
            assert!(limits.admit(&l, ip("10.0.0.1"), at).is_ok(), "second {second}");
            assert!(limits.admit(&l, ip("10.0.0.1"), at).is_err(), "a second request in second {second}");
        }
    }

    #[test]
    fn a_full_zone_makes_room_without_forgetting_requests_in_flight() {
        let mut clients = HashMap::new();
        let now = Instant::now() + Duration::from_secs(600);
        let old = now - Duration::from_secs(120);
        for i in 0..u32::try_from(MAX_CLIENTS).unwrap() {
            let last = if i % 2 == 0 { old } else { now };
            let in_flight = u32::from(i == 1);
            clients.insert(
                IpAddr::from(i.to_be_bytes()),
                Client { excess_rps: 0, excess_rpm: 0, last, in_flight },
            );
        }
        forget(&mut clients, now);
        assert_eq!(clients.len(), MAX_CLIENTS / 2, "the idle half goes first");
        let more = u32::try_from(MAX_CLIENTS / 2).unwrap();
        clients.extend((0..more).map(|i| {
            let c = Client { excess_rps: 0, excess_rpm: 0, last: now, in_flight: 0 };
            (IpAddr::from((i + (1 << 24)).to_be_bytes()), c)
        }));
        forget(&mut clients, now);
        assert_eq!(clients.len(), 1, "all but the one with a request in flight");
        assert!(clients.contains_key(&IpAddr::from(1u32.to_be_bytes())));
    }

    #[test]
    fn rpm_leaks_per_minute() {
        let limits = Limits::default();
        let l = limit(0, 60, 0);
        let t0 = Instant::now();
        assert_eq!((0..400).take_while(|_| limits.admit(&l, ip("10.0.0.1"), t0).is_ok()).count(), 301);
        assert!(
            limits.admit(&l, ip("10.0.0.1"), t0 + Duration::from_millis(500)).is_err(),
            "1 r/s leaks nothing in 0.5 s"
        );
        assert!(limits.admit(&l, ip("10.0.0.1"), t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn connections_are_requests_in_flight() {
        let limits = Limits::default();
        let l = limit(0, 0, 2);
        let now = Instant::now();
        let a = limits.admit(&l, ip("10.0.0.1"), now).unwrap();
        let b = limits.admit(&l, ip("10.0.0.1"), now).unwrap();
        assert_eq!(limits.admit(&l, ip("10.0.0.1"), now).map(|_| ()), Err(Refused::Connections));
        drop(a);
        assert!(limits.admit(&l, ip("10.0.0.1"), now).unwrap().is_some());
        drop(b);
    }

    #[test]
    fn allowlisted_and_unaddressed_clients_are_not_counted_and_changed_limits_start_afresh() {
        let limits = Limits::default();
        let mut l = limit(1, 0, 0);
        l.allowlist = ingress_core::parse_cidrs("10.0.0.0/8").unwrap();
        let now = Instant::now();
        assert!((0..100).all(|_| limits.admit(&l, ip("10.1.1.1"), now).is_ok()));
        assert!((0..100).all(|_| limits.admit(&l, None, now).is_ok()));
        assert_eq!((0..20).take_while(|_| limits.admit(&l, ip("192.0.2.1"), now).is_ok()).count(), 6);
        let raised = RateLimit { rps: 2, ..l };
        assert!(limits.admit(&raised, ip("192.0.2.1"), now).is_ok(), "new limits, new counts");
    }
}
