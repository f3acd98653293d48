//! External authentication through the real binary in standalone mode: ingress-nginx's
//! `auth-url` family and the ConfigMap's `global-auth-url`, against an auth service shaped as
//! oauth2-proxy's `/oauth2/auth` (started here, on 127.0.0.1) and a backend that echoes the
//! request head it got.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use support::manifests::{
    CLASS, config_map, exchange, ingress, start, start_with_configmap, write_ingresses,
};
use support::{Controller, free_port, head_echo_backend, services};

/// The request heads the auth service received, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// An auth service shaped as oauth2-proxy: on `/oauth2/auth`, cookie `_oauth2_proxy=alice`
/// is signed in (`202` with `X-Auth-Request-User`/`-Email` and a refreshed cookie), `=eve` is
/// refused (`403`), anything else is not signed in (`401`); `/check` answers the same without
/// cookies (so its answers may be kept).
fn auth_service() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let head = read_head(&mut stream);
            log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(head.clone());
            let lower = head.to_ascii_lowercase();
            let user = if lower.contains("_oauth2_proxy=alice") {
                "alice"
            } else if lower.contains("_oauth2_proxy=eve") {
                "eve"
            } else {
                ""
            };
            let refresh = head.starts_with("GET /oauth2/auth");
            let answer = match user {
                "alice" if refresh => "HTTP/1.1 202 Accepted\r\nX-Auth-Request-User: alice\r\n\
                     X-Auth-Request-Email: alice@example.com\r\nSet-Cookie: _oauth2_proxy=alice; Path=/\r\n\
                     Content-Length: 0\r\n\r\n"
                    .to_owned(),
                "alice" => {
                    "HTTP/1.1 200 OK\r\nX-Auth-Request-User: alice\r\nContent-Length: 0\r\n\r\n".to_owned()
                }
                "eve" => "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden".to_owned(),
                _ => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n\r\nunauthorized".to_owned(),
            };
            stream.write_all(answer.as_bytes()).ok();
        }
    });
    (addr, seen)
}

/// The request head on `stream` (the proxy sends no body to the auth service).
fn read_head(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// `GET path` on `host` with extra header lines.
fn ask(c: &Controller, host: &str, path: &str, lines: &str) -> Result<(u16, String, String)> {
    exchange(c.http, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{lines}Connection: close\r\n\r\n"))
}

fn seen_count(seen: &Seen, prefix: &str) -> usize {
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|h| h.starts_with(prefix))
        .count()
}

#[test]
fn auth_url_and_its_modifiers_as_oauth2_proxy_setups_use_them() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let (auth, seen) = auth_service();
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("app", 80, head_echo_backend("app"))]))?;
    std::fs::write(dir.join("configmaps.yaml"), config_map("auth-headers", &[("X-Tenant", "$host")]))?;
    let url = format!("http://{auth}/oauth2/auth");
    let check = format!("http://{auth}/check");
    let down = format!("http://127.0.0.1:{}/", free_port());
    let cached = [
        ("auth-url", check.as_str()),
        ("auth-cache-key", "$cookie__oauth2_proxy"),
        ("auth-cache-duration", "200 1m"),
    ];
    let oauth2 = [
        ("auth-url", url.as_str()),
        ("auth-signin", "https://$host/oauth2/start?rd=$escaped_request_uri"),
        ("auth-response-headers", "X-Auth-Request-User, X-Auth-Request-Email"),
        ("auth-proxy-set-headers", "auth-headers"),
    ];
    write_ingresses(
        &dir,
        &[
            ingress("app", "app.test", "app", &oauth2),
            ingress("api", "api.test", "app", &[("auth-url", &url)]),
            ingress("cached", "cached.test", "app", &cached),
            ingress("cached-too", "other.test", "app", &cached),
            ingress(
                "any",
                "any.test",
                "app",
                &[("auth-url", &check), ("satisfy", "any"), ("whitelist-source-range", "127.0.0.1/32")],
            ),
            ingress(
                "any-outside",
                "outside.test",
                "app",
                &[("auth-url", &check), ("satisfy", "any"), ("whitelist-source-range", "10.0.0.0/8")],
            ),
            ingress("bad", "bad.test", "app", &[("auth-url", "auth.example.com/check")]),
            ingress("down", "down.test", "app", &[("auth-url", &down)]),
        ],
    )?;
    let c = start(&dir)?;
    let alice = "Cookie: _oauth2_proxy=alice\r\n";

    // Not signed in: redirected to the sign-in URL, which names where to come back to.
    let (status, head, _) = ask(&c, "app.test", "/dash?x=1", "")?;
    assert_eq!(status, 302, "{head}");
    assert!(head.contains("\r\nlocation: https://app.test/oauth2/start?rd=%2fdash%3fx%3d1\r\n"), "{head}");
    // Without a sign-in URL the auth service's 401 is the answer.
    assert_eq!(ask(&c, "api.test", "/", "")?.0, 401);

    // Signed in: upstream gets the user's headers (a forged one replaced), the client the
    // refreshed cookie.
    let (status, head, body) =
        ask(&c, "app.test", "/dash?x=1", &format!("{alice}X-Auth-Request-Email: root@evil.test\r\n"))?;
    assert_eq!(status, 200, "{head}{body}");
    assert!(head.contains("\r\nset-cookie: _oauth2_proxy=alice; path=/"), "{head}");
    let upstream = body.to_ascii_lowercase();
    assert!(upstream.contains("x-auth-request-user: alice\r\n"), "{body}");
    assert!(upstream.contains("x-auth-request-email: alice@example.com\r\n"), "{body}");
    assert!(!upstream.contains("evil"), "{body}");
    // What the auth service was told, as ingress-nginx's auth location tells it.
    let told =
        seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).last().cloned().unwrap_or_default();
    for line in [
        "GET /oauth2/auth HTTP/1.1\r\n",
        "host: 127.0.0.1\r\n",
        "Cookie: _oauth2_proxy=alice\r\n",
        "x-original-url: http://app.test/dash?x=1\r\n",
        "x-original-method: GET\r\n",
        "x-sent-from: nginx-ingress-controller\r\n",
        "x-real-ip: 127.0.0.1\r\n",
        "x-auth-request-redirect: /dash?x=1\r\n",
        "x-tenant: app.test\r\n",
    ] {
        assert!(told.contains(line), "{line:?} in\n{told}");
    }
    // A body never goes to the auth service, only upstream.
    let post = "POST /form HTTP/1.1\r\nHost: app.test\r\nCookie: _oauth2_proxy=alice\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(exchange(c.http, post)?.0, 200);
    let told =
        seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).last().cloned().unwrap_or_default();
    assert!(
        told.contains("x-original-method: POST") && !told.to_ascii_lowercase().contains("content-length"),
        "{told}"
    );

    // Refused: 403, never upstream.
    let (status, _, body) = ask(&c, "app.test", "/", "Cookie: _oauth2_proxy=eve\r\n")?;
    assert_eq!(status, 403);
    assert!(!body.contains("backend=app"), "{body}");

    // auth-cache-key: a kept 200 answers the next requests with the same key.
    let before = seen_count(&seen, "GET /check");
    for _ in 0..3 {
        assert_eq!(ask(&c, "cached.test", "/", alice)?.0, 200);
    }
    assert_eq!(seen_count(&seen, "GET /check") - before, 1, "asked once, then kept");
    assert_eq!(ask(&c, "other.test", "/", alice)?.0, 200);
    assert_eq!(seen_count(&seen, "GET /check") - before, 2, "another host is asked for itself");
    assert_eq!(ask(&c, "cached.test", "/", "")?.0, 401, "another key is asked");
    assert_eq!(ask(&c, "cached.test", "/", "")?.0, 401);
    assert_eq!(seen_count(&seen, "GET /check") - before, 4, "a 401 is not kept under `200 1m`");

    // satisfy any: an allowed address needs no sign-in; outside the range, the auth decides.
    let before = seen_count(&seen, "GET /check");
    assert_eq!(ask(&c, "any.test", "/", "")?.0, 200);
    assert_eq!(seen_count(&seen, "GET /check"), before, "the auth service is not asked");
    assert_eq!(ask(&c, "outside.test", "/", "")?.0, 401);
    assert_eq!(ask(&c, "outside.test", "/", "Cookie: _oauth2_proxy=alice\r\n")?.0, 200);

    // What cannot be applied: 503 (denied); an auth service that cannot be reached: 500.
    assert_eq!(ask(&c, "bad.test", "/", alice)?.0, 503);
    assert_eq!(ask(&c, "down.test", "/", alice)?.0, 500);
    Ok(())
}

#[test]
fn global_auth_url_guards_every_route_but_the_exempt() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let (auth, _seen) = auth_service();
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("app", 80, head_echo_backend("app"))]))?;
    let url = format!("http://{auth}/oauth2/auth");
    std::fs::write(
        dir.join("configmap.yaml"),
        config_map(
            "cfg",
            &[
                ("global-auth-url", &url),
                ("global-auth-response-headers", "X-Auth-Request-User"),
                ("no-auth-locations", "/public, /.well-known/acme-challenge"),
            ],
        ),
    )?;
    let public = ingress("public", "web.test", "app", &[]).replace("path: /,", "path: /public,");
    write_ingresses(
        &dir,
        &[
            ingress("web", "web.test", "app", &[]),
            public,
            ingress("optout", "optout.test", "app", &[("enable-global-auth", "false")]),
        ],
    )?;
    let c = start_with_configmap(&dir)?;
    assert_eq!(ask(&c, "web.test", "/", "")?.0, 401);
    let (status, _, body) = ask(&c, "web.test", "/", "Cookie: _oauth2_proxy=alice\r\n")?;
    assert_eq!(status, 200);
    assert!(body.to_ascii_lowercase().contains("x-auth-request-user: alice"), "{body}");
    assert_eq!(ask(&c, "web.test", "/public/page", "")?.0, 200, "no-auth-locations");
    assert_eq!(ask(&c, "optout.test", "/", "")?.0, 200, "enable-global-auth: false");
    Ok(())
}
