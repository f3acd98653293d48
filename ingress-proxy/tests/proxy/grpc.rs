//! gRPC through the proxy (`backend-protocol: GRPC` and `GRPCS`): unary and streaming calls
//! both ways with their trailers, over TLS and h2c; gRPC-shaped answers when no endpoint
//! answers; deadlines (`grpc-timeout`) that reach the endpoint, and calls a client gives up on
//! cancelled at the endpoint too.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress_core::BackendProtocol;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::support::*;
use crate::tlsutil::*;
use crate::upstreams::{Ca, backend, get, proxy};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Calls to `/echo.Echo/Hang` that ended without an answer (reset or connection gone).
static CANCELLED: AtomicUsize = AtomicUsize::new(0);

/// Counts a `Hang` call as cancelled when the server drops its answer unfinished.
struct Cancelled;

impl Drop for Cancelled {
    fn drop(&mut self) {
        CANCELLED.fetch_add(1, Ordering::SeqCst);
    }
}

/// A gRPC `grpc-timeout` value (`<digits><unit>`, units `H M S m u n`).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The endpoint's side of deadlines, as a gRPC server keeps them: `/echo.Echo/Wait` answers
/// DEADLINE_EXCEEDED (trailers only) once the call's `grpc-timeout` has passed;
/// `/echo.Echo/Hang` sends its headers and then nothing, and counts in [`CANCELLED`] when the
/// call goes away. Other calls: `None`.
pub(crate) async fn deadlines(req: &Request<Incoming>) -> Option<Response<Body>> {
    match req.uri().path() {
        "/echo.Echo/Wait" => {
            let timeout = req.headers().get("grpc-timeout").and_then(|v| grpc_timeout(v.to_str().ok()?));
            tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(30))).await;
            let mut resp = Response::new(Empty::new().boxed());
            for (name, value) in [
                ("content-type", "application/grpc"),
                ("grpc-status", "4"),
                ("grpc-message", "deadline exceeded"),
            ] {
                resp.headers_mut().insert(name, value.parse().unwrap());
            }
            Some(resp)
        }
        "/echo.Echo/Hang" => {
            let guard = Cancelled;
            let pending = futures_util::stream::poll_fn(move |_| {
                let _alive = &guard;
                Poll::<Option<Result<Frame<Bytes>, Infallible>>>::Pending
            });
            let mut resp = Response::new(StreamBody::new(pending).boxed());
            resp.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
            Some(resp)
        }
        _ => None,
    }
}

/// A gRPC client over an HTTP/2 connection: sends each message only after the previous one's
/// echo came back (so both directions stream), then ends; returns the echoes, the
/// `grpc-status` and the `x-echoed` trailer.
async fn grpc_call<T>(
    io: T,
    authority: &str,
    messages: &[&str],
) -> (u16, Vec<String>, Option<String>, Option<String>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await.unwrap();
    tokio::spawn(conn);
    let (tx, mut rx) = mpsc::channel::<Frame<Bytes>>(4);
    let stream =
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|f| f.map(Ok::<_, Infallible>)));
    let req = Request::post(format!("http://{authority}/echo.Echo/Chat"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "5S")
        .body(StreamBody::new(stream))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut echoes = Vec::new();
    let mut trailers = None;
    for m in messages {
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(m.len() as u32).to_be_bytes());
        framed.extend_from_slice(m.as_bytes());
        tx.send(Frame::data(Bytes::from(framed))).await.unwrap();
        if let Some(Ok(frame)) = body.frame().await
            && let Ok(data) = frame.into_data()
        {
            echoes.push(String::from_utf8_lossy(&data[5..]).into_owned());
        }
    }
    drop(tx);
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    let from = |map: Option<&hyper::HeaderMap>, name: &str| {
        map.and_then(|m| m.get(name)).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    // A trailers-only answer carries grpc-status in its headers.
    let grpc_status = from(trailers.as_ref(), "grpc-status").or_else(|| from(Some(&headers), "grpc-status"));
    (status, echoes, grpc_status, from(trailers.as_ref(), "x-echoed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_both_ways_with_trailers_over_h2c_and_tls() {
    let ca = Ca::new("grpc CA");
    let h2c = backend("grpc", None, None).await;
    let tls = backend("grpcs", Some((&ca, "grpc.internal")), None).await;
    let p = proxy(&[
        ("grpc.test", h2c, BackendProtocol::Grpc, None),
        ("grpcs.test", tls, BackendProtocol::Grpcs, None),
        ("gone.test", local(free_port()), BackendProtocol::Grpc, None),
    ]);
    let messages = ["one", "two", "three"];
    for host in ["grpc.test", "grpcs.test"] {
        // Over TLS (ALPN h2) and over the plain port with prior knowledge (h2c).
        let over_tls = connect(p.https, Some(host), &[b"h2"]).await;
        let got = grpc_call(over_tls, host, &messages).await;
        assert_eq!(
            got,
            (200, vec!["one".into(), "two".into(), "three".into()], Some("0".into()), Some("3".into())),
            "{host} over TLS"
        );
        let plain = TcpStream::connect(p.http).await.unwrap();
        let got = grpc_call(plain, host, &messages[..1]).await;
        assert_eq!(got, (200, vec!["one".into()], Some("0".into()), Some("1".into())), "{host} over h2c");
    }
    // No endpoint answers: a gRPC answer (UNAVAILABLE), not an HTML page.
    let over_tls = connect(p.https, Some("gone.test"), &[b"h2"]).await;
    let (status, echoes, grpc_status, _) = grpc_call(over_tls, "gone.test", &[]).await;
    assert_eq!((status, echoes.len(), grpc_status.as_deref()), (200, 0, Some("14")));
    // HTTP/1 cannot carry gRPC: 502.
    assert_eq!(get(&p, "grpc.test", "h1").await.0, 502);
    // Plain HTTP/1 on the port h2c shares is untouched.
    let plain = backend("plain", None, None).await;
    let q = proxy(&[("plain.test", plain, BackendProtocol::Http, None)]);
    assert_eq!(get(&q, "plain.test", "h1").await, (200, "plain GET /x".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_deadlines_reach_the_endpoint_and_cancelled_calls_end_there() {
    let ca = Ca::new("grpc CA");
    let h2c = backend("grpc", None, None).await;
    let tls = backend("grpcs", Some((&ca, "grpc.internal")), None).await;
    let p = proxy(&[
        ("grpc.test", h2c, BackendProtocol::Grpc, None),
        ("grpcs.test", tls, BackendProtocol::Grpcs, None),
    ]);
    for host in ["grpc.test", "grpcs.test"] {
        let io = connect(p.https, Some(host), &[b"h2"]).await;
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await.unwrap();
        tokio::spawn(conn);
        let call = |method: &str, body: Body| {
            Request::post(format!("http://{host}/echo.Echo/{method}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("grpc-timeout", "300m")
                .body(body)
                .unwrap()
        };
        // The client's deadline reaches the endpoint, whose DEADLINE_EXCEEDED comes back.
        let t0 = Instant::now();
        let resp = send.send_request(call("Wait", Empty::new().boxed())).await.unwrap();
        let took = t0.elapsed();
        let grpc_status = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!((resp.status().as_u16(), grpc_status.as_deref()), (200, Some("4")), "{host}");
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "{host}: {took:?}");
        // A client that gives up at its deadline resets its stream; the proxy cancels the
        // endpoint's call too (while the connection, shared by other calls, stays).
        let before = CANCELLED.load(Ordering::SeqCst);
        let (tx, mut rx) = mpsc::channel::<Frame<Bytes>>(1);
        let body =
            futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|f| f.map(Ok::<_, Infallible>)));
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            send.send_request(call("Hang", BodyExt::boxed(StreamBody::new(body)))),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(resp);
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(5);
        while CANCELLED.load(Ordering::SeqCst) == before {
            assert!(Instant::now() < deadline, "{host}: the endpoint's call was never cancelled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The connection serves the next call.
        let resp = send.send_request(call("Wait", Empty::new().boxed())).await.unwrap();
        assert_eq!(resp.headers().get("grpc-status").map(|v| v.as_bytes()), Some(&b"4"[..]), "{host}");
    }
}
