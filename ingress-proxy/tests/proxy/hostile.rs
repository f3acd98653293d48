//! Hostile input against the HTTP/1 engine, as an attacker would send it, with a verdict per
//! vector.
//!
//! The proxy routes `h.test` `/` to a strict recording origin ("main") and `h.test` `/admin` to
//! a second one ("admin"). Each vector goes out on a fresh client connection (whole, in pieces,
//! or trickled); what the client got back and what the origins recorded give its verdict:
//! `Rejected(status)` (the proxy answered itself, no origin saw a request of it), `Closed` (no
//! answer, as nginx closes on a header timeout), `Forwarded(n)` (the origins saw n requests,
//! the client got their n responses in order) or `BadGateway` (an upstream answered badly: the
//! client got a 502 or a cut response, and the connection closed). A vector is UNSAFE when an
//! origin saw a request the client got no answer for, a forwarded request can be read two ways
//! (the origin's strict parser says why), the catch-all origin saw a target that normalizes to
//! `/admin`, or the client got a response to something it did not send.
//!
//! Expected outcomes are nginx 1.27's (the ingress-nginx data plane), except where the engine
//! is deliberately stricter or documents another status: `431` for oversize heads, one space
//! between request-line parts, strict chunk and trailer grammar, `Host` without userinfo or a
//! non-numeric port, `405` for `CONNECT`, `505` for versions other than 1.0 and 1.1, `408` when
//! a body is too slow.
//!
//! Every vector carries a marker (`zzNNNzz`, in an `X-Vector` line of each request it sends),
//! so vectors run concurrently and the origins' records are matched on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ingress_proxy::{ClientLimits, RuntimeSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::Proxy;

mod origin;
mod vectors;

use self::origin::*;
use self::vectors::*;

/// The marker placeholder in a vector's bytes, as long as a marker (so lengths stay right).
const MK: &str = "zzVVVzz";

/// How long a client waits, after sending its last byte, for the proxy to close.
const PATIENCE: Duration = Duration::from_secs(5);

/// Vectors in flight at once.
const CONCURRENCY: usize = 12;

/// The limits the proxy runs with (short, so slow vectors end fast).
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_LIMIT: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Running a vector.

/// What a client connection saw.
#[derive(Debug, Default)]
struct Run {
    bytes: Vec<u8>,
    /// When the proxy closed (or reset) the connection, from the connect.
    closed_after: Option<Duration>,
    reset: bool,
    hung: bool,
}

fn replace_marker(bytes: &[u8], marker: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    while let Some(i) = out[at..].windows(MK.len()).position(|w| w == MK.as_bytes()) {
        out[at + i..at + i + MK.len()].copy_from_slice(marker.as_bytes());
        at += i + MK.len();
    }
    out
}

fn received(seen: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends the steps on a fresh connection and reads everything until the proxy closes, or
/// [`PATIENCE`] after the last step (then it hung).
async fn drive(proxy: SocketAddr, steps: Vec<Step>, hold: bool) -> Run {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut half) = stream.into_split();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ended = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let (w_seen, w_ended) = (seen.clone(), ended.clone());
    let writer = tokio::spawn(async move {
        'steps: for step in steps {
            if w_ended.load(Ordering::SeqCst) {
                break;
            }
            match step {
                Step::Send(bytes) => {
                    if half.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Trickle(bytes, ms) => {
                    for byte in bytes {
                        if w_ended.load(Ordering::SeqCst) || half.write_all(&[byte]).await.is_err() {
                            break 'steps;
                        }
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                }
                Step::Pieces(bytes, n, ms) => {
                    for (i, piece) in bytes.chunks(bytes.len().div_ceil(n.max(1)).max(1)).enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        if w_ended.load(Ordering::SeqCst) || half.write_all(piece).await.is_err() {
                            break 'steps;
                        }
                    }
                }
                Step::Await(text, ms) => {
                    let until = Instant::now() + Duration::from_millis(ms);
                    while !contains(&received(&w_seen), text)
                        && !w_ended.load(Ordering::SeqCst)
                        && Instant::now() < until
                    {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
        let _ = done_tx.send(());
        if hold {
            // Until the proxy closes or says it will.
            let until = Instant::now() + Duration::from_secs(10);
            while !w_ended.load(Ordering::SeqCst)
                && !contains(&received(&w_seen).to_ascii_lowercase(), b"connection: close")
                && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let _ = half.shutdown().await;
        // The write half stays open (shut down) until the test is done reading.
        while !w_ended.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut run = Run::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let cap = started + Duration::from_secs(25);
    let mut done_at: Option<Instant> = None;
    loop {
        let deadline = done_at.map_or(cap, |at| (at + PATIENCE).min(cap));
        tokio::select! {
            read = reader.read(&mut chunk) => match read {
                Ok(0) => {
                    run.closed_after = Some(started.elapsed());
                    break;
                }
                Ok(n) => {
                    run.bytes.extend_from_slice(&chunk[..n]);
                    received(&seen).extend_from_slice(&chunk[..n]);
                }
                Err(_) => {
                    run.reset = true;
                    run.closed_after = Some(started.elapsed());
                    break;
                }
            },
            _ = &mut done_rx, if done_at.is_none() => done_at = Some(Instant::now()),
            () = tokio::time::sleep_until(deadline.into()) => {
                run.hung = true;
                break;
            }
        }
    }
    ended.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    run
}

/// A response the client got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    /// From an origin: which, its counter, the vector it names.
    Origin { status: u16, origin: String, n: u64, vec: String },
    /// From the proxy itself.
    Proxy { status: u16, close: bool },
    /// Cut short.
    Truncated { status: Option<u16> },
    /// Bytes that are no response.
    Garbage(usize),
}

impl Got {
    fn token(&self) -> String {
        match self {
            Got::Origin { status: 200, .. } => "fwd".into(),
            Got::Origin { status, .. } => format!("fwd{status}"),
            Got::Proxy { status, .. } => status.to_string(),
            Got::Truncated { status: Some(status) } => format!("trunc({status})"),
            Got::Truncated { status: None } => "trunc".into(),
            Got::Garbage(n) => format!("garbage({n} B)"),
        }
    }
}

/// A chunked body at the start of `data`, leniently: its length with framing, if complete.
fn chunked_len(data: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let end = data[at..].iter().position(|&b| b == b'\n')? + at;
        let line = String::from_utf8_lossy(&data[at..end]);
        let digits: String = line.trim().chars().take_while(char::is_ascii_hexdigit).collect();
        let size = usize::from_str_radix(&digits, 16).ok()?;
        at = end + 1;
        if size == 0 {
            break;
        }
        at += size;
        if data.len() < at + 2 {
            return None;
        }
        at += if data[at] == b'\r' { 2 } else { 1 };
    }
    loop {
        let end = data[at..].iter().position(|&b| b == b'\n')? + at;
        let empty = data[at..end].iter().all(|&b| b == b'\r');
        at = end + 1;
        if empty {
            return Some(at);
        }
    }
}

/// The responses in what the client got (interim ones left out, and counted).
fn responses(mut data: &[u8], head_at: Option<usize>) -> (Vec<Got>, usize) {
    let mut got = Vec::new();
    let mut interim = 0;
    while !data.is_empty() {
        let mut slots = vec![httparse::EMPTY_HEADER; 256];
        let mut resp = httparse::Response::new(&mut slots);
        let len = match resp.parse(data) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                let status =
                    std::str::from_utf8(data.get(9..12).unwrap_or(b"")).ok().and_then(|s| s.parse().ok());
                got.push(Got::Truncated { status });
                break;
            }
            Err(_) => {
                got.push(Got::Garbage(data.len()));
                break;
            }
        };
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            interim += 1;
            data = &data[len..];
            continue;
        }
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
        };
        let origin = header("x-origin");
        let rest = &data[len..];
        let bodyless = status == 101 || status == 204 || status == 304 || head_at == Some(got.len());
        let body = if bodyless {
            Some(0)
        } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            chunked_len(rest)
        } else if let Some(length) = header("content-length") {
            length.parse::<usize>().ok().filter(|&n| n <= rest.len())
        } else {
            Some(rest.len())
        };
        let Some(body) = body else {
            got.push(Got::Truncated { status: Some(status) });
            break;
        };
        got.push(match origin {
            Some(origin) => Got::Origin {
                status,
                origin,
                n: header("x-n").and_then(|n| n.parse().ok()).unwrap_or(0),
                vec: header("x-vec").unwrap_or_default(),
            },
            None => Got::Proxy {
                status,
                close: header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")),
            },
        });
        data = &rest[body..];
        if status == 101 {
            // What follows went through the tunnel.
            break;
        }
    }
    (got, interim)
}

/// A vector's outcome.
struct Outcome {
    id: usize,
    name: String,
    expect: Verdict,
    actual: Verdict,
    unsafe_because: Vec<String>,
    detail: String,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.unsafe_because.is_empty() && self.actual == self.expect
    }
}

fn lossy(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).escape_debug().to_string();
    if bytes.len() > max { format!("{text}…(+{})", bytes.len() - max) } else { text }
}

async fn run_vector(id: usize, vector: Vector, proxy: SocketAddr, origins: &[Origin]) -> Outcome {
    let marker = format!("zz{id:03}zz");
    let steps = vector
        .steps
        .iter()
        .map(|step| match step {
            Step::Send(bytes) => Step::Send(replace_marker(bytes, &marker)),
            Step::Trickle(bytes, ms) => Step::Trickle(replace_marker(bytes, &marker), *ms),
            Step::Pieces(bytes, n, ms) => Step::Pieces(replace_marker(bytes, &marker), *n, *ms),
            other => other.clone(),
        })
        .collect();
    let run = drive(proxy, steps, vector.hold).await;
    // What the proxy sent upstream has reached the origins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    judge(id, &vector, &marker, &run, origins)
}

/// The verdict, from what the client got and what the origins recorded.
fn judge(id: usize, vector: &Vector, marker: &str, run: &Run, origins: &[Origin]) -> Outcome {
    let mut unsafe_because = Vec::new();
    let mut seen = Vec::new();
    let mut cut = 0;
    for origin in origins {
        for s in origin.requests_of(marker) {
            if !s.ambiguous.is_empty() {
                unsafe_because.push(format!(
                    "{} read {} {} ambiguously: {}",
                    origin.name,
                    s.method,
                    s.target,
                    s.ambiguous.join("; ")
                ));
            }
            if origin.name == "main" && reads_as_admin(&s.target) {
                unsafe_because.push(format!("admin routing dodged: main saw {:?}", s.target));
            }
            seen.push((origin.name, s));
        }
        for head_done in origin.partials_of(marker) {
            if head_done {
                cut += 1;
            } else {
                unsafe_because.push(format!(
                    "{} holds an unfinished head (a prefix for the next request)",
                    origin.name
                ));
            }
        }
    }
    let (got, interim) = responses(&run.bytes, vector.head_at);
    let from_origin: Vec<(&str, u64, &str)> = got
        .iter()
        .filter_map(|g| match g {
            Got::Origin { origin, n, vec, .. } => Some((origin.as_str(), *n, vec.as_str())),
            _ => None,
        })
        .collect();
    for &(origin, n, vec) in &from_origin {
        if vec != marker {
            unsafe_because.push(format!("response meant for {vec:?} (from {origin}, #{n})"));
        }
    }
    if seen.len() > got.len() {
        unsafe_because.push(format!(
            "origins saw {} requests, the client got {} responses",
            seen.len(),
            got.len()
        ));
    }
    if got.len() > vector.sent {
        unsafe_because.push(format!("{} responses to {} requests sent", got.len(), vector.sent));
    }
    // Each origin's responses come in the order it served the requests, one per request.
    for origin in origins {
        let answered: Vec<u64> =
            from_origin.iter().filter(|r| r.0 == origin.name && r.2 == marker).map(|r| r.1).collect();
        let served: Vec<u64> = seen.iter().filter(|(o, _)| *o == origin.name).map(|(_, s)| s.n).collect();
        if answered.windows(2).any(|w| w[0] >= w[1]) || answered.iter().any(|n| !served.contains(n)) {
            unsafe_because
                .push(format!("{} responses {answered:?} do not match its requests {served:?}", origin.name));
        }
    }
    let tokens: Vec<String> = got.iter().map(Got::token).collect();
    let actual = if run.hung {
        Verdict::Hung
    } else if let (Some(limit), Some(after)) = (vector.within, run.closed_after)
        && after > limit
    {
        Verdict::Other(format!("closed after {:.1} s", after.as_secs_f64()))
    } else {
        match (seen.len(), &got[..]) {
            (0, []) => Verdict::Closed,
            // An HTTP/2 frame header (type 4, SETTINGS, on stream 0) first: HTTP/2's answer.
            (0, [Got::Garbage(_)])
                if run.bytes.get(3) == Some(&4) && run.bytes.get(5..9) == Some(&[0u8; 4][..]) =>
            {
                Verdict::Http2
            }
            (0, [Got::Proxy { status, .. }]) => Verdict::Rejected(*status),
            (1, [Got::Proxy { status: 502, close: true }] | [Got::Truncated { .. }]) => Verdict::BadGateway,
            (n, all) if n == all.len() && all.iter().all(|g| matches!(g, Got::Origin { .. })) => {
                Verdict::Forwarded(n)
            }
            (n, _) => Verdict::Other(format!("[{}] origin saw {n}", tokens.join(" "))),
        }
    };
    let mut detail = format!(
        "client got {} bytes{}{}{}: {}",
        run.bytes.len(),
        run.closed_after.map_or(String::new(), |t| format!(", closed after {:.2} s", t.as_secs_f64())),
        if run.reset { " (reset)" } else { "" },
        if interim > 0 { format!(", {interim} interim") } else { String::new() },
        lossy(&run.bytes, 240)
    );
    for (origin, s) in &seen {
        detail.push_str(&format!(
            "\n        {origin} #{} saw {} {} body {} B{}",
            s.n,
            s.method,
            lossy(s.target.as_bytes(), 80),
            s.body.len(),
            if s.ambiguous.is_empty() {
                String::new()
            } else {
                format!(" AMBIGUOUS: {}", s.ambiguous.join("; "))
            }
        ));
    }
    for origin in origins {
        for bytes in origin.bytes_around(marker) {
            detail.push_str(&format!("\n        {} received: {}", origin.name, lossy(&bytes, 400)));
        }
    }
    if cut > 0 {
        detail.push_str(&format!(
            "\n        {cut} upload(s) cut short at the origin (head complete, body not)"
        ));
    }
    Outcome { id, name: vector.name.clone(), expect: vector.expect.clone(), actual, unsafe_because, detail }
}

/// Waits until the proxy serves (its listener is up and the table installed).
async fn warm_up(proxy: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut client) = TcpStream::connect(proxy).await {
            let request = get("/warm-up")
                .replace(MK, "zz999zz")
                .replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n");
            if client.write_all(request.as_bytes()).await.is_ok() {
                let mut answer = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut answer)).await;
                if answer.starts_with(b"HTTP/1.1 200") {
                    return;
                }
            }
        }
        assert!(Instant::now() < until, "the proxy did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[allow(clippy::print_stdout)]
fn report(outcomes: &[Outcome], stray: &[String], took: Duration) -> (usize, usize) {
    println!("\n{:<4} {:<58} {:<16} {:<30}", "#", "vector", "expected", "actual");
    for o in outcomes {
        let actual =
            if o.unsafe_because.is_empty() { o.actual.to_string() } else { format!("UNSAFE ({})", o.actual) };
        let mark = if o.passed() { "" } else { "  <-- MISMATCH" };
        println!("{:<4} {:<58} {:<16} {actual}{mark}", o.id, o.name, o.expect.to_string());
        for why in &o.unsafe_because {
            println!("        UNSAFE: {why}");
        }
        if !o.passed() || std::env::var_os("HOSTILE_VERBOSE").is_some() {
            println!("        {}", o.detail);
        }
    }
    for s in stray {
        println!("STRAY: {s}");
    }
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let unsafe_count = count(&|o| !o.unsafe_because.is_empty()) + stray.len();
    let hung = count(&|o| o.actual == Verdict::Hung);
    println!(
        "\nvectors: {}, rejected: {}, forwarded: {}, closed: {}, bad-gateway: {}, other: {}, unsafe: {unsafe_count}, hung: {hung}",
        outcomes.len(),
        count(&|o| matches!(o.actual, Verdict::Rejected(_))),
        count(&|o| matches!(o.actual, Verdict::Forwarded(_))),
        count(&|o| o.actual == Verdict::Closed),
        count(&|o| o.actual == Verdict::BadGateway),
        count(&|o| matches!(o.actual, Verdict::Other(_))),
    );
    println!("mismatches: {}, took {:.1} s", count(&|o| !o.passed()), took.as_secs_f64());
    (unsafe_count, hung)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_their_verdicts() {
    let started = Instant::now();
    let origins = [Origin::start("main").await, Origin::start("admin").await];
    let (main, admin) = (origins[0].addr, origins[1].addr);
    let (proxy, _store) = Proxy::serving(|r| {
        r.route("hostile", "h.test", "/", "main", &[main]).route(
            "hostile-admin",
            "h.test",
            "/admin",
            "admin",
            &[admin],
        )
    });
    proxy.handle.set_settings(RuntimeSettings {
        max_body_size: Some(BODY_LIMIT),
        client: ClientLimits {
            header_timeout: HEADER_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            keepalive_timeout: Duration::from_secs(5),
            ..ClientLimits::default()
        },
        ..RuntimeSettings::default()
    });
    warm_up(proxy.http).await;

    let vectors = vectors();
    assert!(vectors.len() >= 120, "{} vectors", vectors.len());
    let (alone, together): (Vec<_>, Vec<_>) = vectors.into_iter().enumerate().partition(|(_, v)| v.exclusive);
    let mut outcomes: Vec<Outcome> = futures_util::stream::iter(together)
        .map(|(id, v)| run_vector(id, v, proxy.http, &origins))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (id, v) in alone {
        outcomes.push(run_vector(id, v, proxy.http, &origins).await);
    }
    outcomes.sort_by_key(|o| o.id);

    // Whatever reached an origin belongs to a vector (or the warm-up).
    let known = |m: &Option<String>| {
        m.as_deref().is_some_and(|m| {
            (m == "zz999zz" || m.starts_with("zz9"))
                || m.get(2..5).and_then(|d| d.parse::<usize>().ok()).is_some_and(|i| i < outcomes.len())
        })
    };
    let mut stray = Vec::new();
    for origin in &origins {
        let records = lock(&origin.records);
        for s in records.requests.iter().filter(|s| !known(&s.marker)) {
            stray.push(format!("{} saw {} {} with no vector's marker", origin.name, s.method, s.target));
        }
        for c in records
            .conns
            .iter()
            .filter(|c| !c.tunnel && !c.pending.is_empty() && find_marker(&c.pending).is_none())
        {
            stray.push(format!(
                "{} holds {} bytes no vector sent: {}",
                origin.name,
                c.pending.len(),
                lossy(&c.pending, 120)
            ));
        }
    }
    // Controls: the same judge, with the proxy taken out, must call these unsafe (so a clean
    // table means the proxy stopped them, not that the judge is blind).
    let controls = [
        Vector::new(
            "control: CL.TE",
            req(
                "POST / HTTP/1.1",
                "Host: h.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            Verdict::Forwarded(1),
        ),
        Vector::new("control: /%61dmin at the catch-all", get("/%61dmin"), Verdict::Forwarded(1)),
        Vector::new(
            "control: X-Real-IP: 6.6.6.6",
            req("GET / HTTP/1.1", "Host: h.test\r\nX-Real-IP: 6.6.6.6\r\n", ""),
            Verdict::Forwarded(1),
        ),
        Vector::new(
            "control: a body read as a request",
            format!("{}{}", req("POST / HTTP/1.1", "Host: h.test\r\nContent_Length: 5\r\n", ""), get("/x")),
            Verdict::Forwarded(1),
        ),
        Vector::new(
            "control: bare LF",
            format!("GET / HTTP/1.1\nHost: h.test\nX-Vector: {MK}\n\n"),
            Verdict::Forwarded(1),
        ),
    ];
    let mut blind = Vec::new();
    for (i, control) in controls.into_iter().enumerate() {
        let name = control.name.clone();
        let outcome = run_vector(900 + i, control, main, &origins).await;
        if outcome.unsafe_because.is_empty() {
            blind.push(format!("{name}: {}", outcome.detail));
        }
    }
    assert!(blind.is_empty(), "the judge missed unsafe controls: {blind:#?}");

    let (unsafe_count, hung) = report(&outcomes, &stray, started.elapsed());
    let failed: Vec<String> =
        outcomes.iter().filter(|o| !o.passed()).map(|o| format!("#{} {}", o.id, o.name)).collect();
    assert!(failed.is_empty(), "vectors not as expected: {failed:#?}");
    assert_eq!((unsafe_count, hung), (0, 0), "unsafe or hung vectors");
}
