//! Dropping the request series of Ingresses that are gone, as ingress-nginx does after each
//! reload (its socket collector's `RemoveMetrics`): a cluster whose Ingresses come and go keeps
//! the series of those that exist, not of every one that ever took a request. Each route,
//! status and method a request had holds ingress-nginx's counter and four histograms and
//! Ferry's counter and histogram: about 10 KiB with their labels (measured with the prometheus
//! crate and a counting allocator), kept for good before this.
//!
//! Ferry goes one step further than ingress-nginx, whose `RemoveMetrics` goes by Ingress only:
//! when an Ingress changes, the series of the paths and Services it no longer routes go too
//! ([`Gone::changed`]). Without that, a controller whose Ingresses are edited in place (a path
//! renamed, a Service swapped, as deployment tools do) grows by those 10 KiB per edit for as
//! long as the Ingress lives.
//!
//! The request path looks its series up in per-thread caches of handles; a removal starts them
//! over ([`epoch`]), so an Ingress made again under the same name counts into series the
//! registry has, not into handles it dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use ingress_core::Ingress;
use prometheus::core::{Collector, MetricVec, MetricVecBuilder};

/// Removals so far: the per-thread caches of series handles start over when it changed.
static REMOVALS: AtomicU64 = AtomicU64::new(0);

/// The removal count the per-thread caches compare with the one they were filled under.
pub(crate) fn epoch() -> u64 {
    REMOVALS.load(Ordering::Relaxed)
}

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

    /// Whether a series with these (variable) labels belongs to something that went.
    fn holds(&self, labels: &HashMap<&str, &str>) -> bool {
        let (Some(&namespace), Some(&ingress)) = (labels.get("namespace"), labels.get("ingress")) else {
            return false;
        };
        if self.ingresses.contains(&(namespace, ingress)) {
            return true;
        }
        let Some(&service) = labels.get("service") else { return false };
        match labels.get("path") {
            Some(&path) => self.routes.contains(&(namespace, ingress, path, service)),
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

/// A family of series with variable labels (a `*Vec` of the prometheus crate).
pub(crate) trait SeriesVec: Collector {
    /// Removes the series of exactly these variable labels; whether there was one.
    fn remove_series(&self, labels: &HashMap<&str, &str>) -> bool;
}

impl<T: MetricVecBuilder> SeriesVec for MetricVec<T> {
    fn remove_series(&self, labels: &HashMap<&str, &str>) -> bool {
        self.remove(labels).is_ok()
    }
}

/// Removes, from each of `vecs`, the series whose labels name something in `gone` (an Ingress,
/// or a route or Service of one), as `listed` (a counter, cheap to list: histograms carry their
/// buckets) has them: the request path makes the series of all of `vecs` with the same labels,
/// `listed`'s among them. Returns how many series went.
pub(crate) fn remove(listed: &dyn SeriesVec, vecs: &[&dyn SeriesVec], gone: &Gone<'_>) -> usize {
    if gone.is_empty() {
        return 0;
    }
    // The constant labels (the controller's) come with each series but are no part of the key
    // `remove` takes.
    let variable: HashSet<&str> =
        listed.desc().iter().flat_map(|d| d.variable_labels.iter().map(String::as_str)).collect();
    let families = listed.collect();
    let mut removed = 0;
    for series in families.iter().flat_map(|f| f.get_metric()) {
        let labels: HashMap<&str, &str> = series
            .get_label()
            .iter()
            .filter(|l| variable.contains(l.get_name()))
            .map(|l| (l.get_name(), l.get_value()))
            .collect();
        if gone.holds(&labels) {
            removed += vecs.iter().filter(|v| v.remove_series(&labels)).count();
        }
    }
    if removed > 0 {
        REMOVALS.fetch_add(1, Ordering::Relaxed);
    }
    removed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ingress_core::{BackendRef, HostRule, Origin, PathRule};
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

    use super::*;

    /// The label values of each series of `vec` (its labels in name order), sorted.
    fn left(vec: &IntCounterVec) -> Vec<String> {
        let mut left: Vec<String> = vec.collect()[0]
            .get_metric()
            .iter()
            .map(|m| m.get_label().iter().map(|l| l.get_value()).collect::<Vec<_>>().join(" "))
            .collect();
        left.sort();
        left
    }

    #[test]
    fn removes_the_series_of_gone_ingresses_only() {
        let opts = Opts::new("requests", "help").const_label("controller_pod", "c-0");
        let requests = IntCounterVec::new(opts, &["namespace", "ingress", "status"]).unwrap();
        let duration =
            HistogramVec::new(HistogramOpts::new("duration", "help"), &["namespace", "ingress", "status"])
                .unwrap();
        for (ns, ing, status) in
            [("a", "web", "200"), ("a", "web", "503"), ("a", "api", "200"), ("b", "web", "200")]
        {
            requests.with_label_values(&[ns, ing, status]).inc();
        }
        duration.with_label_values(&["a", "web", "200"]).observe(0.1);
        duration.with_label_values(&["a", "web", "503"]).observe(0.1);
        let before = epoch();

        let gone = Gone::ingresses([("a", "web"), ("c", "never-seen")]);
        assert_eq!(remove(&requests, &[&requests, &duration], &gone), 4);
        assert!(epoch() > before, "the per-thread caches start over");
        assert_eq!(left(&requests), ["c-0 api a 200", "c-0 web b 200"]);
        assert!(duration.collect()[0].get_metric().is_empty());

        let unchanged = epoch();
        assert_eq!(remove(&requests, &[&requests, &duration], &gone), 0);
        assert_eq!(remove(&requests, &[&requests], &Gone::default()), 0);
        assert_eq!(epoch(), unchanged, "nothing removed, the caches stay");
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

        let nginx =
            IntCounterVec::new(Opts::new("nginx", "help"), &["namespace", "ingress", "path", "service"])
                .unwrap();
        let ferry =
            IntCounterVec::new(Opts::new("ferry", "help"), &["namespace", "ingress", "service"]).unwrap();
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
            nginx.with_label_values(&[ns, ing, path, service]).inc();
            ferry.with_label_values(&[ns, ing, service]).inc();
        }
        assert_eq!(remove(&nginx, &[&nginx], &gone), 5);
        assert_eq!(left(&nginx), ["web a /kept one", "web a /moved one", "web b /old one"]);
        // Ferry's series have no path: those of a Service the Ingress still routes stay.
        assert_eq!(remove(&ferry, &[&ferry], &gone), 2);
        assert_eq!(left(&ferry), ["web a one", "web b one"]);

        let mut unchanged = Gone::default();
        unchanged.changed(&after, &after);
        assert!(unchanged.is_empty(), "nothing dropped, nothing to list");
    }
}
