//! Test support: free ports, real local backends (hyper + tokio-tungstenite), a proxy started
//! in-process, and small HTTP clients. Only 127.0.0.1.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ingress_core::{
    BackendRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule, RoutePolicy, TableBuilder,
};
use ingress_proxy::{ProxyConfig, ProxyHandle, ProxyServer, RunningProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) use crate::ports::free_port;

pub(crate) fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A local backend: answers `<name> <method> <path?query>` on any path, plus:
/// `/headers` (request headers, one `name: value` per line), `/sleep/<ms>`,
/// `/download/<bytes>` (Content-Length body streamed in 64 KiB chunks), `/upload` (counts the
/// streamed body), `/ws` (WebSocket echo; `?greet=<text>` sends `<text>` first),
/// `/ws-refused` (403 to an upgrade request), `/chunked` (a chunked body), `/echo` (the request
/// body streamed back, the response head sent before any of it is read), `/redirect` (a `302`
/// to `http://internal.svc/next` with `Server: upstream/1.0` and two cookies for
/// `internal.svc`, one with path `/app/x`), `/status/<code>` (that status); and a request with
/// an `X-Code` header is answered as an error backend would: that status, the request headers
/// as the body.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) name: &'static str,
    pub(crate) accepts: Arc<AtomicUsize>,
    pub(crate) requests: Arc<AtomicU64>,
    /// Connections currently open to this backend.
    pub(crate) open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

async fn handle(name: &'static str, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/headers" {
        let mut text = String::new();
        for (k, v) in req.headers() {
            text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
        }
        return Ok(Response::new(full(text)));
    }
    // As a custom error backend: the status `X-Code` names, the request headers as the body.
    if let Some(code) = req.headers().get("x-code").and_then(|v| v.to_str().ok()?.parse::<u16>().ok()) {
        let mut text = format!("{name} error page for {}\n", req.uri());
        for (k, v) in req.headers() {
            text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
        }
        let mut resp = Response::new(full(text));
        *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
        return Ok(resp);
    }
    if let Some(code) = path.strip_prefix("/status/").and_then(|c| c.parse::<u16>().ok()) {
        let mut resp = Response::new(full(format!("{name} status {code}")));
        *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
        return Ok(resp);
    }
    if path == "/redirect" {
        let mut resp = Response::new(full("moved"));
        *resp.status_mut() = hyper::StatusCode::FOUND;
        let h = resp.headers_mut();
        h.insert(
            hyper::header::LOCATION,
            hyper::header::HeaderValue::from_static("http://internal.svc/next"),
        );
        h.insert(hyper::header::SERVER, hyper::header::HeaderValue::from_static("upstream/1.0"));
        for cookie in ["sid=1; Domain=internal.svc; Path=/app/x", "pref=2; Path=/other"] {
            h.append(hyper::header::SET_COOKIE, hyper::header::HeaderValue::from_static(cookie));
        }
        return Ok(resp);
    }
    if let Some(ms) = path.strip_prefix("/sleep/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        return Ok(Response::new(full(format!("{name} slept"))));
    }
    if let Some(n) = path.strip_prefix("/download/") {
        let total: u64 = n.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures_util::stream::unfold(total, move |left| {
            let chunk = chunk.clone();
            async move {
                if left == 0 {
                    return None;
                }
                let n = left.min(chunk.len() as u64);
                Some((Ok::<_, Infallible>(Frame::data(chunk.slice(..n as usize))), left - n))
            }
        });
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        resp.headers_mut().insert(hyper::header::CONTENT_LENGTH, total.into());
        return Ok(resp);
    }
    if path == "/chunked" {
        let stream = futures_util::stream::iter(
            ["one ", "two ", "three"]
                .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes())))),
        );
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))));
    }
    if path == "/echo" {
        // The response head goes out at once; the body streams back as it arrives.
        let frames = futures_util::stream::unfold(req.into_body(), |mut body| async move {
            match body.frame().await {
                Some(Ok(frame)) => Some((Ok::<_, Infallible>(frame), body)),
                // A failed request body just ends the echo.
                _ => None,
            }
        });
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(frames))));
    }
    if path == "/upload" {
        let mut body = req.into_body();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => total += f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => break,
            }
        }
        return Ok(Response::new(full(format!("{total}"))));
    }
    if path == "/ws" {
        return Ok(websocket_upgrade(req));
    }
    if path == "/ws-refused" {
        return Ok(Response::builder().status(403).body(full("no upgrade here")).unwrap());
    }
    let pq = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    Ok(Response::new(full(format!("{name} {} {pq}", req.method()))))
}

fn websocket_upgrade(mut req: Request<Incoming>) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return Response::builder().status(400).body(full("no key")).unwrap();
    };
    // `?greet=<text>`: the server speaks first, right after the handshake.
    let greeting = req.uri().query().and_then(|q| q.strip_prefix("greet=")).map(str::to_owned);
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        if let Some(text) = greeting
            && ws.send(tokio_tungstenite::tungstenite::Message::text(text)).await.is_err()
        {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(Empty::new().boxed())
        .unwrap()
}

impl Backend {
    pub(crate) async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (a, r, o) = (accepts.clone(), requests.clone(), open.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { break };
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let (r, o) = (r.clone(), o.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        r.fetch_add(1, Ordering::SeqCst);
                        handle(name, req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Backend { addr, name, accepts, requests, open, task }
    }

    pub(crate) fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// A proxy running in-process on free ports, signals off, short grace period.
pub(crate) struct Proxy {
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) handle: ProxyHandle,
    pub(crate) running: Option<RunningProxy>,
}

impl Proxy {
    pub(crate) fn start(handle: ProxyHandle) -> Proxy {
        Self::start_with(handle, |_| {})
    }

    /// A proxy serving the routes `add` declares, installed before it starts. Keep the
    /// returned store alive for the test: endpoint changes go through it.
    pub(crate) fn serving(add: impl FnOnce(&mut Routes) -> &mut Routes) -> (Proxy, EndpointStore) {
        let handle = ProxyHandle::new();
        let mut routes = Routes::new();
        add(&mut routes);
        let store = routes.install(&handle);
        (Self::start(handle), store)
    }

    pub(crate) fn start_with(handle: ProxyHandle, tweak: impl FnOnce(&mut ProxyConfig)) -> Proxy {
        let (http, https, admin) = (local(free_port()), local(free_port()), local(free_port()));
        let mut config = ProxyConfig {
            http_addr: Some(http),
            https_addr: Some(https),
            admin_addr: Some(admin),
            threads: 2,
            grace_period: Duration::from_secs(0),
            shutdown_timeout: Duration::from_secs(1),
            handle_signals: false,
            access_log: Some(crate::accesslog::sink()),
            ..ProxyConfig::default()
        };
        tweak(&mut config);
        let running = ProxyServer::new(config, handle.clone()).start().unwrap();
        Proxy { http, https, admin, handle, running: Some(running) }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown_now();
        }
    }
}

/// Routes `(host, path, backend)` with the given endpoints; returns the table's pieces.
pub(crate) struct Routes {
    pub(crate) store: EndpointStore,
    pub(crate) builder: TableBuilder,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Routes { store: EndpointStore::new(), builder: TableBuilder::new() }
    }

    /// Adds an Ingress `ns/<name>` routing `host` + prefix `path` to service `svc` at `addrs`.
    pub(crate) fn route(
        &mut self,
        name: &str,
        host: &str,
        path: &str,
        svc: &str,
        addrs: &[SocketAddr],
    ) -> &mut Self {
        self.route_with(name, host, path, svc, addrs, RoutePolicy::default())
    }

    /// [`Routes::route`] with a policy for the Ingress's routes.
    pub(crate) fn route_with(
        &mut self,
        name: &str,
        host: &str,
        path: &str,
        svc: &str,
        addrs: &[SocketAddr],
        policy: RoutePolicy,
    ) -> &mut Self {
        let b = BackendRef::new("test", svc, 80);
        self.store.set(&b, EndpointSet::new(addrs.iter().copied()));
        self.builder.ingress(
            Ingress::new(Origin::new("test", name))
                .rule(HostRule::host(host).path(PathRule::prefix(path, b)))
                .policy(policy),
        );
        self
    }

    pub(crate) fn install(self, handle: &ProxyHandle) -> EndpointStore {
        let mut store = self.store;
        let built = self.builder.build(&mut store);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        handle.install(Arc::new(built.table));
        store
    }
}

/// One HTTP/1.1 response, body collected.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive HTTP/1.1 connection, opened again when the proxy announced it closes one
/// (`Connection: close`, as after `keep-alive-requests` requests).
pub(crate) struct Conn {
    addr: SocketAddr,
    sender: hyper::client::conn::http1::SendRequest<Body>,
    /// Connections opened so far.
    pub(crate) opened: usize,
    closing: bool,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Conn {
        Conn { addr, sender: Self::connect(addr).await, opened: 1, closing: false }
    }

    async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Body> {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        sender
    }

    pub(crate) async fn send(&mut self, req: Request<Body>) -> Reply {
        if std::mem::take(&mut self.closing) {
            self.sender = Self::connect(self.addr).await;
            self.opened += 1;
        }
        self.sender.ready().await.unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        self.closing =
            resp.headers().get("connection").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    pub(crate) async fn get(&mut self, host: &str, path: &str) -> Reply {
        self.send(get(host, path)).await
    }
}

pub(crate) fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(path).header("host", host).body(Empty::new().boxed()).unwrap()
}

/// One request on a fresh connection.
pub(crate) async fn fetch(addr: SocketAddr, host: &str, path: &str) -> Reply {
    Conn::open(addr).await.get(host, path).await
}

/// The proxy's admin endpoint, as text.
pub(crate) async fn admin(proxy: &Proxy, path: &str) -> Reply {
    fetch(proxy.admin, "admin", path).await
}

/// Resident set size of this process, in bytes.
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// What a raw backend does with the `nth` (0-based) request on a connection: bytes to send
/// (then keep the connection unless `close`), or nothing (close without answering).
pub(crate) type Script = fn(request: &str, nth: usize) -> Option<(&'static [u8], bool)>;

/// A backend speaking raw HTTP/1.1 from a script, for responses hyper would not produce.
/// Returns its address and the number of connections it accepted.
pub(crate) async fn raw_backend(script: Script) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let counted = accepts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_raw(stream, script));
        }
    });
    (addr, accepts)
}

async fn serve_raw(mut stream: TcpStream, script: Script) {
    let mut nth = 0;
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let Some((reply, close)) = script(&String::from_utf8_lossy(&head), nth) else { return };
        if stream.write_all(reply).await.is_err() || close {
            return;
        }
        nth += 1;
    }
}

/// Reads one `Content-Length`-framed (or bodyless) response from `stream`, keeping any bytes
/// past it in `pending`. Returns the status line, the head and the body.
pub(crate) async fn read_response(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> (String, String, Vec<u8>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed inside a response head: {}", String::from_utf8_lossy(pending));
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
        .map_or(0, |v| v.trim().parse().unwrap());
    while pending.len() < head_end + length {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed inside a response body");
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = pending[head_end..head_end + length].to_vec();
    pending.drain(..head_end + length);
    (head.lines().next().unwrap_or("").to_owned(), head, body)
}
