//! Host names: validating rule hosts and normalising request hosts.

use std::fmt;

/// The longest DNS name a rule can carry (RFC 1123).
const MAX_HOST_LEN: usize = 253;

/// A validated rule host: exact, single-label wildcard, or any host.
///
/// # Examples
///
/// ```
/// use ingress_core::HostPattern;
///
/// let p = HostPattern::parse(Some("*.Foo.com")).unwrap();
/// assert_eq!(p, HostPattern::Wildcard("foo.com".into()));
/// assert!(p.matches("bar.foo.com"));
/// assert!(!p.matches("foo.com"));
/// assert!(!p.matches("baz.bar.foo.com"));
/// assert!(HostPattern::parse(Some("foo..com")).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// One exact, lower-case host name.
    Exact(String),
    /// `*.suffix`: any host made of exactly one label followed by `.suffix` (stored lower-case,
    /// without the `*.`).
    Wildcard(String),
    /// A rule without a host: matches every host.
    Any,
}

impl HostPattern {
    /// Validates a rule host (`None` or `""` for "every host").
    ///
    /// Host names are DNS-1123 subdomains; upper case is folded to lower case because matching
    /// is case-insensitive. IP addresses are refused, as the Kubernetes API does.
    pub fn parse(host: Option<&str>) -> Result<Self, String> {
        let host = match host {
            None | Some("") => return Ok(HostPattern::Any),
            Some(h) => h.to_ascii_lowercase(),
        };
        if let Some(suffix) = host.strip_prefix("*.") {
            validate_dns_name(suffix)?;
            return Ok(HostPattern::Wildcard(suffix.to_owned()));
        }
        if host.contains('*') {
            return Err("a wildcard must be the whole first label, as in `*.example.com`".into());
        }
        validate_dns_name(&host)?;
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err("must be a DNS name, not an IP address".into());
        }
        Ok(HostPattern::Exact(host))
    }

    /// Whether a normalised request host (see [`normalize_host`]) matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => wildcard_suffix(host) == Some(suffix.as_str()),
            HostPattern::Any => true,
        }
    }

    /// How specific the pattern is: exact hosts beat wildcards, which beat host-less rules.
    pub(crate) fn specificity(&self) -> u8 {
        match self {
            HostPattern::Exact(_) => 0,
            HostPattern::Wildcard(_) => 1,
            HostPattern::Any => 2,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

fn validate_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_HOST_LEN {
        return Err(format!("must be no more than {MAX_HOST_LEN} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("must not contain empty labels (`..`, or a leading or trailing dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(format!("label `{label}` may only contain a-z, 0-9 and `-`"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` must start and end with a letter or digit"));
        }
    }
    Ok(())
}

/// The part of a host a single-label wildcard is compared with: everything after the first
/// label (`bar.foo.com` → `foo.com`), or `None` when there is no non-empty first label.
pub(crate) fn wildcard_suffix(host: &str) -> Option<&str> {
    let dot = host.as_bytes().iter().position(|&b| b == b'.')?;
    if dot == 0 || dot + 1 == host.len() {
        return None;
    }
    Some(&host[dot + 1..])
}

/// A stack buffer long enough for any host name a rule can match; longer request hosts can only
/// match host-less rules.
pub(crate) type HostBuf = [u8; MAX_HOST_LEN + 1];

/// Normalises a request's `Host` (or `:authority`, or SNI) for matching: drops a `:port`
/// suffix (also after an IPv6 literal) and one trailing dot, and folds ASCII case.
///
/// Returns `None` when the host is too long to match any rule host. Lower-casing happens in
/// `buf`, so a lookup never allocates.
///
/// # Examples
///
/// ```
/// let mut buf = [0u8; 254];
/// assert_eq!(ingress_core::normalize_host("Demo.Example.COM.:8080", &mut buf), Some("demo.example.com"));
/// ```
pub fn normalize_host<'a>(host: &'a str, buf: &'a mut [u8; MAX_HOST_LEN + 1]) -> Option<&'a str> {
    let (host, upper) = trim_host(host)?;
    if !upper {
        return Some(host);
    }
    lowercase_into(host, buf)
}

/// The host without `:port` and trailing dot, and whether it still needs lower-casing; `None`
/// when too long to match a rule host. Lookups call this first so that the common, already
/// lower-case host needs no buffer at all.
#[inline]
pub(crate) fn trim_host(host: &str) -> Option<(&str, bool)> {
    // Byte loops rather than `rfind`/`any`: hosts are short, and this runs on every request.
    let bytes = host.as_bytes();
    let mut end = bytes.len();
    if bytes.first() == Some(&b'[') {
        // An IPv6 literal: `[::1]:8080`.
        if let Some(close) = bytes.iter().position(|&b| b == b']') {
            end = close + 1;
        }
    } else {
        let mut i = end;
        while i > 0 && bytes[i - 1].is_ascii_digit() {
            i -= 1;
        }
        if i > 0 && bytes[i - 1] == b':' {
            end = i - 1;
        }
    }
    if end > 0 && bytes[end - 1] == b'.' {
        end -= 1;
    }
    if end > MAX_HOST_LEN {
        return None;
    }
    // `end` sits just before an ASCII `:`, `.` or after `]`: a character boundary.
    let host = host.get(..end)?;
    let mut upper = false;
    for &b in host.as_bytes() {
        upper |= b.is_ascii_uppercase();
    }
    Some((host, upper))
}

/// `host` lower-cased into `buf` (`host` is at most [`MAX_HOST_LEN`] bytes long).
pub(crate) fn lowercase_into<'a>(host: &str, buf: &'a mut HostBuf) -> Option<&'a str> {
    let out = buf.get_mut(..host.len())?;
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    // Lower-casing ASCII bytes keeps a valid UTF-8 string valid.
    std::str::from_utf8(out).ok()
}

/// Compares two short byte strings without calling `memcmp`: hosts and paths are a few dozen
/// bytes, where the call costs more than the comparison.
#[inline]
pub(crate) fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let load8 =
        |s: &[u8], at: usize| s.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_ne_bytes);
    match n {
        0 => true,
        1..=7 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => load8(a, 0) == load8(b, 0) && load8(a, n - 8) == load8(b, n - 8),
        _ => {
            let mut i = 0;
            while i + 8 <= n {
                if load8(a, i) != load8(b, i) {
                    return false;
                }
                i += 8;
            }
            load8(a, n - 8) == load8(b, n - 8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_port_and_dot_and_case() {
        let mut buf = [0u8; MAX_HOST_LEN + 1];
        assert_eq!(normalize_host("a.b:80", &mut buf), Some("a.b"));
        assert_eq!(normalize_host("A.B.", &mut buf), Some("a.b"));
        assert_eq!(normalize_host("[::1]:443", &mut buf), Some("[::1]"));
        assert_eq!(normalize_host("a.b:", &mut buf), Some("a.b"));
        let long = "a".repeat(300);
        assert_eq!(normalize_host(&long, &mut buf), None);
    }

    #[test]
    fn eq_bytes_agrees_with_slice_equality() {
        let words: Vec<Vec<u8>> = (0..40).map(|n| (0..n).map(|i| b'a' + (i % 7) as u8).collect()).collect();
        for a in &words {
            for b in &words {
                assert_eq!(eq_bytes(a, b), a == b);
                let mut c = b.clone();
                if let Some(last) = c.last_mut() {
                    *last = b'z';
                    assert_eq!(eq_bytes(a, &c), *a == c);
                }
                if c.len() > 3 {
                    c[2] = b'z';
                    assert_eq!(eq_bytes(a, &c), *a == c);
                }
            }
        }
    }

    #[test]
    fn wildcard_suffix_needs_a_first_label() {
        assert_eq!(wildcard_suffix("bar.foo.com"), Some("foo.com"));
        assert_eq!(wildcard_suffix(".foo.com"), None);
        assert_eq!(wildcard_suffix("foo."), None);
        assert_eq!(wildcard_suffix("foo"), None);
    }

    #[test]
    fn rejects_bad_hosts() {
        for bad in ["foo..com", "-a.com", "a_b.com", "*", "*.", "a.*.com", "1.2.3.4", "*foo.com"] {
            assert!(HostPattern::parse(Some(bad)).is_err(), "{bad} should be rejected");
        }
    }
}
