//! Plain request/response behaviour over HTTP/1.1 and HTTP/1.0: hop-by-hop headers,
//! informational and close-delimited responses, `HEAD`, request bodies, and pooled connections
//! the upstream closed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use ingress_proxy::ProxyHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

fn header<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_stay_on_their_hop() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("web", "hop.example.com", "/", "svc", &[b.addr]));
    let req = Request::get("/headers")
        .header("host", "hop.example.com")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "for the proxy only")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-custom", "end to end")
        .body(Empty::new().boxed())
        .unwrap();
    let mut conn = Conn::open(proxy.http).await;
    let text = conn.send(req).await.text();
    for gone in ["x-secret", "keep-alive", "te"] {
        assert_eq!(header(&text, gone), None, "{gone} forwarded:\n{text}");
    }
    // Whatever `Connection` the upstream sees is the proxy's own, never the client's tokens.
    assert!(!header(&text, "connection").unwrap_or("").contains("x-secret"), "{text}");
    assert_eq!(header(&text, "x-custom"), Some("end to end"));
    // The client connection stays usable.
    assert_eq!(conn.get("hop.example.com", "/again").await.text(), "b GET /again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_close_delimited_and_head_responses() {
    let (raw, _) = raw_backend(|request, _| {
        if request.starts_with("GET /early ") {
            Some((
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                false,
            ))
        } else {
            Some((b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed until the upstream closes", true))
        }
    })
    .await;
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| {
        r.route("raw", "raw.example.com", "/", "raw", &[raw]).route(
            "hyper",
            "h.example.com",
            "/",
            "svc",
            &[b.addr],
        )
    });
    let mut conn = Conn::open(proxy.http).await;

    let reply = conn.get("raw.example.com", "/early").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "hello"));
    assert!(reply.headers.get("link").is_none(), "1xx headers leaked into the final response");

    let reply = conn.get("raw.example.com", "/close").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "streamed until the upstream closes"));

    let head = Request::head("/download/1000").header("host", "h.example.com").body(Empty::new().boxed());
    let reply = conn.send(head.unwrap()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-length"], "1000");
    assert!(reply.body.is_empty());
    // Same client connection throughout: each response was framed correctly.
    assert_eq!(conn.get("h.example.com", "/after").await.text(), "b GET /after");

    // An HTTP/1.0 client cannot read chunked encoding: it gets the body close-delimited.
    let mut raw_client = TcpStream::connect(proxy.http).await.unwrap();
    raw_client.write_all(b"GET /close HTTP/1.0\r\nHost: raw.example.com\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    raw_client.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.") && answer.contains(" 200 "), "{answer}");
    assert!(!answer.to_ascii_lowercase().contains("transfer-encoding"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nstreamed until the upstream closes"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_dropped_is_retried() {
    // Every connection answers one request, then closes on the second without a reply: the
    // proxy's pooled connection dies under the next request, which must go out again.
    let (raw, accepts) = raw_backend(|_, nth| {
        (nth == 0).then_some((&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..], false))
    })
    .await;
    let handle = ProxyHandle::new();
    let mut routes = Routes::new();
    routes.route("raw", "stale.example.com", "/", "raw", &[raw]);
    let _store = routes.install(&handle);
    let proxy = Proxy::start_with(handle, |c| c.threads = 1);
    let mut conn = Conn::open(proxy.http).await;
    for i in 0..5 {
        let reply = conn.get("stale.example.com", &format!("/{i}")).await;
        assert_eq!((reply.status, reply.text().as_str()), (200, "ok"), "request {i}");
    }
    assert!(accepts.load(Ordering::SeqCst) >= 5);

    // A small body is kept and can be sent again: an idempotent PUT is retried...
    let put = Request::put("/p").header("host", "stale.example.com").body(Full::from("x").boxed());
    assert_eq!(conn.send(put.unwrap()).await.status, 200);
    // ...a POST is not (the upstream may have acted on it), as nginx does.
    let post = Request::post("/p").header("host", "stale.example.com").body(Full::from("x").boxed());
    assert_eq!(conn.send(post.unwrap()).await.status, 502);
    // A streamed (chunked) body, on a new client connection (an error response closes the
    // client's) and a fresh upstream one (the stale one went with the 502).
    let chunks = futures_util::stream::iter(
        ["a", "b"]
            .map(|s| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(s)))),
    );
    let streamed = Request::post("/p")
        .header("host", "stale.example.com")
        .body(http_body_util::StreamBody::new(chunks).boxed());
    assert_eq!(Conn::open(proxy.http).await.send(streamed.unwrap()).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_request_bodies_are_streamed_not_held_back() {
    // The upstream notes when the first half of the body reaches it, then answers once it has
    // all ten bytes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let first_half = Arc::new(tokio::sync::Notify::new());
    let seen = first_half.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let mut noted = false;
        while !got.ends_with(b"helloworld") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "upstream connection closed early");
            got.extend_from_slice(&buf[..n]);
            if !noted && got.ends_with(b"hello") {
                noted = true;
                seen.notify_one();
            }
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.unwrap();
    });
    let handle = ProxyHandle::new();
    let mut routes = Routes::new();
    routes.route("raw", "body.example.com", "/", "raw", &[upstream]);
    let _store = routes.install(&handle);
    let proxy = Proxy::start(handle);

    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client
        .write_all(b"POST /in HTTP/1.1\r\nHost: body.example.com\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), first_half.notified())
        .await
        .expect("the first half of the body reached the upstream before the rest was sent");
    client.write_all(b"world").await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
}
