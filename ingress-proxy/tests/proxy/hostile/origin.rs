//! The strict recording origin of the hostile-input suite: records every byte, reads requests
//! by RFC 9112 and nothing looser, and says why a request it got could be read two ways.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What an origin saw.
#[derive(Debug, Default)]
pub(super) struct Records {
    /// Every complete request, in the order served.
    pub(super) requests: Vec<Seen>,
    /// Per connection: every byte received, and what did not (yet) form a complete request.
    pub(super) conns: Vec<ConnBytes>,
}

#[derive(Debug, Default)]
pub(super) struct ConnBytes {
    pub(super) raw: Vec<u8>,
    pub(super) pending: Vec<u8>,
    /// The connection switched protocols: what follows is not HTTP.
    pub(super) tunnel: bool,
}

/// One request as the origin read it.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    /// The origin's request counter.
    pub(super) n: u64,
    pub(super) method: String,
    pub(super) target: String,
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) body: Vec<u8>,
    /// Why the request could be read another way (empty: it could not).
    pub(super) ambiguous: Vec<String>,
    pub(super) marker: Option<String>,
}

impl Seen {
    pub(super) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| &v[..])
    }
}

/// A raw TCP origin on 127.0.0.1 that parses strictly and records everything.
pub(super) struct Origin {
    pub(super) name: &'static str,
    pub(super) addr: SocketAddr,
    pub(super) records: Arc<Mutex<Records>>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn lock(records: &Mutex<Records>) -> std::sync::MutexGuard<'_, Records> {
    records.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Origin {
    pub(super) async fn start(name: &'static str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Records::default()));
        let shared = records.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = {
                    let mut r = lock(&shared);
                    r.conns.push(ConnBytes::default());
                    r.conns.len() - 1
                };
                tokio::spawn(serve_origin(name, stream, conn, shared.clone()));
            }
        });
        Origin { name, addr, records, task }
    }

    /// The complete requests carrying `marker`.
    pub(super) fn requests_of(&self, marker: &str) -> Vec<Seen> {
        lock(&self.records).requests.iter().filter(|s| s.marker.as_deref() == Some(marker)).cloned().collect()
    }

    /// What the origin received around `marker`, per connection that carried it.
    pub(super) fn bytes_around(&self, marker: &str) -> Vec<Vec<u8>> {
        let records = lock(&self.records);
        records
            .conns
            .iter()
            .filter_map(|c| {
                let at = c.raw.windows(marker.len()).position(|w| w == marker.as_bytes())?;
                let start = c.raw[..at].windows(4).rposition(|w| w == b"\r\n\r\n").map_or(0, |i| i + 4);
                Some(c.raw[start.max(at.saturating_sub(300))..c.raw.len().min(at + 400)].to_vec())
            })
            .collect()
    }

    /// Bytes of `marker` that did not form a complete request: for each, whether its head was
    /// complete (an upload cut short) or not (a head left hanging, waiting for more).
    pub(super) fn partials_of(&self, marker: &str) -> Vec<bool> {
        let records = lock(&self.records);
        records
            .conns
            .iter()
            .filter(|c| !c.tunnel && contains(&c.pending, marker.as_bytes()))
            .map(|c| head_complete(&c.pending))
            .collect()
    }
}

/// What the origin does after answering.
pub(super) enum Flow {
    Keep,
    Close,
    Tunnel,
}

pub(super) async fn serve_origin(
    name: &'static str,
    mut stream: TcpStream,
    conn: usize,
    records: Arc<Mutex<Records>>,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // A request answered as soon as its head came (`/early…`), whose body is still coming.
    let mut early: Option<usize> = None;
    loop {
        // Every complete request in the buffer, in order.
        loop {
            if early.is_none()
                && let Some(head) = early_head(&buf)
            {
                let seen = {
                    let mut r = lock(&records);
                    let seen = Seen { n: r.requests.len() as u64 + 1, ..head };
                    r.requests.push(seen.clone());
                    early = Some(r.requests.len() - 1);
                    seen
                };
                if let Flow::Close | Flow::Tunnel = respond(name, &seen, &mut stream).await {
                    return;
                }
            }
            let (parsed, used) = match parse_strict(&buf) {
                Strict::Partial => break,
                Strict::Complete(parsed, used) => (parsed, used),
                Strict::Invalid(why) => {
                    // Unreadable: recorded as an ambiguous request, answered 400, closed.
                    let seen = {
                        let mut r = lock(&records);
                        let seen = Seen {
                            n: r.requests.len() as u64 + 1,
                            method: "?".into(),
                            target: "?".into(),
                            headers: Vec::new(),
                            body: Vec::new(),
                            ambiguous: vec![why],
                            marker: find_marker(&buf),
                        };
                        r.requests.push(seen.clone());
                        r.conns[conn].pending.clear();
                        seen
                    };
                    let answer = format!(
                        "HTTP/1.1 400 Bad Request\r\nX-Origin: {name}\r\nX-Vec: {}\r\nX-N: {}\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n",
                        seen.marker.as_deref().unwrap_or("none"),
                        seen.n
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    return;
                }
            };
            if let Some(at) = early.take() {
                // The body of the request answered early: read, and judged with its head.
                let mut r = lock(&records);
                let answered = &mut r.requests[at];
                answered.body = parsed.body;
                answered.ambiguous = parsed.ambiguous;
                buf.drain(..used);
                r.conns[conn].pending.clone_from(&buf);
                continue;
            }
            let seen = {
                let mut r = lock(&records);
                let seen = Seen { n: r.requests.len() as u64 + 1, ..parsed };
                r.requests.push(seen.clone());
                seen
            };
            buf.drain(..used);
            lock(&records).conns[conn].pending.clone_from(&buf);
            match respond(name, &seen, &mut stream).await {
                Flow::Keep => {}
                Flow::Close => return,
                Flow::Tunnel => {
                    lock(&records).conns[conn].tunnel = true;
                    echo(&mut stream, &buf, conn, &records).await;
                    return;
                }
            }
        }
        lock(&records).conns[conn].pending.clone_from(&buf);
        if buf.len() > 4 << 20 {
            return;
        }
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        lock(&records).conns[conn].raw.extend_from_slice(&chunk[..n]);
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// After a `101`: echoes what comes (bounded in time), recording it.
pub(super) async fn echo(stream: &mut TcpStream, first: &[u8], conn: usize, records: &Mutex<Records>) {
    if stream.write_all(first).await.is_err() {
        return;
    }
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
        if n == 0 {
            return;
        }
        lock(records).conns[conn].raw.extend_from_slice(&chunk[..n]);
        if stream.write_all(&chunk[..n]).await.is_err() {
            return;
        }
    }
}

/// The origin's answer: `200` naming the origin, its counter and the vector, keep-alive; some
/// paths answer badly on purpose.
pub(super) async fn respond(name: &'static str, seen: &Seen, stream: &mut TcpStream) -> Flow {
    let marker = seen.marker.as_deref().unwrap_or("none");
    let ids = format!("X-Origin: {name}\r\nX-Vec: {marker}\r\nX-N: {}\r\n", seen.n);
    let body = format!("origin={name} n={} vec={marker} target={}", seen.n, seen.target.escape_debug());
    let ok = format!("HTTP/1.1 200 OK\r\n{ids}Content-Length: {}\r\n\r\n{body}", body.len());
    let evil = "HTTP/1.1 200 OK\r\nX-Origin: evil\r\nX-Vec: EVIL\r\nX-N: 0\r\nContent-Length: 4\r\n\r\nevil";
    let path = seen.target.split('?').next().unwrap_or("");
    let (bytes, flow) = match path.strip_prefix("/bad/") {
        None if path == "/up101" && seen.header("upgrade").is_some() => (
            format!(
                "HTTP/1.1 101 Switching Protocols\r\n{ids}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            ),
            Flow::Tunnel,
        ),
        None if seen.method == "HEAD" => {
            (format!("HTTP/1.1 200 OK\r\n{ids}Content-Length: {}\r\n\r\n", body.len()), Flow::Keep)
        }
        None => (ok, Flow::Keep),
        Some("double-cl") => (
            format!("HTTP/1.1 200 OK\r\n{ids}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            Flow::Keep,
        ),
        Some("double-cl-equal") => (
            format!("HTTP/1.1 200 OK\r\n{ids}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
            Flow::Keep,
        ),
        Some("cl-te") => (
            format!(
                "HTTP/1.1 200 OK\r\n{ids}Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n"
            ),
            Flow::Keep,
        ),
        Some("te-gzip") => {
            (format!("HTTP/1.1 200 OK\r\n{ids}Transfer-Encoding: gzip\r\n\r\nnot gzip at all"), Flow::Close)
        }
        Some("te-twice") => (
            format!(
                "HTTP/1.1 200 OK\r\n{ids}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n"
            ),
            Flow::Keep,
        ),
        Some("lf-chunk") => (
            format!("HTTP/1.1 200 OK\r\n{ids}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
            Flow::Keep,
        ),
        Some("trailer-response") => (
            format!(
                "HTTP/1.1 200 OK\r\n{ids}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n{evil}\r\n\r\n"
            ),
            Flow::Keep,
        ),
        Some("101") => (
            format!(
                "HTTP/1.1 101 Switching Protocols\r\n{ids}Upgrade: evil\r\nConnection: upgrade\r\n\r\n{evil}"
            ),
            Flow::Keep,
        ),
        Some("big-head") => {
            let pad: String = (0..20).map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(5 * 1024))).collect();
            (format!("HTTP/1.1 200 OK\r\n{ids}{pad}Content-Length: 2\r\n\r\nok"), Flow::Keep)
        }
        Some("endless-1xx") => {
            // An interim response every 20 ms, for at most 5 s.
            for _ in 0..250 {
                if stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                    return Flow::Close;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return Flow::Close;
        }
        Some("extra") => (format!("{ok}{evil}"), Flow::Keep),
        Some("late-extra") => {
            if stream.write_all(ok.as_bytes()).await.is_err() {
                return Flow::Close;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            (evil.to_owned(), Flow::Keep)
        }
        Some("head-body") => {
            (format!("HTTP/1.1 200 OK\r\n{ids}Content-Length: {}\r\n\r\n{evil}", evil.len()), Flow::Keep)
        }
        Some("short") => {
            (format!("HTTP/1.1 200 OK\r\n{ids}Content-Length: 100\r\n\r\nonly this"), Flow::Close)
        }
        Some("close") => (String::new(), Flow::Close),
        Some("big-head-slow") => {
            // The same 100 KiB head, in 4 KiB writes 2 ms apart: the proxy sees it grow.
            let pad: String = (0..20).map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(5 * 1024))).collect();
            let head = format!("HTTP/1.1 200 OK\r\n{ids}{pad}Content-Length: 2\r\n\r\nok");
            for piece in head.as_bytes().chunks(4096) {
                if stream.write_all(piece).await.is_err() {
                    return Flow::Close;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            return Flow::Keep;
        }
        Some("close-delimited") => (format!("HTTP/1.1 200 OK\r\n{ids}\r\n{evil}"), Flow::Close),
        Some("204-body") => (
            format!("HTTP/1.1 204 No Content\r\n{ids}Content-Length: {}\r\n\r\n{evil}", evil.len()),
            Flow::Keep,
        ),
        Some("lf-head") => (
            format!("HTTP/1.1 200 OK\n{}Content-Length: {}\n\n{body}", ids.replace("\r\n", "\n"), body.len()),
            Flow::Keep,
        ),
        Some("obs-fold") => {
            (format!("HTTP/1.1 200 OK\r\n{ids}X-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok"), Flow::Keep)
        }
        Some(_) => (ok, Flow::Keep),
    };
    if stream.write_all(bytes.as_bytes()).await.is_err() {
        return Flow::Close;
    }
    flow
}

/// The origin's reading of the start of its buffer.
pub(super) enum Strict {
    Partial,
    /// A request (its counter not set yet) and the bytes it took.
    Complete(Seen, usize),
    /// Bytes no strict server reads as a request.
    Invalid(String),
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first marker (`zz` three digits `zz`) in `bytes`.
pub(super) fn find_marker(bytes: &[u8]) -> Option<String> {
    bytes
        .windows(7)
        .find(|w| w.starts_with(b"zz") && w.ends_with(b"zz") && w[2..5].iter().all(u8::is_ascii_digit))
        .map(|w| String::from_utf8_lossy(w).into_owned())
}

/// A complete head for `/early…` at the start of `buf` (its body may still be coming).
pub(super) fn early_head(buf: &[u8]) -> Option<Seen> {
    let mut slots = vec![httparse::EMPTY_HEADER; 512];
    let mut req = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(len)) = req.parse(buf) else { return None };
    let target = req.path?.to_owned();
    if !target.starts_with("/early") {
        return None;
    }
    Some(Seen {
        n: 0,
        method: req.method.unwrap_or("").to_owned(),
        target,
        headers: req.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
        body: Vec::new(),
        ambiguous: Vec::new(),
        marker: find_marker(&buf[..len]),
    })
}

/// Whether `bytes` start with a complete request head.
pub(super) fn head_complete(bytes: &[u8]) -> bool {
    let mut slots = vec![httparse::EMPTY_HEADER; 512];
    matches!(httparse::Request::new(&mut slots).parse(bytes), Ok(httparse::Status::Complete(_)))
}

/// Parses the request at the start of `buf` the way a strict server does, and says what could
/// be read another way.
pub(super) fn parse_strict(buf: &[u8]) -> Strict {
    let mut slots = vec![httparse::EMPTY_HEADER; 512];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > 1 << 20 => {
            return Strict::Invalid("head over 1 MiB".into());
        }
        Ok(httparse::Status::Partial) => return Strict::Partial,
        Err(e) => {
            let fold = contains(buf, b"\n ") || contains(buf, b"\n\t");
            return Strict::Invalid(format!(
                "unparseable head ({e}{})",
                if fold { ", obs-fold" } else { "" }
            ));
        }
    };
    let head = &buf[..head_len];
    let mut why = Vec::new();
    if head.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r')) {
        why.push("bare LF in the head".to_owned());
    }
    let method = req.method.unwrap_or("").to_owned();
    let target = req.path.unwrap_or("").to_owned();
    if !target.starts_with('/') {
        why.push(format!("target not in origin form: {target:?}"));
    }
    let headers: Vec<(String, Vec<u8>)> =
        req.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect();
    let (mut hosts, mut lengths, mut encodings) = (0, Vec::new(), Vec::new());
    for (name, value) in &headers {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            why.push(format!("header name {name:?}"));
        }
        let text = String::from_utf8_lossy(value);
        match name.to_ascii_lowercase().as_str() {
            "host" => {
                hosts += 1;
                if value.iter().any(|&b| b == b'@' || b == b'/' || b == b' ' || b == b'\t') {
                    why.push(format!("Host {text:?}"));
                }
            }
            "content-length" => lengths.push(text.into_owned()),
            "transfer-encoding" => encodings.push(text.into_owned()),
            "upgrade" if text.to_ascii_lowercase().contains("h2c") => {
                why.push("h2c upgrade forwarded".into());
            }
            _ => {}
        }
    }
    if hosts > 1 {
        why.push(format!("{hosts} Host lines"));
    }
    // What the origin believes about the client comes from the proxy alone: one line each,
    // with the proxy's values.
    let all = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    for (name, want) in [
        ("x-real-ip", Some("127.0.0.1")),
        ("x-forwarded-proto", Some("http")),
        ("x-forwarded-for", None),
        ("x-forwarded-port", None),
        ("x-request-id", None),
    ] {
        let values = all(name);
        let wrong = match (want, &values[..]) {
            (_, [one]) if name == "x-forwarded-for" => !one.ends_with("127.0.0.1"),
            (Some(want), [one]) => one != want,
            (None, [_]) => false,
            _ => true,
        };
        if wrong {
            why.push(format!("{name} {values:?}"));
        }
    }
    let forwarded_host = all("x-forwarded-host");
    if forwarded_host.len() > 1 || forwarded_host.first().is_some_and(|h| all("host").first() != Some(h)) {
        why.push(format!("x-forwarded-host {forwarded_host:?} for Host {:?}", all("host")));
    }
    if lengths.len() > 1 {
        why.push(format!("Content-Length {lengths:?}"));
    }
    if !lengths.is_empty() && !encodings.is_empty() {
        why.push("Content-Length with Transfer-Encoding".into());
    }
    if encodings.len() > 1 || encodings.first().is_some_and(|e| !e.eq_ignore_ascii_case("chunked")) {
        why.push(format!("Transfer-Encoding {encodings:?}"));
    }
    let rest = &buf[head_len..];
    let (body, used) = if encodings.first().is_some_and(|e| e.eq_ignore_ascii_case("chunked")) {
        match dechunk_strict(rest, &mut why) {
            Ok(Some(done)) => done,
            Ok(None) => return Strict::Partial,
            Err(e) => return Strict::Invalid(format!("chunked body: {e} (after {})", why.join(", "))),
        }
    } else if let Some(length) = lengths.first() {
        let Some(n) = length.parse::<usize>().ok().filter(|_| length.bytes().all(|b| b.is_ascii_digit()))
        else {
            return Strict::Invalid(format!("Content-Length {length:?}"));
        };
        if rest.len() < n {
            return Strict::Partial;
        }
        (rest[..n].to_vec(), n)
    } else {
        (Vec::new(), 0)
    };
    let marker = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-vector"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .or_else(|| find_marker(head));
    let seen = Seen { n: 0, method, target, headers, body, ambiguous: why, marker };
    Strict::Complete(seen, head_len + used)
}

/// The next line of `data` from `at`: its content without the line end, and where the next
/// starts; notes a bare LF.
pub(super) fn line(data: &[u8], at: usize, why: &mut Vec<String>) -> Option<(Vec<u8>, usize)> {
    let end = data[at..].iter().position(|&b| b == b'\n')? + at;
    let mut line = &data[at..end];
    match line.last() {
        Some(b'\r') => line = &line[..line.len() - 1],
        _ => why.push("bare LF in chunk framing".into()),
    }
    Some((line.to_vec(), end + 1))
}

/// A chunked body, strictly: `Ok(None)` while incomplete; extensions, trailers and bare LFs
/// are noted in `why`.
pub(super) fn dechunk_strict(data: &[u8], why: &mut Vec<String>) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let Some((size_line, next)) = line(data, at, why) else {
            return if data.len() - at > 8192 { Err("chunk size line too long".into()) } else { Ok(None) };
        };
        let digits = size_line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 15 {
            return Err(format!("chunk size {:?}", String::from_utf8_lossy(&size_line)));
        }
        if digits < size_line.len() {
            why.push(format!("chunk extension {:?}", String::from_utf8_lossy(&size_line[digits..])));
        }
        let size = usize::from_str_radix(std::str::from_utf8(&size_line[..digits]).unwrap_or("0"), 16)
            .map_err(|e| e.to_string())?;
        at = next;
        if size == 0 {
            break;
        }
        if size > 64 << 20 {
            return Err("chunk over 64 MiB".into());
        }
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[at..at + size]);
        at += size;
        match (data[at], data[at + 1]) {
            (b'\r', b'\n') => at += 2,
            (b'\n', _) => {
                why.push("bare LF in chunk framing".into());
                at += 1;
            }
            _ => return Err("chunk data longer than its size".into()),
        }
    }
    let mut trailers = 0;
    loop {
        let Some((trailer, next)) = line(data, at, why) else {
            return if data.len() - at > 8192 { Err("trailer section too long".into()) } else { Ok(None) };
        };
        at = next;
        if trailer.is_empty() {
            break;
        }
        trailers += 1;
    }
    if trailers > 0 {
        why.push(format!("{trailers} trailer lines"));
    }
    Ok(Some((body, at)))
}

/// Whether a target reads as `/admin` (or below) to a server that normalizes as nginx does
/// (escapes decoded, slashes merged, dot segments resolved), or to one that does not decode.
pub(super) fn reads_as_admin(target: &str) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let is_admin = |p: &str| p == "/admin" || p.starts_with("/admin/");
    is_admin(&resolve(&percent_decode(path))) || is_admin(&resolve(path.as_bytes()))
}

pub(super) fn percent_decode(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&c| (c as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Merges slashes and resolves `.` and `..` segments (`..` above the root stays at the root).
pub(super) fn resolve(path: &[u8]) -> String {
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = path.ends_with(b"/") && !segments.is_empty();
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(&String::from_utf8_lossy(s));
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    out
}
