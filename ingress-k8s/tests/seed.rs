//! The seed tutorial replayed against the real API server: its `extensions/v1beta1` demo and
//! webapp TLS example, with the controller run as class `nginx`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{ApiServer, apply, routed, wait_for};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};

const T: Duration = Duration::from_secs(20);

/// Makes the seed's key and certificate the way it does, with the `openssl` command.
fn seed_certificate(dir: &std::path::Path) -> (String, String) {
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(status.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&status.stderr));
    };
    run(&["genrsa", "-out", "server.key", "2048"]);
    run(&[
        "req",
        "-new",
        "-x509",
        "-key",
        "server.key",
        "-out",
        "server.crt",
        "-subj",
        "/C=US/ST=California/L=SanFrancisco/O=DevOps/CN=webapp.example.com",
    ]);
    (
        std::fs::read_to_string(dir.join("server.crt")).unwrap(),
        std::fs::read_to_string(dir.join("server.key")).unwrap(),
    )
}

#[tokio::test]
async fn seed_tutorial_replayed() -> Result<()> {
    common::logs();
    let server = ApiServer::shared()?;
    let admin = server.admin().await?;
    let ns = common::namespace(&admin, "seed").await?;
    let backend = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = backend.local_addr()?.port();

    // The seed's demo-app Service and extensions/v1beta1 demo-ingress, verbatim but for the
    // namespace; the EndpointSlice the endpoint controller would have made, to a local backend.
    let demo = format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: demo-app
  namespace: {ns}
spec:
  selector:
    app: demo
    version: stable
  ports:
  - name: http
    targetPort: 80
    port: 80
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: demo-ingress
  namespace: {ns}
  annotations:
    kubernetes.io/ingress.class: "nginx"
spec:
  rules:
  - host: demo.example.com
    http:
      paths:
      - path: /
        backend:
          serviceName: demo-app
          servicePort: 80
---
{}"#,
        common::slice("demo-app-x1", "demo-app", "http", port, &["127.0.0.1"])
    );
    apply(&admin, &ns, &demo).await?;

    let config = ingress_k8s::Config {
        ingress_class: "nginx".into(),
        publish_status_address: vec!["192.0.2.10".into()],
        ..common::config(&ns, "seed-controller")
    };
    let controller = ingress_k8s::Controller::start(admin.clone(), config).await?;
    let first = controller.ready().await?;
    // The initial sync is complete before the first publish: the demo is already there.
    assert_eq!(routed(&first, "demo.example.com", "/").unwrap(), [format!("127.0.0.1:{port}")]);
    assert!(routed(&first, "unknown.example.com", "/").is_none(), "unknown host: default backend 404");

    // HTTPS: the webapp Service, the secret made with openssl, the TLS Ingress.
    let dir = std::env::temp_dir().join(format!("ferry-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (crt, key) = seed_certificate(&dir);
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let webapp = format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: webapp
  namespace: {ns}
spec:
  selector:
    app: webapp
    environment: production
  ports:
  - name: http
    targetPort: 8080
    port: 8080
  - name: ajp
    targetPort: 8009
    port: 8009
---
apiVersion: v1
kind: Secret
metadata:
  name: webapp-tls-secret
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}---
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: webapp-ingress-tls
  namespace: {ns}
  annotations:
    kubernetes.io/ingress.class: "nginx"
spec:
  tls:
  - hosts:
    - webapp.example.com
    secretName: webapp-tls-secret
  rules:
  - host: webapp.example.com
    http:
      paths:
      - path: /
        backend:
          serviceName: webapp
          servicePort: 8080
---
{}"#,
        indent(&crt),
        indent(&key),
        common::slice("webapp-x1", "webapp", "http", port, &["127.0.0.1"])
    );
    apply(&admin, &ns, &webapp).await?;
    let want = vec![format!("127.0.0.1:{port}")];
    let snapshot = wait_for(&controller.snapshots(), T, "webapp TLS and endpoints", |s| {
        s.table
            .tls()
            .certificate_for(Some("webapp.example.com"))
            .is_some_and(|e| e.certificate.name == "webapp-tls-secret")
            && routed(s, "webapp.example.com", "/").as_ref() == Some(&want)
    })
    .await?;
    let entry = snapshot.table.tls().certificate_for(Some("webapp.example.com")).unwrap();
    let pem = snapshot.table.tls().material(&entry.certificate).unwrap();
    assert_eq!(pem.chain, crt, "SNI webapp.example.com gets the seed's certificate");
    assert_eq!(routed(&snapshot, "webapp.example.com", "/").unwrap(), [format!("127.0.0.1:{port}")]);
    assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);

    // `kubectl get ingress` shows the ADDRESS: the leader wrote status (read back as v1beta1).
    let legacy = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("extensions", "v1beta1", "Ingress"),
        "ingresses",
    );
    let ingresses: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns, &legacy);
    let deadline = std::time::Instant::now() + T;
    loop {
        let demo = ingresses.get("demo-ingress").await?;
        if demo.data["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.10" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no status address: {:?}", demo.data["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A Normal Sync event on the first apply.
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
    let deadline = std::time::Instant::now() + T;
    loop {
        let list = events.list(&ListParams::default()).await?;
        let synced = list.items.iter().any(|e| {
            e.reason.as_deref() == Some("Sync")
                && e.type_.as_deref() == Some("Normal")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("demo-ingress")
        });
        if synced {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no Sync event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    controller.shutdown().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
