//! ingress-nginx annotations through the real binary in standalone mode: real requests to
//! local backends, the verdicts `check` prints, the metric, and fail-closed routes.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use support::manifests::{
    CLASS, config_map, exchange, ingress, secret, start, start_with_configmap, write_ingresses,
};
use support::{
    Controller, custom_error_backend, echo_backend, eventually, free_port, get, head_echo_backend, request,
    services, slow_backend,
};

#[test]
fn annotations_shape_requests_and_access_restrictions_fail_closed() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let (echo, slow) = (echo_backend("echo"), slow_backend(Duration::from_secs(3)));
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, echo), ("slow", 80, slow)]))?;
    let guarded = |auth: bool| {
        let annotations: &[(&str, &str)] =
            if auth { &[("auth-tls-secret", "default/client-ca")] } else { &[] };
        ingress("guarded", "guarded.test", "echo", annotations)
    };
    let docs = |auth: bool| {
        vec![
            ingress("plain", "plain.test", "echo", &[]),
            ingress("small", "small.test", "echo", &[("proxy-body-size", "1k")]),
            ingress("big", "big.test", "echo", &[("proxy-body-size", "0")]),
            ingress("bad-size", "badsize.test", "echo", &[("proxy-body-size", "1mb")]),
            ingress("impatient", "impatient.test", "slow", &[("proxy-read-timeout", "1")]),
            ingress("patient", "patient.test", "slow", &[]),
            ingress("quiet", "quiet.test", "echo", &[("enable-access-log", "false")]),
            ingress("typo", "typo.test", "echo", &[("proxy-bdy-size", "1k")]),
            guarded(auth),
        ]
    };
    write_ingresses(&dir, &docs(true))?;
    let c = start(&dir)?;

    // proxy-body-size: below, above, unlimited; a rejected value leaves the default (1m).
    let body = vec![b'x'; 4096];
    assert_eq!(request(c.http, "plain.test", "POST", "/", &body)?.status, 200);
    assert_eq!(request(c.http, "small.test", "POST", "/", &body)?.status, 413);
    assert_eq!(request(c.http, "small.test", "POST", "/", &body[..1000])?.status, 200);
    let two_mib = vec![b'x'; 2 << 20];
    assert_eq!(request(c.http, "plain.test", "POST", "/", &two_mib)?.status, 413, "default 1m");
    assert_eq!(request(c.http, "big.test", "POST", "/", &two_mib)?.status, 200);
    assert_eq!(request(c.http, "badsize.test", "POST", "/", &body)?.status, 200);
    assert_eq!(request(c.http, "badsize.test", "POST", "/", &two_mib)?.status, 413);

    // proxy-read-timeout: 1 s against a backend that answers after 3 s; the default waits.
    let t0 = Instant::now();
    assert_eq!(get(c.http, "impatient.test", "/")?.status, 504);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2900), "{took:?}");
    let r = get(c.http, "patient.test", "/")?;
    assert_eq!((r.status, r.body.as_str()), (200, "slow"));

    // An unknown annotation (a typo) changes nothing: served, with the default limit.
    assert_eq!(request(c.http, "typo.test", "POST", "/", &body)?.status, 200);

    // enable-access-log: false keeps that Ingress's requests out of the access log only.
    assert_eq!(get(c.http, "quiet.test", "/quiet-marker")?.status, 200);
    assert_eq!(get(c.http, "plain.test", "/loud-marker")?.status, 200);
    eventually(Duration::from_secs(5), || Ok(c.access_log().contains("/loud-marker")))?;
    assert!(!c.access_log().contains("/quiet-marker"), "{}", c.access_log());

    // Fail closed: the client certificate CA (auth-tls-secret) is a Secret that is not there, so
    // the Ingress answers 503, never 200 …
    let r = get(c.http, "guarded.test", "/")?;
    assert_eq!(r.status, 503, "{r:?}");
    // … until the annotation goes (live, no restart).
    write_ingresses(&dir, &docs(false))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "guarded.test", "/")?.status == 200))?;

    // The metric: Ingresses with at least one annotation of each verdict (applied: small, big,
    // impatient, quiet; rejected: bad-size; unknown: typo; the guard's annotation is gone).
    let metrics = get(c.admin, "localhost", "/metrics")?.body;
    for line in [
        "ferry_ingress_annotations{verdict=\"applied\"} 4",
        "ferry_ingress_annotations{verdict=\"rejected\"} 1",
        "ferry_ingress_annotations{verdict=\"unknown\"} 1",
        "ferry_ingress_annotations{verdict=\"ignored\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    Ok(())
}

/// A response's header, from a raw HTTP/1.1 exchange.
fn head_of(port: u16, host: &str, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    Ok(raw.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase())
}

#[test]
fn redirect_annotations_and_the_default_https_redirect() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, echo_backend("echo"))]))?;
    // A TLS section without a Secret: the host is still served over TLS (default
    // certificate), so plain HTTP is redirected, as ingress-nginx does.
    let with_tls = |doc: String, host: &str| format!("{doc}  tls:\n  - hosts: [{host}]\n");
    write_ingresses(
        &dir,
        &[
            with_tls(ingress("secure", "secure.test", "echo", &[]), "secure.test"),
            with_tls(ingress("opt-out", "optout.test", "echo", &[("ssl-redirect", "false")]), "optout.test"),
            ingress(
                "forced",
                "forced.test",
                "echo",
                &[("force-ssl-redirect", "true"), ("preserve-trailing-slash", "true")],
            ),
            ingress("plain", "plain.test", "echo", &[("app-root", "/app1")]),
            ingress(
                "moved",
                "moved.test",
                "echo",
                &[
                    ("permanent-redirect", "https://new.example.com/landing"),
                    ("permanent-redirect-code", "308"),
                ],
            ),
            ingress(
                "bad",
                "bad.test",
                "echo",
                &[("permanent-redirect", "https://x.test/%0d%0aSet-Cookie:a=b")],
            ),
        ],
    )?;
    let c = start(&dir)?;
    let h = head_of(c.http, "secure.test:8080", "/cart/?id=7/")?;
    assert!(h.starts_with("http/1.1 308"), "{h}");
    assert!(h.contains("\r\nlocation: https://secure.test/cart/?id=7\r\n"), "{h}");
    assert_eq!(get(c.http, "optout.test", "/")?.status, 200, "ssl-redirect: false");
    let h = head_of(c.http, "forced.test", "/a/")?;
    assert!(h.starts_with("http/1.1 308") && h.contains("location: https://forced.test/a/\r\n"), "{h}");
    assert_eq!(get(c.http, "plain.test", "/x")?.status, 200, "no TLS, no redirect");
    let h = head_of(c.http, "plain.test", "/")?;
    assert!(h.starts_with("http/1.1 302") && h.contains("location: http://plain.test/app1\r\n"), "{h}");
    let h = head_of(c.http, "moved.test", "/anything")?;
    assert!(
        h.starts_with("http/1.1 308") && h.contains("location: https://new.example.com/landing\r\n"),
        "{h}"
    );
    // A rejected URL is never sent: the route is served as if it had none.
    let h = head_of(c.http, "bad.test", "/")?;
    assert!(h.starts_with("http/1.1 200") && !h.contains("set-cookie"), "{h}");
    Ok(())
}

#[test]
fn server_alias_and_the_www_redirect() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    let (site, own) = (echo_backend("site"), echo_backend("own"));
    std::fs::write(dir.join("services.yaml"), services(&[("site", 80, site), ("own", 80, own)]))?;
    write_ingresses(
        &dir,
        &[
            ingress(
                "site",
                "example.test",
                "site",
                &[("from-to-www-redirect", "true"), ("server-alias", "alias.test, *.eu.test, own.test")],
            ),
            ingress("own", "own.test", "own", &[]),
            ingress("www-first", "www.first.test", "site", &[("from-to-www-redirect", "true")]),
            ingress("regex-alias", "regex.test", "site", &[("server-alias", "~^r[0-9]+\\.test$")]),
            ingress("bad-alias", "badalias.test", "site", &[("server-alias", "bad..alias")]),
            ingress("bad-www", "badwww.test", "site", &[("from-to-www-redirect", "yes")]),
        ],
    )?;
    let c = start(&dir)?;
    assert!(get(c.http, "alias.test", "/x")?.body.starts_with("backend=site "), "an alias serves its host");
    assert!(get(c.http, "shop.eu.test", "/")?.body.starts_with("backend=site "), "a wildcard alias");
    assert!(
        get(c.http, "own.test", "/")?.body.starts_with("backend=own "),
        "a host of its own keeps its routes"
    );
    // ingress-nginx's ngx_srv_redirect.lua: the client's scheme and port, always named, and
    // the request target without one trailing slash; ConfigMap `http-redirect-code` (308).
    let h = head_of(c.http, "www.example.test", "/shop/?q=1/")?;
    assert!(h.starts_with("http/1.1 308"), "{h}");
    assert!(h.contains(&format!("\r\nlocation: http://example.test:{}/shop/?q=1\r\n", c.http)), "{h}");
    let h = head_of(c.http, "first.test", "/")?;
    assert!(h.contains(&format!("\r\nlocation: http://www.first.test:{}\r\n", c.http)), "{h}");
    assert_eq!(get(c.http, "www.first.test", "/")?.status, 200);
    assert_eq!(get(c.http, "www.own.test", "/")?.status, 404, "no annotation, no redirect");
    assert_eq!(
        get(c.http, "www.badwww.test", "/")?.status,
        404,
        "a rejected value: no redirect (the default)"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
        .args(["check", "--manifests", dir.to_str().unwrap_or_default(), "--ingress-class", "nginx"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |verdict: &str, name: &str, rest: &str| {
        text.lines()
            .any(|l| l.starts_with(verdict) && l.contains(&format!("default/{name} ")) && l.contains(rest))
    };
    assert!(
        line("applied", "site", "server-alias: also served as *.eu.test, alias.test, own.test"),
        "{text}"
    );
    assert!(
        line("warning", "site", "alias `own.test`: is a host of its own, which takes precedence"),
        "{text}"
    );
    assert!(line("ignored", "regex-alias", "nginx regex and trailing-wildcard server names"), "{text}");
    assert!(line("rejected", "bad-alias", "server-alias: value `bad..alias`"), "{text}");
    assert!(
        line("rejected", "bad-www", "from-to-www-redirect: value `yes`: expected `true` or `false`"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
        .args(["explain", "http://www.example.test/x", "--manifests", dir.to_str().unwrap_or_default()])
        .args(["--ingress-class", "nginx"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("www.example.test is the `www.` twin of example.test"), "{text}");
    Ok(())
}

#[test]
fn the_rewrite_idiom_routes_and_rewrites() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    let (api, web) = (echo_backend("api"), echo_backend("web"));
    std::fs::write(dir.join("services.yaml"), services(&[("api", 80, api), ("web", 80, web)]))?;
    // The idiom from ingress-nginx's docs, and a plain Ingress on the same host: regex mode
    // is host-wide, longest path first.
    let rewrite = ingress("api", "app.test", "api", &[("use-regex", "true"), ("rewrite-target", "/$2")])
        .replace("{path: /, pathType: Prefix", "{path: \"/api(/|$)(.*)\", pathType: ImplementationSpecific");
    write_ingresses(&dir, &[rewrite, ingress("web", "app.test", "web", &[])])?;
    let c = start(&dir)?;
    let r = get(c.http, "app.test", "/api/users/7?expand=1")?;
    assert_eq!((r.status, r.body.as_str()), (200, "backend=api path=/users/7?expand=1"));
    assert_eq!(get(c.http, "app.test", "/api")?.body, "backend=api path=/");
    assert_eq!(get(c.http, "app.test", "/API/x%20y")?.body, "backend=api path=/x%20y", "re-escaped as nginx");
    assert_eq!(get(c.http, "app.test", "/apis")?.body, "backend=web path=/apis", "`/` is a regex too");
    assert_eq!(get(c.http, "app.test", "/")?.body, "backend=web path=/");
    Ok(())
}

#[test]
fn a_canary_pair_splits_by_header_then_weight() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    let (v1, v2) = (echo_backend("v1"), echo_backend("v2"));
    std::fs::write(dir.join("services.yaml"), services(&[("v1", 80, v1), ("v2", 80, v2)]))?;
    write_ingresses(
        &dir,
        &[
            ingress("shop", "shop.test", "v1", &[]),
            ingress(
                "shop-canary",
                "shop.test",
                "v2",
                &[("canary", "true"), ("canary-by-header", "X-Canary"), ("canary-weight", "0")],
            ),
            ingress("api", "api.test", "v1", &[]),
            ingress(
                "api-canary",
                "api.test",
                "v2",
                &[
                    ("canary", "true"),
                    ("canary-by-cookie", "beta"),
                    ("canary-weight", "100"),
                    ("proxy-body-size", "1k"),
                ],
            ),
        ],
    )?;
    let c = start(&dir)?;
    let with_header = |host: &str, header: &str| -> Result<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", c.http))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n{header}\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        Ok(raw.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned())
    };
    // The header decides first; without it, weight 0 keeps everything on the main backend.
    assert_eq!(with_header("shop.test", "X-Canary: always")?, "backend=v2 path=/");
    assert_eq!(with_header("shop.test", "X-Canary: never")?, "backend=v1 path=/");
    for _ in 0..20 {
        assert_eq!(get(c.http, "shop.test", "/")?.body, "backend=v1 path=/");
    }
    // Weight 100: every request, unless the cookie says never.
    for _ in 0..20 {
        assert_eq!(get(c.http, "api.test", "/")?.body, "backend=v2 path=/");
    }
    assert_eq!(with_header("api.test", "Cookie: a=1; beta=never")?, "backend=v1 path=/");
    // The canary's own proxy-body-size is ignored: the main route's settings apply.
    assert_eq!(request(c.http, "api.test", "POST", "/", &[b'x'; 4096])?.status, 200);
    Ok(())
}

#[test]
fn realistic_ingress_nginx_apps_applied_unchanged() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ingress-nginx-apps.yaml");
    std::fs::copy(fixture, dir.join("apps.yaml"))?;
    let (http_svc, production, canary) =
        (echo_backend("http-svc"), echo_backend("production"), echo_backend("canary"));
    let (shop, error_pages) = (head_echo_backend("shop"), custom_error_backend());
    std::fs::write(
        dir.join("services.yaml"),
        services(&[
            ("http-svc", 80, http_svc),
            ("production", 80, production),
            ("canary", 80, canary),
            ("shop", 80, shop),
            ("error-pages", 80, error_pages),
        ]),
    )?;
    let c = start(&dir)?;

    // The rewrite idiom from ingress-nginx's rewrite example.
    let r = get(c.http, "rewrite.bar.com", "/something/new?x=1")?;
    assert_eq!(r.body, "backend=http-svc path=/new?x=1");
    assert_eq!(get(c.http, "rewrite.bar.com", "/something")?.body, "backend=http-svc path=/");

    // The TLS app: plain HTTP is redirected (its Secret is missing: the default certificate
    // serves it, as in ingress-nginx), HTTPS is served with HSTS.
    let (status, head, _) =
        exchange(c.http, "GET /cart HTTP/1.1\r\nHost: secure.bar.com\r\nConnection: close\r\n\r\n")?;
    assert_eq!(status, 308);
    assert!(head.contains("\r\nlocation: https://secure.bar.com/cart"), "{head}");
    let (r, head) = support::get_tls(c.https, "secure.bar.com", "/cart")?;
    assert_eq!(r.body, "backend=http-svc path=/cart");
    assert!(head.contains("strict-transport-security: max-age=31536000; includesubdomains"), "{head}");

    // The canary pair: the header decides, else half the requests by weight.
    let canary_get = |value: &str| {
        exchange(
            c.http,
            &format!(
                "GET / HTTP/1.1\r\nHost: echo.bar.com\r\nX-Canary: {value}\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    assert_eq!(canary_get("always")?.2, "backend=canary path=/");
    assert_eq!(canary_get("never")?.2, "backend=production path=/");
    let to_canary = (0..200)
        .filter(|_| get(c.http, "echo.bar.com", "/").is_ok_and(|r| r.body.starts_with("backend=canary")))
        .count();
    // Weight 50 of 200 requests: far outside 60..140 only by a broken split.
    assert!((60..=140).contains(&to_canary), "{to_canary} of 200 to the canary");

    // The CORS API: a preflight answered by the proxy for an allowed origin, none for others.
    let (status, head, _) = exchange(
        c.http,
        "OPTIONS /v1/items HTTP/1.1\r\nHost: api.bar.com\r\nOrigin: https://x.tools.bar.com\r\n\
         Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n",
    )?;
    assert_eq!(status, 204, "{head}");
    assert!(head.contains("access-control-allow-origin: https://x.tools.bar.com"), "{head}");
    assert!(head.contains("access-control-allow-methods: put, get, post, options"), "{head}");
    assert!(head.contains("access-control-max-age: 600"), "{head}");
    let (status, head, body) = exchange(
        c.http,
        "GET /v1/items HTTP/1.1\r\nHost: api.bar.com\r\nOrigin: https://evil.com\r\nConnection: close\r\n\r\n",
    )?;
    assert_eq!((status, body.as_str()), (200, "backend=http-svc path=/v1/items"));
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    // The shop: its 404s and 503s come from the error backend, the rest from the shop; its
    // www. twin redirects to it.
    let shop_get = |host: &str, path: &str| {
        exchange(
            c.http,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"),
        )
    };
    let (status, _, body) = shop_get("shop.bar.com", "/status/404")?;
    assert_eq!(status, 404);
    assert!(
        body.starts_with(
            "error 404 uri=/status/404 ns=default ingress=shop service=shop:80 format=text/html"
        ),
        "{body}"
    );
    let (status, _, body) = shop_get("shop.bar.com", "/cart")?;
    assert_eq!((status, body.starts_with("backend=shop")), (200, true), "{body}");
    let (status, head, _) = shop_get("www.shop.bar.com", "/cart")?;
    assert_eq!(status, 308);
    assert!(head.contains(&format!("\r\nlocation: http://shop.bar.com:{}/cart\r\n", c.http)), "{head}");

    // Every annotation was applied, and `check` says so; the one problem it reports is the
    // missing Secret (so it exits 1).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
        .args(["check", "--manifests", dir.to_str().unwrap_or_default(), "--ingress-class", "nginx"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("applied ")).count(), 13, "{text}");
    let problems: Vec<&str> =
        text.lines().filter(|l| l.starts_with("rejected") || l.starts_with("warning")).collect();
    assert_eq!(problems.len(), 1, "{text}");
    assert!(problems[0].contains("secure-bar-tls not found"), "{text}");
    assert!(!out.status.success());
    Ok(())
}

#[test]
fn default_backend_takes_requests_while_the_route_has_no_endpoint() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    let mut svcs = services(&[("fallback", 80, echo_backend("fallback"))]);
    // A Service with no ready endpoint.
    svcs.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: down, namespace: default}\nspec:\n  ports: [{name: http, port: 80}]\n");
    std::fs::write(dir.join("services.yaml"), svcs)?;
    write_ingresses(
        &dir,
        &[
            ingress("covered", "covered.test", "down", &[("default-backend", "fallback")]),
            ingress("bare", "bare.test", "down", &[]),
            ingress("typo", "typo.test", "down", &[("default-backend", "fallbak")]),
        ],
    )?;
    let c = start(&dir)?;
    assert_eq!(get(c.http, "covered.test", "/x")?.body, "backend=fallback path=/x", "{}", c.logs());
    assert_eq!(get(c.http, "bare.test", "/x")?.status, 503);
    assert_eq!(get(c.http, "typo.test", "/x")?.status, 503, "a Service that does not exist is rejected");
    Ok(())
}

#[test]
fn check_prints_a_verdict_per_annotation_and_fails_on_rejected_or_closed() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, "127.0.0.1:9".parse()?)]))?;
    let check = |dir: &Path| -> Result<(bool, String)> {
        let out = Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
            .args(["check", "--manifests", dir.to_str().unwrap_or_default(), "--ingress-class", "nginx"])
            .output()?;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned()))
    };

    write_ingresses(
        &dir,
        &[ingress(
            "web",
            "web.test",
            "echo",
            &[("proxy-read-timeout", "600"), ("server-snippet", "return 200;"), ("proxy-bdy-size", "8m")],
        )],
    )?;
    let (ok, out) = check(&dir)?;
    assert!(ok, "nothing rejected or closed: exit 0\n{out}");
    for line in [
        "applied   Ingress default/web nginx.ingress.kubernetes.io/proxy-read-timeout: read timeout 600s",
        "ignored   Ingress default/web nginx.ingress.kubernetes.io/server-snippet: configuration snippets are never supported",
        "unknown   Ingress default/web nginx.ingress.kubernetes.io/proxy-bdy-size: not an ingress-nginx annotation (did you mean `proxy-body-size`?)",
    ] {
        assert!(out.contains(line), "{line}\nin\n{out}");
    }

    write_ingresses(&dir, &[ingress("web", "web.test", "echo", &[("proxy-read-timeout", "10m")])])?;
    let (ok, out) = check(&dir)?;
    assert!(!ok, "a rejected value: exit 1\n{out}");
    assert!(
        out.contains(
            "rejected  Ingress default/web nginx.ingress.kubernetes.io/proxy-read-timeout: value `10m`"
        ),
        "{out}"
    );

    write_ingresses(
        &dir,
        &[ingress("web", "web.test", "echo", &[("auth-tls-secret", "default/client-ca")])],
    )?;
    let (ok, out) = check(&dir)?;
    assert!(!ok, "a closed Ingress: exit 1\n{out}");
    assert!(out.contains("answer 503 until this is fixed (fail closed)"), "{out}");

    // An applied restriction with a value that cannot be read closes the Ingress too.
    write_ingresses(
        &dir,
        &[ingress("web", "web.test", "echo", &[("whitelist-source-range", "10.0.0.0/8,")])],
    )?;
    let (ok, out) = check(&dir)?;
    assert!(!ok, "a denied Ingress: exit 1\n{out}");
    assert!(out.contains("whitelist-source-range: value `10.0.0.0/8,`"), "{out}");
    assert!(out.contains("answer 503 until this is fixed (fail closed)"), "{out}");
    Ok(())
}

#[test]
fn a_configmap_access_restriction_closes_every_route() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, echo_backend("echo"))]))?;
    write_ingresses(&dir, &[ingress("web", "web.test", "echo", &[])])?;
    let configmap = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: default}}\ndata:\n{data}")
    };
    std::fs::write(dir.join("configmap.yaml"), configmap("  block-referers: \"~evil\"\n"))?;
    let c = start_with_configmap(&dir)?;
    assert_eq!(get(c.http, "web.test", "/")?.status, 503);
    assert!(c.logs().contains("block-referers"), "the key is reported");
    std::fs::write(dir.join("configmap.yaml"), configmap("  keep-alive: \"5\"\n"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "web.test", "/")?.status == 200))?;
    Ok(())
}

#[test]
fn header_keys_and_custom_headers_shape_requests_and_responses() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("app", 80, head_echo_backend("app"))]))?;
    let controller_config = |allowed: &str| {
        config_map(
            "cfg",
            &[
                ("add-headers", "default/response-headers"),
                ("proxy-set-headers", "default/request-headers"),
                ("hide-headers", "X-Powered-By"),
                ("global-allowed-response-headers", allowed),
            ],
        )
    };
    let maps = [
        config_map(
            "response-headers",
            &[("X-Global", "everywhere"), ("X-Frame-Options", "SAMEORIGIN"), ("Content-Type", "text/html")],
        ),
        config_map("request-headers", &[("X-Team", "web"), ("X-Start", "t=${msec}")]),
        config_map(
            "app-headers",
            &[("X-Frame-Options", "DENY"), ("Content-Security-Policy", "default-src 'self'")],
        ),
    ];
    std::fs::write(dir.join("configmaps.yaml"), maps.concat())?;
    std::fs::write(dir.join("cfg.yaml"), controller_config("X-Frame-Options,Content-Security-Policy"))?;
    write_ingresses(
        &dir,
        &[
            ingress("plain", "plain.test", "app", &[]),
            ingress("custom", "custom.test", "app", &[("custom-headers", "default/app-headers")]),
            ingress("missing", "missing.test", "app", &[("custom-headers", "default/no-such-map")]),
        ],
    )?;
    let c = start_with_configmap(&dir)?;
    let ask = |host: &str, path: &str| {
        exchange(c.http, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };

    // Every response: add-headers set, hide-headers and the upstream's Server removed
    // (server-tokens off: no Server at all); every request: proxy-set-headers.
    let (status, head, body) = ask("plain.test", "/")?;
    assert_eq!(status, 200);
    assert!(
        head.contains("\r\nx-global: everywhere") && head.contains("\r\nx-frame-options: sameorigin"),
        "{head}"
    );
    assert!(!head.contains("x-powered-by") && !head.contains("\r\nserver:"), "{head}");
    assert!(body.contains("\r\nx-team: web\r\n"), "{body}");
    assert!(
        !body.to_ascii_lowercase().contains("x-start"),
        "an entry with an nginx variable is left out, not sent literally"
    );
    // The proxy's own answers get add-headers too.
    let (status, head, _) = ask("unknown.test", "/")?;
    assert!(status == 404 && head.contains("\r\nx-global: everywhere"), "{head}");
    assert_eq!(head.matches("\r\ncontent-type:").count(), 1, "replaced, not added: {head}");
    assert!(head.contains("\r\ncontent-type: text/html"), "{head}");
    // custom-headers: the Ingress's own, over the global ones of the same name.
    let (status, head, _) = ask("custom.test", "/")?;
    assert_eq!(status, 200);
    assert!(head.contains("\r\nx-frame-options: deny") && !head.contains("sameorigin"), "{head}");
    assert!(head.contains("\r\ncontent-security-policy: default-src 'self'"), "{head}");
    assert!(head.contains("\r\nx-global: everywhere"), "{head}");
    // A missing ConfigMap denies the Ingress, as ingress-nginx does.
    assert_eq!(ask("missing.test", "/")?.0, 503);
    assert_eq!(ask("plain.test", "/")?.0, 200, "other Ingresses are untouched");

    // A header not in global-allowed-response-headers denies the Ingress; allowing it opens it.
    std::fs::write(dir.join("cfg.yaml"), controller_config("X-Frame-Options"))?;
    eventually(Duration::from_secs(10), || Ok(ask("custom.test", "/")?.0 == 503))?;
    std::fs::write(dir.join("cfg.yaml"), controller_config("X-Frame-Options,Content-Security-Policy"))?;
    eventually(Duration::from_secs(10), || Ok(ask("custom.test", "/")?.0 == 200))?;
    // A change in the named ConfigMap applies without touching the Ingress.
    let changed = config_map("app-headers", &[("X-Frame-Options", "ALLOW-FROM https://x.test")]);
    std::fs::write(dir.join("configmaps.yaml"), [maps[0].clone(), maps[1].clone(), changed].concat())?;
    eventually(Duration::from_secs(10), || {
        Ok(ask("custom.test", "/")?.1.contains("\r\nx-frame-options: allow-from https://x.test"))
    })?;

    let dir_s = dir.to_str().unwrap_or_default().to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
        .args(["check", "--manifests", &dir_s, "--ingress-class", "nginx", "--configmap", "default/cfg"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("applied")
            && l.contains("default/custom")
            && l.contains("sets X-Frame-Options")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("rejected")
            && l.contains("default/missing")
            && l.contains("ConfigMap default/no-such-map not found")),
        "{text}"
    );
    assert!(c.logs().contains("nginx variables"), "the left-out entry is reported");
    // `check` gives the ConfigMap's keys a line each too.
    assert!(text.lines().any(|l| l == "applied   ConfigMap default/cfg hide-headers"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("ignored   ConfigMap default/cfg proxy-set-headers:")
            && l.contains("`X-Start`: nginx variables")),
        "{text}"
    );
    Ok(())
}

#[test]
fn proxy_redirect_and_cookie_annotations_rewrite_upstream_headers() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("app", 80, head_echo_backend("app"))]))?;
    write_ingresses(
        &dir,
        &[
            ingress(
                "rewritten",
                "rewritten.test",
                "app",
                &[
                    ("proxy-redirect-from", "http://internal.svc/"),
                    ("proxy-redirect-to", "https://shop.test/"),
                    ("proxy-cookie-domain", "internal.svc shop.test"),
                    ("proxy-cookie-path", "/app/ /"),
                ],
            ),
            ingress("plain", "plain.test", "app", &[]),
            ingress(
                "half",
                "half.test",
                "app",
                &[
                    ("proxy-redirect-from", "default"),
                    ("proxy-redirect-to", "https://x.test/"),
                    ("proxy-cookie-path", "/app/"),
                ],
            ),
        ],
    )?;
    let c = start(&dir)?;
    let ask = |host: &str| {
        exchange(c.http, &format!("GET /redirect HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };
    let (status, head, _) = ask("rewritten.test")?;
    assert_eq!(status, 302);
    assert!(head.contains("\r\nlocation: https://shop.test/next\r\n"), "{head}");
    assert!(head.contains("\r\nrefresh: 0; url=https://shop.test/next\r\n"), "{head}");
    assert!(head.contains("\r\nset-cookie: sid=1; domain=shop.test; path=/x; httponly\r\n"), "{head}");
    assert!(
        head.contains("\r\nset-cookie: pref=2; path=/other\r\n"),
        "an unmatched cookie is unchanged: {head}"
    );
    // The defaults (off) and `default` change nothing; a one-word cookie path is rejected.
    for host in ["plain.test", "half.test"] {
        let (_, head, _) = ask(host)?;
        assert!(head.contains("\r\nlocation: http://internal.svc/next\r\n"), "{host}: {head}");
        assert!(head.contains("domain=internal.svc; path=/app/x"), "{host}: {head}");
    }
    // HTTP/2 and the other transports: the parity row of the same rewrites.
    let out = Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
        .args(["check", "--manifests", dir.to_str().unwrap_or_default(), "--ingress-class", "nginx"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("rejected")
            && l.contains("default/half")
            && l.contains("proxy-cookie-path")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("ignored")
            && l.contains("default/half")
            && l.contains("proxy-redirect-to")),
        "{text}"
    );
    Ok(())
}

#[test]
fn custom_http_errors_are_answered_by_the_error_backend() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(
        dir.join("services.yaml"),
        services(&[
            ("app", 80, head_echo_backend("app")),
            ("errors", 80, custom_error_backend()),
            ("global-errors", 80, custom_error_backend()),
            ("dead", 80, dead),
        ]),
    )?;
    std::fs::write(dir.join("cfg.yaml"), config_map("cfg", &[("custom-http-errors", "502, 504")]))?;
    write_ingresses(
        &dir,
        &[
            ingress(
                "app",
                "app.test",
                "app",
                &[("custom-http-errors", "404, 503"), ("default-backend", "errors")],
            ),
            ingress("dead", "dead.test", "dead", &[]),
            ingress("bad", "bad.test", "app", &[("custom-http-errors", "200,abc")]),
        ],
    )?;
    let dir_s = dir.to_str().unwrap_or_default().to_owned();
    let c = Controller::start(
        &[
            "--manifests",
            &dir_s,
            "--ingress-class",
            "nginx",
            "--configmap",
            "default/cfg",
            "--default-backend-service",
            "default/global-errors",
        ],
        tmp.path(),
    )?;
    let ask = |method: &str, host: &str, path: &str| {
        exchange(
            c.http,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nX-Request-ID: rid-7\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    // An upstream 503 on a listed status: the Ingress's default-backend answers, with
    // ingress-nginx's headers, and its status is the client's.
    let (status, head, body) = ask("GET", "app.test", "/status/503?q=1")?;
    assert_eq!(status, 503, "{head}{body}");
    assert!(head.contains("\r\ncontent-type: text/html"), "{head}");
    assert_eq!(
        body,
        "error 503 uri=/status/503?q=1 ns=default ingress=app service=app:80 format=text/html id=rid-7 path=/?q=1"
    );
    let (status, _, body) = ask("GET", "app.test", "/status/404")?;
    assert_eq!((status, body.starts_with("error 404 ")), (404, true), "{body}");
    // Not listed: the upstream's own answer; the Ingress's list replaces the ConfigMap's.
    let (status, _, body) = ask("GET", "app.test", "/status/500")?;
    assert_eq!((status, body.starts_with("backend=app")), (500, true), "{body}");
    let (status, _, body) = ask("GET", "app.test", "/")?;
    assert_eq!((status, body.starts_with("backend=app")), (200, true), "{body}");
    // HEAD: the status and headers, no body.
    let (status, head, body) = ask("HEAD", "app.test", "/status/503")?;
    assert_eq!((status, body.as_str()), (503, ""), "{head}");
    // The ConfigMap's list, on a route without its own: the proxy's 502 (refused endpoint)
    // is answered by the controller's default backend.
    let (status, _, body) = ask("GET", "dead.test", "/x")?;
    assert_eq!(status, 502, "{body}");
    assert!(body.starts_with("error 502 uri=/x ns=default ingress=dead service=dead:80"), "{body}");
    // A rejected list leaves the ConfigMap's in force.
    let (status, _, body) = ask("GET", "bad.test", "/status/503")?;
    assert_eq!((status, body.starts_with("backend=app")), (503, true), "{body}");
    let (status, _, body) = ask("GET", "bad.test", "/status/502")?;
    assert_eq!((status, body.starts_with("error 502 ")), (502, true), "{body}");
    Ok(())
}

#[test]
fn source_ranges_let_in_only_the_listed_clients() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, echo_backend("echo"))]))?;
    let cfg = |data: &[(&str, &str)]| std::fs::write(dir.join("cfg.yaml"), config_map("cfg", data));
    cfg(&[("whitelist-source-range", "10.0.0.0/8")])?;
    write_ingresses(
        &dir,
        &[
            ingress("open", "open.test", "echo", &[]),
            ingress("local", "local.test", "echo", &[("whitelist-source-range", "127.0.0.0/8, ::1")]),
            ingress("primary", "primary.test", "echo", &[("allowlist-source-range", "127.0.0.1/32")]),
            ingress(
                "denied",
                "denied.test",
                "echo",
                &[("whitelist-source-range", "127.0.0.0/8"), ("denylist-source-range", "127.0.0.1")],
            ),
            ingress("typo", "typo.test", "echo", &[("whitelist-source-range", "127.0.0.0/8,")]),
            ingress("v6", "v6.test", "echo", &[("whitelist-source-range", "2001:db8::/32")]),
        ],
    )?;
    let c = start_with_configmap(&dir)?;
    // The client is 127.0.0.1: the ConfigMap's allowlist keeps it out of Ingresses without
    // their own, an Ingress's own list replaces it.
    assert_eq!(get(c.http, "open.test", "/")?.status, 403);
    assert_eq!(get(c.http, "local.test", "/")?.status, 200);
    assert_eq!(get(c.http, "primary.test", "/")?.status, 200);
    assert_eq!(get(c.http, "denied.test", "/")?.status, 403, "the denylist comes first");
    assert_eq!(get(c.http, "typo.test", "/")?.status, 503, "a bad list denies the Ingress, as ingress-nginx");
    assert_eq!(get(c.http, "unknown.test", "/")?.status, 404);
    // No ConfigMap allowlist: open again; block-cidrs keeps the client out everywhere.
    cfg(&[])?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "open.test", "/")?.status == 200))?;
    cfg(&[("block-cidrs", "127.0.0.1")])?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "local.test", "/")?.status == 403))?;
    assert_eq!(get(c.http, "unknown.test", "/")?.status, 403, "blocked before the default backend");
    // Behind a trusted proxy, the ranges apply to the address it forwards (IPv4 and IPv6).
    cfg(&[("use-forwarded-headers", "true"), ("proxy-real-ip-cidr", "127.0.0.1/32")])?;
    let from = |host: &str, client: &str| {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
        );
        exchange(c.http, &request).map(|(status, _, _)| status)
    };
    eventually(Duration::from_secs(10), || Ok(from("v6.test", "2001:db8::7")? == 200))?;
    assert_eq!(from("v6.test", "2001:db9::7")?, 403);
    assert_eq!(from("v6.test", "127.0.0.1")?, 403, "the forwarded address counts, not the peer's");
    assert_eq!(from("local.test", "10.1.2.3")?, 403);
    assert_eq!(from("local.test", "127.0.0.9")?, 200);
    // An unreadable ConfigMap range closes every route rather than leave it open.
    cfg(&[("block-cidrs", "127.0.0.1, nope")])?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "open.test", "/")?.status == 503))?;
    Ok(())
}

#[test]
fn rate_and_connection_limits_per_client_address() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    let (echo, slow) = (echo_backend("echo"), slow_backend(Duration::from_millis(1500)));
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, echo), ("slow", 80, slow)]))?;
    std::fs::write(
        dir.join("cfg.yaml"),
        config_map("cfg", &[("limit-req-status-code", "429"), ("limit-conn-status-code", "503")]),
    )?;
    write_ingresses(
        &dir,
        &[
            ingress("limited", "limited.test", "echo", &[("limit-rpm", "60")]),
            ingress(
                "exempt",
                "exempt.test",
                "echo",
                &[("limit-rpm", "60"), ("limit-whitelist", "127.0.0.0/8")],
            ),
            ingress("one-at-a-time", "slow.test", "slow", &[("limit-connections", "1")]),
            ingress("typo", "typo.test", "echo", &[("limit-rps", "10r/s")]),
        ],
    )?;
    let c = start_with_configmap(&dir)?;
    // 60 r/min with ingress-nginx's burst of 5 × 60: 301 requests pass at once (at most a few
    // more leak in while they run), then the ConfigMap's status.
    let started = Instant::now();
    let statuses: Vec<u16> =
        (0..340).map(|_| get(c.http, "limited.test", "/").map(|r| r.status)).collect::<Result<_>>()?;
    let leaked = started.elapsed().as_secs() as usize + 1;
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((301..=301 + leaked).contains(&passed), "{passed} passed in {:?}", started.elapsed());
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429));
    // An allowlisted client is never counted.
    assert!((0..340).all(|_| get(c.http, "exempt.test", "/").is_ok_and(|r| r.status == 200)));
    // One request in flight per client: a second one meanwhile is refused.
    let port = c.http;
    let first = std::thread::spawn(move || get(port, "slow.test", "/").map(|r| r.status));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(get(c.http, "slow.test", "/")?.status, 503);
    assert_eq!(first.join().map_err(|_| anyhow::anyhow!("request thread panicked"))??, 200);
    assert_eq!(get(c.http, "slow.test", "/")?.status, 200, "the count ends with the request");
    // A limit that cannot be read closes the Ingress (ingress-nginx would drop the limit).
    assert_eq!(get(c.http, "typo.test", "/")?.status, 503);
    Ok(())
}

#[test]
fn basic_auth_with_htpasswd_users() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, echo_backend("echo"))]))?;
    // htpasswd -b (apr1), htpasswd -B -C 5 (bcrypt), htpasswd -s (SHA-1), salted SHA-1, and
    // crypt(3): DES (htpasswd -d), MD5, SHA-256 and SHA-512; all for "password".
    let file = "alice:$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00\n\
                bob:$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe\n\
                carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\
                dan:{SSHA}Ixeqctr6CgfwWvR7qi44j5Xc9vMxMjM0NTY3OA==\n\
                dave:abJnggxhB/yWI\n\
                erin:$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/\n\
                frank:$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.\n\
                grace:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/\n";
    std::fs::write(
        dir.join("secrets.yaml"),
        [secret("basic-auth", &[("auth", file)]), secret("by-user", &[("dave", "{PLAIN}s3cret")])].concat(),
    )?;
    fn basic(secret: &str) -> Vec<(&str, &str)> {
        vec![("auth-type", "basic"), ("auth-secret", secret), ("auth-realm", "Authentication Required - foo")]
    }
    let mut map = basic("by-user");
    map.push(("auth-secret-type", "auth-map"));
    write_ingresses(
        &dir,
        &[
            ingress("file", "file.test", "echo", &basic("basic-auth")),
            ingress("map", "map.test", "echo", &map),
            ingress(
                "digest",
                "digest.test",
                "echo",
                &[("auth-type", "digest"), ("auth-secret", "basic-auth")],
            ),
            ingress("missing", "missing.test", "echo", &basic("no-such-secret")),
        ],
    )?;
    let c = start(&dir)?;
    let ask = |host: &str, creds: Option<&str>| {
        let auth = creds.map_or(String::new(), |c| {
            format!("Authorization: Basic {}\r\n", openssl::base64::encode_block(c.as_bytes()))
        });
        exchange(c.http, &format!("GET / HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"))
    };
    let (status, head, _) = ask("file.test", None)?;
    assert_eq!(status, 401);
    assert!(head.contains("\r\nwww-authenticate: basic realm=\"authentication required - foo\""), "{head}");
    for user in ["alice", "bob", "carol", "dan", "dave", "erin", "frank", "grace"] {
        assert_eq!(ask("file.test", Some(&format!("{user}:password")))?.0, 200, "{user}");
        assert_eq!(ask("file.test", Some(&format!("{user}:wrong")))?.0, 401, "{user}");
    }
    assert_eq!(ask("file.test", Some("mallory:password"))?.0, 401);
    assert_eq!(ask("map.test", Some("dave:s3cret"))?.0, 200);
    assert_eq!(ask("map.test", Some("alice:password"))?.0, 401, "another Secret's users");
    // What cannot be applied denies the Ingress rather than serve it without authentication.
    assert_eq!(ask("digest.test", None)?.0, 503);
    assert_eq!(ask("missing.test", Some("alice:password"))?.0, 503);
    Ok(())
}
