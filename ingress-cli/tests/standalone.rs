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
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: nginx\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
        )
    };
    let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: ferry.dev/ingress-controller}\n";
    std::fs::write(dir.join("class.yaml"), class)?;
    std::fs::write(dir.join("a.yaml"), ingress("a", "a.example.com", "one"))?;
    let c = start(&dir, &[])?;
    assert_eq!(get(c.http, "a.example.com", "/")?.body, "backend=one path=/");

    // A new file, and an edit, reach the proxy without a restart.
    std::fs::write(dir.join("b.yaml"), ingress("b", "b.example.com", "two"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "b.example.com", "/")?.status == 200))?;
    std::fs::write(dir.join("a.yaml"), ingress("a", "a.example.com", "two"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "a.example.com", "/")?.body.contains("two")))?;

    // A file that does not parse is reported and its previous content stays in force.
    std::fs::write(dir.join("b.yaml"), "apiVersion: networking.k8s.io/v1\nkind: Ingress\nspec: [unclosed\n")?;
    eventually(Duration::from_secs(10), || Ok(c.logs().contains("b.yaml")))?;
    assert_eq!(get(c.http, "b.example.com", "/")?.status, 200, "b's last good content stays");
    assert_eq!(get(c.http, "a.example.com", "/")?.status, 200, "other files keep working");

    // Deleting a file removes its routes.
    std::fs::remove_file(dir.join("b.yaml"))?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "b.example.com", "/")?.status == 404))?;
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
