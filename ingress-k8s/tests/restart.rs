//! The API server restarted mid-run (on a private instance): the last configuration stays
//! published while it is down, and the controller catches up after reconnecting — including a
//! deletion it never saw as an event, which only a re-list after the expired watch (410 Gone,
//! "too old resource version") can reveal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::{ApiServer, apply, routed, wait_for};

const T: Duration = Duration::from_secs(60);
const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ferry}\nspec: {controller: ferry.dev/ingress-controller}\n";

fn ingress(name: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: ferry\n  rules:\n  - host: {name}.example.com\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n"
    )
}

/// Deletes a key straight from etcd (through its JSON gateway), behind the API server's back.
fn etcd_delete(etcd: &str, key: &str) -> Result<()> {
    use openssl::base64::encode_block;
    let body = format!("{{\"key\":\"{}\"}}", encode_block(key.as_bytes()));
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("{etcd}/v3/kv/deleterange"), "-d", &body])
        .output()?;
    ensure!(out.status.success(), "etcd delete failed");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(reply["deleted"] == "1", "nothing deleted: {reply}");
    // Compact history up to now, so no watch can resume from before the deletion: the
    // controller's watches must be answered 410 Gone and re-list.
    let revision = reply["header"]["revision"].as_str().unwrap_or("0");
    let body = format!("{{\"revision\":\"{revision}\",\"physical\":true}}");
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("{etcd}/v3/kv/compaction"), "-d", &body])
        .output()?;
    ensure!(out.status.success(), "etcd compaction failed");
    Ok(())
}

#[tokio::test]
async fn apiserver_restart_keeps_config_and_catches_up() -> Result<()> {
    common::logs();
    let server = ApiServer::own("restart", [23791, 23801, 26444])?;
    let admin = server.admin().await?;
    let ns = common::namespace(&admin, "restart").await?;
    apply(&admin, &ns, CLASS).await?;
    apply(&admin, &ns, "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  ports: [{name: http, port: 80, protocol: TCP}]\n").await?;
    apply(&admin, &ns, &common::slice("app-1", "app", "http", 9001, &["127.0.0.1"])).await?;
    apply(&admin, &ns, &ingress("kept")).await?;
    apply(&admin, &ns, &ingress("doomed")).await?;

    let controller = ingress_k8s::Controller::start(admin.clone(), common::config(&ns, "restart")).await?;
    let snapshots = controller.snapshots();
    let s = controller.ready().await?;
    assert!(routed(&s, "kept.example.com", "/").is_some() && routed(&s, "doomed.example.com", "/").is_some());

    server.stop_apiserver()?;
    // Down: the last good configuration stays published.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = controller.current().unwrap();
    assert_eq!(routed(&s, "kept.example.com", "/").unwrap(), ["127.0.0.1:9001"]);
    assert!(routed(&s, "doomed.example.com", "/").is_some());
    // A deletion no watch will ever report as an event.
    etcd_delete(&server.env["FERRY_ETCD_URL"], &format!("/registry/ingress/{ns}/doomed"))?;
    server.start_apiserver()?;

    // Back: new changes arrive, and the missed deletion is caught by the re-list.
    apply(&admin, &ns, &ingress("fresh")).await?;
    apply(&admin, &ns, &common::slice("app-1", "app", "http", 9002, &["127.0.0.1"])).await?;
    let s = wait_for(&snapshots, T, "catch-up after restart", |s| {
        routed(s, "fresh.example.com", "/").is_some_and(|e| e == ["127.0.0.1:9002"])
            && routed(s, "doomed.example.com", "/").is_none()
    })
    .await?;
    assert!(routed(&s, "kept.example.com", "/").is_some());
    assert!(s.relists > 0, "the watchers re-listed");
    controller.shutdown().await;
    Ok(())
}
