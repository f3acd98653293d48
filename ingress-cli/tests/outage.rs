//! The API server goes away while traffic flows (a private instance): the binary keeps serving
//! its last table without one failed request, `/readyz` stays up, and once the API server is
//! back the feed catches up without a restart, including a deletion made behind its back and
//! compacted away, which only a re-list after `410 Gone` can reveal.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use support::cluster::{ApiServer, controller, create, namespace, replace, slice};
use support::{echo_backend, eventually, get};

fn ingress(class: &str, name: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: {class}\n  rules:\n  - host: {name}.example.com\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n"
    )
}

/// Posts `body` to etcd's JSON gateway at `path`; the reply.
fn etcd(url: &str, path: &str, body: &str) -> Result<serde_json::Value> {
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("{url}{path}"), "-d", body])
        .output()
        .context("curl")?;
    ensure!(out.status.success(), "etcd {path} failed");
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Deletes a key straight from etcd, behind the API server's back, then compacts history up to
/// that revision, so no watch can resume from before it: every watch gets `410 Gone`.
fn delete_behind_its_back(url: &str, key: &str) -> Result<()> {
    use openssl::base64::encode_block;
    let reply =
        etcd(url, "/v3/kv/deleterange", &format!("{{\"key\":\"{}\"}}", encode_block(key.as_bytes())))?;
    ensure!(reply["deleted"] == "1", "nothing deleted: {reply}");
    let revision = reply["header"]["revision"].as_str().unwrap_or("0").to_owned();
    etcd(url, "/v3/kv/compaction", &format!("{{\"revision\":\"{revision}\",\"physical\":true}}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_outage_under_traffic() -> Result<()> {
    let api = ApiServer::own("cli-outage", [23793, 23803, 26446])?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-outage").await?;
    let class = ns.clone();
    create(&client, "", &format!("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {class}}}\nspec: {{controller: ferry.dev/ingress-controller}}\n")).await?;
    let (a, b) = (echo_backend("a"), echo_backend("b"));
    create(&client, &ns, "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  ports: [{name: http, port: 80, protocol: TCP}]\n").await?;
    create(&client, &ns, &slice("app-1", "app", a)).await?;
    create(&client, &ns, &ingress(&class, "kept")).await?;
    create(&client, &ns, &ingress(&class, "doomed")).await?;
    let c = controller(&api, &ns, &class, &["--access-log", "off"])?;
    eventually(Duration::from_secs(30), || Ok(get(c.http, "doomed.example.com", "/")?.status == 200))
        .with_context(|| c.logs())?;

    // Traffic and readiness probes for the whole outage.
    let running = Arc::new(AtomicBool::new(true));
    let (requests, failed, probes, unready) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let traffic = {
        let (running, requests, failed, probes, unready) = (
            Arc::clone(&running),
            Arc::clone(&requests),
            Arc::clone(&failed),
            Arc::clone(&probes),
            Arc::clone(&unready),
        );
        let (http, admin) = (c.http, c.admin);
        std::thread::spawn(move || {
            let mut last_probe = Instant::now();
            while running.load(Ordering::Relaxed) {
                requests.fetch_add(1, Ordering::Relaxed);
                if !get(http, "kept.example.com", "/")
                    .is_ok_and(|r| r.status == 200 && r.body.starts_with("backend="))
                {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                if last_probe.elapsed() >= Duration::from_millis(50) {
                    last_probe = Instant::now();
                    probes.fetch_add(1, Ordering::Relaxed);
                    if !get(admin, "localhost", "/readyz").is_ok_and(|r| r.status == 200) {
                        unready.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    api.stop_apiserver()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    delete_behind_its_back(&api.env["FERRY_ETCD_URL"], &format!("/registry/ingress/{ns}/doomed"))?;
    api.start_apiserver()?;
    let back = Instant::now();
    // Changes made once it is back apply, and the deletion it never saw as an event is found.
    create(&client, &ns, &ingress(&class, "fresh")).await?;
    replace(&client, &ns, &slice("app-1", "app", b)).await?;
    eventually(Duration::from_secs(30), || {
        Ok(get(c.http, "fresh.example.com", "/")?.body.starts_with("backend=b")
            && get(c.http, "doomed.example.com", "/")?.status == 404)
    })
    .with_context(|| c.logs())?;
    let caught_up = back.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Relaxed);
    traffic.join().map_err(|_| anyhow::anyhow!("traffic thread panicked"))?;

    let (requests, failed, probes, unready) = (
        requests.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        probes.load(Ordering::Relaxed),
        unready.load(Ordering::Relaxed),
    );
    println!(
        "API server outage: {requests} requests, {failed} failed; {probes} readiness probes, {unready} not ready; caught up {caught_up:.2?} after the API server was back"
    );
    assert_eq!(failed, 0, "no request fails while the API server is away\n{}", c.logs());
    assert_eq!(unready, 0, "readiness stays up");
    assert!(requests > 100, "traffic flowed throughout: {requests} requests");
    Ok(())
}
