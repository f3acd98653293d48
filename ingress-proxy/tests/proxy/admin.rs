//! Admin endpoints, metrics, access log, graceful shutdown.

use std::time::Duration;

use ingress_proxy::{ProxyHandle, RuntimeSettings};

use crate::accesslog::log_line_for;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let b = Backend::start("m").await;
    let handle = ProxyHandle::new();
    let proxy = Proxy::start(handle.clone());
    assert_eq!(admin(&proxy, "/healthz").await.status, 200);
    assert_eq!(admin(&proxy, "/readyz").await.status, 503);

    let mut routes = Routes::new();
    routes.route("metered", "m.example.com", "/", "svc-m", &[b.addr]);
    let _store = routes.install(&handle);
    assert_eq!(admin(&proxy, "/readyz").await.status, 200);
    for _ in 0..3 {
        assert_eq!(fetch(proxy.http, "m.example.com", "/").await.status, 200);
    }
    assert_eq!(fetch(proxy.http, "none.example.com", "/").await.status, 404);
    handle.set_settings(RuntimeSettings::default());

    let mut open = Conn::open(proxy.http).await;
    assert_eq!(open.get("m.example.com", "/").await.status, 200);
    // Closed connections from the fetches above may take a moment to be noticed.
    assert!(metric_becomes(&proxy, "ferry_active_connections 1").await);
    drop(open);
    assert!(metric_becomes(&proxy, "ferry_active_connections 0").await);

    let text = admin(&proxy, "/metrics").await.text();
    assert!(
        text.contains(
            r#"ferry_requests_total{ingress="metered",method="GET",namespace="test",service="svc-m",status_class="2xx"} 4"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"ferry_requests_total{ingress="",method="GET",namespace="",service="",status_class="4xx"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("ferry_request_duration_seconds_bucket"), "{text}");
    // Pooled: new upstream connections are counted, reused ones are not (a response can reach
    // the client just before its connection is back in the pool, hence not exactly 1).
    let connects: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ferry_upstream_connect_duration_seconds_count "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!((1..=2).contains(&connects), "{connects} connects for 4 requests");
    assert!(text.contains("ferry_snapshot_generation 1"), "{text}");
    assert!(text.contains("ferry_snapshot_swaps_total 2"), "{text}");
    assert!(text.contains("ferry_active_requests 0"), "{text}");
}

/// Whether `/metrics` shows `line` within two seconds.
async fn metric_becomes(proxy: &Proxy, line: &str) -> bool {
    for _ in 0..40 {
        if admin(proxy, "/metrics").await.text().lines().any(|l| l == line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_can_be_switched_off() {
    let b = Backend::start("log").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("logged", "log.example.com", "/", "svc-log", &[b.addr]));
    let request = |id: &'static str| {
        hyper::Request::get("/some/path?q=1")
            .header("host", "log.example.com")
            .header("x-request-id", id)
            .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
            .unwrap()
    };
    assert_eq!(Conn::open(proxy.http).await.send(request("log-on-1")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let line = log_line_for("log-on-1").expect("an access log line");
    let f = &line;
    assert_eq!(line["message"], "request");
    assert_eq!(f["host"], "log.example.com");
    assert_eq!(f["method"], "GET");
    assert_eq!(f["path"], "/some/path");
    assert_eq!(f["status"], 200);
    assert_eq!(f["upstream_status"], 200);
    assert_eq!(f["upstream_addr"], b.addr.to_string());
    assert_eq!(f["namespace"], "test");
    assert_eq!(f["ingress"], "logged");
    assert_eq!(f["service"], "svc-log");
    assert_eq!(f["bytes"], "log GET /some/path?q=1".len());
    assert_eq!(f["client"], "127.0.0.1", "the client address, as nginx's $remote_addr");
    assert!(line["timestamp"].is_string());

    // A WebSocket is logged once it closes: 101, the client, the bytes relayed to it.
    {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
        let mut request = "ws://log.example.com/ws".into_client_request().unwrap();
        request.headers_mut().insert("x-request-id", "log-ws-1".parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
        ws.send(Message::text("twelve bytes")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("twelve bytes"));
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    }
    let mut ws_line = None;
    for _ in 0..50 {
        ws_line = log_line_for("log-ws-1");
        if ws_line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ws_line = ws_line.expect("an access log line for the WebSocket");
    let f = &ws_line;
    assert_eq!((f["status"].as_u64(), f["upstream_status"].as_u64()), (Some(101), Some(101)));
    assert_eq!(f["client"], "127.0.0.1", "{f}");
    // The echoed 12-byte text frame (2-byte header) and the close frame, at least.
    assert!(f["bytes"].as_u64().unwrap() >= 14, "{f}");
    assert_eq!(f["path"], "/ws");

    proxy.handle.set_settings(RuntimeSettings { access_log: false, ..RuntimeSettings::default() });
    assert_eq!(Conn::open(proxy.http).await.send(request("log-off-1")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(log_line_for("log-off-1").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let b = Backend::start("slow").await;
    let handle = ProxyHandle::new();
    let mut routes = Routes::new();
    routes.route("slow", "slow.example.com", "/", "svc", &[b.addr]);
    let _store = routes.install(&handle);
    let mut proxy = Proxy::start_with(handle, |c| c.grace_period = Duration::from_secs(2));
    let addr = proxy.http;
    let in_flight = tokio::spawn(async move { fetch(addr, "slow.example.com", "/sleep/1000").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let running = proxy.running.take().unwrap();
    let started = std::time::Instant::now();
    let stopper = tokio::task::spawn_blocking(move || running.shutdown());
    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "slow slept"));
    stopper.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_gracefully() {
    use tokio::signal::unix::{SignalKind, signal};
    // Registering our own SIGTERM listener first guarantees the signal can never take the
    // default action (killing the test process), whatever the timing below.
    let mut ours = signal(SignalKind::terminate()).unwrap();
    let b = Backend::start("sig").await;
    let handle = ProxyHandle::new();
    let mut routes = Routes::new();
    routes.route("sig", "sig.example.com", "/", "svc", &[b.addr]);
    let _store = routes.install(&handle);
    let mut proxy = Proxy::start_with(handle, |c| {
        c.handle_signals = true;
        c.grace_period = Duration::from_secs(1);
    });
    assert_eq!(fetch(proxy.http, "sig.example.com", "/").await.status, 200);
    let addr = proxy.http;
    let in_flight = tokio::spawn(async move { fetch(addr, "sig.example.com", "/sleep/600").await });
    // Let the proxy's signal watcher and the request get going.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = proxy.running.take().unwrap();
    let status =
        std::process::Command::new("kill").args(["-TERM", &std::process::id().to_string()]).status().unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(5), ours.recv()).await.unwrap();
    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "sig slept"));
    tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || running.wait()))
        .await
        .expect("SIGTERM stopped the server")
        .unwrap();
}
