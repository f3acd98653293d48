//! Which endpoint an attempt goes to, by the route's balancing (`load-balance`,
//! `upstream-hash-by`, `affinity: cookie`), as ingress-nginx's Lua balancers choose:
//!
//! - round robin: the selector's rotation (shared by every request to the backend);
//! - `ewma`: of two random endpoints, the one with the lower moving average of connect plus
//!   response time (10 s decay; an endpoint not measured yet starts at the others' average);
//! - `upstream-hash-by`: the request's key on the endpoints' hash ring (a retry goes to the
//!   next endpoint not tried in address order, where ingress-nginx would ask the same one
//!   again);
//!   with subsets, the key picks a subset and the endpoint within it is random;
//! - cookie affinity: the cookie's endpoint; without a usable cookie (or on a retry with
//!   `session-cookie-change-on-failure`) a new one, and a `Set-Cookie` for it. Balanced mode
//!   keeps a random key on the ring in the cookie (so an endpoint change moves about `1/n` of
//!   the sessions), persistent mode a hash naming the endpoint (only its leaving moves its
//!   sessions).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ingress_core::{Affinity, Backend, BackendRef, Endpoint, EndpointSet, LoadBalance, Route, crc32};
use rand::Rng;

use super::request_vars::RequestVars;
use crate::config::RuntimeSettings;

/// How one request's endpoints are chosen.
#[derive(Debug, Clone, Default)]
pub(crate) enum Choice {
    /// The selector's rotation.
    #[default]
    RoundRobin,
    /// The lower latency of two random endpoints.
    Ewma,
    /// The key's place on the ring (`upstream-hash-by`); with subsets, their size.
    Hash { hash: u32, subset: Option<usize> },
    /// Cookie affinity.
    Sticky(Box<Sticky>),
}

/// What cookie affinity needs of a request.
#[derive(Debug, Clone)]
pub(crate) struct Sticky {
    affinity: Affinity,
    /// The first field of the request's affinity cookie, if it sent one.
    key: Option<String>,
    /// The rule's path (the cookie's default `Path`).
    path: String,
    https: bool,
    /// The browser mishandles `SameSite=None`.
    old_browser: bool,
    /// A canary that keeps no sessions (`affinity-canary-behavior: legacy`): requests it gets
    /// are balanced without the cookie.
    unpinned: Option<BackendRef>,
}

impl Choice {
    /// The choice for a request on `route` (to `backend`, its own or its canary's).
    pub(crate) fn of(route: &Route<'_>, settings: &RuntimeSettings, vars: Option<&RequestVars<'_>>) -> Self {
        let balance = route.policy.balance.as_deref();
        if let (Some(affinity), Some(vars)) = (balance.and_then(|b| b.affinity.as_ref()), vars) {
            let cookie = cookie_value(vars, &affinity.cookie.name);
            let path = match route.matched_by {
                ingress_core::MatchedBy::Path { path, .. } if !path.is_empty() => path.to_owned(),
                _ => "/".to_owned(),
            };
            let mut agent = String::new();
            vars.header("user-agent", &mut agent);
            return Self::Sticky(Box::new(Sticky {
                affinity: affinity.clone(),
                key: cookie.map(|c| c.split('|').next().unwrap_or("").to_owned()).filter(|k| !k.is_empty()),
                path,
                https: vars.tls,
                old_browser: ingress_core::samesite_none_incompatible(&agent),
                unpinned: route.canary.filter(|c| c.rule.legacy_affinity).map(|c| c.backend.key().clone()),
            }));
        }
        if let (Some(hash_by), Some(vars)) = (balance.and_then(|b| b.hash_by.as_ref()), vars) {
            let key = hash_by.key.render(vars);
            return Self::Hash { hash: crc32(key.as_bytes()), subset: hash_by.subset };
        }
        match balance.and_then(|b| b.load_balance).unwrap_or(settings.load_balance) {
            LoadBalance::Ewma => Self::Ewma,
            LoadBalance::RoundRobin => Self::RoundRobin,
        }
    }

    /// Whether the choice needs the request's variables (hashing, affinity).
    pub(crate) fn needs_request(route: &Route<'_>) -> bool {
        route.policy.balance.as_deref().is_some_and(|b| b.affinity.is_some() || b.hash_by.is_some())
    }
}

/// The value of cookie `name` in the request (the last one when it repeats, as ingress-nginx
/// reads it).
fn cookie_value(vars: &RequestVars<'_>, name: &str) -> Option<String> {
    let mut found = None;
    for (_, v) in vars.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("cookie")) {
        let Ok(v) = std::str::from_utf8(v) else { continue };
        for pair in v.split(';') {
            if let Some((k, value)) = pair.split_once('=')
                && k.trim() == name
            {
                found = Some(value.trim().to_owned());
            }
        }
    }
    found
}

/// ingress-nginx's name of a backend's upstream: `namespace-service-port`.
fn upstream_name(key: &BackendRef) -> String {
    format!("{}-{}-{}", key.namespace, key.service, key.port)
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let Ok(mut hasher) = openssl::hash::Hasher::new(openssl::hash::MessageDigest::md5()) else {
        return String::new();
    };
    for p in parts {
        if hasher.update(p).is_err() {
            return String::new();
        }
    }
    hasher.finish().map(|d| d.iter().map(|b| format!("{b:02x}")).collect()).unwrap_or_default()
}

/// The backend key of the affinity cookie's second field: `md5(md5(name) .. name)`, as
/// ingress-nginx's sticky balancers compute it.
pub(crate) fn backend_key(key: &BackendRef) -> String {
    let name = upstream_name(key);
    md5_hex(&[md5_hex(&[name.as_bytes()]).as_bytes(), name.as_bytes()])
}

/// The second field of the request's affinity cookie (the backend it was set for), when the
/// route has cookie affinity: which of a canary pair keeps the session.
pub(crate) fn affinity_backend<'h>(
    route: &Route<'_>,
    headers: impl Iterator<Item = (&'h str, &'h [u8])>,
) -> Option<String> {
    let affinity = route.policy.balance.as_deref()?.affinity.as_ref()?;
    let mut found = None;
    for (_, v) in headers.filter(|(n, _)| n.eq_ignore_ascii_case("cookie")) {
        let Ok(v) = std::str::from_utf8(v) else { continue };
        for pair in v.split(';') {
            if let Some((k, value)) = pair.split_once('=')
                && k.trim() == affinity.cookie.name
            {
                found = value.trim().split_once('|').map(|(_, b)| b.to_owned());
            }
        }
    }
    found
}

/// The endpoint of an attempt, and the affinity cookie to set when it is a new one.
pub(crate) fn pick(
    choice: &Choice,
    backend: &Backend,
    endpoints: &EndpointSet,
    tried: &[SocketAddr],
    retry: bool,
    ewma: &Ewma,
    rotate: impl FnOnce() -> Option<Endpoint>,
) -> Option<(Endpoint, Option<String>)> {
    let all = endpoints.as_slice();
    let fresh = |e: &Endpoint| !tried.contains(&e.addr);
    match choice {
        Choice::RoundRobin => rotate().map(|e| (e, None)),
        Choice::Ewma => ewma.pick(all, tried).map(|e| (e, None)),
        Choice::Hash { hash, subset: None } => on_ring(endpoints, *hash, tried).map(|e| (e, None)),
        Choice::Hash { hash, subset: Some(size) } => {
            // No subset is larger than the endpoints (an annotation may ask for any size).
            let size = (*size).clamp(1, all.len().max(1));
            let sets = all.len().div_ceil(size).max(1);
            let set = subset_ring(sets).find(*hash);
            // The endpoints padded from the start, as ingress-nginx pads the last subset.
            let members: Vec<Endpoint> = (set * size..(set + 1) * size)
                .filter_map(|i| all.get(i % all.len().max(1)).copied())
                .collect();
            let untried: Vec<Endpoint> = members.iter().copied().filter(fresh).collect();
            let from = if untried.is_empty() { all.iter().copied().filter(fresh).collect() } else { untried };
            random(&from).map(|e| (e, None))
        }
        Choice::Sticky(sticky) if sticky.unpinned.as_ref() == Some(backend.key()) => {
            rotate().map(|e| (e, None))
        }
        Choice::Sticky(sticky) => sticky.pick(backend, endpoints, tried, retry),
    }
}

/// The ring over subsets `set1`…`setN`, as ingress-nginx's `chashsubset` names them: built
/// once per count and kept (counts are few), not per request.
fn subset_ring(sets: usize) -> std::sync::Arc<ingress_core::HashRing> {
    static RINGS: std::sync::OnceLock<Mutex<HashMap<usize, std::sync::Arc<ingress_core::HashRing>>>> =
        std::sync::OnceLock::new();
    let mut rings =
        RINGS.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let ring = rings.entry(sets).or_insert_with(|| {
        let names: Vec<String> = (1..=sets).map(|i| format!("set{i}")).collect();
        std::sync::Arc::new(ingress_core::HashRing::new(&names))
    });
    std::sync::Arc::clone(ring)
}

fn random(from: &[Endpoint]) -> Option<Endpoint> {
    if from.is_empty() {
        return None;
    }
    Some(from[rand::thread_rng().gen_range(0..from.len())])
}

/// The endpoint at or after `hash` on the ring; when it was tried, the next one not tried in
/// address order.
fn on_ring(endpoints: &EndpointSet, hash: u32, tried: &[SocketAddr]) -> Option<Endpoint> {
    let all = endpoints.as_slice();
    if all.is_empty() {
        return None;
    }
    let first = endpoints.ring().find(hash);
    (0..all.len()).map(|i| all[(first + i) % all.len()]).find(|e| !tried.contains(&e.addr))
}

impl Sticky {
    fn pick(
        &self,
        backend: &Backend,
        endpoints: &EndpointSet,
        tried: &[SocketAddr],
        retry: bool,
    ) -> Option<(Endpoint, Option<String>)> {
        let all = endpoints.as_slice();
        let keep = !(retry && self.affinity.change_on_failure);
        let name = upstream_name(backend.key());
        let persistent_key = |e: &Endpoint| md5_hex(&[name.as_bytes(), e.addr.to_string().as_bytes()]);
        if let Some(key) = self.key.as_deref().filter(|_| keep) {
            let found = if self.affinity.persistent {
                all.iter().copied().find(|e| persistent_key(e) == key)
            } else {
                on_ring(endpoints, crc32(key.as_bytes()), &[])
            };
            if let Some(e) = found.filter(|e| !tried.contains(&e.addr)) {
                return Some((e, None));
            }
        }
        let (endpoint, key) = if self.affinity.persistent {
            let untried: Vec<Endpoint> = all.iter().copied().filter(|e| !tried.contains(&e.addr)).collect();
            let e = random(&untried)?;
            (e, persistent_key(&e))
        } else {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            let mut picked = None;
            for i in 0..20 {
                let key = format!(
                    "{}.{}.{}",
                    now + f64::from(i),
                    std::process::id(),
                    rand::thread_rng().gen_range(0..999_999)
                );
                if let Some(e) =
                    all.get(endpoints.ring().find(crc32(key.as_bytes()))).filter(|e| !tried.contains(&e.addr))
                {
                    picked = Some((*e, key));
                    break;
                }
            }
            // Twenty keys all on tried endpoints: the first one not tried, with a key of its own.
            match picked {
                Some(picked) => picked,
                None => {
                    let e = all.iter().copied().find(|e| !tried.contains(&e.addr))?;
                    (e, format!("{now}.{}.{}", std::process::id(), e.addr))
                }
            }
        };
        Some((endpoint, Some(self.set_cookie(&key, &backend_key(backend.key())))))
    }

    /// The `Set-Cookie` value, as ingress-nginx's `sticky.lua` bakes it.
    fn set_cookie(&self, key: &str, backend: &str) -> String {
        let c = &self.affinity.cookie;
        let mut out = format!("{}={key}|{backend}", c.name);
        if let Some(secs) = c.expires {
            let now =
                i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs());
            let at = now.unwrap_or(0).saturating_add(secs).clamp(0, 253_402_300_799);
            out.push_str(&format!("; Expires={}", cookie_time(at)));
        }
        if let Some(age) = c.max_age {
            out.push_str(&format!("; Max-Age={age}"));
        }
        if let Some(domain) = &c.domain {
            out.push_str(&format!("; Domain={domain}"));
        }
        out.push_str(&format!("; Path={}", c.path.as_deref().unwrap_or(&self.path)));
        if c.secure || self.https {
            out.push_str("; Secure");
        }
        out.push_str("; HttpOnly");
        let samesite = c.samesite.as_deref().filter(|s| matches!(*s, "Strict" | "Lax" | "None"));
        if let Some(s) =
            samesite.filter(|s| !(c.conditional_samesite_none && *s == "None" && self.old_browser))
        {
            out.push_str(&format!("; SameSite={s}"));
        }
        out
    }
}

/// nginx's `ngx.cookie_time`: `Thu, 18-Nov-10 11:27:35 GMT`.
fn cookie_time(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02}-{}-{:02} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year.rem_euclid(100),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The EWMA balancer's latency averages, per endpoint, across requests and tables.
#[derive(Debug, Default)]
pub(crate) struct Ewma {
    scores: Mutex<HashMap<SocketAddr, (f64, Instant)>>,
}

/// ingress-nginx's `DECAY_TIME`.
const DECAY: f64 = 10.0;

impl Ewma {
    /// Records one attempt's connect plus response time on `addr`.
    pub(crate) fn observe(&self, addr: SocketAddr, rtt: Duration) {
        let mut scores = self.scores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let rtt = rtt.as_secs_f64();
        let entry = scores.entry(addr).or_insert((rtt, now));
        let weight = (-(now.duration_since(entry.1).as_secs_f64()) / DECAY).exp();
        *entry = (entry.0 * weight + rtt * (1.0 - weight), now);
        // Endpoints gone long ago go (each entry is a few dozen bytes; keep it bounded).
        if scores.len() > 100_000 {
            scores.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(600));
        }
    }

    /// The lower-scored of two random endpoints not tried (all, when every one was).
    fn pick(&self, all: &[Endpoint], tried: &[SocketAddr]) -> Option<Endpoint> {
        let mut from: Vec<Endpoint> = all.iter().copied().filter(|e| !tried.contains(&e.addr)).collect();
        if from.is_empty() {
            from = all.to_vec();
        }
        if from.len() <= 1 {
            return from.first().copied();
        }
        let mut rng = rand::thread_rng();
        let a = rng.gen_range(0..from.len());
        let mut b = rng.gen_range(0..from.len() - 1);
        if b >= a {
            b += 1;
        }
        let scores = self.scores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let decayed = |e: &Endpoint| {
            scores
                .get(&e.addr)
                .map(|(ewma, at)| ewma * (-(now.duration_since(*at).as_secs_f64()) / DECAY).exp())
        };
        // An endpoint not measured yet starts at the others' average (ingress-nginx's slow start).
        let known: Vec<f64> = from.iter().filter_map(decayed).collect();
        let start = if known.is_empty() { 0.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
        let score = |e: &Endpoint| decayed(e).unwrap_or(start);
        Some(if score(&from[b]) < score(&from[a]) { from[b] } else { from[a] })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cookie_times_are_nginx_s() {
        assert_eq!(cookie_time(1_290_079_655), "Thu, 18-Nov-10 11:27:35 GMT");
        assert_eq!(cookie_time(0), "Thu, 01-Jan-70 00:00:00 GMT");
    }

    #[test]
    fn backend_keys_are_ingress_nginx_s() {
        // md5(md5("default-app-80") .. "default-app-80"), as the sticky balancers compute it.
        let key = backend_key(&BackendRef::new("default", "app", 80));
        let inner = md5_hex(&[b"default-app-80"]);
        assert_eq!(key, md5_hex(&[inner.as_bytes(), b"default-app-80"]));
        assert_eq!(key.len(), 32);
    }

    #[test]
    fn ewma_prefers_the_faster_endpoint() {
        let (fast, slow): (SocketAddr, SocketAddr) =
            ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        let ewma = Ewma::default();
        ewma.observe(fast, Duration::from_millis(5));
        ewma.observe(slow, Duration::from_millis(500));
        let all = [Endpoint::from(fast), Endpoint::from(slow)];
        for _ in 0..20 {
            assert_eq!(ewma.pick(&all, &[]).unwrap().addr, fast);
        }
        assert_eq!(ewma.pick(&all, &[fast]).unwrap().addr, slow, "a tried endpoint is skipped");
    }
}
