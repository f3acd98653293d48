//! The binary's sub-commands and its start-up errors: one clear line, non-zero exit, no panic.

mod support;

use std::process::{Command, Output};

use anyhow::{Context, Result};

fn run(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_ingress-controller")).args(args).output()?)
}

fn demo() -> String {
    format!("{}/../examples/demo", env!("CARGO_MANIFEST_DIR"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn version_prints_the_version() -> Result<()> {
    let o = run(&["version"])?;
    assert!(o.status.success());
    assert!(stdout(&o).contains(env!("CARGO_PKG_VERSION")));
    Ok(())
}

#[test]
fn check_accepts_the_demo_and_rejects_broken_manifests() -> Result<()> {
    let o = run(&["check", "--manifests", &demo(), "--ingress-class", "nginx"])?;
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok        Ingress default/demo-ingress"), "{}", stdout(&o));
    assert!(stdout(&o).contains("0 rejected"));

    // With the default class the seed's `nginx` Ingresses are not ours: listed as ignored.
    let o = run(&["check", "--manifests", &demo()])?;
    assert!(stdout(&o).contains("ignored   Ingress default/demo-ingress"), "{}", stdout(&o));

    let tmp = tempfile::tempdir()?;
    std::fs::write(
        tmp.path().join("bad.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad, namespace: default}\nspec:\n  ingressClassName: ferry\n  rules:\n  - host: bad..example.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: x, port: {number: 80}}}}\n  - host: good.example.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: x, port: {number: 80}}}}\n",
    )?;
    std::fs::write(tmp.path().join("garbage.yaml"), "kind: [\n")?;
    std::fs::write(
        tmp.path().join("class.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ferry}\nspec: {controller: ferry.dev/ingress-controller}\n",
    )?;
    let o = run(&["check", "--manifests", tmp.path().to_str().unwrap_or_default()])?;
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("rejected  Ingress default/bad spec.rules[0].host: invalid host `bad..example.com`"),
        "{out}"
    );
    assert!(out.contains("garbage.yaml document 0"), "{out}");
    Ok(())
}

#[test]
fn explain_names_the_winning_rule_backend_endpoints_and_certificate() -> Result<()> {
    let o =
        run(&["explain", "--manifests", &demo(), "--ingress-class", "nginx", "http://demo.example.com/x"])?;
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("WON"), "{out}");
    assert!(out.contains("backend: default/demo-app:80"), "{out}");
    assert!(out.contains("endpoints: 127.0.0.1:8080"), "{out}");

    let json = explain_json("https://webapp.example.com/")?;
    assert_eq!(json["decision"]["ingress"], "default/webapp-ingress-tls");
    assert_eq!(json["backend"], "default/webapp:8080");
    assert_eq!(json["tls"]["certificate"], "default/webapp-tls-secret");
    assert_eq!(json["endpoints"][0], "127.0.0.1:8081");

    let json = explain_json("http://nowhere.example.com/")?;
    assert_eq!(json["decision"]["kind"], "no-route");
    assert_eq!(json["decision"]["status"], 404);

    // The path is routed as the proxy routes it: normalized as nginx normalizes `$uri`.
    let json = explain_json("http://demo.example.com//x/../%61pi")?;
    assert_eq!(json["path"], "/api", "{json}");
    let o = run(&[
        "explain",
        "--manifests",
        &demo(),
        "--ingress-class",
        "nginx",
        "http://demo.example.com/../x",
    ])?;
    assert_clear_error(&o, "400");
    Ok(())
}

/// `explain -o json URL` on the demo manifests, parsed.
fn explain_json(url: &str) -> Result<serde_json::Value> {
    let o = run(&["explain", "--manifests", &demo(), "--ingress-class", "nginx", "-o", "json", url])?;
    Ok(serde_json::from_slice(&o.stdout)?)
}

/// Asserts a failed start: non-zero exit, an `error:` line naming `needle`, no panic.
fn assert_clear_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(err.contains("error: ") && err.contains(needle), "stderr: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "stderr: {err}");
}

#[test]
fn port_in_use_is_one_clear_error() -> Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port().to_string();
    let admin = support::free_port().to_string();
    let https = support::free_port().to_string();
    let o = run(&[
        "--manifests",
        &demo(),
        "--bind-address",
        "127.0.0.1",
        "--http-port",
        &port,
        "--https-port",
        &https,
        "--admin-port",
        &admin,
    ])?;
    assert_clear_error(&o, &format!("--http-port {port}"));
    Ok(())
}

#[test]
fn unreadable_kubeconfig_is_one_clear_error() -> Result<()> {
    let o = run(&["explain", "--kubeconfig", "/nonexistent/kubeconfig", "http://x/"])?;
    assert_clear_error(&o, "/nonexistent/kubeconfig");
    Ok(())
}

#[test]
fn unreachable_api_server_is_one_clear_error() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let port = support::free_port();
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )?;
    let admin = support::free_port().to_string();
    let http = support::free_port().to_string();
    let https = support::free_port().to_string();
    let o = run(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap_or_default(),
        "--bind-address",
        "127.0.0.1",
        "--http-port",
        &http,
        "--https-port",
        &https,
        "--admin-port",
        &admin,
    ])?;
    assert_clear_error(&o, "unreachable");
    Ok(())
}

/// ingress-nginx's own deploy manifest (`deploy/static/provider/cloud/deploy.yaml`, the
/// controller container's `args`), verbatim but for `$(POD_NAMESPACE)`, which Kubernetes
/// expands before the program sees it. The Helm chart's defaults give the same list.
const INGRESS_NGINX_ARGS: [&str; 9] = [
    "/nginx-ingress-controller",
    "--publish-service=ingress-nginx/ingress-nginx-controller",
    "--election-id=ingress-nginx-leader",
    "--controller-class=k8s.io/ingress-nginx",
    "--ingress-class=nginx",
    "--configmap=ingress-nginx/ingress-nginx-controller",
    "--validating-webhook=:8443",
    "--validating-webhook-certificate=/usr/local/certificates/cert",
    "--validating-webhook-key=/usr/local/certificates/key",
];

#[test]
fn ingress_nginx_arguments_start_the_controller() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: k8s.io/ingress-nginx}\n";
    std::fs::write(dir.join("class.yaml"), class)?;
    std::fs::write(
        dir.join("services.yaml"),
        support::services(&[("web", 80, support::echo_backend("web"))]),
    )?;
    std::fs::write(
        dir.join("ingress.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: default}\nspec:\n  ingressClassName: nginx\n  rules:\n  - host: web.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n",
    )?;
    let dir_s = dir.to_str().unwrap_or_default().to_owned();
    // The webhook's files are where the deploy manifest mounts its Secret; here, a certificate
    // made for the test, and a free loopback port instead of every address's 8443.
    let (cert, key) = support::webhook::certificate(tmp.path())?;
    let webhook_port = support::free_port();
    let (listen, cert_arg, key_arg) = (
        format!("--validating-webhook=127.0.0.1:{webhook_port}"),
        format!("--validating-webhook-certificate={cert}"),
        format!("--validating-webhook-key={key}"),
    );
    let mut args: Vec<&str> = INGRESS_NGINX_ARGS
        .iter()
        .map(|a| match a.split('=').next() {
            Some("--validating-webhook") => listen.as_str(),
            Some("--validating-webhook-certificate") => cert_arg.as_str(),
            Some("--validating-webhook-key") => key_arg.as_str(),
            _ => a,
        })
        .collect();
    // klog's verbosity as the Helm chart's `extraArgs` often set it (3: Ferry's debug lines),
    // in Go's single-dash form.
    args.extend(["-v", "3", "--manifests", &dir_s]);
    let c = support::Controller::start(&args, tmp.path())?;
    let r = support::get(c.http, "web.test", "/")?;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "backend=web path=/"),
        "IngressClass of controller k8s.io/ingress-nginx is ours"
    );
    let logs = c.logs();
    assert!(!logs.contains("ingress-nginx flag accepted and not applied"), "every flag applied\n{logs}");
    assert!(logs.contains("DEBUG"), "--v=3 shows Ferry's debug lines\n{logs}");

    // The webhook answers the API server's questions: a good Ingress is allowed, one with a
    // rejected annotation is denied with the reason, one of another class is not looked at.
    let ingress = |annotations: &str, class: &str| {
        serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default", "annotations": serde_json::from_str::<serde_json::Value>(annotations).unwrap_or_default()},
            "spec": {"ingressClassName": class, "rules": [{"host": "web.test", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
        })
    };
    let good = support::webhook::review(webhook_port, &ingress("{}", "nginx")).with_context(|| c.logs())?;
    assert_eq!(good["response"]["allowed"], true, "{good}");
    assert_eq!(good["response"]["uid"], "test-uid");
    let bad = ingress(
        r#"{"nginx.ingress.kubernetes.io/proxy-body-size": "lots", "nginx.ingress.kubernetes.io/proxy-buffer-size": "8k"}"#,
        "nginx",
    );
    let denied = support::webhook::review(webhook_port, &bad)?;
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    let message = denied["response"]["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nginx.ingress.kubernetes.io/proxy-body-size: rejected"), "{denied}");
    let warnings = denied["response"]["warnings"].to_string();
    assert!(warnings.contains("proxy-buffer-size: ignored"), "{denied}");
    let other = support::webhook::review(
        webhook_port,
        &ingress(r#"{"nginx.ingress.kubernetes.io/proxy-body-size": "lots"}"#, "other"),
    )?;
    assert_eq!(other["response"]["allowed"], true, "{other}");
    Ok(())
}

/// ingress-nginx's internal listeners, when asked for: the status port (`/nginx_status` in
/// `stub_status`'s format and the health check path, on the loopback) and the default server
/// port (`404` for everything); `--health-check-path` on the admin port too.
#[test]
fn status_and_default_server_ports_and_the_health_check_path() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    support::demo_manifests(&dir, support::echo_backend("demo"), support::echo_backend("webapp"))?;
    let dir_s = dir.to_str().unwrap_or_default().to_owned();
    let (status, default_server) = (support::free_port(), support::free_port());
    let (status_arg, default_arg) =
        (format!("--status-port={status}"), format!("--default-server-port={default_server}"));
    let c = support::Controller::start(
        &[
            "/nginx-ingress-controller",
            "--manifests",
            &dir_s,
            "--ingress-class=nginx",
            &status_arg,
            &default_arg,
            "--health-check-path=/health",
        ],
        tmp.path(),
    )?;
    assert_eq!(support::get(c.http, "demo.example.com", "/")?.status, 200);
    assert_eq!(support::get(c.admin, "localhost", "/health")?.status, 200, "the health check path");
    assert_eq!(support::get(c.admin, "localhost", "/healthz")?.status, 200);
    assert_eq!(support::get(status, "localhost", "/health")?.status, 200);
    let page = support::get(status, "localhost", "/nginx_status")?;
    assert_eq!(page.status, 200);
    assert!(page.body.starts_with("Active connections: "), "{}", page.body);
    assert!(page.body.contains("\nserver accepts handled requests\n"), "{}", page.body);
    assert!(page.body.contains("Reading: 0 Writing: "), "{}", page.body);
    let other = support::get(default_server, "demo.example.com", "/")?;
    assert_eq!((other.status, other.body.as_str()), (404, "default backend - 404"));
    Ok(())
}
