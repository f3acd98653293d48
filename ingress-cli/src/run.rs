//! The running controller: the Kubernetes feed (cluster or manifest files) → snapshot handle →
//! Pingora proxy. The only place that starts runtimes.

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ingress_k8s::{Controller, Snapshots};
use ingress_proxy::{ProxyConfig, ProxyHandle, ProxyServer, RuntimeSettings};

use crate::args::{RunArgs, SourceArgs, Switch};

use crate::settings;

/// How long start-up waits for the API server before giving up with an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Kubernetes client from `--kubeconfig`/`KUBECONFIG`, else in-cluster config, else
/// `~/.kube/config`.
pub(crate) async fn client(source: &SourceArgs) -> anyhow::Result<kube::Client> {
    let config = match &source.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("invalid kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no cluster configuration: not in a cluster, no --kubeconfig/KUBECONFIG, no ~/.kube/config (use --manifests DIR for standalone mode)")?,
    };
    let url = config.cluster_url.clone();
    let client =
        kube::Client::try_from(config).with_context(|| format!("cannot build a client for {url}"))?;
    // Fail at start-up, with one clear line, when the API server cannot be reached.
    tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version())
        .await
        .with_context(|| format!("API server {url} did not answer within {}s", CONNECT_TIMEOUT.as_secs()))?
        .with_context(|| format!("API server {url} is unreachable"))?;
    Ok(client)
}

/// Runs the controller until SIGTERM/SIGINT.
pub(crate) fn run(args: &RunArgs) -> anyhow::Result<()> {
    let proxy_config = proxy_config(args);
    ensure_free(&proxy_config)?;
    let base = RuntimeSettings {
        access_log: args.access_log == Switch::On,
        https: ingress_proxy::HttpsSettings { https_port: args.https_port, ..Default::default() },
        ..RuntimeSettings::default()
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ferry-k8s")
        .on_thread_park(crate::alloc::release)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (controller, source) = runtime.block_on(start_source(args))?;

    let (initial, ignored) = settings::from_configmap(&base, &Default::default(), &Default::default());
    debug_assert!(ignored.is_empty());
    let handle = ProxyHandle::with_settings(initial);
    // ingress-nginx's series carry the controller's identity, as its own do.
    let namespace = match controller.config().election_namespace.as_str() {
        "" => "ingress-ferry".to_owned(),
        ns => ns.to_owned(),
    };
    let proxy_config = ProxyConfig {
        controller_labels: Some(ingress_proxy::ControllerLabels {
            namespace,
            class: args.source.controller_class.clone(),
            pod: args.pod_name.clone(),
            per_host: args.metrics_per_host,
        }),
        ..proxy_config
    };
    let running =
        ProxyServer::new(proxy_config.clone(), handle.clone()).start().context("cannot start the proxy")?;
    // stderr, like every diagnostic: stdout carries only the access log.
    let https = match proxy_config.ssl_passthrough {
        Some(terminator) => {
            format!("{} (TLS passthrough; terminated on {terminator})", show(proxy_config.https_addr))
        }
        None => show(proxy_config.https_addr),
    };
    eprintln!(
        "ferry ingress-controller {}: http {}, https {https}, admin {} (/metrics /healthz /readyz); source: {source}; class `{}` (controller {})",
        env!("CARGO_PKG_VERSION"),
        show(proxy_config.http_addr),
        show(proxy_config.admin_addr),
        args.source.ingress_class,
        args.source.controller_class,
    );
    if let (Some(addr), Some(certificate), Some(key)) =
        (&args.validating_webhook, &args.validating_webhook_certificate, &args.validating_webhook_key)
    {
        let config = crate::webhook::WebhookConfig {
            addr: crate::webhook::parse_addr(addr)?,
            certificate: certificate.clone(),
            key: key.clone(),
        };
        runtime.block_on(crate::webhook::start(config, controller.validator()))?;
    }
    runtime.spawn(feed(controller.snapshots(), handle, base));
    runtime.spawn(report_manifest_errors(controller.manifest_errors()));

    // What start-up freed on this thread (in standalone mode, every manifest read) goes back
    // now: it only waits from here on.
    crate::alloc::collect();
    running.wait();
    tracing::info!("proxy stopped; stopping the Kubernetes feed");
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), controller.shutdown()).await;
    });
    Ok(())
}

fn show(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_owned(), |a| a.to_string())
}

fn proxy_config(args: &RunArgs) -> ProxyConfig {
    let at = |port| Some(SocketAddr::new(args.bind_address, port));
    let mut config = ProxyConfig {
        http_addr: at(args.http_port),
        https_addr: at(args.https_port),
        admin_addr: at(args.admin_port),
        // ingress-nginx's status server listens on the loopback only.
        status_addr: args.status_port.map(|port| SocketAddr::from(([127, 0, 0, 1], port))),
        default_server_addr: args.default_server_port.and_then(at),
        health_check_path: args.health_check_path.clone(),
        ssl_passthrough: args
            .source
            .enable_ssl_passthrough
            .then(|| SocketAddr::from(([127, 0, 0, 1], args.ssl_passthrough_proxy_port))),
        grace_period: Duration::from_secs(args.shutdown_grace_period),
        ..ProxyConfig::default()
    };
    if let Some(threads) = args.threads {
        config.threads = threads.max(1);
    }
    config
}

/// Pingora binds its listeners on its own thread and exits the process if that fails; checking
/// first turns "port in use" into one clear error line.
fn ensure_free(config: &ProxyConfig) -> anyhow::Result<()> {
    let listeners = [
        ("--http-port", config.http_addr),
        ("--https-port", config.https_addr),
        ("--admin-port", config.admin_addr),
        ("--status-port", config.status_addr),
        ("--default-server-port", config.default_server_addr),
        ("--ssl-passthrough-proxy-port", config.ssl_passthrough),
    ];
    let mut seen = BTreeSet::new();
    for (flag, addr) in listeners {
        let Some(addr) = addr else { continue };
        if !seen.insert(addr) {
            bail!("{flag} {}: the same port is given to two listeners", addr.port());
        }
        if let Err(e) = TcpListener::bind(addr) {
            bail!("{flag} {}: cannot listen on {addr}: {e}", addr.port());
        }
    }
    Ok(())
}

async fn start_source(args: &RunArgs) -> anyhow::Result<(Controller, String)> {
    let config = args.k8s_config();
    if let Some(dir) = &args.source.manifests {
        let controller = Controller::from_manifests(dir.clone(), config)
            .await
            .with_context(|| format!("cannot read manifests from {}", dir.display()))?;
        return Ok((controller, format!("manifests in {} (standalone)", dir.display())));
    }
    let client = client(&args.source).await?;
    let mut config = config;
    let from = if config.election_namespace.is_empty() {
        config.election_namespace = client.default_namespace().to_owned();
        "the kubeconfig context's namespace (POD_NAMESPACE is not set)"
    } else {
        "POD_NAMESPACE"
    };
    tracing::info!(
        lease = %format!("{}/{}", config.election_namespace, config.election_id),
        "leader election Lease, in {from}"
    );
    let controller = Controller::start(client, config).await.context("cannot start the Kubernetes feed")?;
    let scope = args
        .source
        .watch_namespace
        .as_deref()
        .map_or("all namespaces".to_owned(), |n| format!("namespace {n}"));
    let via = args
        .source
        .kubeconfig
        .as_ref()
        .map_or("the default config (in-cluster or ~/.kube/config)".to_owned(), |p| p.display().to_string());
    Ok((controller, format!("Kubernetes API via {via} ({scope})")))
}

/// Installs every published table into the proxy, and applies ConfigMap changes live.
async fn feed(mut snapshots: Snapshots, handle: ProxyHandle, base: RuntimeSettings) {
    let mut last_config = None;
    let mut reported = BTreeSet::new();
    // The `ferry_ingress_annotations` counts, kept up to date with what changed between lists.
    let mut listed = ingress_k8s::IngressList::default();
    let mut per_verdict = ingress_k8s::annotations::VerdictCounts::default();
    let mut installed: Option<Arc<ingress_core::RouteTable>> = None;
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        if let Some(snapshot) = snapshot {
            let config = (Arc::clone(&snapshot.config), Arc::clone(&snapshot.config_references));
            if last_config.as_ref() != Some(&config) {
                let (settings, ignored) =
                    settings::from_configmap(&base, &snapshot.config, &snapshot.config_references);
                for i in ignored {
                    tracing::warn!(key = %i.key, reason = %i.reason, "ConfigMap setting ignored");
                }
                handle.set_settings(settings);
                last_config = Some(config);
            }
            // The metric first: once a request is routed by the new table, the metric already
            // describes it.
            let (gone, fresh) = ingress_k8s::IngressInfo::changes(&listed, &snapshot.ingresses);
            // Ingresses that left (an updated one is in both lists): their request series go
            // once the table without them is installed.
            let kept: HashMap<&ingress_k8s::Key, &ingress_k8s::IngressInfo> =
                fresh.iter().map(|i| (&i.key, *i)).collect();
            // (Those with a core Ingress go with `rerouted`, below, with their canary backends.)
            let removed: Vec<ingress_k8s::Key> = gone
                .iter()
                .filter(|i| i.core.is_none() && !kept.contains_key(&i.key))
                .map(|i| i.key.clone())
                .collect();
            // Ingresses that changed what they route: the series of the paths, Services and
            // hosts they dropped go too, and those of a canary's old backends (a difference
            // from ingress-nginx, see `forget_routes`); a deleted canary's with it.
            let rerouted: Vec<(Arc<ingress_core::Ingress>, Option<Arc<ingress_core::Ingress>>)> = gone
                .iter()
                .filter_map(|old| {
                    let before = old.core.as_ref()?;
                    match kept.get(&old.key).map(|now| &now.core) {
                        None => Some((Arc::clone(before), None)),
                        Some(Some(after)) if !Arc::ptr_eq(before, after) => {
                            Some((Arc::clone(before), Some(Arc::clone(after))))
                        }
                        Some(_) => None,
                    }
                })
                .collect();
            per_verdict.update(
                gone.into_iter().map(|i| i.annotations.as_slice()),
                fresh.into_iter().map(|i| i.annotations.as_slice()),
            );
            listed = snapshot.ingresses.clone();
            handle.set_annotation_verdicts(per_verdict.counts().map(|(v, n)| (v.as_str(), n)));
            // A snapshot with new Ingress statuses only keeps the table.
            if installed.as_ref().is_none_or(|t| !Arc::ptr_eq(t, &snapshot.table)) {
                let result = handle.install(Arc::clone(&snapshot.table));
                tracing::info!(
                    generation = snapshot.generation,
                    routes = snapshot.table.route_count(),
                    hosts = snapshot.table.host_count(),
                    problems = snapshot.problems.len(),
                    installed = ?result,
                    "configuration installed"
                );
                installed = Some(Arc::clone(&snapshot.table));
                crate::alloc::installed();
            }
            handle.forget_ingresses(removed.iter().map(|(namespace, name)| (&**namespace, &**name)));
            handle.forget_routes(rerouted.iter().map(|(before, after)| (&**before, after.as_deref())));
            // Log each problem once while it lasts (in a cluster, Events carry them too).
            let now: BTreeSet<String> = snapshot.problems.iter().map(ToString::to_string).collect();
            for p in now.difference(&reported) {
                tracing::warn!(problem = %p, "configuration problem");
            }
            reported = now;
        }
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

async fn report_manifest_errors(mut errors: tokio::sync::watch::Receiver<Vec<ingress_k8s::ManifestError>>) {
    loop {
        for e in errors.borrow_and_update().iter() {
            tracing::warn!(error = %e, "manifest file not applied; its previous content stays in force");
        }
        if errors.changed().await.is_err() {
            return;
        }
    }
}
