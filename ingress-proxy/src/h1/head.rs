//! Request heads on the fast path ([`super`]): parsed in place in the client's buffer, checked
//! against what the fast path serves, and written out again for the upstream.

use std::mem::MaybeUninit;

/// Header lines a fast-path request may carry; a request with more goes to Pingora.
pub(crate) const MAX_HEADERS: usize = 100;

/// Room for a request's header lines, left uninitialized: filling 100 of them with empty
/// headers first cost a 3 KiB `memset` per request.
pub(crate) type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Fresh [`HeaderSlots`].
pub(crate) fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Connection-nominated headers (`Connection: x-a, x-b`) the fast path drops itself; a
/// request nominating more goes to Pingora.
const MAX_NOMINATED: usize = 8;

/// The longest client `X-Request-ID` kept (as [`crate::headers::request_id`] does).
const MAX_REQUEST_ID: usize = 200;

/// What a look at the start of the client's buffer found.
// Short-lived on the stack, once per request: boxing the large variant would allocate instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed<'b> {
    /// A complete request the fast path serves.
    Fast(Head<'b>),
    /// The head is not complete yet.
    Partial,
    /// Anything else (a body, an upgrade, HTTP/1.0, an absolute target, a malformed head…):
    /// Pingora's HTTP/1 session reads it, and answers what is malformed.
    Other,
}

/// A bodyless HTTP/1.1 request with an origin-form target and exactly one `Host`.
#[derive(Debug)]
pub(crate) struct Head<'b> {
    /// Bytes of the head in the buffer; the next request starts there.
    pub(crate) len: usize,
    pub(crate) method: &'b str,
    /// Path and query, as sent.
    pub(crate) target: &'b str,
    /// The path routed on: the target without its query.
    pub(crate) path: &'b str,
    pub(crate) host: &'b str,
    /// The client asked to close the connection after this request.
    pub(crate) close: bool,
    /// The client's usable `X-Request-ID`, if it sent one.
    pub(crate) request_id: Option<&'b [u8]>,
    /// How the request body is delimited.
    pub(crate) body: BodyFraming,
    headers: &'b [httparse::Header<'b>],
    /// The first `X-Forwarded-For`, appended to as [`crate::headers::set_forwarded`] does.
    forwarded_for: Option<&'b str>,
    nominated: [&'b str; MAX_NOMINATED],
    nominated_len: usize,
}

/// How a request body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, relayed as is.
    Chunked,
}

/// What the forwarding headers say about the client's connection (formatted once per
/// connection, not per request), and the request's id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarding<'a> {
    /// The client's IP address, as text.
    pub(crate) client: Option<&'a str>,
    pub(crate) tls: bool,
    /// The local port the client connected to, as text.
    pub(crate) port: Option<&'a str>,
    pub(crate) request_id: &'a [u8],
}

/// Parses the request at the start of `buf`, and tells whether the fast path serves it.
pub(crate) fn parse<'b>(buf: &'b [u8], headers: &'b mut HeaderSlots<'b>) -> Parsed<'b> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    // Only targets `http::Uri` takes verbatim: visible ASCII, no fragment.
    if method == "CONNECT"
        || !target.starts_with('/')
        || !target.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'#')
    {
        return Parsed::Other;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let headers: &'b [httparse::Header<'b>] = req.headers;
    let mut head = Head {
        len,
        method,
        target,
        path,
        host: "",
        close: false,
        request_id: None,
        body: BodyFraming::None,
        headers,
        forwarded_for: None,
        nominated: [""; MAX_NOMINATED],
        nominated_len: 0,
    };
    let (mut hosts, mut lengths, mut seen_id, mut seen_xff) = (0, 0, false, false);
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            head.host = visible(h.value).unwrap_or("");
        } else if name.eq_ignore_ascii_case("content-length") {
            // One plain decimal length; repeated, listed or odd lengths are Pingora's to judge.
            let length = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (length, head.body, lengths) {
                (Some(0), BodyFraming::None, 0) => {}
                (Some(n), BodyFraming::None, 0) => head.body = BodyFraming::Length(n),
                _ => return Parsed::Other,
            }
            lengths += 1;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only a lone `chunked`; any other coding, or chunked beside a length, goes to
            // Pingora (RFC 9112 section 6.3 makes the pair an error to be handled with care).
            if head.body != BodyFraming::None
                || lengths > 0
                || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked")
            {
                return Parsed::Other;
            }
            head.body = BodyFraming::Chunked;
        } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
            return Parsed::Other;
        } else if name.eq_ignore_ascii_case("connection") {
            let Some(tokens) = visible(h.value) else { return Parsed::Other };
            for token in tokens.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if token.eq_ignore_ascii_case("close") {
                    head.close = true;
                } else if !token.eq_ignore_ascii_case("keep-alive") && crate::headers::may_be_nominated(token)
                {
                    let Some(slot) = head.nominated.get_mut(head.nominated_len) else { return Parsed::Other };
                    *slot = token;
                    head.nominated_len += 1;
                }
            }
        } else if name.eq_ignore_ascii_case(crate::headers::X_REQUEST_ID) && !seen_id {
            seen_id = true;
            head.request_id = Some(h.value).filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") && !seen_xff {
            seen_xff = true;
            head.forwarded_for = visible(h.value).map(str::trim).filter(|v| !v.is_empty());
        }
    }
    if hosts != 1 || head.host.is_empty() {
        return Parsed::Other;
    }
    Parsed::Fast(head)
}

/// `value` as text, if it is what `http::HeaderValue::to_str` accepts (visible ASCII, space
/// and tab).
fn visible(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

impl Head<'_> {
    /// Whether a request may be sent again after a pooled connection failed under it.
    pub(crate) fn is_idempotent(&self) -> bool {
        matches!(self.method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE")
    }

    /// Writes the request as it goes upstream into `out`: HTTP/1.1, the client's end-to-end
    /// headers in their order and spelling, then the forwarding headers (the rules of
    /// [`crate::headers::set_forwarded`]).
    pub(crate) fn write_upstream(&self, f: &Forwarding<'_>, out: &mut Vec<u8>) {
        out.clear();
        for part in [self.method.as_bytes(), b" ", self.target.as_bytes(), b" HTTP/1.1\r\n"] {
            out.extend_from_slice(part);
        }
        for h in self.headers.iter().filter(|h| !self.dropped(h.name, f)) {
            line(out, h.name.as_bytes(), h.value);
        }
        if let Some(ip) = f.client {
            out.extend_from_slice(b"x-forwarded-for: ");
            if let Some(prior) = self.forwarded_for {
                out.extend_from_slice(prior.as_bytes());
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(ip.as_bytes());
            out.extend_from_slice(b"\r\n");
            line(out, b"x-real-ip", ip.as_bytes());
        }
        line(out, b"x-forwarded-proto", if f.tls { b"https" } else { b"http" });
        line(out, b"x-forwarded-host", self.host.as_bytes());
        if let Some(port) = f.port {
            line(out, b"x-forwarded-port", port.as_bytes());
        }
        line(out, crate::headers::X_REQUEST_ID.as_bytes(), f.request_id);
        if self.body == BodyFraming::Chunked {
            // The client's `Transfer-Encoding` line went with the hop-by-hop headers.
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Whether a client header stays behind: hop-by-hop, nominated by `Connection`, or one the
    /// proxy sets itself.
    fn dropped(&self, name: &str, f: &Forwarding<'_>) -> bool {
        let replaced: &[&str] = if f.client.is_some() {
            &["x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host", "x-request-id"]
        } else {
            &["x-forwarded-proto", "x-forwarded-host", "x-request-id"]
        };
        crate::headers::HOP_BY_HOP.iter().chain(replaced).any(|n| name.eq_ignore_ascii_case(n))
            || (f.port.is_some() && name.eq_ignore_ascii_case("x-forwarded-port"))
            || self.nominated[..self.nominated_len].iter().any(|n| name.eq_ignore_ascii_case(n))
    }
}

/// Appends `name: value\r\n`.
fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    for part in [name, b": ", value, b"\r\n"] {
        out.extend_from_slice(part);
    }
}

/// A new request id: 128 random bits as 32 hex digits (the shape of ingress-nginx's
/// `$req_id`).
pub(crate) fn new_request_id() -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>();
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().enumerate() {
        *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    id
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn fast(raw: &[u8]) -> (usize, String, bool) {
        let mut headers = header_slots();
        match parse(raw, &mut headers) {
            Parsed::Fast(head) => {
                let f =
                    Forwarding { client: Some("10.0.0.9"), tls: true, port: Some("443"), request_id: b"rid" };
                let mut out = Vec::new();
                head.write_upstream(&f, &mut out);
                (head.len, String::from_utf8(out).unwrap(), head.close)
            }
            other => panic!("not fast: {other:?}"),
        }
    }

    fn kind(raw: &[u8]) -> &'static str {
        let mut headers = header_slots();
        match parse(raw, &mut headers) {
            Parsed::Fast(_) => "fast",
            Parsed::Partial => "partial",
            Parsed::Other => "other",
        }
    }

    #[test]
    fn upstream_request_keeps_end_to_end_headers_and_sets_forwarding() {
        let raw = b"GET /a/b?q=1 HTTP/1.1\r\nHost: Demo.example.com:8080\r\nConnection: keep-alive, X-Secret\r\n\
            X-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Forwarded-For: 203.0.113.9\r\n\
            X-Forwarded-Proto: http\r\nX-Real-IP: 1.2.3.4\r\nAccept: */*\r\nx-request-id: old\r\n\r\nGET /next";
        let (len, up, close) = fast(raw);
        assert_eq!(&raw[len..], b"GET /next");
        assert!(!close);
        assert_eq!(
            up,
            "GET /a/b?q=1 HTTP/1.1\r\nHost: Demo.example.com:8080\r\nAccept: */*\r\n\
             x-forwarded-for: 203.0.113.9, 10.0.0.9\r\nx-real-ip: 10.0.0.9\r\nx-forwarded-proto: https\r\n\
             x-forwarded-host: Demo.example.com:8080\r\nx-forwarded-port: 443\r\nx-request-id: rid\r\n\r\n"
        );
    }

    #[test]
    fn connection_close_and_route_path() {
        let raw = b"HEAD /p%20q?x HTTP/1.1\r\nhost: h\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n";
        let mut headers = header_slots();
        let Parsed::Fast(head) = parse(raw, &mut headers) else { panic!("not fast") };
        assert_eq!((head.path, head.target, head.host, head.close), ("/p%20q", "/p%20q?x", "h", true));
        assert!(head.is_idempotent());
        assert!(fast(raw).1.contains("content-length: 0\r\n"));
    }

    #[test]
    fn what_the_fast_path_leaves_to_pingora() {
        assert_eq!(kind(b"GET / HTTP/1.1\r\nHost: h\r\n"), "partial");
        for other in [
            &b"GET / HTTP/1.0\r\nHost: h\r\n\r\n"[..],
            b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: a,b,c,d,e,f,g,h,i\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert_eq!(kind(other), "other", "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn bodies_are_framed_by_one_length_or_chunked() {
        let framing = |raw: &[u8]| {
            let mut headers = header_slots();
            match parse(raw, &mut headers) {
                Parsed::Fast(head) => head.body,
                other => panic!("not fast: {other:?}"),
            }
        };
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"),
            BodyFraming::Length(3)
        );
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), BodyFraming::None);
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding:  Chunked \r\n\r\n"),
            BodyFraming::Chunked
        );
        // A chunked body goes upstream chunked, with the proxy's own framing line.
        let (_, up, _) = fast(b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(up.matches("transfer-encoding").count(), 1, "{up}");
        assert!(up.ends_with("transfer-encoding: chunked\r\n\r\n"), "{up}");
    }

    #[test]
    fn connection_cannot_strip_framing_or_host() {
        let (_, up, _) = fast(
            b"POST /u HTTP/1.1\r\nHost: h\r\nConnection: content-length, host, x-gone\r\nX-Gone: 1\r\n\
              Content-Length: 4\r\n\r\nbody",
        );
        assert!(up.starts_with("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"), "{up}");
        assert!(!up.contains("X-Gone"), "{up}");
    }

    #[test]
    fn generated_request_ids_are_32_hex_digits() {
        let (a, b) = (new_request_id(), new_request_id());
        assert!(a.iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
    }
}
