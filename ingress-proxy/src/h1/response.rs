//! Response heads ([`super`]): parsed from the upstream's bytes, framed the way RFC 9112
//! section 6.3 says, and written out again for the client with the route's edits.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};

use crate::pipeline::edits::ResponseEdits;

/// Header lines a response may carry.
const MAX_HEADERS: usize = 128;

/// The longest response head relayed; a longer one is answered 502 (nginx's "upstream sent too
/// big header").
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Connection-nominated response headers dropped; a response nominating more is refused.
const MAX_NOMINATED: usize = 16;

/// Response headers that describe one hop: never relayed as the upstream sent them.
const HOP_BY_HOP: [&str; 3] = ["connection", "keep-alive", "proxy-connection"];

/// How the response body is delimited, and how it goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (`HEAD`, `204`, `304`).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked, relayed as sent once checked.
    Chunked,
    /// Chunked, decoded for an HTTP/1.0 client and ended by closing its connection.
    Dechunk,
    /// Until the upstream closes; re-chunked for an HTTP/1.1 client, so its connection
    /// survives.
    Rechunk,
    /// Until the upstream closes, relayed as is to an HTTP/1.0 client (then closed).
    Raw,
}

/// A final response head, written out for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Final {
    /// Bytes of the head in the upstream buffer.
    pub(crate) len: usize,
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// The upstream lets the connection be used again (HTTP/1.1, no `Connection: close`).
    pub(crate) keep_alive: bool,
    /// The client's connection ends after this response.
    pub(crate) close: bool,
}

/// What the start of the upstream buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not a complete head yet.
    Partial,
    /// An interim (1xx) response of this many bytes, dropped as nginx drops them.
    Interim(usize),
    /// The final response; its head for the client is in the output buffer.
    Final(Final),
    /// `101` to an upgrade request, a head of this many bytes; its head for the client is in
    /// the output buffer.
    Switching(usize),
}

/// What the response head depends on in the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked {
    /// The request was `HEAD`.
    pub(crate) head: bool,
    /// The client speaks HTTP/1.1 (`1`) or HTTP/1.0 (`0`).
    pub(crate) minor: u8,
    /// The client's connection ends after this response whatever it says.
    pub(crate) close: bool,
    /// The request asked to switch protocols.
    pub(crate) upgrade: bool,
}

/// Parses the response head at the start of `buf`, and on a final or switching one writes the
/// head the client gets into `out`: the upstream's status and end-to-end headers as `edits`
/// keeps them, the route's lines, the framing the client gets, `Date` and `Connection`.
/// Errors name what the upstream got wrong (the exchange answers them `502`).
pub(crate) fn parse(
    buf: &[u8],
    asked: &Asked,
    edits: &ResponseEdits<'_>,
    out: &mut Vec<u8>,
) -> Result<Parsed, &'static str> {
    // Left uninitialized: zeroing 128 header slots per response showed in profiles.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return Err("response head too large"),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err("response head too large"),
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err("malformed response head"),
    };
    let (Some(version), Some(status @ 100..)) = (resp.version, resp.code) else {
        // httparse takes any three digits; a status below 100 is no status.
        return Err("malformed status line");
    };
    let edits = &edits.at(status);
    if status == 101 && !asked.upgrade {
        return Err("101 answer to a request without Upgrade");
    }
    if (100..200).contains(&status) && status != 101 {
        return Ok(Parsed::Interim(len));
    }
    let mut keep_alive = version == 1;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut nominated = [""; MAX_NOMINATED];
    let mut nominated_len = 0;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            if length.is_some() {
                // As nginx: even an equal second line is one too many.
                return Err("duplicate Content-Length");
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // As nginx: only `chunked` is understood.
            if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err("unknown Transfer-Encoding");
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let Ok(tokens) = std::str::from_utf8(h.value) else {
                // Unreadable: whatever it nominates cannot be honoured, so nothing is reused.
                keep_alive = false;
                continue;
            };
            for token in tokens.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if !token.eq_ignore_ascii_case("keep-alive") && !token.eq_ignore_ascii_case("upgrade")
                {
                    let slot = nominated.get_mut(nominated_len).ok_or("too many Connection tokens")?;
                    *slot = token;
                    nominated_len += 1;
                }
            }
        }
    }
    let nominated = &nominated[..nominated_len];
    let digits = &mut itoa::Buffer::new();
    // `itoa` rather than `write!`: the formatting machinery showed in profiles.
    let reason = resp
        .reason
        .filter(|r| !r.is_empty())
        .or_else(|| http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()));
    out.clear();
    for part in
        [&b"HTTP/1.1 "[..], digits.format(status).as_bytes(), b" ", reason.unwrap_or("").as_bytes(), b"\r\n"]
    {
        out.extend_from_slice(part);
    }

    if status == 101 {
        // The upstream's `Upgrade` says what the connection now speaks.
        let keep = Keep { content_length: false, transfer_encoding: false, upgrade: true };
        write_headers(resp.headers, nominated, keep, edits, out);
        add_lines(edits, out);
        date(out);
        out.extend_from_slice(b"connection: upgrade\r\n\r\n");
        return Ok(Parsed::Switching(len));
    }

    if chunked && length.is_some() {
        // Both framings at once is how smuggling attempts look (RFC 9112 section 6.3); nginx
        // refuses such a response too.
        return Err("Content-Length and Transfer-Encoding together");
    }
    let http10 = asked.minor == 0;
    let framing = if asked.head || matches!(status, 204 | 304) {
        Framing::Empty
    } else if chunked {
        if http10 { Framing::Dechunk } else { Framing::Chunked }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        if http10 { Framing::Raw } else { Framing::Rechunk }
    };
    let close = asked.close || matches!(framing, Framing::Dechunk | Framing::Raw);
    // Framing headers are the proxy's to write (below), whatever `Connection` nominates; a
    // bodyless response keeps its `Content-Length`, which describes the resource. `Date` is
    // the proxy's own, as with Pingora and nginx.
    let empty = framing == Framing::Empty;
    let keep = Keep { content_length: empty, transfer_encoding: empty && !http10, upgrade: false };
    write_headers(resp.headers, nominated, keep, edits, out);
    add_lines(edits, out);
    match framing {
        Framing::Length(n) => {
            for part in [&b"content-length: "[..], digits.format(n).as_bytes(), b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
        Framing::Chunked | Framing::Rechunk => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Dechunk | Framing::Raw => {}
    }
    end_head(out, close);
    Ok(Parsed::Final(Final { len, status, framing, keep_alive, close }))
}

fn is(name: &str, other: &str) -> bool {
    name.eq_ignore_ascii_case(other)
}

/// Which of the headers the proxy otherwise writes itself keep the upstream's line.
#[derive(Debug, Clone, Copy)]
struct Keep {
    content_length: bool,
    transfer_encoding: bool,
    upgrade: bool,
}

/// Writes the upstream's header lines that go to the client: not hop-by-hop, not nominated by
/// its `Connection`, not `Date`, and kept by `edits`; `keep` decides the framing and upgrade
/// headers.
fn write_headers(
    headers: &[httparse::Header<'_>],
    nominated: &[&str],
    keep: Keep,
    edits: &ResponseEdits<'_>,
    out: &mut Vec<u8>,
) {
    for h in headers {
        let name = h.name;
        let keep = if is(name, "content-length") {
            keep.content_length
        } else if is(name, "transfer-encoding") {
            keep.transfer_encoding
        } else if is(name, "upgrade") {
            keep.upgrade
        } else {
            !is(name, "date")
                && !HOP_BY_HOP.iter().any(|n| is(name, n))
                && !nominated.iter().any(|n| is(name, n))
                && (edits.is_empty() || edits.keeps(name))
        };
        if keep {
            let rewritten = edits.rewritten(name, h.value);
            let value = rewritten.as_ref().map_or(h.value, |v| v.as_bytes());
            for part in [name.as_bytes(), b": ", value, b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
    }
}

/// Appends the route's response lines.
fn add_lines(edits: &ResponseEdits<'_>, out: &mut Vec<u8>) {
    edits.added(|name, value| super::request::line(out, name.as_bytes(), value));
}

/// Drops the complete interim (1xx) responses at the start of `buf`, which the upstream may
/// send while the request body is still going out; tells whether what follows is a final
/// response head, complete (or bytes that cannot become one, which the exchange then reports).
pub(crate) fn skip_interim(buf: &mut BytesMut) -> bool {
    loop {
        let interim = {
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut resp,
                buf,
                &mut headers,
            ) {
                Ok(httparse::Status::Complete(len))
                    if resp.code.is_some_and(|c| (100..200).contains(&c) && c != 101) =>
                {
                    len
                }
                Ok(httparse::Status::Partial) => return buf.len() > MAX_HEAD,
                _ => return true,
            }
        };
        buf.advance(interim);
    }
}

/// Appends the proxy's `Date` line (cached per second, as Pingora keeps it).
fn date(out: &mut Vec<u8>) {
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(pingora::protocols::http::date::get_cached_date().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Ends a response head the proxy writes: its own `Date`, `Connection` as nginx sends it, and
/// the blank line.
pub(crate) fn end_head(out: &mut Vec<u8>, close: bool) {
    date(out);
    let tail: &[u8] = if close { b"connection: close\r\n\r\n" } else { b"connection: keep-alive\r\n\r\n" };
    out.extend_from_slice(tail);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use ingress_core::HeaderOp;

    const GET: Asked = Asked { head: false, minor: 1, close: false, upgrade: false };
    const NO_EDITS: ResponseEdits<'static> = ResponseEdits {
        hsts: None,
        cors: None,
        global: &[],
        route: &[],
        rewrites: None,
        auth: &[],
        auth_always: false,
        set_cookie: None,
    };

    /// The final head and what the client gets, its (per-second) `date` line masked.
    fn final_head(raw: &[u8], asked: Asked) -> (Final, String) {
        let mut out = Vec::new();
        match parse(raw, &asked, &NO_EDITS, &mut out).unwrap() {
            Parsed::Final(f) => (f, masked(out)),
            other => panic!("{other:?}"),
        }
    }

    fn masked(out: Vec<u8>) -> String {
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> =
            text.split("\r\n").map(|l| if l.starts_with("date: ") { "date: *" } else { l }).collect();
        lines.join("\r\n")
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let (f, out) = final_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n\r\nhello",
            GET,
        );
        assert_eq!((f.status, f.framing, f.keep_alive, f.close), (200, Framing::Length(5), true, false));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nX-A: b\r\ncontent-length: 5\r\ndate: *\r\nconnection: keep-alive\r\n\r\n"
        );
        assert_eq!(f.len, 83);

        let (f, out) = final_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n",
            Asked { close: true, ..GET },
        );
        assert_eq!((f.framing, f.keep_alive, f.close), (Framing::Chunked, true, true));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: *\r\nconnection: close\r\n\r\n"
        );

        let (f, out) = final_head(b"HTTP/1.0 200 Fine\r\n\r\n", GET);
        assert_eq!((f.framing, f.keep_alive), (Framing::Rechunk, false));
        assert_eq!(
            out,
            "HTTP/1.1 200 Fine\r\ntransfer-encoding: chunked\r\ndate: *\r\nconnection: keep-alive\r\n\r\n"
        );

        // A bodyless response keeps the length of the resource it describes.
        let (f, out) =
            final_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", Asked { head: true, ..GET });
        assert_eq!(f.framing, Framing::Empty);
        assert!(out.contains("\r\nContent-Length: 1000\r\n"), "{out}");
        let (f, out) = final_head(b"HTTP/1.1 304 \r\nConnection: close\r\n\r\n", GET);
        assert_eq!((f.framing, f.keep_alive), (Framing::Empty, false));
        assert_eq!(out, "HTTP/1.1 304 Not Modified\r\ndate: *\r\nconnection: keep-alive\r\n\r\n");
    }

    #[test]
    fn http_1_0_clients_get_close_delimited_bodies() {
        let ten = Asked { minor: 0, ..GET };
        let (f, out) = final_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ten);
        assert_eq!((f.framing, f.close), (Framing::Dechunk, true));
        assert_eq!(out, "HTTP/1.1 200 OK\r\ndate: *\r\nconnection: close\r\n\r\n");
        let (f, _) = final_head(b"HTTP/1.1 200 OK\r\n\r\n", ten);
        assert_eq!((f.framing, f.close), (Framing::Raw, true));
        let (f, out) = final_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ten);
        assert_eq!((f.framing, f.close), (Framing::Length(2), false));
        assert!(out.ends_with("connection: keep-alive\r\n\r\n"), "{out}");
    }

    #[test]
    fn route_edits_and_switching() {
        let route = [HeaderOp::set("x-frame-options", "DENY").unwrap(), HeaderOp::remove("server").unwrap()];
        let edits = ResponseEdits { route: &route, ..ResponseEdits::default() };
        let mut out = Vec::new();
        let raw = b"HTTP/1.1 200 OK\r\nServer: x\r\nX-Frame-Options: ALLOW\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(parse(raw, &GET, &edits, &mut out), Ok(Parsed::Final(_))));
        let out = masked(out);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nx-frame-options: DENY\r\ncontent-length: 0\r\ndate: *\r\nconnection: keep-alive\r\n\r\n"
        );

        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: k\r\n\r\n";
        let mut out = Vec::new();
        assert_eq!(
            parse(raw, &Asked { upgrade: true, ..GET }, &NO_EDITS, &mut out),
            Ok(Parsed::Switching(raw.len()))
        );
        assert_eq!(
            masked(out),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: k\r\ndate: *\r\nconnection: upgrade\r\n\r\n"
        );
        assert!(parse(raw, &GET, &NO_EDITS, &mut Vec::new()).is_err(), "101 without an upgrade request");
    }

    #[test]
    fn interim_responses_during_an_upload_are_dropped() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 2"[..],
        );
        assert!(!skip_interim(&mut buf), "a partial final head is not final yet");
        assert_eq!(&buf[..], b"HTTP/1.1 2");
        buf.extend_from_slice(b"00 OK\r\n\r\n");
        assert!(skip_interim(&mut buf));
        assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(skip_interim(&mut BytesMut::from(&b"garbage\r\n\r\n"[..])));
    }

    #[test]
    fn framing_headers_survive_nomination() {
        let (f, out) =
            final_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\n", GET);
        assert_eq!(f.framing, Framing::Length(5));
        assert!(out.contains("\r\ncontent-length: 5\r\n"), "{out}");
        let (f, out) = final_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n",
            GET,
        );
        assert_eq!(f.framing, Framing::Chunked);
        assert!(out.contains("\r\ntransfer-encoding: chunked\r\n"), "{out}");
    }

    #[test]
    fn interim_partial_and_broken_heads() {
        let mut out = Vec::new();
        assert_eq!(
            parse(b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1", &GET, &NO_EDITS, &mut out),
            Ok(Parsed::Interim(37))
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-", &GET, &NO_EDITS, &mut out), Ok(Parsed::Partial));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
            // Found by the response_head fuzz target: written back as `HTTP/1.1 99`.
            b"HTTP/1.1 099 X\r\n\r\n",
            b"HTTP/1.0 000 \r\n\r\n",
        ] {
            assert!(parse(bad, &GET, &NO_EDITS, &mut out).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
