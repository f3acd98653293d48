//! HTTPS: SNI certificate choice, wildcard and default certificates, the fake certificate,
//! HTTP/2 by ALPN, certificate swaps without restart.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress_core::{
    BackendRef, CertificatePem, CertificateRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin,
    PathRule, TableBuilder,
};
use ingress_proxy::ProxyHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;
use crate::tlsutil::*;

/// A table routing `*.example.com`-ish hosts to `backend`, with the given TLS entries and
/// default certificate.
fn tls_table(
    backend: std::net::SocketAddr,
    certs: &[(&str, &str, &CertificatePem)],
    default: Option<&CertificatePem>,
) -> ingress_core::RouteTable {
    let svc = BackendRef::new("test", "svc", 80);
    let mut store = EndpointStore::new();
    store.set(&svc, EndpointSet::new([backend]));
    let mut builder = TableBuilder::new();
    let mut ingress = Ingress::new(Origin::new("test", "tls")).default_backend(svc.clone());
    for (host, secret, pem) in certs {
        let cert = CertificateRef::new("test", *secret);
        ingress = ingress
            .tls([*host], cert.clone())
            .rule(HostRule::host(*host).path(PathRule::prefix("/", svc.clone())));
        builder.certificate(cert, (*pem).clone());
    }
    builder.ingress(ingress);
    if let Some(pem) = default {
        let cert = CertificateRef::new("ingress-ferry", "default-tls");
        builder.default_certificate(cert.clone()).certificate(cert, pem.clone());
    }
    let built = builder.build(&mut store);
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    built.table
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_exact_wildcard_and_default_certificates() {
    let b = Backend::start("b").await;
    let exact = make_cert(&["a.example.com"]);
    let wild = make_cert(&["*.wild.example.com"]);
    let dflt = make_cert(&["default.example.com"]);
    let handle = ProxyHandle::new();
    let installed = handle.install(Arc::new(tls_table(
        b.addr,
        &[("a.example.com", "a-tls", &exact), ("*.wild.example.com", "wild-tls", &wild)],
        Some(&dflt),
    )));
    assert!(installed.certificate_errors.is_empty());
    let proxy = Proxy::start(handle);

    let cases = [
        (Some("a.example.com"), "a.example.com"),
        (Some("A.EXAMPLE.COM"), "a.example.com"),
        (Some("x.wild.example.com"), "*.wild.example.com"),
        (Some("deep.x.wild.example.com"), "default.example.com"),
        (Some("unknown.org"), "default.example.com"),
        (None, "default.example.com"),
    ];
    for (sni, want) in cases {
        let stream = connect(proxy.https, sni, &[b"http/1.1"]).await;
        assert_eq!(served_cn(&stream), want, "SNI {sni:?}");
        assert!(served_sans(&stream).contains(&want.to_owned()));
        let version = stream.ssl().version2().unwrap();
        assert!(matches!(version, openssl::ssl::SslVersion::TLS1_2 | openssl::ssl::SslVersion::TLS1_3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_certificate_without_default_and_https_routing() {
    let b = Backend::start("b").await;
    let handle = ProxyHandle::new();
    handle.install(Arc::new(tls_table(b.addr, &[], None)));
    let proxy = Proxy::start(handle);
    let mut stream = connect(proxy.https, Some("any.example.com"), &[b"http/1.1"]).await;
    assert_eq!(served_cn(&stream), "Ferry Ingress Controller Fake Certificate");
    assert_eq!(stream.ssl().selected_alpn_protocol(), Some(&b"http/1.1"[..]));
    stream
        .write_all(b"GET /headers HTTP/1.1\r\nHost: any.example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("x-forwarded-proto: https"), "{response}");
    assert!(response.contains(&format!("x-forwarded-port: {}", proxy.https.port())), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls() {
    let b = Backend::start("b").await;
    let cert = make_cert(&["h2.example.com"]);
    let handle = ProxyHandle::new();
    handle.install(Arc::new(tls_table(b.addr, &[("h2.example.com", "h2-tls", &cert)], None)));
    let proxy = Proxy::start(handle);
    let stream = connect(proxy.https, Some("h2.example.com"), &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    for i in 0..5 {
        let req = hyper::Request::get(format!("https://h2.example.com/stream/{i}?x=1"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("b GET /stream/{i}?x=1"));
    }
    // Unknown host over h2: the built-in 404 comes through HTTP/2 too.
    let req = hyper::Request::get("https://nope.example.org/").body(Empty::<bytes::Bytes>::new()).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    // The Ingress has rules, so its default backend covers only its own hosts.
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), ingress_proxy::DEFAULT_BACKEND_BODY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_swap_applies_to_new_handshakes_and_parses_once() {
    let b = Backend::start("b").await;
    let v1 = make_cert(&["swap.example.com", "v1.swap.example.com"]);
    let v2 = make_cert(&["swap.example.com", "v2.swap.example.com"]);
    let handle = ProxyHandle::new();
    handle.install(Arc::new(tls_table(b.addr, &[("swap.example.com", "swap-tls", &v1)], None)));
    let parsed_after_first = handle.certificates_parsed();
    assert_eq!(parsed_after_first, 1);
    // The same content again (a new table, new Arc): not parsed again.
    handle.install(Arc::new(tls_table(b.addr, &[("swap.example.com", "swap-tls", &v1)], None)));
    assert_eq!(handle.certificates_parsed(), 1);
    let proxy = Proxy::start(handle.clone());

    let old = connect(proxy.https, Some("swap.example.com"), &[]).await;
    assert!(served_sans(&old).contains(&"v1.swap.example.com".to_owned()));

    handle.install(Arc::new(tls_table(b.addr, &[("swap.example.com", "swap-tls", &v2)], None)));
    assert_eq!(handle.certificates_parsed(), 2);
    let new = connect(proxy.https, Some("swap.example.com"), &[]).await;
    assert!(served_sans(&new).contains(&"v2.swap.example.com".to_owned()));

    // A broken certificate is reported and its host falls back to the fake certificate.
    let broken = CertificatePem::new(v2.chain.clone(), v1.key.clone());
    let installed =
        handle.install(Arc::new(tls_table(b.addr, &[("swap.example.com", "swap-tls", &broken)], None)));
    assert_eq!(installed.certificate_errors.len(), 1);
    let fallback = connect(proxy.https, Some("swap.example.com"), &[]).await;
    assert_eq!(served_cn(&fallback), "Ferry Ingress Controller Fake Certificate");
}
