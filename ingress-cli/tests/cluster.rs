//! The binary against a real kube-apiserver: the seed tutorial replayed through the proxy
//! (`extensions/v1beta1` Ingresses, class annotation `nginx`), status, live changes, the
//! ConfigMaps that Ingresses and the controller ConfigMap name (watched by name), and `deploy/`
//! passing server-side dry-run. The propagation latency is in `propagation.rs`.

mod support;

use std::time::Duration;

use anyhow::Result;
use support::cluster::{ApiServer, controller, create, delete, namespace, replace, slice};
use support::{echo_backend, eventually, get, get_tls, head_echo_backend, served_cn};

fn demo_file(name: &str, ns: &str) -> Result<String> {
    let path = format!("{}/../examples/demo/{name}", env!("CARGO_MANIFEST_DIR"));
    Ok(std::fs::read_to_string(path)?.replace("namespace: default", &format!("namespace: {ns}")))
}

/// Only the Service documents of a demo file (its v1 EndpointSlices are not served by 1.20).
fn services_of(text: &str) -> String {
    text.split("\n---\n").filter(|d| d.contains("kind: Service")).collect::<Vec<_>>().join("\n---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_tutorial_through_the_proxy() -> Result<()> {
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-seed").await?;
    let (demo, webapp, demo2) = (echo_backend("demo"), echo_backend("webapp"), echo_backend("demo-v2"));

    // kubectl apply -f demo-app.yaml / ingress-demo.yaml (the tutorial's extensions/v1beta1).
    create(&client, &ns, &services_of(&demo_file("demo-app.yaml", &ns)?)).await?;
    create(&client, &ns, &demo_file("ingress-demo.yaml", &ns)?).await?;
    create(&client, &ns, &slice("demo-app-abc", "demo-app", demo)).await?;
    // The HTTPS part: the tutorial's openssl commands, then `kubectl create secret tls`.
    create(&client, &ns, &services_of(&demo_file("webapp.yaml", &ns)?)).await?;
    create(&client, &ns, &slice("webapp-abc", "webapp", webapp)).await?;
    let tmp = tempfile::tempdir()?;
    let (key, crt) = (tmp.path().join("server.key"), tmp.path().join("server.crt"));
    let openssl = |args: &[&str]| std::process::Command::new("openssl").args(args).output();
    openssl(&["genrsa", "-out", key.to_str().unwrap_or_default(), "2048"])?;
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        key.to_str().unwrap_or_default(),
        "-out",
        crt.to_str().unwrap_or_default(),
        "-subj",
        "/C=US/ST=California/L=SanFrancisco/O=DevOps/CN=webapp.example.com",
    ])?;
    api.kubectl(&[
        "create",
        "secret",
        "tls",
        "webapp-tls-secret",
        "-n",
        &ns,
        &format!("--cert={}", crt.display()),
        &format!("--key={}", key.display()),
    ])?;
    create(&client, &ns, &demo_file("ingress-tls.yaml", &ns)?).await?;

    // The controller as a drop-in for ingress-nginx: class `nginx`, status from an address.
    let c = controller(&api, &ns, "nginx", &["--publish-status-address", "127.0.0.1"])?;

    // curl http://demo.example.com:30080/
    let r = get(c.http, "demo.example.com:30080", "/")?;
    assert_eq!((r.status, r.body.as_str()), (200, "backend=demo path=/"), "{}", c.logs());
    // curl http://<node-ip>:30080/ → default backend - 404
    let r = get(c.http, "10.0.0.1:30080", "/")?;
    assert_eq!((r.status, r.body.as_str()), (404, "default backend - 404"));
    // curl https://webapp.example.com:30443/ -k
    assert_eq!(served_cn(c.https, Some("webapp.example.com"))?, "webapp.example.com");
    let (r, head) = get_tls(c.https, "webapp.example.com", "/")?;
    assert_eq!((r.status, r.body.as_str()), (200, "backend=webapp path=/"));
    assert!(head.contains("\r\nstrict-transport-security: max-age=31536000; includesubdomains"), "{head}");
    // … and over plain HTTP the TLS host is redirected to HTTPS, as ingress-nginx does.
    let r = get(c.http, "webapp.example.com", "/")?;
    assert_eq!(r.status, 308, "{r:?}");
    // kubectl get ingress shows the ADDRESS.
    eventually(Duration::from_secs(20), || {
        let out = api.kubectl(&[
            "get",
            "ingress",
            "-n",
            &ns,
            "demo-ingress",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])?;
        Ok(out.trim() == "127.0.0.1")
    })?;

    // Pods replaced: the EndpointSlice moves to a new backend; traffic follows without a reload.
    replace(&client, &ns, &slice("demo-app-abc", "demo-app", demo2)).await?;
    eventually(Duration::from_secs(10), || {
        Ok(get(c.http, "demo.example.com", "/")?.body.contains("demo-v2"))
    })?;
    // The Ingress is deleted: its host falls to the default backend.
    delete(&client, &ns, &demo_file("ingress-demo.yaml", &ns)?).await?;
    eventually(Duration::from_secs(10), || Ok(get(c.http, "demo.example.com", "/")?.status == 404))?;
    // The Secret is deleted: its host falls back to the default certificate.
    api.kubectl(&["delete", "secret", "webapp-tls-secret", "-n", &ns])?;
    eventually(Duration::from_secs(10), || {
        Ok(served_cn(c.https, Some("webapp.example.com"))? != "webapp.example.com")
    })?;
    Ok(())
}

/// The response head of `GET /` for `host`, lower-cased, and its status.
fn head(port: u16, host: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok((status, raw.to_ascii_lowercase()))
}

/// `custom-headers` and `add-headers` name ConfigMaps, `auth-secret` a Secret, that the
/// controller watches by name: their changes apply live, a deleted one denies the Ingress
/// (`503`, as ingress-nginx), and recreating it opens it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_config_maps_are_watched_and_applied() -> Result<()> {
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-headers").await?;
    let class = ns.clone();
    create(&client, "", &format!("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {class}}}\nspec: {{controller: ferry.dev/ingress-controller}}\n")).await?;
    create(&client, &ns, "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  ports: [{name: http, port: 80, protocol: TCP}]\n").await?;
    create(&client, &ns, &slice("app-1", "app", head_echo_backend("app"))).await?;
    let config_map = |name: &str, data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n{data}")
    };
    create(
        &client,
        &ns,
        &config_map(
            "cfg",
            &format!("  add-headers: {ns}/global\n  global-allowed-response-headers: X-Frame-Options\n"),
        ),
    )
    .await?;
    create(&client, &ns, &config_map("global", "  X-Global: one\n")).await?;
    create(&client, &ns, &config_map("app-headers", "  X-Frame-Options: DENY\n")).await?;
    create(&client, &ns, &format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\n  annotations:\n    nginx.ingress.kubernetes.io/custom-headers: {ns}/app-headers\nspec:\n  ingressClassName: {class}\n  rules:\n  - host: app.test\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n"
    )).await?;
    let cfg = format!("{ns}/cfg");
    let c = controller(&api, &ns, &class, &["--configmap", &cfg])?;

    // Ready means the named ConfigMaps are in: the first request already gets their headers
    // (no start-up window where the Ingress answers 503 for want of them).
    let (status, head_seen) = head(c.http, "app.test")?;
    assert_eq!(status, 200, "{head_seen}\n{}", c.logs());
    assert!(
        head_seen.contains("\r\nx-frame-options: deny") && head_seen.contains("\r\nx-global: one"),
        "{head_seen}"
    );
    // … and the first table was built with them (not a 503 table mended a moment later).
    let logs: String = {
        // Without the terminal colours: `\x1b[…m` sequences.
        let mut plain = String::new();
        let mut rest = c.logs();
        while let Some(at) = rest.find('\x1b') {
            plain.push_str(&rest[..at]);
            rest = rest[at..].split_once('m').map_or(String::new(), |(_, r)| r.to_owned());
        }
        plain + &rest
    };
    let first = logs.lines().find(|l| l.contains("published route table")).unwrap_or_default();
    assert!(first.contains("generation=1") && first.contains("problems=0"), "{first}\n{logs}");
    replace(&client, &ns, &config_map("app-headers", "  X-Frame-Options: SAMEORIGIN\n")).await?;
    replace(&client, &ns, &config_map("global", "  X-Global: two\n")).await?;
    eventually(Duration::from_secs(10), || {
        let (_, head) = head(c.http, "app.test")?;
        Ok(head.contains("\r\nx-frame-options: sameorigin") && head.contains("\r\nx-global: two"))
    })?;
    delete(&client, &ns, &config_map("app-headers", "")).await?;
    eventually(Duration::from_secs(10), || Ok(head(c.http, "app.test")?.0 == 503))?;
    create(&client, &ns, &config_map("app-headers", "  X-Frame-Options: DENY\n")).await?;
    eventually(Duration::from_secs(10), || Ok(head(c.http, "app.test")?.0 == 200))?;

    // auth-secret: an Opaque Secret, read only because an Ingress names it (the Secrets
    // watcher lists TLS Secrets only). Until it exists the Ingress is denied (503).
    create(&client, &ns, &format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: admin\n  annotations:\n    nginx.ingress.kubernetes.io/auth-type: basic\n    nginx.ingress.kubernetes.io/auth-secret: admin-users\nspec:\n  ingressClassName: {class}\n  rules:\n  - host: admin.test\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n"
    )).await?;
    eventually(Duration::from_secs(10), || Ok(head(c.http, "admin.test")?.0 == 503))?;
    let users = "apiVersion: v1\nkind: Secret\nmetadata: {name: admin-users}\ntype: Opaque\nstringData:\n  auth: \"alice:{PLAIN}s3cret\"\n";
    create(&client, &ns, users).await?;
    eventually(Duration::from_secs(10), || Ok(head(c.http, "admin.test")?.0 == 401))?;
    delete(&client, &ns, users).await?;
    eventually(Duration::from_secs(10), || Ok(head(c.http, "admin.test")?.0 == 503))?;
    Ok(())
}

/// API write acknowledged → first request routed accordingly, over 120 changes (Ingress
/// create and delete, EndpointSlice update) with 1,000 unrelated Ingresses present. Prints the
/// figures; asserts only that every change arrives (this is a benchmark, not a timed test).
#[test]
fn deploy_manifests_pass_server_side_dry_run() -> Result<()> {
    let api = ApiServer::ensure()?;
    // Namespaced objects are validated in their namespace, so it must exist (a dry run does not
    // create it).
    let _ = api.kubectl(&["create", "namespace", "ingress-ferry"]);
    let root = format!("{}/../deploy", env!("CARGO_MANIFEST_DIR"));
    let base = api.kubectl(&["apply", "--dry-run=server", "-k", &root])?;
    for expected in [
        "serviceaccount/ingress-ferry",
        "clusterrole.rbac.authorization.k8s.io/ingress-ferry",
        "role.rbac.authorization.k8s.io/ingress-ferry",
        "configmap/ferry-configuration",
        "service/ingress-ferry",
        "deployment.apps/ingress-ferry",
        "ingressclass.networking.k8s.io/ferry",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/ingress-ferry-admission",
        "service/ingress-ferry-admission",
        "job.batch/ingress-ferry-admission-certificate",
    ] {
        assert!(base.contains(expected), "{expected} missing from:\n{base}");
    }
    let host = api.kubectl(&["apply", "--dry-run=server", "-k", &format!("{root}/hostnetwork")])?;
    assert!(host.contains("daemonset.apps/ingress-ferry"), "{host}");
    assert!(!host.contains("deployment.apps"), "the overlay replaces the Deployment:\n{host}");
    let rendered = api.kubectl(&["kustomize", &format!("{root}/hostnetwork")])?;
    for needle in [
        "hostNetwork: true",
        "dnsPolicy: ClusterFirstWithHostNet",
        "NET_BIND_SERVICE",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
    ] {
        assert!(rendered.contains(needle), "{needle} missing from the DaemonSet");
    }
    Ok(())
}
