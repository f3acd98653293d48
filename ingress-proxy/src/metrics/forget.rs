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
//! A request routed by a table from before the removal and finished after it (a long
//! download, a WebSocket) does not make the series again (ingress-nginx's do: its series are
//! made from the requests' log lines whenever they arrive), as long as the set remembers the
//! removal: ten minutes, the last 256 removals ([`super::series`]); one that outlasts that
//! makes its series again, and they stay until the Ingress goes. A host that was an Ingress's
//! rule host and becomes another Ingress's `server-alias` of one of its hosts loses its series
//! once (a counter reset, which `rate()` absorbs).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ingress_core::Ingress;

use super::series::{Doomed, Labels, SeriesSet};

/// What left the configuration: whole Ingresses, routes of Ingresses that stay, and canary
/// backends. It owns its names: a removal keeps it for a while ([`super::series`]).
#[derive(Debug, Default)]
pub(crate) struct Gone {
    /// By namespace, then Ingress name: what of that Ingress went.
    by_ingress: HashMap<Box<str>, HashMap<Box<str>, Went>>,
    /// Canary upstream names (`namespace-service-port`, the `canary` label) that a canary
    /// Ingress that went or changed no longer sends requests to.
    canaries: Names,
}

/// What of one Ingress went.
#[derive(Debug, Default)]
struct Went {
    /// All of it.
    whole: bool,
    /// By path: the Services of ingress-nginx's series no route of it makes any more.
    routes: HashMap<Box<str>, Names>,
    /// The Services of Ferry's series (no path label) no route of it makes any more.
    services: Names,
    /// The hosts (lower-case, as the `host` label has them) it no longer names.
    hosts: Names,
    /// By path, then Service: the hosts under which it no longer routes the pair (another of
    /// its hosts still does).
    hosted: HashMap<Box<str>, HashMap<Box<str>, Names>>,
}

/// A set of names (Services, hosts, canary upstreams).
type Names = HashSet<Box<str>>;

impl Went {
    fn is_empty(&self) -> bool {
        !self.whole
            && self.routes.is_empty()
            && self.services.is_empty()
            && self.hosts.is_empty()
            && self.hosted.is_empty()
    }
}

impl Gone {
    /// The Ingresses in `gone` (namespace, name), whole.
    pub(crate) fn ingresses<'a>(gone: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut this = Self::default();
        for (namespace, name) in gone {
            this.went(namespace, name).whole = true;
        }
        this
    }

    /// The entry of an Ingress, made empty if there is none.
    fn went(&mut self, namespace: &str, name: &str) -> &mut Went {
        self.by_ingress.entry(namespace.into()).or_default().entry(name.into()).or_default()
    }

    /// Adds what `before` routed and `after` (the same Ingress, changed; `None`: deleted) no
    /// longer does: the `(path, Service)` pairs of its paths and its default backend that the
    /// request series are labelled with, the hosts they are labelled with, and, for a canary
    /// Ingress, the canary upstream names.
    pub(crate) fn changed(&mut self, before: &Ingress, after: Option<&Ingress>) {
        let now_canaries = after.filter(|a| a.canary.is_some()).map(canary_names).unwrap_or_default();
        if before.canary.is_some() {
            let gone = canary_names(before).into_iter().filter(|c| !now_canaries.contains(c));
            self.canaries.extend(gone.map(String::into_boxed_str));
        }
        let mut went = Went { whole: after.is_none(), ..Went::default() };
        if let Some(after) = after {
            let now = labelled(after);
            let services: HashSet<&str> = now.iter().map(|&(_, service)| service).collect();
            for (path, service) in labelled(before) {
                if !now.contains(&(path, service)) {
                    went.routes.entry(path.into()).or_default().insert(service.into());
                }
                if !services.contains(service) {
                    went.services.insert(service.into());
                }
            }
            // Hosts: one the Ingress no longer names takes none of its series; one it still
            // names as a rule host takes those of the routes it still has under it (an alias
            // serves every path of the hosts it stands for).
            let named = names(after);
            went.hosts
                .extend(names(before).into_iter().filter(|h| !named.contains(h)).map(String::into_boxed_str));
            let aliases: HashSet<String> = after.aliases.iter().map(|a| a.to_ascii_lowercase()).collect();
            let now = hosted(after);
            for (host, path, service) in hosted(before) {
                let still = named.contains(&host) && !aliases.contains(&host);
                if still && !now.contains(&(host.clone(), path, service)) {
                    let services = went.hosted.entry(path.into()).or_default();
                    services.entry(service.into()).or_default().insert(host.into_boxed_str());
                }
            }
        }
        if went.is_empty() {
            return;
        }
        let entry = self.went(&before.origin.namespace, &before.origin.name);
        entry.whole |= went.whole;
        for (path, services) in went.routes {
            entry.routes.entry(path).or_default().extend(services);
        }
        entry.services.extend(went.services);
        entry.hosts.extend(went.hosts);
        for (path, services) in went.hosted {
            let into = entry.hosted.entry(path).or_default();
            for (service, hosts) in services {
                into.entry(service).or_default().extend(hosts);
            }
        }
    }

    /// Whether nothing went.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_ingress.is_empty() && self.canaries.is_empty()
    }

    /// How many Ingresses went whole, and how many Ingresses lost routes, Services or hosts
    /// (and canary backends that went).
    pub(crate) fn len(&self) -> (usize, usize) {
        let all = self.by_ingress.values().flat_map(HashMap::values);
        let whole = all.clone().filter(|w| w.whole).count();
        (whole, all.filter(|w| !w.whole).count() + self.canaries.len())
    }

    /// Removes from `set` the series whose labels name something that went (an Ingress, a
    /// route, Service or host of one, a canary backend); how many label sets went. The set
    /// keeps `gone` for a while, so that requests that began before do not make them again.
    pub(crate) fn remove_from(self: &Arc<Self>, set: &SeriesSet) -> usize {
        if self.is_empty() {
            return 0;
        }
        set.remove(&(Arc::clone(self) as Arc<dyn Doomed>))
    }
}

impl Doomed for Gone {
    /// Whether a series with these labels belongs to something that went.
    fn holds(&self, labels: &Labels<'_>) -> bool {
        if labels.get("canary").is_some_and(|c| self.canaries.contains(c)) {
            return true;
        }
        let (Some(namespace), Some(ingress)) = (labels.get("namespace"), labels.get("ingress")) else {
            return false;
        };
        let Some(went) = self.by_ingress.get(namespace).and_then(|names| names.get(ingress)) else {
            return false;
        };
        if went.whole {
            return true;
        }
        let Some(service) = labels.get("service") else { return false };
        let Some(path) = labels.get("path") else {
            return went.services.contains(service);
        };
        if went.routes.get(path).is_some_and(|services| services.contains(service)) {
            return true;
        }
        labels.get("host").filter(|h| !h.is_empty()).is_some_and(|host| {
            went.hosts.contains(host)
                || went
                    .hosted
                    .get(path)
                    .and_then(|s| s.get(service))
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

    use std::time::Duration;

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
        set.with(values, Duration::ZERO, |series| {
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

        let gone = Arc::new(Gone::ingresses([("a", "web"), ("c", "never-seen")]));
        assert_eq!(gone.remove_from(&requests), 2);
        assert!(epoch() > before, "the per-thread caches start over");
        assert_eq!(left(&requests), (vec!["c-0 api a 200".to_owned(), "c-0 web b 200".to_owned()], 2));

        let unchanged = epoch();
        assert_eq!(gone.remove_from(&requests), 0);
        assert_eq!(Arc::new(Gone::default()).remove_from(&requests), 0);
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
        let gone = Arc::new(gone);

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
        let gone = Arc::new(gone);

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
        let moved = Arc::new(moved);
        assert_eq!(moved.remove_from(&nginx), 1);
        let mut still = Gone::default();
        still.changed(&v2, Some(&v2));
        assert!(still.is_empty());

        let mut deleted = Gone::default();
        deleted.changed(&v2, None);
        let deleted = Arc::new(deleted);
        assert_eq!(deleted.remove_from(&nginx), 1);
        assert_eq!(left(&nginx), (vec![" c-0 web a / web".to_owned()], 1));
    }
}
