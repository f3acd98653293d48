//! Behaviour pinned to every transport, in the style of matchit's match tests: each row of
//! [`rows`] is one behaviour (a request and what must come of it), and each test below runs
//! every row over one transport — HTTP/1.1 on a kept-alive connection, HTTP/1.0, HTTP/1.1
//! with `Expect: 100-continue` and a body, an HTTP/1.1 upgrade request the backend declines,
//! HTTP/2 and HTTP/1.1 over TLS. A behaviour cannot move to one path only: the same row fails
//! on the transport that lost it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress_core::{
    BackendRef, BodyLimit, CanaryRule, Cors, CorsOrigins, EndpointSet, HeaderOp, HostRule, Ingress, Origin,
    PathRule, PrefixRewrite, Redirect, ResponseRewrites, RoutePolicy, parse_cidrs,
};
use ingress_proxy::{
    DEFAULT_BACKEND_BODY, Forwarding, LogEscape, LogFormat, LogTemplate, ProxyHandle, RuntimeSettings,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::accesslog::log_line_for;
use crate::support::*;
use crate::tlsutil::connect;

/// The ways a request reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// HTTP/1.1, the second request on a kept-alive connection.
    KeepAlive,
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1 `PUT` with `Expect: 100-continue`, the body sent once the proxy asks for it.
    Expect,
    /// HTTP/1.1 with `Connection: upgrade` and `Upgrade: websocket` (the backend declines).
    Upgrade,
    /// HTTP/2 over TLS.
    Http2,
    /// HTTP/1.1 over TLS.
    Tls,
}

impl Transport {
    fn tls(self) -> bool {
        matches!(self, Transport::Http2 | Transport::Tls)
    }

    fn method(self) -> &'static str {
        if self == Transport::Expect { "PUT" } else { "GET" }
    }
}

/// A request of a row.
#[derive(Debug, Clone, Default)]
struct Ask {
    host: String,
    path: String,
    headers: Vec<(String, String)>,
    /// Headers only HTTP/1 can carry (HTTP/2 forbids connection-specific ones).
    h1_headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// The method, when not the transport's own.
    method: Option<&'static str>,
}

/// A response as any transport gives it back.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header line of the request as the `/headers` backend echoed it.
    fn echoed(&self, name: &str) -> Option<String> {
        self.text().lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
    }
}

/// The proxy and what the rows route to.
struct Env {
    proxy: Proxy,
    backend: Backend,
    _canary: Backend,
    _errors: Backend,
    _store: ingress_core::EndpointStore,
}

const SECRET_ROUTE_HEADER: &str = "x-route";

/// Request lines that arrived on a pooled connection of the stale backend (and were dropped).
static STALE_HITS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

async fn env() -> Env {
    let backend = Backend::start("parity").await;
    let stale = stale_backend().await;
    let policy = RoutePolicy {
        read_timeout: Some(Duration::from_millis(300)),
        max_body_size: Some(BodyLimit::Bytes(8)),
        request_headers: vec![HeaderOp::set("x-from-route", "parity").unwrap()],
        response_headers: vec![HeaderOp::set(SECRET_ROUTE_HEADER, "parity").unwrap()],
        ..RoutePolicy::default()
    };
    let handle = ProxyHandle::new();
    let mut routes = Routes::new();
    routes
        .route_with("parity", "p.test", "/", "svc-p", &[backend.addr], policy)
        .route("empty", "empty.test", "/", "svc-empty", &[])
        .route("down", "down.test", "/", "svc-down", &[local(free_port())])
        .route("stale", "stale.test", "/", "svc-stale", &[stale])
        .route_with(
            "closed",
            "closed.test",
            "/",
            "svc-closed",
            &[backend.addr],
            RoutePolicy { closed: Some("auth-url not applied".into()), ..RoutePolicy::default() },
        );
    routes.route_with(
        "moved",
        "moved.test",
        "/",
        "svc-p",
        &[backend.addr],
        RoutePolicy {
            redirect: Some(Redirect::new(301, "https://new.example/").unwrap()),
            ..RoutePolicy::default()
        },
    );
    // The rewrite idiom: `/api/<rest>` goes upstream as `/<rest>`.
    routes.route_with(
        "rewrite",
        "rw.test",
        "/api(/|$)(.*)",
        "svc-p",
        &[backend.addr],
        RoutePolicy {
            rewrite_target: Some("/$2".parse().unwrap()),
            forwarded_prefix: Some("/api".into()),
            ..RoutePolicy::default()
        },
    );
    routes.route_with(
        "vhost",
        "vhost.test",
        "/",
        "svc-p",
        &[backend.addr],
        RoutePolicy { upstream_host: Some("internal.svc:8080".into()), ..RoutePolicy::default() },
    );
    routes.route_with(
        "cors",
        "cors.test",
        "/",
        "svc-p",
        &[backend.addr],
        RoutePolicy {
            cors: Some(Cors {
                origins: CorsOrigins::List(vec!["https://*.app.test".parse().unwrap()]),
                allow_methods: "GET, PUT".into(),
                allow_headers: "X-A".into(),
                allow_credentials: true,
                expose_headers: None,
                max_age: 60,
            }),
            ..RoutePolicy::default()
        },
    );
    routes.route_with(
        "rewrites",
        "rewrites.test",
        "/",
        "svc-p",
        &[backend.addr],
        RoutePolicy {
            response_rewrites: Some(Box::new(ResponseRewrites {
                redirect: Some(PrefixRewrite {
                    from: "http://internal.svc/".into(),
                    to: "https://shop.test/".into(),
                }),
                cookie_domain: Some(PrefixRewrite { from: "internal.svc".into(), to: "shop.test".into() }),
                cookie_path: Some(PrefixRewrite { from: "/app/".into(), to: "/".into() }),
            })),
            ..RoutePolicy::default()
        },
    );
    // Source ranges on the client's address (127.0.0.1 here).
    let ranges = |allow: &str, deny: &str| RoutePolicy {
        allow_ranges: (!allow.is_empty()).then(|| parse_cidrs(allow).unwrap().into()),
        deny_ranges: (!deny.is_empty()).then(|| parse_cidrs(deny).unwrap().into()),
        ..RoutePolicy::default()
    };
    routes.route_with("allowed", "allowed.test", "/", "svc-p", &[backend.addr], ranges("127.0.0.0/8", ""));
    routes.route_with(
        "elsewhere",
        "elsewhere.test",
        "/",
        "svc-p",
        &[backend.addr],
        ranges("10.0.0.0/8, ::1", ""),
    );
    routes.route_with(
        "denied",
        "denied.test",
        "/",
        "svc-p",
        &[backend.addr],
        ranges("127.0.0.0/8", "127.0.0.1"),
    );
    // custom-http-errors: the route's 503s (upstream's or the proxy's) go to its fallback.
    let errors_ref = BackendRef::new("test", "svc-errors", 80);
    let errors_backend = Backend::start("errors").await;
    routes.store.set(&errors_ref, EndpointSet::new([errors_backend.addr]));
    let pages = RoutePolicy { custom_errors: Some(Box::new([503, 502])), ..RoutePolicy::default() };
    for (name, host, addr) in
        [("errors", "errors.test", backend.addr), ("errors-down", "errors-down.test", local(free_port()))]
    {
        let own = BackendRef::new("test", format!("svc-{name}-own"), 80);
        routes.store.set(&own, EndpointSet::new([addr]));
        routes.builder.ingress(
            Ingress::new(Origin::new("test", name))
                .rule(HostRule::host(host).path(PathRule::prefix("/", own)))
                .policy(pages.clone())
                .fallback(errors_ref.clone()),
        );
    }
    // A canary pair: the main route to the parity backend, the canary (by header) to another.
    let canary_backend = Backend::start("canary").await;
    routes.route("main", "canary.test", "/", "svc-p", &[backend.addr]);
    let canary_ref = BackendRef::new("test", "svc-canary", 80);
    routes.store.set(&canary_ref, EndpointSet::new([canary_backend.addr]));
    routes.builder.ingress(
        Ingress::new(Origin::new("test", "main-canary"))
            .rule(HostRule::host("canary.test").path(PathRule::prefix("/", canary_ref)))
            .as_canary(CanaryRule {
                header: Some("x-canary".into()),
                weight: 0,
                weight_total: 100,
                ..CanaryRule::default()
            }),
    );
    // External authentication (auth-url) by an oauth2-proxy-shaped service.
    let auth = auth_service().await;
    let mut external = ingress_core::ExternalAuth::new(&format!("http://{auth}/oauth2/auth")).unwrap();
    external.signin = Some(ingress_core::signin_url("https://login.test/start", "").unwrap());
    external.response_headers = vec!["x-auth-request-user".into(), "x-auth-request-email".into()];
    routes.route_with(
        "authed",
        "authed.test",
        "/",
        "svc-p",
        &[backend.addr],
        RoutePolicy { external_auth: Some(std::sync::Arc::new(external)), ..RoutePolicy::default() },
    );
    // The same auth service under `satisfy: any` with an address range the client is in (the
    // auth service is not asked), and with a sign-in URL built from the decoded path.
    let mut external = ingress_core::ExternalAuth::new(&format!("http://{auth}/oauth2/auth")).unwrap();
    external.response_headers = vec!["x-auth-request-user".into()];
    external.signin = Some(ingress_core::signin_url("https://login.test/start?u=$uri", "").unwrap());
    let external = std::sync::Arc::new(external);
    routes.route_with(
        "authed-any",
        "authed-any.test",
        "/",
        "svc-p",
        &[backend.addr],
        RoutePolicy {
            external_auth: Some(external.clone()),
            satisfy_any: true,
            allow_ranges: Some(parse_cidrs("127.0.0.0/8").unwrap().into()),
            ..RoutePolicy::default()
        },
    );
    routes.route_with(
        "authed-uri",
        "authed-uri.test",
        "/",
        "svc-p",
        &[backend.addr],
        RoutePolicy { external_auth: Some(external), ..RoutePolicy::default() },
    );
    // Cookie affinity.
    let sticky = ingress_core::Balance {
        load_balance: None,
        hash_by: None,
        affinity: Some(ingress_core::Affinity {
            persistent: false,
            change_on_failure: false,
            cookie: ingress_core::SessionCookie::default(),
        }),
    };
    routes.route_with(
        "sticky",
        "sticky.test",
        "/",
        "svc-p",
        &[backend.addr],
        RoutePolicy { balance: Some(Box::new(sticky)), ..RoutePolicy::default() },
    );
    // A host of an Ingress with a TLS section: plain HTTP is redirected to HTTPS.
    let secure = BackendRef::new("test", "svc-p", 80);
    routes.builder.ingress(
        Ingress::new(Origin::new("test", "secure"))
            .rule(HostRule::host("secure.test").path(PathRule::prefix("/", secure)))
            .with_tls_section(),
    );
    let store = routes.install(&handle);
    Env {
        proxy: Proxy::start(handle),
        backend,
        _canary: canary_backend,
        _errors: errors_backend,
        _store: store,
    }
}

/// A backend that answers the first request on a connection (once it has read its whole body,
/// so the connection is reusable) and keeps the connection; the next request on it finds it
/// closed, as when an upstream's keep-alive timeout fires just then. Those requests' lines go to
/// [`STALE_HITS`].
async fn stale_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let (head, body) = read_request(&mut stream, &mut pending).await?;
                assert!(body.len() < 1000, "{head}");
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh").await.ok()?;
                let (head, _) = read_request(&mut stream, &mut pending).await?;
                STALE_HITS.lock().unwrap().push(head.lines().next().unwrap_or("").to_owned());
                Some(())
            });
        }
    });
    addr
}

/// An auth service shaped as oauth2-proxy's `/oauth2/auth`: cookie `session=ok` is let
/// through (`200` with the user's headers and a renewed cookie), `session=no` is refused
/// (`403`), anything else is not signed in (`401`).
async fn auth_service() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (head, _) = read_request(&mut stream, &mut Vec::new()).await?;
                let cookie = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(": ")?;
                    name.eq_ignore_ascii_case("cookie").then(|| value.to_owned())
                });
                let answer = match cookie.as_deref() {
                    Some("session=ok") => {
                        "HTTP/1.1 202 Accepted\r\nX-Auth-Request-User: alice\r\n\
                                           Set-Cookie: session=renewed; Path=/\r\nContent-Length: 0\r\n\r\n"
                    }
                    Some("session=no") => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
                    _ => {
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\
                          Set-Cookie: csrf=1\r\nContent-Length: 0\r\n\r\n"
                    }
                };
                stream.write_all(answer.as_bytes()).await.ok()
            });
        }
    });
    addr
}

/// Reads one request (head and `Content-Length` body); `None` when the connection closes first.
async fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let end = loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if fill(stream, pending).await == 0 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while pending.len() < end + length {
        if fill(stream, pending).await == 0 {
            return None;
        }
    }
    let body = pending[end..end + length].to_vec();
    pending.drain(..end + length);
    Some((head, body))
}

/// One behaviour: a request, and what must come of it on every transport.
struct Row {
    name: &'static str,
    ask: Ask,
    check: fn(&Env, Transport, &Got),
}

fn ask(host: &str, path: &str) -> Ask {
    Ask { host: host.to_owned(), path: path.to_owned(), ..Ask::default() }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "forwarding headers replace what the client claims",
            ask: Ask {
                headers: pairs(&[
                    ("x-forwarded-for", "203.0.113.9"),
                    ("x-real-ip", "6.6.6.6"),
                    ("x_real_ip", "6.6.6.6"),
                    ("x-forwarded-proto", "gopher"),
                    ("x-scheme", "gopher"),
                    ("proxy", "http://evil.example:3128"),
                    ("x-forwarded-port", "1"),
                    ("x-request-id", "parity-forwarding"),
                ]),
                ..ask("p.test", "/headers")
            },
            check: |env, t, got| {
                assert_eq!(got.status, 200);
                // As ingress-nginx: replaced by the peer's address (nothing is trusted by
                // default), with what the client sent passed on as X-Original-Forwarded-For.
                assert_eq!(got.echoed("x-forwarded-for").as_deref(), Some("127.0.0.1"));
                assert_eq!(got.echoed("x-original-forwarded-for").as_deref(), Some("203.0.113.9"));
                assert_eq!(got.echoed("x-real-ip").as_deref(), Some("127.0.0.1"));
                let scheme = if t.tls() { "https" } else { "http" };
                for name in ["x-forwarded-proto", "x-forwarded-scheme", "x-scheme"] {
                    assert_eq!(got.echoed(name).as_deref(), Some(scheme), "{name}");
                }
                assert_eq!(got.echoed("x-forwarded-host").as_deref(), Some("p.test"));
                let port = if t.tls() { env.proxy.https.port() } else { env.proxy.http.port() };
                assert_eq!(got.echoed("x-forwarded-port"), Some(port.to_string()));
                assert_eq!(got.echoed("x-request-id").as_deref(), Some("parity-forwarding"));
                assert_eq!(got.echoed("x_real_ip"), None, "`_` names are dropped");
                assert_eq!(got.echoed("proxy"), None, "httpoxy");
                assert_eq!(got.echoed("x-from-route").as_deref(), Some("parity"), "the route's request edit");
                assert_eq!(got.header(SECRET_ROUTE_HEADER), Some("parity"), "the route's response edit");
            },
        },
        Row {
            name: "hop-by-hop headers stay on their hop",
            ask: Ask {
                headers: pairs(&[("te", "trailers"), ("proxy-authorization", "Basic eA==")]),
                h1_headers: pairs(&[
                    ("connection", "x-secret"),
                    ("x-secret", "1"),
                    ("keep-alive", "timeout=5"),
                ]),
                ..ask("p.test", "/headers")
            },
            check: |_, t, got| {
                assert_eq!(got.status, 200);
                for gone in ["te", "proxy-authorization", "x-secret", "keep-alive", "expect"] {
                    assert_eq!(got.echoed(gone), None, "{gone}");
                }
                let upgrade = t == Transport::Upgrade;
                assert_eq!(got.echoed("connection").is_some(), upgrade, "{}", got.text());
                assert_eq!(got.echoed("upgrade").is_some(), upgrade, "{}", got.text());
            },
        },
        Row {
            name: "a request id is generated when the client sends none",
            ask: ask("p.test", "/headers"),
            check: |_, _, got| {
                let id = got.echoed("x-request-id").unwrap_or_default();
                assert_eq!(id.len(), 32, "{id}");
                assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            },
        },
        Row {
            name: "a body over the route's limit is 413",
            ask: Ask { body: Some(b"sixteen bytes!!!".to_vec()), ..ask("p.test", "/headers") },
            check: |_, _, got| assert_eq!(got.status, 413),
        },
        Row {
            name: "no route is the built-in 404",
            ask: ask("nope.test", "/"),
            check: |_, _, got| {
                assert_eq!(got.status, 404);
                assert_eq!(got.text(), DEFAULT_BACKEND_BODY);
            },
        },
        Row {
            name: "no endpoint is 503",
            ask: ask("empty.test", "/"),
            check: |_, _, got| assert_eq!(got.status, 503),
        },
        Row {
            name: "a closed route (an access restriction not applied) is 503, never served",
            ask: ask("closed.test", "/"),
            check: |_, _, got| assert_eq!(got.status, 503),
        },
        Row {
            name: "external authentication: not signed in is redirected to the sign-in URL",
            ask: ask("authed.test", "/headers?q=1"),
            check: |_, t, got| {
                assert_eq!(got.status, 302, "{}", got.text());
                let scheme = if t.tls() { "https" } else { "http" };
                let location = got.header("location").unwrap_or_default();
                assert!(
                    location.starts_with(&format!("https://login.test/start?rd={scheme}://authed.test")),
                    "{location}"
                );
                assert!(location.ends_with("%2Fheaders%3Fq%3D1"), "{location}");
                assert_eq!(got.header("set-cookie"), Some("csrf=1"), "the auth service's cookie");
            },
        },
        Row {
            name: "external authentication: a signed-in request goes upstream with the user's headers",
            ask: Ask {
                headers: pairs(&[("cookie", "session=ok"), ("x-auth-request-email", "forged@evil.test")]),
                ..ask("authed.test", "/headers")
            },
            check: |_, _, got| {
                assert_eq!(got.status, 200, "{}", got.text());
                assert_eq!(got.echoed("x-auth-request-user").as_deref(), Some("alice"), "{}", got.text());
                assert_eq!(got.echoed("x-auth-request-email"), None, "the client's own is removed");
                assert_eq!(got.header("set-cookie"), Some("session=renewed; Path=/"));
            },
        },
        Row {
            name: "external authentication: a refusal is 403",
            ask: Ask { headers: pairs(&[("cookie", "session=no")]), ..ask("authed.test", "/headers") },
            check: |_, _, got| {
                assert_eq!(got.status, 403);
                assert_eq!(got.echoed("x-from-route"), None, "never upstream");
            },
        },
        Row {
            name: "external authentication not asked (satisfy any): the client's own user header is removed",
            ask: Ask {
                headers: pairs(&[("x-auth-request-user", "admin")]),
                ..ask("authed-any.test", "/headers")
            },
            check: |_, _, got| {
                assert_eq!(got.status, 200, "{}", got.text());
                assert_eq!(got.echoed("x-auth-request-user"), None, "{}", got.text());
            },
        },
        Row {
            name: "external authentication: a sign-in URL from the decoded path cannot break the head",
            ask: ask("authed-uri.test", "/a%0d%0aset-cookie:%20evil=1"),
            check: |_, _, got| {
                assert_eq!(got.status, 302, "{}", got.text());
                let location = got.header("location").unwrap_or_default();
                assert!(location.contains("%0D%0Aset-cookie"), "{location}");
                assert!(
                    got.headers.iter().all(|(_, v)| !v.contains("evil=1") || v.contains("%0D")),
                    "{:?}",
                    got.headers
                );
                assert_ne!(got.header("set-cookie"), Some("evil=1"));
            },
        },
        Row {
            name: "cookie affinity: a new session gets its cookie",
            ask: ask("sticky.test", "/headers"),
            check: |_, t, got| {
                assert_eq!(got.status, 200);
                let cookie = got.header("set-cookie").unwrap_or_default();
                assert!(cookie.starts_with("INGRESSCOOKIE=") && cookie.contains('|'), "{cookie}");
                let secure = if t.tls() { "; Secure" } else { "" };
                assert!(cookie.ends_with(&format!("; Path=/{secure}; HttpOnly")), "{cookie}");
            },
        },
        Row {
            name: "cookie affinity: a pinned session gets no new cookie",
            ask: Ask {
                headers: pairs(&[("cookie", "INGRESSCOOKIE=1.2.3|abc")]),
                ..ask("sticky.test", "/headers")
            },
            check: |_, _, got| {
                assert_eq!(got.status, 200);
                assert_eq!(got.header("set-cookie"), None);
            },
        },
        Row {
            name: "a rewrite-target route sends the rewritten path, query kept",
            ask: ask("rw.test", "/API/headers?q=1"),
            check: |_, _, got| {
                assert_eq!(got.status, 200, "{}", got.text());
                assert_eq!(got.echoed("host").as_deref(), Some("rw.test"), "{}", got.text());
                assert_eq!(got.echoed("x-forwarded-prefix").as_deref(), Some("/api"), "{}", got.text());
            },
        },
        Row {
            name: "upstream-vhost replaces the Host sent upstream",
            ask: Ask {
                headers: pairs(&[("x-forwarded-prefix", "/spoofed")]),
                ..ask("vhost.test", "/headers")
            },
            check: |_, _, got| {
                assert_eq!(got.status, 200);
                assert_eq!(got.echoed("host").as_deref(), Some("internal.svc:8080"), "{}", got.text());
                assert_eq!(got.echoed("x-forwarded-host").as_deref(), Some("vhost.test"));
                assert_eq!(
                    got.echoed("x-forwarded-prefix").as_deref(),
                    Some("/spoofed"),
                    "not rewritten: kept"
                );
            },
        },
        Row {
            name: "upstream Location and Set-Cookie values are rewritten as the route says",
            ask: ask("rewrites.test", "/redirect"),
            check: |_, _, got| {
                assert_eq!(got.status, 302);
                assert_eq!(got.header("location"), Some("https://shop.test/next"));
                let cookies: Vec<&str> =
                    got.headers.iter().filter(|(n, _)| n == "set-cookie").map(|(_, v)| v.as_str()).collect();
                assert_eq!(cookies, ["sid=1; Domain=shop.test; Path=/x", "pref=2; Path=/other"]);
                assert_eq!(got.header("server"), None, "server-tokens off: no Server, not the upstream's");
            },
        },
        Row {
            name: "without rewrites, upstream values pass unchanged (and still no Server)",
            ask: ask("p.test", "/redirect"),
            check: |_, _, got| {
                assert_eq!(got.status, 302);
                assert_eq!(got.header("location"), Some("http://internal.svc/next"));
                assert!(
                    got.headers.iter().any(|(n, v)| n == "set-cookie" && v.contains("Domain=internal.svc"))
                );
                assert_eq!(got.header("server"), None);
            },
        },
        Row {
            name: "custom-http-errors: an upstream status the route lists is answered by its error backend",
            ask: Ask {
                headers: pairs(&[("accept", "application/json")]),
                ..ask("errors.test", "/status/503?x=1")
            },
            check: |_, _, got| {
                assert_eq!(got.status, 503, "{}", got.text());
                assert!(got.text().starts_with("errors error page for /?x=1\n"), "{}", got.text());
                assert_eq!(got.echoed("x-code").as_deref(), Some("503"));
                assert_eq!(got.echoed("x-original-uri").as_deref(), Some("/status/503?x=1"));
                assert_eq!(got.echoed("x-format").as_deref(), Some("application/json"));
                assert_eq!(got.echoed("x-namespace").as_deref(), Some("test"));
                assert_eq!(got.echoed("x-ingress-name").as_deref(), Some("errors"));
                assert_eq!(got.echoed("x-service-name").as_deref(), Some("svc-errors-own"));
                assert_eq!(got.echoed("host").as_deref(), Some("errors.test"));
            },
        },
        Row {
            name: "custom-http-errors: a status the route does not list passes",
            ask: ask("errors.test", "/status/500"),
            check: |_, _, got| assert_eq!((got.status, got.text().as_str()), (500, "parity status 500")),
        },
        Row {
            name: "custom-http-errors: the proxy's own 502 (refused endpoint) is answered by the error backend",
            ask: ask("errors-down.test", "/"),
            check: |_, _, got| {
                assert_eq!(got.status, 502, "{}", got.text());
                assert_eq!(got.echoed("x-code").as_deref(), Some("502"), "{}", got.text());
            },
        },
        Row {
            name: "a client inside the route's allowlist is served",
            ask: ask("allowed.test", "/"),
            check: |_, _, got| assert_eq!(got.status, 200),
        },
        Row {
            name: "a client outside the route's allowlist is 403",
            ask: ask("elsewhere.test", "/"),
            check: |_, _, got| assert_eq!(got.status, 403),
        },
        Row {
            name: "the denylist comes before the allowlist (403)",
            ask: ask("denied.test", "/"),
            check: |_, _, got| assert_eq!(got.status, 403),
        },
        Row {
            name: "a regex host answers 404 where no regex matches",
            ask: ask("rw.test", "/apis"),
            check: |_, _, got| assert_eq!(got.status, 404),
        },
        Row {
            name: "CORS headers for an allowed origin replace the upstream's",
            ask: Ask {
                headers: pairs(&[("origin", "https://web.app.test")]),
                ..ask("cors.test", "/headers")
            },
            check: |_, _, got| {
                assert_eq!(got.status, 200);
                assert_eq!(got.header("access-control-allow-origin"), Some("https://web.app.test"));
                assert_eq!(got.header("access-control-allow-credentials"), Some("true"));
                assert_eq!(got.header("access-control-max-age"), Some("60"));
            },
        },
        Row {
            name: "a CORS preflight is answered 204 by the proxy",
            ask: Ask {
                method: Some("OPTIONS"),
                headers: pairs(&[
                    ("origin", "https://web.app.test"),
                    ("access-control-request-method", "PUT"),
                ]),
                ..ask("cors.test", "/headers")
            },
            check: |_, _, got| {
                assert_eq!(got.status, 204, "{}", got.text());
                assert!(got.body.is_empty());
                assert_eq!(got.header("access-control-allow-origin"), Some("https://web.app.test"));
                assert_eq!(got.header("access-control-allow-methods"), Some("GET, PUT"));
                assert_eq!(got.header("access-control-allow-headers"), Some("X-A"));
                assert_eq!(got.header("content-length"), None, "a 204 has none");
            },
        },
        Row {
            name: "no CORS headers for another origin",
            ask: Ask { headers: pairs(&[("origin", "https://evil.test")]), ..ask("cors.test", "/headers") },
            check: |_, _, got| {
                assert_eq!(got.status, 200);
                assert_eq!(got.header("access-control-allow-origin"), None);
            },
        },
        Row {
            name: "a canary header sends to the canary backend, its absence to the main one",
            ask: Ask { headers: pairs(&[("x-canary", "always")]), ..ask("canary.test", "/sleep/0") },
            check: |_, _, got| assert_eq!((got.status, got.text().as_str()), (200, "canary slept")),
        },
        Row {
            name: "without the canary header, the main backend",
            ask: Ask { headers: pairs(&[("x-canary", "never")]), ..ask("canary.test", "/sleep/0") },
            check: |_, _, got| assert_eq!((got.status, got.text().as_str()), (200, "parity slept")),
        },
        Row {
            name: "HSTS on every HTTPS response, never on plain HTTP",
            ask: ask("p.test", "/headers"),
            check: |_, t, got| {
                let hsts = got.header("strict-transport-security");
                assert_eq!(
                    hsts,
                    t.tls().then_some("max-age=31536000; includeSubDomains"),
                    "{:?}",
                    got.headers
                );
            },
        },
        Row {
            name: "a permanent-redirect route is answered by the proxy",
            ask: ask("moved.test", "/x?y=1"),
            check: |_, _, got| {
                assert_eq!(got.status, 301);
                assert_eq!(got.header("location"), Some("https://new.example/"));
            },
        },
        Row {
            name: "plain HTTP to a host served over TLS is redirected to HTTPS (308)",
            ask: ask("secure.test", "/a/b/"),
            check: |_, t, got| {
                if t.tls() {
                    assert_eq!(got.status, 200, "already HTTPS");
                    assert!(got.header("strict-transport-security").is_some());
                } else {
                    assert_eq!(got.status, 308);
                    // ingress-nginx drops a trailing slash (preserve-trailing-slash keeps it).
                    assert_eq!(got.header("location"), Some("https://secure.test/a/b"));
                    assert_eq!(got.header("strict-transport-security"), None);
                }
            },
        },
        Row {
            name: "a refused endpoint is 502",
            ask: ask("down.test", "/"),
            check: |_, _, got| assert_eq!(got.status, 502),
        },
        Row {
            name: "the route's read timeout is 504",
            ask: ask("p.test", "/sleep/2000"),
            check: |_, _, got| assert_eq!(got.status, 504),
        },
        Row {
            name: "a pooled connection the upstream closed is retried on a new one",
            ask: ask("stale.test", "/second"),
            check: |_, _, got| {
                assert_eq!(got.status, 200);
                assert_eq!(got.text(), "fresh");
            },
        },
    ]
}

/// Runs every row over `transport`.
async fn run(transport: Transport) {
    let env = env().await;
    for mut row in rows() {
        let stale = row.ask.host == "stale.test";
        if stale {
            // Fill the pool of the path this transport takes, so the row's request meets a
            // pooled connection the upstream has closed.
            let first = send(&env, transport, &ask("stale.test", "/first")).await;
            assert_eq!(first.status, 200, "{transport:?}: priming the pool");
            // The engine pools the upstream connection after the response's last write to
            // the client, so the client can be quicker than that; give it the moment.
            tokio::time::sleep(Duration::from_millis(100)).await;
            row.ask.path = format!("/second-{transport:?}");
        }
        let got = send(&env, transport, &row.ask).await;
        let checked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (row.check)(&env, transport, &got)));
        if let Err(why) = checked {
            let why = why.downcast_ref::<String>().cloned().unwrap_or_default();
            panic!("{transport:?}: row `{}` failed: {why}\n{got:?}", row.name);
        }
        if stale {
            let hits = STALE_HITS.lock().unwrap().clone();
            assert!(
                hits.iter().any(|l| l.contains(&row.ask.path)),
                "{transport:?}: the request did not meet the closed pooled connection: {hits:?}"
            );
        }
    }
    // The access log line and the metric of a request, whichever transport carried it.
    let id = format!("parity-log-{transport:?}");
    let before = requests_total(&env, transport.method()).await;
    let logged = Ask { headers: pairs(&[("x-request-id", &id)]), ..ask("p.test", "/headers?q=1") };
    assert_eq!(send(&env, transport, &logged).await.status, 200);
    let mut line = None;
    for _ in 0..50 {
        line = log_line_for(&id);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = line.unwrap_or_else(|| panic!("{transport:?}: no access log line"));
    let f = &line;
    assert_eq!(f["status"], 200, "{f}");
    assert_eq!(f["upstream_status"], 200, "{f}");
    assert_eq!(f["method"], transport.method(), "{f}");
    assert_eq!(f["path"], "/headers", "{f}");
    assert_eq!(f["upstream_addr"], env.backend.addr.to_string(), "{f}");
    assert_eq!(
        (&f["namespace"], &f["ingress"], &f["service"]),
        (&"test".into(), &"parity".into(), &"svc-p".into())
    );
    assert_eq!(f["client"], "127.0.0.1", "{f}");
    assert!(f["bytes"].as_u64().unwrap_or(0) > 0, "{f}");
    // The warm-up request of the kept-alive transports counts too.
    let warm = u64::from(matches!(transport, Transport::KeepAlive | Transport::Tls));
    assert_eq!(requests_total(&env, transport.method()).await, before + 1 + warm, "{transport:?}: metric");

    behind_a_trusted_proxy(&env, transport).await;
    nginx_format(&env, transport).await;
}

/// With `log-format-upstream` set, the line is that template, filled in as nginx fills it
/// (header values escaped, the upstream named `namespace-service-port`), and
/// `skip-access-log-urls` keeps a target out, whichever transport carried the request.
async fn nginx_format(env: &Env, transport: Transport) {
    let handle = &env.proxy.handle;
    let before = (*handle.settings()).clone();
    let template = LogTemplate::http(
        "nginx> $request_method $request_uri $server_protocol $status \"$http_x_marker\" $remote_user $proxy_upstream_name $upstream_status $scheme $host $args$is_args $req_id",
        LogEscape::Default,
    )
    .unwrap();
    handle.set_settings(RuntimeSettings {
        log_format: LogFormat::Template(std::sync::Arc::new(template)),
        skip_access_log_urls: vec!["/HEADERS?skipped=1".into()],
        ..before.clone()
    });
    let id = format!("parity-nginx-{transport:?}");
    let marker = [("x-marker", "say \"hi\" é"), ("x-request-id", id.as_str())];
    let skipped_id = format!("parity-skipped-{transport:?}");
    let skipped = [("x-request-id", skipped_id.as_str())];
    let got = send(env, transport, &Ask { headers: pairs(&marker), ..ask("p.test", "/headers?q=2") }).await;
    let quiet =
        send(env, transport, &Ask { headers: pairs(&skipped), ..ask("p.test", "/headers?skipped=1") }).await;
    let line = crate::accesslog::line_with(&id).await;
    handle.set_settings(before);
    assert_eq!((got.status, quiet.status), (200, 200), "{transport:?}");
    let line = line.unwrap_or_else(|| panic!("{transport:?}: no access log line"));
    let version = match transport {
        Transport::Http10 => "HTTP/1.0",
        Transport::Http2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    let scheme = if transport.tls() { "https" } else { "http" };
    let expected = format!(
        "nginx> {} /headers?q=2 {version} 200 \"say \\x22hi\\x22 \\xC3\\xA9\" - test-svc-p-80 200 {scheme} p.test q=2? {id}",
        transport.method()
    );
    assert_eq!(line, expected, "{transport:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(crate::accesslog::text().lines().all(|l| !l.contains(&skipped_id)), "{transport:?}: skipped");
}

/// With `use-forwarded-headers` and the peer trusted, the client address comes from the
/// forwarded-for list (trusted hops skipped) and the scheme from `X-Forwarded-Proto`; the
/// access log shows that address.
async fn behind_a_trusted_proxy(env: &Env, transport: Transport) {
    let handle = &env.proxy.handle;
    let before = (*handle.settings()).clone();
    let forwarding = Forwarding {
        use_forwarded_headers: true,
        trusted: ingress_core::parse_cidrs("127.0.0.1/32, 10.0.0.0/8").unwrap(),
        ..Forwarding::default()
    };
    handle.set_settings(RuntimeSettings { forwarding, ..before.clone() });
    let id = format!("parity-trusted-{transport:?}");
    let ask = Ask {
        headers: pairs(&[
            ("x-forwarded-for", "198.51.100.7, 192.0.2.44, 10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "public.example"),
            ("x-request-id", &id),
        ]),
        ..ask("p.test", "/headers")
    };
    let got = send(env, transport, &ask).await;
    handle.set_settings(before);
    assert_eq!(got.status, 200, "{transport:?}");
    assert_eq!(got.echoed("x-real-ip").as_deref(), Some("192.0.2.44"), "{transport:?}: {}", got.text());
    assert_eq!(got.echoed("x-forwarded-for").as_deref(), Some("192.0.2.44"), "{transport:?}");
    assert_eq!(got.echoed("x-forwarded-proto").as_deref(), Some("https"), "{transport:?}");
    assert_eq!(got.echoed("x-forwarded-host").as_deref(), Some("public.example"), "{transport:?}");
    let mut line = None;
    for _ in 0..50 {
        line = log_line_for(&id);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = line.unwrap_or_else(|| panic!("{transport:?}: no access log line"));
    assert_eq!(line["client"], "192.0.2.44", "{transport:?}: {line}");
}

/// `ferry_requests_total` of the parity route's 2xx answers to `method`.
async fn requests_total(env: &Env, method: &str) -> u64 {
    let text = admin(&env.proxy, "/metrics").await.text();
    let series = format!(
        "ferry_requests_total{{ingress=\"parity\",method=\"{method}\",namespace=\"test\",service=\"svc-p\",status_class=\"2xx\"}} "
    );
    text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |n| n.trim().parse().unwrap())
}

/// Sends `ask` over `transport` and reads the final response.
async fn send(env: &Env, transport: Transport, ask: &Ask) -> Got {
    let run = async {
        match transport {
            Transport::Http2 => send_h2(env, ask).await,
            Transport::Tls => {
                let mut tls = connect(env.proxy.https, Some(&ask.host), &[b"http/1.1"]).await;
                send_h1(&mut tls, transport, ask).await
            }
            _ => {
                let mut tcp = TcpStream::connect(env.proxy.http).await.unwrap();
                send_h1(&mut tcp, transport, ask).await
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap_or_else(|_| panic!("{transport:?}: timed out"))
}

/// HTTP/1.x, written by hand so each transport says exactly what it should.
async fn send_h1<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, transport: Transport, ask: &Ask) -> Got {
    let mut pending = Vec::new();
    if transport == Transport::KeepAlive || transport == Transport::Tls {
        // A request first, so the row's request is the second on the connection.
        let warm = "GET /warm HTTP/1.1\r\nHost: p.test\r\n\r\n";
        stream.write_all(warm.as_bytes()).await.unwrap();
        read_reply(stream, &mut pending, false).await;
    }
    let version = if transport == Transport::Http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let body = match (&ask.body, transport) {
        (Some(body), _) => Some(body.clone()),
        (None, Transport::Expect) => Some(b"ping".to_vec()),
        (None, _) => None,
    };
    let method = ask.method.unwrap_or(transport.method());
    let mut head = format!("{method} {} {version}\r\nHost: {}\r\n", ask.path, ask.host);
    let mut connection = Vec::new();
    for (name, value) in ask.headers.iter().chain(&ask.h1_headers) {
        if name == "connection" {
            connection.push(value.clone());
        } else {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    match transport {
        Transport::Upgrade => {
            connection.push("upgrade".into());
            head.push_str("Upgrade: websocket\r\n");
        }
        Transport::Expect => head.push_str("Expect: 100-continue\r\n"),
        _ => {}
    }
    if !connection.is_empty() {
        head.push_str(&format!("Connection: {}\r\n", connection.join(", ")));
    }
    if let Some(body) = &body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    if transport == Transport::Expect {
        // The body goes once the proxy says `100 Continue`; a final answer first means the
        // proxy does not want it.
        let got = read_reply(stream, &mut pending, true).await;
        if got.status != 100 {
            return got;
        }
    }
    if let Some(body) = &body {
        stream.write_all(body).await.unwrap();
    }
    read_reply(stream, &mut pending, transport == Transport::Http10).await
}

/// Reads one response (an interim one too, when `interim`; else interim ones are skipped).
/// The body is framed by `Content-Length`, chunks, or the end of the connection.
async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S, pending: &mut Vec<u8>, interim: bool) -> Got {
    loop {
        let end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                fill(stream, pending).await > 0,
                "closed inside a head: {}",
                String::from_utf8_lossy(pending)
            );
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        pending.drain(..end);
        let mut lines = head.split("\r\n");
        let status: u16 =
            lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
            .collect();
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        if (100..200).contains(&status) {
            if interim {
                return Got { status, headers, body: Vec::new() };
            }
            continue;
        }
        // RFC 9112 section 6.3: a 204 or 304 has no body, whatever its headers say.
        let body = if matches!(status, 204 | 304) {
            Vec::new()
        } else if let Some(length) = header("content-length") {
            let length: usize = length.parse().unwrap();
            while pending.len() < length {
                assert!(fill(stream, pending).await > 0, "closed inside a body");
            }
            pending.drain(..length).collect()
        } else if header("transfer-encoding").is_some() {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(at) = pending.windows(2).position(|w| w == b"\r\n") {
                        break at;
                    }
                    assert!(fill(stream, pending).await > 0, "closed inside a chunk");
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&pending[..line_end]).unwrap(), 16).unwrap();
                while pending.len() < line_end + 2 + size + 2 {
                    assert!(fill(stream, pending).await > 0, "closed inside a chunk");
                }
                body.extend_from_slice(&pending[line_end + 2..line_end + 2 + size]);
                pending.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            while fill(stream, pending).await > 0 {}
            std::mem::take(pending)
        };
        return Got { status, headers, body };
    }
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, pending: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await.unwrap_or(0);
    pending.extend_from_slice(&chunk[..n]);
    n
}

/// HTTP/2 over TLS, with hyper's client.
async fn send_h2(env: &Env, ask: &Ask) -> Got {
    let tls = connect(env.proxy.https, Some(&ask.host), &[b"h2"]).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(ask.method.unwrap_or(if ask.body.is_some() { "POST" } else { "GET" }))
        .uri(format!("https://{}{}", ask.host, ask.path));
    for (name, value) in &ask.headers {
        req = req.header(name, value);
    }
    let body = Full::new(Bytes::from(ask.body.clone().unwrap_or_default()));
    let resp = sender.send_request(req.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    Got { status, headers, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http1_keep_alive() {
    run(Transport::KeepAlive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http1_0() {
    run(Transport::Http10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_expect_100_continue() {
    run(Transport::Expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_an_upgrade_request() {
    run(Transport::Upgrade).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2() {
    run(Transport::Http2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls() {
    run(Transport::Tls).await;
}
