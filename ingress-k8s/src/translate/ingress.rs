//! One Ingress → its core Ingress, problems and report, with what translating it read.
//!
//! The translation of an Ingress depends on the Ingress, the objects it looks up (its
//! Services, Secrets, ConfigMaps, IngressClass, Namespace), the controller ConfigMap's data,
//! the flags and the clock (certificate validity); [`translate_ingress`] returns the objects it
//! read with the result, so [`TranslationCache`](super::TranslationCache) can keep the result
//! until one of them changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use ingress_core::{
    BackendRef, CertificatePem, CertificateRef, HostRule, Origin, PathRule, PathType, PortRef,
};

use super::cache::{Read, SharedPolicies};
use super::{Certs, IndexMap, IngressInfo, Problem, Severity, class, load_certificate};
use crate::annotations::{self, Verdict};
use crate::objects::{Key, stored_key};
use crate::{Config, Kind, Objects, StoredBackend, StoredIngress, StoredPathType};

/// Everything a translation takes from one Ingress. An Ingress that is not ours gives an empty
/// one; one left out whole (`--disable-catch-all`) gives its problem only.
#[derive(Debug, Default)]
pub(crate) struct Translated {
    /// The core Ingress, shared with the builders it is added to.
    pub(crate) core: Option<Arc<ingress_core::Ingress>>,
    /// Its report, for status and events.
    pub(crate) info: Option<Arc<IngressInfo>>,
    /// Core indices → Kubernetes indices, to name the fields of core rejections.
    pub(crate) index: Option<Arc<IndexMap>>,
    /// Problems found while translating it.
    pub(crate) problems: Vec<Problem>,
    /// The TLS certificates it registered with the builder (registered again when reused).
    pub(crate) certificates: Vec<(CertificateRef, Arc<CertificatePem>)>,
    /// Its backends reached through their Service's cluster IP (`service-upstream`).
    pub(crate) cluster_ip_backends: Vec<BackendRef>,
    /// What it names and looks for (see [`Translation`](super::Translation)'s sets).
    pub(crate) names: Names,
}

/// The objects one Ingress names or looks for, as the translation's sets gather them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// ConfigMaps it names (`custom-headers`, `auth-proxy-set-headers`).
    pub(crate) referenced_config_maps: Vec<Key>,
    /// Secrets it names besides its TLS ones (`auth-secret`).
    pub(crate) referenced_secrets: Vec<Key>,
    /// Services it looked for, found or not.
    pub(crate) used_services: Vec<Key>,
    /// Secrets it looked for, found or not (TLS ones included).
    pub(crate) used_secrets: Vec<Key>,
}

impl Names {
    /// Each name once, sorted, in no more room than that (the cache keeps them).
    pub(crate) fn dedup(&mut self) {
        for list in [
            &mut self.referenced_config_maps,
            &mut self.referenced_secrets,
            &mut self.used_services,
            &mut self.used_secrets,
        ] {
            list.sort();
            list.dedup();
            list.shrink_to_fit();
        }
    }
}

/// What translating one Ingress read besides the Ingress: the result holds while these are
/// unchanged (and the controller ConfigMap, the flags) and the clock is before `until`.
#[derive(Debug)]
pub(crate) struct Reads {
    /// The objects looked at, found or not.
    pub(crate) objects: Vec<Read>,
    /// The Unix second from which a certificate it used may be judged otherwise.
    pub(crate) until: i64,
}

impl Default for Reads {
    fn default() -> Self {
        Self { objects: Vec::new(), until: i64::MAX }
    }
}

/// Translates one Ingress: nothing when it is not ours, its problem only when it is left out
/// whole; `controller` is the controller ConfigMap's data.
pub(crate) fn translate_ingress(
    objects: &Objects,
    config: &Config,
    controller: &BTreeMap<String, String>,
    certs: &mut Certs<'_>,
    policies: &mut SharedPolicies,
    key: &Key,
    ingress: &StoredIngress,
) -> (Translated, Reads) {
    let mut out = Translated::default();
    let mut reads = Reads::default();
    if !class::is_ours_reading((&*key.0, ingress).into(), objects, config, &mut |r| reads.objects.push(r)) {
        return (out, reads);
    }
    // --disable-catch-all: an Ingress with a default backend is left out whole, as
    // ingress-nginx leaves it out of its store.
    if config.disable_catch_all && ingress.default_backend.is_some() {
        out.problems.push(Problem {
            kind: Kind::Ingress,
            object: key.clone(),
            field: "spec.defaultBackend".into(),
            reason: "a catch-all Ingress is not served while --disable-catch-all is set".into(),
            severity: Severity::Rejected,
        });
        return (out, reads);
    }
    add_ingress(&mut out, &mut reads, certs, policies, objects, config, controller, key, ingress);
    out.names.dedup();
    reads.objects.sort_unstable();
    reads.objects.dedup();
    reads.objects.shrink_to_fit();
    (out, reads)
}

#[allow(clippy::too_many_arguments)]
fn add_ingress(
    out: &mut Translated,
    reads: &mut Reads,
    certs: &mut Certs<'_>,
    policies: &mut SharedPolicies,
    objects: &Objects,
    config: &Config,
    controller: &BTreeMap<String, String>,
    key: &Key,
    ingress: &StoredIngress,
) {
    let created = ingress.created;
    let annotations = &ingress.annotations;
    // The Services, Secrets and ConfigMaps the annotations look for, found or not.
    let asked_services = std::cell::RefCell::new(Vec::new());
    let asked_secrets = std::cell::RefCell::new(Vec::new());
    let asked_config_maps = std::cell::RefCell::new(Vec::new());
    let service_port = |name: &str| {
        let asked: Key = (key.0.clone(), name.into());
        let (service, port) = match objects.services.get_key_value(&asked) {
            Some((stored, service)) => (stored.clone(), service.first_port()),
            None => (asked, None),
        };
        asked_services.borrow_mut().push(service);
        port
    };
    let config_map = |ns: &str, name: &str| {
        let asked: Key = (ns.into(), name.into());
        let (key, found) = match objects.config_maps.get_key_value(&asked) {
            Some((stored, c)) => (stored.clone(), Some(c.data.clone().unwrap_or_default())),
            None => (asked, None),
        };
        asked_config_maps.borrow_mut().push(key);
        found
    };
    let allowed: Vec<String> = controller
        .get("global-allowed-response-headers")
        .map(|v| v.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    // `stringData` too: the API server folds it into `data`, a manifest file keeps it.
    let secret = |ns: &str, name: &str| {
        let secret = stored_key(&objects.secrets, (ns.into(), name.into()));
        let s = objects.secrets.get(&secret);
        asked_secrets.borrow_mut().push(secret);
        let s = s?;
        let data = s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
        let strings = s.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
        Some(data.chain(strings).collect())
    };
    let lookup = annotations::Lookup {
        service_port: &service_port,
        config_map: &config_map,
        allowed_response_headers: &allowed,
        namespace: &key.0,
        secret: &secret,
        ssl_passthrough: config.ssl_passthrough,
    };
    let mut read = annotations::read_with(annotations, &config.annotations_prefix, &lookup);
    if let Some(limit) = read.policy.rate_limit.as_mut() {
        // The Ingress's routes share one count per client address, as its nginx zone.
        limit.zone = format!("{}/{}", key.0, key.1);
    }
    let names = &mut out.names;
    names.referenced_config_maps.extend(read.config_maps.iter().cloned());
    names.referenced_secrets.extend(read.secrets.iter().cloned());
    names.used_secrets.extend(read.secrets.iter().cloned());
    let asked_services = asked_services.take();
    let asked_secrets = asked_secrets.take();
    reads.objects.extend(asked_services.iter().cloned().map(Read::Service));
    reads.objects.extend(asked_secrets.iter().cloned().map(Read::Secret));
    reads.objects.extend(asked_config_maps.take().into_iter().map(Read::ConfigMap));
    names.used_services.extend(asked_services);
    names.used_secrets.extend(asked_secrets);
    let paths = ingress.rules.iter().filter_map(|r| r.paths.as_ref()).flatten();
    let spec_backends = ingress.default_backend.as_deref().into_iter().chain(paths.map(|p| &*p.backend));
    // Each name once (an Ingress names few Services over many paths), copied once; each is
    // looked for (`backend_ref`).
    let backend_names: std::collections::BTreeSet<&str> =
        spec_backends.filter_map(|b| Some(&*b.service.as_ref()?.name)).collect();
    for name in backend_names {
        let service = stored_key(&objects.services, (key.0.clone(), name.into()));
        reads.objects.push(Read::Service(service.clone()));
        names.used_services.push(service);
    }
    let closed = read.policy.closed.clone();
    let mut core = ingress_core::Ingress::new(Origin::new(key.0.clone(), key.1.clone()).created_at(created));
    if read.policy != ingress_core::RoutePolicy::default() {
        core.policy = policies.share(annotations, read.policy);
    }
    if let Some(rule) = read.canary {
        core = core.as_canary(rule);
    }
    if let Some((service, port)) = read.fallback {
        core = core.fallback(BackendRef::new(key.0.clone(), service, port));
    }
    core = core.aliases(read.aliases);
    if read.www_redirect {
        core = core.with_www_redirect();
    }
    if read.ssl_passthrough {
        core = core.with_ssl_passthrough();
    }
    if let Some(auth) = read.client_auth.clone() {
        core = core.with_client_auth(auth);
    }
    let mut index = IndexMap::default();
    let mut problems = Vec::new();
    let mut problem = |field: String, reason: String, severity| {
        problems.push(Problem { kind: Kind::Ingress, object: key.clone(), field, reason, severity });
    };
    for report in read.reports.iter().filter(|r| r.verdict != Verdict::Applied || r.closes) {
        let severity = if report.verdict == Verdict::Rejected || report.closes {
            Severity::Rejected
        } else {
            Severity::Warning
        };
        // A rejected value's problem is already `rejected`; other verdicts say theirs.
        let reason = if report.verdict == Verdict::Rejected { report.detail() } else { report.to_string() };
        problem(format!("metadata.annotations[{}]", report.key), reason, severity);
    }
    // service-upstream: the annotation, else the ConfigMap's (false).
    let via_cluster_ip = read.service_upstream.unwrap_or_else(|| {
        controller
            .get("service-upstream")
            .is_some_and(|v| matches!(v.trim(), "1" | "t" | "T" | "TRUE" | "true" | "True"))
    });
    let mut through_cluster_ip = Vec::new();
    let mut backend_ref = |ns: &Arc<str>, backend: &StoredBackend, objects: &Objects| {
        backend_ref(ns, backend, objects).map(|(b, warning)| {
            if via_cluster_ip {
                through_cluster_ip.push(b.clone().via_cluster_ip());
                (b.via_cluster_ip(), warning)
            } else {
                (b, warning)
            }
        })
    };

    if let Some(backend) = &ingress.default_backend {
        match backend_ref(&key.0, backend, objects) {
            Ok((b, warning)) => {
                if let Some(w) = warning {
                    problem("spec.defaultBackend".into(), w, Severity::Warning);
                }
                core = core.default_backend(b);
            }
            Err(why) => problem("spec.defaultBackend".into(), why, Severity::Rejected),
        }
    }
    // The backends the paths named so far, each once: paths naming the same one share it.
    let mut backends: Vec<Arc<BackendRef>> = Vec::new();
    for (r, rule) in ingress.rules.iter().enumerate() {
        let Some(paths) = &rule.paths else { continue };
        let mut host = match &rule.host {
            Some(h) if !h.is_empty() => HostRule::host(h),
            _ => HostRule::any_host(),
        };
        let mut kept = Vec::new();
        for (p, path) in paths.iter().enumerate() {
            let field = format!("spec.rules[{r}].http.paths[{p}].backend");
            let (backend, warning) = match backend_ref(&key.0, &path.backend, objects) {
                Ok(found) => found,
                Err(why) => {
                    problem(field, why, Severity::Rejected);
                    continue;
                }
            };
            if let Some(w) = warning {
                problem(field, w, Severity::Warning);
            }
            let backend = crate::stored::shared(&mut backends, backend);
            let path_type = match path.path_type {
                StoredPathType::Exact => PathType::Exact,
                StoredPathType::Prefix => PathType::Prefix,
                _ => PathType::ImplementationSpecific,
            };
            let text = path.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
            host = host.path(PathRule::new(text, path_type, backend));
            kept.push(index_u32(p));
        }
        if !kept.is_empty() {
            core = core.rule(host);
            kept.shrink_to_fit();
            index.rules.push((index_u32(r), kept));
        }
    }
    // Kept as long as the Ingress is unchanged: no room to spare.
    core.rules.shrink_to_fit();
    index.rules.shrink_to_fit();
    out.cluster_ip_backends.extend(through_cluster_ip);
    if !ingress.tls.is_empty() {
        core = core.with_tls_section();
    }
    for (t, (hosts, secret)) in ingress.tls.iter().enumerate() {
        // No secret: the hosts get the default certificate, as in ingress-nginx.
        let Some(secret) = secret.clone().filter(|s| !s.is_empty()) else { continue };
        let secret = stored_key(&objects.secrets, (key.0.clone(), secret.into()));
        let (loaded, until) = load_certificate(objects, &secret, certs);
        reads.until = reads.until.min(until);
        reads.objects.push(Read::Secret(secret.clone()));
        out.names.used_secrets.push(secret);
        match loaded {
            Ok((certificate, pem)) => {
                core = core.tls(hosts, certificate.clone());
                if !out.certificates.iter().any(|(c, _)| *c == certificate) {
                    out.certificates.push((certificate, pem));
                }
                index.tls.push(index_u32(t));
            }
            Err(why) => problem(
                format!("spec.tls[{t}].secretName"),
                format!("{why}; its hosts get the default certificate"),
                Severity::Rejected,
            ),
        }
    }
    out.problems.extend(problems);
    core.tls.shrink_to_fit();
    out.certificates.shrink_to_fit();
    let mut reports = read.reports;
    reports.shrink_to_fit();
    // Most Ingresses keep every rule, path and TLS entry: their map would say nothing.
    out.index = (!index.is_identity()).then(|| Arc::new(index));
    let core = Arc::new(core);
    out.core = Some(Arc::clone(&core));
    out.info = Some(Arc::new(IngressInfo {
        key: key.clone(),
        uid: ingress.uid.clone(),
        generation: ingress.generation,
        status: ingress.status.clone(),
        annotations: reports,
        closed,
        core: Some(core),
    }));
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A Kubernetes backend → a core backend, plus a warning when its Service is missing (the
/// rule is kept and answers 503, like ingress-nginx). Its names are the Service's store key's,
/// shared.
fn backend_ref(
    namespace: &Arc<str>,
    backend: &StoredBackend,
    objects: &Objects,
) -> Result<(BackendRef, Option<String>), String> {
    if backend.resource {
        return Err("resource backends are not supported".into());
    }
    let Some(service) = &backend.service else {
        return Err("backend names no service".into());
    };
    let port = match &service.port {
        Some(p) => match p {
            (Some(name), _) if !name.is_empty() => PortRef::Name(name.to_string()),
            (_, Some(n)) => PortRef::Number(u16::try_from(*n).map_err(|_| format!("port {n} out of range"))?),
            _ => return Err(format!("service {} backend names no port", service.name)),
        },
        None => return Err(format!("service {} backend names no port", service.name)),
    };
    let wanted = (Arc::clone(namespace), Arc::from(&*service.name));
    let ((namespace, name), warning) = match objects.services.get_key_value(&wanted) {
        Some((stored, _)) => (stored.clone(), None),
        None => {
            let warning = format!("service {namespace}/{} not found; requests get 503", service.name);
            (wanted, Some(warning))
        }
    };
    Ok((BackendRef::new(namespace, name, port), warning))
}
