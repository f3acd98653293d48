//! Create / update / delete of Ingress, Service, EndpointSlice and Secret reach the published
//! table; endpoint-only changes update slots without a new table; bad objects get Warning
//! Events while the rest keeps working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use common::{ApiServer, apply, delete, routed, wait_for};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;

const T: Duration = Duration::from_secs(20);

fn ingress(name: &str, host: &str, service: &str, port: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: ferry\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {port}}}}}}}\n"
    )
}

fn service(name: &str, port: u16, port_name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: {port_name}, port: {port}, protocol: TCP}}]\n"
    )
}

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ferry}\nspec: {controller: ferry.dev/ingress-controller}\n";

fn tls_secret(name: &str, crt: &str, key: &str) -> String {
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(crt),
        indent(key)
    )
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name),
    )
    .unwrap()
}

#[tokio::test]
async fn create_update_delete_reach_the_table() -> Result<()> {
    common::logs();
    let server = ApiServer::shared()?;
    let admin = server.admin().await?;
    let ns = common::namespace(&admin, "crud").await?;
    apply(&admin, &ns, CLASS).await?;
    let controller = ingress_k8s::Controller::start(admin.clone(), common::config(&ns, "crud")).await?;
    let snapshots = controller.snapshots();
    controller.ready().await?;

    // Ingress create, before its Service exists: routed, no endpoints (503), a warning.
    apply(&admin, &ns, &ingress("web", "web.example.com", "web", "{number: 80}")).await?;
    let s =
        wait_for(&snapshots, T, "ingress created", |s| routed(s, "web.example.com", "/").is_some()).await?;
    assert!(routed(&s, "web.example.com", "/").unwrap().is_empty());
    assert!(s.problems.iter().any(|p| p.reason.contains("not found")), "{:?}", s.problems);

    // Service + EndpointSlice create: endpoints appear.
    apply(&admin, &ns, &service("web", 80, "http")).await?;
    apply(&admin, &ns, &common::slice("web-1", "web", "http", 8081, &["127.0.0.1"])).await?;
    let s = wait_for(&snapshots, T, "endpoints", |s| {
        routed(s, "web.example.com", "/").unwrap_or_default() == ["127.0.0.1:8081"]
    })
    .await?;
    assert!(s.problems.is_empty(), "{:?}", s.problems);

    // EndpointSlice update: the slot changes, the table does not (no rebuild).
    let table_before = Arc::clone(&s.table);
    apply(&admin, &ns, &common::slice("web-1", "web", "http", 8082, &["127.0.0.1", "127.0.0.2"])).await?;
    let s = wait_for(&snapshots, T, "slice update", |s| {
        routed(s, "web.example.com", "/").unwrap_or_default() == ["127.0.0.1:8082", "127.0.0.2:8082"]
    })
    .await?;
    assert!(Arc::ptr_eq(&table_before, &s.table), "an endpoint-only change must not rebuild the table");
    assert!(table_before.lookup("web.example.com", "/").unwrap().backend.endpoints().len() == 2);

    // EndpointSlice delete: no endpoints, still routed.
    delete(&admin, &ns, "discovery.k8s.io/v1beta1", "EndpointSlice", "web-1").await?;
    wait_for(&snapshots, T, "slice delete", |s| {
        routed(s, "web.example.com", "/").is_some_and(|e| e.is_empty())
    })
    .await?;
    apply(&admin, &ns, &common::slice("web-1", "web", "http", 8083, &["127.0.0.1"])).await?;
    wait_for(&snapshots, T, "slice back", |s| {
        routed(s, "web.example.com", "/").unwrap_or_default() == ["127.0.0.1:8083"]
    })
    .await?;

    // Service update: port renamed, the Ingress now names a port number the Service lacks.
    apply(&admin, &ns, &service("web", 8080, "http")).await?;
    let s =
        wait_for(&snapshots, T, "service update", |s| routed(s, "web.example.com", "/").is_none()).await?;
    assert!(s.problems.iter().any(|p| p.reason.contains("has no port 80")), "{:?}", s.problems);
    // Ingress update: by port name now.
    apply(&admin, &ns, &ingress("web", "web.example.com", "web", "{name: http}")).await?;
    wait_for(&snapshots, T, "ingress update", |s| {
        routed(s, "web.example.com", "/").unwrap_or_default() == ["127.0.0.1:8083"]
    })
    .await?;

    // Secret create / update / delete.
    let (crt1, key1) = (fixture("web.crt"), fixture("web.key"));
    let tls_ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec:\n  ingressClassName: ferry\n  tls: [{hosts: [web.example.com], secretName: web-tls}]\n  rules:\n  - host: web.example.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}\n";
    apply(&admin, &ns, tls_ingress).await?;
    apply(&admin, &ns, &tls_secret("web-tls", &crt1, &key1)).await?;
    let cert = |s: &ingress_k8s::Snapshot| {
        let e = s.table.tls().certificate_for(Some("web.example.com"))?;
        Some(s.table.tls().material(&e.certificate)?.chain.clone())
    };
    wait_for(&snapshots, T, "secret create", |s| cert(s).as_deref() == Some(crt1.as_str())).await?;
    // Update to a mismatched key: rejected, the host loses its certificate, the route stays.
    apply(&admin, &ns, &tls_secret("web-tls", &crt1, &fixture("other.key"))).await?;
    let s = wait_for(&snapshots, T, "secret update", |s| cert(s).is_none()).await?;
    assert!(
        s.problems.iter().any(|p| p.field == "spec.tls[0].secretName" && p.reason.contains("does not match"))
    );
    assert!(routed(&s, "web.example.com", "/").is_some());
    apply(&admin, &ns, &tls_secret("web-tls", &crt1, &key1)).await?;
    wait_for(&snapshots, T, "secret fixed", |s| cert(s).is_some()).await?;
    delete(&admin, &ns, "v1", "Secret", "web-tls").await?;
    wait_for(&snapshots, T, "secret delete", |s| cert(s).is_none()).await?;

    // Service delete: route kept, no endpoints. Ingress delete: route gone.
    delete(&admin, &ns, "v1", "Service", "web").await?;
    wait_for(&snapshots, T, "service delete", |s| {
        routed(s, "web.example.com", "/").is_some_and(|e| e.is_empty())
    })
    .await?;
    delete(&admin, &ns, "networking.k8s.io/v1", "Ingress", "web").await?;
    wait_for(&snapshots, T, "ingress delete", |s| routed(s, "web.example.com", "/").is_none()).await?;
    controller.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bad_objects_get_warning_events_and_the_rest_keeps_working() -> Result<()> {
    common::logs();
    let server = ApiServer::shared()?;
    let admin = server.admin().await?;
    let ns = common::namespace(&admin, "bad").await?;
    // The fixture's good, missing-service, bad-port, bad-tls Ingresses and their Secrets.
    let objects = fixture("problems/ingresses.yaml").replace("namespace: shop", &format!("namespace: {ns}"));
    let secrets = fixture("problems/secrets.yaml").replace("namespace: shop", &format!("namespace: {ns}"));
    // IngressClasses are cluster-scoped and shared by the tests: keep only the Ingress & co.
    let docs: Vec<&str> = objects.split("\n---\n").filter(|d| !d.contains("kind: IngressClass")).collect();
    apply(&admin, &ns, CLASS).await?;
    apply(
        &admin,
        &ns,
        &docs
            .join("\n---\n")
            .replace("apiVersion: discovery.k8s.io/v1\n", "apiVersion: discovery.k8s.io/v1beta1\n"),
    )
    .await?;
    apply(&admin, &ns, &secrets).await?;

    let controller = ingress_k8s::Controller::start(admin.clone(), common::config(&ns, "bad")).await?;
    let snapshots = controller.snapshots();
    let s = controller.ready().await?;
    // (1.20 drops v1beta1's alpha `terminating` condition, so both endpoints count as ready.)
    assert!(
        routed(&s, "good.example.com", "/").unwrap().contains(&"10.1.0.1:8080".to_owned()),
        "the good Ingress works"
    );
    assert!(routed(&s, "badport.example.com", "/ok").is_some());
    // The annotated Ingress is routed, closed (503), with its applied annotation in force.
    let annotated = s.table.lookup("annotated.example.com", "/").unwrap();
    assert!(annotated.policy.closed.as_deref().unwrap_or_default().contains("auth-tls-secret"));
    assert_eq!(annotated.policy.send_timeout, Some(Duration::from_secs(120)));
    assert_eq!(annotated.policy.read_timeout, None, "the rejected value leaves the default");

    let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
    let warnings = || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .map(|e| (e.regarding.and_then(|r| r.name).unwrap_or_default(), e.note.unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let expected = [
        ("missing-service", "not found; requests get 503"),
        ("bad-port", "has no port named `grpc`"),
        ("bad-tls", "tls.key does not match the certificate"),
        ("bad-tls", "garbage: tls.crt"),
        ("late-duplicate", "duplicate of"),
        (
            "annotated",
            // (The fixture's namespace is renamed here, its annotation's value is not.)
            "metadata.annotations[nginx.ingress.kubernetes.io/auth-tls-secret]: value `shop/client-ca`: a Secret of \
             another namespace is refused (as ingress-nginx refuses it by default); the Ingress's paths answer 503",
        ),
        ("annotated", "proxy-read-timeout]: value `60s`: expected whole seconds"),
        (
            "annotated",
            "proxy-bdy-size]: unknown: not an ingress-nginx annotation (did you mean `proxy-body-size`?)",
        ),
        ("annotated", "configuration-snippet]: ignored: configuration snippets are never supported"),
    ];
    let deadline = std::time::Instant::now() + T;
    loop {
        let got = warnings().await;
        if expected.iter().all(|(n, r)| got.iter().any(|(gn, gr)| gn == n && gr.contains(r))) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "missing warnings; got {got:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Deduplicated: more snapshots (an unrelated change) do not repeat the warnings. (Events are
    // written at 5 a second after a burst of 10: the queue is drained before they are counted.)
    let drained = || async {
        let mut last = warnings().await;
        loop {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let now = warnings().await;
            if now.len() == last.len() {
                return now;
            }
            last = now;
        }
    };
    let before = drained().await;
    apply(&admin, &ns, &ingress("extra", "extra.example.com", "good", "{number: 80}")).await?;
    wait_for(&snapshots, T, "extra", |s| routed(s, "extra.example.com", "/").is_some()).await?;
    let after = drained().await;
    assert_eq!(after.len(), before.len(), "a stuck problem is reported once: {after:#?}");
    let mut distinct = after.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), after.len(), "each problem once: {after:#?}");
    assert!(warnings().await.iter().all(|(n, _)| n != "not-ours"), "other classes are left alone");
    controller.shutdown().await;
    Ok(())
}
