//! Dropping the request series of Ingresses that are gone, as ingress-nginx does after each
//! reload (its socket collector's `RemoveMetrics`): a cluster whose Ingresses come and go keeps
//! the series of those that exist, not of every one that ever took a request. Each route,
//! status and method a request had holds ingress-nginx's counter and four histograms and
//! Ferry's counter and histogram (about 1.1 KiB, [`super::series`]).
//!
//! Ferry goes one step further than ingress-nginx, whose `RemoveMetrics` goes by Ingress only:
//! when an Ingress changes, the series of the paths and Services it no longer routes go too
//! ([`Gone::changed`]). Without that, a controller whose Ingresses are edited in place (a path
//! renamed, a Service swapped, as deployment tools do) grows by a label set per edit for as
//! long as the Ingress lives.

use std::collections::HashSet;

use ingress_core::Ingress;

use super::series::{Labels, SeriesSet};

/// What left the configuration: whole Ingresses, and routes of Ingresses that stay.
#[derive(Debug, Default)]
pub(crate) struct Gone<'a> {
    /// Ingresses, by namespace and name.
    ingresses: HashSet<(&'a str, &'a str)>,
    /// Namespace, Ingress, path and Service of ingress-nginx's series no route makes any more.
    routes: HashSet<(&'a str, &'a str, &'a str, &'a str)>,
    /// Namespace, Ingress and Service of Ferry's series (no path label) no route makes any more.
    services: HashSet<(&'a str, &'a str, &'a str)>,
}

impl<'a> Gone<'a> {
    /// The Ingresses in `gone` (namespace, name), whole.
    pub(crate) fn ingresses(gone: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self { ingresses: gone.into_iter().collect(), ..Self::default() }
    }

    /// Adds what `before` routed and `after` (the same Ingress, changed) no longer does: the
    /// `(path, Service)` pairs of its paths and its default backend that the request series
    /// are labelled with.
    pub(crate) fn changed(&mut self, before: &'a Ingress, after: &'a Ingress) {
        let (namespace, name) = (&*before.origin.namespace, &*before.origin.name);
        let now = labelled(after);
        let services: HashSet<&str> = now.iter().map(|&(_, service)| service).collect();
        for (path, service) in labelled(before) {
            if !now.contains(&(path, service)) {
                self.routes.insert((namespace, name, path, service));
            }
            if !services.contains(service) {
                self.services.insert((namespace, name, service));
            }
        }
    }

    /// Whether nothing went.
    pub(crate) fn is_empty(&self) -> bool {
        self.ingresses.is_empty() && self.routes.is_empty() && self.services.is_empty()
    }

    /// How many Ingresses went whole, and how many Ingresses' routes and Services.
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.ingresses.len(), self.routes.len() + self.services.len())
    }

    /// Removes from `set` the series whose labels name something that went (an Ingress, or a
    /// route or Service of one); how many label sets went.
    pub(crate) fn remove_from(&self, set: &SeriesSet) -> usize {
        if self.is_empty() {
            return 0;
        }
        set.remove(|labels| self.holds(labels))
    }

    /// Whether a series with these labels belongs to something that went.
    fn holds(&self, labels: &Labels<'_>) -> bool {
        let (Some(namespace), Some(ingress)) = (labels.get("namespace"), labels.get("ingress")) else {
            return false;
        };
        if self.ingresses.contains(&(namespace, ingress)) {
            return true;
        }
        let Some(service) = labels.get("service") else { return false };
        match labels.get("path") {
            Some(path) => self.routes.contains(&(namespace, ingress, path, service)),
            None => self.services.contains(&(namespace, ingress, service)),
        }
    }
}

/// The `(path, Service)` pairs an Ingress's requests can be counted under: each path as
/// written (`/` for an empty one), as the series label it, with its Service, and `/` with the
/// default backend's Service.
fn labelled(ingress: &Ingress) -> HashSet<(&str, &str)> {
    let paths = ingress.rules.iter().flat_map(|r| &r.paths).map(|p| {
        let written = if p.path.is_empty() { "/" } else { &*p.path };
        (written, &*p.backend.service)
    });
    let default = ingress.default_backend.iter().map(|b| ("/", &*b.service));
    paths.chain(default).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use ingress_core::{BackendRef, HostRule, Origin, PathRule};
    use prometheus::core::Collector;

    use super::super::series::{Kind, Registered, epoch};
    use super::*;

    /// A set of a counter and a histogram with `labels`, and the controller's constant label.
    fn set(labels: &[&'static str]) -> std::sync::Arc<SeriesSet> {
        let constant = HashMap::from([("controller_pod".to_owned(), "c-0".to_owned())]);
        let families =
            [("requests", "help", Kind::Counter), ("duration", "help", Kind::Histogram(&[0.1, 1.0]))];
        std::sync::Arc::new(SeriesSet::new(labels, &constant, &families).unwrap())
    }

    /// Counts a request with these label values (a count and an observation).
    fn count(set: &SeriesSet, values: &[&str]) {
        set.with(values, |series| {
            series.inc(0);
            series.observe(1, 0.05);
        });
    }

    /// The label values of each series of the set's counter (its labels in name order),
    /// sorted, and how many series its histogram has.
    fn left(set: &std::sync::Arc<SeriesSet>) -> (Vec<String>, usize) {
        let families = Registered(std::sync::Arc::clone(set)).collect();
        let mut left: Vec<String> = families[0]
            .get_metric()
            .iter()
            .map(|m| m.get_label().iter().map(|l| l.get_value()).collect::<Vec<_>>().join(" "))
            .collect();
        left.sort();
        (left, families[1].get_metric().len())
    }

    #[test]
    fn removes_the_series_of_gone_ingresses_only() {
        let requests = set(&["namespace", "ingress", "status"]);
        for values in [["a", "web", "200"], ["a", "web", "503"], ["a", "api", "200"], ["b", "web", "200"]] {
            count(&requests, &values);
        }
        let before = epoch();

        let gone = Gone::ingresses([("a", "web"), ("c", "never-seen")]);
        assert_eq!(gone.remove_from(&requests), 2);
        assert!(epoch() > before, "the per-thread caches start over");
        assert_eq!(left(&requests), (vec!["c-0 api a 200".to_owned(), "c-0 web b 200".to_owned()], 2));

        let unchanged = epoch();
        assert_eq!(gone.remove_from(&requests), 0);
        assert_eq!(Gone::default().remove_from(&requests), 0);
        assert_eq!(epoch(), unchanged, "nothing removed, the caches stay");

        // Counted again after the removal: a fresh series, not the dropped one.
        count(&requests, &["a", "web", "200"]);
        let families = Registered(std::sync::Arc::clone(&requests)).collect();
        let web = families[0].get_metric().iter().find(|m| m.get_label()[1].get_value() == "web").unwrap();
        assert_eq!(web.get_counter().get_value(), 1.0);
    }

    #[test]
    fn an_edited_ingress_loses_the_series_of_routes_it_dropped_only() {
        let backend = |service: &str| BackendRef::new("a", service, 80);
        let ingress = |paths: &[(&str, &str)], default: Option<&str>| {
            let mut rule = HostRule::host("web.example.com");
            for &(path, service) in paths {
                rule = rule.path(PathRule::prefix(path, backend(service)));
            }
            let mut ingress = Ingress::new(Origin::new("a", "web")).rule(rule);
            ingress.default_backend = default.map(|s| std::sync::Arc::new(backend(s)));
            ingress
        };
        let before =
            ingress(&[("/old", "one"), ("/kept/", "one"), ("/api", "two"), ("/moved", "two")], Some("three"));
        // `/old` went; `/kept/` is now written `/kept` (a series label of its own, though both
        // match alike); `/moved` goes to `one` now; `two` is routed by no path any more; the
        // default backend went.
        let after = ingress(&[("/kept", "one"), ("/moved", "one"), ("/api", "one")], None);
        let mut gone = Gone::default();
        gone.changed(&before, &after);

        let nginx = set(&["namespace", "ingress", "path", "service"]);
        let ferry = set(&["namespace", "ingress", "service"]);
        for (ns, ing, path, service) in [
            ("a", "web", "/old", "one"),
            ("a", "web", "/kept/", "one"),
            ("a", "web", "/kept", "one"),
            ("a", "web", "/api", "two"),
            ("a", "web", "/moved", "two"),
            ("a", "web", "/moved", "one"),
            ("a", "web", "/", "three"),
            // Another Ingress's series with the same path and Service.
            ("b", "web", "/old", "one"),
        ] {
            count(&nginx, &[ns, ing, path, service]);
            count(&ferry, &[ns, ing, service]);
        }
        assert_eq!(gone.remove_from(&nginx), 5);
        let kept = ["c-0 web a /kept one", "c-0 web a /moved one", "c-0 web b /old one"];
        assert_eq!(left(&nginx), (kept.map(str::to_owned).to_vec(), 3));
        // Ferry's series have no path: those of a Service the Ingress still routes stay.
        assert_eq!(gone.remove_from(&ferry), 2);
        assert_eq!(left(&ferry), (vec!["c-0 web a one".to_owned(), "c-0 web b one".to_owned()], 2));

        let mut unchanged = Gone::default();
        unchanged.changed(&after, &after);
        assert!(unchanged.is_empty(), "nothing dropped, nothing to list");
    }
}
