//! The HTTP/1 engine at the byte level: pipelined and split requests, HTTP/1.0 and 1.1 on one
//! connection, heads it refuses, upstream framing it relays or refuses.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_split_and_http_1_0_requests_share_one_connection() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("f", "f.example.com", "/", "svc", &[b.addr]));
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    let mut pending = Vec::new();

    // Two requests in one write: both answered, in order.
    client
        .write_all(b"GET /one HTTP/1.1\r\nHost: f.example.com\r\n\r\nGET /two?x=1 HTTP/1.1\r\nHost: f.example.com\r\n\r\n")
        .await
        .unwrap();
    for want in ["b GET /one", "b GET /two?x=1"] {
        let (status, _, body) = read_response(&mut client, &mut pending).await;
        assert_eq!((status.as_str(), String::from_utf8_lossy(&body).as_ref()), ("HTTP/1.1 200 OK", want));
    }

    // A head arriving in pieces.
    for piece in [&b"GET /thr"[..], b"ee HTTP/1.1\r\nHo", b"st: f.example.com\r\n", b"\r\n"] {
        client.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, body) = read_response(&mut client, &mut pending).await;
    assert_eq!(body, b"b GET /three");

    // An HTTP/1.0 request that asks for keep-alive keeps the connection, body and all.
    client
        .write_all(
            b"POST /upload HTTP/1.0\r\nHost: f.example.com\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello",
        )
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut client, &mut pending).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.to_ascii_lowercase().contains("connection: keep-alive"), "{head}");
    assert_eq!(body, b"5");

    // `Connection: close` ends the connection.
    client
        .write_all(b"GET /four HTTP/1.1\r\nHost: f.example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, head, body) = read_response(&mut client, &mut pending).await;
    assert_eq!(body, b"b GET /four");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty() && pending.is_empty());
    assert_eq!(b.accepts(), 1, "every request went over one pooled upstream connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_own_answers_to_head_have_no_body() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("f", "f.example.com", "/", "svc", &[b.addr]));
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    // A 404 to `HEAD`, then a GET on the same connection: the 404 says how long its body would
    // be and sends none, so the GET's response is the next thing on the wire.
    client
        .write_all(b"HEAD /x HTTP/1.1\r\nHost: nowhere.example.com\r\n\r\nGET /y HTTP/1.1\r\nHost: f.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("b GET /y") {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 404")
            && head.contains(&format!("content-length: {}", ingress_proxy::DEFAULT_BACKEND_BODY.len())),
        "{head}"
    );
    assert!(rest.starts_with("HTTP/1.1 200"), "the 404 to HEAD carried a body: {rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_response_before_keep_alive_requests_closes_arrives_whole() {
    use ingress_proxy::{ClientLimits, RuntimeSettings};
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("f", "f.example.com", "/", "svc", &[b.addr]));
    let client = ClientLimits { keepalive_requests: 2, ..ClientLimits::default() };
    proxy.handle.set_settings(RuntimeSettings { client, ..RuntimeSettings::default() });
    for _ in 0..20 {
        // Three pipelined requests on a connection that serves two: the second response says
        // `Connection: close` and must arrive whole although the third request is unread.
        let mut c = TcpStream::connect(proxy.http).await.unwrap();
        let request = "GET /download/100000 HTTP/1.1\r\nHost: f.example.com\r\n\r\n";
        c.write_all(request.repeat(3).as_bytes()).await.unwrap();
        let mut pending = Vec::new();
        let (status, _, body) = read_response(&mut c, &mut pending).await;
        assert_eq!((status.as_str(), body.len()), ("HTTP/1.1 200 OK", 100_000));
        let (status, head, body) = read_response(&mut c, &mut pending).await;
        assert_eq!((status.as_str(), body.len()), ("HTTP/1.1 200 OK", 100_000));
        assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_heads_get_their_status_and_a_closed_connection() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("f", "f.example.com", "/", "svc", &[b.addr]));
    let big = "v".repeat(9 * 1024);
    let too_big = format!("GET /headers HTTP/1.1\r\nHost: f.example.com\r\nX-Big: {big}\r\n\r\n");
    let too_long = format!("GET /{big} HTTP/1.1\r\nHost: f.example.com\r\n\r\n");
    for (bad, want) in [
        (&b"GARBAGE\r\n\r\n"[..], "HTTP/1.1 400"),
        (b"GET / HTTP/1.1\r\nHost: f.example.com\r\nBad Header: x\r\n\r\n", "HTTP/1.1 400"),
        (too_big.as_bytes(), "HTTP/1.1 431"),
        (too_long.as_bytes(), "HTTP/1.1 414"),
    ] {
        let mut client = TcpStream::connect(proxy.http).await.unwrap();
        client.write_all(bad).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(want), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
    }
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_framing_is_relayed_or_refused() {
    let (raw, _) = raw_backend(|request, _| {
        let path = request.split(' ').nth(1).unwrap_or("");
        Some(match path {
            "/trailers" => (
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"[..],
                false,
            ),
            "/nominated" => (&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\nhello"[..], false),
            "/lf-trailer" => (
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
                true,
            ),
            "/gzip" => (&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"[..], true),
            "/cl-te" => (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
                true,
            ),
            "/two-lengths" => {
                (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"[..], true)
            }
            "/garbage" => (&b"NOT HTTP AT ALL\r\n\r\n"[..], true),
            "/cut" => (&b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"[..], true),
            _ => (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..], false),
        })
    })
    .await;
    let (proxy, _store) = Proxy::serving(|r| r.route("raw", "raw.example.com", "/", "raw", &[raw]));

    // Chunks, extensions and trailers pass through as sent (once checked); the connection
    // stays usable.
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(b"GET /trailers HTTP/1.1\r\nHost: raw.example.com\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !got.ends_with(b"X-Trailer: t\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.ends_with("\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("content-length"), "{text}");
    client.write_all(b"GET /again HTTP/1.1\r\nHost: raw.example.com\r\n\r\n").await.unwrap();
    let (_, _, body) = read_response(&mut client, &mut Vec::new()).await;
    assert_eq!(body, b"ok");
    assert!(text.contains("\r\ndate: ") && text.contains("\r\nconnection: keep-alive\r\n"), "{text}");

    // `Connection` cannot take the framing away from a response relayed in it.
    let mut conn = Conn::open(proxy.http).await;
    for path in ["/nominated", "/again"] {
        let reply =
            tokio::time::timeout(Duration::from_secs(5), conn.get("raw.example.com", path)).await.unwrap();
        assert_eq!(reply.status, 200, "{path}");
    }

    // A chunked body whose trailer section ends in a bare LF (where a lenient client would
    // read the rest as another response): refused before anything went out, so a 502.
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(b"GET /lf-trailer HTTP/1.1\r\nHost: raw.example.com\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(!answer.contains("HTTP/1.1 200"), "{answer}");

    // Framing the proxy cannot relay safely is a 502, as nginx answers it.
    for path in ["/gzip", "/two-lengths", "/cl-te", "/garbage"] {
        let reply = fetch(proxy.http, "raw.example.com", path).await;
        assert_eq!(reply.status, 502, "{path}");
    }

    // An upstream that closes inside the body: the client gets what came, then the
    // connection closes (the response cannot be completed).
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(b"GET /cut HTTP/1.1\r\nHost: raw.example.com\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\nonly this"), "{answer}");
}
