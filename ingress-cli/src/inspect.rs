//! `explain` and `check`: the same translation as the running controller, run once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ingress_core::{EndpointStore, Explanation, RouteTable, Verdict};
use ingress_k8s::{
    AnnotationReport, AnnotationVerdict, IngressInfo, Kind, ManifestDir, ManifestError, Objects, Problem,
    Severity,
};

use crate::args::{CheckArgs, ExplainArgs, Output, SourceArgs};

mod streams;

/// A configuration loaded once: the table, and everything wrong with the input.
pub(crate) struct Loaded {
    pub(crate) table: Arc<RouteTable>,
    pub(crate) problems: Vec<Problem>,
    pub(crate) manifest_errors: Vec<ManifestError>,
    /// The objects (manifest mode only; `check` lists them).
    pub(crate) objects: Option<Objects>,
    /// Our Ingresses.
    pub(crate) ours: BTreeSet<(String, String)>,
    /// The verdicts on each of our Ingresses' annotations.
    pub(crate) annotations: BTreeMap<(String, String), Vec<AnnotationReport>>,
    /// The `--configmap` ConfigMap's data and that of the ConfigMaps it names.
    pub(crate) config: (BTreeMap<String, String>, BTreeMap<String, BTreeMap<String, String>>),
}

fn annotations_of(ingresses: &[IngressInfo]) -> BTreeMap<(String, String), Vec<AnnotationReport>> {
    ingresses.iter().map(|i| (i.key.clone(), i.annotations.clone())).collect()
}

/// Reads the manifests (or the cluster) once and builds the table, as the controller would.
pub(crate) async fn load(source: &SourceArgs) -> anyhow::Result<Loaded> {
    let config = ingress_k8s::Config { update_status: false, emit_events: false, ..source.k8s_config() };
    if let Some(dir) = &source.manifests {
        let mut manifests = ManifestDir::new(dir);
        manifests.scan().with_context(|| format!("reading manifests from {}", dir.display()))?;
        let objects = manifests.objects();
        let mut translation = ingress_k8s::translate(&objects, &config);
        let (table, problems) = translation.compile(&mut EndpointStore::new());
        return Ok(Loaded {
            table: Arc::new(table),
            problems,
            manifest_errors: manifests.errors(),
            objects: Some(objects),
            ours: translation.ingresses.iter().map(|i| i.key.clone()).collect(),
            annotations: annotations_of(&translation.ingresses),
            config: (translation.config, translation.config_references),
        });
    }
    let client = crate::run::client(source).await?;
    let controller =
        ingress_k8s::Controller::start(client, config).await.context("starting the Kubernetes feed")?;
    let snapshot = tokio::time::timeout(Duration::from_secs(60), controller.ready())
        .await
        .context("the API server did not list every watched kind within 60 s")??;
    controller.shutdown().await;
    Ok(Loaded {
        table: Arc::clone(&snapshot.table),
        problems: snapshot.problems.to_vec(),
        manifest_errors: Vec::new(),
        objects: None,
        ours: snapshot.ingresses.iter().map(|i| i.key.clone()).collect(),
        annotations: annotations_of(&snapshot.ingresses),
        config: ((*snapshot.config).clone(), (*snapshot.config_references).clone()),
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
            e.paths.iter().any(|c| {
                (c.origin.namespace.as_str(), c.origin.name.as_str())
                    == (p.object.0.as_str(), p.object.1.as_str())
            })
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

/// `ingress-controller check --manifests DIR`: true when nothing was rejected.
pub(crate) async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    if args.source.manifests.is_none() {
        bail!("check needs --manifests DIR");
    }
    let loaded = load(&args.source).await?;
    let mut out = std::io::stdout().lock();

    let mut by_object: BTreeMap<(Kind, String, String), Vec<&Problem>> = BTreeMap::new();
    for p in &loaded.problems {
        by_object.entry((p.kind, p.object.0.clone(), p.object.1.clone())).or_default().push(p);
    }
    let mut rejected = loaded.manifest_errors.len();
    for err in &loaded.manifest_errors {
        writeln!(out, "error     {err}")?;
    }
    let objects = loaded.objects.unwrap_or_default();
    let listed = objects_of(&objects);
    let mut count = 0;
    for (kind, ns, name) in &listed {
        count += 1;
        let key = (ns.clone(), name.clone());
        let problems = by_object.remove(&(*kind, ns.clone(), name.clone())).unwrap_or_default();
        let label = if ns.is_empty() { format!("{kind} {name}") } else { format!("{kind} {ns}/{name}") };
        if *kind == Kind::Ingress && !loaded.ours.contains(&key) {
            writeln!(out, "ignored   {label}: not of class `{}`", args.source.ingress_class)?;
            continue;
        }
        // Annotations: one line each, whatever the verdict (their problems say the same).
        let reports = match kind {
            Kind::Ingress => loaded.annotations.get(&key).map(Vec::as_slice).unwrap_or_default(),
            _ => &[],
        };
        for r in reports {
            if r.verdict == AnnotationVerdict::Rejected || r.closes {
                rejected += 1;
            }
            writeln!(out, "{:<9} {label} {}: {}", r.verdict.as_str(), r.key, r.detail())?;
        }
        // Skip the problems that only repeat a report's verdict; keep what building found
        // (an alias that another host takes, say).
        let repeats = |p: &Problem| {
            reports.iter().any(|r| {
                p.field == format!("metadata.annotations[{}]", r.key)
                    && (p.reason == r.detail() || p.reason == r.to_string())
            })
        };
        let problems: Vec<&Problem> = problems.into_iter().filter(|p| !repeats(p)).collect();
        if problems.is_empty() && reports.is_empty() {
            writeln!(out, "ok        {label}")?;
        }
        for p in problems {
            match p.severity {
                Severity::Rejected => {
                    rejected += 1;
                    writeln!(out, "rejected  {label} {}: {}", p.field, p.reason)?;
                }
                Severity::Warning => writeln!(out, "warning   {label} {}: {}", p.field, p.reason)?,
            }
        }
    }
    // The controller ConfigMap's keys: one line each, as the annotations.
    if let Some(name) = &args.source.k8s_config().configmap {
        let (data, references) = &loaded.config;
        let (settings, ignored) =
            crate::settings::from_configmap(&ingress_proxy::RuntimeSettings::default(), data, references);
        let closed = settings.closed.unwrap_or_default();
        for key in data.keys() {
            let reports: Vec<&crate::settings::Ignored> = ignored.iter().filter(|i| &i.key == key).collect();
            if reports.is_empty() {
                writeln!(out, "applied   ConfigMap {name} {key}")?;
            }
            for i in reports {
                if closed.contains(key.as_str()) {
                    rejected += 1;
                    writeln!(out, "rejected  ConfigMap {name} {key}: {}", i.reason)?;
                } else {
                    writeln!(out, "ignored   ConfigMap {name} {key}: {}", i.reason)?;
                }
            }
        }
    }
    // The TCP and UDP services served.
    for route in loaded.table.streams() {
        writeln!(out, "stream    {}", streams::describe(route))?;
    }
    // Problems of objects that are not in the store (controller-wide settings, missing refs).
    for ((kind, ns, name), problems) in by_object {
        for p in problems {
            let verdict = if p.severity == Severity::Rejected { "rejected" } else { "warning " };
            if p.severity == Severity::Rejected {
                rejected += 1;
            }
            writeln!(out, "{verdict}  {kind} {ns}/{name} {}: {}", p.field, p.reason)?;
        }
    }
    writeln!(
        out,
        "\n{count} objects, {} routes on {} hosts, {rejected} rejected",
        loaded.table.route_count(),
        loaded.table.host_count()
    )?;
    Ok(rejected == 0)
}

fn objects_of(o: &Objects) -> Vec<(Kind, String, String)> {
    let keys = |kind: Kind, keys: Vec<&(String, String)>| -> Vec<(Kind, String, String)> {
        keys.into_iter().map(|(ns, n)| (kind, ns.clone(), n.clone())).collect()
    };
    let mut all = keys(Kind::IngressClass, o.ingress_classes.keys().collect());
    all.extend(keys(Kind::Ingress, o.ingresses.keys().collect()));
    all.extend(keys(Kind::Service, o.services.keys().collect()));
    all.extend(keys(Kind::EndpointSlice, o.endpoint_slices.keys().collect()));
    all.extend(keys(Kind::Secret, o.secrets.keys().collect()));
    all.extend(keys(Kind::ConfigMap, o.config_maps.keys().collect()));
    all
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
}
