//! Routing, default backends, error statuses, retries, pooling, headers.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use ingress_core::{BackendRef, EndpointSet, EndpointStore, Ingress, Origin, RoutePolicy, TableBuilder};
use ingress_proxy::{DEFAULT_BACKEND_BODY, ProxyHandle, RuntimeSettings};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_path_pick_the_backend() {
    let (a, b, c) = (Backend::start("a").await, Backend::start("b").await, Backend::start("c").await);
    let handle = ProxyHandle::new();
    let mut routes = Routes::new();
    routes
        .route("web", "a.example.com", "/", "svc-a", &[a.addr])
        .route("api", "a.example.com", "/api", "svc-b", &[b.addr])
        .route("other", "c.example.com", "/", "svc-c", &[c.addr]);
    let _store = routes.install(&handle);
    let proxy = Proxy::start(handle);

    let cases = [
        ("a.example.com", "/", "a GET /"),
        ("A.Example.COM:80", "/index.html", "a GET /index.html"),
        ("a.example.com", "/api", "b GET /api"),
        ("a.example.com", "/api/v1/users?id=7&x=y", "b GET /api/v1/users?id=7&x=y"),
        ("a.example.com", "/apiary", "a GET /apiary"),
        ("c.example.com", "/anything", "c GET /anything"),
    ];
    let mut conn = Conn::open(proxy.http).await;
    for (host, path, want) in cases {
        let reply = conn.get(host, path).await;
        assert_eq!((reply.status, reply.text().as_str()), (200, want), "{host}{path}");
    }
    let reply = conn
        .send(
            Request::post("/api/items")
                .header("host", "a.example.com")
                .body(Full::from("hi").boxed())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.text(), "b POST /api/items");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_default_backend_answers_404() {
    let handle = ProxyHandle::new();
    let proxy = Proxy::start(handle.clone());
    // Before any snapshot, and after one that does not match.
    let reply = fetch(proxy.http, "nobody.example.com", "/").await;
    assert_eq!((reply.status, reply.text().as_str()), (404, DEFAULT_BACKEND_BODY));
    let a = Backend::start("a").await;
    let mut routes = Routes::new();
    routes.route("web", "a.example.com", "/", "svc-a", &[a.addr]);
    let _store = routes.install(&handle);
    let reply = fetch(proxy.http, "unknown.example.com", "/x").await;
    assert_eq!((reply.status, reply.text().as_str()), (404, "default backend - 404"));
    assert_eq!(reply.headers["content-length"], "21");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_and_controller_default_backends() {
    let (dflt, ctrl) = (Backend::start("ingress-default").await, Backend::start("controller-default").await);
    let handle = ProxyHandle::new();
    let mut store = EndpointStore::new();
    let d = BackendRef::new("test", "dflt", 80);
    let c = BackendRef::new("test", "ctrl", 80);
    store.set(&d, EndpointSet::new([dflt.addr]));
    store.set(&c, EndpointSet::new([ctrl.addr]));
    let mut builder = TableBuilder::new();
    builder.default_backend(c);
    let table = builder.clone().build(&mut store).table;
    handle.install(Arc::new(table));
    let proxy = Proxy::start(handle.clone());
    assert_eq!(fetch(proxy.http, "x.example.com", "/p").await.text(), "controller-default GET /p");

    builder.ingress(Ingress::new(Origin::new("test", "catch-all")).default_backend(d));
    handle.install(Arc::new(builder.build(&mut store).table));
    assert_eq!(fetch(proxy.http, "x.example.com", "/p").await.text(), "ingress-default GET /p");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoints_is_503_refused_is_502_slow_is_504() {
    let slow = Backend::start("slow").await;
    let refusing = local(free_port());
    let handle = ProxyHandle::new();
    let mut routes = Routes::new();
    routes
        .route("empty", "empty.example.com", "/", "svc-empty", &[])
        .route("down", "down.example.com", "/", "svc-down", &[refusing])
        // A 300 ms read timeout for this route only (its Ingress's policy).
        .route_with(
            "slow",
            "slow.example.com",
            "/",
            "svc-slow",
            &[slow.addr],
            RoutePolicy { read_timeout: Some(Duration::from_millis(300)), ..RoutePolicy::default() },
        );
    let _store = routes.install(&handle);
    let proxy = Proxy::start(handle.clone());

    let reply = fetch(proxy.http, "empty.example.com", "/").await;
    assert_eq!(reply.status, 503);
    let reply = fetch(proxy.http, "down.example.com", "/").await;
    assert_eq!(reply.status, 502);

    // A pooled upstream connection first: a timeout on a reused connection is not retried
    // (the upstream may still be working on the request).
    assert_eq!(fetch(proxy.http, "slow.example.com", "/sleep/1").await.status, 200);
    let before = slow.requests.load(std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let reply = fetch(proxy.http, "slow.example.com", "/sleep/3000").await;
    assert_eq!(reply.status, 504);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(slow.requests.load(std::sync::atomic::Ordering::SeqCst), before + 1, "sent once");
    assert_eq!(fetch(proxy.http, "slow.example.com", "/sleep/10").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_endpoints_fail_over_to_a_live_one() {
    let good = Backend::start("good").await;
    let (proxy, _store) = Proxy::serving(|r| {
        r.route("web", "f.example.com", "/", "svc", &[local(free_port()), local(free_port()), good.addr])
    });
    let mut conn = Conn::open(proxy.http).await;
    for i in 0..30 {
        let reply = conn.get("f.example.com", &format!("/{i}")).await;
        assert_eq!((reply.status, reply.text()), (200, format!("good GET /{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("web", "p.example.com", "/", "svc", &[b.addr]));
    let mut conn = Conn::open(proxy.http).await;
    const N: usize = 200;
    for i in 0..N {
        assert_eq!(conn.get("p.example.com", &format!("/{i}")).await.status, 200);
    }
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), N as u64);
    assert!(b.accepts() <= 3, "{} upstream connections for {N} requests", b.accepts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_endpoints_get_no_new_requests() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let handle = ProxyHandle::new();
    let mut routes = Routes::new();
    routes.route("web", "r.example.com", "/", "svc", &[a.addr, b.addr]);
    let mut store = routes.install(&handle);
    let proxy = Proxy::start(handle);
    let mut conn = Conn::open(proxy.http).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        seen.insert(conn.get("r.example.com", "/").await.text());
    }
    assert_eq!(seen.len(), 2, "round-robin reaches both: {seen:?}");
    // Small bodies take the same path and pool, and arrive whole.
    for _ in 0..6 {
        let post = Request::post("/upload")
            .header("host", "r.example.com")
            .body(Full::from(vec![b'p'; 1000]).boxed());
        assert_eq!(conn.send(post.unwrap()).await.text(), "1000");
    }
    // An endpoint change, no snapshot install: the shared slot carries it.
    store.set(&BackendRef::new("test", "svc", 80), EndpointSet::new([b.addr]));
    let before = a.requests.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(conn.get("r.example.com", "/").await.text(), "b GET /");
    }
    assert_eq!(a.requests.load(std::sync::atomic::Ordering::SeqCst), before);
    // The removed endpoint's idle pooled connection is kept for a 10 s grace (in case it comes
    // back), then closed, long before the (default, 60 s) keep-alive timeout.
    let removed = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(a.open_connections() > 0, "kept within the grace");
    let deadline = removed + Duration::from_secs(13);
    while a.open_connections() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.open_connections(), 0, "closed {:?} after the endpoint left", removed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_and_request_id() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("web", "h.example.com", "/", "svc", &[b.addr]));
    let header = |text: &str, name: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned)).unwrap_or_default()
    };

    let req = Request::get("/headers?q=1")
        .header("host", "h.example.com")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-request-id", "client-chosen-id")
        .header("x-custom", "kept")
        .header("x-forwarded-proto", "https")
        .body(http_body_util::Empty::new().boxed())
        .unwrap();
    let text = Conn::open(proxy.http).await.send(req).await.text();
    assert_eq!(header(&text, "host"), "h.example.com");
    assert_eq!(header(&text, "x-forwarded-for"), "127.0.0.1", "replaced, as ingress-nginx does");
    assert_eq!(header(&text, "x-original-forwarded-for"), "203.0.113.7");
    assert_eq!(header(&text, "x-real-ip"), "127.0.0.1");
    assert_eq!(header(&text, "x-forwarded-proto"), "http");
    assert_eq!(header(&text, "x-forwarded-host"), "h.example.com");
    assert_eq!(header(&text, "x-forwarded-port"), proxy.http.port().to_string());
    assert_eq!(header(&text, "x-request-id"), "client-chosen-id");
    assert_eq!(header(&text, "x-custom"), "kept");

    let text = fetch(proxy.http, "h.example.com", "/headers").await.text();
    let id = header(&text, "x-request-id");
    assert_eq!(id.len(), 32, "{text}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(header(&text, "x-forwarded-for"), "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_is_preserved_and_body_limit_applies() {
    let b = Backend::start("b").await;
    let (proxy, _store) = Proxy::serving(|r| r.route("web", "l.example.com", "/", "svc", &[b.addr]));

    let reply = fetch(proxy.http, "l.example.com", "/download/100000").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-length"], "100000");
    assert!(reply.headers.get("transfer-encoding").is_none());
    assert_eq!(reply.body.len(), 100_000);
    let reply = fetch(proxy.http, "l.example.com", "/chunked").await;
    assert_eq!(reply.headers["transfer-encoding"], "chunked");
    assert_eq!(reply.text(), "one two three");

    proxy.handle.set_settings(RuntimeSettings { max_body_size: Some(1000), ..RuntimeSettings::default() });
    let post = |n: usize| {
        Request::post("/upload")
            .header("host", "l.example.com")
            .body(Full::from(vec![b'z'; n]).boxed())
            .unwrap()
    };
    assert_eq!(Conn::open(proxy.http).await.send(post(5000)).await.status, 413);
    let reply = Conn::open(proxy.http).await.send(post(500)).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "500"));
}
