//! Which Ingresses are ours: class name, legacy annotation, default class.

use k8s_openapi::api::networking::v1::Ingress;

use crate::{Config, Objects};

/// The legacy class annotation (the seed tutorial's `kubernetes.io/ingress.class: "nginx"`).
pub(crate) const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks the IngressClass that class-less Ingresses belong to.
pub(crate) const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Whether `ingress` belongs to this controller.
///
/// Like ingress-nginx: the legacy annotation decides when present, then `spec.ingressClassName`
/// (an IngressClass whose `spec.controller` is ours), then class-less Ingresses are ours when
/// our IngressClass is the default or `watch_ingress_without_class` is set.
pub(crate) fn is_ours(ingress: &Ingress, objects: &Objects, config: &Config) -> bool {
    if let Some(class) = ingress.metadata.annotations.as_ref().and_then(|a| a.get(CLASS_ANNOTATION)) {
        return *class == config.ingress_class;
    }
    if let Some(name) = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.as_ref()) {
        return objects
            .ingress_classes
            .get(&(String::new(), name.clone()))
            .is_some_and(|c| class_is_ours(c, config));
    }
    config.watch_ingress_without_class || has_default_class(objects, config)
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
