//! Which Ingresses are ours: class name, legacy annotation, default class.

use k8s_openapi::api::networking::v1::Ingress;

use super::cache::Read;
use crate::objects::stored_key;
use crate::{Config, Objects, StoredIngress};

/// The legacy class annotation (the seed tutorial's `kubernetes.io/ingress.class: "nginx"`).
pub(crate) const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks the IngressClass that class-less Ingresses belong to.
pub(crate) const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Whether `ingress` belongs to this controller.
///
/// Like ingress-nginx (`GetIngressClass`): `spec.ingressClassName` decides when set (an
/// IngressClass whose `spec.controller` is ours), then the legacy annotation, then class-less
/// Ingresses are ours when `watch_ingress_without_class` is set or, unlike ingress-nginx
/// (which leaves that to the API server's admission), our IngressClass is the default.
pub(crate) fn is_ours<'a>(ingress: impl Into<Claim<'a>>, objects: &Objects, config: &Config) -> bool {
    is_ours_reading(ingress.into(), objects, config, &mut |_| {})
}

/// What tells whether an Ingress is ours: its namespace, `spec.ingressClassName` and
/// annotations, from a stored Ingress or one just received.
#[derive(Clone, Copy)]
pub(crate) struct Claim<'a> {
    namespace: &'a str,
    class_name: Option<&'a str>,
    /// Its `kubernetes.io/ingress.class` annotation.
    class_annotation: Option<&'a str>,
}

/// A stored Ingress and its namespace (its key's: the stored Ingress does not repeat it).
impl<'a> From<(&'a str, &'a StoredIngress)> for Claim<'a> {
    fn from((namespace, ingress): (&'a str, &'a StoredIngress)) -> Self {
        Self {
            namespace,
            class_name: ingress.class_name.as_deref(),
            class_annotation: ingress.annotations.get(CLASS_ANNOTATION).map(String::as_str),
        }
    }
}

impl<'a> From<&'a Ingress> for Claim<'a> {
    fn from(ingress: &'a Ingress) -> Self {
        Self {
            namespace: ingress.metadata.namespace.as_deref().unwrap_or_default(),
            class_name: ingress.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref()),
            class_annotation: ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLASS_ANNOTATION))
                .map(String::as_str),
        }
    }
}

/// [`is_ours`], telling `read` each object it looked at (found or not), so a cached verdict
/// can be kept until one of them changes.
pub(crate) fn is_ours_reading(
    ingress: Claim<'_>,
    objects: &Objects,
    config: &Config,
    read: &mut dyn FnMut(Read),
) -> bool {
    let namespace = ingress.namespace;
    if config.watch_namespace_selector.is_some() {
        read(Read::Namespace(stored_key(&objects.namespaces, ("".into(), namespace.into()))));
    }
    if !namespace_selected(namespace, objects, config) {
        return false;
    }
    if let Some(name) = ingress.class_name {
        let key = stored_key(&objects.ingress_classes, ("".into(), name.into()));
        let ours = objects.ingress_classes.get(&key).is_some_and(|c| class_is_ours(c, config));
        read(Read::IngressClass(key));
        return ours;
    }
    if let Some(class) = ingress.class_annotation {
        return class == config.ingress_class;
    }
    if config.watch_ingress_without_class {
        return true;
    }
    read(Read::AnyIngressClass);
    has_default_class(objects, config)
}

/// Whether `namespace` is one `--watch-namespace-selector` selects (every namespace without
/// it): a Namespace of that name is known and its labels match. Judged on every translation,
/// so labelling a namespace takes its Ingresses in (or out) at once.
pub(crate) fn namespace_selected(namespace: &str, objects: &Objects, config: &Config) -> bool {
    let Some(selector) = &config.watch_namespace_selector else { return true };
    objects.namespaces.get(&("".into(), namespace.into())).is_some_and(|ns| {
        selector.matches(ns.metadata.labels.as_ref().unwrap_or(&std::collections::BTreeMap::new()))
    })
}

/// Whether an IngressClass is ours: its `spec.controller` is ours, or, with
/// `--ingress-class-by-name`, its name is `--ingress-class` (as ingress-nginx takes it).
fn class_is_ours(class: &k8s_openapi::api::networking::v1::IngressClass, config: &Config) -> bool {
    let controller = class.spec.as_ref().and_then(|s| s.controller.as_deref());
    controller == Some(config.controller_name.as_str())
        || (config.ingress_class_by_name
            && class.metadata.name.as_deref() == Some(config.ingress_class.as_str()))
}

fn has_default_class(objects: &Objects, config: &Config) -> bool {
    objects.ingress_classes.values().any(|class| {
        let ours = class_is_ours(class, config);
        let default = class
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .is_some_and(|v| v == "true");
        ours && default
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::Object;

    fn ingress(yaml: &str) -> Ingress {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn objects(classes: &str) -> Objects {
        let mut objects = Objects::new();
        for doc in classes.split("---") {
            if !doc.trim().is_empty() {
                objects.insert(Object::IngressClass(serde_yaml::from_str(doc).unwrap()));
            }
        }
        objects
    }

    const OURS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ferry}\nspec: {controller: ferry.dev/ingress-controller}\n";
    const OURS_DEFAULT: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ferry, annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}}\nspec: {controller: ferry.dev/ingress-controller}\n";
    const THEIRS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: other}\nspec: {controller: example.com/other}\n";

    #[test]
    fn a_namespace_selector_takes_only_the_ingresses_of_selected_namespaces() {
        let config = Config {
            watch_ingress_without_class: true,
            watch_namespace_selector: Some("team=web".parse().unwrap()),
            ..Config::default()
        };
        let in_ns = |ns: &str| {
            ingress(&format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: a, namespace: {ns}}}\n"
            ))
        };
        let mut objects = Objects::new();
        for (name, labels) in [("web", "{team: web}"), ("ops", "{team: ops}")] {
            let yaml =
                format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {labels}}}\n");
            objects.insert(Object::Namespace(serde_yaml::from_str(&yaml).unwrap()));
        }
        assert!(is_ours(&in_ns("web"), &objects, &config));
        assert!(!is_ours(&in_ns("ops"), &objects, &config), "labels that do not match");
        assert!(!is_ours(&in_ns("unknown"), &objects, &config), "a namespace not listed");
        let everyone = Config { watch_namespace_selector: None, ..config };
        assert!(is_ours(&in_ns("ops"), &objects, &everyone));
    }

    #[test]
    fn class_rules() {
        let config = Config::default();
        let by_name = |n: &str| {
            ingress(&format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: a}}\nspec: {{ingressClassName: {n}}}\n"
            ))
        };
        let by_annotation = |c: &str| {
            ingress(&format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: a, annotations: {{kubernetes.io/ingress.class: \"{c}\"}}}}\n"
            ))
        };
        let classless = ingress("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\n");
        let both = objects(&format!("{OURS}---\n{THEIRS}"));

        assert!(is_ours(&by_name("ferry"), &both, &config));
        assert!(!is_ours(&by_name("other"), &both, &config));
        assert!(!is_ours(&by_name("missing"), &both, &config));
        assert!(is_ours(&by_annotation("ferry"), &both, &config));
        assert!(!is_ours(&by_annotation("nginx"), &both, &config));
        let nginx = Config { ingress_class: "nginx".into(), ..Config::default() };
        assert!(is_ours(&by_annotation("nginx"), &Objects::new(), &nginx));

        // --ingress-class-by-name: the class named --ingress-class is ours, whoever controls it.
        let named =
            Config { ingress_class: "other".into(), ingress_class_by_name: true, ..Config::default() };
        assert!(is_ours(&by_name("other"), &both, &named));
        assert!(!is_ours(&by_name("other"), &both, &Config { ingress_class_by_name: false, ..named }));

        assert!(!is_ours(&classless, &both, &config));
        assert!(is_ours(&classless, &objects(OURS_DEFAULT), &config));
        let without_class = Config { watch_ingress_without_class: true, ..Config::default() };
        assert!(is_ours(&classless, &Objects::new(), &without_class));
    }
}
