//! Entry points for `cargo fuzz` (the `fuzz/` crate at the root of the repository), one per
//! byte parser of the HTTP/1 engine, plus the PROXY protocol header's and the TLS
//! ClientHello's (from their own modules). Each runs its parser on arbitrary bytes and asserts what
//! must hold of the result, panicking when it does not; the fuzz targets only call them.
//! Built with the `fuzzing` feature only: this is not an API.
//!
//! A child of `crate::h1`, whose parsers are private to it; re-exported at the crate root as
//! `ingress_proxy::fuzz` when the feature is on.

/// The ClientHello reader of the TLS passthrough front.
pub use crate::passthrough::hello::fuzz_client_hello as client_hello;
/// The PROXY protocol header parser of the TCP service ports.
pub use crate::proxy_protocol::fuzz_header as proxy_protocol;

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::pipeline::client::{Connection, Sent, identify};
use crate::pipeline::edits::{HOP_BY_HOP, Names, PROXY_OWNED, RequestEdits, ResponseEdits, is_valid_name};

use super::chunks::{Chunks, LAST_CHUNK};
use super::head::{BodyFraming, Head, HeadLimits, Parsed};
use super::response::{Asked, Framing};
use super::{chunks, head, request, response};

/// The head limits of the default [`crate::ClientLimits`] (nginx's): 8 KiB lines, 32 KiB heads.
const LIMITS: HeadLimits = HeadLimits { line: 8 * 1024, total: 4 * 8 * 1024 };

/// Limits small enough for fuzz inputs to cross them.
const SMALL_LIMITS: HeadLimits = HeadLimits { line: 64, total: 256 };

/// The request id used when the client sent none (a generated one is random).
const REQUEST_ID: &[u8] = b"0123456789abcdef0123456789abcdef";

/// Header lines an upstream head written by the proxy can have: the client's (at most
/// [`head::MAX_HEADERS`]) and a dozen of the proxy's own.
const MAX_WRITTEN_HEADERS: usize = head::MAX_HEADERS + 32;

/// `bytes` for a panic message: printable ASCII as is, the rest escaped.
fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", bytes.escape_ascii());
    s
}

/// Values of the header lines named `name` (any case).
fn values<'h>(headers: &'h [httparse::Header<'h>], name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
}

/// `value` as a decimal `Content-Length`, if it is one.
fn length(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value.trim_ascii()).ok().filter(|v| !v.is_empty()).and_then(|v| v.parse().ok())
}

/// Asserts that no header value holds a CR or LF.
fn no_line_breaks(headers: &[httparse::Header<'_>], out: &[u8]) {
    for h in headers {
        assert!(
            !h.value.iter().any(|&b| b == b'\r' || b == b'\n'),
            "line break in the value of {}: {}",
            h.name,
            show(out)
        );
    }
}

/// The request head parser and the upstream request written from what it accepts.
///
/// `data` is the start of a client connection's buffer. Checks that:
/// - a smaller `HeadLimits` only ever adds a `414`/`431` refusal, and otherwise gives the
///   same result;
/// - an accepted head is no longer than the buffer;
/// - the upstream head written from it (with the default header names, then with
///   underscores and invalid names forwarded; over TLS and not) parses again with httparse as
///   one complete HTTP/1.1 request with the same method and target, and has exactly one `Host`
///   line, naming the host the request was routed on; a `Transfer-Encoding: chunked` line
///   exactly when the body is chunked; at most one `Content-Length`, with the body's length;
///   no CR or LF in a value; no name that the names setting does not forward (no `_` by
///   default); none of the client's hop-by-hop or nominated headers; and each header the
///   proxy owns exactly once.
pub fn request_head(data: &[u8]) {
    let mut slots = head::header_slots();
    let parsed = head::parse(data, &mut slots, LIMITS);
    let mut small_slots = head::header_slots();
    let small = head::parse(data, &mut small_slots, SMALL_LIMITS);
    limits_only_refuse(&parsed, &small, data);
    let Parsed::Request(head) = parsed else { return };
    assert!(head.len <= data.len(), "head of {} bytes in a buffer of {}", head.len, data.len());
    for names in [
        Names { underscores: false, ignore_invalid: true },
        Names { underscores: true, ignore_invalid: false },
    ] {
        for tls in [false, true] {
            upstream_request(&head, names, tls);
        }
    }
}

/// What of a [`Head`] two parses of the same bytes must agree on.
fn summary<'a>(head: &'a Head<'a>) -> impl PartialEq + std::fmt::Debug + 'a {
    (
        (head.len, head.minor, head.method, head.origin_form, head.host, head.absolute, head.close),
        (head.request_id, head.body, head.expect_continue, head.upgrade),
        (head.headers.len(), head.nominated()),
    )
}

/// Asserts that `small` (parsed with [`SMALL_LIMITS`]) is `parsed` (with [`LIMITS`]), or a
/// size refusal.
fn limits_only_refuse(parsed: &Parsed<'_>, small: &Parsed<'_>, data: &[u8]) {
    let same = match (parsed, small) {
        (_, Parsed::Refused(r)) if matches!(r.status, 414 | 431) => true,
        (Parsed::Partial, Parsed::Partial) => true,
        (Parsed::Refused(a), Parsed::Refused(b)) => a == b,
        (Parsed::Request(a), Parsed::Request(b)) => summary(a) == summary(b),
        _ => false,
    };
    assert!(same, "smaller limits changed {parsed:?} into {small:?}: {}", show(data));
}

/// Writes `head` upstream as the engine does and checks what was written.
fn upstream_request(head: &Head<'_>, names: Names, tls: bool) {
    // Nothing trusted (the default), and every forwarding header believed from every peer.
    let trusting = crate::config::Forwarding {
        use_forwarded_headers: true,
        compute_full_forwarded_for: tls,
        ..crate::config::Forwarding::default()
    };
    for forwarding in [crate::config::Forwarding::default(), trusting] {
        upstream_request_with(head, names, tls, &forwarding);
    }
}

fn upstream_request_with(head: &Head<'_>, names: Names, tls: bool, forwarding: &crate::config::Forwarding) {
    let port = if tls { "443" } else { "80" };
    let connection = Connection { peer: Some((IpAddr::from([192, 0, 2, 1]), "192.0.2.1")), tls, port };
    let sent = Sent::from_lines(forwarding, head.headers.iter().map(|h| (h.name, h.value)));
    let client = identify(forwarding, connection, head.host, sent);
    let edits = RequestEdits {
        target: None,
        host: None,
        forwarded_prefix: None,
        client: &client,
        request_id: head.request_id.unwrap_or(REQUEST_ID),
        nominated: head.nominated(),
        names,
        global: &[],
        route: &[],
        auth: &[],
    };
    let mut out = Vec::new();
    request::write(head, &edits, &mut out);

    let mut headers = [httparse::EMPTY_HEADER; MAX_WRITTEN_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "bytes after the head: {}", show(&out)),
        other => panic!("the upstream head does not parse ({other:?}): {}", show(&out)),
    }
    assert_eq!(req.version, Some(1), "{}", show(&out));
    assert_eq!(req.method, Some(head.method), "{}", show(&out));
    assert_eq!(req.path, Some(head.origin_form), "{}", show(&out));
    let headers: &[httparse::Header<'_>] = req.headers;
    no_line_breaks(headers, &out);

    let hosts: Vec<&[u8]> = values(headers, "host").collect();
    assert_eq!(hosts.len(), 1, "Host lines: {}", show(&out));
    assert_eq!(hosts[0].trim_ascii(), head.host.as_bytes(), "not the routed host: {}", show(&out));

    let codings: Vec<&[u8]> = values(headers, "transfer-encoding").collect();
    let lengths: Vec<&[u8]> = values(headers, "content-length").collect();
    assert!(lengths.len() <= 1, "Content-Length lines: {}", show(&out));
    let length = lengths.first().map(|v| length(v));
    match head.body {
        BodyFraming::Chunked => {
            assert!(codings == [b"chunked"] && lengths.is_empty(), "chunked framing: {}", show(&out));
        }
        BodyFraming::Length(n) => {
            assert!(codings.is_empty() && length == Some(Some(n)), "length {n} framing: {}", show(&out));
        }
        BodyFraming::None => {
            assert!(codings.is_empty() && matches!(length, None | Some(Some(0))), "no body: {}", show(&out));
        }
    }

    for h in headers {
        if names.ignore_invalid {
            assert!(
                is_valid_name(h.name, names.underscores),
                "{names:?} forwards {}: {}",
                h.name,
                show(&out)
            );
        }
    }
    let engine_owned = ["host", "content-length", "transfer-encoding", "upgrade", "connection"];
    for &name in HOP_BY_HOP.iter().chain(head.nominated()) {
        let is = |n: &&str| n.eq_ignore_ascii_case(name);
        if !engine_owned.iter().any(is) && !PROXY_OWNED.iter().any(is) {
            assert_eq!(values(headers, name).count(), 0, "{name} forwarded: {}", show(&out));
        }
    }
    let upgrade = usize::from(head.upgrade.is_some());
    assert_eq!(values(headers, "upgrade").count(), upgrade, "Upgrade lines: {}", show(&out));
    assert_eq!(values(headers, "connection").count(), upgrade, "Connection lines: {}", show(&out));
    for name in PROXY_OWNED {
        let want = usize::from(match name {
            "x-forwarded-host" => !client.host.is_empty(),
            "x-original-forwarded-for" => client.original_forwarded_for.is_some(),
            "x-original-forwarded-host" => client.original_forwarded_host.is_some(),
            _ => true,
        });
        assert_eq!(values(headers, name).count(), want, "{name} lines: {}", show(&out));
    }
}

/// What decoding a chunked body in some pieces gave.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    /// Bytes of the input that belong to the body (so far); `None` once refused, as
    /// [`Chunks::feed`] does not say where in its input the framing broke.
    used: Option<usize>,
    /// The chunk data.
    data: Vec<u8>,
    /// The runs of chunk data, as handed out.
    runs: Vec<Vec<u8>>,
    /// Whether the body ended, or why it is refused.
    outcome: Result<bool, &'static str>,
    /// The decoder's count of data bytes.
    payload: u64,
}

/// Decodes `body` fed to one [`Chunks`] in the pieces `cuts` gives, checking what each
/// [`Chunks::feed`] returns.
fn decode(body: &[u8], cuts: impl IntoIterator<Item = usize>) -> Decoded {
    let mut chunks = Chunks::default();
    let mut data = Vec::new();
    let mut runs = Vec::new();
    let (mut at, mut outcome) = (0, Ok(false));
    let mut cuts = cuts.into_iter().chain([body.len()]);
    while at < body.len() || chunks.is_done() {
        let end = cuts.next().map_or(body.len(), |c| c.clamp(at, body.len()));
        let piece = &body[at..end];
        let was_done = chunks.is_done();
        match chunks.feed(piece, |run| {
            assert!(!run.is_empty(), "an empty run of chunk data");
            data.extend_from_slice(run);
            runs.push(run.to_vec());
        }) {
            Ok(used) => {
                assert!(used <= piece.len(), "used {used} of {} bytes", piece.len());
                assert!(!was_done || used == 0, "bytes used after the end of the body");
                assert!(chunks.is_done() || used == piece.len(), "bytes left, body not ended");
                at += used;
                outcome = Ok(chunks.is_done());
                if chunks.is_done() {
                    break;
                }
            }
            Err(why) => {
                outcome = Err(why);
                break;
            }
        }
    }
    Decoded { used: outcome.is_ok().then_some(at), data, runs, outcome, payload: chunks.payload }
}

/// The chunk decoder.
///
/// `data` is `n` (the first byte, modulo 8), `n` piece lengths (one byte each), then a body.
/// Checks that decoding the body in one piece, in the pieces `data` gives, and a byte at a time
/// agree on where the body ends, its data, and whether it ended or is refused; that the data
/// count is the data's length; and that the data, encoded again with `chunks::encode` (as one
/// chunk, and as the runs it was handed out in) and `LAST_CHUNK`, decodes to the same data.
pub fn chunked_body(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let (lengths, body) = rest.split_at(usize::from(n % 8).min(rest.len()));
    let cuts: Vec<usize> = lengths
        .iter()
        .scan(0, |at, &len| {
            *at += usize::from(len);
            Some(*at)
        })
        .collect();

    let whole = decode(body, []);
    assert_eq!(whole.payload, whole.data.len() as u64, "payload count: {}", show(body));
    assert_eq!(whole.runs.concat(), whole.data);
    let same = |other: Decoded, how: &str| {
        let (a, b) = (&whole, &other);
        assert!(
            (a.used, &a.data, a.outcome, a.payload) == (b.used, &b.data, b.outcome, b.payload),
            "in one piece {a:?}, {how} {b:?}: {}",
            show(body)
        );
    };
    same(decode(body, cuts), "in pieces");
    same(decode(body, 1..body.len()), "byte by byte");

    for runs in [std::slice::from_ref(&whole.data), &whole.runs[..]] {
        let mut encoded = Vec::new();
        for run in runs {
            chunks::encode(run, &mut encoded);
        }
        encoded.extend_from_slice(LAST_CHUNK);
        let again = decode(&encoded, []);
        assert!(
            again.outcome == Ok(true) && again.used == Some(encoded.len()) && again.data == whole.data,
            "re-encoded {} as {}: {again:?}",
            show(&whole.data),
            show(&encoded)
        );
    }
}

/// The response head parser.
///
/// `data` is a flags byte, then the start of the upstream's buffer. The low four bits of the
/// flags give the request's `Asked`: `1` a `HEAD` request, `2` an HTTP/1.0 client, `4` a
/// connection that closes after the response, `8` an upgrade request. Checks that a head is
/// no longer than the buffer, and that the head written for the client on a final or
/// switching response parses again with httparse as one complete HTTP/1.1 response with the
/// same status; has no CR or LF in a value; one `Date`; and framing headers consistent with the
/// returned `Framing` (at most one of them), or none on `101`, and one `Connection` that
/// says what the response says.
pub fn response_head(data: &[u8]) {
    let Some((&flags, buf)) = data.split_first() else { return };
    let asked = Asked {
        head: flags & 1 != 0,
        minor: u8::from(flags & 2 == 0),
        close: flags & 4 != 0,
        upgrade: flags & 8 != 0,
    };
    let mut out = Vec::new();
    let (status, len, last) = match response::parse(buf, &asked, &ResponseEdits::default(), &mut out) {
        Err(_) | Ok(response::Parsed::Partial) => return,
        Ok(response::Parsed::Interim(len)) => {
            assert!(0 < len && len <= buf.len(), "interim head of {len} bytes in {}", buf.len());
            return;
        }
        Ok(response::Parsed::Switching(len)) => {
            assert!(asked.upgrade, "101 to a request without an upgrade");
            (101, len, None)
        }
        Ok(response::Parsed::Final(f)) => (f.status, f.len, Some(f)),
    };
    assert!(len <= buf.len(), "head of {len} bytes in a buffer of {}", buf.len());

    let mut headers = [httparse::EMPTY_HEADER; MAX_WRITTEN_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "bytes after the head: {}", show(&out)),
        other => panic!("the head for the client does not parse ({other:?}): {}", show(&out)),
    }
    assert_eq!((resp.version, resp.code), (Some(1), Some(status)), "{}", show(&out));
    let headers: &[httparse::Header<'_>] = resp.headers;
    no_line_breaks(headers, &out);
    assert_eq!(values(headers, "date").count(), 1, "Date lines: {}", show(&out));
    let connection: Vec<&[u8]> = values(headers, "connection").collect();
    let codings: Vec<&[u8]> = values(headers, "transfer-encoding").collect();
    let lengths: Vec<&[u8]> = values(headers, "content-length").collect();

    let Some(f) = last else {
        assert!(codings.is_empty() && lengths.is_empty(), "framing on a 101: {}", show(&out));
        assert_eq!(connection, [b"upgrade"], "Connection on a 101: {}", show(&out));
        return;
    };
    let chunked = codings.len() == 1 && codings[0].trim_ascii().eq_ignore_ascii_case(b"chunked");
    let consistent = match f.framing {
        Framing::Length(n) => codings.is_empty() && lengths.len() == 1 && length(lengths[0]) == Some(n),
        Framing::Chunked | Framing::Rechunk => chunked && lengths.is_empty(),
        Framing::Dechunk | Framing::Raw => codings.is_empty() && lengths.is_empty(),
        // The length of the resource a bodyless response describes, or its coding.
        Framing::Empty => {
            codings.len() + lengths.len() <= 1
                && (codings.is_empty() || (chunked && asked.minor == 1))
                && lengths.iter().all(|v| length(v).is_some())
        }
    };
    assert!(consistent, "framing headers for {:?}: {}", f.framing, show(&out));
    assert!(!asked.head || f.framing == Framing::Empty, "a body for HEAD");
    assert!(f.close || !(asked.close || matches!(f.framing, Framing::Dechunk | Framing::Raw)));
    assert!(!f.keep_alive || !matches!(f.framing, Framing::Raw | Framing::Rechunk));
    let want: &[u8] = if f.close { b"close" } else { b"keep-alive" };
    assert_eq!(connection, [want], "Connection for close={}: {}", f.close, show(&out));
}

/// An error backend's response (`custom-http-errors`) and the header rewrites a route applies
/// to upstream values. The first byte holds flags: `1` a `HEAD` request, `2` the connection
/// ended after the bytes. Checks that a page parsed before the end parses the same at the end
/// (more bytes cannot change a whole response), that its body is no longer than the input and
/// its status final, that no header value carries CR, LF or NUL, and that rewriting a value
/// (`Location`, `Set-Cookie`) adds none either.
pub fn error_page(data: &[u8]) {
    use crate::pipeline::subrequest::parse;
    let Some((&flags, buf)) = data.split_first() else { return };
    let (head, eof) = (flags & 1 != 0, flags & 2 != 0);
    let Ok(Some(page)) = parse(buf, head, eof) else { return };
    if !eof {
        assert_eq!(parse(buf, head, true), Ok(Some(page.clone())), "{}", show(buf));
    }
    assert!((200..600).contains(&page.status), "{}", show(buf));
    assert!(page.body.len() <= buf.len(), "{}", show(buf));
    assert!(!head || page.body.is_empty(), "a body for HEAD: {}", show(buf));
    let rewrites = ingress_core::ResponseRewrites {
        redirect: Some(ingress_core::PrefixRewrite { from: "http://a/".into(), to: "https://b/".into() }),
        cookie_domain: Some(ingress_core::PrefixRewrite { from: "a".into(), to: "b.example".into() }),
        cookie_path: Some(ingress_core::PrefixRewrite { from: "/".into(), to: "/app/".into() }),
    };
    for (name, value) in &page.headers {
        let clean = |v: &str| !v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
        assert!(clean(value), "{name}: {value:?}");
        for as_name in ["location", "refresh", "set-cookie"] {
            if let Some(new) = rewrites.rewrite(as_name, value) {
                assert!(clean(&new), "{as_name}: {value:?} -> {new:?}");
            }
        }
    }
}
