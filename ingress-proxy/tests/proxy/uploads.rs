//! Request bodies through the HTTP/1 engine: streamed between pipelined requests, framing the
//! client cannot strip, upstreams that answer early, with an interim response, or as they read.

use std::time::Duration;

use ingress_proxy::RuntimeSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_through_between_pipelined_requests() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("f", "f.example.com", "/", "svc", &[b.addr]));
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    let mut pending = Vec::new();

    // A length-framed body and the next request, all in one write.
    client
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: f.example.com\r\nContent-Length: 5\r\n\r\nhello\
              GET /after HTTP/1.1\r\nHost: f.example.com\r\n\r\n",
        )
        .await
        .unwrap();
    for want in ["5", "b GET /after"] {
        let (status, _, body) = read_response(&mut client, &mut pending).await;
        assert_eq!((status.as_str(), String::from_utf8_lossy(&body).as_ref()), ("HTTP/1.1 200 OK", want));
    }

    // A chunked body sent in pieces, the last arriving with the next request behind it.
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: f.example.com\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    client.write_all(b"6\r\nhello \r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    client
        .write_all(b"5\r\nworld\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: f.example.com\r\n\r\n")
        .await
        .unwrap();
    for want in ["11", "b GET /next"] {
        let (_, _, body) = read_response(&mut client, &mut pending).await;
        assert_eq!(String::from_utf8_lossy(&body), want);
    }

    // A body larger than any buffer, streamed in many reads.
    let big = vec![b'x'; 3 * 1024 * 1024 + 7];
    client
        .write_all(
            format!("PUT /upload HTTP/1.1\r\nHost: f.example.com\r\nContent-Length: {}\r\n\r\n", big.len())
                .as_bytes(),
        )
        .await
        .unwrap();
    client.write_all(&big).await.unwrap();
    let (_, _, body) = read_response(&mut client, &mut pending).await;
    assert_eq!(String::from_utf8_lossy(&body), big.len().to_string());
    assert_eq!(b.accepts(), 1, "one pooled upstream connection throughout");

    // A chunked body over the size limit is refused with 413.
    proxy.handle.set_settings(RuntimeSettings { max_body_size: Some(8), ..RuntimeSettings::default() });
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: f.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut client, &mut pending).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_answering_before_the_body_ends_the_exchange() {
    // The upstream refuses every request as soon as it has the head, never reading a body.
    let (raw, _) = raw_backend(|_, _| {
        Some((&b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nnope"[..], false))
    })
    .await;
    let (proxy, _store) = Proxy::serving(|r| r.route("raw", "early.example.com", "/", "raw", &[raw]));
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    let size = 64 * 1024 * 1024;
    client
        .write_all(
            format!("POST /big HTTP/1.1\r\nHost: early.example.com\r\nContent-Length: {size}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (mut reader, mut writer) = client.into_split();
    // The client keeps sending its body (far more than the sockets buffer) until the proxy
    // stops reading it.
    let sender = tokio::spawn(async move {
        let chunk = vec![b'y'; 64 * 1024];
        let mut sent = 0;
        while sent < size && writer.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer while the upload was still going: {answer}");
    assert!(answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{answer}");
    assert!(answer.contains("connection: close\r\n") && answer.ends_with("\r\n\r\nnope"), "{answer}");
    let sent = tokio::time::timeout(Duration::from_secs(10), sender).await.unwrap().unwrap();
    assert!(sent < size, "the proxy read the whole {size}-byte body it had no use for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_make_the_body_length_hop_by_hop() {
    // Were `Content-Length` dropped as nominated, the upstream would read this body as a
    // second request, past the proxy's routing.
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("f", "f.example.com", "/", "svc", &[b.addr]));
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: other.example.com\r\n\r\n";
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client
        .write_all(
            format!(
                "POST /upload HTTP/1.1\r\nHost: f.example.com\r\nConnection: content-length\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut client, &mut Vec::new()).await;
    assert_eq!(
        (status.as_str(), String::from_utf8_lossy(&body)),
        ("HTTP/1.1 200 OK", smuggled.len().to_string().into())
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), 1, "the body became a request upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interim_response_does_not_stop_the_upload() {
    // An upstream that sends `100 Continue` unasked, then reads the whole body, then answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let head_end = loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
            if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        let mut body = got.len() - head_end;
        while body < length {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy stopped sending the body after {body} bytes");
            body += n;
        }
        let text = body.to_string();
        stream
            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len()).as_bytes())
            .await
            .unwrap();
    });
    let (proxy, _store) = Proxy::serving(|r| r.route("i", "interim.example.com", "/", "raw", &[upstream]));
    let size = 4 * 1024 * 1024;
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    let head = format!("PUT /big HTTP/1.1\r\nHost: interim.example.com\r\nContent-Length: {size}\r\n\r\n");
    client.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = client.into_split();
    let sender = tokio::spawn(async move {
        writer.write_all(&vec![b'z'; size]).await.unwrap();
        writer
    });
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.ends_with(size.to_string().as_bytes()) {
        let n =
            tokio::time::timeout(Duration::from_secs(10), reader.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "the 100 was dropped, the 200 relayed: {answer}");
    drop(sender.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_may_answer_while_it_reads_the_body() {
    // `/echo` sends its response head first and streams the body back as it reads it: the
    // proxy must keep sending the body while it relays the response.
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("f", "echo.example.com", "/", "svc", &[b.addr]));
    for (framing, size) in [("length", 8 * 1024 * 1024), ("chunked", 6 * 1024 * 1024)] {
        let client = TcpStream::connect(proxy.http).await.unwrap();
        let (mut reader, mut writer) = client.into_split();
        let sender = tokio::spawn(async move {
            let chunk = vec![b'~'; 64 * 1024];
            if framing == "length" {
                let head = format!(
                    "POST /echo HTTP/1.1\r\nHost: echo.example.com\r\nContent-Length: {size}\r\n\r\n"
                );
                writer.write_all(head.as_bytes()).await.unwrap();
                for _ in 0..size / chunk.len() {
                    writer.write_all(&chunk).await.unwrap();
                }
            } else {
                let head =
                    "POST /echo HTTP/1.1\r\nHost: echo.example.com\r\nTransfer-Encoding: chunked\r\n\r\n";
                writer.write_all(head.as_bytes()).await.unwrap();
                for _ in 0..size / chunk.len() {
                    writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.unwrap();
                    writer.write_all(&chunk).await.unwrap();
                    writer.write_all(b"\r\n").await.unwrap();
                }
                writer.write_all(b"0\r\n\r\n").await.unwrap();
            }
            writer
        });
        // Count the echoed bytes (the response is chunked): every '~' that came back.
        let mut echoed = 0;
        let mut seen = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        while !seen.ends_with(b"0\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("{framing}: stalled after {echoed} echoed bytes"))
                .unwrap();
            assert!(n > 0, "{framing}: closed after {echoed} echoed bytes");
            echoed += chunk[..n].iter().filter(|&&b| b == b'~').count();
            seen.extend_from_slice(&chunk[..n]);
            let keep = seen.len().saturating_sub(8);
            seen.drain(..keep);
        }
        assert_eq!(echoed, size, "{framing}");
        drop(tokio::time::timeout(Duration::from_secs(10), sender).await.unwrap().unwrap());
    }
}
