//! Response heads on the fast path ([`super`]): parsed from the upstream's bytes, framed the
//! way RFC 9112 section 6.3 says, and written out again for the client.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};

/// Header lines a response may carry.
const MAX_HEADERS: usize = 128;

/// Connection-nominated response headers dropped; a response nominating more is refused.
const MAX_NOMINATED: usize = 16;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (`HEAD`, `204`, `304`).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked, relayed as is.
    Chunked,
    /// Until the upstream closes; relayed to the client chunked, so its connection survives.
    Close,
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
}

/// Parses the response head at the start of `buf` to a request (`head_request` for `HEAD`),
/// and on a final one writes the head the client gets into `out`: the upstream's status and
/// end-to-end headers, `Connection: close` when `close` (the client's connection ends after
/// it), chunked framing for a close-delimited body. Errors name what the upstream got wrong.
pub(crate) fn parse(
    buf: &[u8],
    head_request: bool,
    close: bool,
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
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err("malformed response head"),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err("malformed status line");
    };
    if status == 101 {
        return Err("101 answer to a request without Upgrade");
    }
    if (100..200).contains(&status) {
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
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length");
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
                } else if !token.eq_ignore_ascii_case("keep-alive") {
                    let slot = nominated.get_mut(nominated_len).ok_or("too many Connection tokens")?;
                    *slot = token;
                    nominated_len += 1;
                }
            }
        }
    }
    if chunked && length.is_some() {
        // Both framings at once is how smuggling attempts look (RFC 9112 section 6.3): the
        // chunks frame this response, and the connection is not used again.
        keep_alive = false;
    }
    let framing = if head_request || matches!(status, 204 | 304) {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::Close
    };

    out.clear();
    let reason = resp
        .reason
        .filter(|r| !r.is_empty())
        .or_else(|| http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()));
    // `itoa` rather than `write!`: the formatting machinery showed in profiles.
    let mut digits = itoa::Buffer::new();
    for part in
        [&b"HTTP/1.1 "[..], digits.format(status).as_bytes(), b" ", reason.unwrap_or("").as_bytes(), b"\r\n"]
    {
        out.extend_from_slice(part);
    }
    let nominated = &nominated[..nominated_len];
    for h in resp.headers.iter() {
        let name = h.name;
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        // Framing headers are the proxy's to write (below), whatever `Connection` nominates;
        // a bodyless response keeps them, they describe the resource. `Date` is the proxy's
        // own, as with Pingora and nginx.
        let framing_header = is("content-length") || is("transfer-encoding");
        let skip = if framing_header {
            framing != Framing::Empty
        } else {
            is("date")
                || ["connection", "keep-alive", "proxy-connection", "upgrade"]
                    .into_iter()
                    .chain(nominated.iter().copied())
                    .any(is)
        };
        if !skip {
            for part in [name.as_bytes(), b": ", h.value, b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
    }
    match framing {
        Framing::Length(n) => {
            for part in [&b"content-length: "[..], digits.format(n).as_bytes(), b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
        Framing::Chunked | Framing::Close => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty => {}
    }
    end_head(out, close);
    Ok(Parsed::Final(Final { len, status, framing, keep_alive }))
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
                Ok(httparse::Status::Partial) => return buf.len() > MAX_EARLY,
                _ => return true,
            }
        };
        buf.advance(interim);
    }
}

/// Bytes of an unfinished response head tolerated while the body is still being sent.
const MAX_EARLY: usize = 64 * 1024;

/// Ends a response head the proxy writes: its own `Date` (cached per second, as Pingora keeps
/// it), `Connection` as Pingora and nginx send it, and the blank line.
pub(crate) fn end_head(out: &mut Vec<u8>, close: bool) {
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(pingora::protocols::http::date::get_cached_date().as_bytes());
    let tail: &[u8] =
        if close { b"\r\nconnection: close\r\n\r\n" } else { b"\r\nconnection: keep-alive\r\n\r\n" };
    out.extend_from_slice(tail);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// The final head and what the client gets, its (per-second) `date` line masked.
    fn final_head(raw: &[u8], head_request: bool, close: bool) -> (Final, String) {
        let mut out = Vec::new();
        match parse(raw, head_request, close, &mut out).unwrap() {
            Parsed::Final(f) => {
                let text = String::from_utf8(out).unwrap();
                let masked: Vec<&str> =
                    text.split("\r\n").map(|l| if l.starts_with("date: ") { "date: *" } else { l }).collect();
                (f, masked.join("\r\n"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let (f, out) = final_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n\r\nhello",
            false,
            false,
        );
        assert_eq!((f.status, f.framing, f.keep_alive), (200, Framing::Length(5), true));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nX-A: b\r\ncontent-length: 5\r\ndate: *\r\nconnection: keep-alive\r\n\r\n"
        );
        assert_eq!(f.len, 83);

        let (f, out) = final_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n",
            false,
            true,
        );
        assert_eq!((f.framing, f.keep_alive), (Framing::Chunked, true));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: *\r\nconnection: close\r\n\r\n"
        );

        let (f, out) = final_head(b"HTTP/1.0 200 Fine\r\n\r\n", false, false);
        assert_eq!((f.framing, f.keep_alive), (Framing::Close, false));
        assert_eq!(
            out,
            "HTTP/1.1 200 Fine\r\ntransfer-encoding: chunked\r\ndate: *\r\nconnection: keep-alive\r\n\r\n"
        );

        // A bodyless response keeps the length of the resource it describes.
        let (f, out) = final_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, false);
        assert_eq!(f.framing, Framing::Empty);
        assert!(out.contains("\r\nContent-Length: 1000\r\n"), "{out}");
        let (f, out) = final_head(b"HTTP/1.1 304 \r\nConnection: close\r\n\r\n", false, false);
        assert_eq!((f.framing, f.keep_alive), (Framing::Empty, false));
        assert_eq!(out, "HTTP/1.1 304 Not Modified\r\ndate: *\r\nconnection: keep-alive\r\n\r\n");
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
    fn framing_headers_survive_nomination_and_double_framing_is_not_reused() {
        // `Connection` may not strip the framing the body is relayed in.
        let (f, out) = final_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\n",
            false,
            false,
        );
        assert_eq!(f.framing, Framing::Length(5));
        assert!(out.contains("\r\ncontent-length: 5\r\n"), "{out}");
        let (f, out) = final_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n",
            false,
            false,
        );
        assert_eq!(f.framing, Framing::Chunked);
        assert!(out.contains("\r\ntransfer-encoding: chunked\r\n"), "{out}");
        // Chunked and a length: the chunks frame it, the connection is not pooled again.
        let (f, out) = final_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            false,
        );
        assert_eq!((f.framing, f.keep_alive), (Framing::Chunked, false));
        assert!(!out.to_ascii_lowercase().contains("content-length"), "{out}");
    }

    #[test]
    fn interim_partial_and_broken_heads() {
        let mut out = Vec::new();
        assert_eq!(
            parse(b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1", false, false, &mut out),
            Ok(Parsed::Interim(37))
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-", false, false, &mut out), Ok(Parsed::Partial));
        for bad in [
            &b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(parse(bad, false, false, &mut out).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
