//! `check`'s report: what happens to each Ingress if Ferry takes over, read from the same
//! translation and verdicts the controller uses, built once and written as text, JSON or
//! Markdown ([`render`]).

use std::collections::BTreeMap;

use ingress_k8s::{
    AnnotationReport, AnnotationVerdict, IngressInfo, Kind, Objects, Problem, Severity, StoredBackend,
    StoredIngress,
};

pub(crate) mod render;

/// What becomes of an Ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// Served as ingress-nginx serves it.
    Unchanged,
    /// Served, with differences (annotations ignored or unknown, warnings).
    Differs,
    /// Some of it is refused (a rejected rule or annotation) or fails closed (`503`).
    Refused,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Differs => "differs",
            Outcome::Refused => "refused",
        }
    }
}

/// One path of an Ingress, as Ferry would serve it.
#[derive(Debug, Clone)]
pub(crate) struct RouteLine {
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) path_type: String,
    /// `namespace/service:port`.
    pub(crate) backend: String,
    /// The TLS Secret of the host (`None`: plain HTTP only, or the default certificate).
    pub(crate) tls: Option<String>,
    /// Why it is not served as written (`None`: served).
    pub(crate) refused: Option<String>,
}

/// One Ingress's part of the report.
#[derive(Debug, Clone)]
pub(crate) struct IngressReport {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
    pub(crate) routes: Vec<RouteLine>,
    pub(crate) annotations: Vec<AnnotationReport>,
    /// Problems besides the annotations' own verdicts (rule conflicts, missing Services…).
    pub(crate) problems: Vec<Problem>,
    /// Why every path answers `503` (an access restriction that cannot be applied).
    pub(crate) closed: Option<String>,
}

/// One ConfigMap key or controller flag, and what becomes of it.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    pub(crate) name: String,
    pub(crate) verdict: &'static str,
    pub(crate) note: String,
}

/// The whole report.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) class: String,
    pub(crate) ingresses: Vec<IngressReport>,
    /// Ingresses of other classes, left alone.
    pub(crate) other_class: Vec<(String, String)>,
    /// The `--configmap` ConfigMap's name and keys.
    pub(crate) configmap: Option<(String, Vec<Setting>)>,
    /// The ingress-nginx Deployment found, and its flags.
    pub(crate) deployment: Option<(String, Vec<Setting>)>,
    /// The TCP and UDP services served.
    pub(crate) streams: Vec<String>,
    /// Problems of other objects and of the controller's settings.
    pub(crate) other_problems: Vec<Problem>,
    /// Files that could not be read (standalone mode).
    pub(crate) file_errors: Vec<String>,
    /// Routes and hosts of the whole table.
    pub(crate) totals: (usize, usize),
    /// Objects read.
    pub(crate) objects: usize,
}

impl Report {
    /// How many Ingresses had each outcome.
    pub(crate) fn counts(&self) -> BTreeMap<Outcome, usize> {
        let mut counts = BTreeMap::new();
        for i in &self.ingresses {
            *counts.entry(i.outcome).or_insert(0) += 1;
        }
        counts
    }

    /// The annotations that refuse (or close) Ingresses, with how many, most first; rule
    /// problems count under `rules`.
    pub(crate) fn blockers(&self) -> Vec<(String, usize)> {
        let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
        for i in self.ingresses.iter().filter(|i| i.outcome == Outcome::Refused) {
            let mut keys: Vec<String> = i
                .annotations
                .iter()
                .filter(|a| a.verdict == AnnotationVerdict::Rejected || a.closes)
                .map(|a| a.key.clone())
                .collect();
            if i.problems
                .iter()
                .any(|p| p.severity == Severity::Rejected && !p.field.starts_with("metadata.annotations"))
            {
                keys.push("rules (conflicts, invalid hosts or paths, missing Services)".to_owned());
            }
            keys.dedup();
            for key in keys {
                *by_key.entry(key).or_insert(0) += 1;
            }
        }
        let mut ranked: Vec<(String, usize)> = by_key.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked
    }

    /// What is refused or fails closed: Ingresses, unreadable files, ConfigMap keys and other
    /// objects' rejected problems.
    pub(crate) fn rejections(&self) -> usize {
        self.file_errors.len()
            + self.ingresses.iter().filter(|i| i.outcome == Outcome::Refused).count()
            + self
                .configmap
                .as_ref()
                .map_or(0, |(_, keys)| keys.iter().filter(|k| k.verdict == "rejected").count())
            + self.other_problems.iter().filter(|p| p.severity == Severity::Rejected).count()
    }

    /// Whether anything is refused or fails closed (the exit status).
    pub(crate) fn refused(&self) -> bool {
        self.rejections() > 0
    }
}

/// The report of one Ingress of ours.
pub(crate) fn ingress_report(
    ingress: &StoredIngress,
    info: &IngressInfo,
    problems: Vec<Problem>,
) -> IngressReport {
    let annotations = info.annotations.clone();
    // Problems that only repeat an annotation's verdict are left to the verdict.
    let problems: Vec<Problem> = problems
        .into_iter()
        .filter(|p| {
            !annotations.iter().any(|r| {
                p.field == format!("metadata.annotations[{}]", r.key)
                    && (p.reason == r.detail() || p.reason == r.to_string())
            })
        })
        .collect();
    let routes = routes_of(&info.key.0, ingress, &problems, info.closed.as_deref());
    let refused = info.closed.is_some()
        || annotations.iter().any(|a| a.verdict == AnnotationVerdict::Rejected || a.closes)
        || problems.iter().any(|p| p.severity == Severity::Rejected);
    let differs = annotations.iter().any(|a| a.verdict != AnnotationVerdict::Applied)
        || problems.iter().any(|p| p.severity == Severity::Warning);
    let outcome = if refused {
        Outcome::Refused
    } else if differs {
        Outcome::Differs
    } else {
        Outcome::Unchanged
    };
    IngressReport {
        namespace: info.key.0.to_string(),
        name: info.key.1.to_string(),
        outcome,
        routes,
        annotations,
        problems,
        closed: info.closed.clone(),
    }
}

/// Each path of `ingress` as written, with why it is not served when it is not.
fn routes_of(
    namespace: &str,
    ingress: &StoredIngress,
    problems: &[Problem],
    closed: Option<&str>,
) -> Vec<RouteLine> {
    let tls_of = |host: &str| {
        ingress.tls.iter().find_map(|(hosts, secret)| {
            hosts.iter().any(|h| h == host).then(|| secret.clone().unwrap_or_default())
        })
    };
    let refused_at = |prefixes: &[String]| {
        problems
            .iter()
            .filter(|p| {
                p.severity == Severity::Rejected && prefixes.iter().any(|f| p.field.starts_with(f.as_str()))
            })
            .map(|p| p.reason.clone())
            .next()
    };
    let backend_of = |b: &StoredBackend| match &b.service {
        Some(s) => {
            let port = s.port.as_ref().map_or_else(String::new, |p| match p {
                (Some(name), _) => name.to_string(),
                (None, Some(n)) => n.to_string(),
                (None, None) => String::new(),
            });
            format!("{namespace}/{}:{port}", s.name)
        }
        None => "(resource backend)".to_owned(),
    };
    let mut out = Vec::new();
    for (r, rule) in ingress.rules.iter().enumerate() {
        let host = rule.host.clone().unwrap_or_else(|| "*".to_owned());
        for (p, path) in rule.paths.iter().flatten().enumerate() {
            let fields = [format!("spec.rules[{r}].host"), format!("spec.rules[{r}].http.paths[{p}]")];
            let refused = refused_at(&fields).or_else(|| closed.map(|why| format!("answers 503: {why}")));
            out.push(RouteLine {
                host: host.clone(),
                path: path.path.as_deref().unwrap_or("/").to_owned(),
                path_type: path.path_type.as_str().to_owned(),
                backend: backend_of(&path.backend),
                tls: rule.host.as_deref().and_then(tls_of),
                refused,
            });
        }
    }
    if let Some(backend) = &ingress.default_backend {
        out.push(RouteLine {
            host: "*".to_owned(),
            path: "(default backend)".to_owned(),
            path_type: String::new(),
            backend: backend_of(backend),
            tls: None,
            refused: refused_at(&["spec.defaultBackend".to_owned()])
                .or_else(|| closed.map(|why| format!("answers 503: {why}"))),
        });
    }
    out
}

/// The objects `objects` holds, counted.
pub(crate) fn count(objects: &Objects) -> usize {
    objects.ingress_classes.len()
        + objects.ingresses.len()
        + objects.services.len()
        + objects.endpoint_slices.len()
        + objects.secrets.len()
        + objects.config_maps.len()
}

/// Problems grouped by the object they are about.
pub(crate) fn by_object(problems: &[Problem]) -> BTreeMap<(Kind, String, String), Vec<Problem>> {
    let mut grouped: BTreeMap<(Kind, String, String), Vec<Problem>> = BTreeMap::new();
    for p in problems {
        grouped.entry((p.kind, p.object.0.to_string(), p.object.1.to_string())).or_default().push(p.clone());
    }
    grouped
}
