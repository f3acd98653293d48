//! What the validating admission webhook answers for an Ingress about to be written: the
//! same verdicts as `check`, computed on the controller's own store with the new Ingress in
//! place of the old. Nothing is ever executed: the Ingress is translated, as every Ingress
//! is, and its problems read (unlike ingress-nginx's webhook, which ran `nginx -t` on a
//! configuration rendered from user input: CVE-2025-1974).

use std::sync::Arc;

use ingress_core::EndpointStore;
use k8s_openapi::api::networking::v1::Ingress;

use crate::annotations::Verdict;
use crate::objects::key_of;
use crate::translate::{self, Severity, class};
use crate::{Config, Kind, Objects};

/// The webhook's answer for one Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Whether the write may go ahead.
    pub allowed: bool,
    /// Why not: each rule or annotation that would be rejected, or that would close the
    /// Ingress (an access restriction not applied), as `check` prints it.
    pub reasons: Vec<String>,
    /// Annotations that are `ignored` or `unknown`, and rules kept with a warning (a missing
    /// Service, say): the write goes ahead and `kubectl` shows these.
    pub warnings: Vec<String>,
}

/// Validates `ingress` as the controller would serve it with `objects` (the Ingress replacing
/// any of the same name). An Ingress that is not ours, or outside `--watch-namespace`, is
/// allowed without a look, as ingress-nginx allows it. `objects` is left as it was.
pub fn validate(objects: &mut Objects, config: &Config, ingress: Ingress) -> Admission {
    let cache = &mut translate::TranslationCache::default();
    validate_with(objects, config, ingress, cache, &crate::Changed::default())
}

/// [`validate`], with the controller's translation cache and its journal (see
/// [`translate::translate_changed`]): only the new Ingress, and what it reads, is translated.
/// `changed` must name the new Ingress's key, which the cache sees twice: with the new Ingress
/// and, at the next translation, as the stores hold it.
pub(crate) fn validate_with(
    objects: &mut Objects,
    config: &Config,
    ingress: Ingress,
    cache: &mut translate::TranslationCache,
    changed: &crate::Changed,
) -> Admission {
    let key = key_of(&ingress.metadata);
    if !class::is_ours(&ingress, objects, config)
        || config.watch_namespace.as_ref().is_some_and(|ns| ns.as_str() != &*key.0)
    {
        return Admission { allowed: true, ..Admission::default() };
    }
    let previous = objects.ingresses.insert(key.clone(), Arc::new(ingress.into()));
    let mut translation = translate::translate_changed(objects, config, cache, changed);
    match previous {
        Some(old) => objects.ingresses.insert(key.clone(), old),
        None => objects.ingresses.remove(&key),
    };
    let (_, problems) = translation.compile(&mut EndpointStore::new());

    // Secrets and ConfigMaps that Ingresses name are read once a served Ingress names them:
    // one only this new Ingress names is not in the store yet, and its absence proves nothing.
    // What depends on it is a warning here; the controller still fails closed if it is missing.
    let unread: Vec<String> = translation
        .referenced_secrets
        .iter()
        .filter(|k| !objects.secrets.contains_key(*k))
        .chain(translation.referenced_config_maps.iter().filter(|k| !objects.config_maps.contains_key(*k)))
        .map(|(ns, name)| format!("{ns}/{name} not found"))
        .collect();
    let unchecked = |text: &str| unread.iter().any(|u| text.contains(u.as_str()));
    const UNCHECKED: &str = " (not checked: the controller reads it once a served Ingress names it)";

    let mut answer = Admission::default();
    let reports = translation.ingresses.iter().find(|i| i.key == key).map(|i| i.annotations.as_slice());
    let reports = reports.unwrap_or_default();
    for r in reports {
        let line = format!("annotation {}: {}: {}", r.key, r.verdict, r.detail());
        match r.verdict {
            _ if unchecked(&r.note) => answer.warnings.push(format!("{line}{UNCHECKED}")),
            Verdict::Rejected => answer.reasons.push(line),
            _ if r.closes => answer.reasons.push(line),
            Verdict::Ignored | Verdict::Unknown => answer.warnings.push(line),
            Verdict::Applied => {}
        }
    }
    // The problems that only repeat an annotation's verdict are said once, above.
    let repeats = |field: &str, reason: &str| {
        reports.iter().any(|r| {
            field == format!("metadata.annotations[{}]", r.key)
                && (reason == r.detail() || reason == r.to_string())
        })
    };
    for p in problems.iter().filter(|p| p.kind == Kind::Ingress && p.object == key) {
        if repeats(&p.field, &p.reason) {
            continue;
        }
        let line = format!("{}: {}", p.field, p.reason);
        match p.severity {
            Severity::Rejected if unchecked(&p.reason) => answer.warnings.push(format!("{line}{UNCHECKED}")),
            Severity::Rejected => answer.reasons.push(line),
            Severity::Warning => answer.warnings.push(line),
        }
    }
    answer.allowed = answer.reasons.is_empty();
    answer
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Object;

    fn ingress(yaml: &str) -> Ingress {
        match crate::parse_manifest(std::path::Path::new("t.yaml"), yaml).unwrap().remove(0) {
            Object::Ingress(i) => i,
            other => panic!("{other:?}"),
        }
    }

    fn config() -> Config {
        Config { ingress_class: "nginx".into(), ..Config::default() }
    }

    const HEAD: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\n  namespace: default\n  annotations:\n    kubernetes.io/ingress.class: nginx\n";
    const RULES: &str = "spec:\n  rules:\n  - host: app.example.com\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}]}\n";

    #[test]
    fn a_good_ingress_passes_with_warnings_for_what_is_not_applied() {
        let mut objects = Objects::default();
        let yaml = format!(
            "{HEAD}    nginx.ingress.kubernetes.io/proxy-buffer-size: 8k\n    nginx.ingress.kubernetes.io/rewrite-targt: /\n{RULES}"
        );
        let answer = validate(&mut objects, &config(), ingress(&yaml));
        assert!(answer.allowed, "{answer:?}");
        assert!(answer.warnings.iter().any(|w| w.contains("proxy-buffer-size: ignored")), "{answer:?}");
        assert!(answer.warnings.iter().any(|w| w.contains("rewrite-targt: unknown")), "{answer:?}");
        assert!(objects.ingresses.is_empty(), "the store is left as it was");
    }

    #[test]
    fn rejected_rules_and_annotations_and_closed_ingresses_are_denied() {
        let mut objects = Objects::default();
        let bad_host = format!("{HEAD}{}", RULES.replace("app.example.com", "bad..host"));
        let answer = validate(&mut objects, &config(), ingress(&bad_host));
        assert!(!answer.allowed);
        assert!(answer.reasons[0].starts_with("spec.rules[0].host: invalid host `bad..host`"), "{answer:?}");

        let bad_value = format!("{HEAD}    nginx.ingress.kubernetes.io/proxy-connect-timeout: soon\n{RULES}");
        let answer = validate(&mut objects, &config(), ingress(&bad_value));
        assert!(!answer.allowed);
        assert!(
            answer.reasons[0]
                .starts_with("annotation nginx.ingress.kubernetes.io/proxy-connect-timeout: rejected"),
            "{answer:?}"
        );

        let closed = format!("{HEAD}    nginx.ingress.kubernetes.io/auth-type: digest\n{RULES}");
        let answer = validate(&mut objects, &config(), ingress(&closed));
        assert!(!answer.allowed);
        assert!(answer.reasons.iter().any(|r| r.contains("fail closed")), "{answer:?}");
        assert_eq!(answer.reasons.len(), 1, "said once: {answer:?}");
    }

    #[test]
    fn a_secret_the_store_cannot_have_yet_is_a_warning() {
        let mut objects = Objects::default();
        let yaml = format!(
            "{HEAD}    nginx.ingress.kubernetes.io/auth-type: basic\n    nginx.ingress.kubernetes.io/auth-secret: users\n{RULES}"
        );
        let answer = validate(&mut objects, &config(), ingress(&yaml));
        assert!(answer.allowed, "{answer:?}");
        assert!(
            answer
                .warnings
                .iter()
                .any(|w| w.contains("default/users not found") && w.contains("not checked")),
            "{answer:?}"
        );
    }

    #[test]
    fn other_classes_are_not_looked_at() {
        let mut objects = Objects::default();
        let other = format!(
            "{}{}",
            HEAD.replace("class: nginx", "class: traefik"),
            RULES.replace("app.example.com", "bad..host")
        );
        assert!(validate(&mut objects, &config(), ingress(&other)).allowed);
    }
}
