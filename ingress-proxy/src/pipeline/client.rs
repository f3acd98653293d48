//! Who the client is: its address, the scheme, host and port it used, as the upstream and the
//! logs are told. ingress-nginx's rules ([`Forwarding`]): by default nothing the client sends
//! is believed; behind a trusted proxy the address comes from the forwarded-for header, read
//! from the right and skipping trusted hops, as nginx's `real_ip_recursive on` reads it.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use ingress_core::canonical_ip;

use crate::config::Forwarding;

/// The forwarding headers a request arrived with, as sent.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sent<'a> {
    /// The forwarded-for header (`forwarded-for-header`); several lines joined with `, `.
    pub(crate) forwarded_for: Option<Cow<'a, str>>,
    /// `X-Forwarded-Proto`.
    pub(crate) proto: Option<&'a str>,
    /// `X-Forwarded-Host`.
    pub(crate) host: Option<&'a str>,
    /// `X-Forwarded-Port`.
    pub(crate) port: Option<&'a str>,
    /// `Origin` (read in the same pass, for CORS).
    pub(crate) origin: Option<&'a str>,
}

impl<'a> Sent<'a> {
    /// Picks the forwarding headers out of a request's header lines (`name`, `value`); values
    /// that are not visible ASCII are taken as absent.
    pub(crate) fn from_lines(
        forwarding: &Forwarding,
        lines: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Self {
        let mut sent = Sent::default();
        let for_name = forwarding.forwarded_for_header.as_str();
        for (name, value) in lines {
            if name.eq_ignore_ascii_case(for_name) {
                join(&mut sent.forwarded_for, value);
            } else if name.eq_ignore_ascii_case("origin") {
                sent.origin = sent.origin.or_else(|| text(value));
            } else if !name.starts_with(['x', 'X']) {
                continue;
            } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
                sent.proto = sent.proto.or_else(|| text(value));
            } else if name.eq_ignore_ascii_case("x-forwarded-host") {
                sent.host = sent.host.or_else(|| text(value));
            } else if name.eq_ignore_ascii_case("x-forwarded-port") {
                sent.port = sent.port.or_else(|| text(value));
            }
        }
        sent
    }
}

/// A header value as text: trimmed, visible ASCII and spaces only, not empty.
fn text(value: &[u8]) -> Option<&str> {
    let value = value.trim_ascii();
    (!value.is_empty() && value.iter().all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic()))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// Adds one line of a list header: several lines read as one list, as nginx joins them.
fn join<'a>(list: &mut Option<Cow<'a, str>>, value: &'a [u8]) {
    let Some(value) = text(value) else { return };
    *list = Some(match list.take() {
        None => Cow::Borrowed(value),
        Some(before) => Cow::Owned(format!("{before}, {value}")),
    });
}

/// The client as the upstream is told about it, and as it is logged.
#[derive(Debug, Clone)]
pub(crate) struct Client<'a> {
    /// The client's address (ingress-nginx's `$remote_addr`): the peer's, or the one a
    /// trusted peer forwarded.
    pub(crate) ip: Option<IpAddr>,
    /// `ip` as text (`X-Real-IP`).
    pub(crate) ip_text: Cow<'a, str>,
    /// `X-Forwarded-For` going upstream.
    pub(crate) forwarded_for: Cow<'a, str>,
    /// The scheme the client used (`X-Forwarded-Proto`, `-Scheme`, `X-Scheme`).
    pub(crate) scheme: &'a str,
    /// The host the client asked for (`X-Forwarded-Host`).
    pub(crate) host: &'a str,
    /// The port the client connected to (`X-Forwarded-Port`).
    pub(crate) port: &'a str,
    /// The forwarded-for header as the client sent it (`X-Original-Forwarded-For`).
    pub(crate) original_forwarded_for: Option<Cow<'a, str>>,
    /// `X-Forwarded-Host` as the client sent it (`X-Original-Forwarded-Host`).
    pub(crate) original_forwarded_host: Option<&'a str>,
    /// The request's `Origin`, for CORS.
    pub(crate) origin: Option<&'a str>,
}

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connection<'a> {
    /// The peer's address, and as text.
    pub(crate) peer: Option<(IpAddr, &'a str)>,
    /// Whether it is TLS.
    pub(crate) tls: bool,
    /// The local port, as text.
    pub(crate) port: &'a str,
}

/// The client of a request: its connection, the host it named, and the forwarding headers it
/// sent, read by `forwarding`'s rules.
pub(crate) fn identify<'a>(
    forwarding: &Forwarding,
    connection: Connection<'a>,
    host: &'a str,
    sent: Sent<'a>,
) -> Client<'a> {
    let trusting = forwarding.use_forwarded_headers;
    let peer = connection.peer.map(|(ip, _)| canonical_ip(ip));
    let real = match (peer, &sent.forwarded_for) {
        (Some(peer), Some(list)) if trusting || forwarding.enable_real_ip => {
            Some(real_ip(peer, list, &forwarding.trusted))
        }
        _ => peer,
    };
    let ip_text: Cow<'a, str> = match (real, connection.peer) {
        (Some(real), Some((ip, text))) if real == ip => Cow::Borrowed(text),
        (Some(real), _) => Cow::Owned(real.to_string()),
        (None, _) => Cow::Borrowed(""),
    };
    let forwarded_for = match (&sent.forwarded_for, connection.peer) {
        (Some(list), Some((_, peer))) if trusting && forwarding.compute_full_forwarded_for => {
            Cow::Owned(format!("{list}, {peer}"))
        }
        (None, Some((_, peer))) if trusting && forwarding.compute_full_forwarded_for => Cow::Borrowed(peer),
        _ => ip_text.clone(),
    };
    let scheme = match sent.proto {
        Some(proto) if trusting => proto,
        _ if connection.tls => "https",
        _ => "http",
    };
    // ingress-nginx takes the first element of X-Forwarded-Host, untrimmed.
    let host = match sent.host {
        Some(forwarded) if trusting => forwarded.split(',').next().unwrap_or(forwarded),
        _ => host,
    };
    let port = match sent.port {
        Some(port) if trusting => port,
        _ => connection.port,
    };
    Client {
        ip: real,
        ip_text,
        forwarded_for,
        scheme,
        host,
        port,
        original_forwarded_for: sent.forwarded_for,
        original_forwarded_host: sent.host,
        origin: sent.origin,
    }
}

/// nginx's `real_ip_recursive on`: from the peer leftwards through the list, each trusted
/// address hands over to the entry on its left; the first untrusted one is the client (the
/// leftmost when all are trusted). An entry that is not an address stops the walk at the
/// address before it.
fn real_ip(peer: IpAddr, list: &str, trusted: &[ingress_core::Cidr]) -> IpAddr {
    let mut addr = peer;
    let mut rest = list;
    loop {
        if !trusted.iter().any(|net| net.contains(addr)) {
            return addr;
        }
        let kept = rest.trim_end_matches([' ', ',']);
        if kept.is_empty() {
            return addr;
        }
        let start = kept.rfind([' ', ',']).map_or(0, |i| i + 1);
        let Some(next) = parse_addr(&kept[start..]) else { return addr };
        addr = next;
        rest = &kept[..start];
    }
}

/// An address as nginx's `ngx_parse_addr_port` takes it: `ip`, `ip:port` or `[ipv6]:port`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip())).map(canonical_ip)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn forwarding(f: impl FnOnce(&mut Forwarding)) -> Forwarding {
        let mut forwarding = Forwarding::default();
        f(&mut forwarding);
        forwarding
    }

    fn lines<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        pairs.iter().map(|(n, v)| (*n, v.as_bytes()))
    }

    fn who<'a>(
        forwarding: &Forwarding,
        peer: &'a str,
        tls: bool,
        headers: &'a [(&'a str, &'a str)],
    ) -> Client<'a> {
        let connection = Connection { peer: Some((peer.parse().unwrap(), peer)), tls, port: "8443" };
        identify(forwarding, connection, "app.test:8443", Sent::from_lines(forwarding, lines(headers)))
    }

    const SPOOF: &[(&str, &str)] = &[
        ("X-Forwarded-For", "1.1.1.1"),
        ("x-forwarded-for", "2.2.2.2, 3.3.3.3"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.test, other.test"),
        ("X-Forwarded-Port", "1"),
    ];

    #[test]
    fn by_default_nothing_the_client_sends_is_believed() {
        let c = who(&Forwarding::default(), "203.0.113.7", false, SPOOF);
        assert_eq!((c.ip_text.as_ref(), c.forwarded_for.as_ref()), ("203.0.113.7", "203.0.113.7"));
        assert_eq!((c.scheme, c.host, c.port), ("http", "app.test:8443", "8443"));
        assert_eq!(c.original_forwarded_for.as_deref(), Some("1.1.1.1, 2.2.2.2, 3.3.3.3"));
        assert_eq!(c.original_forwarded_host, Some("evil.test, other.test"));
        assert_eq!(who(&Forwarding::default(), "203.0.113.7", true, &[]).scheme, "https");
    }

    #[test]
    fn behind_a_trusted_proxy_the_headers_are_believed() {
        let f = forwarding(|f| f.use_forwarded_headers = true);
        let c = who(&f, "10.0.0.2", false, SPOOF);
        // Every IPv4 peer is trusted by default, so the leftmost entry wins.
        assert_eq!(c.ip_text, "1.1.1.1");
        assert_eq!(c.forwarded_for, "1.1.1.1", "replaced by the client address");
        assert_eq!((c.scheme, c.host, c.port), ("https", "evil.test", "1"));

        let f = forwarding(|f| {
            f.use_forwarded_headers = true;
            f.trusted = ingress_core::parse_cidrs("10.0.0.0/8, 3.3.3.0/24").unwrap();
        });
        assert_eq!(who(&f, "10.0.0.2", false, SPOOF).ip_text, "2.2.2.2", "trusted hops are skipped");
        let c = who(&f, "198.51.100.1", false, SPOOF);
        assert_eq!(c.ip_text, "198.51.100.1", "an untrusted peer's list is not read");
        assert_eq!(
            c.scheme, "https",
            "use-forwarded-headers believes the scheme from anyone, as ingress-nginx"
        );

        let f = forwarding(|f| {
            f.use_forwarded_headers = true;
            f.compute_full_forwarded_for = true;
        });
        let c = who(&f, "10.0.0.2", false, SPOOF);
        assert_eq!(c.forwarded_for, "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.2");
        assert_eq!(who(&f, "10.0.0.2", false, &[]).forwarded_for, "10.0.0.2");
    }

    #[test]
    fn real_ip_alone_reads_the_address_only() {
        let f = forwarding(|f| {
            f.enable_real_ip = true;
            f.forwarded_for_header = "x-client-ip".into();
        });
        let c =
            who(&f, "10.0.0.2", false, &[("X-Client-IP", "192.0.2.9:4431"), ("X-Forwarded-Proto", "https")]);
        assert_eq!((c.ip_text.as_ref(), c.scheme), ("192.0.2.9", "http"));
        assert_eq!(c.forwarded_for, "192.0.2.9");
    }

    #[test]
    fn malformed_lists_stop_at_the_last_good_address() {
        let all = [ingress_core::Cidr::ANY_IPV4];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |list: &str| real_ip(peer, list, &all).to_string();
        assert_eq!(ip(""), "10.0.0.1");
        assert_eq!(ip(" , ,"), "10.0.0.1");
        assert_eq!(ip("garbage"), "10.0.0.1");
        assert_eq!(ip("1.1.1.1, garbage, 2.2.2.2"), "2.2.2.2");
        assert_eq!(ip("[2001:db8::1]:80"), "2001:db8::1", "an IPv6 address ends the walk: not trusted");
        assert_eq!(ip("1.1.1.1,,2.2.2.2 ,"), "1.1.1.1");
        assert_eq!(ip("::ffff:192.0.2.1"), "192.0.2.1");
        let long = "1.1.1.1, ".repeat(10_000);
        assert_eq!(ip(&long), "1.1.1.1", "long lists are walked without recursion");
    }
}
