//! The engine: owns the stores and the endpoint slots, turns changes into published snapshots.
//!
//! One task runs [`run`]; every source (watchers, manifest files) feeds it [`Change`]s through a
//! channel, so the stores have a single writer and no locks.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ingress_core::{BackendRef, EndpointStore, RouteTable};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::objects::{Change, Key, Object};
use crate::translate::{self, EndpointList, IngressInfo, Problem};
use crate::{Config, Kind, Objects};

/// One published configuration: what the proxy installs, and what status and events report.
#[derive(Debug)]
pub struct Snapshot {
    /// The route table. Its backends share the controller's endpoint slots, so endpoint
    /// changes show through it without a new snapshot.
    pub table: Arc<RouteTable>,
    /// The `--configmap` ConfigMap's data.
    pub config: Arc<std::collections::BTreeMap<String, String>>,
    /// The data of the ConfigMaps `config` names (`add-headers`, `proxy-set-headers`), by
    /// the value naming them.
    pub config_references:
        Arc<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>>,
    /// Every ConfigMap something names (see [`translate::Translation::referenced_config_maps`]).
    pub referenced_config_maps: Arc<BTreeSet<Key>>,
    /// Every Secret our Ingresses name besides their TLS ones (`auth-secret`).
    pub referenced_secrets: Arc<BTreeSet<Key>>,
    /// Every problem found: translation problems and the core builder's rejections.
    pub problems: Arc<Vec<Problem>>,
    /// Our Ingresses (for status and events).
    pub ingresses: translate::IngressList,
    /// The addresses our Ingresses' status should show.
    pub status_addresses: Arc<Vec<String>>,
    /// Counts published snapshots, starting at 1.
    pub generation: u64,
    /// How many times a watcher re-listed after the initial sync (reconnects, expired watches
    /// answered 410 Gone): worth a metric.
    pub relists: u64,
}

/// The receiving end of the publish channel: `None` until the initial sync is complete.
pub type Snapshots = watch::Receiver<Option<Arc<Snapshot>>>;

/// The ConfigMaps and Secrets the configuration names, to be watched by name (see
/// [`crate::watch::referenced_objects`]): published with every table, and before the first one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) config_maps: Arc<BTreeSet<Key>>,
    pub(crate) secrets: Arc<BTreeSet<Key>>,
}

/// How long the first table waits for the named objects' first lists (then it is published
/// without the missing ones, whose Ingresses answer 503 until they arrive).
const NAMED_WAIT: Duration = Duration::from_secs(10);

/// What a batch of changes requires.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    rebuild: bool,
    services: BTreeSet<Key>,
}

/// The stores, the slots and the sender.
pub(crate) struct Engine {
    objects: Objects,
    store: EndpointStore,
    config: Config,
    waiting: HashSet<Kind>,
    /// The endpoint sets of the last table (the translation cache's list, sharing with the next
    /// what did not change): a backend among them that the next table lacks is removed from the
    /// store.
    endpoints: EndpointList,
    /// The backends reached through each Service's cluster IP in the last table.
    cluster_ip: HashMap<Key, Vec<BackendRef>>,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    generation: u64,
    /// Counts table builds (a snapshot with new statuses only is not one).
    builds: u64,
    relists: u64,
    /// The ConfigMaps and Secrets the last table named (watched by name), as in its snapshot.
    named: (Arc<BTreeSet<Key>>, Arc<BTreeSet<Key>>),
    /// Where the named sets go before and with every table; `None` when the named objects come
    /// with the others (manifest mode), so nothing waits for them.
    named_tx: Option<watch::Sender<Named>>,
    /// The named objects whose first list arrived.
    listed: HashSet<(Kind, Key)>,
    /// Until when the first table waits for named objects not listed yet.
    hold_until: Option<Instant>,
    /// How long it waits at most ([`NAMED_WAIT`]).
    hold_for: Duration,
    /// The Services and Secrets the last table looked for (found or not): a change to any
    /// other one needs no new table ([`translate::Translation::used_services`]).
    used: (Arc<BTreeSet<Key>>, Arc<BTreeSet<Key>>),
    /// What the last translation made, so the next remakes only what changed.
    cache: translate::TranslationCache,
    /// The keys changed since the last translation, so it looks at those objects only.
    changed: crate::Changed,
    /// The keys changed since the cache's slice index was last brought up to date (by an
    /// endpoint-only change or a translation), so an endpoint change looks at its own slices
    /// only, however many endpoint changes came since the last translation.
    unsynced: crate::Changed,
    /// What the last table build made, so the next rebuilds only the hosts that changed.
    rebuilder: ingress_core::Rebuilder,
    /// The Ingresses stored in a new version that differs only in status since the last
    /// snapshot: taken into the next one without a table build.
    statuses: BTreeSet<Key>,
}

impl Engine {
    /// An engine that publishes once every kind in `waiting` has been listed.
    pub(crate) fn new(config: Config, waiting: impl IntoIterator<Item = Kind>) -> (Self, Snapshots) {
        let (tx, rx) = watch::channel(None);
        let engine = Self {
            objects: Objects::new(),
            store: EndpointStore::new(),
            config,
            waiting: waiting.into_iter().collect(),
            endpoints: EndpointList::default(),
            cluster_ip: HashMap::new(),
            tx,
            generation: 0,
            builds: 0,
            relists: 0,
            named: Default::default(),
            named_tx: None,
            listed: HashSet::new(),
            hold_until: None,
            hold_for: NAMED_WAIT,
            used: Default::default(),
            cache: translate::TranslationCache::default(),
            changed: crate::Changed::default(),
            unsynced: crate::Changed::default(),
            rebuilder: ingress_core::Rebuilder::new(),
            statuses: BTreeSet::new(),
        };
        (engine, rx)
    }

    /// Cluster mode: the named objects are watched by name from the sets this returns, and
    /// the first table waits (a while) for their first lists, so no Ingress that names one
    /// answers 503 at start-up for want of it.
    pub(crate) fn watch_by_name(&mut self) -> watch::Receiver<Named> {
        let (tx, rx) = watch::channel(Named::default());
        self.named_tx = Some(tx);
        rx
    }

    /// Applies one change to the stores and says what it dirtied. Endpoint-slice changes only
    /// dirty their Service's endpoints; a change to an object no table uses (an Ingress of
    /// another class, a Service or Secret nothing names) dirties nothing; everything else
    /// needs a new table.
    pub(crate) fn apply(&mut self, change: Change, dirty: &mut Dirty) {
        if self.stale(&change) {
            return;
        }
        let Some(change) = self.status_only(change) else { return };
        self.changed.note(&change);
        self.unsynced.note(&change);
        if self.generation > 0 && self.unused(&change) {
            tracing::trace!("a change to an object nothing served uses: no new table");
            self.objects.apply(change);
            return;
        }
        if let Change::Relist(kind, _) = &change
            && !self.waiting.contains(kind)
        {
            self.relists += 1;
        }
        match &change {
            Change::Apply(Object::EndpointSlice(slice)) => {
                let key = crate::objects::key_of(&slice.metadata);
                if let Some(old) = self.objects.endpoint_slices.get(&key) {
                    dirty.services.extend(old.service_key(&key));
                }
                dirty.services.extend(translate::slice_service(slice));
            }
            Change::Delete(Kind::EndpointSlice, key) => {
                if let Some(old) = self.objects.endpoint_slices.get(key) {
                    dirty.services.extend(old.service_key(key));
                }
            }
            Change::Relist(Kind::EndpointSlice, _) => {
                dirty.services.extend(self.objects.services.keys().cloned());
            }
            Change::Relist(kind, _) => {
                dirty.rebuild = true;
                if self.waiting.remove(kind) && self.waiting.is_empty() {
                    tracing::info!("initial sync complete");
                }
            }
            Change::Replace(_) => {
                dirty.rebuild = true;
                self.waiting.clear();
            }
            Change::RelistOne(kind, key, _) => {
                self.listed.insert((*kind, key.clone()));
                dirty.rebuild = true;
                if self.waiting.remove(kind) && self.waiting.is_empty() {
                    tracing::info!("initial sync complete");
                }
            }
            _ => dirty.rebuild = true,
        }
        if let Change::Relist(Kind::EndpointSlice, _) = &change {
            self.waiting.remove(&Kind::EndpointSlice);
        }
        self.objects.apply(change);
    }

    /// Stores a new version of an Ingress that differs from the stored one only in status (each
    /// status write makes one: at start-up, one per Ingress) and notes it for the next
    /// snapshot, which needs no table build for it; gives back any other change.
    fn status_only(&mut self, change: Change) -> Option<Change> {
        let Change::Apply(Object::Ingress(new)) = change else { return Some(change) };
        let key = crate::objects::key_of(&new.metadata);
        let old = self.objects.ingresses.get(&key).filter(|_| self.generation > 0);
        let Some(old) = old else { return Some(Change::Apply(Object::Ingress(new))) };
        let stored = crate::StoredIngress::from(new.clone());
        if !old.same_but_status(&stored) {
            return Some(Change::Apply(Object::Ingress(new)));
        }
        tracing::trace!(namespace = %key.0, name = %key.1, "an Ingress's status changed: no new table");
        self.objects.ingresses.insert(key.clone(), Arc::new(stored));
        self.statuses.insert(key);
        None
    }

    /// Whether `change` touches nothing the last table was made of, nor makes anything new
    /// of ours: an Ingress that is not ours before or after, a Service or Secret the last
    /// translation did not look for, or the EndpointSlice of such a Service. (Whatever could
    /// make one of them used, an Ingress, IngressClass, Namespace or ConfigMap change, builds
    /// a table, whose translation reads the stores afresh.)
    fn unused(&self, change: &Change) -> bool {
        let ours = |claim: translate::class::Claim<'_>| {
            translate::class::is_ours(claim, &self.objects, &self.config)
        };
        let was_ours =
            |key: &Key| self.objects.ingresses.get(key).is_some_and(|old| ours((&*key.0, &**old).into()));
        match change {
            Change::Apply(Object::Ingress(new)) => {
                !ours(new.into()) && !was_ours(&crate::objects::key_of(&new.metadata))
            }
            Change::Delete(Kind::Ingress, key) => !was_ours(key),
            Change::Apply(Object::Service(s)) => !self.used.0.contains(&crate::objects::key_of(&s.metadata)),
            Change::Delete(Kind::Service, key) => !self.used.0.contains(key),
            Change::Apply(Object::Secret(s)) => !self.used.1.contains(&crate::objects::key_of(&s.metadata)),
            Change::Delete(Kind::Secret, key) => !self.used.1.contains(key),
            Change::Apply(Object::EndpointSlice(slice)) => {
                let key = crate::objects::key_of(&slice.metadata);
                let old = self.objects.endpoint_slices.get(&key);
                let mut services =
                    translate::slice_service(slice).into_iter().chain(old.and_then(|o| o.service_key(&key)));
                services.all(|s| !self.used.0.contains(&s))
            }
            _ => false,
        }
    }

    /// Whether `change` is an update of a ConfigMap or Secret that is watched by name but no
    /// longer named: its watcher was stopped (and its object forgotten) after it had sent it.
    fn stale(&self, change: &Change) -> bool {
        let (key, named) = match change {
            Change::Apply(Object::ConfigMap(c)) => {
                let key = crate::objects::key_of(&c.metadata);
                let own = self
                    .config
                    .configmap
                    .as_ref()
                    .is_some_and(|o| *o.namespace == *key.0 && *o.name == *key.1);
                (key, own || self.named.0.contains(&crate::objects::key_of(&c.metadata)))
            }
            Change::Apply(Object::Secret(s)) => {
                let tls = s.type_.as_deref() == Some(crate::objects::TLS_SECRET);
                let key = crate::objects::key_of(&s.metadata);
                let named = tls || self.named.1.contains(&key);
                (key, named)
            }
            _ => return false,
        };
        if !named {
            tracing::debug!(namespace = %key.0, name = %key.1, "update of an object no longer named, dropped");
        }
        !named && self.generation > 0
    }

    /// Whether every source has delivered its initial list.
    pub(crate) fn synced(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Acts on a batch: a new table, or only new endpoint sets.
    pub(crate) fn flush(&mut self, dirty: &Dirty) {
        if !self.synced() {
            return;
        }
        // Before a translation, so it lists the new statuses too.
        let statuses = self.cache.take_statuses(&self.objects, &std::mem::take(&mut self.statuses));
        let first = self.generation == 0;
        if dirty.rebuild || first {
            let started = std::time::Instant::now();
            // Not needed until the new table replaces them; the cache updates its sets in place
            // when nothing else holds them.
            self.used = Default::default();
            let translation =
                translate::translate_changed(&self.objects, &self.config, &mut self.cache, &self.changed);
            self.changed.clear();
            self.unsynced.clear();
            if first && self.hold(&translation) {
                return;
            }
            self.rebuild(translation, started);
        } else {
            if !dirty.services.is_empty() {
                self.update_endpoints(&dirty.services);
            }
            if !statuses.is_empty() {
                self.publish_statuses(statuses);
            }
        }
    }

    /// Publishes the last snapshot again with `infos` (sorted by key) in its list of Ingresses:
    /// new statuses, for the status writer to see that they took.
    fn publish_statuses(&mut self, infos: Vec<Arc<IngressInfo>>) {
        let Some(last) = self.tx.borrow().clone() else { return };
        let mut list = last.ingresses.clone();
        for info in infos.into_iter().filter(|i| last.ingresses.get(&i.key).is_some()) {
            list.put(info);
        }
        self.generation += 1;
        let snapshot = Snapshot {
            table: Arc::clone(&last.table),
            config: Arc::clone(&last.config),
            config_references: Arc::clone(&last.config_references),
            referenced_config_maps: Arc::clone(&last.referenced_config_maps),
            referenced_secrets: Arc::clone(&last.referenced_secrets),
            problems: Arc::clone(&last.problems),
            ingresses: list,
            status_addresses: Arc::clone(&last.status_addresses),
            generation: self.generation,
            relists: self.relists,
        };
        tracing::debug!(generation = self.generation, "published new Ingress statuses");
        self.tx.send_replace(Some(Arc::new(snapshot)));
    }

    /// Before the first table: whether to wait for named objects whose first list has not
    /// arrived (their watchers are asked for here), until the deadline.
    fn hold(&mut self, translation: &translate::Translation) -> bool {
        let Some(tx) = &self.named_tx else { return false };
        let wanted = Named {
            config_maps: Arc::clone(&translation.referenced_config_maps),
            secrets: Arc::clone(&translation.referenced_secrets),
        };
        let missing: Vec<(Kind, &Key)> = wanted
            .config_maps
            .iter()
            .map(|k| (Kind::ConfigMap, k))
            .chain(wanted.secrets.iter().map(|k| (Kind::Secret, k)))
            .filter(|(kind, key)| crate::watch::watched_by_name(&self.config, *kind, key))
            .filter(|(kind, key)| !self.listed.contains(&(*kind, (*key).clone())))
            .collect();
        if missing.is_empty() {
            return false;
        }
        let deadline = *self.hold_until.get_or_insert_with(|| Instant::now() + self.hold_for);
        if Instant::now() >= deadline {
            let names: Vec<String> =
                missing.iter().map(|(kind, k)| format!("{kind} {}/{}", k.0, k.1)).collect();
            tracing::warn!(missing = %names.join(", "), "named objects not listed in time; publishing without them");
            return false;
        }
        tracing::debug!(missing = missing.len(), "first table waits for named objects");
        tx.send_if_modified(|named| {
            let changed = *named != wanted;
            *named = wanted;
            changed
        });
        true
    }

    /// Whether the validating webhook admits `ingress`, against the live stores (left as they
    /// were) and through the translation cache.
    fn validate(&mut self, ingress: k8s_openapi::api::networking::v1::Ingress) -> crate::Admission {
        // The cache sees the Ingress under review, and at the next translation the stores again.
        self.changed.note(&Change::Delete(Kind::Ingress, crate::objects::key_of(&ingress.metadata)));
        crate::admission::validate_with(
            &mut self.objects,
            &self.config,
            ingress,
            &mut self.cache,
            &self.changed,
        )
    }

    /// The deadline the first table is waiting until, if it is waiting.
    pub(crate) fn holding_until(&self) -> Option<Instant> {
        self.hold_until.filter(|_| self.generation == 0)
    }

    fn update_endpoints(&mut self, services: &BTreeSet<Key>) {
        self.cache.sync_slices(&self.objects, &self.unsynced);
        self.unsynced.clear();
        for key in services {
            let Some(service) = self.objects.services.get(key) else { continue };
            let slices = self.cache.slices_of(&self.objects, key);
            let sets = translate::service_endpoints(key, service, &slices);
            // Backends through the cluster IP of a headless Service follow its endpoints.
            for backend in self.cluster_ip.get(key).into_iter().flatten() {
                if let Some((_, set)) =
                    translate::cluster_ip_endpoints(service, backend, sets.iter().map(|(b, s)| (b, s)))
                {
                    self.store.set(backend, set);
                }
            }
            for (backend, set) in sets {
                self.store.set(&backend, set);
            }
        }
        tracing::debug!(services = services.len(), "endpoints updated in place");
    }

    /// Publishes the table of `translation` (made from `started` on).
    fn rebuild(&mut self, mut translation: translate::Translation, started: std::time::Instant) {
        let translated = started.elapsed();
        // Backends of deleted Services (or removed ports) answer 503 from now on.
        let same = self.endpoints.same(&translation.endpoints);
        let gone = if same { Vec::new() } else { gone(&self.endpoints, &translation.endpoints) };
        let removed = !gone.is_empty();
        for backend in gone {
            self.store.remove(backend);
        }
        let loaded = std::mem::replace(&mut self.endpoints, translation.endpoints.clone());
        if !Arc::ptr_eq(&loaded.cluster_ip, &self.endpoints.cluster_ip) {
            self.cluster_ip.clear();
            for (backend, _) in self.endpoints.cluster_ip.iter().map(|e| &**e).filter(|(b, _)| b.cluster_ip) {
                let service = (backend.namespace.clone(), backend.service.clone());
                self.cluster_ip.entry(service).or_default().push((**backend).clone());
            }
        }
        self.used = (Arc::clone(&translation.used_services), Arc::clone(&translation.used_secrets));
        let (table, problems) = translation.compile_with(&mut self.store, &mut self.rebuilder, &loaded);
        drop(loaded);
        let compiled = started.elapsed() - translated;
        // Slots no table uses linger until a Service goes, or every 64th table.
        if removed || self.builds.is_multiple_of(64) {
            self.store.prune();
        }
        self.generation += 1;
        self.builds += 1;
        let snapshot = Snapshot {
            table: Arc::new(table),
            config: Arc::new(std::mem::take(&mut translation.config)),
            config_references: Arc::new(std::mem::take(&mut translation.config_references)),
            referenced_config_maps: Arc::clone(&translation.referenced_config_maps),
            referenced_secrets: Arc::clone(&translation.referenced_secrets),
            problems: Arc::new(problems),
            ingresses: translation.ingresses.clone(),
            status_addresses: Arc::new(std::mem::take(&mut translation.status_addresses)),
            generation: self.generation,
            relists: self.relists,
        };
        self.named = (Arc::clone(&snapshot.referenced_config_maps), Arc::clone(&snapshot.referenced_secrets));
        if let Some(tx) = &self.named_tx {
            let named = Named { config_maps: Arc::clone(&self.named.0), secrets: Arc::clone(&self.named.1) };
            tx.send_if_modified(|old| {
                let changed = *old != named;
                *old = named;
                changed
            });
        }
        tracing::info!(
            generation = self.generation,
            routes = snapshot.table.route_count(),
            problems = snapshot.problems.len(),
            translate_us = translated.as_micros() as u64,
            build_us = compiled.as_micros() as u64,
            elapsed_us = started.elapsed().as_micros() as u64,
            "published route table"
        );
        self.tx.send_replace(Some(Arc::new(snapshot)));
    }
}

/// The backends of `old` that `new` lacks, sorted. The lists share what the translation cache
/// kept (chunks and entries, the same `Arc`s), so only the entries that differ are compared by
/// key ([`EndpointList::changes`]).
fn gone<'a>(old: &'a EndpointList, new: &EndpointList) -> Vec<&'a BackendRef> {
    let (gone, made) = EndpointList::changes(old, new);
    let made: HashSet<&BackendRef> = made.into_iter().map(|e| &*e.0).collect();
    let mut gone: Vec<&BackendRef> = gone.into_iter().map(|e| &*e.0).filter(|b| !made.contains(b)).collect();
    // A backend could still be named by a kept entry (a Service listing one port twice): few
    // are left here, those of deleted Services or ports.
    gone.retain(|b| !new.contains(b));
    gone.sort();
    gone.dedup();
    gone
}

/// Runs the engine until every sender is gone. A change arriving after a quiet spell is applied
/// at once; changes that need a table and arrive soon after the last table are gathered into
/// the next one, which waits after the last as long as that took to make (at most
/// `coalesce_window`): a burst costs at most one build per build time (the engine builds at
/// most half the time), and a change following another is delayed by no more than a build,
/// however long the window. Endpoint changes never wait: their sets are updated in place at
/// once, also while a table waits.
pub(crate) async fn run(
    mut engine: Engine,
    mut rx: mpsc::UnboundedReceiver<Change>,
    mut asks: mpsc::UnboundedReceiver<Ask>,
) {
    let window: Duration = engine.config.coalesce_window;
    // When the last table was published, and how long it took to make.
    let mut last_build: Option<(Instant, Duration)> = None;
    loop {
        // While the first table waits for named objects, the deadline publishes it anyway.
        let deadline = engine.holding_until();
        let change = match recv(&mut engine, &mut rx, &mut asks, deadline).await {
            Ok(change) => change,
            Err(Elapsed) => {
                engine.flush(&Dirty { rebuild: true, ..Dirty::default() });
                continue;
            }
        };
        let Some(change) = change else { break };
        let mut dirty = Dirty::default();
        engine.apply(change, &mut dirty);
        while let Ok(change) = rx.try_recv() {
            engine.apply(change, &mut dirty);
        }
        let window_ends = window_end(last_build, window, Instant::now()).filter(|_| dirty.rebuild);
        if let Some(end) = window_ends {
            // The table waits for the window; endpoint sets do not.
            if !dirty.services.is_empty() {
                engine.flush(&Dirty { rebuild: false, services: std::mem::take(&mut dirty.services) });
            }
            while let Ok(Some(change)) = recv(&mut engine, &mut rx, &mut asks, Some(end)).await {
                let mut one = Dirty::default();
                engine.apply(change, &mut one);
                if one.rebuild {
                    dirty.rebuild = true;
                } else {
                    engine.flush(&one);
                }
            }
            while let Ok(change) = rx.try_recv() {
                engine.apply(change, &mut dirty);
            }
        }
        let builds = engine.builds;
        let flushing = Instant::now();
        engine.flush(&dirty);
        if engine.builds != builds {
            let now = Instant::now();
            last_build = Some((now, now - flushing));
        }
    }
    tracing::debug!("engine stopped: no more sources");
}

/// Until when a change needing a table waits after the last table (published at `at`, made in
/// `took`): as long as that took, at most `window`; `None` once that is past.
fn window_end(last_build: Option<(Instant, Duration)>, window: Duration, now: Instant) -> Option<Instant> {
    let (at, took) = last_build?;
    Some(at + took.min(window)).filter(|end| now < *end)
}

/// A question for the engine, answered against its live store between changes: whether the
/// validating webhook admits an Ingress.
#[derive(Debug)]
pub(crate) struct Ask {
    pub(crate) ingress: Box<k8s_openapi::api::networking::v1::Ingress>,
    pub(crate) reply: tokio::sync::oneshot::Sender<crate::Admission>,
}

/// The deadline passed before a change arrived.
struct Elapsed;

/// The next change (`None`: every source is gone), answering questions while it waits.
async fn recv(
    engine: &mut Engine,
    rx: &mut mpsc::UnboundedReceiver<Change>,
    asks: &mut mpsc::UnboundedReceiver<Ask>,
    deadline: Option<Instant>,
) -> Result<Option<Change>, Elapsed> {
    loop {
        let timeout = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = rx.recv() => return Ok(change),
            Some(ask) = asks.recv() => {
                let answer = engine.validate(*ask.ingress);
                let _ = ask.reply.send(answer);
            }
            () = timeout => return Err(Elapsed),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn object(yaml: &str) -> Object {
        let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        crate::files::parse_manifest(
            std::path::Path::new("test.yaml"),
            &serde_yaml::to_string(&value).unwrap(),
        )
        .unwrap()
        .remove(0)
    }

    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: app, namespace: default}\nspec: {ports: [{name: http, port: 80}]}\n";
    const INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: app, namespace: default}\nspec:\n  rules:\n  - host: app.example.com\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}]}\n";

    fn slice(ip: &str) -> Object {
        object(&format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: app-1, namespace: default, labels: {{kubernetes.io/service-name: app}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [\"{ip}\"]}}]\n"
        ))
    }

    /// Applies one change and acts on it, as the engine's loop does.
    fn step(engine: &mut Engine, change: Change) {
        let mut dirty = Dirty::default();
        engine.apply(change, &mut dirty);
        engine.flush(&dirty);
    }

    #[test]
    fn an_ingress_under_review_is_not_served_by_the_next_table() {
        let config = Config { watch_ingress_without_class: true, ..Config::default() };
        let (mut engine, rx) = Engine::new(config, [Kind::Ingress]);
        step(&mut engine, Change::relist(Kind::Ingress, vec![object(INGRESS)]));
        // Another host, and a value ingress-nginx rejects.
        let reviewed = INGRESS.replace("app.example.com", "reviewed.example.com").replace(
            "metadata: {name: app, namespace: default}",
            "metadata: {name: app, namespace: default, annotations: {nginx.ingress.kubernetes.io/proxy-body-size: lots}}",
        );
        let Object::Ingress(reviewed) = object(&reviewed) else { panic!("an Ingress") };
        let other =
            INGRESS.replace("app.example.com", "other.example.com").replace("name: app,", "name: other,");
        let answer = engine.validate(reviewed);
        assert!(!answer.allowed, "the reviewed version is the one judged: {answer:?}");
        // A change elsewhere builds the next table: the reviewed version was never applied.
        step(&mut engine, Change::Apply(object(&other)));
        let table = Arc::clone(&rx.borrow().as_ref().unwrap().table);
        assert!(table.lookup("app.example.com", "/").is_some(), "the stored version is served");
        assert!(table.lookup("reviewed.example.com", "/").is_none(), "the reviewed version is not");
        assert!(table.lookup("other.example.com", "/").is_some());
    }

    #[test]
    fn a_late_update_of_an_object_no_longer_named_is_dropped() {
        let config = Config { watch_ingress_without_class: true, ..Config::default() };
        let (mut engine, rx) = Engine::new(config, [Kind::Ingress]);
        let named = INGRESS.replace(
            "metadata: {name: app, namespace: default}",
            "metadata: {name: app, namespace: default, annotations: {nginx.ingress.kubernetes.io/custom-headers: default/hdrs}}",
        );
        step(&mut engine, Change::relist(Kind::Ingress, vec![object(&named)]));
        let map = |v: &str| {
            object(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: hdrs, namespace: default}}\ndata: {{X-A: \"{v}\"}}\n"
            ))
        };
        step(&mut engine, Change::Apply(map("1")));
        assert!(engine.objects.config_maps.contains_key(&("default".into(), "hdrs".into())), "named: kept");
        // The Ingress stops naming it: its watcher is stopped and the object forgotten; an
        // update that watcher had already sent must not bring it back.
        step(&mut engine, Change::Apply(object(INGRESS)));
        step(&mut engine, Change::Delete(Kind::ConfigMap, ("default".into(), "hdrs".into())));
        step(&mut engine, Change::Apply(map("2")));
        assert!(engine.objects.config_maps.is_empty());
        assert!(rx.borrow().as_ref().unwrap().referenced_config_maps.is_empty());
    }

    #[test]
    fn the_first_table_waits_for_the_named_objects_a_while() {
        let config = Config { watch_ingress_without_class: true, ..Config::default() };
        let named_ingress = INGRESS.replace(
            "metadata: {name: app, namespace: default}",
            "metadata: {name: app, namespace: default, annotations: {nginx.ingress.kubernetes.io/custom-headers: default/hdrs}}",
        );
        let hdrs = object(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hdrs, namespace: default}\ndata: {X-A: \"1\"}\n",
        );
        let key: Key = ("default".into(), "hdrs".into());
        let (mut engine, rx) = Engine::new(config.clone(), [Kind::Ingress]);
        let named = engine.watch_by_name();
        step(&mut engine, Change::relist(Kind::Ingress, vec![object(&named_ingress)]));
        assert!(rx.borrow().is_none(), "not published before the named ConfigMap is listed");
        assert!(engine.holding_until().is_some());
        assert!(named.borrow().config_maps.contains(&key), "its watcher is asked for");
        step(&mut engine, Change::RelistOne(Kind::ConfigMap, key.clone(), Some(hdrs)));
        let first = rx.borrow().clone().expect("published once listed");
        assert!(first.referenced_config_maps.contains(&key));
        assert!(engine.holding_until().is_none());

        // A named object that never lists does not hold the table past the deadline.
        let (mut engine, rx) = Engine::new(config, [Kind::Ingress]);
        let _named = engine.watch_by_name();
        engine.hold_for = Duration::from_millis(50);
        step(&mut engine, Change::relist(Kind::Ingress, vec![object(&named_ingress)]));
        assert!(rx.borrow().is_none(), "the first flush waits");
        std::thread::sleep(Duration::from_millis(60));
        engine.flush(&Dirty { rebuild: true, ..Dirty::default() });
        assert!(rx.borrow().is_some(), "the deadline publishes");
    }

    #[test]
    fn waits_for_every_initial_list_then_updates_endpoints_in_place() {
        let config = Config { watch_ingress_without_class: true, ..Config::default() };
        let (mut engine, rx) = Engine::new(config, [Kind::Ingress, Kind::Service, Kind::EndpointSlice]);
        step(&mut engine, Change::relist(Kind::Ingress, vec![object(INGRESS)]));
        step(&mut engine, Change::relist(Kind::Service, vec![object(SERVICE)]));
        assert!(rx.borrow().is_none(), "nothing is published before every kind is listed");
        step(&mut engine, Change::relist(Kind::EndpointSlice, vec![slice("10.0.0.1")]));
        let first = rx.borrow().clone().expect("published after the last initial list");
        let addrs = |s: &Snapshot| {
            s.table
                .lookup("app.example.com", "/")
                .unwrap()
                .backend
                .endpoints()
                .as_slice()
                .iter()
                .map(|e| e.addr.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(addrs(&first), ["10.0.0.1:8080"]);

        // An endpoint-only change: no new snapshot, the live slot changes.
        step(&mut engine, Change::Apply(slice("10.0.0.2")));
        let same = rx.borrow().clone().unwrap();
        assert_eq!(same.generation, first.generation);
        assert_eq!(addrs(&first), ["10.0.0.2:8080"]);
        step(&mut engine, Change::Delete(Kind::EndpointSlice, ("default".into(), "app-1".into())));
        assert!(addrs(&first).is_empty());
        // A third in a row, each reading only the slices changed since the one before.
        step(&mut engine, Change::Apply(slice("10.0.0.3")));
        assert_eq!(addrs(&first), ["10.0.0.3:8080"]);
        assert_eq!(rx.borrow().as_ref().unwrap().generation, first.generation);

        // Anything else: a new table.
        step(&mut engine, Change::Delete(Kind::Ingress, ("default".into(), "app".into())));
        let next = rx.borrow().clone().unwrap();
        assert_eq!(next.generation, first.generation + 1);
        assert!(next.table.lookup("app.example.com", "/").is_none());
    }

    #[test]
    fn changes_to_objects_nothing_served_uses_build_no_table() {
        let config = Config { watch_ingress_without_class: true, ..Config::default() };
        let kinds = [Kind::Ingress, Kind::Service, Kind::EndpointSlice, Kind::Secret];
        let (mut engine, rx) = Engine::new(config, kinds);
        let step = |engine: &mut Engine, change| {
            let mut dirty = Dirty::default();
            engine.apply(change, &mut dirty);
            engine.flush(&dirty);
            rx.borrow().as_ref().map_or(0, |s| s.generation)
        };
        let named = |yaml: &str, name: &str| yaml.replace("name: app,", &format!("name: {name},"));
        let service = |name: &str| object(&named(SERVICE, name));
        // `late` names a Service and a TLS Secret that do not exist yet.
        let late = named(INGRESS, "late")
            .replace("name: app, port", "name: late, port")
            .replace("app.example.com", "late.example.com")
            + "  tls: [{hosts: [late.example.com], secretName: late-tls}]\n";
        let foreign = named(INGRESS, "foreign").replace("app.example.com", "foreign.example.com");
        let foreign_class = foreign.replace("spec:\n", "spec:\n  ingressClassName: other\n");
        step(
            &mut engine,
            Change::relist(Kind::Ingress, vec![object(INGRESS), object(&late), object(&foreign_class)]),
        );
        step(&mut engine, Change::relist(Kind::Service, vec![service("app")]));
        step(&mut engine, Change::relist(Kind::EndpointSlice, vec![slice("10.0.0.1")]));
        let first = step(&mut engine, Change::relist(Kind::Secret, vec![]));
        assert!(first > 0);
        let secret = |name: &str| {
            object(&format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\ndata: {{tls.crt: \"\", tls.key: \"\"}}\n"
            ))
        };
        let other_slice = || {
            object(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: other-1, namespace: default, labels: {kubernetes.io/service-name: other}}\naddressType: IPv4\nendpoints: [{addresses: [\"10.9.9.9\"]}]\n",
            )
        };
        // Nothing served uses these: no table.
        for change in [
            Change::Apply(service("other")),
            Change::Apply(other_slice()),
            Change::Delete(Kind::Service, ("default".into(), "other".into())),
            Change::Apply(object(&foreign_class.replace("pathType: Prefix", "pathType: Exact"))),
            Change::Apply(secret("unrelated")),
            Change::Delete(Kind::Secret, ("default".into(), "unrelated".into())),
        ] {
            let what = format!("{change:?}").chars().take(60).collect::<String>();
            assert_eq!(step(&mut engine, change), first, "{what}");
        }
        assert!(rx.borrow().as_ref().unwrap().table.lookup("foreign.example.com", "/").is_none());
        // What a route names, found or not, builds one.
        let mut generation = first;
        let mut expect_table = |engine: &mut Engine, change: Change, why: &str| {
            let now = step(engine, change);
            assert_eq!(now, generation + 1, "{why}");
            generation = now;
        };
        expect_table(&mut engine, Change::Apply(service("late")), "a missing Service a route names");
        expect_table(&mut engine, Change::Apply(secret("late-tls")), "a missing TLS Secret an Ingress names");
        expect_table(
            &mut engine,
            Change::Apply(object(&named(SERVICE, "app").replace("port: 80", "port: 81"))),
            "a used Service",
        );
        expect_table(&mut engine, Change::Apply(object(&foreign)), "an Ingress that becomes ours");
        assert!(rx.borrow().as_ref().unwrap().table.lookup("foreign.example.com", "/").is_some());
        expect_table(&mut engine, Change::Apply(object(&foreign_class)), "an Ingress that stops being ours");
        assert!(rx.borrow().as_ref().unwrap().table.lookup("foreign.example.com", "/").is_none());
        expect_table(
            &mut engine,
            Change::Delete(Kind::Ingress, ("default".into(), "late".into())),
            "ours, deleted",
        );
        // `late`'s Service is no longer named.
        assert_eq!(
            step(&mut engine, Change::Apply(object(&named(SERVICE, "late").replace("port: 80", "port: 82")))),
            generation
        );
    }

    #[test]
    fn a_new_status_builds_no_table_but_is_listed() {
        let config = Config { watch_ingress_without_class: true, ..Config::default() };
        let (mut engine, rx) = Engine::new(config, [Kind::Ingress]);
        step(&mut engine, Change::relist(Kind::Ingress, vec![object(INGRESS)]));
        let first = rx.borrow().clone().unwrap();
        let builds = engine.builds;
        let status = |ip: &str| format!("status: {{loadBalancer: {{ingress: [{{ip: \"{ip}\"}}]}}}}\n");
        let exact = INGRESS.replace("pathType: Prefix", "pathType: Exact");
        let statuses = |s: &Snapshot| s.ingresses.iter().map(|i| i.status.clone()).collect::<Vec<_>>();

        // Only the status: the same table, published with the new status (the writer's check).
        step(&mut engine, Change::Apply(object(&format!("{INGRESS}{}", status("192.0.2.7")))));
        let next = rx.borrow().clone().unwrap();
        assert_eq!(engine.builds, builds, "no table build");
        assert!(Arc::ptr_eq(&next.table, &first.table));
        assert_eq!(next.generation, first.generation + 1);
        assert_eq!(statuses(&next), [["192.0.2.7"]]);

        // A spec change afterwards is built, and lists the status.
        step(&mut engine, Change::Apply(object(&format!("{exact}{}", status("192.0.2.7")))));
        let built = rx.borrow().clone().unwrap();
        assert_eq!(engine.builds, builds + 1);
        assert!(built.table.lookup("app.example.com", "/x").is_none(), "Exact now");
        assert_eq!(statuses(&built), [["192.0.2.7"]]);

        // A spec change, then a status change on top of it, in one batch: one table with both.
        let mut dirty = Dirty::default();
        engine.apply(Change::Apply(object(&format!("{INGRESS}{}", status("192.0.2.7")))), &mut dirty);
        engine.apply(Change::Apply(object(&format!("{INGRESS}{}", status("192.0.2.8")))), &mut dirty);
        engine.flush(&dirty);
        let both = rx.borrow().clone().unwrap();
        assert_eq!(engine.builds, builds + 2);
        assert!(both.table.lookup("app.example.com", "/x").is_some(), "Prefix again");
        assert_eq!(statuses(&both), [["192.0.2.8"]]);

        // The cache took the status in: the next table does not translate the Ingress again.
        step(&mut engine, Change::Apply(object(&format!("{INGRESS}{}", status("192.0.2.9")))));
        let other =
            INGRESS.replace("name: app,", "name: other,").replace("app.example.com", "other.example.com");
        step(&mut engine, Change::Apply(object(&other)));
        assert_eq!(engine.builds, builds + 3);
        assert_eq!(engine.cache.stats().ingresses_translated, 1, "only the new one");
        assert_eq!(statuses(&rx.borrow().clone().unwrap()), [vec!["192.0.2.9"], vec![]]);
    }

    #[test]
    fn gone_backends_are_those_no_entry_names_any_more() {
        let entry = |service: &str, port: u16| {
            Arc::new((Arc::new(BackendRef::new("default", service, port)), Arc::default()))
        };
        let list = |entries: &[&translate::EndpointEntry]| {
            entries.iter().map(|e| Arc::clone(e)).collect::<EndpointList>()
        };
        let (a, b, c) = (entry("a", 80), entry("b", 80), entry("c", 80));
        let old = list(&[&a, &b, &c]);
        assert!(gone(&old, &old.clone()).is_empty(), "the same entries");
        let remade = list(&[&a, &entry("b", 80), &c]);
        assert!(gone(&old, &remade).is_empty(), "an entry made again");
        let fewer = list(&[&a, &entry("b", 81)]);
        assert_eq!(gone(&old, &fewer), [&*b.0, &*c.0], "a port removed, a Service deleted");
        // A backend named twice, one of its entries kept: still there.
        let again = entry("a", 80);
        let twice = list(&[&a, &again]);
        assert!(gone(&twice, &list(&[&again])).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_are_coalesced_but_a_lone_change_is_not_delayed() {
        let config = Config { watch_ingress_without_class: true, ..Config::default() };
        let (engine, mut rx) = Engine::new(config, [Kind::Ingress]);
        let (tx, changes) = mpsc::unbounded_channel();
        let (_asks, asks_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(engine, changes, asks_rx));
        tx.send(Change::relist(Kind::Ingress, vec![])).unwrap();
        rx.changed().await.unwrap();
        // A lone change after a quiet spell is published without waiting for the window.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let at = Instant::now();
        tx.send(Change::Apply(object(INGRESS))).unwrap();
        rx.changed().await.unwrap();
        assert_eq!(Instant::now(), at, "no delay for a lone change");
        // A burst right after: gathered into one more snapshot.
        for i in 0..50 {
            tx.send(Change::Apply(object(&INGRESS.replace("name: app,", &format!("name: app{i},")))))
                .unwrap();
        }
        rx.changed().await.unwrap();
        let generation = rx.borrow_and_update().as_ref().unwrap().generation;
        assert!(Instant::now() - at <= Duration::from_millis(5));
        assert_eq!(generation, 3, "fifty changes, one rebuild");
        assert_eq!(rx.borrow().as_ref().unwrap().table.route_count(), 1, "all on the same host/path");
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_change_right_after_a_table_does_not_wait_for_the_window() {
        let config = Config { watch_ingress_without_class: true, ..Config::default() };
        let (engine, mut rx) = Engine::new(config, [Kind::Ingress, Kind::Service, Kind::EndpointSlice]);
        let (tx, changes) = mpsc::unbounded_channel();
        let (_asks, asks_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(engine, changes, asks_rx));
        tx.send(Change::relist(Kind::Service, vec![object(SERVICE)])).unwrap();
        tx.send(Change::relist(Kind::EndpointSlice, vec![slice("10.0.0.1")])).unwrap();
        tx.send(Change::relist(Kind::Ingress, vec![])).unwrap();
        rx.changed().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A table (the Ingress), then at once an endpoint change, then a change needing a table.
        tx.send(Change::Apply(object(INGRESS))).unwrap();
        rx.changed().await.unwrap();
        let table = rx.borrow_and_update().clone().unwrap();
        let at = Instant::now();
        let addrs = || {
            let route = table.table.lookup("app.example.com", "/").unwrap();
            route.backend.endpoints().as_slice().iter().map(|e| e.addr.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(addrs(), ["10.0.0.1:8080"]);
        tx.send(Change::Apply(slice("10.0.0.2"))).unwrap();
        tx.send(Change::Apply(object(&INGRESS.replace("name: app,", "name: other,")))).unwrap();
        for _ in 0..100 {
            if addrs() == ["10.0.0.2:8080"] {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(addrs(), ["10.0.0.2:8080"], "updated in place");
        assert_eq!(Instant::now(), at, "without waiting for the window");
        // The change needing a table waits no longer than the last table took to make: with the
        // clock paused, no time.
        rx.changed().await.unwrap();
        assert_eq!(Instant::now(), at);
    }

    #[test]
    fn a_table_waits_after_the_last_as_long_as_it_took_at_most_the_window() {
        let at = Instant::now();
        let window = Duration::from_millis(5);
        let ms = Duration::from_millis;
        assert_eq!(window_end(None, window, at), None, "no table yet");
        assert_eq!(window_end(Some((at, ms(2))), window, at + ms(1)), Some(at + ms(2)));
        assert_eq!(window_end(Some((at, ms(2))), window, at + ms(2)), None, "past it");
        assert_eq!(window_end(Some((at, ms(30))), window, at + ms(1)), Some(at + window), "capped");
        assert_eq!(window_end(Some((at, Duration::ZERO)), window, at), None, "a quick table, no wait");
    }
}
