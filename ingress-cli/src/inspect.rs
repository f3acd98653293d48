//! `explain` and `check`: the same translation as the running controller, run once.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ingress_core::{EndpointStore, Explanation, RouteTable, Verdict};
use ingress_k8s::{AnnotationReport, IngressInfo, Kind, ManifestDir, ManifestError, Objects, Problem};

use crate::args::{CheckArgs, ExplainArgs, Output, ReportFormat, SourceArgs};

mod report;
mod streams;

use report::{Report, Setting};

/// A configuration loaded once: the table, and everything wrong with the input.
pub(crate) struct Loaded {
    pub(crate) table: Arc<RouteTable>,
    pub(crate) problems: Vec<Problem>,
    pub(crate) manifest_errors: Vec<ManifestError>,
    /// The objects read.
    pub(crate) objects: Objects,
    /// Our Ingresses, with the verdicts on their annotations.
    pub(crate) ingresses: Vec<Arc<IngressInfo>>,
    /// The verdicts on each of our Ingresses' annotations.
    pub(crate) annotations: BTreeMap<ingress_k8s::Key, Vec<AnnotationReport>>,
    /// The `--configmap` ConfigMap's data and that of the ConfigMaps it names.
    pub(crate) config: (BTreeMap<String, String>, BTreeMap<String, BTreeMap<String, String>>),
}

/// Reads the manifests, or the cluster (once, with `list` and `get` only: nothing is watched
/// or written), and builds the table as the controller would.
pub(crate) async fn load(source: &SourceArgs) -> anyhow::Result<Loaded> {
    let config = ingress_k8s::Config { update_status: false, emit_events: false, ..source.k8s_config() };
    let (objects, manifest_errors) = match &source.manifests {
        Some(dir) => {
            let mut manifests = ManifestDir::new(dir);
            manifests.scan().with_context(|| format!("reading manifests from {}", dir.display()))?;
            (manifests.objects(), manifests.errors())
        }
        None => {
            let client = crate::run::client(source).await?;
            let objects =
                tokio::time::timeout(Duration::from_secs(60), ingress_k8s::list_once(&client, &config))
                    .await
                    .context("the API server did not answer within 60 s")?
                    .context("reading the cluster")?;
            (objects, Vec::new())
        }
    };
    let mut translation = ingress_k8s::translate(&objects, &config);
    let (table, problems) = translation.compile(&mut EndpointStore::new());
    let annotations = translation.ingresses.iter().map(|i| (i.key.clone(), i.annotations.clone())).collect();
    Ok(Loaded {
        table: Arc::new(table),
        problems,
        manifest_errors,
        objects,
        ingresses: translation.ingresses.iter().cloned().collect(),
        annotations,
        config: (translation.config, translation.config_references),
    })
}

/// The pieces of a URL `explain` needs.
struct Target {
    https: bool,
    host: String,
    path: String,
}

fn parse_url(url: &str) -> anyhow::Result<Target> {
    let with_scheme = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
    let uri: http::Uri = with_scheme.parse().with_context(|| format!("`{url}` is not a URL"))?;
    let https = match uri.scheme_str() {
        Some("http") | None => false,
        Some("https") => true,
        Some(other) => bail!("unsupported scheme `{other}` in `{url}` (use http or https)"),
    };
    let Some(authority) = uri.authority() else { bail!("`{url}` has no host") };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok(Target { https, host: authority.as_str().to_owned(), path })
}

/// `ingress-controller explain URL`.
pub(crate) async fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    if let Some(stream) = streams::parse(&args.url) {
        let (protocol, port) = stream?;
        let loaded = load(&args.source).await?;
        return streams::explain(&loaded.table, protocol, port, args.output);
    }
    let target = parse_url(&args.url)?;
    // The path as the proxy routes it (nginx's normalized `$uri`).
    let path = match ingress_core::normalize_path(&target.path) {
        Ok(path) => path.into_owned(),
        Err(why) => bail!("`{}`: the proxy answers 400 to this path ({why})", target.path),
    };
    let loaded = load(&args.source).await?;
    if let Some(to) = loaded.table.host_redirect(&target.host) {
        println!(
            "redirect: {} is the `www.` twin of {to} (from-to-www-redirect): the proxy answers with a \
             redirect to {to} (ConfigMap `http-redirect-code`, 308) and routes nothing",
            target.host
        );
        return Ok(());
    }
    let e = loaded.table.explain(&target.host, &path);
    let route = loaded.table.lookup(&target.host, &path);
    let endpoints: Vec<String> = route
        .map(|r| r.backend.endpoints().as_slice().iter().map(|e| e.addr.to_string()).collect())
        .unwrap_or_default();
    let mut policy = route.map(|r| r.policy.describe()).unwrap_or_default();
    if let Some(fallback) = route.and_then(|r| r.fallback) {
        let ready = fallback.endpoints().len();
        policy.push(format!(
            "default-backend: {} ({ready} ready) while the route's backend has none",
            fallback.key()
        ));
    }
    if let Some(canary) = route.and_then(|r| r.canary) {
        let rule = canary.rule;
        let mut how = Vec::new();
        if let Some(h) = &rule.header {
            how.push(format!("header {h}"));
        }
        if let Some(c) = &rule.cookie {
            how.push(format!("cookie {c}"));
        }
        how.push(format!("weight {}/{}", rule.weight, canary.weight_total()));
        policy.push(format!("canary: {} by {}", canary.backend.key(), how.join(", then ")));
    }
    let winner = match &e.decision {
        ingress_core::Decision::Path { origin, .. } | ingress_core::Decision::IngressDefault { origin } => {
            Some((origin.namespace.clone(), origin.name.clone()))
        }
        _ => None,
    };
    let annotations: Vec<&AnnotationReport> =
        winner.and_then(|k| loaded.annotations.get(&k)).map(|r| r.iter().collect()).unwrap_or_default();
    let problems: Vec<String> = loaded
        .problems
        .iter()
        .filter(|p| {
            e.paths.iter().any(|c| (&*c.origin.namespace, &*c.origin.name) == (&*p.object.0, &*p.object.1))
        })
        .map(ToString::to_string)
        .collect();
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Text => {
            print_text(&mut out, &e, &endpoints, target.https, &problems)?;
            for line in &policy {
                writeln!(out, "policy: {line}")?;
            }
            for r in &annotations {
                writeln!(out, "annotation: {} {}: {}", r.verdict, r.key, r.detail())?;
            }
        }
        Output::Json => {
            let mut json = explanation_json(&e, &endpoints, target.https, &problems);
            json["policy"] = serde_json::json!(policy);
            json["annotations"] = annotations
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "annotation": r.key, "value": r.value, "verdict": r.verdict.as_str(),
                        "note": r.note, "closes": r.closes,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln_out(&mut out, "")?;
        }
    }
    Ok(())
}

fn writeln_out(out: &mut impl std::io::Write, line: &str) -> std::io::Result<()> {
    writeln!(out, "{line}")
}

fn print_text(
    out: &mut impl std::io::Write,
    e: &Explanation,
    endpoints: &[String],
    https: bool,
    problems: &[String],
) -> std::io::Result<()> {
    writeln!(out, "{e}")?;
    if e.backend.is_some() {
        if endpoints.is_empty() {
            writeln!(out, "endpoints: none ready (the proxy answers 503)")?;
        } else {
            writeln!(out, "endpoints: {} (round-robin)", endpoints.join(", "))?;
        }
    }
    if !https {
        writeln!(
            out,
            "(TLS applies to https:// requests; the certificate above is what SNI `{}` would get)",
            e.host
        )?;
    }
    for p in problems {
        writeln!(out, "problem: {p}")?;
    }
    Ok(())
}

fn explanation_json(
    e: &Explanation,
    endpoints: &[String],
    https: bool,
    problems: &[String],
) -> serde_json::Value {
    use serde_json::json;
    let verdict = |v: &Verdict| match v {
        Verdict::Won => json!({"result": "won"}),
        Verdict::Lost(why) => json!({"result": "lost", "why": why}),
        Verdict::NoMatch => json!({"result": "no-match"}),
        Verdict::Shadowed(why) => json!({"result": "rejected", "why": why}),
    };
    let decision = match &e.decision {
        ingress_core::Decision::Path { origin, field } => {
            json!({"kind": "path", "ingress": origin.to_string(), "field": field.to_string()})
        }
        ingress_core::Decision::IngressDefault { origin } => {
            json!({"kind": "ingress-default-backend", "ingress": origin.to_string()})
        }
        ingress_core::Decision::ControllerDefault => json!({"kind": "controller-default-backend"}),
        ingress_core::Decision::NoRoute => json!({"kind": "no-route", "status": 404}),
    };
    json!({
        "host": e.host,
        "path": e.path,
        "hosts": e.hosts.iter().map(|h| json!({"pattern": h.pattern.to_string(), "chosen": h.chosen})).collect::<Vec<_>>(),
        "paths": e.paths.iter().map(|p| json!({
            "path": p.path,
            "pathType": p.path_type.to_string(),
            "ingress": p.origin.to_string(),
            "field": p.field.to_string(),
            "backend": p.backend.to_string(),
            "verdict": verdict(&p.verdict),
        })).collect::<Vec<_>>(),
        "decision": decision,
        "reason": e.reason,
        "backend": e.backend.as_ref().map(ToString::to_string),
        "endpoints": endpoints,
        "tls": e.certificate.as_ref().map(|c| json!({
            "certificate": c.certificate.to_string(),
            "host": c.host.to_string(),
            "ingress": c.origin.as_ref().map(ToString::to_string),
        })),
        "https": https,
        "problems": problems,
    })
}

/// `ingress-controller check`: what happens to each Ingress of the class if Ferry serves it;
/// true when nothing is refused or fails closed.
pub(crate) async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let loaded = load(&args.source).await?;
    let deployment = match &args.source.manifests {
        None => find_deployment(&args.source).await?,
        Some(_) => None,
    };
    let report = report(&args.source, &loaded, deployment);
    let mut out = std::io::stdout().lock();
    match args.output {
        ReportFormat::Text => report::render::text(&report, &mut out)?,
        ReportFormat::Json => writeln!(out, "{:#}", report::render::json(&report))?,
        ReportFormat::Markdown => report::render::markdown(&report, &mut out)?,
    }
    Ok(!report.refused())
}

/// Builds the report of a loaded configuration (and of the ingress-nginx Deployment found).
fn report(source: &SourceArgs, loaded: &Loaded, deployment: Option<(String, Vec<String>)>) -> Report {
    let mut by_object = report::by_object(&loaded.problems);
    let mut r = Report {
        class: source.ingress_class.clone(),
        file_errors: loaded.manifest_errors.iter().map(ToString::to_string).collect(),
        totals: (loaded.table.route_count(), loaded.table.host_count()),
        objects: report::count(&loaded.objects),
        ..Report::default()
    };
    let ours: BTreeMap<&ingress_k8s::Key, &IngressInfo> =
        loaded.ingresses.iter().map(|i| (&i.key, &**i)).collect();
    for (key, ingress) in &loaded.objects.ingresses {
        match ours.get(key) {
            Some(info) => {
                let problems = by_object
                    .remove(&(Kind::Ingress, key.0.to_string(), key.1.to_string()))
                    .unwrap_or_default();
                r.ingresses.push(report::ingress_report(ingress, info, problems));
            }
            None => r.other_class.push((key.0.to_string(), key.1.to_string())),
        }
    }
    r.other_problems = by_object.into_values().flatten().collect();
    // The controller ConfigMap's keys: one verdict each.
    if let Some(name) = &source.k8s_config().configmap {
        let (data, references) = &loaded.config;
        let (settings, ignored) =
            crate::settings::from_configmap(&ingress_proxy::RuntimeSettings::default(), data, references);
        let closed = settings.closed.unwrap_or_default();
        let mut keys = Vec::new();
        for key in data.keys() {
            let reports: Vec<&crate::settings::Ignored> = ignored.iter().filter(|i| &i.key == key).collect();
            if reports.is_empty() {
                keys.push(Setting { name: key.clone(), verdict: "applied", note: String::new() });
            }
            for i in reports {
                let verdict = if closed.contains(key.as_str()) { "rejected" } else { "ignored" };
                keys.push(Setting { name: key.clone(), verdict, note: i.reason.clone() });
            }
        }
        r.configmap = Some((name.to_string(), keys));
    }
    if let Some((name, args)) = deployment {
        r.deployment = Some((name, flag_verdicts(&args)));
    }
    r.streams = loaded.table.streams().iter().map(streams::describe).collect();
    r
}

/// The verdict on each flag of an ingress-nginx container's arguments.
fn flag_verdicts(args: &[String]) -> Vec<Setting> {
    let argv = std::iter::once("nginx-ingress-controller".into()).chain(args.iter().map(Into::into));
    let (_, ignored) = crate::nginx_flags::translate(argv);
    let name = |arg: &str| arg.trim_start_matches('-').split('=').next().unwrap_or_default().to_owned();
    args.iter()
        .filter(|a| a.starts_with('-'))
        .map(|arg| match ignored.iter().find(|i| name(&i.argument) == name(arg)) {
            Some(i) => Setting { name: arg.clone(), verdict: "ignored", note: i.reason.to_owned() },
            None => Setting { name: arg.clone(), verdict: "applied", note: String::new() },
        })
        .collect()
}

/// The ingress-nginx controller of the cluster (a Deployment or DaemonSet, in any namespace),
/// if one is found: `Kind namespace/name`, and the arguments of its controller container (the
/// binary's path left out, `$(POD_NAMESPACE)` and `$(POD_NAME)` filled in as the kubelet fills
/// them). With several, the one serving `--ingress-class` (or `--controller-class`) is taken,
/// in `--watch-namespace` if that is given.
async fn find_deployment(source: &SourceArgs) -> anyhow::Result<Option<(String, Vec<String>)>> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    let client = crate::run::client(source).await?;
    let list = async {
        let params = kube::api::ListParams::default();
        let deployments = kube::Api::<Deployment>::all(client.clone()).list(&params).await;
        let daemon_sets = kube::Api::<DaemonSet>::all(client).list(&params).await;
        (deployments, daemon_sets)
    };
    let (deployments, daemon_sets) = tokio::time::timeout(Duration::from_secs(60), list)
        .await
        .context("the API server did not list the controllers within 60 s")?;
    // Not allowed to list them: the report says nothing of the flags.
    let forbidden = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 403);
    let label = |kind: &str, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        let ns = meta.namespace.clone().unwrap_or_default();
        (format!("{kind} {ns}/{}", meta.name.clone().unwrap_or_default()), ns)
    };
    let mut found: Vec<(String, String, PodTemplateSpec)> = Vec::new();
    match deployments {
        Ok(list) => found.extend(list.items.into_iter().map(|d| {
            let (at, ns) = label("Deployment", &d.metadata);
            (at, ns, d.spec.template)
        })),
        Err(e) if forbidden(&e) => {}
        Err(e) => return Err(e).context("listing Deployments"),
    }
    match daemon_sets {
        Ok(list) => found.extend(list.items.into_iter().map(|d| {
            let (at, ns) = label("DaemonSet", &d.metadata);
            (at, ns, d.spec.template)
        })),
        Err(e) if forbidden(&e) => {}
        Err(e) => return Err(e).context("listing DaemonSets"),
    }
    let mut controllers = Vec::new();
    for (at, ns, template) in found {
        for c in template.spec.map(|p| p.containers).unwrap_or_default() {
            let mut args: Vec<String> =
                c.command.unwrap_or_default().into_iter().chain(c.args.unwrap_or_default()).collect();
            let Some(binary) = args.iter().position(|a| a.ends_with("/nginx-ingress-controller")) else {
                continue;
            };
            args.drain(..=binary);
            let args: Vec<String> = args
                .into_iter()
                .map(|a| a.replace("$(POD_NAMESPACE)", &ns).replace("$(POD_NAME)", "controller-pod"))
                .collect();
            controllers.push((at.clone(), ns.clone(), args));
        }
    }
    let serves = |args: &[String]| {
        args.iter().any(|a| {
            *a == format!("--ingress-class={}", source.ingress_class)
                || *a == format!("--controller-class={}", source.controller_class)
        })
    };
    // The one serving the class, in the watched namespace if one is given.
    let watched = |ns: &str| source.watch_namespace.as_deref().is_none_or(|w| w == ns);
    let chosen = controllers
        .iter()
        .position(|(_, ns, args)| serves(args) && watched(ns))
        .or_else(|| controllers.iter().position(|(_, _, args)| serves(args)))
        .unwrap_or(0);
    Ok((!controllers.is_empty()).then(|| controllers.swap_remove(chosen)).map(|(at, _, args)| (at, args)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_and_path() {
        let t = parse_url("https://Demo.example.com:30443/a/b?x=1").unwrap();
        assert!(t.https);
        assert_eq!(t.host, "Demo.example.com:30443");
        assert_eq!(t.path, "/a/b?x=1");
        let t = parse_url("demo.example.com").unwrap();
        assert!(!t.https);
        assert_eq!(t.path, "/");
        assert!(parse_url("ftp://x/").is_err());
    }

    /// The parsed form the feed attaches to a TLS Secret's material is the one the proxy takes
    /// (so the proxy does not parse it again): the two crates agree on its type.
    #[test]
    fn the_feed_hands_the_proxy_certificates_it_need_not_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
        let mut objects = ingress_k8s::Objects::default();
        for file in ["webapp-tls-secret.yaml", "ingress-tls.yaml", "webapp.yaml"] {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            objects.extend(ingress_k8s::parse_manifest(&path, &text).unwrap());
        }
        // The seed's Ingress names class `nginx`, as ingress-nginx's users have it.
        let config = ingress_k8s::Config { ingress_class: "nginx".into(), ..ingress_k8s::Config::default() };
        let (table, _) =
            ingress_k8s::translate(&objects, &config).compile(&mut ingress_core::EndpointStore::new());
        let cert = table.tls().certificates().first().expect("the demo's TLS Secret");
        let pem = table.tls().material(cert).unwrap();
        assert!(pem.prepared::<ingress_proxy::PreparedCertificate>().is_some());
    }
}
