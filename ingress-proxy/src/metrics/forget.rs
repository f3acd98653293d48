//! Dropping the request series of Ingresses that are gone, as ingress-nginx does after each
//! reload (its socket collector's `RemoveMetrics`): a cluster whose Ingresses come and go keeps
//! the series of those that exist, not of every one that ever took a request. Each route,
//! status and method a request had holds ingress-nginx's counter and four histograms and
//! Ferry's counter and histogram: about 10 KiB with their labels (measured with the prometheus
//! crate and a counting allocator), kept for good before this.
//!
//! The request path looks its series up in per-thread caches of handles; a removal starts them
//! over ([`epoch`]), so an Ingress made again under the same name counts into series the
//! registry has, not into handles it dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};

/// Removals so far: the per-thread caches of series handles start over when it changed.
static REMOVALS: AtomicU64 = AtomicU64::new(0);

/// The removal count the per-thread caches compare with the one they were filled under.
pub(crate) fn epoch() -> u64 {
    REMOVALS.load(Ordering::Relaxed)
}

/// Ingresses, by namespace and name.
pub(crate) type Ingresses<'a> = HashSet<(&'a str, &'a str)>;

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

/// Removes, from each of `vecs`, the series whose `namespace` and `ingress` labels name one of
/// `gone`, as `listed` (a counter, cheap to list: histograms carry their buckets) has them: the
/// request path makes the series of all of `vecs` with the same labels, `listed`'s among them.
/// Returns how many series went.
pub(crate) fn remove(listed: &dyn SeriesVec, vecs: &[&dyn SeriesVec], gone: &Ingresses<'_>) -> usize {
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
        let of = (labels.get("namespace").copied(), labels.get("ingress").copied());
        if let (Some(namespace), Some(ingress)) = of
            && gone.contains(&(namespace, ingress))
        {
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
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

    use super::*;

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

        let gone: Ingresses<'_> = [("a", "web"), ("c", "never-seen")].into_iter().collect();
        assert_eq!(remove(&requests, &[&requests, &duration], &gone), 4);
        assert!(epoch() > before, "the per-thread caches start over");
        let mut left: Vec<String> = requests.collect()[0]
            .get_metric()
            .iter()
            .map(|m| m.get_label().iter().map(|l| l.get_value()).collect::<Vec<_>>().join("/"))
            .collect();
        left.sort();
        assert_eq!(left, ["c-0/api/a/200", "c-0/web/b/200"]);
        assert!(duration.collect()[0].get_metric().is_empty());

        let unchanged = epoch();
        assert_eq!(remove(&requests, &[&requests, &duration], &gone), 0);
        assert_eq!(remove(&requests, &[&requests], &Ingresses::new()), 0);
        assert_eq!(epoch(), unchanged, "nothing removed, the caches stay");
    }
}
