//! TLS passthrough (`ssl-passthrough` with the front on): connections for a passthrough host
//! reach the backend's own TLS unterminated; every other connection is terminated and routed
//! as before, with the client's address and port carried over the local hop.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingress_core::{
    BackendRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder,
};
use ingress_proxy::{ProxyHandle, RuntimeSettings};
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

use crate::support::*;
use crate::tlsutil::*;

/// A TLS backend with its own certificate (CN `name`): answers each line with
/// `<name>: <line>`.
async fn tls_backend(name: &'static str) -> SocketAddr {
    let pem = make_cert(&[name]);
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_certificate(&X509::from_pem(pem.chain.as_bytes()).unwrap()).unwrap();
    acceptor
        .set_private_key(&openssl::pkey::PKey::private_key_from_pem(pem.key.as_bytes()).unwrap())
        .unwrap();
    let acceptor = Arc::new(acceptor.build());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = Arc::clone(&acceptor);
            tokio::spawn(async move {
                let ssl = openssl::ssl::Ssl::new(acceptor.context()).unwrap();
                let mut tls = SslStream::new(ssl, tcp).unwrap();
                if Pin::new(&mut tls).accept().await.is_err() {
                    return;
                }
                let mut lines = BufReader::new(tls);
                let mut line = String::new();
                while lines.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                    let reply = format!("{name}: {line}");
                    if lines.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// A TLS handshake that may fail (the helper in `tlsutil` insists on success).
async fn try_connect(addr: SocketAddr, sni: &str) -> Result<SslStream<TcpStream>, String> {
    let mut builder = SslConnector::builder(SslMethod::tls()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    let ssl = builder.build().configure().unwrap().into_ssl(sni).unwrap();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut stream).connect().await.map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A proxy with the passthrough front on: `pass.test` and `*.wild.test` pass through to
/// `tls`, `dead.test` passes through to a closed port, `normal.test` is an HTTP route to
/// `http`.
fn proxy(tls: SocketAddr, http: SocketAddr) -> Proxy {
    let handle = ProxyHandle::new();
    let mut store = EndpointStore::new();
    let (pass, normal, dead) = (
        BackendRef::new("t", "pass", 443),
        BackendRef::new("t", "normal", 80),
        BackendRef::new("t", "dead", 443),
    );
    store.set(&pass, EndpointSet::new([tls]));
    store.set(&normal, EndpointSet::new([http]));
    store.set(&dead, EndpointSet::new([local(free_port())]));
    let mut b = TableBuilder::new();
    b.ingress(
        Ingress::new(Origin::new("t", "pass"))
            .rule(HostRule::host("pass.test").path(PathRule::prefix("/", pass.clone())))
            .rule(HostRule::host("*.wild.test").path(PathRule::prefix("/", pass)))
            .rule(HostRule::host("dead.test").path(PathRule::prefix("/", dead)))
            .with_ssl_passthrough(),
    )
    .ingress(
        Ingress::new(Origin::new("t", "normal"))
            .rule(HostRule::host("normal.test").path(PathRule::prefix("/", normal))),
    );
    let built = b.build(&mut store);
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    handle.install(Arc::new(built.table));
    let mut settings = RuntimeSettings::default();
    settings.client.header_timeout = Duration::from_secs(1);
    handle.set_settings(settings);
    let terminator = local(free_port());
    Proxy::start_with(handle, |c| c.ssl_passthrough = Some(terminator))
}

async fn line(tls: &mut SslStream<TcpStream>, text: &str) -> String {
    tls.write_all(format!("{text}\n").as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n") {
        if tls.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        got.push(byte[0]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_hosts_reach_the_backends_tls_and_the_rest_is_terminated() {
    let tls = tls_backend("backend.pass.test").await;
    let http = Backend::start("normal").await;
    let proxy = proxy(tls, http.addr);

    // The backend's own certificate, and its own answers, whatever the case of the name.
    for sni in ["pass.test", "PASS.test", "a.wild.test"] {
        let mut s = connect(proxy.https, Some(sni), &[]).await;
        assert_eq!(served_cn(&s), "backend.pass.test", "{sni}");
        assert_eq!(line(&mut s, "hello").await, "backend.pass.test: hello\n", "{sni}");
        assert_eq!(line(&mut s, "again").await, "backend.pass.test: again\n", "{sni}");
    }

    // Another host: terminated by the proxy (its fallback certificate), routed over HTTP/1.1;
    // the client's address and the public port cross the local hop.
    let mut s = connect(proxy.https, Some("normal.test"), &[b"http/1.1"]).await;
    assert_eq!(served_cn(&s), "Ferry Ingress Controller Fake Certificate");
    s.write_all(b"GET /headers HTTP/1.1\r\nHost: normal.test\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap_or_default();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("x-forwarded-for: 127.0.0.1\n"), "{reply}");
    assert!(reply.contains(&format!("x-forwarded-port: {}\n", proxy.https.port())), "{reply}");
    assert!(reply.contains("x-forwarded-proto: https\n"), "{reply}");
    // HTTP/2 is negotiated with the terminator as before.
    let s = connect(proxy.https, Some("normal.test"), &[b"h2", b"http/1.1"]).await;
    assert_eq!(s.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
    // No server name: terminated too.
    let s = connect(proxy.https, None, &[]).await;
    assert_eq!(served_cn(&s), "Ferry Ingress Controller Fake Certificate");
    // Plain HTTP is untouched.
    let mut c = Conn::open(proxy.http).await;
    let r = c
        .send(
            hyper::Request::get("/")
                .header("host", "normal.test")
                .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_passed_or_read_is_closed() {
    let tls = tls_backend("backend.pass.test").await;
    let http = Backend::start("normal").await;
    let proxy = proxy(tls, http.addr);

    // A passthrough host whose endpoint is down: the connection closes, nothing else happens.
    assert!(try_connect(proxy.https, "dead.test").await.is_err());
    // Not TLS at all: handed to the terminator, which refuses it.
    let mut raw = TcpStream::connect(proxy.https).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "closed, not left hanging");
    assert!(!String::from_utf8_lossy(&got).contains("backend.pass.test"), "{got:?}");
    // A ClientHello that never completes: closed after the client header timeout (1 s).
    let mut slow = TcpStream::connect(proxy.https).await.unwrap();
    slow.write_all(&[22, 3, 1, 0, 200, 1]).await.unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "closed within the timeout");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(4), "{waited:?}");
    // The proxy still serves both ways afterwards.
    let mut s = connect(proxy.https, Some("pass.test"), &[]).await;
    assert_eq!(line(&mut s, "still").await, "backend.pass.test: still\n");
    assert!(try_connect(proxy.https, "normal.test").await.is_ok());
}
