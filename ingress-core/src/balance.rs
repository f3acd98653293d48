//! How a route's requests are spread over its endpoints: ingress-nginx's `load-balance`
//! (`round_robin`, `ewma`), `upstream-hash-by` (consistent hashing, optionally over subsets)
//! and cookie affinity (`affinity: cookie`), as its Lua balancers do it.
//!
//! The consistent-hash ring is lua-resty-balancer's `resty.chash`, which ingress-nginx uses:
//! 160 points per endpoint (`ip:port`), point `i` the CRC-32 of the name followed by point
//! `i − 1` (little-endian), a key going to the first point at or after its CRC-32. The same
//! keys therefore reach the same endpoints as under ingress-nginx, and one endpoint more or
//! less moves about `1/n` of them.

use std::net::SocketAddr;

use crate::Template;

/// A route's balancing, from its annotations; what is unset follows the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// `load-balance`.
    pub load_balance: Option<LoadBalance>,
    /// `upstream-hash-by` (over `load-balance`).
    pub hash_by: Option<HashBy>,
    /// `affinity: cookie` (over both).
    pub affinity: Option<Affinity>,
}

/// ingress-nginx's `load-balance` values Ferry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalance {
    /// `round_robin`.
    RoundRobin,
    /// `ewma`: the lower latency of two random endpoints (a moving average with a 10 s decay).
    Ewma,
}

/// `upstream-hash-by`: requests with the same key go to the same endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashBy {
    /// The key, nginx variables expanded per request.
    pub key: Template,
    /// `upstream-hash-by-subset`: the key picks a subset of this many endpoints
    /// (`upstream-hash-by-subset-size`, 3), the endpoint within it is random.
    pub subset: Option<usize>,
}

/// `affinity: cookie`: a client is kept on one endpoint by a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    /// `affinity-mode: persistent`: the cookie names the endpoint, and only its leaving moves
    /// the client; `balanced` (the default): the cookie holds a key on the hash ring, so
    /// endpoint changes move about `1/n` of the clients.
    pub persistent: bool,
    /// `session-cookie-change-on-failure`: a retry after a failure picks a new endpoint (and
    /// cookie) instead of the cookie's again.
    pub change_on_failure: bool,
    /// The cookie.
    pub cookie: SessionCookie,
}

/// The affinity cookie's name and attributes (`session-cookie-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// `session-cookie-name` (`INGRESSCOOKIE`).
    pub name: String,
    /// `session-cookie-path`; `None` is the rule's path.
    pub path: Option<String>,
    /// `session-cookie-domain`.
    pub domain: Option<String>,
    /// `session-cookie-expires`, seconds from now.
    pub expires: Option<i64>,
    /// `session-cookie-max-age`, seconds.
    pub max_age: Option<i64>,
    /// `session-cookie-samesite`, as written (only `Strict`, `Lax`, `None` reach the cookie).
    pub samesite: Option<String>,
    /// `session-cookie-conditional-samesite-none`: no `SameSite=None` for browsers that
    /// mishandle it.
    pub conditional_samesite_none: bool,
    /// `session-cookie-secure: "true"`: `Secure` on plain HTTP too (otherwise only on HTTPS).
    pub secure: bool,
}

/// ingress-nginx's default affinity cookie name.
pub const DEFAULT_SESSION_COOKIE: &str = "INGRESSCOOKIE";

impl Default for SessionCookie {
    fn default() -> Self {
        Self {
            name: DEFAULT_SESSION_COOKIE.to_owned(),
            path: None,
            domain: None,
            expires: None,
            max_age: None,
            samesite: None,
            conditional_samesite_none: false,
            secure: false,
        }
    }
}

/// CRC-32 (IEEE), as nginx's `ngx_crc32_short`.
pub fn crc32(bytes: &[u8]) -> u32 {
    !crc32_update(!0, bytes)
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    crc
}

/// Points per endpoint on the ring (`resty.chash`'s `CONSISTENT_POINTS`).
const POINTS: usize = 160;

/// A consistent-hash ring over named members.
///
/// # Examples
///
/// ```
/// use ingress_core::{HashRing, crc32};
///
/// let ring = HashRing::new(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
/// let member = ring.find(crc32(b"/some/uri"));
/// assert!(member < 3);
/// assert_eq!(ring.find(crc32(b"/some/uri")), member, "the same key, the same member");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRing {
    /// (point, member index), sorted by point.
    points: Vec<(u32, u32)>,
}

impl HashRing {
    /// The ring of `members` (their index is what [`HashRing::find`] returns).
    pub fn new<S: AsRef<[u8]>>(members: impl IntoIterator<Item = S>) -> Self {
        let mut points = Vec::new();
        for (index, name) in members.into_iter().enumerate() {
            let base = crc32_update(!0, name.as_ref());
            let mut prev = 0u32;
            for _ in 0..POINTS {
                let hash = !crc32_update(base, &prev.to_le_bytes());
                points.push((hash, u32::try_from(index).unwrap_or(u32::MAX)));
                prev = hash;
            }
        }
        points.sort_by_key(|&(hash, _)| hash);
        Self { points }
    }

    /// The ring of the endpoints `addrs` (named `ip:port`, IPv6 in brackets, as
    /// ingress-nginx names them).
    pub fn of_endpoints(addrs: &[SocketAddr]) -> Self {
        Self::new(addrs.iter().map(|a| a.to_string()))
    }

    /// The member whose point is the first at or after `hash` (wrapping); 0 for an empty ring.
    pub fn find(&self, hash: u32) -> usize {
        let at = self.points.partition_point(|&(point, _)| point < hash);
        let (_, member) = self.points.get(at).or_else(|| self.points.first()).copied().unwrap_or((0, 0));
        member as usize
    }
}

/// Whether a browser (by `User-Agent`) mishandles `SameSite=None`, as ingress-nginx's
/// `same_site.lua` decides: Chrome 40–69 and Safari on iOS 12 / macOS 10.14.
pub fn samesite_none_incompatible(user_agent: &str) -> bool {
    let has = |s: &str| user_agent.contains(s);
    ["Chrome/4", "Chrome/5", "Chrome/6", "CPU iPhone OS 12", "iPad; CPU OS 12"].iter().any(|s| has(s))
        || (has("Macintosh") && has("Intel Mac OS X 10_14") && has("Safari") && !has("Chrome"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn one_endpoint_more_moves_about_one_in_n_keys() {
        let names: Vec<String> = (1..=10).map(|i| format!("10.0.0.{i}:8080")).collect();
        let before = HashRing::new(&names);
        let mut more = names;
        more.push("10.0.0.11:8080".to_owned());
        let after = HashRing::new(&more);
        let keys = 20_000;
        let mut moved = 0;
        let mut counts = [0usize; 11];
        for k in 0..keys {
            let h = crc32(format!("/item/{k}").as_bytes());
            let (a, b) = (before.find(h), after.find(h));
            counts[b] += 1;
            if a != b {
                moved += 1;
                assert_eq!(b, 10, "a key only moves to the new endpoint");
            }
        }
        let share = moved as f64 / keys as f64;
        assert!((0.05..0.14).contains(&share), "moved {share}");
        assert!(counts.iter().all(|&c| c > keys / 11 / 2), "spread {counts:?}");
        // And one endpoint fewer: only its keys move, about 1 in 10.
        let fewer = HashRing::new(&more[..9]);
        let mut moved = 0;
        for k in 0..keys {
            let h = crc32(format!("/item/{k}").as_bytes());
            let (a, b) = (before.find(h), fewer.find(h));
            if a != b {
                moved += 1;
                assert_eq!(a, 9, "only the leaving endpoint's keys move");
            }
        }
        let share = moved as f64 / keys as f64;
        assert!((0.05..0.16).contains(&share), "moved {share}");
    }

    #[test]
    fn the_ring_is_resty_chash() {
        // Point 0 of a member is the CRC-32 of its name followed by four zero bytes.
        let ring = HashRing::new(["a"]);
        let first = crc32(b"a\0\0\0\0");
        assert!(ring.points.iter().any(|&(p, _)| p == first));
        assert_eq!(ring.points.len(), POINTS);
        assert_eq!(HashRing::new(Vec::<&str>::new()).find(7), 0);
    }

    #[test]
    fn browsers_that_mishandle_samesite_none() {
        assert!(samesite_none_incompatible("Mozilla/5.0 (X11) Chrome/51.0.2704.103 Safari/537.36"));
        assert!(samesite_none_incompatible(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_0) AppleWebKit/605 (KHTML, like Gecko) Version/12 Safari/605"
        ));
        assert!(!samesite_none_incompatible("Mozilla/5.0 (X11) Chrome/120.0 Safari/537.36"));
    }
}
