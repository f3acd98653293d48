//! Churn under load, against the real kube-apiserver: wrk keeps keep-alive connections busy
//! through the proxy, first alone, then while unrelated Ingresses, Services and EndpointSlices
//! change (and the served Service's second endpoint goes in and out of the ready set), with
//! WebSocket connections open across it all. No request may fail, every WebSocket must
//! survive, and pooled connections to the endpoint that stayed ready are kept. The latency of
//! both runs is printed side by side: `benches/churn.sh` runs it at issue 15's size (1,000
//! connections, 100 changes per second, 60 s, 200 WebSockets) with the release binary.
//!
//! `FERRY_CHURN_SECONDS` (default 3), `FERRY_CHURN_CONNECTIONS` (50), `FERRY_CHURN_RATE` (changes
//! per second, 50), `FERRY_CHURN_WEBSOCKETS` (20); `FERRY_CHURN_CONTROL=1` writes as many
//! ConfigMaps nothing watches instead (the API server's share of the machine, alone).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use support::cluster::{ApiServer, controller, create, delete, namespace, replace};
use support::{eventually, get};
use tokio_tungstenite::tungstenite::Message;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A keep-alive HTTP backend on `addr` answering `200 backend=<name>` to every request;
/// counts the connections it accepted.
fn counting_backend(addr: SocketAddr, name: &'static str) -> Result<(SocketAddr, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::Relaxed);
            std::thread::spawn(move || {
                let Ok(mut out) = stream.try_clone() else { return };
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let body = format!("backend={name}");
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            let reply =
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                            if out.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    Ok((addr, accepted))
}

/// A WebSocket echo backend.
async fn websocket_backend() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() || ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open_websocket(port: u16) -> Result<Ws> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = "ws://ws.example.com/ws".into_client_request()?;
    let (ws, response) = tokio_tungstenite::client_async(request, tcp).await?;
    ensure!(response.status() == 101, "upgrade refused: {}", response.status());
    Ok(ws)
}

async fn echoes(ws: &mut Ws, text: &str) -> bool {
    if ws.send(Message::text(text)).await.is_err() {
        return false;
    }
    matches!(tokio::time::timeout(Duration::from_secs(5), ws.next()).await, Ok(Some(Ok(m))) if m == Message::text(text))
}

/// An EndpointSlice of `service` (port `http`) with `ready` and `other` (ready or not).
fn slice(name: &str, service: &str, ready: SocketAddr, other: SocketAddr, other_ready: bool) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nports: [{{name: http, port: {}, protocol: TCP}}]\nendpoints:\n- {{addresses: [\"{}\"], conditions: {{ready: true}}}}\n- {{addresses: [\"{}\"], conditions: {{ready: {other_ready}}}}}\n",
        ready.port(),
        ready.ip(),
        other.ip(),
    )
}

fn service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: {port}, protocol: TCP}}]\n"
    )
}

fn ingress(class: &str, name: &str, host: &str, service: &str, path: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: {class}\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}\n"
    )
}

/// What wrk measured.
#[derive(Debug, Default)]
struct Load {
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
}

fn millis(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => return None,
    })
}

/// Runs wrk against the proxy for `seconds` with `connections` keep-alive connections.
fn wrk(port: u16, connections: u64, seconds: u64) -> Result<Load> {
    let out = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "--timeout", "5s"])
        .args(["-H", "Host: load.example.com", &format!("http://127.0.0.1:{port}/")])
        .output()
        .context("wrk (scripts/setup.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(out.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let mut load = Load::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => load.p50_ms = millis(v).unwrap_or(0.0),
            ["99%", v] => load.p99_ms = millis(v).unwrap_or(0.0),
            ["Requests/sec:", v] => load.per_second = v.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => load.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.failed += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                load.failed +=
                    rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            _ => {}
        }
    }
    ensure!(load.requests > 0, "no requests counted: {text}");
    Ok(load)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_under_load_fails_nothing() -> Result<()> {
    let seconds = env("FERRY_CHURN_SECONDS", 3);
    let connections = env("FERRY_CHURN_CONNECTIONS", 50);
    let rate = env("FERRY_CHURN_RATE", 50).max(1);
    let websockets = env("FERRY_CHURN_WEBSOCKETS", 20);
    // The control run: as many writes, to ConfigMaps the controller does not watch, so what the
    // API server's work costs the machine shows apart from what the controller's does.
    let control = env("FERRY_CHURN_CONTROL", 0) == 1;
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-churn").await?;
    let class = ns.clone();
    create(&client, "", &format!("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {class}}}\nspec: {{controller: ferry.dev/ingress-controller}}\n")).await?;
    // The served Service: one endpoint always ready, a second (another address, same port)
    // going in and out of the ready set.
    let (stays, stays_count) = counting_backend("127.0.0.1:0".parse()?, "stays")?;
    let (flaps, flaps_count) =
        counting_backend(SocketAddr::new("127.0.0.3".parse()?, stays.port()), "flaps")?;
    create(&client, &ns, &service("app", 80)).await?;
    create(&client, &ns, &slice("app-1", "app", stays, flaps, false)).await?;
    create(&client, &ns, &ingress(&class, "load", "load.example.com", "app", "/")).await?;
    let ws_backend = websocket_backend().await?;
    create(&client, &ns, &service("ws", 80)).await?;
    create(&client, &ns, &slice("ws-1", "ws", ws_backend, ws_backend, true)).await?;
    create(&client, &ns, &ingress(&class, "ws", "ws.example.com", "ws", "/")).await?;
    for i in 0..20 {
        create(&client, &ns, &service(&format!("churn-svc-{i}"), 80)).await?;
    }

    let c = controller(&api, &ns, &class, &["--access-log", "off", "--update-status", "false"])?;
    eventually(Duration::from_secs(30), || {
        Ok(get(c.http, "load.example.com", "/")?.status == 200
            && get(c.http, "ws.example.com", "/")?.status != 404)
    })
    .with_context(|| c.logs())?;
    let mut sockets = Vec::new();
    for _ in 0..websockets {
        sockets.push(open_websocket(c.http).await?);
    }
    // The WebSockets are kept busy (an echo each every 10 s, as a client's pings): an idle one
    // is closed after `proxy-read-timeout` (60 s), as ingress-nginx closes it.
    let pinging = Arc::new(AtomicBool::new(true));
    let pinger = {
        let pinging = Arc::clone(&pinging);
        tokio::spawn(async move {
            // A WebSocket that does not echo is dropped: it counts as lost at the end.
            let mut alive = sockets;
            let mut tick = 0u64;
            while pinging.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                tick += 1;
                if !tick.is_multiple_of(100) {
                    continue;
                }
                let mut kept = Vec::with_capacity(alive.len());
                for mut ws in alive {
                    if echoes(&mut ws, &format!("ping {tick}")).await {
                        kept.push(ws);
                    }
                }
                alive = kept;
            }
            alive
        })
    };

    let http = c.http;
    let quiet = tokio::task::spawn_blocking(move || wrk(http, connections, seconds)).await??;
    let quiet_connections = stays_count.load(Ordering::Relaxed);

    // The same load while changes arrive at `rate` per second.
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (client, ns, class, running) = (client.clone(), ns.clone(), class.clone(), Arc::clone(&running));
        tokio::spawn(async move {
            let mut changes = 0u64;
            let every = Duration::from_micros(1_000_000 / rate);
            let mut next = Instant::now();
            while running.load(Ordering::Relaxed) {
                let k = changes;
                let result = match if control { 5 } else { k % 5 } {
                    0 => {
                        let name = format!("churn-{}", (k / 5) % 40);
                        let yaml = ingress(&class, &name, &format!("{name}.example.com"), "churn-svc-0", "/");
                        if (k / 200).is_multiple_of(2) {
                            create(&client, &ns, &yaml).await
                        } else {
                            delete(&client, &ns, &yaml).await
                        }
                    }
                    1 => {
                        let name = format!("churn-{}", (k / 5) % 40);
                        let path = format!("/v{k}");
                        let yaml =
                            ingress(&class, &name, &format!("{name}.example.com"), "churn-svc-1", &path);
                        replace(&client, &ns, &yaml).await
                    }
                    2 => {
                        replace(&client, &ns, &service(&format!("churn-svc-{}", k % 20), 80 + (k % 2) as u16))
                            .await
                    }
                    3 => {
                        replace(&client, &ns, &slice("app-1", "app", stays, flaps, (k / 5).is_multiple_of(2)))
                            .await
                    }
                    4 => {
                        let name = format!("churn-svc-{}", k % 20);
                        let yaml = slice(&format!("{name}-1"), &name, stays, flaps, k.is_multiple_of(2));
                        match create(&client, &ns, &yaml).await {
                            Ok(()) => Ok(()),
                            Err(_) => replace(&client, &ns, &yaml).await,
                        }
                    }
                    _ => {
                        let yaml = format!(
                            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: noise-{}}}\ndata: {{k: v{k}}}\n",
                            k % 20
                        );
                        match create(&client, &ns, &yaml).await {
                            Ok(()) => Ok(()),
                            Err(_) => replace(&client, &ns, &yaml).await,
                        }
                    }
                };
                // A create of what exists, or a delete of what does not, is a change all the same.
                drop(result);
                changes += 1;
                next += every;
                tokio::time::sleep_until(next.into()).await;
            }
            changes
        })
    };
    let started = Instant::now();
    let churned = tokio::task::spawn_blocking(move || wrk(http, connections, seconds)).await??;
    let elapsed = started.elapsed();
    running.store(false, Ordering::Relaxed);
    let changes = writer.await?;
    let churn_connections = stays_count.load(Ordering::Relaxed) - quiet_connections;

    pinging.store(false, Ordering::Relaxed);
    let mut sockets = pinger.await?;
    let mut survived = 0;
    for (i, ws) in sockets.iter_mut().enumerate() {
        if echoes(ws, &format!("still here {i}")).await {
            survived += 1;
        }
    }
    let build = if std::env::var("FERRY_CONTROLLER_BIN").is_ok() { "release" } else { "debug" };
    let what = if control {
        "control: writes to ConfigMaps nothing watches"
    } else {
        "changes the controller acts on"
    };
    println!(
        "churn under load ({build} build, wrk {connections} keep-alive connections, {seconds} s per run; {what}):"
    );
    for (what, load, opened) in [("quiet", &quiet, quiet_connections), ("churn", &churned, churn_connections)]
    {
        println!(
            "  {what:<6} {:>9} requests {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  failed {}  upstream connections opened to the steady endpoint {opened}",
            load.requests, load.per_second, load.p50_ms, load.p99_ms, load.failed
        );
    }
    println!(
        "  churn: {changes} changes in {elapsed:.1?} ({:.0}/s); p99 {:.2}x, req/s {:.2}x the quiet run; WebSockets {survived}/{websockets} survived; the flapping endpoint got {} connections",
        changes as f64 / elapsed.as_secs_f64(),
        churned.p99_ms / quiet.p99_ms.max(0.001),
        churned.per_second / quiet.per_second.max(0.001),
        flaps_count.load(Ordering::Relaxed)
    );
    if quiet.failed + churned.failed > 0 {
        bail!("failed requests: {} quiet, {} under churn\n{}", quiet.failed, churned.failed, c.logs());
    }
    assert_eq!(survived, websockets, "every WebSocket survives the changes");
    // The pool keeps its connections to the endpoint that stayed: changes open no more of them
    // than the quiet run needed to warm up.
    assert!(
        churn_connections <= quiet_connections,
        "{churn_connections} new connections to the steady endpoint under churn ({quiet_connections} quiet)"
    );
    assert!(changes >= rate * seconds / 2, "the writer kept up: {changes} changes");
    Ok(())
}
