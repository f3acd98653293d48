//! WebSocket upgrades proxied end to end.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a WebSocket through the proxy at `addr` for `host`.
pub(crate) async fn open(addr: std::net::SocketAddr, host: &str) -> Ws {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("ws://{host}/ws").into_client_request().unwrap();
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
    ws.close(None).await.unwrap();
}
