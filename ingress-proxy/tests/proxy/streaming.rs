//! Large bodies stream through with bounded memory.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Request;
use hyper::body::Frame;

use crate::support::*;

const SIZE: u64 = 128 * 1024 * 1024;
/// Growth allowed over the whole transfer: well under the body size, so nothing buffers it.
const RSS_BUDGET: u64 = 48 * 1024 * 1024;

/// Samples this process's RSS until stopped; returns the peak.
fn rss_sampler() -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let mut peak = rss_bytes();
        while !s.load(Ordering::Relaxed) {
            peak = peak.max(rss_bytes());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_and_upload_stream_with_bounded_memory() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("big", "big.example.com", "/", "svc", &[b.addr]));
    // Warm up allocators and pools so the baseline is fair.
    let mut conn = Conn::open(proxy.http).await;
    assert_eq!(conn.get("big.example.com", "/download/1048576").await.body.len(), 1 << 20);

    let baseline = rss_bytes();
    let (stop, peak) = rss_sampler();

    // Download: read frame by frame, never holding the body.
    let stream = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
    let (mut sender, c) = hyper::client::conn::http1::handshake::<_, http_body_util::Empty<Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(c);
    let resp = sender.send_request(get_empty("big.example.com", &format!("/download/{SIZE}"))).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], SIZE.to_string().as_str());
    let mut body = resp.into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(got, SIZE);

    // Upload: a generated body, sent chunk by chunk, counted by the backend.
    let sent = Arc::new(AtomicU64::new(0));
    let s = sent.clone();
    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    let frames = futures_util::stream::unfold(0u64, move |done| {
        let chunk = chunk.clone();
        let s = s.clone();
        async move {
            if done >= SIZE {
                return None;
            }
            s.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Some((Ok::<_, Infallible>(Frame::data(chunk.clone())), done + chunk.len() as u64))
        }
    });
    let req = Request::post("/upload")
        .header("host", "big.example.com")
        .header("content-length", SIZE)
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    let reply = Conn::open(proxy.http).await.send(req).await;
    assert_eq!((reply.status, reply.text()), (200, SIZE.to_string()));
    assert_eq!(sent.load(Ordering::Relaxed), SIZE);

    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();
    let growth = peak.saturating_sub(baseline);
    assert!(growth < RSS_BUDGET, "RSS grew {} MiB moving 2 x {} MiB", growth >> 20, SIZE >> 20);
}

fn get_empty(host: &str, path: &str) -> Request<http_body_util::Empty<Bytes>> {
    Request::get(path).header("host", host).body(http_body_util::Empty::new()).unwrap()
}
