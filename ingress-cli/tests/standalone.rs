//! The binary in standalone mode (`--manifests DIR`): the seed tutorial's demo served through
//! the real proxy to local backends, live file changes, broken files, ConfigMap settings,
//! SIGTERM.

mod support;

use std::time::Duration;

use anyhow::Result;
use support::{Controller, demo_manifests, echo_backend, eventually, get, request, served_cn, services};

fn start(dir: &std::path::Path, extra: &[&str]) -> Result<Controller> {
    let dir_s = dir.to_str().unwrap_or_default().to_owned();
    let mut args = vec!["--manifests", &dir_s, "--ingress-class", "nginx"];
    args.extend_from_slice(extra);
    Controller::start(&args, dir.parent().unwrap_or(dir))
}

#[test]
fn seed_demo_routes_404s_and_serves_the_webapp_certificate() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    demo_manifests(&dir, echo_backend("demo"), echo_backend("webapp"))?;
    let c = start(&dir, &[])?;

    // The tutorial's `curl http://demo.example.com:30080/`.
    let r = get(c.http, "demo.example.com:30080", "/index.html?x=1")?;
    assert_eq!(r.status, 200, "{r:?}\n{}", c.logs());
    assert_eq!(r.body, "backend=demo path=/index.html?x=1");
    // The tutorial's "Test by accessing a non-existent path": the built-in default backend.
    let r = get(c.http, "unknown.example.com", "/")?;
    assert_eq!((r.status, r.body.as_str()), (404, "default backend - 404"));
    // `curl https://webapp.example.com:30443/ -k`: the Secret's certificate by SNI.
    assert_eq!(served_cn(c.https, Some("webapp.example.com"))?, "webapp.example.com");
    // Other names and no SNI get the generated default certificate, not the webapp one.
    assert_ne!(served_cn(c.https, Some("other.example.com"))?, "webapp.example.com");
    assert_ne!(served_cn(c.https, None)?, "webapp.example.com");
    Ok(())
}

#[test]
fn file_changes_apply_live_and_a_broken_file_keeps_its_last_good_content() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let (one, two) = (echo_backend("one"), echo_backend("two"));
    std::fs::write(dir.join("services.yaml"), services(&[("one", 80, one), ("two", 80, two)]))?;
    let ingress = |name: &str, host: &str, svc: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: nginx\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n      - {{path: /api/, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
        )
    };
    let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: ferry.dev/ingress-controller}\n";
    std::fs::write(dir.join("class.yaml"), class)?;
    std::fs::write(dir.join("a.yaml"), ingress("a", "a.example.com", "one"))?;
    let c = start(&dir, &[])?;
    assert_eq!(get(c.http, "a.example.com", "/")?.body, "backend=one path=/");
    assert_eq!(get(c.http, "a.example.com", "/api")?.body, "backend=one path=/api");

    // A new file, and an edit, reach the proxy without a restart.
    std::fs::write(dir.join("b.yaml"), ingress("b", "b.example.com", "two"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "b.example.com", "/")?.status == 200))?;
    let metrics = || -> Result<String> { Ok(get(c.admin, "localhost", "/metrics")?.body) };
    let series_of = |text: &str, series: &str, labels: &[&str]| {
        text.lines().any(|l| l.starts_with(series) && labels.iter().all(|label| l.contains(label)))
    };
    let counted = ["nginx_ingress_controller_requests{", "ferry_requests_total{"];
    // A request is counted once its response is sent: the series may come a moment later.
    eventually(Duration::from_secs(10), || {
        let text = metrics()?;
        Ok(counted.iter().all(|series| series_of(&text, series, &[r#"ingress="a""#, r#"service="one""#]))
            // The `path` label is the rule's path as written (`/api/`), as ingress-nginx's,
            // though a `Prefix` path matches without its trailing slash.
            && series_of(&text, counted[0], &[r#"ingress="a""#, r#"path="/api/""#]))
    })?;
    std::fs::write(dir.join("a.yaml"), ingress("a", "a.example.com", "two"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "a.example.com", "/")?.body.contains("two")))?;
    // The edit took `a`'s only route from Service `one`: the series of that route go (where
    // ingress-nginx keeps them while the Ingress exists); those of its new route are made.
    eventually(Duration::from_secs(10), || {
        let text = metrics()?;
        Ok(counted.iter().all(|series| {
            !series_of(&text, series, &[r#"ingress="a""#, r#"service="one""#])
                && series_of(&text, series, &[r#"ingress="a""#, r#"service="two""#])
        }))
    })?;

    // A file that does not parse is reported and its previous content stays in force.
    std::fs::write(dir.join("b.yaml"), "apiVersion: networking.k8s.io/v1\nkind: Ingress\nspec: [unclosed\n")?;
    eventually(Duration::from_secs(10), || Ok(c.logs().contains("b.yaml")))?;
    assert_eq!(get(c.http, "b.example.com", "/")?.status, 200, "b's last good content stays");
    assert_eq!(get(c.http, "a.example.com", "/")?.status, 200, "other files keep working");

    // Deleting a file removes its routes, and the request series of its Ingress, Ferry's and
    // ingress-nginx's (as ingress-nginx drops them after a reload); the others' stay.
    let text = metrics()?;
    for series in counted {
        for ingress in [r#"ingress="a""#, r#"ingress="b""#] {
            let has = text.lines().any(|l| l.starts_with(series) && l.contains(ingress));
            assert!(has, "{series} {ingress}: {text}");
        }
    }
    std::fs::remove_file(dir.join("b.yaml"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "b.example.com", "/")?.status == 404))?;
    eventually(Duration::from_secs(10), || Ok(!metrics()?.contains(r#"ingress="b""#)))?;
    let text = metrics()?;
    assert!(text.contains(r#"nginx_ingress_controller_request_duration_seconds_count{"#), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("nginx_ingress_controller_requests{") && l.contains(r#"ingress="a""#)),
        "{text}"
    );

    // Renaming `a`'s host (the same paths and Service): ingress-nginx's series of the old host
    // go too, those of the new one are made.
    assert!(text.contains(r#"host="a.example.com""#), "{text}");
    std::fs::write(dir.join("a.yaml"), ingress("a", "a2.example.com", "two"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "a2.example.com", "/")?.status == 200))?;
    eventually(Duration::from_secs(10), || {
        let text = metrics()?;
        Ok(!text.contains(r#"host="a.example.com""#)
            && series_of(&text, counted[0], &[r#"ingress="a""#, r#"host="a2.example.com""#]))
    })?;
    Ok(())
}

#[test]
fn configmap_settings_apply_live_and_bad_keys_are_ignored() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    demo_manifests(&dir, echo_backend("demo"), echo_backend("webapp"))?;
    let configmap = |body_size: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ferry-configuration, namespace: ingress-ferry}}\ndata:\n  proxy-body-size: \"{body_size}\"\n  no-such-setting: \"x\"\n"
        )
    };
    std::fs::write(dir.join("configmap.yaml"), configmap("1k"))?;
    let c = start(&dir, &["--configmap", "ingress-ferry/ferry-configuration"])?;
    let body = vec![b'x'; 4096];
    let r = request(c.http, "demo.example.com", "POST", "/upload", &body)?;
    assert_eq!(r.status, 413, "4 KiB over a 1k limit: {r:?}");
    assert!(c.logs().contains("no-such-setting"), "the unknown key is reported");

    std::fs::write(dir.join("configmap.yaml"), configmap("8k"))?;
    eventually(Duration::from_secs(10), || {
        Ok(request(c.http, "demo.example.com", "POST", "/upload", &body)?.status == 200)
    })?;
    Ok(())
}

/// Whether `line` is `pattern`, where each `*` stands for a run of characters other than a
/// space.
fn shaped(pattern: &str, line: &str) -> bool {
    let mut rest = line;
    for (i, part) in pattern.split('*').enumerate() {
        if i > 0 {
            rest = rest.trim_start_matches(|c: char| c != ' ' && !part.starts_with(c));
        }
        match rest.strip_prefix(part) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Sends `head` (a request head without its final blank line) and returns the status line.
fn raw(port: u16, head: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    Ok(String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_owned())
}

#[test]
fn access_log_formats_from_the_configmap_apply_live() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    demo_manifests(&dir, echo_backend("demo"), echo_backend("webapp"))?;
    let configmap = |data: &[(&str, &str)]| {
        let mut text =
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: default}\ndata:\n".to_owned();
        for (k, v) in data {
            text.push_str(&format!("  {k}: '{}'\n", v.replace('\'', "''")));
        }
        text
    };
    std::fs::write(
        dir.join("configmap.yaml"),
        configmap(&[
            ("log-format-upstream", "upstreaminfo"),
            ("skip-access-log-urls", "/skipped, /Quiet?x=1"),
        ]),
    )?;
    let c = start(&dir, &["--configmap", "default/cfg"])?;
    let demo = "GET /upstreaminfo?x=1 HTTP/1.1\r\nHost: demo.example.com\r\nUser-Agent: a \"quoted\"\tagent\r\nX-Request-ID: 0123abcd";
    assert!(raw(c.http, demo)?.contains(" 200 "));
    assert!(raw(c.http, "GET /skipped HTTP/1.1\r\nHost: demo.example.com")?.contains(" 200 "));
    assert!(raw(c.http, "GET /quiet?X=1 HTTP/1.1\r\nHost: demo.example.com")?.contains(" 200 "));
    assert!(raw(c.http, "GET /skipped?no HTTP/1.1\r\nHost: demo.example.com")?.contains(" 200 "));
    let line = |marker: &str| c.access_log().lines().find(|l| l.contains(marker)).map(str::to_owned);
    eventually(Duration::from_secs(5), || Ok(line("/skipped?no").is_some()))?;
    // ingress-nginx's own line: header values escaped, the upstream `namespace-service-port`,
    // the canary's name empty.
    let logged = line("/upstreaminfo").unwrap_or_default();
    let expected = "127.0.0.1 - - [*/*/*:*:*:* +0000] \"GET /upstreaminfo?x=1 HTTP/1.1\" 200 * \"-\" \
                    \"a \\x22quoted\\x22\\x09agent\" * * [default-demo-app-80] [] 127.0.0.1:* * * 200 0123abcd";
    assert!(shaped(expected, &logged), "{logged}\nis not\n{expected}");
    let access = c.access_log();
    assert!(!access.contains("/skipped "), "an exact skipped target is not logged: {access}");
    assert!(!access.contains("/quiet"), "the match ignores case, query included: {access}");

    // JSON escaping, a template of the user's own, changed live.
    let json = r#"{"uri": "$request_uri", "ua": "$http_user_agent", "user": "$remote_user", "status": $status, "took": $request_time}"#;
    std::fs::write(
        dir.join("configmap.yaml"),
        configmap(&[("log-format-upstream", json), ("log-format-escape-json", "true")]),
    )?;
    let json_line = || -> Result<Option<serde_json::Value>> {
        raw(c.http, "GET /as-json HTTP/1.1\r\nHost: demo.example.com\r\nUser-Agent: say \"hi\"")?;
        std::thread::sleep(Duration::from_millis(100));
        Ok(line("\"uri\": \"/as-json\"").and_then(|l| serde_json::from_str(&l).ok()))
    };
    let mut got = None;
    eventually(Duration::from_secs(10), || {
        got = json_line()?;
        Ok(got.is_some())
    })?;
    let got = got.unwrap_or_default();
    assert_eq!(
        (&got["ua"], &got["user"], &got["status"]),
        (&"say \"hi\"".into(), &"".into(), &200.into()),
        "{got}"
    );

    // A template naming a variable Ferry does not provide is reported; Ferry's JSON stays.
    std::fs::write(
        dir.join("configmap.yaml"),
        configmap(&[("log-format-upstream", "$remote_addr $ssl_cipher")]),
    )?;
    eventually(Duration::from_secs(10), || Ok(c.logs().contains("variables not supported: $ssl_cipher")))?;
    raw(c.http, "GET /json-again HTTP/1.1\r\nHost: demo.example.com")?;
    eventually(Duration::from_secs(5), || Ok(line("/json-again").is_some()))?;
    let back: serde_json::Value = serde_json::from_str(&line("/json-again").unwrap_or_default())?;
    assert_eq!((&back["path"], &back["service"]), (&"/json-again".into(), &"demo-app".into()), "{back}");
    Ok(())
}

/// A TLS server on the loopback presenting the seed's `webapp.example.com` certificate, that
/// answers one line per connection with `backend: <line>`.
fn tls_backend() -> Result<std::net::SocketAddr> {
    use std::io::{BufRead, Write};
    let secret: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo/webapp-tls-secret.yaml"),
    )?)?;
    let pem = |key: &str| secret["stringData"][key].as_str().unwrap_or_default().to_owned();
    let mut acceptor = openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls())?;
    let certificate = openssl::x509::X509::from_pem(pem("tls.crt").as_bytes())?;
    let key = openssl::pkey::PKey::private_key_from_pem(pem("tls.key").as_bytes())?;
    acceptor.set_certificate(&certificate)?;
    acceptor.set_private_key(&key)?;
    let acceptor = acceptor.build();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(tls) = acceptor.accept(tcp) else { continue };
            let mut reader = std::io::BufReader::new(tls);
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                let _ = reader.get_mut().write_all(format!("backend: {line}").as_bytes());
            }
        }
    });
    Ok(addr)
}

#[test]
fn ssl_passthrough_hands_tls_to_the_backend_with_the_flag_and_is_ignored_without() -> Result<()> {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    demo_manifests(&dir, echo_backend("demo"), echo_backend("webapp"))?;
    std::fs::write(dir.join("tls-app.yaml"), services(&[("tls-app", 443, tls_backend()?)]))?;
    std::fs::write(
        dir.join("pass.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: argocd\n  namespace: default\n  annotations:\n    kubernetes.io/ingress.class: nginx\n    nginx.ingress.kubernetes.io/ssl-passthrough: \"true\"\n    nginx.ingress.kubernetes.io/backend-protocol: HTTPS\nspec:\n  rules:\n  - host: argocd.example.com\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend: {service: {name: tls-app, port: {number: 443}}}\n",
    )?;
    let check = |flags: &[&str]| -> Result<String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
            .args(["check", "--manifests", dir.to_str().unwrap_or_default(), "--ingress-class", "nginx"])
            .args(flags)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let key = "Ingress default/argocd nginx.ingress.kubernetes.io/ssl-passthrough";
    let without = check(&[])?;
    assert!(
        without.contains(&format!("ignored   {key}: the controller runs without `--enable-ssl-passthrough`")),
        "{without}"
    );
    let with = check(&["--enable-ssl-passthrough"])?;
    assert!(with.contains(&format!("applied   {key}: TLS connections")), "{with}");

    // ingress-nginx's spelling of the flags, as its Deployment passes them.
    let inner = support::free_port().to_string();
    let c = start(&dir, &["--enable-ssl-passthrough=true", "--ssl-passthrough-proxy-port", &inner])?;
    // The backend's own certificate and answer: nothing terminated on the way.
    assert_eq!(served_cn(c.https, Some("argocd.example.com"))?, "webapp.example.com");
    let mut config = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())?;
    config.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let tcp = std::net::TcpStream::connect(("127.0.0.1", c.https))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = config.build().connect("argocd.example.com", tcp)?;
    tls.write_all(b"ping\n")?;
    let mut reply = String::new();
    let _ = tls.read_to_string(&mut reply);
    assert_eq!(reply, "backend: ping\n");
    // The other hosts are terminated here as before: the seed's webapp over HTTPS, the demo
    // over HTTP.
    let (r, _) = support::get_tls(c.https, "webapp.example.com", "/")?;
    assert_eq!(r.status, 200);
    assert_eq!(request(c.http, "demo.example.com", "GET", "/", b"")?.status, 200);
    assert!(c.logs().contains("TLS passthrough; terminated on 127.0.0.1:"), "{}", c.logs());
    assert!(!c.logs().contains("ERROR"), "{}", c.logs());
    Ok(())
}

/// An HTTPS server on the loopback presenting the seed's `webapp.example.com` certificate:
/// `200 tls` to every request.
fn https_backend() -> Result<std::net::SocketAddr> {
    use std::io::{Read, Write};
    let (certificate, key) = seed_certificate()?;
    let mut acceptor = openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls())?;
    let (certificate, key) = (
        openssl::x509::X509::from_pem(certificate.as_bytes())?,
        openssl::pkey::PKey::private_key_from_pem(key.as_bytes())?,
    );
    acceptor.set_certificate(&certificate)?;
    acceptor.set_private_key(&key)?;
    let acceptor = acceptor.build();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(mut tls) = acceptor.accept(tcp) else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntls");
        }
    });
    Ok(addr)
}

/// The seed's `webapp.example.com` certificate and key (PEM).
fn seed_certificate() -> Result<(String, String)> {
    let secret: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo/webapp-tls-secret.yaml"),
    )?)?;
    let pem = |key: &str| secret["stringData"][key].as_str().unwrap_or_default().to_owned();
    Ok((pem("tls.crt"), pem("tls.key")))
}

#[test]
fn backend_protocol_https_and_proxy_ssl_reach_a_tls_endpoint() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    demo_manifests(&dir, echo_backend("demo"), echo_backend("webapp"))?;
    std::fs::write(dir.join("secure-app.yaml"), services(&[("secure-app", 443, https_backend()?)]))?;
    let (certificate, _) = seed_certificate()?;
    let ca: String = certificate.lines().map(|l| format!("    {l}\n")).collect();
    std::fs::write(
        dir.join("upstream-ca.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: upstream-ca, namespace: default}}\ntype: Opaque\nstringData:\n  ca.crt: |\n{ca}"
        ),
    )?;
    let ingress = |name: &str, host: &str, annotations: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    kubernetes.io/ingress.class: nginx\n    nginx.ingress.kubernetes.io/backend-protocol: HTTPS\n{annotations}spec:\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend: {{service: {{name: secure-app, port: {{number: 443}}}}}}\n"
        )
    };
    let checked = |name: &str| {
        format!(
            "    nginx.ingress.kubernetes.io/proxy-ssl-secret: default/upstream-ca\n    nginx.ingress.kubernetes.io/proxy-ssl-verify: \"on\"\n    nginx.ingress.kubernetes.io/proxy-ssl-name: {name}\n"
        )
    };
    std::fs::write(
        dir.join("secure.yaml"),
        [
            ingress("plain-tls", "tls.example.com", ""),
            ingress("checked", "checked.example.com", &checked("webapp.example.com")),
            ingress("mismatch", "mismatch.example.com", &checked("other.example.com")),
            ingress(
                "foreign",
                "foreign.example.com",
                "    nginx.ingress.kubernetes.io/proxy-ssl-secret: other/upstream-ca\n",
            ),
        ]
        .concat(),
    )?;
    let c = start(&dir, &[])?;
    let status = |host: &str| request(c.http, host, "GET", "/", b"").map(|r| (r.status, r.body));
    assert_eq!(
        status("tls.example.com")?,
        (200, "tls".to_owned()),
        "HTTPS to the pod, certificate not checked"
    );
    assert_eq!(status("checked.example.com")?, (200, "tls".to_owned()), "checked against ca.crt");
    assert_eq!(status("mismatch.example.com")?.0, 502, "a certificate for another name");
    assert_eq!(status("foreign.example.com")?.0, 503, "a Secret of another namespace denies the Ingress");
    Ok(())
}

#[test]
fn sigterm_stops_the_controller_cleanly() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    demo_manifests(&dir, echo_backend("demo"), echo_backend("webapp"))?;
    let mut c = start(&dir, &["--shutdown-grace-period", "1"])?;
    assert_eq!(get(c.http, "demo.example.com", "/")?.status, 200);
    let status = c.terminate()?;
    assert!(status.success(), "exit status {status}\n{}", c.logs());
    assert!(get(c.http, "demo.example.com", "/").is_err(), "no longer listening");
    Ok(())
}

/// The grace period is a ceiling, not a wait: an idle controller exits at once on SIGTERM, a
/// busy one as soon as its requests in flight are answered.
#[test]
fn sigterm_waits_for_requests_in_flight_and_no_longer() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    demo_manifests(&dir, support::slow_backend(Duration::from_millis(1500)), echo_backend("webapp"))?;

    let mut idle = start(&dir, &["--shutdown-grace-period", "30"])?;
    let t0 = std::time::Instant::now();
    let status = idle.terminate()?;
    assert!(status.success(), "exit status {status}\n{}", idle.logs());
    assert!(t0.elapsed() < Duration::from_secs(5), "idle: exited after {:?}", t0.elapsed());

    let mut busy = start(&dir, &["--shutdown-grace-period", "30"])?;
    let port = busy.http;
    let slow = std::thread::spawn(move || get(port, "demo.example.com", "/"));
    std::thread::sleep(Duration::from_millis(300)); // the request is in flight
    let t0 = std::time::Instant::now();
    let status = busy.terminate()?;
    let took = t0.elapsed();
    let answered = slow.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    assert_eq!((answered.status, answered.body.as_str()), (200, "slow"), "the request in flight is answered");
    assert!(status.success(), "exit status {status}\n{}", busy.logs());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "busy: exited after {took:?}"
    );
    Ok(())
}

/// `--watch-namespace-selector`: only the Ingresses of namespaces whose labels match are
/// served, and labelling a namespace takes its Ingresses in at once.
#[test]
fn a_namespace_selector_serves_the_selected_namespaces_only() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let backend = echo_backend("app");
    let mut docs = String::new();
    for ns in ["web", "ops"] {
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: app, namespace: {ns}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: app-1, namespace: {ns}, labels: {{kubernetes.io/service-name: app}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"127.0.0.1\"]}}]\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: app, namespace: {ns}, annotations: {{kubernetes.io/ingress.class: nginx}}}}\nspec:\n  rules:\n  - host: {ns}.test\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}]}}\n",
            backend.port()
        ));
    }
    std::fs::write(dir.join("apps.yaml"), docs)?;
    let namespaces = |ops_team: &str| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: web, labels: {{team: web}}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ops, labels: {{team: {ops_team}}}}}\n"
        )
    };
    std::fs::write(dir.join("namespaces.yaml"), namespaces("ops"))?;
    let c = start(&dir, &["--watch-namespace-selector", "team in (web, frontend)"])?;
    assert_eq!(get(c.http, "web.test", "/")?.status, 200);
    assert_eq!(get(c.http, "ops.test", "/")?.status, 404, "not a selected namespace");
    std::fs::write(dir.join("namespaces.yaml"), namespaces("frontend"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "ops.test", "/")?.status == 200))?;
    Ok(())
}
