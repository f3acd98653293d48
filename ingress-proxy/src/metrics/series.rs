//! Request series kept compactly: one entry per label set, shared by the families (a counter
//! and histograms) that count a request under it, turned into the prometheus crate's model only
//! when scraped.
//!
//! The crate's own `*Vec`s keep, for each label set of each family, a copy of the family's
//! description (name, help, every label name) and every label pair as two `String`s, and each
//! histogram twice (hot and cold shards). Here the label values are one string per label set,
//! and each family's numbers are a few words in one array. For a route, status and method that
//! carries ingress-nginx's counter and four histograms and Ferry's counter and histogram, 2,000
//! such label sets took 12,328 bytes each with the crate's `*Vec`s and 1,081 here, per-thread
//! caches included (counted with an instrumented allocator, 2026-12-06). A cluster holds a
//! label set for each route, status and method that took a request, for as long as the route
//! lives.
//!
//! The request path looks its entry up in a per-thread cache first (a lookup in the set takes
//! its lock); a removal starts those caches over ([`epoch`]), so a label set made again counts
//! into the set's entry, not into one it dropped. A removal also keeps what it removed from
//! being made again by requests that began before it (routed by a table that still had the
//! route, finished after the route went): for [`TOMBSTONE_AGE`], the last [`MAX_TOMBSTONES`]
//! removals.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

/// Label sets in one [`SeriesSet`] have at most this many labels.
pub(crate) const MAX_LABELS: usize = 8;

/// Removals so far: the per-thread caches of entries start over when it changed.
static REMOVALS: AtomicU64 = AtomicU64::new(0);

/// How long a removal keeps requests that began before it from making its label sets again.
const TOMBSTONE_AGE: Duration = Duration::from_secs(600);

/// Removals a set remembers at most for that (the oldest forgotten first).
const MAX_TOMBSTONES: usize = 256;

/// Which label sets a removal takes ([`SeriesSet::remove`]).
pub(crate) trait Doomed: Send + Sync {
    /// Whether the label set `labels` goes.
    fn holds(&self, labels: &Labels<'_>) -> bool;
}

impl<F: Fn(&Labels<'_>) -> bool + Send + Sync> Doomed for F {
    fn holds(&self, labels: &Labels<'_>) -> bool {
        self(labels)
    }
}

/// The removal count the per-thread caches compare with the one they were filled under.
pub(crate) fn epoch() -> u64 {
    REMOVALS.load(Ordering::Relaxed)
}

/// What a family counts for each label set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A counter of requests.
    Counter,
    /// A histogram with these upper bounds (without `+Inf`), in increasing order.
    Histogram(&'static [f64]),
}

impl Kind {
    /// Words of an entry's array this family takes: the count, then for a histogram the sum's
    /// bits and each finite bucket's own (not cumulative) count.
    fn words(self) -> usize {
        match self {
            Kind::Counter => 1,
            Kind::Histogram(bounds) => 2 + bounds.len(),
        }
    }
}

/// One family of a set: its description and where its numbers are in an entry's array.
#[derive(Debug)]
struct Family {
    desc: Desc,
    kind: Kind,
    offset: usize,
}

/// The series of one label set: its label values and every family's numbers.
#[derive(Debug)]
struct Entry {
    /// The set it belongs to ([`SeriesSet::id`]): the per-thread caches hold several sets'.
    set: u64,
    /// The label values, one after the other.
    text: Box<str>,
    /// Where each value ends in `text`.
    ends: [u32; MAX_LABELS],
    /// The families' numbers ([`Kind::words`] each, in the families' order).
    words: Box<[AtomicU64]>,
}

impl Entry {
    fn new(set: u64, values: &[&str], words: usize) -> Self {
        let mut text = String::with_capacity(values.iter().map(|v| v.len()).sum());
        let mut ends = [0; MAX_LABELS];
        for (end, value) in ends.iter_mut().zip(values) {
            text.push_str(value);
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Self { set, text: text.into(), ends, words: (0..words).map(|_| AtomicU64::new(0)).collect() }
    }

    /// The value of the `i`th label.
    fn value(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..self.ends[i] as usize).unwrap_or("")
    }

    /// Whether this is the entry of `values` in set `set`.
    fn is(&self, set: u64, values: &[&str]) -> bool {
        self.set == set
            && self.text.len() == values.iter().map(|v| v.len()).sum::<usize>()
            && values.iter().enumerate().all(|(i, v)| self.value(i) == *v)
    }
}

/// Families of request series sharing their labels, registered as one collector.
#[derive(Debug)]
pub(crate) struct SeriesSet {
    /// Tells this set's entries apart from another's in the per-thread caches.
    id: u64,
    labels: Vec<&'static str>,
    families: Vec<Family>,
    /// Words of each entry's array.
    words: usize,
    /// The labels of a series as exposed, sorted by name: a constant label's pair, or the
    /// index of a variable label.
    order: Vec<Result<proto::LabelPair, usize>>,
    /// The entries, and the removals that keep theirs from being made again.
    entries: Mutex<Entries>,
    /// Each family's counts of the entries removed so far, so that [`SeriesSet::total`] never
    /// goes back.
    retired: Box<[AtomicU64]>,
}

/// The entries of a set, by the hash of their label values, and its recent removals.
#[derive(Default)]
struct Entries {
    map: HashMap<u64, Vec<Arc<Entry>>>,
    /// The recent removals, oldest first.
    tombstones: VecDeque<Tombstone>,
}

/// When a removal was made, and what it took.
type Tombstone = (Instant, Arc<dyn Doomed>);

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries").field("map", &self.map).field("tombstones", &self.tombstones.len()).finish()
    }
}

/// A family to make: its name, its help text and what it counts.
pub(crate) type FamilySpec<'a> = (&'a str, &'a str, Kind);

impl SeriesSet {
    /// Families with the variable `labels` (at most [`MAX_LABELS`]) and the constant labels
    /// `constant` on each series.
    pub(crate) fn new(
        labels: &[&'static str],
        constant: &HashMap<String, String>,
        families: &[FamilySpec<'_>],
    ) -> prometheus::Result<Self> {
        if labels.len() > MAX_LABELS {
            return Err(prometheus::Error::Msg(format!("more than {MAX_LABELS} labels: {labels:?}")));
        }
        let mut offset = 0;
        let mut made = Vec::with_capacity(families.len());
        for &(name, help, kind) in families {
            let variable = labels.iter().map(|l| (*l).to_owned()).collect();
            let desc = Desc::new(name.to_owned(), help.to_owned(), variable, constant.clone())?;
            made.push(Family { desc, kind, offset });
            offset += kind.words();
        }
        let mut order: Vec<(&str, Result<proto::LabelPair, usize>)> =
            labels.iter().enumerate().map(|(i, l)| (*l, Err(i))).collect();
        for (name, value) in constant {
            let mut pair = proto::LabelPair::default();
            pair.set_name(name.clone());
            pair.set_value(value.clone());
            order.push((name, Ok(pair)));
        }
        order.sort_by(|a, b| a.0.cmp(b.0));
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            labels: labels.to_vec(),
            families: made,
            words: offset,
            order: order.into_iter().map(|(_, source)| source).collect(),
            entries: Mutex::default(),
            retired: families.iter().map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Hands `record` the series of the label `values` of a request that took `took`, made
    /// on first use unless a removal since the request began took them (then `record` is not
    /// called): one value per label, in the set's order (values past the set's labels are left
    /// out, as ingress-nginx's `host` without `--metrics-per-host`; a missing one is empty).
    pub(crate) fn with(&self, values: &[&str], took: Duration, record: impl FnOnce(Series<'_>)) {
        let values = &values[..values.len().min(self.labels.len())];
        let hash = foldhash::fast::FixedState::default().hash_one((self.id, values));
        CACHE.with_borrow_mut(|(seen, cache)| {
            if cache.len() >= MAX_CACHED || *seen != epoch() {
                cache.clear();
                *seen = epoch();
            }
            let entry = match cache.get(&hash).filter(|e| e.is(self.id, values)) {
                Some(entry) => entry,
                None => {
                    let Some(entry) = self.entry(hash, values, took) else { return };
                    cache.insert(hash, entry);
                    &cache[&hash]
                }
            };
            record(Series { set: self, entry });
        });
    }

    /// The set's entry of `values`, made if there is none and no removal made since a request
    /// that took `took` began took them.
    fn entry(&self, hash: u64, values: &[&str], took: Duration) -> Option<Arc<Entry>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = entries.map.get(&hash).and_then(|bucket| bucket.iter().find(|e| e.is(self.id, values)));
        if let Some(found) = found {
            return Some(Arc::clone(found));
        }
        let entry = Arc::new(Entry::new(self.id, values, self.words));
        if !entries.tombstones.is_empty() {
            // `None`: began before the clock's start, so before every removal.
            let began = Instant::now().checked_sub(took);
            let labels = Labels { names: &self.labels, entry: &entry };
            let since = |at: &Instant| began.is_none_or(|began| began < *at);
            if entries.tombstones.iter().any(|(at, doomed)| since(at) && doomed.holds(&labels)) {
                return None;
            }
        }
        entries.map.entry(hash).or_default().push(Arc::clone(&entry));
        Some(entry)
    }

    /// Removes the entries whose labels `doomed` picks; how many went. Their counts stay in
    /// [`SeriesSet::total`]; requests that began before the removal do not make them again
    /// (see the module documentation).
    pub(crate) fn remove(&self, doomed: &Arc<dyn Doomed>) -> usize {
        let mut removed = 0;
        let now = Instant::now();
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entries = &mut *guard;
        entries.tombstones.retain(|(at, _)| now.duration_since(*at) < TOMBSTONE_AGE);
        if entries.tombstones.len() >= MAX_TOMBSTONES {
            entries.tombstones.pop_front();
        }
        entries.tombstones.push_back((now, Arc::clone(doomed)));
        entries.map.retain(|_, bucket| {
            bucket.retain(|entry| {
                let gone = doomed.holds(&Labels { names: &self.labels, entry });
                if gone {
                    removed += 1;
                    for (retired, f) in self.retired.iter().zip(&self.families) {
                        retired.fetch_add(entry.words[f.offset].load(Ordering::Relaxed), Ordering::Relaxed);
                    }
                }
                !gone
            });
            !bucket.is_empty()
        });
        // After a mass removal (a namespace deleted), the room its entries took goes too.
        if entries.map.capacity() > 4 * entries.map.len() + 64 {
            entries.map.shrink_to_fit();
        }
        drop(guard);
        if removed > 0 {
            REMOVALS.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    /// Family `family`'s count over every label set there ever was, removed ones included: a
    /// counter that never goes back (the request count of nginx's `stub_status` page, which
    /// scrapers read as a counter).
    pub(crate) fn total(&self, family: usize) -> u64 {
        let (Some(f), Some(retired)) = (self.families.get(family), self.retired.get(family)) else {
            return 0;
        };
        // Under the lock that removals hold: no entry counted both live and retired, or neither.
        let (retired, entries) = {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            (retired.load(Ordering::Relaxed), entries.map.values().flatten().cloned().collect::<Vec<_>>())
        };
        retired + entries.iter().map(|e| e.words[f.offset].load(Ordering::Relaxed)).sum::<u64>()
    }

    /// The entries as they are now (the lock is held only to copy the list).
    fn snapshot(&self) -> Vec<Arc<Entry>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.map.values().flatten().cloned().collect()
    }

    /// The label pairs of `entry`'s series, sorted by name.
    fn label_pairs(&self, entry: &Entry) -> Vec<proto::LabelPair> {
        self.order
            .iter()
            .map(|source| match source {
                Ok(constant) => constant.clone(),
                Err(i) => {
                    let mut pair = proto::LabelPair::default();
                    pair.set_name(self.labels[*i].to_owned());
                    pair.set_value(entry.value(*i).to_owned());
                    pair
                }
            })
            .collect()
    }
}

/// The label values of one entry, by name.
pub(crate) struct Labels<'a> {
    names: &'a [&'static str],
    entry: &'a Entry,
}

impl<'a> Labels<'a> {
    /// The value of label `name`, if the set has that label.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        let i = self.names.iter().position(|l| *l == name)?;
        Some(self.entry.value(i))
    }
}

/// The series of one label set, for counting a request.
pub(crate) struct Series<'a> {
    set: &'a SeriesSet,
    entry: &'a Entry,
}

impl Series<'_> {
    /// Counts one more in family `family` (a counter).
    pub(crate) fn inc(&self, family: usize) {
        if let Some(f) = self.set.families.get(family) {
            self.entry.words[f.offset].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Observes `value` in family `family` (a histogram): the count first, then the bucket
    /// (released), so a scrape that reads the buckets first (acquiring) never sees them hold
    /// more than the count.
    pub(crate) fn observe(&self, family: usize, value: f64) {
        let Some(f) = self.set.families.get(family) else { return };
        let Kind::Histogram(bounds) = f.kind else { return };
        let words = &self.entry.words[f.offset..f.offset + f.kind.words()];
        words[0].fetch_add(1, Ordering::Relaxed);
        let sum = &words[1];
        let mut old = sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + value).to_bits();
            match sum.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        // Above the last bound: only in the count (`+Inf`).
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            words[2 + i].fetch_add(1, Ordering::Release);
        }
    }
}

/// Registers a [`SeriesSet`] (shared with whoever counts into it) in a registry.
pub(crate) struct Registered(pub(crate) Arc<SeriesSet>);

impl Collector for Registered {
    fn desc(&self) -> Vec<&Desc> {
        self.0.families.iter().map(|f| &f.desc).collect()
    }

    /// Each family's series, of each label set that counted something in it (a histogram of
    /// a label set with no observation, as the upstream time of requests that reached no
    /// endpoint, is absent, as a `*Vec`'s series is until first used).
    fn collect(&self) -> Vec<MetricFamily> {
        let set = &self.0;
        let entries = set.snapshot();
        set.families
            .iter()
            .map(|f| {
                let mut family = MetricFamily::default();
                family.set_name(f.desc.fq_name.clone());
                family.set_help(f.desc.help.clone());
                let metrics = entries.iter().filter_map(|e| {
                    let words = &e.words[f.offset..f.offset + f.kind.words()];
                    let mut metric = proto::Metric::default();
                    match f.kind {
                        Kind::Counter => {
                            let count = words[0].load(Ordering::Relaxed);
                            if count == 0 {
                                return None;
                            }
                            let mut counter = proto::Counter::default();
                            counter.set_value(count as f64);
                            metric.set_counter(counter);
                        }
                        Kind::Histogram(bounds) => {
                            let mut cumulative = 0;
                            let buckets = bounds
                                .iter()
                                .zip(&words[2..])
                                .map(|(bound, n)| {
                                    cumulative += n.load(Ordering::Acquire);
                                    let mut bucket = proto::Bucket::default();
                                    bucket.set_cumulative_count(cumulative);
                                    bucket.set_upper_bound(*bound);
                                    bucket
                                })
                                .collect();
                            let count = words[0].load(Ordering::Relaxed).max(cumulative);
                            if count == 0 {
                                return None;
                            }
                            let mut histogram = proto::Histogram::default();
                            histogram.set_sample_count(count);
                            histogram.set_sample_sum(f64::from_bits(words[1].load(Ordering::Relaxed)));
                            histogram.set_bucket(buckets);
                            metric.set_histogram(histogram);
                        }
                    }
                    metric.set_label(set.label_pairs(e));
                    Some(metric)
                });
                family.set_field_type(match f.kind {
                    Kind::Counter => MetricType::COUNTER,
                    Kind::Histogram(_) => MetricType::HISTOGRAM,
                });
                family.set_metric(metrics.collect());
                family
            })
            .collect()
    }
}

/// Entries kept per thread before the cache starts over.
const MAX_CACHED: usize = 8192;

/// A thread's entries, by the hash of their set and label values.
type Cache = HashMap<u64, Arc<Entry>, BuildHasherDefault<NoHash>>;

thread_local! {
    /// The entries this thread looked up, and the [`epoch`] they were looked up in.
    static CACHE: RefCell<(u64, Cache)> = RefCell::default();
}

/// The cache's keys are hashes already.
#[derive(Default)]
struct NoHash(u64);

impl Hasher for NoHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, TextEncoder};

    use super::*;

    const BOUNDS: [f64; 3] = [0.01, 0.1, 1.0];

    fn constant() -> HashMap<String, String> {
        HashMap::from([("controller_pod".to_owned(), "c-0".to_owned())])
    }

    fn render(registry: &prometheus::Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn exposes_what_the_prometheus_crates_vecs_expose() {
        let labels = ["status", "path", "ingress"];
        let ours = prometheus::Registry::new();
        let set = Arc::new(
            SeriesSet::new(
                &labels,
                &constant(),
                &[
                    ("requests", "Requests.", Kind::Counter),
                    ("duration", "Time.", Kind::Histogram(&BOUNDS)),
                    ("upstream", "Upstream time.", Kind::Histogram(&BOUNDS)),
                ],
            )
            .unwrap(),
        );
        ours.register(Box::new(Registered(Arc::clone(&set)))).unwrap();

        let theirs = prometheus::Registry::new();
        let opts = |name: &str, help: &str| prometheus::Opts::new(name, help).const_labels(constant());
        let requests = IntCounterVec::new(opts("requests", "Requests."), &labels).unwrap();
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(HistogramOpts::from(opts(name, help)).buckets(BOUNDS.to_vec()), &labels)
                .unwrap()
        };
        let (duration, upstream) = (histogram("duration", "Time."), histogram("upstream", "Upstream time."));
        theirs.register(Box::new(requests.clone())).unwrap();
        theirs.register(Box::new(duration.clone())).unwrap();
        theirs.register(Box::new(upstream.clone())).unwrap();

        // On a bound, above the last bound, below the first; a label set with no upstream
        // time has no upstream series.
        let requests_seen = [
            (["200", "/a", "web"], 0.1, Some(0.005)),
            (["200", "/a", "web"], 7.5, Some(2.0)),
            (["503", "/a", "web"], 0.0, None),
            (["200", "/a", "bc"], 0.5, Some(0.5)),
        ];
        let count = |values: &[&str], took: f64, up: Option<f64>| {
            set.with(values, Duration::ZERO, |series| {
                series.inc(0);
                series.observe(1, took);
                if let Some(up) = up {
                    series.observe(2, up);
                }
            });
        };
        for (values, took, up) in requests_seen {
            count(&values, took, up);
            requests.with_label_values(&values).inc();
            duration.with_label_values(&values).observe(took);
            if let Some(up) = up {
                upstream.with_label_values(&values).observe(up);
            }
        }
        let text = render(&ours);
        assert_eq!(text, render(&theirs));
        assert!(
            text.contains(
                r#"duration_bucket{controller_pod="c-0",ingress="web",path="/a",status="200",le="+Inf"} 2"#
            ),
            "{text}"
        );

        // Values that join alike stay apart. (The prometheus crate's vecs key a series by a
        // hash of its values run together, and count `/ab`, `c` into `/a`, `bc`.)
        count(&["200", "/ab", "c"], 0.02, None);
        let text = render(&ours);
        assert!(
            text.contains(r#"requests{controller_pod="c-0",ingress="c",path="/ab",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"requests{controller_pod="c-0",ingress="bc",path="/a",status="200"} 1"#),
            "{text}"
        );
        assert_eq!(set.total(0), 5);
        assert_eq!(set.total(7), 0, "no such family");

        // A removed label set's requests stay in the total (nginx's request count never goes
        // back), not in the exposition.
        let bc: Arc<dyn Doomed> = Arc::new(|labels: &Labels<'_>| labels.get("ingress") == Some("bc"));
        assert_eq!(set.remove(&bc), 1);
        assert_eq!(set.total(0), 5);
        assert!(!render(&ours).contains(r#"ingress="bc""#));
        count(&["200", "/a", "bc"], 0.02, None);
        assert_eq!(set.total(0), 6);
    }

    #[test]
    fn threads_counting_at_once_lose_nothing_and_share_entries() {
        let set = Arc::new(
            SeriesSet::new(
                &["route"],
                &constant(),
                &[("requests", "help", Kind::Counter), ("duration", "help", Kind::Histogram(&BOUNDS))],
            )
            .unwrap(),
        );
        std::thread::scope(|scope| {
            for t in 0..4 {
                let set = &set;
                scope.spawn(move || {
                    for i in 0..2_000 {
                        let route = if i % 2 == 0 { "even" } else { "odd" };
                        set.with(&[route], Duration::ZERO, |series| {
                            series.inc(0);
                            series.observe(1, f64::from(t) * 0.05);
                        });
                    }
                });
            }
        });
        assert_eq!(set.total(0), 8_000);
        let families = Registered(Arc::clone(&set)).collect();
        assert_eq!(families[0].get_metric().len(), 2, "one entry per label set, whichever thread made it");
        for metric in families[1].get_metric() {
            let h = metric.get_histogram();
            assert_eq!(h.get_sample_count(), 4_000);
            let buckets: Vec<u64> = h.get_bucket().iter().map(|b| b.get_cumulative_count()).collect();
            // Threads 0 and 1 observe 0 and 0.05; 2 and 3 observe 0.1 and 0.15.
            assert_eq!(buckets, [1_000, 3_000, 4_000]);
            assert!((h.get_sample_sum() - 1_000.0 * (0.05 + 0.1 + 0.15)).abs() < 1e-6);
        }
    }

    #[test]
    fn requests_that_began_before_a_removal_do_not_make_its_label_sets_again() {
        let set = SeriesSet::new(&["ingress"], &constant(), &[("requests", "help", Kind::Counter)]).unwrap();
        let count = |ingress: &str, took: Duration| set.with(&[ingress], took, |series| series.inc(0));
        let live = |ingress: &str| set.snapshot().iter().any(|e| e.value(0) == ingress);
        count("gone", Duration::ZERO);
        count("kept", Duration::ZERO);
        // `never` had no series yet: its first request finishes after the removal.
        let gone = |labels: &Labels<'_>| matches!(labels.get("ingress"), Some("gone" | "never"));
        assert_eq!(set.remove(&(Arc::new(gone) as Arc<dyn Doomed>)), 1);
        let long = Duration::from_secs(30);
        for ingress in ["gone", "never", "kept"] {
            count(ingress, long);
        }
        assert!(!live("gone") && !live("never"), "a long request routed before the removal");
        assert!(live("kept"));
        assert_eq!(set.total(0), 3, "the two requests the removal refused are not counted");
        // A request that began after it (an Ingress of that name made again) counts.
        count("gone", Duration::ZERO);
        assert!(live("gone"));
        assert_eq!(set.total(0), 4);
    }

    #[test]
    fn a_mass_removal_gives_the_room_back() {
        let set = SeriesSet::new(&["ingress"], &constant(), &[("requests", "help", Kind::Counter)]).unwrap();
        let names: Vec<String> = (0..2_000).map(|i| format!("ing-{i}")).collect();
        for name in &names {
            set.with(&[name], Duration::ZERO, |series| series.inc(0));
        }
        let room = || set.entries.lock().unwrap().map.capacity();
        assert!(room() >= 2_000);
        let all: Arc<dyn Doomed> = Arc::new(|labels: &Labels<'_>| labels.get("ingress") != Some("ing-0"));
        assert_eq!(set.remove(&all), 1_999);
        assert!(room() < 100, "{} slots kept for one entry", room());
        assert_eq!(set.total(0), 2_000);
    }

    #[test]
    fn too_many_labels_is_an_error() {
        let labels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        assert!(SeriesSet::new(&labels, &HashMap::new(), &[("x", "help", Kind::Counter)]).is_err());
        // The prometheus crate's checks of names hold too.
        assert!(SeriesSet::new(&["bad label"], &HashMap::new(), &[("x", "help", Kind::Counter)]).is_err());
    }
}
