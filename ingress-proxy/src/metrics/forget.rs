//! Dropping the request series of Ingresses that are gone, as ingress-nginx does after each
//! reload (its socket collector's `RemoveMetrics`): a cluster whose Ingresses come and go keeps
//! the series of those that exist, not of every one that ever took a request. Each route,
//! status and method a request had holds ingress-nginx's counter and four histograms and
//! Ferry's counter and histogram (about 1.1 KiB, [`super::series`]).
//!
//! Ferry goes one step further than ingress-nginx, whose `RemoveMetrics` goes by Ingress only:
//! when an Ingress changes, the series of the paths, Services and hosts it no longer routes go
//! too, and when a canary Ingress goes or changes its backends, the series its old backends
//! were counted under (by the Ingress it splits, in the `canary` label) go ([`Gone::changed`]).
//! Without that, a controller whose Ingresses are edited in place (a path or host renamed, a
//! Service swapped, a canary moved on, as deployment tools do) grows by a label set per edit for
//! as long as the Ingress lives.
//!
//! What is not removed: a request routed by a table from before the removal and finished after
//! it (a long download, a WebSocket) counts its series afresh, and nothing removes them again
//! until the Ingress goes (ingress-nginx does the same: its series are made from the requests'
//! log lines whenever they arrive). And a host that was an Ingress's rule host and becomes
//! another Ingress's `server-alias` of one of its hosts loses its series once (a counter reset,
//! which `rate()` absorbs).

use std::collections::{HashMap, HashSet};

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
    /// Namespace and Ingress, and the hosts (lower-case, as the `host` label has them) whose
    /// requests it no longer takes under any path.
    hosts: HashMap<(&'a str, &'a str), HashSet<String>>,
    /// Namespace, Ingress, path and Service that the Ingress still routes, and the hosts under
    /// which it no longer does.
    hosted: HashMap<(&'a str, &'a str, &'a str, &'a str), HashSet<String>>,
    /// Canary upstream names (`namespace-service-port`, the `canary` label) that a canary
    /// Ingress that went or changed no longer sends requests to.
    canaries: HashSet<String>,
}

impl<'a> Gone<'a> {
    /// The Ingresses in `gone` (namespace, name), whole.
    pub(crate) fn ingresses(gone: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self { ingresses: gone.into_iter().collect(), ..Self::default() }
    }

    /// Adds what `before` routed and `after` (the same Ingress, changed; `None`: deleted) no
    /// longer does: the `(path, Service)` pairs of its paths and its default backend that the
    /// request series are labelled with, the hosts they are labelled with, and, for a canary
    /// Ingress, the canary upstream names.
    pub(crate) fn changed(&mut self, before: &'a Ingress, after: Option<&'a Ingress>) {
        let (namespace, name) = (&*before.origin.namespace, &*before.origin.name);
        let now_canaries = after.filter(|a| a.canary.is_some()).map(canary_names).unwrap_or_default();
        if before.canary.is_some() {
            self.canaries.extend(canary_names(before).into_iter().filter(|c| !now_canaries.contains(c)));
        }
        let Some(after) = after else {
            self.ingresses.insert((namespace, name));
            return;
        };
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
        // Hosts: one the Ingress no longer names takes none of its series; one it still names
        // as a rule host takes those of the routes it still has under it (an alias serves
        // every path of the hosts it stands for).
        let named = names(after);
        let gone_hosts: HashSet<String> = names(before).into_iter().filter(|h| !named.contains(h)).collect();
        if !gone_hosts.is_empty() {
            self.hosts.entry((namespace, name)).or_default().extend(gone_hosts);
        }
        let aliases: HashSet<String> = after.aliases.iter().map(|a| a.to_ascii_lowercase()).collect();
        let now = hosted(after);
        for (host, path, service) in hosted(before) {
            let still = named.contains(&host) && !aliases.contains(&host);
            if still && !now.contains(&(host.clone(), path, service)) {
                self.hosted.entry((namespace, name, path, service)).or_default().insert(host);
            }
        }
    }

    /// Whether nothing went.
    pub(crate) fn is_empty(&self) -> bool {
        self.ingresses.is_empty()
            && self.routes.is_empty()
            && self.services.is_empty()
            && self.hosts.is_empty()
            && self.hosted.is_empty()
            && self.canaries.is_empty()
    }

    /// How many Ingresses went whole, and how many Ingresses' routes, Services, hosts and
    /// canary backends.
    pub(crate) fn len(&self) -> (usize, usize) {
        let parts = [
            self.routes.len(),
            self.services.len(),
            self.hosts.len(),
            self.hosted.len(),
            self.canaries.len(),
        ];
        (self.ingresses.len(), parts.iter().sum())
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
        if labels.get("canary").is_some_and(|c| self.canaries.contains(c)) {
            return true;
        }
        let Some(service) = labels.get("service") else { return false };
        let Some(path) = labels.get("path") else {
            return self.services.contains(&(namespace, ingress, service));
        };
        if self.routes.contains(&(namespace, ingress, path, service)) {
            return true;
        }
        labels.get("host").filter(|h| !h.is_empty()).is_some_and(|host| {
            self.hosts.get(&(namespace, ingress)).is_some_and(|hosts| hosts.contains(host))
                || self
                    .hosted
                    .get(&(namespace, ingress, path, service))
                    .is_some_and(|hosts| hosts.contains(host))
        })
    }
}

/// The exact hosts an Ingress's requests can be labelled with: its rules' exact hosts and its
/// `server-alias` names, lower-case (wildcard hosts are never a `host` label).
fn names(ingress: &Ingress) -> HashSet<String> {
    let rules = ingress.rules.iter().filter_map(|r| r.host.as_deref());
    rules
        .chain(ingress.aliases.iter().map(String::as_str))
        .filter(|h| !h.contains('*'))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Each exact rule host (lower-case) with the `(path, Service)` pairs of its paths, as
/// [`labelled`] writes them.
fn hosted(ingress: &Ingress) -> HashSet<(String, &str, &str)> {
    let rules = ingress.rules.iter().filter_map(|r| Some((r.host.as_deref()?, &r.paths)));
    rules
        .filter(|(host, _)| !host.contains('*'))
        .flat_map(|(host, paths)| {
            paths.iter().map(move |p| (host.to_ascii_lowercase(), written(&p.path), &*p.backend.service))
        })
        .collect()
}

/// The `canary` label values a canary Ingress's requests are counted under (by the Ingress it
/// splits): `namespace-service-port` of each backend, as the request path writes it.
fn canary_names(ingress: &Ingress) -> HashSet<String> {
    let paths = ingress.rules.iter().flat_map(|r| &r.paths).map(|p| &*p.backend);
    let default = ingress.default_backend.iter().map(|b| &**b);
    paths.chain(default).map(crate::pipeline::log::canary_upstream_name).collect()
}

/// A path as the series label writes it: `/` for an empty one.
fn written(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// The `(path, Service)` pairs an Ingress's requests can be counted under: each path as
/// written (`/` for an empty one), as the series label it, with its Service, and `/` with the
/// default backend's Service.
fn labelled(ingress: &Ingress) -> HashSet<(&str, &str)> {
    let paths = ingress.rules.iter().flat_map(|r| &r.paths).map(|p| (written(&p.path), &*p.backend.service));
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
        gone.changed(&before, Some(&after));

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
        unchanged.changed(&after, Some(&after));
        assert!(unchanged.is_empty(), "nothing dropped, nothing to list");
    }

    #[test]
    fn an_edited_ingress_loses_the_series_of_hosts_it_dropped_only() {
        let web = BackendRef::new("a", "web", 80);
        let ingress = |rules: &[(&str, &[&str])], aliases: &[&str]| {
            let mut ingress = Ingress::new(Origin::new("a", "web")).aliases(aliases.iter().copied());
            for &(host, paths) in rules {
                let mut rule = HostRule::host(host);
                for path in paths {
                    rule = rule.path(PathRule::prefix(*path, web.clone()));
                }
                ingress = ingress.rule(rule);
            }
            ingress
        };
        // `Old.example.com` (written in upper case) is renamed; `moved.example.com` keeps the
        // Ingress but no longer serves `/x` (another of its hosts still does); `alias.example.com`
        // stays an alias; `dropped-alias.example.com` goes.
        let before = ingress(
            &[
                ("Old.example.com", &["/x"]),
                ("moved.example.com", &["/x", "/y"]),
                ("kept.example.com", &["/x"]),
            ],
            &["alias.example.com", "dropped-alias.example.com"],
        );
        let after = ingress(
            &[("new.example.com", &["/x"]), ("moved.example.com", &["/y"]), ("kept.example.com", &["/x"])],
            &["alias.example.com"],
        );
        let mut gone = Gone::default();
        gone.changed(&before, Some(&after));

        let nginx = set(&["namespace", "ingress", "path", "service", "host"]);
        for (ingress, path, host) in [
            ("web", "/x", "old.example.com"),
            ("web", "/x", "moved.example.com"),
            ("web", "/y", "moved.example.com"),
            ("web", "/x", "kept.example.com"),
            ("web", "/x", "new.example.com"),
            ("web", "/x", "alias.example.com"),
            ("web", "/x", "dropped-alias.example.com"),
            // Another Ingress's series under the host that went.
            ("other", "/x", "old.example.com"),
        ] {
            count(&nginx, &["a", ingress, path, "web", host]);
        }
        assert_eq!(gone.remove_from(&nginx), 3);
        let kept = [
            "c-0 alias.example.com web a /x web",
            "c-0 kept.example.com web a /x web",
            "c-0 moved.example.com web a /y web",
            "c-0 new.example.com web a /x web",
            "c-0 old.example.com other a /x web",
        ];
        assert_eq!(left(&nginx), (kept.map(str::to_owned).to_vec(), 5));
        // Without the `host` label (`--metrics-per-host=false`) every path of the Ingress stays.
        let no_host = set(&["namespace", "ingress", "path", "service"]);
        count(&no_host, &["a", "web", "/x", "web"]);
        assert_eq!(gone.remove_from(&no_host), 0);
    }

    #[test]
    fn a_canary_that_goes_or_moves_on_takes_its_series_with_it() {
        let canary = |service: &str| {
            let mut ingress = Ingress::new(Origin::new("a", "web-canary")).rule(
                HostRule::host("web.example.com")
                    .path(PathRule::prefix("/", BackendRef::new("a", service, 80))),
            );
            ingress.canary = Some(Box::default());
            ingress
        };
        let (v1, v2) = (canary("web-v1"), canary("web-v2"));
        let nginx = set(&["namespace", "ingress", "path", "service", "canary"]);
        // Requests the canary took are counted under the Ingress it splits.
        for c in ["a-web-v1-80", "a-web-v2-80", ""] {
            count(&nginx, &["a", "web", "/", "web", c]);
        }

        let mut moved = Gone::default();
        moved.changed(&v1, Some(&v2));
        assert_eq!(moved.remove_from(&nginx), 1);
        let mut still = Gone::default();
        still.changed(&v2, Some(&v2));
        assert!(still.is_empty());

        let mut deleted = Gone::default();
        deleted.changed(&v2, None);
        assert_eq!(deleted.remove_from(&nginx), 1);
        assert_eq!(left(&nginx), (vec![" c-0 web a / web".to_owned()], 1));
    }
}
