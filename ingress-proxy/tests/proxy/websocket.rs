//! WebSocket upgrades proxied end to end.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a WebSocket through the proxy at `addr` for `host`.
pub(crate) async fn open(addr: std::net::SocketAddr, host: &str) -> Ws {
    open_path(addr, host, "/ws").await
}

async fn open_path(addr: std::net::SocketAddr, host: &str, path: &str) -> Ws {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("ws://{host}{path}").into_client_request().unwrap();
    let (ws, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Sends `text` and expects it echoed.
pub(crate) async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let reply =
        tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(reply, Message::text(text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_round_trip() {
    let b = Backend::start("ws").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("ws", "ws.example.com", "/", "svc", &[b.addr]));
    let mut ws = open(proxy.http, "ws.example.com").await;
    for i in 0..20 {
        echo(&mut ws, &format!("hello {i}")).await;
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(vec![0u8, 1, 2, 255]));
    // 4 MiB each way in one message.
    let big = vec![7u8; 4 << 20];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();

    // Every fresh socket works from its first frame: Pingora 0.9's pipeline lost this race
    // now and then (the 101 arrived, then end of stream), which this path must never do.
    for i in 0..40 {
        let mut ws = open(proxy.http, "ws.example.com").await;
        echo(&mut ws, &format!("fresh {i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_speaks_first_and_refusals_pass_through() {
    let b = Backend::start("ws").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("ws", "ws.example.com", "/", "svc", &[b.addr]));
    // Bytes the upstream sends right behind its 101 reach the client.
    let mut ws = open_path(proxy.http, "ws.example.com", "/ws?greet=welcome").await;
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), Message::text("welcome"));
    echo(&mut ws, "then echo").await;

    // An upstream that declines the upgrade answers like any request, on a connection that
    // stays usable.
    let mut conn = Conn::open(proxy.http).await;
    let refused = hyper::Request::get("/ws-refused")
        .header("host", "ws.example.com")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    let reply = conn.send(refused).await;
    assert_eq!((reply.status, reply.text().as_str()), (403, "no upgrade here"));
    let reply = conn.get("ws.example.com", "/after").await;
    assert_eq!((reply.status, reply.text()), (200, "ws GET /after".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls() {
    let b = Backend::start("wss").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("wss", "wss.example.com", "/", "svc", &[b.addr]));
    let tls = crate::tlsutil::connect(proxy.https, Some("wss.example.com"), &[b"http/1.1"]).await;
    let request = "wss://wss.example.com/ws".into_client_request().unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("secure {i}"))).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(format!("secure {i}")));
    }
}
