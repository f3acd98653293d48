//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer in front of the
//! proxy sends before a connection's first byte to say whose connection it is, and the v1
//! header the proxy sends to an upstream that wants to know (nginx's `proxy_protocol on`).
//!
//! [`parse`] reads bytes from the network and never trusts them: a v1 line is at most 107
//! bytes (the specification's limit, nginx's too), a v2 header at most [`MAX_V2`]; anything
//! else, or anything malformed, is an [`Invalid`] header and the connection is closed, as nginx
//! closes it. A `LOCAL` (v2) or `UNKNOWN` (v1) header carries no address: the connection's own
//! peer is the client then.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest v1 header, `\r\n` included.
pub(crate) const MAX_V1: usize = 107;
/// The longest v2 header Ferry reads (16 bytes of fixed part, then addresses and TLVs).
pub(crate) const MAX_V2: usize = 16 + 1024;
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Its length in bytes: what follows is the connection's own data.
    pub(crate) len: usize,
    /// The client's address and port, unless the header carries none (`LOCAL`, `UNKNOWN`, a
    /// family other than TCP/UDP over IPv4/IPv6).
    pub(crate) source: Option<SocketAddr>,
    /// The address and port the client connected to (the balancer's), when `source` is set.
    pub(crate) destination: Option<SocketAddr>,
}

/// What [`parse`] found at the start of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A header of [`Header::len`] bytes.
    Complete(Header),
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Invalid {
    /// The connection does not start with either version's signature.
    #[error("no PROXY protocol header")]
    Missing,
    /// A v1 line longer than 107 bytes, or a v2 header longer than Ferry reads.
    #[error("PROXY protocol header too long")]
    TooLong,
    /// A v1 line that is not `PROXY TCP4|TCP6|UNKNOWN src dst sport dport`.
    #[error("malformed PROXY protocol v1 header")]
    V1,
    /// A v2 header with an unknown version or command, or addresses longer than its length.
    #[error("malformed PROXY protocol v2 header")]
    V2,
    /// The client closed the connection, or sent too slowly, before a whole header arrived.
    #[error("no complete PROXY protocol header in time")]
    Timeout,
    /// The connection failed while the header was read.
    #[error("connection failed while reading the PROXY protocol header")]
    Io,
}

/// Reads a header from the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, Invalid> {
    let v1 = b"PROXY ";
    let n = buf.len().min(v1.len());
    if buf[..n] == v1[..n] {
        return if buf.len() < v1.len() { Ok(Parsed::Incomplete) } else { parse_v1(buf) };
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return parse_v2(buf);
    }
    Err(Invalid::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, Invalid> {
    let window = &buf[..buf.len().min(MAX_V1)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= MAX_V1 { Err(Invalid::TooLong) } else { Ok(Parsed::Incomplete) };
    };
    let line = std::str::from_utf8(&window[..end]).map_err(|_| Invalid::V1)?;
    let fields: Vec<&str> = line.split(' ').collect();
    let addresses = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let (src, dst) = (ip(src)?, ip(dst)?);
            let v4 = *family == "TCP4";
            if src.is_ipv4() != v4 || dst.is_ipv4() != v4 {
                return Err(Invalid::V1);
            }
            Some((SocketAddr::new(src, port(sport)?), SocketAddr::new(dst, port(dport)?)))
        }
        _ => return Err(Invalid::V1),
    };
    Ok(Parsed::Complete(Header {
        len: end + 2,
        source: addresses.map(|a| a.0),
        destination: addresses.map(|a| a.1),
    }))
}

/// An address as v1 writes it: dotted quad or IPv6 text, nothing else (no zone, no brackets).
fn ip(s: &str) -> Result<IpAddr, Invalid> {
    if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':') {
        return Err(Invalid::V1);
    }
    s.parse().map_err(|_| Invalid::V1)
}

/// A port as v1 writes it: 1 to 5 digits, no leading zero, at most 65535.
fn port(s: &str) -> Result<u16, Invalid> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return Err(Invalid::V1);
    }
    s.parse().map_err(|_| Invalid::V1)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, Invalid> {
    let Some(fixed) = buf.get(..16) else { return Ok(Parsed::Incomplete) };
    let (version_command, family) = (fixed[12], fixed[13]);
    let len = 16 + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if version_command >> 4 != 2 {
        return Err(Invalid::V2);
    }
    if len > MAX_V2 {
        return Err(Invalid::TooLong);
    }
    let Some(header) = buf.get(..len) else { return Ok(Parsed::Incomplete) };
    let body = &header[16..];
    let addresses = match version_command & 0x0f {
        // LOCAL: the balancer's own connection (a health check); the peer is the client.
        0 => None,
        1 => match family {
            // TCP or UDP over IPv4.
            0x11 | 0x12 => {
                let a = body.get(..12).ok_or(Invalid::V2)?;
                let (src, dst) =
                    (Ipv4Addr::new(a[0], a[1], a[2], a[3]), Ipv4Addr::new(a[4], a[5], a[6], a[7]));
                Some((
                    SocketAddr::new(src.into(), u16::from_be_bytes([a[8], a[9]])),
                    SocketAddr::new(dst.into(), u16::from_be_bytes([a[10], a[11]])),
                ))
            }
            // TCP or UDP over IPv6.
            0x21 | 0x22 => {
                let a = body.get(..36).ok_or(Invalid::V2)?;
                let ip = |at: usize| {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(&a[at..at + 16]);
                    IpAddr::from(Ipv6Addr::from(octets))
                };
                Some((
                    SocketAddr::new(ip(0), u16::from_be_bytes([a[32], a[33]])),
                    SocketAddr::new(ip(16), u16::from_be_bytes([a[34], a[35]])),
                ))
            }
            // UNSPEC, or Unix sockets: no address the proxy can use.
            _ => None,
        },
        _ => return Err(Invalid::V2),
    };
    Ok(Parsed::Complete(Header { len, source: addresses.map(|a| a.0), destination: addresses.map(|a| a.1) }))
}

/// Reads a header from a connection's first bytes within `timeout`: the header, and whatever
/// arrived after it, which belongs to the connection.
pub(crate) async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Header, Vec<u8>), Invalid> {
    let read = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            if let Parsed::Complete(header) = parse(&buf)? {
                return Ok((header, buf.split_off(header.len)));
            }
            // Never read much past what a header can be.
            let want = (MAX_V2 + chunk.len()).saturating_sub(buf.len()).min(chunk.len());
            if want == 0 {
                return Err(Invalid::TooLong);
            }
            match stream.read(&mut chunk[..want]).await {
                Ok(0) => return Err(Invalid::Timeout),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Err(Invalid::Io),
            }
        }
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(Invalid::Timeout))
}

/// The client and local addresses of a connection whose header came from `peer`: the
/// header's when the peer is trusted (nginx's `set_real_ip_from` with `real_ip_header
/// proxy_protocol`) and the header has them, else `None` (the connection's own stand).
pub(crate) fn believed(
    header: &Header,
    peer: Option<SocketAddr>,
    trusted: &[ingress_core::Cidr],
) -> Option<(SocketAddr, SocketAddr)> {
    let peer = peer?;
    if !trusted.iter().any(|c| c.contains(peer.ip())) {
        return None;
    }
    Some((header.source?, header.destination?))
}

/// The v1 header naming `client` as the source and `local` (the address the client reached)
/// as the destination, as nginx's `proxy_protocol on` writes it.
pub(crate) fn v1(client: SocketAddr, local: SocketAddr) -> String {
    match (client.ip(), local.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            format!("PROXY TCP4 {s} {d} {} {}\r\n", client.port(), local.port())
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            format!("PROXY TCP6 {} {} {} {}\r\n", v6(s), v6(d), client.port(), local.port())
        }
    }
}

/// The fuzz target `proxy_protocol` (see `ingress_proxy::fuzz`): whatever the bytes, parsing
/// never panics; a complete header lies within the input and the limits, every shorter
/// prefix of it is incomplete, and the source it names survives a v1 round trip.
#[cfg(feature = "fuzzing")]
pub fn fuzz_header(data: &[u8]) {
    match parse(data) {
        Ok(Parsed::Complete(h)) => {
            assert!(h.len <= data.len() && h.len <= MAX_V2, "{h:?} for {} bytes", data.len());
            for n in 0..h.len {
                assert_eq!(parse(&data[..n]), Ok(Parsed::Incomplete), "prefix of {n} bytes");
            }
            if let Some(source) = h.source {
                let line = v1(source, source);
                let back = parse(line.as_bytes());
                let expected = Header { len: line.len(), source: Some(source), destination: Some(source) };
                assert_eq!(back, Ok(Parsed::Complete(expected)), "{line}");
            }
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < MAX_V2, "incomplete after {} bytes", data.len()),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn complete(buf: &[u8]) -> Header {
        match parse(buf) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v1_headers_give_the_source_and_their_length() {
        let h = complete(b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET /");
        assert_eq!((h.len, h.source), (41, Some(addr("192.0.2.7:56324"))));
        let h = complete(b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 80\r\n");
        assert_eq!(h.source, Some(addr("[2001:db8::7]:65535")));
        let h = complete(b"PROXY UNKNOWN whatever follows\r\n");
        assert_eq!((h.len, h.source), (32, None));
        // The longest v1 line the specification allows.
        let longest =
            format!("PROXY TCP6 {a} {a} 65535 65535\r\n", a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(longest.len(), MAX_V1 - 3);
        assert_eq!(complete(longest.as_bytes()).len, longest.len());
    }

    #[test]
    fn partial_headers_wait_for_more() {
        let full = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n";
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n]), Ok(Parsed::Incomplete), "{n} bytes");
        }
        let full = v2(1, 0x11, &[192, 0, 2, 7, 10, 0, 0, 1, 0x1f, 0x90, 0, 80]);
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n]), Ok(Parsed::Incomplete), "{n} bytes");
        }
        assert_eq!(complete(&full).source, Some(addr("192.0.2.7:8080")));
    }

    #[test]
    fn malformed_v1_headers_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443 extra\r\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
            b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 0443 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 443\r\n",
            b"PROXY TCP4 192.0.2.7  10.0.0.1 1 443\r\n",
            b"PROXY TCP4 [192.0.2.7] 10.0.0.1 1 443\r\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 443\r\n",
            b"PROXY tcp4 192.0.2.7 10.0.0.1 1 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 443\n",
            b"PROXY TCP4 192.0.2.\xff 10.0.0.1 1 443\r\n",
        ] {
            let result = parse(bad);
            assert!(
                result.is_err() || (result == Ok(Parsed::Incomplete) && !bad.ends_with(b"\r\n")),
                "{:?}: {result:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A line with no end within 107 bytes.
        let long = format!("PROXY UNKNOWN {}", "x".repeat(200));
        assert_eq!(parse(long.as_bytes()), Err(Invalid::TooLong));
        assert_eq!(parse(b"PROXY TCP4 192.0.2.7 10.0.0.1 1 443\n"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v2_headers_give_the_source_and_skip_their_tlvs() {
        let mut body = vec![192, 0, 2, 7, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb];
        body.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']); // a TLV
        let mut conn = v2(1, 0x11, &body);
        conn.extend_from_slice(b"GET /");
        let h = complete(&conn);
        assert_eq!((h.len, h.source), (16 + 18, Some(addr("192.0.2.7:56324"))));
        assert_eq!(h.destination, Some(addr("10.0.0.1:443")));

        let mut body = vec![0x20, 0x01, 0x0d, 0xb8];
        body.extend_from_slice(&[0; 11]);
        body.push(7);
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[0x00, 0x50, 0x01, 0xbb]);
        let h = complete(&v2(1, 0x21, &body));
        assert_eq!((h.source, h.destination), (Some(addr("[2001:db8::7]:80")), Some(addr("[::]:443"))));
        // LOCAL, UNSPEC and Unix sockets carry no usable address.
        assert_eq!(complete(&v2(0, 0x00, &[])).source, None);
        assert_eq!(complete(&v2(1, 0x00, &[])).source, None);
        assert_eq!(complete(&v2(1, 0x31, &[0; 216])).source, None);
    }

    #[test]
    fn malformed_v2_headers_are_refused() {
        // Version 1 in the version nibble, an unknown command, addresses cut short.
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert_eq!(parse(&bad_version), Err(Invalid::V2));
        assert_eq!(parse(&v2(2, 0x11, &[0; 12])), Err(Invalid::V2));
        assert_eq!(parse(&v2(1, 0x11, &[0; 11])), Err(Invalid::V2));
        assert_eq!(parse(&v2(1, 0x21, &[0; 35])), Err(Invalid::V2));
        // Longer than Ferry reads, refused before the body arrives.
        let huge = v2(1, 0x11, &[0; 2000]);
        assert_eq!(parse(&huge[..16]), Err(Invalid::TooLong));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIx"), Err(Invalid::Missing));
    }

    #[tokio::test]
    async fn read_keeps_what_follows_and_gives_up_on_slow_or_silent_clients() {
        let mut conn: &[u8] = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nhello";
        let (header, rest) = read(&mut conn, Duration::from_secs(1)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((header.source, rest.as_slice()), (Some(addr("192.0.2.7:56324")), &b"hello"[..]));
        assert_eq!(header.destination, Some(addr("10.0.0.1:443")));

        let mut closed: &[u8] = b"PROXY TCP4 192.0.2.7";
        assert_eq!(read(&mut closed, Duration::from_secs(1)).await, Err(Invalid::Timeout));

        let (mut client, mut server) = tokio::io::duplex(64);
        let slow = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = client.write_all(b"PROXY TCP4 ").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(client);
        });
        let started = std::time::Instant::now();
        assert_eq!(read(&mut server, Duration::from_millis(100)).await, Err(Invalid::Timeout));
        assert!(started.elapsed() < Duration::from_secs(2));
        slow.abort();
    }

    #[test]
    fn v1_writes_what_parse_reads() {
        for (client, local) in [
            ("192.0.2.7:56324", "10.0.0.1:443"),
            ("[2001:db8::7]:1", "[2001:db8::1]:80"),
            ("192.0.2.7:2", "[2001:db8::1]:80"),
        ] {
            let line = v1(addr(client), addr(local));
            let h = complete(line.as_bytes());
            assert_eq!(h.len, line.len());
            let expected = match addr(client) {
                SocketAddr::V4(v4) if addr(local).is_ipv6() => {
                    SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                }
                other => other,
            };
            assert_eq!(h.source, Some(expected), "{line}");
        }
    }
}
