//! `backend-protocol` and `proxy-ssl-*`: HTTPS endpoints (checked or not, with a client
//! certificate or not), from HTTP/1 and HTTP/2 clients; the endpoints the gRPC tests
//! (`grpc.rs`) use too.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress_core::{
    BackendProtocol, BackendRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule,
    RoutePolicy, TableBuilder, UpstreamProtocol, UpstreamTls,
};
use ingress_proxy::ProxyHandle;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_openssl::SslStream;

use crate::support::*;
use crate::tlsutil::*;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A CA, and certificates it signs.
pub(crate) struct Ca {
    pub(crate) cert: X509,
    key: PKey<Private>,
}

fn key() -> PKey<Private> {
    let group = openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    n.build()
}

impl Ca {
    pub(crate) fn new(cn: &str) -> Ca {
        let key = key();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name(cn)).unwrap();
        b.set_issuer_name(&name(cn)).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Ca { cert: b.build(), key }
    }

    /// A leaf certificate for `dns`, and its key.
    pub(crate) fn issue(&self, dns: &str) -> (X509, PKey<Private>) {
        self.issue_valid(dns, &Asn1Time::days_from_now(0).unwrap(), &Asn1Time::days_from_now(30).unwrap())
    }

    /// A leaf certificate for `dns` that expired yesterday, and its key.
    pub(crate) fn issue_expired(&self, dns: &str) -> (X509, PKey<Private>) {
        let day = 86_400;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        self.issue_valid(
            dns,
            &Asn1Time::from_unix(now - 2 * day).unwrap(),
            &Asn1Time::from_unix(now - day).unwrap(),
        )
    }

    fn issue_valid(&self, dns: &str, not_before: &Asn1Time, not_after: &Asn1Time) -> (X509, PKey<Private>) {
        let key = key();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = openssl::bn::BigNum::from_u32(rand_serial()).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name(dns)).unwrap();
        b.set_issuer_name(self.cert.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(not_before).unwrap();
        b.set_not_after(not_after).unwrap();
        let san =
            SubjectAlternativeName::new().dns(dns).build(&b.x509v3_context(Some(&self.cert), None)).unwrap();
        b.append_extension(san).unwrap();
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    pub(crate) fn pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().unwrap()).unwrap()
    }
}

fn rand_serial() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

/// Answers every request with `<name> <method> <path>`, and gRPC calls (`application/grpc`)
/// by echoing each message as it arrives, then `grpc-status: 0` in trailers (the calls of
/// [`crate::grpc::deadlines`] aside).
async fn handle(name: &'static str, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let grpc =
        req.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        let text = format!("{name} {} {}", req.method(), req.uri().path());
        return Ok(Response::new(Full::new(Bytes::from(text)).boxed()));
    }
    if let Some(resp) = crate::grpc::deadlines(&req).await {
        return Ok(resp);
    }
    let (tx, mut rx) = mpsc::channel::<Frame<Bytes>>(16);
    let mut body = req.into_body();
    tokio::spawn(async move {
        let mut count = 0u32;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                // An empty frame only ends the stream.
                if data.is_empty() {
                    continue;
                }
                count += 1;
                if tx.send(Frame::data(data)).await.is_err() {
                    return;
                }
            }
        }
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("x-echoed", count.to_string().parse().unwrap());
        let _ = tx.send(Frame::trailers(trailers)).await;
    });
    let stream =
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|f| f.map(Ok::<_, Infallible>)));
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    resp.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
    Ok(resp)
}

/// A backend on the loopback: HTTP/1.1 and HTTP/2 (by ALPN over TLS, by prior knowledge
/// without), over TLS with `tls` (and asking for a client certificate signed by `clients`).
pub(crate) async fn backend(
    name: &'static str,
    tls: Option<(&Ca, &str)>,
    clients: Option<&Ca>,
) -> SocketAddr {
    let acceptor = tls.map(|(ca, dns)| {
        let (cert, key) = ca.issue(dns);
        let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        a.set_certificate(&cert).unwrap();
        a.set_private_key(&key).unwrap();
        a.set_alpn_select_callback(|_, offered| {
            openssl::ssl::select_next_proto(b"\x02h2\x08http/1.1", offered)
                .ok_or(openssl::ssl::AlpnError::NOACK)
        });
        if let Some(clients) = clients {
            let mut store = openssl::x509::store::X509StoreBuilder::new().unwrap();
            store.add_cert(clients.cert.clone()).unwrap();
            a.set_verify_cert_store(store.build()).unwrap();
            a.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        Arc::new(a.build())
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(name, req));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        let mut tls = SslStream::new(Ssl::new(acceptor.context()).unwrap(), tcp).unwrap();
                        if Pin::new(&mut tls).accept().await.is_ok() {
                            let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    addr
}

/// A proxy with one route per `(host, endpoint, protocol, tls settings)`.
pub(crate) fn proxy(routes: &[(&str, SocketAddr, BackendProtocol, Option<UpstreamTls>)]) -> Proxy {
    let handle = ProxyHandle::new();
    let mut store = EndpointStore::new();
    let mut b = TableBuilder::new();
    for (i, (host, addr, protocol, tls)) in routes.iter().enumerate() {
        let svc = BackendRef::new("t", format!("svc{i}"), 80);
        store.set(&svc, EndpointSet::new([*addr]));
        let policy = RoutePolicy {
            upstream: Some(Arc::new(UpstreamProtocol {
                protocol: *protocol,
                tls: tls.clone().map(Arc::new),
            })),
            ..RoutePolicy::default()
        };
        b.ingress(
            Ingress::new(Origin::new("t", format!("i{i}")))
                .rule(HostRule::host(*host).path(PathRule::prefix("/", svc)))
                .policy(policy),
        );
    }
    let built = b.build(&mut store);
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    handle.install(Arc::new(built.table));
    Proxy::start(handle)
}

/// `GET /x` for `host` over HTTP/1.1 (plain or TLS) or HTTP/2 (TLS): status and body.
pub(crate) async fn get(proxy: &Proxy, host: &str, how: &str) -> (u16, String) {
    let req = || Request::get("/x").header("host", host).body(Empty::<Bytes>::new()).unwrap();
    let resp = match how {
        "h1" => {
            let tcp = TcpStream::connect(proxy.http).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req()).await.unwrap()
        }
        "h1s" => {
            let tls = connect(proxy.https, Some(host), &[b"http/1.1"]).await;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req()).await.unwrap()
        }
        _ => {
            let tls = connect(proxy.https, Some(host), &[b"h2"]).await;
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
            tokio::spawn(conn);
            let req = Request::get(format!("https://{host}/x")).body(Empty::<Bytes>::new()).unwrap();
            send.send_request(req).await.unwrap()
        }
    };
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_checked_or_not_with_a_client_certificate_or_not() {
    let ca = Ca::new("upstream CA");
    let stranger = Ca::new("another CA");
    let clients = Ca::new("client CA");
    let tls_backend = backend("tls", Some((&ca, "api.internal")), None).await;
    let mtls_backend = backend("mtls", Some((&ca, "api.internal")), Some(&clients)).await;
    let plain = backend("plain", None, None).await;
    let checked = |ca: &Ca| UpstreamTls {
        ca: Some(ca.pem()),
        verify: true,
        name: "api.internal".into(),
        server_name: true,
        ..UpstreamTls::default()
    };
    let (client_cert, client_key) = clients.issue("proxy.client");
    let with_client_cert = UpstreamTls {
        certificate: Some(String::from_utf8(client_cert.to_pem().unwrap()).unwrap()),
        key: Some(String::from_utf8(client_key.private_key_to_pem_pkcs8().unwrap()).unwrap()),
        ..checked(&ca)
    };
    let p = proxy(&[
        ("https.test", tls_backend, BackendProtocol::Https, None),
        ("verified.test", tls_backend, BackendProtocol::Https, Some(checked(&ca))),
        ("untrusted.test", tls_backend, BackendProtocol::Https, Some(checked(&stranger))),
        (
            "wrong-name.test",
            tls_backend,
            BackendProtocol::Https,
            Some(UpstreamTls { name: "other.internal".into(), ..checked(&ca) }),
        ),
        ("mtls.test", mtls_backend, BackendProtocol::Https, Some(with_client_cert)),
        ("no-cert.test", mtls_backend, BackendProtocol::Https, Some(checked(&ca))),
        ("auto.test", tls_backend, BackendProtocol::AutoHttp, None),
        ("plain.test", plain, BackendProtocol::Http, None),
    ]);
    for how in ["h1", "h1s", "h2"] {
        // nginx's default: TLS, certificate not checked.
        assert_eq!(get(&p, "https.test", how).await, (200, "tls GET /x".into()), "{how}");
        assert_eq!(get(&p, "verified.test", how).await, (200, "tls GET /x".into()), "{how}");
        assert_eq!(get(&p, "untrusted.test", how).await.0, 502, "{how}: a certificate no trusted CA signed");
        assert_eq!(get(&p, "wrong-name.test", how).await.0, 502, "{how}: a certificate for another name");
        assert_eq!(
            get(&p, "mtls.test", how).await,
            (200, "mtls GET /x".into()),
            "{how}: client certificate presented"
        );
        assert_eq!(
            get(&p, "no-cert.test", how).await.0,
            502,
            "{how}: the endpoint wants a client certificate"
        );
        assert_eq!(get(&p, "plain.test", how).await, (200, "plain GET /x".into()), "{how}");
    }
    // AUTO_HTTP follows the client: TLS upstream for TLS clients only.
    assert_eq!(get(&p, "auto.test", "h1s").await, (200, "tls GET /x".into()));
    assert_eq!(get(&p, "auto.test", "h2").await, (200, "tls GET /x".into()));
    assert_eq!(get(&p, "auto.test", "h1").await.0, 502, "plain HTTP to a TLS port");
    // Connections to TLS endpoints are pooled like plain ones (same answers on reuse).
    for _ in 0..3 {
        assert_eq!(get(&p, "verified.test", "h1").await.0, 200);
    }
}
