//! Propagation latency through the proxy, against the real kube-apiserver: API write
//! acknowledged → first request routed, for every kind of change, with many unrelated Ingresses
//! present. `benches/propagation.sh` runs it with the release binary, at 1,000 Ingresses or at
//! issue 15's scale (`SCALE=1`: 10,000 Ingresses × 10 paths, 10,000 Services and
//! EndpointSlices, 1,000 TLS Secrets).
//!
//! `FERRY_PROPAGATION_INGRESSES` (default 1,000) and `FERRY_PROPAGATION_PATHS` (default 1; more
//! gives each unrelated Ingress a Service and EndpointSlice of its own, and every tenth a TLS
//! Secret) set the size; `FERRY_PROPAGATION_ROUNDS` multiplies the rounds of each change.
//! `FERRY_PROPAGATION_STATUS=1` has the controller write every Ingress's status (a new
//! address), which it does while the changes are measured, as on a first start after
//! ingress-nginx.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use support::cluster::{ApiServer, controller, create, delete, namespace, replace, slice};
use support::{Controller, echo_backend, eventually, get, served_cn};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Waits (polling the proxy every millisecond) until `done` holds; returns the time taken.
fn until(t0: Instant, mut done: impl FnMut() -> bool) -> Result<Duration> {
    while t0.elapsed() < Duration::from_secs(10) {
        if done() {
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    anyhow::bail!("change did not reach the proxy within 10 s")
}

/// A self-signed certificate and key for `cn`, PEM: RSA-2048, or (`ec`) ECDSA P-256.
fn certificate(cn: &str, ec: bool) -> Result<(String, String)> {
    use openssl::{
        asn1::Asn1Time, ec::EcGroup, ec::EcKey, hash::MessageDigest, nid::Nid, pkey::PKey, rsa::Rsa, x509,
    };
    let key = if ec {
        PKey::from_ec_key(EcKey::generate(&*EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?)?)?
    } else {
        PKey::from_rsa(Rsa::generate(2048)?)?
    };
    let mut name = x509::X509NameBuilder::new()?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut b = x509::X509Builder::new()?;
    b.set_version(2)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*Asn1Time::days_from_now(30)?)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((String::from_utf8(b.build().to_pem()?)?, String::from_utf8(key.private_key_to_pem_pkcs8()?)?))
}

fn tls_secret(name: &str, (crt, key): &(String, String)) -> String {
    use openssl::base64::encode_block;
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\ndata: {{tls.crt: {}, tls.key: {}}}\n",
        encode_block(crt.as_bytes()),
        encode_block(key.as_bytes())
    )
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80, protocol: TCP}}]\n"
    )
}

/// An Ingress of class `class` for `host`: `paths` paths (`/`, `/p1`, …) to `service`, and TLS
/// with `secret`.
fn ingress(class: &str, name: &str, host: &str, service: &str, paths: usize, secret: Option<&str>) -> String {
    let mut yaml = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: {class}\n"
    );
    if let Some(secret) = secret {
        yaml.push_str(&format!("  tls:\n  - hosts: [{host}]\n    secretName: {secret}\n"));
    }
    yaml.push_str(&format!("  rules:\n  - host: {host}\n    http:\n      paths:\n"));
    for j in 0..paths.max(1) {
        let path = if j == 0 { "/".to_owned() } else { format!("/p{j}") };
        yaml.push_str(&format!(
            "      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}\n"
        ));
    }
    yaml
}

/// Writes `docs` 50 at a time.
async fn create_all(client: &kube::Client, ns: &str, docs: Vec<String>) -> Result<()> {
    for chunk in docs.chunks(50) {
        let writes = chunk.iter().map(|yaml| create(client, ns, yaml));
        for r in futures_util::future::join_all(writes).await {
            r?;
        }
    }
    Ok(())
}

/// The controller's resident memory, MiB.
fn rss_mib(c: &Controller) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.child.id())).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_latency_through_the_proxy() -> Result<()> {
    let (n, paths, rounds) = (
        env("FERRY_PROPAGATION_INGRESSES", 1000),
        env("FERRY_PROPAGATION_PATHS", 1),
        env("FERRY_PROPAGATION_ROUNDS", 1),
    );
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-latency").await?;
    let class = ns.clone();
    create(&client, "", &format!("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {class}}}\nspec: {{controller: ferry.dev/ingress-controller}}\n")).await?;
    let (a, b) = (echo_backend("a"), echo_backend("b"));
    create(&client, &ns, &service("app")).await?;
    create(&client, &ns, &slice("app-1", "app", a)).await?;
    create(&client, &ns, &service("app-b")).await?;
    create(&client, &ns, &slice("app-b-1", "app-b", b)).await?;
    let (one, two) = (certificate("one.example.com", false)?, certificate("two.example.com", false)?);
    // The same pair with ECDSA keys: a poll's TLS handshake costs the proxy an RSA-2048 signature
    // (milliseconds on a loaded 2-core machine) or a P-256 one (a tenth of that), and every
    // sample includes its first successful poll. Both are reported.
    let (one_ec, two_ec) = (certificate("one.example.com", true)?, certificate("two.example.com", true)?);

    // The unrelated objects.
    let started = Instant::now();
    let own = paths > 1;
    if own {
        let nowhere: std::net::SocketAddr = "127.0.0.2:9".parse()?;
        let mut docs = Vec::new();
        for i in 0..n {
            docs.push(service(&format!("web-{i}")));
            docs.push(slice(&format!("web-{i}-1"), &format!("web-{i}"), nowhere));
            if i % 10 == 0 {
                docs.push(tls_secret(&format!("tls-{i}"), &one));
            }
        }
        create_all(&client, &ns, docs).await?;
    }
    let bulk = (0..n)
        .map(|i| {
            let service = if own { format!("web-{i}") } else { "app".to_owned() };
            let secret = (own && i % 10 == 0).then(|| format!("tls-{i}"));
            let host = format!("bulk-{i}.example.com");
            ingress(&class, &format!("bulk-{i}"), &host, &service, paths, secret.as_deref())
        })
        .collect();
    create_all(&client, &ns, bulk).await?;
    let written = started.elapsed();

    let started = Instant::now();
    let status = env("FERRY_PROPAGATION_STATUS", 0) == 1;
    let address = "192.0.2.10";
    let args: &[&str] = if status {
        &["--access-log", "off", "--publish-status-address", address]
    } else {
        &["--access-log", "off", "--update-status", "false"]
    };
    let c = controller(&api, &ns, &class, args)?;
    let ready = started.elapsed();
    let last = format!("bulk-{}.example.com", n - 1);
    // Routed (with their own Services, the unrelated endpoints listen nowhere: 502, not 404).
    eventually(Duration::from_secs(60), || Ok(get(c.http, &last, "/")?.status != 404))
        .with_context(|| c.logs())?;
    let rss_start = rss_mib(&c);

    // Objects the Service and Secret changes act on: an Ingress naming a Service not created
    // yet (503), and a TLS Ingress whose Secret is replaced.
    create(&client, &ns, &tls_secret("probe-tls", &one)).await?;
    create(&client, &ns, &ingress(&class, "tls-probe", "tls-probe.example.com", "app", 1, Some("probe-tls")))
        .await?;
    for i in 0..10 * rounds {
        create(&client, &ns, &slice(&format!("late-{i}-1"), &format!("late-{i}"), a)).await?;
        let host = format!("late-{i}.example.com");
        create(&client, &ns, &ingress(&class, &format!("late-{i}"), &host, &format!("late-{i}"), 1, None))
            .await?;
    }
    eventually(Duration::from_secs(30), || {
        Ok(served_cn(c.https, Some("tls-probe.example.com"))? == "one.example.com")
    })?;

    let mut kinds: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut creates = Vec::new();
    for i in 0..50 * rounds {
        let host = format!("probe-{i}.example.com");
        create(&client, &ns, &ingress(&class, &format!("probe-{i}"), &host, "app", 1, None)).await?;
        let t0 = Instant::now();
        creates.push(until(t0, || get(c.http, &host, "/").is_ok_and(|r| r.status == 200))?);
    }
    kinds.push(("Ingress create", creates));
    let mut updates = Vec::new();
    for i in 0..20 * rounds {
        let host = format!("probe-{i}.example.com");
        replace(&client, &ns, &ingress(&class, &format!("probe-{i}"), &host, "app-b", 1, None)).await?;
        let t0 = Instant::now();
        updates.push(until(t0, || get(c.http, &host, "/").is_ok_and(|r| r.body.starts_with("backend=b")))?);
    }
    kinds.push(("Ingress update", updates));
    let mut deletes = Vec::new();
    for i in 0..40 * rounds {
        let host = format!("probe-{i}.example.com");
        delete(&client, &ns, &ingress(&class, &format!("probe-{i}"), &host, "app", 1, None)).await?;
        let t0 = Instant::now();
        deletes.push(until(t0, || get(c.http, &host, "/").is_ok_and(|r| r.status == 404))?);
    }
    kinds.push(("Ingress delete", deletes));
    // A probe the deletes left (they took the first 40 of every 50): the endpoint changes below
    // are seen through it.
    let survivor = format!("probe-{}.example.com", 45 * rounds);
    let mut services = Vec::new();
    for i in 0..10 * rounds {
        create(&client, &ns, &service(&format!("late-{i}"))).await?;
        let t0 = Instant::now();
        let host = format!("late-{i}.example.com");
        services.push(until(t0, || get(c.http, &host, "/").is_ok_and(|r| r.status == 200))?);
    }
    kinds.push(("Service create", services));
    for (what, one, two) in
        [("Secret update (RSA-2048)", &one, &two), ("Secret update (P-256)", &one_ec, &two_ec)]
    {
        let mut secrets = Vec::new();
        for i in 0..10 * rounds {
            let (pem, cn) = if i % 2 == 0 { (two, "two.example.com") } else { (one, "one.example.com") };
            replace(&client, &ns, &tls_secret("probe-tls", pem)).await?;
            let t0 = Instant::now();
            secrets.push(until(t0, || {
                served_cn(c.https, Some("tls-probe.example.com")).is_ok_and(|s| s == cn)
            })?);
        }
        kinds.push((what, secrets));
    }
    let mut slices = Vec::new();
    for i in 0..30 * rounds {
        let (to, name) = if i % 2 == 0 { (b, "backend=b") } else { (a, "backend=a") };
        replace(&client, &ns, &slice("app-1", "app", to)).await?;
        let t0 = Instant::now();
        slices.push(until(t0, || get(c.http, &survivor, "/").is_ok_and(|r| r.body.starts_with(name)))?);
    }
    kinds.push(("EndpointSlice update", slices));
    // An endpoint change that lands right after an Ingress change (which builds a table).
    let mut after = Vec::new();
    for i in 0..20 * rounds {
        let (to, name) = if i % 2 == 0 { (b, "backend=b") } else { (a, "backend=a") };
        let host = format!("after-{i}.example.com");
        create(&client, &ns, &ingress(&class, &format!("after-{i}"), &host, "app", 1, None)).await?;
        replace(&client, &ns, &slice("app-1", "app", to)).await?;
        let t0 = Instant::now();
        after.push(until(t0, || get(c.http, &survivor, "/").is_ok_and(|r| r.body.starts_with(name)))?);
    }
    kinds.push(("EndpointSlice after Ingress", after));
    let rss_end = rss_mib(&c);
    let measured = started.elapsed();
    // The changes above leave the cluster with more than it started with (probes, `after-`
    // and `late-` Ingresses, each with the request series its polls made). Deleting them again
    // gives RSS with the cluster as it was at start: what growth across changes is left.
    let mut made = vec![
        ingress(&class, "tls-probe", "tls-probe.example.com", "app", 1, None),
        tls_secret("probe-tls", &one),
    ];
    let mut hosts = vec!["tls-probe.example.com".to_owned()];
    for (prefix, range) in
        [("probe", 40 * rounds..50 * rounds), ("after", 0..20 * rounds), ("late", 0..10 * rounds)]
    {
        for i in range {
            let host = format!("{prefix}-{i}.example.com");
            made.push(ingress(&class, &format!("{prefix}-{i}"), &host, "app", 1, None));
            if prefix == "late" {
                made.push(service(&format!("late-{i}")));
                made.push(slice(&format!("late-{i}-1"), &format!("late-{i}"), a));
            }
            hosts.push(host);
        }
    }
    for chunk in made.chunks(50) {
        for r in futures_util::future::join_all(chunk.iter().map(|yaml| delete(&client, &ns, yaml))).await {
            r?;
        }
    }
    for host in &hosts {
        eventually(Duration::from_secs(30), || Ok(get(c.http, host, "/")?.status == 404))?;
    }
    // The feed's threads give memory back once idle (`ingress-cli/src/alloc.rs`).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_clean = rss_mib(&c);
    let exposition = get(c.admin, "localhost", "/metrics")?.body;
    let statuses = if status {
        let api: kube::Api<k8s_openapi::api::networking::v1::Ingress> =
            kube::Api::namespaced(client.clone(), &ns);
        let list = api.list(&Default::default()).await?;
        let written = list
            .items
            .iter()
            .filter(|i| {
                let lb =
                    i.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
                lb.is_some_and(|e| e.iter().any(|e| e.ip.as_deref() == Some(address)))
            })
            .count();
        format!(
            "{written} of {} Ingresses had their status written {measured:.0?} after start",
            list.items.len()
        )
    } else {
        "not written (--update-status false)".to_owned()
    };

    let mut all: Vec<Duration> = kinds.iter().flat_map(|(_, l)| l.iter().copied()).collect();
    let build = if std::env::var("FERRY_CONTROLLER_BIN").is_ok() { "release" } else { "debug" };
    println!(
        "propagation through the proxy ({build} build, API write acknowledged → first request routed), {n} unrelated Ingresses × {} paths{}:",
        paths.max(1),
        if own {
            format!(", {n} Services and EndpointSlices, {} TLS Secrets", n.div_ceil(10))
        } else {
            String::new()
        }
    );
    println!(
        "  setup: objects written in {written:.1?}; controller ready in {ready:.2?}; RSS {rss_start:.1} MiB after start, {rss_end:.1} MiB after the {} changes, {rss_clean:.1} MiB once the {} objects they made were deleted again (the cluster as at start)",
        all.len(),
        made.len()
    );
    println!(
        "  metrics once they were deleted: {} series, {} bytes of /metrics",
        exposition.lines().filter(|l| !l.starts_with('#')).count(),
        exposition.len()
    );
    println!("  status: {statuses}");
    kinds.push(("all", std::mem::take(&mut all)));
    for (what, list) in &mut kinds {
        list.sort();
        println!(
            "  {what:<28} n={:<4} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
            list.len(),
            percentile(list, 0.5),
            percentile(list, 0.99),
            percentile(list, 1.0)
        );
    }
    Ok(())
}
