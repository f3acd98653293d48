//! Request heads ([`super`]): parsed in place in the client's buffer and checked the way nginx
//! checks them, so that whatever goes upstream has exactly one reading.
//!
//! Refused, with the status nginx gives (and the connection closed):
//! - a malformed head (httparse is strict: one space between request-line parts, token
//!   names, no obs-fold, no control bytes in values) → `400`; a version other than 1.0/1.1 →
//!   `505`;
//! - a request line longer than a large header buffer → `414`; a header line longer, a head
//!   longer than all the buffers together, or more than [`MAX_HEADERS`] lines → `431`;
//! - a target that is not origin-form or `http(s)` absolute-form (`*`, authority-form) → `400`;
//!   `CONNECT` and `TRACE` → `405`;
//! - HTTP/1.1 without `Host`, two `Host`s, or a host that is empty, has whitespace, control
//!   bytes, `/`, `\`, userinfo (`@`), `..` or a port that is not a number → `400`;
//! - two `Content-Length`s (even equal), a list, or anything but digits → `400`;
//! - `Transfer-Encoding` with `Content-Length`, in HTTP/1.0, or twice → `400`; any coding but
//!   a lone `chunked` → `501`.

use std::mem::MaybeUninit;

use super::target::{split_target, valid_host};
use crate::pipeline::edits::{X_REQUEST_ID, is_valid_name, may_be_nominated, usable_request_id};

/// Header lines a request may carry; more is refused with `431`.
pub(crate) const MAX_HEADERS: usize = 128;

/// Room for a request's header lines, left uninitialized: filling them with empty headers
/// first cost a `memset` per request.
pub(crate) type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Fresh [`HeaderSlots`].
pub(crate) fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Connection-nominated headers (`Connection: x-a, x-b`) a request may name.
const MAX_NOMINATED: usize = 16;

/// How long a request head may get (nginx's `large_client_header_buffers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadLimits {
    /// The longest request line or header line, line end included.
    pub(crate) line: usize,
    /// The longest head.
    pub(crate) total: usize,
}

/// What a look at the start of the client's buffer found.
// Short-lived on the stack, once per request: boxing the large variant would allocate instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed<'b> {
    /// A complete, valid request head.
    Request(Head<'b>),
    /// The head is not complete yet (and within the limits so far).
    Partial,
    /// Refused: answer this and close the connection.
    Refused(Refusal),
}

/// Why a request head is refused, and the status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) why: &'static str,
}

/// A checked request head.
#[derive(Debug)]
pub(crate) struct Head<'b> {
    /// Bytes of the head in the buffer; the body (or the next request) starts there.
    pub(crate) len: usize,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub(crate) minor: u8,
    pub(crate) method: &'b str,
    /// The target in origin form (path and query), as it goes upstream.
    pub(crate) origin_form: &'b str,
    /// The host the request is for: the absolute-form target's authority, else `Host` (empty
    /// for HTTP/1.0 without one).
    pub(crate) host: &'b str,
    /// The host came from an absolute-form target: the `Host` line is replaced upstream
    /// (RFC 9112 section 3.2.2).
    pub(crate) absolute: bool,
    /// The client will not send another request on the connection after this one.
    pub(crate) close: bool,
    /// The client's usable `X-Request-ID`, if it sent one.
    pub(crate) request_id: Option<&'b [u8]>,
    /// How the request body is delimited.
    pub(crate) body: BodyFraming,
    /// The client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
    /// The protocol the client asks to switch to (HTTP/1.1, `Connection: upgrade`, no body,
    /// not `h2c`).
    pub(crate) upgrade: Option<&'b str>,
    pub(crate) headers: &'b [httparse::Header<'b>],
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
    /// `Transfer-Encoding: chunked`: decoded, and sent upstream in chunks of the proxy's own.
    Chunked,
}

const fn refuse(status: u16, why: &'static str) -> Parsed<'static> {
    Parsed::Refused(Refusal { status, why })
}

/// Parses and checks the request at the start of `buf`.
pub(crate) fn parse<'b>(buf: &'b [u8], slots: &'b mut HeaderSlots<'b>, limits: HeadLimits) -> Parsed<'b> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return oversize(buf, limits).map_or(Parsed::Partial, Parsed::Refused);
        }
        Err(httparse::Error::TooManyHeaders) => return refuse(431, "too many header lines"),
        Err(httparse::Error::Version) => return refuse(505, "unsupported HTTP version"),
        Err(_) => return refuse(400, "malformed request head"),
    };
    if len > limits.line
        && let Some(refusal) = oversize(&buf[..len], limits)
    {
        return Parsed::Refused(refusal);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return refuse(400, "malformed request line");
    };
    // As nginx: a method is upper-case letters, `_` and `-`.
    if !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-') {
        return refuse(400, "invalid method");
    }
    if method == "CONNECT" || method == "TRACE" {
        return refuse(405, "method not allowed");
    }
    // A fragment is never part of a request target (RFC 9112 section 3.2); a server that kept
    // it could read `/x#/../admin` as a path other than the one routed on (`/x`).
    if target.contains('#') {
        return refuse(400, "fragment in the request target");
    }
    let (origin_form, authority) = match split_target(target) {
        Ok(parts) => parts,
        Err(why) => return refuse(400, why),
    };
    let headers: &'b [httparse::Header<'b>] = req.headers;
    let mut head = Head {
        len,
        minor,
        method,
        origin_form,
        host: authority.unwrap_or(""),
        absolute: authority.is_some(),
        close: minor == 0,
        request_id: None,
        body: BodyFraming::None,
        expect_continue: false,
        upgrade: None,
        headers,
        nominated: [""; MAX_NOMINATED],
        nominated_len: 0,
    };
    if let Err(refusal) = head.read_headers() {
        return Parsed::Refused(refusal);
    }
    Parsed::Request(head)
}

/// What the request-line and header-line lengths say about a head that is too large: `414`
/// for the request line, `431` for a header line or the whole head.
fn oversize(head: &[u8], limits: HeadLimits) -> Option<Refusal> {
    // Empty lines before the request line are skipped, as the parser skips them.
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(head.len());
    let mut lines = head[start..].split_inclusive(|&b| b == b'\n');
    if lines.next().is_some_and(|line| line.len() > limits.line) {
        return Some(Refusal { status: 414, why: "request line too long" });
    }
    if lines.any(|line| line.len() > limits.line) {
        return Some(Refusal { status: 431, why: "header line too long" });
    }
    (head.len() > limits.total).then_some(Refusal { status: 431, why: "request head too large" })
}

/// `value` as text, if it is visible ASCII, space and tab.
fn visible(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

impl<'b> Head<'b> {
    /// Reads what the proxy needs from the header lines, refusing those with more than one
    /// reading. Names nginx does not take as headers are skipped: not interpreted here, and
    /// not forwarded ([`crate::pipeline::edits`]).
    fn read_headers(&mut self) -> Result<(), Refusal> {
        let bad = |why| Err(Refusal { status: 400, why });
        let (mut hosts, mut length, mut chunked, mut expects) = (0, None::<u64>, false, 0);
        let mut encodings = 0;
        let (mut connection_upgrade, mut upgrade, mut seen_id) = (false, None, false);
        let (mut keep_alive, mut close) = (false, false);
        for h in self.headers {
            let name = h.name;
            // `_` is checked when forwarding: with `enable-underscores-in-headers` such a name
            // is forwarded but still never read as one of these.
            if !is_valid_name(name, false) {
                continue;
            }
            if name.eq_ignore_ascii_case("host") {
                hosts += 1;
                if hosts > 1 {
                    return bad("duplicate Host");
                }
                let Some(value) = visible(h.value).map(str::trim).filter(|v| valid_host(v)) else {
                    return bad("invalid Host");
                };
                if !self.absolute {
                    self.host = value;
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                let value = h.value.trim_ascii();
                if length.is_some() {
                    return bad("duplicate Content-Length");
                }
                let n = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok());
                let Some(n) = n else { return bad("invalid Content-Length") };
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Judged after all lines, as nginx judges it: a second line is a 400 whatever
                // the first said.
                encodings += 1;
                chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                let Some(tokens) = visible(h.value) else { return bad("invalid Connection") };
                for token in tokens.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    } else if token.eq_ignore_ascii_case("upgrade") {
                        connection_upgrade = true;
                    } else if may_be_nominated(token) {
                        let Some(slot) = self.nominated.get_mut(self.nominated_len) else {
                            return bad("too many Connection tokens");
                        };
                        *slot = token;
                        self.nominated_len += 1;
                    }
                }
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade = visible(h.value).map(str::trim).filter(|v| !v.is_empty());
            } else if name.eq_ignore_ascii_case("expect") {
                expects += 1;
                if expects > 1 {
                    return bad("duplicate Expect");
                }
                self.expect_continue =
                    self.minor == 1 && h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            } else if name.eq_ignore_ascii_case(X_REQUEST_ID) && !seen_id {
                seen_id = true;
                self.request_id = usable_request_id(h.value);
            }
        }
        match encodings {
            0 => {}
            1 if chunked => {}
            1 => return Err(Refusal { status: 501, why: "unsupported Transfer-Encoding" }),
            _ => return bad("duplicate Transfer-Encoding"),
        }
        if hosts == 0 && self.minor == 1 {
            return bad("HTTP/1.1 request without Host");
        }
        // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless asked not to.
        self.close = close || (self.minor == 0 && !keep_alive);
        self.body = match (chunked, length) {
            (true, Some(_)) => return bad("Transfer-Encoding with Content-Length"),
            (true, None) if self.minor == 0 => return bad("Transfer-Encoding in HTTP/1.0"),
            (true, None) => BodyFraming::Chunked,
            (false, Some(0) | None) => BodyFraming::None,
            (false, Some(n)) => BodyFraming::Length(n),
        };
        // An upgrade is honoured only as RFC 9110 section 7.8 asks for one, never to h2c (the
        // proxy's HTTP/2 is TLS-only), and never with a body (whose end the tunnel would blur).
        self.upgrade = upgrade.filter(|protocol| {
            self.minor == 1
                && connection_upgrade
                && self.body == BodyFraming::None
                && !protocol.split(',').any(|p| p.trim().to_ascii_lowercase().starts_with("h2c"))
        });
        Ok(())
    }

    /// Headers the client's `Connection` nominated as hop-by-hop.
    pub(crate) fn nominated(&self) -> &[&'b str] {
        &self.nominated[..self.nominated_len]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { line: 8192, total: 32768 };

    fn head(raw: &[u8]) -> Head<'_> {
        let slots = Box::leak(Box::new(header_slots()));
        match parse(raw, slots, LIMITS) {
            Parsed::Request(head) => head,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    fn status(raw: &[u8]) -> Option<u16> {
        let mut slots = header_slots();
        match parse(raw, &mut slots, LIMITS) {
            Parsed::Request(_) => None,
            Parsed::Partial => Some(0),
            Parsed::Refused(r) => Some(r.status),
        }
    }

    #[test]
    fn reads_what_the_proxy_needs() {
        let raw =
            b"GET /a/b?q=1 HTTP/1.1\r\nHost: Demo.example.com:8080\r\nConnection: keep-alive, X-Secret\r\n\
            X-Request-ID: rid\r\nX-Forwarded-For: 203.0.113.9\r\n\r\nGET /next";
        let h = head(raw);
        assert_eq!((h.method, h.origin_form, h.host), ("GET", "/a/b?q=1", "Demo.example.com:8080"));
        assert_eq!((h.minor, h.close, h.absolute, h.body), (1, false, false, BodyFraming::None));
        assert_eq!((h.request_id, h.nominated()), (Some(&b"rid"[..]), &["X-Secret"][..]));
        assert_eq!(&raw[h.len..], b"GET /next");

        let h = head(
            b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  Chunked \r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!((h.body, h.expect_continue), (BodyFraming::Chunked, true));
        assert_eq!(head(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").body, BodyFraming::None);
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc").body,
            BodyFraming::Length(3)
        );
    }

    #[test]
    fn http_1_0_absolute_form_and_upgrades() {
        let h = head(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!((h.minor, h.host, h.close), (0, "", true));
        assert!(!head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").close);
        let h = head(b"GET http://Abs.example.com:81 HTTP/1.1\r\nHost: other.example.com\r\n\r\n");
        assert_eq!((h.host, h.origin_form, h.absolute), ("Abs.example.com:81", "/", true));
        assert_eq!(head(b"GET https://a.example.com/p?q HTTP/1.1\r\nHost: a\r\n\r\n").origin_form, "/p?q");

        let ws =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(head(ws).upgrade, Some("websocket"));
        for not in [
            &b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"[..],
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: foo, H2C\r\n\r\n",
            b"POST /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\nx",
        ] {
            assert_eq!(head(not).upgrade, None, "{}", String::from_utf8_lossy(not));
        }
    }

    #[test]
    fn refusals_follow_nginx() {
        for (raw, want) in [
            (&b"GET  /admin HTTP/1.1\r\nHost: h\r\n\r\n"[..], 400),
            (b"GET admin HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            // nginx 1.27 answers 400 to this target (it cannot parse it) and 405 to a CONNECT
            // it can: here every CONNECT is 405.
            (b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 405),
            (b"get / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"trace / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /x#/../admin HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n", 405),
            (b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: user@evil.test\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: evil.test/x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX Y: 1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\n", 0),
        ] {
            assert_eq!(status(raw), Some(want), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn invalid_names_are_not_read_as_the_headers_they_resemble() {
        let h = head(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent.Length: 5\r\nX_Request_ID: x\r\n\r\n");
        assert_eq!((h.body, h.request_id), (BodyFraming::None, None));
    }

    #[test]
    fn size_limits_give_414_and_431() {
        let limits = HeadLimits { line: 64, total: 160 };
        let check = |raw: &[u8]| {
            let mut slots = header_slots();
            match parse(raw, &mut slots, limits) {
                Parsed::Request(_) => 200,
                Parsed::Partial => 0,
                Parsed::Refused(r) => r.status,
            }
        };
        let long = "a".repeat(70);
        assert_eq!(check(format!("GET /{long} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()), 414);
        assert_eq!(check(format!("GET /{long}").as_bytes()), 414, "a partial request line too");
        assert_eq!(check(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {long}\r\n\r\n").as_bytes()), 431);
        assert_eq!(
            check(format!("GET / HTTP/1.1\r\nX: {long}").as_bytes()),
            431,
            "a partial header line too"
        );
        let many: String = (0..6).map(|i| format!("X-{i}: {}\r\n", "b".repeat(30))).collect();
        assert_eq!(check(format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n").as_bytes()), 431);
        assert_eq!(check(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 200, "leading empty lines");
        let too_many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{too_many}\r\n");
        let mut slots = header_slots();
        assert!(matches!(
            parse(raw.as_bytes(), &mut slots, HeadLimits { line: 8192, total: 1 << 20 }),
            Parsed::Refused(Refusal { status: 431, .. })
        ));
    }
}
