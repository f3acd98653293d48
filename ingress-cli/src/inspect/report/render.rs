//! The report written out: text (one line per finding, grep-able), JSON (for tools), or
//! Markdown (to paste into a migration ticket). The summary comes first in each.

use std::io::Write;

use ingress_k8s::Severity;

use super::{IngressReport, Outcome, Report};

fn plural(n: usize, one: &str) -> String {
    let many = if one.ends_with('s') { "es" } else { "s" };
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}{many}") }
}

/// `3 Ingresses of class `nginx`: 1 switches unchanged, 1 with differences, 1 refused`.
fn summary(r: &Report) -> String {
    let counts = r.counts();
    let n = |o: Outcome| counts.get(&o).copied().unwrap_or(0);
    let mut line = format!(
        "{} of class `{}`: {} unchanged, {} with differences, {} refused or failing closed",
        plural(r.ingresses.len(), "Ingress"),
        r.class,
        n(Outcome::Unchanged),
        n(Outcome::Differs),
        n(Outcome::Refused),
    );
    if !r.other_class.is_empty() {
        line.push_str(&format!(" ({} of other classes left alone)", plural(r.other_class.len(), "Ingress")));
    }
    line
}

/// The text report.
pub(crate) fn text(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "summary   {}", summary(r))?;
    for (key, n) in r.blockers() {
        writeln!(out, "blocks    {key}: {}", plural(n, "Ingress"))?;
    }
    for e in &r.file_errors {
        writeln!(out, "error     {e}")?;
    }
    for (ns, name) in &r.other_class {
        writeln!(out, "ignored   Ingress {ns}/{name}: not of class `{}`", r.class)?;
    }
    for i in &r.ingresses {
        ingress_text(i, out)?;
    }
    if let Some((name, keys)) = &r.configmap {
        for k in keys {
            match k.note.as_str() {
                "" => writeln!(out, "{:<9} ConfigMap {name} {}", k.verdict, k.name)?,
                note => writeln!(out, "{:<9} ConfigMap {name} {}: {note}", k.verdict, k.name)?,
            }
        }
    }
    if let Some((name, flags)) = &r.deployment {
        for f in flags {
            match f.note.as_str() {
                "" => writeln!(out, "flag      {name} {}: {}", f.name, f.verdict)?,
                note => writeln!(out, "flag      {name} {}: {}: {note}", f.name, f.verdict)?,
            }
        }
    }
    for s in &r.streams {
        writeln!(out, "stream    {s}")?;
    }
    for p in &r.other_problems {
        let verdict = if p.severity == Severity::Rejected { "rejected" } else { "warning " };
        writeln!(out, "{verdict}  {} {}/{} {}: {}", p.kind, p.object.0, p.object.1, p.field, p.reason)?;
    }
    writeln!(
        out,
        "\n{} objects, {} routes on {} hosts, {} rejected",
        r.objects,
        r.totals.0,
        r.totals.1,
        r.rejections()
    )
}

fn ingress_text(i: &IngressReport, out: &mut impl Write) -> std::io::Result<()> {
    let label = format!("Ingress {}/{}", i.namespace, i.name);
    if i.annotations.is_empty() && i.problems.is_empty() {
        writeln!(out, "ok        {label}")?;
    }
    for a in &i.annotations {
        writeln!(out, "{:<9} {label} {}: {}", a.verdict.as_str(), a.key, a.detail())?;
    }
    for p in &i.problems {
        let verdict = if p.severity == Severity::Rejected { "rejected " } else { "warning  " };
        writeln!(out, "{verdict} {label} {}: {}", p.field, p.reason)?;
    }
    for route in &i.routes {
        let tls = route
            .tls
            .as_ref()
            .map(|s| format!(" (TLS: {})", if s.is_empty() { "default certificate" } else { s }));
        let state = route.refused.as_ref().map(|why| format!(": NOT SERVED: {why}"));
        writeln!(
            out,
            "route     {label} {}{} {} -> {}{}{}",
            route.host,
            route.path,
            route.path_type,
            route.backend,
            tls.unwrap_or_default(),
            state.unwrap_or_default()
        )?;
    }
    Ok(())
}

/// The JSON report.
pub(crate) fn json(r: &Report) -> serde_json::Value {
    use serde_json::json;
    let counts = r.counts();
    let n = |o: Outcome| counts.get(&o).copied().unwrap_or(0);
    let setting = |s: &super::Setting| json!({"name": s.name, "verdict": s.verdict, "note": s.note});
    json!({
        "class": r.class,
        "summary": {
            "ingresses": r.ingresses.len(),
            "unchanged": n(Outcome::Unchanged),
            "differences": n(Outcome::Differs),
            "refused": n(Outcome::Refused),
            "otherClasses": r.other_class.len(),
            "blockers": r.blockers().into_iter().map(|(key, count)| json!({"annotation": key, "ingresses": count})).collect::<Vec<_>>(),
        },
        "ingresses": r.ingresses.iter().map(|i| json!({
            "namespace": i.namespace,
            "name": i.name,
            "outcome": i.outcome.as_str(),
            "closed": i.closed,
            "routes": i.routes.iter().map(|route| json!({
                "host": route.host,
                "path": route.path,
                "pathType": route.path_type,
                "backend": route.backend,
                "tlsSecret": route.tls,
                "served": route.refused.is_none(),
                "why": route.refused,
            })).collect::<Vec<_>>(),
            "annotations": i.annotations.iter().map(|a| json!({
                "key": a.key,
                "value": a.value,
                "verdict": a.verdict.as_str(),
                "note": a.detail(),
                "closes": a.closes,
            })).collect::<Vec<_>>(),
            "problems": i.problems.iter().map(|p| json!({
                "field": p.field,
                "reason": p.reason,
                "severity": if p.severity == Severity::Rejected { "rejected" } else { "warning" },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "otherClasses": r.other_class.iter().map(|(ns, name)| format!("{ns}/{name}")).collect::<Vec<_>>(),
        "configMap": r.configmap.as_ref().map(|(name, keys)| json!({"name": name, "keys": keys.iter().map(setting).collect::<Vec<_>>()})),
        "deployment": r.deployment.as_ref().map(|(name, flags)| json!({"name": name, "flags": flags.iter().map(setting).collect::<Vec<_>>()})),
        "streams": r.streams,
        "problems": r.other_problems.iter().map(|p| json!({
            "kind": p.kind.to_string(),
            "object": format!("{}/{}", p.object.0, p.object.1),
            "field": p.field,
            "reason": p.reason,
            "severity": if p.severity == Severity::Rejected { "rejected" } else { "warning" },
        })).collect::<Vec<_>>(),
        "fileErrors": r.file_errors,
        "refused": r.refused(),
    })
}

/// A Markdown table cell: pipes escaped, lines joined.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown report.
pub(crate) fn markdown(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "# Switching to Ferry: migration report\n")?;
    writeln!(out, "**{}**\n", summary(r))?;
    let blockers = r.blockers();
    if !blockers.is_empty() {
        writeln!(out, "## What blocks the switch\n\n| annotation | Ingresses refused |\n|---|---|")?;
        for (key, n) in blockers {
            writeln!(out, "| `{}` | {n} |", cell(&key))?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "## Ingresses\n\n| Ingress | outcome | routes | annotations not applied |\n|---|---|---|---|"
    )?;
    for i in &r.ingresses {
        let routes: Vec<String> = i
            .routes
            .iter()
            .map(|route| {
                let mark = if route.refused.is_some() { " ⛔" } else { "" };
                format!("`{}{}` → `{}`{mark}", route.host, route.path, route.backend)
            })
            .collect();
        let notes: Vec<String> = i
            .annotations
            .iter()
            .filter(|a| a.verdict != ingress_k8s::AnnotationVerdict::Applied || a.closes)
            .map(|a| format!("`{}` {}: {}", a.key, a.verdict.as_str(), a.detail()))
            .chain(i.problems.iter().map(|p| format!("`{}`: {}", p.field, p.reason)))
            .collect();
        writeln!(
            out,
            "| `{}/{}` | {} | {} | {} |",
            i.namespace,
            i.name,
            i.outcome.as_str(),
            cell(&routes.join("<br>")),
            cell(&notes.join("<br>"))
        )?;
    }
    for (title, settings) in [("ConfigMap", &r.configmap), ("Controller flags of", &r.deployment)] {
        if let Some((name, rows)) = settings {
            writeln!(out, "\n## {title} `{name}`\n\n| setting | verdict | note |\n|---|---|---|")?;
            for s in rows {
                writeln!(out, "| `{}` | {} | {} |", cell(&s.name), s.verdict, cell(&s.note))?;
            }
        }
    }
    if !r.other_problems.is_empty() || !r.file_errors.is_empty() {
        writeln!(out, "\n## Other problems\n")?;
        for e in &r.file_errors {
            writeln!(out, "- {}", cell(e))?;
        }
        for p in &r.other_problems {
            writeln!(out, "- {} `{}/{}` `{}`: {}", p.kind, p.object.0, p.object.1, p.field, cell(&p.reason))?;
        }
    }
    Ok(())
}
