//! The hostile-input vectors, by category, each with the verdict it must come to.

use std::fmt;
use std::time::Duration;

use super::*;

/// What a vector should come to, or what it came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The proxy answered this status itself; no origin saw a complete request.
    Rejected(u16),
    /// The proxy closed without answering; no origin saw a complete request.
    Closed,
    /// The origins saw n requests, none ambiguous, and the client got their n responses.
    Forwarded(usize),
    /// The origin saw the request and answered badly: the client got a 502 (`Connection:
    /// close`) or a response cut short, and nothing after it.
    BadGateway,
    /// The proxy neither closed nor finished within the client's patience.
    Hung,
    /// The connection went to HTTP/2 (h2c with prior knowledge): the client got the proxy's
    /// `SETTINGS` frame; no origin saw a request.
    Http2,
    /// Anything else: the responses (`fwd`, a proxy status, `trunc`) and the origin's count.
    Other(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Rejected(status) => write!(f, "Rejected({status})"),
            Verdict::Closed => f.write_str("Closed"),
            Verdict::Http2 => f.write_str("Http2"),
            Verdict::Forwarded(n) => write!(f, "Forwarded({n})"),
            Verdict::BadGateway => f.write_str("BadGateway"),
            Verdict::Hung => f.write_str("HUNG"),
            Verdict::Other(what) => f.write_str(what),
        }
    }
}

/// One step of what a client sends.
#[derive(Debug, Clone)]
pub(super) enum Step {
    Send(Vec<u8>),
    Pause(u64),
    /// One byte every so many milliseconds.
    Trickle(Vec<u8>, u64),
    /// In this many pieces, so many milliseconds apart.
    Pieces(Vec<u8>, usize, u64),
    /// Waits (at most so many milliseconds) until the bytes received contain this text.
    Await(&'static [u8], u64),
}

#[derive(Debug, Clone)]
pub(super) struct Vector {
    pub(super) name: String,
    pub(super) steps: Vec<Step>,
    pub(super) expect: Verdict,
    /// Requests the client means to send (more responses than this: a response to something
    /// it did not send).
    pub(super) sent: usize,
    /// Keep the write side open after the last step (until the proxy closes or says it will),
    /// rather than half-closing at once: for vectors about what the proxy does while waiting.
    pub(super) hold: bool,
    /// Run alone (upstream misbehaviour that could spill onto a pooled connection).
    pub(super) exclusive: bool,
    /// Which response answers a `HEAD` (no body).
    pub(super) head_at: Option<usize>,
    /// The proxy must close within this long of the connect.
    pub(super) within: Option<Duration>,
}

impl Vector {
    pub(super) fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>, expect: Verdict) -> Vector {
        Vector::steps(name, vec![Step::Send(bytes.into())], expect)
    }

    pub(super) fn steps(name: impl Into<String>, steps: Vec<Step>, expect: Verdict) -> Vector {
        Vector {
            name: name.into(),
            steps,
            expect,
            sent: 1,
            hold: false,
            exclusive: false,
            head_at: None,
            within: None,
        }
    }

    pub(super) fn sent(self, sent: usize) -> Vector {
        Vector { sent, ..self }
    }

    pub(super) fn hold(self) -> Vector {
        Vector { hold: true, ..self }
    }

    pub(super) fn exclusive(self) -> Vector {
        Vector { exclusive: true, ..self }
    }

    pub(super) fn within(self, limit: Duration) -> Vector {
        Vector { within: Some(limit), ..self }
    }
}

/// A GET for `target` on `h.test`.
pub(super) fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: h.test\r\nX-Vector: {MK}\r\n\r\n")
}

/// A request line, header lines (each with its CRLF), the marker line, the blank line, a body.
pub(super) fn req(line: &str, headers: &str, body: &str) -> String {
    format!("{line}\r\n{headers}X-Vector: {MK}\r\n\r\n{body}")
}

/// A POST to `target` with `body` and its `Content-Length`, after `headers`.
pub(super) fn post(target: &str, headers: &str, body: &str) -> String {
    req(
        &format!("POST {target} HTTP/1.1"),
        &format!("Host: h.test\r\n{headers}Content-Length: {}\r\n", body.len()),
        body,
    )
}

/// A chunked POST to `target` with the raw chunked `body`, after `headers`.
pub(super) fn chunked(target: &str, headers: &str, body: &str) -> String {
    req(
        &format!("POST {target} HTTP/1.1"),
        &format!("Host: h.test\r\n{headers}Transfer-Encoding: chunked\r\n"),
        body,
    )
}

/// Raw bytes joined.
pub(super) fn raw(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A request that would reach the admin origin, were it read out of a body.
pub(super) fn smuggled() -> String {
    get("/admin/smuggled")
}

pub(super) fn vectors() -> Vec<Vector> {
    use Verdict::*;
    let mut v = Vec::new();
    let mut add = |vector: Vector| v.push(vector);
    let s = smuggled();

    // CL/TE combinations and obfuscations.
    let te = |value: &str, body: &str| {
        req("POST / HTTP/1.1", &format!("Host: h.test\r\nTransfer-Encoding: {value}\r\n"), body)
    };
    add(Vector::new(
        "CL then TE (CL.TE)",
        req(
            "POST / HTTP/1.1",
            "Host: h.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\nG",
        ),
        Rejected(400),
    ));
    add(Vector::new(
        "TE then CL (TE.CL)",
        req(
            "POST / HTTP/1.1",
            "Host: h.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            "5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
        ),
        Rejected(400),
    ));
    add(Vector::new(
        "TE with a space before the colon",
        req("POST / HTTP/1.1", "Host: h.test\r\nTransfer-Encoding : chunked\r\n", "0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new("TE: xchunked", te("xchunked", "0\r\n\r\n"), Rejected(501)));
    add(Vector::new("TE: chunked, identity", te("chunked, identity", "0\r\n\r\n"), Rejected(501)));
    add(Vector::new("TE: identity", te("identity", ""), Rejected(501)));
    add(Vector::new("TE: gzip, chunked", te("gzip, chunked", "0\r\n\r\n"), Rejected(501)));
    add(Vector::new("TE: chunked, chunked", te("chunked, chunked", "0\r\n\r\n"), Rejected(501)));
    add(Vector::new("TE: identity<TAB>chunked", te("identity\tchunked", "0\r\n\r\n"), Rejected(501)));
    // RFC 9110's OWS is spaces and tabs (nginx takes only spaces): one clean chunked reading.
    add(Vector::new("TE: <TAB>chunked (OWS; nginx: 501)", te("\tchunked", "0\r\n\r\n"), Forwarded(1)));
    add(Vector::new("TE: chunked<TAB> (OWS; nginx: 501)", te("chunked\t", "0\r\n\r\n"), Forwarded(1)));
    add(Vector::new("TE: \"chunked\" (quoted)", te("\"chunked\"", "0\r\n\r\n"), Rejected(501)));
    add(Vector::new("TE: <VT>chunked", te("\x0bchunked", "0\r\n\r\n"), Rejected(400)));
    add(Vector::new("TE: Chunked (case) is chunked", te("Chunked", "5\r\nhello\r\n0\r\n\r\n"), Forwarded(1)));
    add(Vector::new(
        "two TE lines: chunked, chunked",
        req(
            "POST / HTTP/1.1",
            "Host: h.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        Rejected(400),
    ));
    add(Vector::new(
        "two TE lines: identity, chunked",
        req(
            "POST / HTTP/1.1",
            "Host: h.test\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        Rejected(400),
    ));
    add(Vector::new(
        "TE folded onto another header (obs-fold)",
        req("POST / HTTP/1.1", "Host: h.test\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n", "0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "TE value continued by obs-fold",
        req("POST / HTTP/1.1", "Host: h.test\r\nTransfer-Encoding: identity\r\n chunked\r\n", "0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "TE in HTTP/1.0",
        req("POST / HTTP/1.0", "Host: h.test\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "TE and CL in HTTP/1.0",
        req(
            "POST / HTTP/1.0",
            "Host: h.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        Rejected(400),
    ));
    add(Vector::new(
        "Connection: Transfer-Encoding cannot strip the framing",
        chunked("/", "Connection: Transfer-Encoding\r\n", &format!("{:x}\r\n{s}\r\n0\r\n\r\n", s.len())),
        Forwarded(1),
    ));
    let cl = |value: &str, body: &str| {
        req("POST / HTTP/1.1", &format!("Host: h.test\r\nContent-Length: {value}\r\n"), body)
    };
    add(Vector::new("CL: +5", cl("+5", "hello"), Rejected(400)));
    add(Vector::new("CL: -5", cl("-5", "hello"), Rejected(400)));
    add(Vector::new("CL: 005 (leading zeros)", cl("005", "hello"), Forwarded(1)));
    add(Vector::new("CL: 0x5 (hex)", cl("0x5", "hello"), Rejected(400)));
    add(Vector::new("CL: 5.0", cl("5.0", "hello"), Rejected(400)));
    add(Vector::new(
        "CL: 99999999999999999999 (overflow)",
        cl("99999999999999999999", "hello"),
        Rejected(400),
    ));
    add(Vector::new(
        "CL: 18446744073709551616 (u64 + 1)",
        cl("18446744073709551616", "hello"),
        Rejected(400),
    ));
    add(Vector::new("CL: empty", cl("", "hello"), Rejected(400)));
    add(Vector::new("CL: 5, 5", cl("5, 5", "hello"), Rejected(400)));
    add(Vector::new("CL: 5 5", cl("5 5", "hello"), Rejected(400)));
    add(Vector::new("CL: <TAB>5 (OWS; nginx: 400)", cl("\t5", "hello"), Forwarded(1)));
    add(Vector::new("CL: 5 with spaces around", cl(" 5  ", "hello"), Forwarded(1)));
    add(Vector::new(
        "two equal CL lines",
        req("POST / HTTP/1.1", "Host: h.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n", "hello"),
        Rejected(400),
    ));
    add(Vector::new(
        "two different CL lines",
        req(
            "POST / HTTP/1.1",
            "Host: h.test\r\nContent-Length: 5\r\nContent-Length: 45\r\n",
            &format!("hello{s}"),
        ),
        Rejected(400),
    ));
    add(Vector::new(
        "CL over the body limit (1 MiB + 1)",
        cl(&(BODY_LIMIT + 1).to_string(), ""),
        Rejected(413),
    ));
    add(Vector::new("CL: 999999999999", cl("999999999999", "hello"), Rejected(413)));
    add(Vector::new(
        "Connection: Content-Length cannot strip the framing",
        post("/", "Connection: Content-Length\r\n", &s),
        Forwarded(1),
    ));
    add(Vector::new("CL: 0 then a request", format!("{}{s}", cl("0", "")), Forwarded(2)).sent(2));
    add(Vector::new(
        "GET with a CL body that is a request",
        req("GET / HTTP/1.1", &format!("Host: h.test\r\nContent-Length: {}\r\n", s.len()), &s),
        Forwarded(1),
    ));
    add(Vector::new(
        "Content_Length: (dropped) then a request",
        format!(
            "{}{s}",
            req("POST / HTTP/1.1", &format!("Host: h.test\r\nContent_Length: {}\r\n", s.len()), "")
        ),
        Forwarded(2),
    )
    .sent(2));
    add(Vector::new(
        "Content.Length: (dropped) then a request",
        format!(
            "{}{s}",
            req("POST / HTTP/1.1", &format!("Host: h.test\r\nContent.Length: {}\r\n", s.len()), "")
        ),
        Forwarded(2),
    )
    .sent(2));
    add(Vector::new(
        "Transfer_Encoding: chunked (dropped), body a request",
        format!("{}{s}", req("POST / HTTP/1.1", "Host: h.test\r\nTransfer_Encoding: chunked\r\n", "")),
        Forwarded(2),
    )
    .sent(2));

    // Chunk grammar.
    add(Vector::new(
        "chunk: 5 xyz (bad extension)",
        chunked("/", "", "5 xyz\r\nhello\r\n0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new("chunk: 5;foo=bar", chunked("/", "", "5;foo=bar\r\nhello\r\n0\r\n\r\n"), Forwarded(1)));
    add(Vector::new(
        "chunk: 5;foo=\"a b\"",
        chunked("/", "", "5;foo=\"a b\"\r\nhello\r\n0\r\n\r\n"),
        Forwarded(1),
    ));
    add(Vector::new(
        "chunk: bare LF after the size",
        chunked("/", "", "5\nhello\r\n0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "chunk: bare LF after the data",
        chunked("/", "", "5\r\nhello\n0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "chunk: bare LF ending the body",
        chunked("/", "", "5\r\nhello\r\n0\r\n\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "chunk: size 17 hex digits",
        chunked("/", "", "fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new("chunk: 0x5", chunked("/", "", "0x5\r\nhello\r\n0\r\n\r\n"), Rejected(400)));
    add(Vector::new("chunk: -5", chunked("/", "", "-5\r\nhello\r\n0\r\n\r\n"), Rejected(400)));
    add(Vector::new("chunk: no CRLF after the data", chunked("/", "", "5\r\nhello0\r\n\r\n"), Rejected(400)));
    add(Vector::new(
        "chunk: data longer than the size",
        chunked("/", "", "3\r\nhello\r\n0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "chunk: size with trailing spaces",
        chunked("/", "", "5  \r\nhello\r\n0\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "chunk: upper-case hex size",
        chunked("/", "", "A\r\n0123456789\r\n0\r\n\r\n"),
        Forwarded(1),
    ));
    add(Vector::new("chunk: empty body", chunked("/", "", "0\r\n\r\n"), Forwarded(1)));
    add(Vector::new(
        "chunk: size over the body limit (2 MiB declared)",
        chunked("/", "", "200000\r\nhelloworld"),
        Rejected(413),
    ));
    let big = "x".repeat(600 * 1024);
    add(Vector::new(
        "chunked body over the body limit (2 x 600 KiB)",
        chunked("/", "", &format!("{0:x}\r\n{big}\r\n{0:x}\r\n{big}\r\n0\r\n\r\n", big.len())),
        Rejected(413),
    ));
    add(Vector::new("chunked body cut short, then half-close", chunked("/", "", "5\r\nhel"), Closed));
    add(Vector::steps(
        "chunked body split over writes, then a request",
        vec![
            Step::Send(chunked("/", "", "").into_bytes()),
            Step::Pause(50),
            Step::Send(b"5\r\nhel".to_vec()),
            Step::Pause(50),
            Step::Send(b"lo\r\n0\r\n".to_vec()),
            Step::Pause(50),
            Step::Send(format!("\r\n{s}").into_bytes()),
        ],
        Forwarded(2),
    )
    .sent(2));

    // Trailers.
    add(Vector::new(
        "trailer: Content-Length",
        chunked("/", "", "5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
        Forwarded(1),
    ));
    add(Vector::new(
        "trailer: Transfer-Encoding",
        chunked("/", "", "5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Forwarded(1),
    ));
    add(Vector::new(
        "trailer: Host",
        chunked("/", "", "5\r\nhello\r\n0\r\nHost: evil.test\r\n\r\n"),
        Forwarded(1),
    ));
    add(Vector::new(
        "trailer section that is a request",
        chunked("/", "", &format!("5\r\nhello\r\n0\r\n{s}")),
        Rejected(400),
    ));
    add(Vector::new(
        "trailer with a bare LF",
        chunked("/", "", "5\r\nhello\r\n0\r\nX-T: 1\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "trailer with obs-fold",
        chunked("/", "", "5\r\nhello\r\n0\r\nX-T: 1\r\n folded\r\n\r\n"),
        Rejected(400),
    ));
    add(Vector::new(
        "trailer, then a pipelined request",
        format!("{}{s}", chunked("/", "", "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")),
        Forwarded(2),
    )
    .sent(2));

    // Header names and values.
    let with = |headers: &str| req("GET / HTTP/1.1", &format!("Host: h.test\r\n{headers}"), "");
    add(Vector::new("X_Real_IP: (dropped)", with("X_Real_IP: 6.6.6.6\r\n"), Forwarded(1)));
    add(Vector::new("X-Foo_Bar: (dropped)", with("X-Foo_Bar: 1\r\n"), Forwarded(1)));
    add(Vector::new("X.Foo: (dropped)", with("X.Foo: 1\r\n"), Forwarded(1)));
    add(Vector::new("space before the colon", with("X-Foo : 1\r\n"), Rejected(400)));
    add(Vector::new("tab before the colon", with("X-Foo\t: 1\r\n"), Rejected(400)));
    add(Vector::new("space inside a name", with("X Foo: 1\r\n"), Rejected(400)));
    add(Vector::new("NUL in a name", with("X-F\0oo: 1\r\n"), Rejected(400)));
    add(Vector::new("NUL in a value", with("X-Foo: a\0b\r\n"), Rejected(400)));
    add(Vector::new("lone CR in a value", with("X-Foo: a\rb\r\n"), Rejected(400)));
    add(Vector::new("lone CR in a name", with("X-\rFoo: 1\r\n"), Rejected(400)));
    add(Vector::new("DEL in a value", with("X-Foo: a\x7fb\r\n"), Rejected(400)));
    add(Vector::new("DEL in a name", with("X-Fo\x7fo: 1\r\n"), Rejected(400)));
    add(Vector::new(
        "non-ASCII in a value",
        raw(&[
            b"GET / HTTP/1.1\r\nHost: h.test\r\nX-Foo: caf\xc3\xa9 \xff\r\nX-Vector: ",
            MK.as_bytes(),
            b"\r\n\r\n",
        ]),
        Forwarded(1),
    ));
    add(Vector::new(
        "non-ASCII in a name",
        raw(&[b"GET / HTTP/1.1\r\nHost: h.test\r\nX-F\xc3\xa9: 1\r\nX-Vector: ", MK.as_bytes(), b"\r\n\r\n"]),
        Rejected(400),
    ));
    add(Vector::new("obs-fold", with("X-Foo: a\r\n b\r\n"), Rejected(400)));
    add(Vector::new("obs-fold with a tab", with("X-Foo: a\r\n\tb\r\n"), Rejected(400)));
    add(Vector::new("a line without a colon", with("X-Foo\r\n"), Rejected(400)));
    add(Vector::new("an empty name", with(": x\r\n"), Rejected(400)));
    add(Vector::new(
        "whitespace before the first header",
        req("GET / HTTP/1.1", " Host: h.test\r\n", ""),
        Rejected(400),
    ));
    add(Vector::new(
        "bare LF line ends throughout",
        format!("GET /lf HTTP/1.1\nHost: h.test\nX-Vector: {MK}\n\n"),
        Forwarded(1),
    ));
    add(Vector::new(
        "bare LF and CRLF mixed",
        format!("GET /lf HTTP/1.1\r\nHost: h.test\nX-Vector: {MK}\r\n\n"),
        Forwarded(1),
    ));
    add(Vector::new("Connection: Host", with("Connection: Host\r\n"), Forwarded(1)));
    let lines = |n: usize| (0..n).map(|i| format!("X-N{i}: {i}\r\n")).collect::<String>();
    add(Vector::new("128 header lines", with(&lines(126)), Forwarded(1)));

    // Request lines.
    let request_line = |line: &str| req(line, "Host: h.test\r\n", "");
    add(Vector::new("GET  /admin (two spaces)", request_line("GET  /admin HTTP/1.1"), Rejected(400)));
    add(Vector::new("GET<TAB>/admin", request_line("GET\t/admin HTTP/1.1"), Rejected(400)));
    add(Vector::new("trailing space after the version", request_line("GET / HTTP/1.1 "), Rejected(400)));
    add(Vector::new("absolute-form http", request_line("GET http://h.test/abs HTTP/1.1"), Forwarded(1)));
    add(Vector::new("absolute-form https", request_line("GET https://h.test/abs HTTP/1.1"), Forwarded(1)));
    add(Vector::new("absolute-form ftp", request_line("GET ftp://h.test/abs HTTP/1.1"), Rejected(400)));
    add(Vector::new(
        "absolute-form /admin, Host elsewhere (routes by the target)",
        req("GET http://h.test/admin/abs HTTP/1.1", "Host: other.test\r\n", ""),
        Forwarded(1),
    ));
    add(Vector::new(
        "absolute-form to another host, Host h.test",
        request_line("GET http://other.test/admin HTTP/1.1"),
        Rejected(404),
    ));
    add(Vector::new(
        "absolute-form with userinfo",
        request_line("GET http://u@h.test/ HTTP/1.1"),
        Rejected(400),
    ));
    add(Vector::new(
        "absolute-form without a path",
        request_line("GET http://h.test HTTP/1.1"),
        Forwarded(1),
    ));
    add(Vector::new(
        "absolute-form with a query and no path",
        request_line("GET http://h.test?x=/admin HTTP/1.1"),
        Rejected(400),
    ));
    add(Vector::new("OPTIONS *", request_line("OPTIONS * HTTP/1.1"), Rejected(400)));
    add(Vector::new("CONNECT authority-form", request_line("CONNECT h.test:443 HTTP/1.1"), Rejected(405)));
    add(Vector::new("TRACE", request_line("TRACE / HTTP/1.1"), Rejected(405)));
    add(Vector::new("no version (HTTP/0.9)", format!("GET /\r\nX-Vector: {MK}\r\n\r\n"), Rejected(400)));
    add(Vector::new("HTTP/0.9 written out", request_line("GET / HTTP/0.9"), Rejected(505)));
    add(Vector::new("HTTP/2.0", request_line("GET / HTTP/2.0"), Rejected(505)));
    add(Vector::new("HTTP/1.2", request_line("GET / HTTP/1.2"), Rejected(505)));
    add(Vector::new("lower-case method (nginx: 400)", request_line("get / HTTP/1.1"), Rejected(400)));
    add(Vector::new(
        "9 KiB target",
        request_line(&format!("GET /{} HTTP/1.1", "a".repeat(9 * 1024))),
        Rejected(414),
    ));
    // A fragment is never part of a target; nginx forwards it, the engine refuses it.
    add(Vector::new("#fragment in the target", get("/x#frag"), Rejected(400)));
    add(Vector::new("/admin#fragment", get("/admin#frag"), Rejected(400)));
    add(Vector::new("/x#/../admin", get("/x#/../admin"), Rejected(400)));
    add(Vector::new("/%2e%2e/admin (above the root)", get("/%2e%2e/admin"), Rejected(400)));
    add(Vector::new("/../admin (above the root)", get("/../admin"), Rejected(400)));
    add(Vector::new("/x/%2e%2e/admin", get("/x/%2e%2e/admin"), Forwarded(1)));
    add(Vector::new("//admin", get("//admin"), Forwarded(1)));
    add(Vector::new("/%61dmin", get("/%61dmin"), Forwarded(1)));
    add(Vector::new("/%2fadmin", get("/%2fadmin"), Forwarded(1)));
    add(Vector::new("/admin%2f..", get("/admin%2f.."), Forwarded(1)));
    add(Vector::new("/x/../admin", get("/x/../admin"), Forwarded(1)));
    add(Vector::new("/x/..%2fadmin", get("/x/..%2fadmin"), Forwarded(1)));
    add(Vector::new("/./admin", get("/./admin"), Forwarded(1)));
    add(Vector::new("/admin/", get("/admin/"), Forwarded(1)));
    add(Vector::new("/ADMIN (case matters, as in nginx)", get("/ADMIN"), Forwarded(1)));
    add(Vector::new("/%2561dmin (double-encoded)", get("/%2561dmin"), Forwarded(1)));
    add(Vector::new("/admin%00", get("/admin%00"), Rejected(400)));
    add(Vector::new("/%zz (bad escape)", get("/%zz"), Rejected(400)));
    add(Vector::new("control byte in the target", get("/a\x01b"), Rejected(400)));
    add(Vector::new("UTF-8 in the target", get("/caf\u{e9}"), Forwarded(1)));
    add(Vector::new(
        "non-UTF-8 byte in the target",
        raw(&[b"GET /\xff HTTP/1.1\r\nHost: h.test\r\nX-Vector: ", MK.as_bytes(), b"\r\n\r\n"]),
        Rejected(400),
    ));
    add(Vector::new(
        "empty lines before the request line",
        format!("\r\n\r\n{}", get("/after-crlf")),
        Forwarded(1),
    ));

    // Host forms.
    let host = |value: &str| req("GET / HTTP/1.1", &format!("Host: {value}\r\n"), "");
    add(Vector::new("Host with userinfo", host("x@h.test"), Rejected(400)));
    add(Vector::new("Host with a path", host("h.test/admin"), Rejected(400)));
    add(Vector::new("Host with a space", host("h .test"), Rejected(400)));
    add(Vector::new("Host with a backslash", host("h.test\\admin"), Rejected(400)));
    add(Vector::new("Host empty", host(""), Rejected(400)));
    add(Vector::new("Host missing in HTTP/1.1", req("GET / HTTP/1.1", "", ""), Rejected(400)));
    add(Vector::new("Host missing in HTTP/1.0", req("GET / HTTP/1.0", "", ""), Rejected(404)));
    add(Vector::new(
        "Host twice",
        req("GET / HTTP/1.1", "Host: h.test\r\nHost: h.test\r\n", ""),
        Rejected(400),
    ));
    add(Vector::new(
        "Host twice, different",
        req("GET / HTTP/1.1", "Host: h.test\r\nHost: evil.test\r\n", ""),
        Rejected(400),
    ));
    add(Vector::new("Host with a bad port", host("h.test:8x"), Rejected(400)));
    add(Vector::new("Host with an empty port", host("h.test:"), Rejected(400)));
    add(Vector::new("Host with a port", host("h.test:8080"), Forwarded(1)));
    add(Vector::new("Host IPv6 literal", host("[::1]:80"), Rejected(404)));
    add(Vector::new("Host with a trailing dot", host("h.test."), Forwarded(1)));
    add(Vector::new("Host upper case", host("H.TEST"), Forwarded(1)));
    add(Vector::new("Host with ..", host("h..test"), Rejected(400)));
    add(Vector::new("Host list h.test,evil.test", host("h.test,evil.test"), Rejected(404)));
    add(Vector::new(
        "Host non-ASCII",
        raw(&[b"GET / HTTP/1.1\r\nHost: h\xc3\xa9.test\r\nX-Vector: ", MK.as_bytes(), b"\r\n\r\n"]),
        Rejected(400),
    ));

    // Pipelining.
    add(Vector::new("two GETs in one write", format!("{}{}", get("/p1"), get("/admin/p2")), Forwarded(2))
        .sent(2));
    add(Vector::new("POST body, then a request", format!("{}{s}", post("/", "", "hello")), Forwarded(2))
        .sent(2));
    add(Vector::new("body that looks like a request (CL)", post("/", "", &s), Forwarded(1)));
    add(Vector::new(
        "body that looks like a request (chunked)",
        chunked("/", "", &format!("{:x}\r\n{s}\r\n0\r\n\r\n", s.len())),
        Forwarded(1),
    ));
    add(Vector::new(
        "three pipelined, the middle one bad",
        format!("{}{}{}", get("/p1"), request_line("GET  /admin HTTP/1.1"), get("/p3")),
        Other("[fwd 400] origin saw 1".into()),
    )
    .sent(3));
    add(Vector::new(
        "two HTTP/1.0 requests without keep-alive",
        format!(
            "{}{}",
            req("GET /p1 HTTP/1.0", "Host: h.test\r\n", ""),
            req("GET /admin HTTP/1.0", "Host: h.test\r\n", "")
        ),
        Forwarded(1),
    )
    .sent(2));
    add(Vector::new(
        "Connection: close, then another request",
        format!("{}{s}", req("GET /p1 HTTP/1.1", "Host: h.test\r\nConnection: close\r\n", "")),
        Forwarded(1),
    )
    .sent(2));
    add(Vector::new(
        "body to an unknown host, then a request",
        format!("{}{s}", req("POST / HTTP/1.1", "Host: nowhere.test\r\nContent-Length: 5\r\n", "hello")),
        Other("[404 fwd] origin saw 1".into()),
    )
    .sent(2));
    add(Vector::new(
        "a request, then half of another",
        format!("{}GET /admin HTTP/1.1\r\nHost: h.te", get("/p1")),
        Forwarded(1),
    )
    .sent(2));
    add(Vector::steps(
        "a request, then another in pieces",
        vec![
            Step::Send(format!("{}GET /adm", get("/p1")).into_bytes()),
            Step::Pause(50),
            Step::Send(b"in/p2 HTTP/1.1\r\nHo".to_vec()),
            Step::Pause(50),
            Step::Send(format!("st: h.test\r\nX-Vector: {MK}\r\n\r\n").into_bytes()),
        ],
        Forwarded(2),
    )
    .sent(2));

    // Expect.
    let expecting = |line: &str, value: &str| {
        req(line, &format!("Host: h.test\r\nExpect: {value}\r\nContent-Length: 5\r\n"), "")
    };
    add(Vector::steps(
        "Expect: 100-continue, waiting for the 100",
        vec![
            Step::Send(expecting("POST / HTTP/1.1", "100-continue").into_bytes()),
            Step::Await(b"100 Continue", 3000),
            Step::Send(b"hello".to_vec()),
        ],
        Forwarded(1),
    ));
    add(Vector::new(
        "Expect: 100-continue, body at once",
        format!("{}hello", expecting("POST / HTTP/1.1", "100-continue")),
        Forwarded(1),
    ));
    add(Vector::new(
        "Expect: unknown",
        format!("{}hello", expecting("POST / HTTP/1.1", "fancy")),
        Forwarded(1),
    ));
    add(Vector::steps(
        "Expect in HTTP/1.0",
        vec![
            Step::Send(expecting("POST / HTTP/1.0", "100-continue").into_bytes()),
            Step::Await(b"100 Continue", 500),
            Step::Send(b"hello".to_vec()),
        ],
        Forwarded(1),
    ));
    add(Vector::steps(
        "Expect: 100-continue, body over the limit",
        vec![
            Step::Send(
                req(
                    "POST / HTTP/1.1",
                    &format!(
                        "Host: h.test\r\nExpect: 100-continue\r\nContent-Length: {}\r\n",
                        2 * BODY_LIMIT
                    ),
                    "",
                )
                .into_bytes(),
            ),
            Step::Await(b"HTTP/1.1", 3000),
        ],
        Rejected(413),
    ));
    add(Vector::steps(
        "Expect: 100-continue, chunked, waiting",
        vec![
            Step::Send(chunked("/", "Expect: 100-continue\r\n", "").into_bytes()),
            Step::Await(b"100 Continue", 3000),
            Step::Send(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
        ],
        Forwarded(1),
    ));
    add(Vector::new(
        "Expect twice",
        req(
            "POST / HTTP/1.1",
            "Host: h.test\r\nExpect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 5\r\n",
            "hello",
        ),
        Rejected(400),
    ));

    // Upgrades (`/up101` answers 101 to any request with an `Upgrade` line).
    add(Vector::new(
        "Upgrade: h2c with Connection: upgrade, HTTP2-Settings",
        req(
            "GET /up101 HTTP/1.1",
            "Host: h.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
            "",
        ),
        Forwarded(1),
    ));
    add(Vector::new(
        "Upgrade without Connection: upgrade",
        req("GET /up101 HTTP/1.1", "Host: h.test\r\nUpgrade: websocket\r\n", ""),
        Forwarded(1),
    ));
    add(Vector::new(
        "WebSocket upgrade carrying a body",
        req(
            "POST /up101 HTTP/1.1",
            "Host: h.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n",
            "hello",
        ),
        Forwarded(1),
    ));
    add(Vector::new(
        "WebSocket upgrade in HTTP/1.0",
        req("GET /up101 HTTP/1.0", "Host: h.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", ""),
        Forwarded(1),
    ));
    let upgrade = |target: &str| {
        req(
            &format!("GET {target} HTTP/1.1"),
            "Host: h.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n",
            "",
        )
    };
    add(Vector::steps(
        "WebSocket upgrade accepted, bytes through the tunnel",
        vec![
            Step::Send(upgrade("/up101").into_bytes()),
            Step::Await(b"101 Switching", 3000),
            Step::Send(b"ping-through-the-tunnel".to_vec()),
            Step::Await(b"ping-through-the-tunnel", 3000),
        ],
        Forwarded(1),
    ));
    add(Vector::new(
        "upgrade refused by the origin, then a request",
        format!("{}{s}", upgrade("/no-upgrade")),
        Forwarded(2),
    )
    .sent(2));

    // Oversize heads.
    let pad = |n: usize, size: usize| {
        (0..n).map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(size))).collect::<String>()
    };
    add(Vector::new("33 KiB of headers", with(&pad(5, 6800)), Rejected(431)));
    add(Vector::new("one 9 KiB header line", with(&pad(1, 9 * 1024)), Rejected(431)));
    add(Vector::new("129 header lines", with(&lines(127)), Rejected(431)));
    add(Vector::new(
        "9 KiB request line",
        request_line(&format!("GET /?q={} HTTP/1.1", "q".repeat(9 * 1024))),
        Rejected(414),
    ));
    add(Vector::new(
        "9 KiB request line, unfinished",
        format!("GET /{}", "a".repeat(9 * 1024)),
        Rejected(414),
    )
    .hold());
    add(Vector::new(
        "9 KiB header line, unfinished",
        format!("GET / HTTP/1.1\r\nHost: h.test\r\nX-Vector: {MK}\r\nX-Big: {}", "b".repeat(9 * 1024)),
        Rejected(431),
    )
    .hold());

    // Slow heads and bodies.
    let slow_head =
        format!("GET /slow HTTP/1.1\r\nHost: h.test\r\nX-Vector: {MK}\r\nX-Pad: {}\r\n\r\n", "s".repeat(40));
    add(Vector::steps(
        "head trickled, 1 byte / 100 ms",
        vec![Step::Trickle(slow_head.into_bytes(), 100)],
        Closed,
    )
    .hold()
    .within(HEADER_TIMEOUT + Duration::from_secs(1)));
    add(Vector::steps(
        "head in 7 pieces over 1.2 s (under the limit)",
        vec![Step::Pieces(get("/under-the-limit").into_bytes(), 7, 200)],
        Forwarded(1),
    ));
    add(Vector::steps("connection that sends nothing", Vec::new(), Closed)
        .hold()
        .within(HEADER_TIMEOUT + Duration::from_secs(1)));
    add(Vector::new("unfinished head, then nothing", "GET / HTTP/1.1\r\nHost: h.test\r\n", Closed).hold());
    add(Vector::new("only empty lines, then nothing", "\r\n\r\n\r\n", Closed).hold());
    add(Vector::new("unfinished head, then half-close", "GET / HTTP/1.1\r\nHost: h.test\r\n", Closed));
    add(Vector::steps(
        "body trickled, 1 byte / 300 ms",
        vec![Step::Send(cl("20", "").into_bytes()), Step::Trickle(b"abcdefghijklmnopqrst".to_vec(), 300)],
        Rejected(408),
    )
    .hold());
    add(Vector::new("body stalls after 3 of 10 bytes", cl("10", "abc"), Rejected(408)).hold());
    add(Vector::new("body cut short, then half-close", cl("10", "abc"), Closed));
    add(Vector::steps(
        "slow second head on a kept-alive connection",
        vec![
            Step::Send(get("/first").into_bytes()),
            Step::Await(b"target=/first", 3000),
            Step::Trickle(get("/second-slow").into_bytes(), 100),
        ],
        Forwarded(1),
    )
    .sent(2)
    .hold());

    add(Vector::new("40 KiB of empty lines", "\r\n".repeat(20 * 1024), Rejected(431)).hold());
    let tokens: Vec<String> = (0..17).map(|i| format!("x-t{i}")).collect();
    add(Vector::new(
        "Connection naming 17 headers",
        with(&format!("Connection: {}\r\n", tokens.join(", "))),
        Rejected(400),
    ));
    // As ingress-nginx's `http2 on` (nginx 1.25+): h2c with prior knowledge on the plain port.
    add(Vector::new("HTTP/2 prior-knowledge preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Http2));
    add(Vector::new(
        "POST body, an extra CRLF, then a request",
        format!("{}\r\n{s}", post("/", "", "hello")),
        Forwarded(2),
    )
    .sent(2));
    add(Vector::new(
        "CL body followed by garbage",
        format!("{}GARBAGE {MK}\r\n\r\n", post("/", "", "hello")),
        Other("[fwd 400] origin saw 1".into()),
    )
    .sent(2));

    // Forwarding headers a client must not choose.
    add(Vector::new("X-Real-IP: 6.6.6.6", with("X-Real-IP: 6.6.6.6\r\n"), Forwarded(1)));
    add(Vector::new(
        "x-real-ip twice, two spellings",
        with("x-real-ip: 6.6.6.6\r\nX-REAL-IP: 7.7.7.7\r\n"),
        Forwarded(1),
    ));
    add(Vector::new(
        "X-Forwarded-Host: admin.internal",
        with("X-Forwarded-Host: admin.internal\r\n"),
        Forwarded(1),
    ));
    add(Vector::new("X-Forwarded-Proto: https", with("X-Forwarded-Proto: https\r\n"), Forwarded(1)));
    add(Vector::new(
        "X-Forwarded-For: 1.2.3.4 (appended to)",
        with("X-Forwarded-For: 1.2.3.4\r\n"),
        Forwarded(1),
    ));
    add(Vector::new("X-Request-ID twice", with("X-Request-ID: a\r\nX-Request-ID: b\r\n"), Forwarded(1)));
    add(Vector::new(
        "Connection: X-Real-IP",
        with("Connection: X-Real-IP\r\nX-Real-IP: 6.6.6.6\r\n"),
        Forwarded(1),
    ));

    // Exact size limits (a line may be 8 KiB with its CRLF, as in nginx).
    let target_of = |line_len: usize| format!("/{}", "t".repeat(line_len - "GET / HTTP/1.1\r\n".len()));
    add(Vector::new(
        "request line of exactly 8192 bytes",
        request_line(&format!("GET {} HTTP/1.1", target_of(8192))),
        Forwarded(1),
    ));
    add(Vector::new(
        "request line of 8193 bytes",
        request_line(&format!("GET {} HTTP/1.1", target_of(8193))),
        Rejected(414),
    ));
    let header_of = |line_len: usize| format!("X-Big: {}\r\n", "h".repeat(line_len - "X-Big: \r\n".len()));
    add(Vector::new("header line of exactly 8192 bytes", with(&header_of(8192)), Forwarded(1)));
    add(Vector::new("header line of 8193 bytes", with(&header_of(8193)), Rejected(431)));

    // More framing pressure.
    let pipelined: String = (0..50).map(|i| get(&format!("/many/{i}"))).collect();
    add(Vector::new("50 pipelined GETs in one write", pipelined, Forwarded(50)).sent(50));
    add(Vector::new(
        "two HTTP/1.0 keep-alive requests",
        format!(
            "{}{}",
            req("GET /k1 HTTP/1.0", "Host: h.test\r\nConnection: keep-alive\r\n", ""),
            req("GET /admin/k2 HTTP/1.0", "Host: h.test\r\nConnection: keep-alive\r\n", "")
        ),
        Forwarded(2),
    )
    .sent(2));
    add(Vector::new(
        "chunk extension of 5000 bytes",
        chunked("/", "", &format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000))),
        Rejected(400),
    ));
    add(Vector::new(
        "trailer section of 5000 bytes",
        chunked("/", "", &format!("5\r\nhello\r\n0\r\nX-T: {}\r\n\r\n", "t".repeat(5000))),
        Rejected(400),
    ));
    add(Vector::new(
        "5000 one-byte chunks",
        chunked("/", "", &format!("{}0\r\n\r\n", "1\r\nx\r\n".repeat(5000))),
        Forwarded(1),
    ));
    for (name, framing, body) in [
        ("CL", format!("Content-Length: {}\r\n", s.len()), s.clone()),
        (
            "chunked",
            "Transfer-Encoding: chunked\r\n".to_owned(),
            format!("{:x}\r\n{s}\r\n0\r\n\r\n", s.len()),
        ),
    ] {
        // The origin answers on the head, then reads the body: the rest of the body (a request,
        // here) goes on as body, and the request behind it is not served on that exchange.
        add(Vector::steps(
            format!("upstream answers before the body ({name}), then a request"),
            vec![
                Step::Send(
                    req("POST /early HTTP/1.1", &format!("Host: h.test\r\n{framing}"), "").into_bytes(),
                ),
                Step::Await(b"target=/early", 3000),
                Step::Send(format!("{body}{}", get("/admin/after-early")).into_bytes()),
            ],
            Forwarded(1),
        )
        .sent(2));
    }

    // Bad upstream responses.
    let bad = |kind: &str, expect: Verdict| {
        Vector::new(format!("upstream: {kind}"), get(&format!("/bad/{kind}")), expect).exclusive()
    };
    add(bad("double-cl", BadGateway));
    add(bad("double-cl-equal", BadGateway));
    add(bad("cl-te", BadGateway));
    add(bad("te-gzip", BadGateway));
    add(bad("te-twice", BadGateway));
    add(bad("lf-chunk", BadGateway));
    add(bad("trailer-response", BadGateway));
    add(bad("101", BadGateway));
    add(bad("big-head", BadGateway));
    add(bad("big-head-slow", BadGateway));
    add(bad("endless-1xx", BadGateway));
    add(bad("short", BadGateway));
    add(bad("obs-fold", BadGateway));
    add(bad("lf-head", Forwarded(1)));
    add(Vector::new(
        "upstream: close-delimited body holding a response, pipelined",
        format!("{}{}", get("/bad/close-delimited"), get("/after-close-delimited")),
        Forwarded(2),
    )
    .sent(2)
    .exclusive());
    add(Vector::new(
        "upstream: 204 with a body, pipelined",
        format!("{}{}", get("/bad/204-body"), get("/after-204")),
        Forwarded(2),
    )
    .sent(2)
    .exclusive());
    add(Vector::new("upstream: close without answering (POST)", post("/bad/close", "", ""), BadGateway)
        .exclusive());
    add(Vector::new(
        "upstream: 101 to an upgrade request carrying a body",
        req(
            "POST /bad/101 HTTP/1.1",
            "Host: h.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n",
            "hello",
        ),
        BadGateway,
    )
    .exclusive());
    add(Vector::new(
        "upstream: response + extra response, pipelined",
        format!("{}{}", get("/bad/extra"), get("/after-extra")),
        Forwarded(2),
    )
    .sent(2)
    .exclusive());
    add(Vector::steps(
        "upstream: extra response 100 ms late, next request",
        vec![
            Step::Send(get("/bad/late-extra").into_bytes()),
            Step::Await(b"target=/bad/late-extra", 3000),
            Step::Pause(400),
            Step::Send(get("/after-late").into_bytes()),
        ],
        Forwarded(2),
    )
    .sent(2)
    .exclusive());
    let mut head_body = Vector::new(
        "upstream: HEAD answered with a body, pipelined",
        format!("{}{}", req("HEAD /bad/head-body HTTP/1.1", "Host: h.test\r\n", ""), get("/after-head")),
        Forwarded(2),
    )
    .sent(2)
    .exclusive();
    head_body.head_at = Some(0);
    add(head_body);
    v
}
