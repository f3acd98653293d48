//! IP address ranges (`10.0.0.0/8`, `2001:db8::/32`, or a single address), as ingress-nginx
//! reads them: the trusted proxies of `proxy-real-ip-cidr`, and the source ranges of the access
//! restrictions.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address and a prefix length. A plain address is a network of one.
///
/// IPv4 and IPv6 never match each other (as in nginx, `0.0.0.0/0` does not cover IPv6 clients),
/// but an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is taken as the IPv4 address it carries.
///
/// # Examples
///
/// ```
/// use ingress_core::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.1.2.3".parse()?));
/// assert!(!net.contains("11.0.0.1".parse()?));
/// assert!("192.0.2.7".parse::<Cidr>()?.contains("192.0.2.7".parse()?));
/// assert!("10.0.0.0/33".parse::<Cidr>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a text is not an address range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR range (such as 10.0.0.0/8 or 2001:db8::/32)")]
pub struct InvalidCidr(pub String);

impl Cidr {
    /// `0.0.0.0/0`: every IPv4 address (ingress-nginx's default `proxy-real-ip-cidr`).
    pub const ANY_IPV4: Cidr = Cidr { addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), prefix: 0 };

    /// The network's address and prefix length, as written (host bits kept).
    pub fn parts(&self) -> (IpAddr, u8) {
        (self.addr, self.prefix)
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; anything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidCidr(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only (no sign, no spaces), as Go's `net.ParseCIDR`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses a comma-separated list of ranges (spaces around entries allowed, empty entries
/// skipped), as ingress-nginx splits its CIDR lists.
pub fn parse_cidrs(list: &str) -> Result<Vec<Cidr>, InvalidCidr> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect()
}

/// Whether a client at `ip` may reach a route, as nginx's access phase decides it from
/// ingress-nginx's source ranges: `deny` entries first (`denylist-source-range`), then, when
/// `allow` is not empty, only its entries (`whitelist-source-range`, then `deny all`). A
/// request without an address (none over a Unix socket) is refused by a non-empty `allow`.
///
/// # Examples
///
/// ```
/// use ingress_core::{admits, parse_cidrs};
///
/// let allow = parse_cidrs("10.0.0.0/8")?;
/// let deny = parse_cidrs("10.9.0.0/16")?;
/// assert!(admits(Some("10.1.2.3".parse()?), &allow, &deny));
/// assert!(!admits(Some("10.9.0.1".parse()?), &allow, &deny), "denied first");
/// assert!(!admits(Some("192.0.2.1".parse()?), &allow, &deny), "not allowed");
/// assert!(admits(Some("192.0.2.1".parse()?), &[], &deny), "no allowlist: all but the denied");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn admits(ip: Option<IpAddr>, allow: &[Cidr], deny: &[Cidr]) -> bool {
    let Some(ip) = ip else { return allow.is_empty() };
    !deny.iter().any(|c| c.contains(ip)) && (allow.is_empty() || allow.iter().any(|c| c.contains(ip)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_their_own_family() {
        let any4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any4.contains(ip("203.0.113.9")));
        assert!(!any4.contains(ip("2001:db8::1")), "0.0.0.0/0 is IPv4 only, as in nginx");
        assert!(any4.contains(ip("::ffff:203.0.113.9")), "IPv4-mapped is IPv4");
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("::1")));
        let host: Cidr = "10.0.0.1/32".parse().unwrap();
        assert!(host.contains(ip("10.0.0.1")) && !host.contains(ip("10.0.0.2")));
        let odd: Cidr = "10.1.2.3/8".parse().unwrap();
        assert!(odd.contains(ip("10.200.0.1")), "host bits are ignored, as Go's ParseCIDR masks them");
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "x/8",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        assert_eq!(parse_cidrs(" 10.0.0.0/8, ,192.168.0.1 ").unwrap().len(), 2);
        assert!(parse_cidrs("10.0.0.0/8,nope").is_err());
    }
}
