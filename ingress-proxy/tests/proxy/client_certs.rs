//! Client certificates (`auth-tls-*`): a host asks its clients for a certificate in the
//! handshake and answers each request by the result, as ingress-nginx's
//! `ssl_verify_client`: a valid, an invalid and no certificate, each mode, the subject match,
//! the error page, and the `ssl-client-*` headers the endpoint gets, over HTTP/1.1 and HTTP/2
//! (and over plain HTTP, where nothing is checked and a client's own such headers are dropped).

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress_core::{
    BackendRef, ClientAuth, CnPattern, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule,
    TableBuilder, VerifyClient,
};
use ingress_proxy::ProxyHandle;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::support::*;
use crate::upstreams::Ca;

/// A TLS connection with SNI `host`, presenting `cert` if given.
async fn tls(
    proxy: &Proxy,
    host: &str,
    cert: Option<&(X509, PKey<Private>)>,
    h2: bool,
) -> SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    if let Some((cert, key)) = cert {
        b.set_certificate(cert).unwrap();
        b.set_private_key(key).unwrap();
    }
    b.set_alpn_protos(if h2 { b"\x02h2" } else { b"\x08http/1.1" }).unwrap();
    let ssl = b.build().configure().unwrap().into_ssl(host).unwrap();
    let mut stream = SslStream::new(ssl, TcpStream::connect(proxy.https).await.unwrap()).unwrap();
    Pin::new(&mut stream).connect().await.unwrap();
    stream
}

/// `GET /headers` on `host` with `cert` (and `extra` request headers): the status, and the
/// `Location` or the headers the endpoint got.
async fn get(
    proxy: &Proxy,
    host: &str,
    cert: Option<&(X509, PKey<Private>)>,
    h2: bool,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let stream = tls(proxy, host, cert, h2).await;
    let mut req = Request::get(if h2 { format!("https://{host}/headers") } else { "/headers".to_owned() });
    if !h2 {
        req = req.header("host", host);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    };
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (status, location.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()))
}

fn header<'a>(echoed: &'a str, name: &str) -> Option<&'a str> {
    echoed.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_as_ingress_nginx_checks_them() {
    let clients = Ca::new("client CA");
    let stranger = Ca::new("stranger CA");
    let alice = clients.issue("alice");
    let bob = clients.issue("bob");
    let mallory = stranger.issue("alice");
    let expired = clients.issue_expired("alice");
    let backend = Backend::start("echo").await;
    let auth = |verify, match_cn: Option<&str>, error_page: Option<&str>| ClientAuth {
        ca: clients.pem(),
        verify,
        depth: 1,
        error_page: error_page.map(str::to_owned),
        pass_certificate: true,
        match_cn: match_cn.map(|m| CnPattern::new(m).unwrap()),
    };
    let handle = ProxyHandle::new();
    let mut store = EndpointStore::new();
    let svc = BackendRef::new("t", "echo", 80);
    store.set(&svc, EndpointSet::new([backend.addr]));
    let mut b = TableBuilder::new();
    for (name, host, client_auth) in [
        ("on", "mtls.test", Some(auth(VerifyClient::On, None, None))),
        ("optional", "optional.test", Some(auth(VerifyClient::Optional, None, None))),
        ("no-ca", "no-ca.test", Some(auth(VerifyClient::OptionalNoCa, None, None))),
        ("cn", "cn.test", Some(auth(VerifyClient::On, Some("CN=alice$"), None))),
        (
            "page",
            "page.test",
            Some(auth(VerifyClient::On, None, Some("https://login.example.com/cert-error"))),
        ),
        ("open", "open.test", None),
    ] {
        let mut ingress = Ingress::new(Origin::new("t", name))
            .rule(HostRule::host(host).path(PathRule::prefix("/", svc.clone())));
        if let Some(a) = client_auth {
            ingress = ingress.with_client_auth(a);
        }
        b.ingress(ingress);
    }
    let built = b.build(&mut store);
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    handle.install(Arc::new(built.table));
    let p = Proxy::start(handle);

    for h2 in [false, true] {
        // `on`: only a certificate from the CA.
        let (status, echoed) = get(&p, "mtls.test", Some(&alice), h2, &[]).await;
        assert_eq!(status, 200, "h2={h2}: {echoed}");
        assert_eq!(header(&echoed, "ssl-client-verify"), Some("SUCCESS"), "{echoed}");
        assert_eq!(header(&echoed, "ssl-client-subject-dn"), Some("CN=alice"));
        assert_eq!(header(&echoed, "ssl-client-issuer-dn"), Some("CN=client CA"));
        assert!(
            header(&echoed, "ssl-client-cert").is_some_and(|c| c.starts_with("-----BEGIN%20CERTIFICATE")),
            "{echoed}"
        );
        assert_eq!(get(&p, "mtls.test", Some(&mallory), h2, &[]).await.0, 400, "h2={h2}: another CA's");
        assert_eq!(get(&p, "mtls.test", None, h2, &[]).await.0, 400, "h2={h2}: none");
        // A client cannot claim a verdict of its own.
        let spoof = [("ssl-client-verify", "SUCCESS"), ("ssl-client-subject-dn", "CN=alice")];
        assert_eq!(get(&p, "mtls.test", None, h2, &spoof).await.0, 400);
        let (status, echoed) = get(&p, "optional.test", None, h2, &spoof).await;
        assert_eq!((status, header(&echoed, "ssl-client-verify")), (200, Some("NONE")), "h2={h2}: {echoed}");
        assert_eq!(header(&echoed, "ssl-client-subject-dn"), None, "the client's claim is dropped");
        // `optional`: none passes, a bad one does not; `optional_no_ca`: one of any CA passes …
        assert_eq!(get(&p, "optional.test", Some(&alice), h2, &[]).await.0, 200);
        assert_eq!(get(&p, "optional.test", Some(&mallory), h2, &[]).await.0, 400);
        let (status, echoed) = get(&p, "no-ca.test", Some(&mallory), h2, &[]).await;
        assert_eq!(status, 200, "{echoed}");
        assert!(header(&echoed, "ssl-client-verify").is_some_and(|v| v.starts_with("FAILED:")), "{echoed}");
        // … but for its issuer only: an expired one is refused, as nginx refuses it.
        assert_eq!(get(&p, "no-ca.test", Some(&expired), h2, &[]).await.0, 400, "h2={h2}");
        assert_eq!(get(&p, "mtls.test", Some(&expired), h2, &[]).await.0, 400, "h2={h2}");
        // `auth-tls-match-cn` and `auth-tls-error-page`.
        assert_eq!(get(&p, "cn.test", Some(&alice), h2, &[]).await.0, 200);
        assert_eq!(get(&p, "cn.test", Some(&bob), h2, &[]).await.0, 403);
        assert_eq!(
            get(&p, "page.test", None, h2, &[]).await,
            (302, "https://login.example.com/cert-error".to_owned()),
            "h2={h2}"
        );
        // A host without client certificates neither asks nor checks.
        let (status, echoed) = get(&p, "open.test", Some(&mallory), h2, &[]).await;
        assert_eq!((status, header(&echoed, "ssl-client-verify")), (200, None));
    }
    // Over plain HTTP nothing is checked, as with nginx, and a client's claims never pass.
    let spoofed = Request::get("/headers")
        .header("host", "mtls.test")
        .header("ssl-client-verify", "SUCCESS")
        .header("ssl-client-subject-dn", "CN=alice")
        .body(Body::default())
        .unwrap();
    let reply = Conn::open(p.http).await.send(spoofed).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(header(&reply.text(), "ssl-client-verify"), None, "{}", reply.text());
    assert_eq!(header(&reply.text(), "ssl-client-subject-dn"), None);
}
