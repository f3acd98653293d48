//! The cluster source: one kube-rs watcher per kind, each feeding the engine.
//!
//! A watcher stores its initial list as it arrives (`Init` … `InitApply` … `InitDone`) and hands
//! it over as one [`Change::Relist`], so a re-list after a reconnect or an expired watch (410 Gone)
//! replaces its kind atomically, and deletions missed while disconnected disappear.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::utils::Backoff as KubeBackoff;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use std::collections::{BTreeMap, BTreeSet};

use tokio::task::AbortHandle;

use crate::objects::{Change, Key, Object, Objects, key_of};
use crate::{Config, Error, Kind, Result};

/// Which EndpointSlice API the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceApi {
    /// `discovery.k8s.io/v1` (Kubernetes ≥ 1.21).
    V1,
    /// `discovery.k8s.io/v1beta1` only (Kubernetes ≤ 1.20), read through the dynamic API.
    V1beta1,
}

/// Asks the API server which EndpointSlice version it serves.
pub async fn discover_slice_api(client: &Client) -> Result<SliceApi> {
    let groups = client.list_api_groups().await.map_err(|e| Error::kube("API discovery", e))?;
    let versions: Vec<String> = groups
        .groups
        .iter()
        .filter(|g| g.name == "discovery.k8s.io")
        .flat_map(|g| g.versions.iter().map(|v| v.version.clone()))
        .collect();
    if versions.iter().any(|v| v == "v1") {
        Ok(SliceApi::V1)
    } else if versions.iter().any(|v| v == "v1beta1") {
        Ok(SliceApi::V1beta1)
    } else {
        Err(Error::Config {
            field: "discovery.k8s.io",
            why: "the API server serves no EndpointSlice API".into(),
        })
    }
}

/// The kinds the cluster source will list before the first snapshot.
pub(crate) fn kinds(config: &Config) -> Vec<Kind> {
    let mut kinds = vec![Kind::Ingress, Kind::IngressClass, Kind::Service, Kind::EndpointSlice, Kind::Secret];
    if config.configmap.is_some() {
        kinds.push(Kind::ConfigMap);
    }
    if config.watch_namespace_selector.is_some() {
        kinds.push(Kind::Namespace);
    }
    kinds
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts every watcher on `tasks`.
pub(crate) fn spawn(
    client: &Client,
    config: &Config,
    slices: SliceApi,
    tx: &UnboundedSender<Change>,
    tasks: &mut JoinSet<()>,
) {
    let ns = config.watch_namespace.as_deref();
    let plain = watcher::Config::default;
    tasks.spawn(watch(
        api::<Ingress>(client, ns),
        plain(),
        Kind::Ingress,
        |o| Some(Object::Ingress(o)),
        tx.clone(),
        None,
    ));
    tasks.spawn(watch(
        Api::<IngressClass>::all(client.clone()),
        plain(),
        Kind::IngressClass,
        |o| Some(Object::IngressClass(o)),
        tx.clone(),
        None,
    ));
    tasks.spawn(watch(
        api::<Service>(client, ns),
        plain(),
        Kind::Service,
        |o| Some(Object::Service(o)),
        tx.clone(),
        None,
    ));
    tasks.spawn(watch(
        api::<Secret>(client, ns),
        plain().fields("type=kubernetes.io/tls"),
        Kind::Secret,
        |o| Some(Object::Secret(o)),
        tx.clone(),
        None,
    ));
    if let Some(selector) = &config.watch_namespace_selector {
        // Only the selected Namespaces are listed (the selector goes to the API server too).
        tasks.spawn(watch(
            Api::<Namespace>::all(client.clone()),
            plain().labels(selector.as_str()),
            Kind::Namespace,
            |o| Some(Object::Namespace(o)),
            tx.clone(),
            None,
        ));
    }
    if let Some(cm) = &config.configmap {
        tasks.spawn(watch(
            Api::<ConfigMap>::namespaced(client.clone(), &cm.namespace),
            plain().fields(&format!("metadata.name={}", cm.name)),
            Kind::ConfigMap,
            |o| Some(Object::ConfigMap(o)),
            tx.clone(),
            Some(cm.key()),
        ));
    }
    match slices {
        SliceApi::V1 => tasks.spawn(watch(
            api::<EndpointSlice>(client, ns),
            plain(),
            Kind::EndpointSlice,
            |o| Some(Object::EndpointSlice(o)),
            tx.clone(),
            None,
        )),
        SliceApi::V1beta1 => {
            let resource = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("discovery.k8s.io", "v1beta1", "EndpointSlice"),
                "endpointslices",
            );
            let api = match ns {
                Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource),
                None => Api::<DynamicObject>::all_with(client.clone(), &resource),
            };
            tasks.spawn(watch(api, plain(), Kind::EndpointSlice, v1beta1_slice, tx.clone(), None))
        }
    };
}

/// Watches the objects that the published snapshots name, each by name, and only those: the
/// ConfigMaps of `custom-headers`, `add-headers` and `proxy-set-headers`, and the Secrets of
/// `auth-secret` (so no other Secret's contents are ever read). A watcher starts when an object
/// is first named and stops (its object forgotten) when nothing names it any more. Objects
/// outside `--watch-namespace` are not watched (ingress-nginx does not see them either), nor
/// the `--configmap`, which has its own watcher.
pub(crate) async fn referenced_objects(
    client: Client,
    config: Config,
    mut named: tokio::sync::watch::Receiver<crate::engine::Named>,
    tx: UnboundedSender<Change>,
) {
    let mut tasks = JoinSet::new();
    let mut running: BTreeMap<(Kind, Key), AbortHandle> = BTreeMap::new();
    loop {
        let wanted: BTreeSet<(Kind, Key)> = {
            let named = named.borrow_and_update();
            let maps = named.config_maps.iter().map(|k| (Kind::ConfigMap, k.clone()));
            let secrets = named.secrets.iter().map(|k| (Kind::Secret, k.clone()));
            maps.chain(secrets).filter(|(kind, key)| watched_by_name(&config, *kind, key)).collect()
        };
        let gone: Vec<(Kind, Key)> = running.keys().filter(|k| !wanted.contains(*k)).cloned().collect();
        for (kind, key) in gone {
            if let Some(task) = running.remove(&(kind, key.clone())) {
                task.abort();
            }
            tracing::debug!(%kind, namespace = %key.0, name = %key.1, "no longer named; not watched");
            if tx.send(Change::Delete(kind, key)).is_err() {
                return;
            }
        }
        for (kind, key) in wanted {
            if running.contains_key(&(kind, key.clone())) {
                continue;
            }
            tracing::debug!(%kind, namespace = %key.0, name = %key.1, "watching a named object");
            let by_name = watcher::Config::default().fields(&format!("metadata.name={}", key.1));
            let named = Some(key.clone());
            let task = match kind {
                Kind::Secret => tasks.spawn(watch(
                    Api::<Secret>::namespaced(client.clone(), &key.0),
                    by_name,
                    Kind::Secret,
                    |o| Some(Object::Secret(o)),
                    tx.clone(),
                    named,
                )),
                _ => tasks.spawn(watch(
                    Api::<ConfigMap>::namespaced(client.clone(), &key.0),
                    by_name,
                    Kind::ConfigMap,
                    |o| Some(Object::ConfigMap(o)),
                    tx.clone(),
                    named,
                )),
            };
            running.insert((kind, key), task);
        }
        // Reap finished tasks (none finish unless the engine is gone).
        while tasks.try_join_next().is_some() {}
        if named.changed().await.is_err() {
            return;
        }
    }
}

/// Whether a named object gets a watcher of its own: not the `--configmap` (it has one), nor
/// an object outside `--watch-namespace` (ingress-nginx does not see those either) other than
/// the controller's own TCP and UDP services ConfigMaps.
pub(crate) fn watched_by_name(config: &Config, kind: Kind, key: &Key) -> bool {
    let is = |name: &Option<crate::ObjectName>| {
        kind == Kind::ConfigMap && name.as_ref().is_some_and(|c| *c.namespace == *key.0 && *c.name == *key.1)
    };
    let streams = is(&config.tcp_services_configmap) || is(&config.udp_services_configmap);
    !is(&config.configmap) && (streams || config.watch_namespace.as_ref().is_none_or(|ns| **ns == *key.0))
}

/// A v1beta1 EndpointSlice read into the v1 type: the fields the controller needs are the same
/// (v1beta1's `topology` is ignored).
#[allow(clippy::needless_pass_by_value)] // the watcher hands over owned objects
pub(crate) fn v1beta1_slice(object: DynamicObject) -> Option<Object> {
    let mut value = serde_json::to_value(&object).ok()?;
    let map = value.as_object_mut()?;
    map.insert("apiVersion".into(), "discovery.k8s.io/v1".into());
    map.insert("kind".into(), "EndpointSlice".into());
    match serde_json::from_value::<EndpointSlice>(value) {
        Ok(slice) => Some(Object::EndpointSlice(slice)),
        Err(error) => {
            tracing::warn!(name = ?object.metadata.name, %error, "unreadable v1beta1 EndpointSlice skipped");
            None
        }
    }
}

/// Retry delays after watch errors: 100 ms doubling to 5 s, with up to 25 % jitter so many
/// replicas do not reconnect in lockstep; reset by the first successful event. (kube's default
/// grows to 30 s, which would leave an ingress controller stale for long after an API server
/// restart.)
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Some(delay + delay.mul_f64(f64::from(nanos % 1000) / 4000.0))
    }
}

impl KubeBackoff for Backoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Whether a watch error is the API server's `410 Gone` event (the watch's resourceVersion
/// expired), after which the watcher lists again by itself.
fn is_gone(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::WatchError(status) if status.code == 410)
}

/// `kubectl apply`'s copy of the object it last applied: for a Secret, its data in clear.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The object without what translation never reads and the stores should not keep: its
/// `managedFields` (often the larger part of a small object) and `kubectl apply`'s copy of it.
fn trim<K: Resource>(mut object: K) -> K {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    object
}

/// Runs one watcher forever (retrying with [`Backoff`] on errors), forwarding changes. A
/// watcher of one `named` object (its `config` selects it by name) hands its lists over as
/// [`Change::RelistOne`], so it replaces that object and no other of its kind.
async fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: Kind,
    convert: fn(K) -> Option<Object>,
    tx: UnboundedSender<Change>,
    named: Option<Key>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut stream = watcher::watcher(api, config).boxed();
    let mut backoff = Backoff::default();
    // The list so far, stored object by object as it arrives (a store keeps only what
    // translation reads: the API objects of a large list are never all held at once); for a
    // watcher of one named object, that object.
    let mut listed = Box::new(Objects::new());
    let mut found = None;
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            backoff.reset();
        }
        let change = match event {
            Ok(Event::Apply(object)) => convert(trim(object)).map(Change::Apply),
            Ok(Event::Delete(object)) => Some(Change::Delete(kind, key_of(object.meta()))),
            Ok(Event::Init) => {
                *listed = Objects::new();
                found = None;
                None
            }
            Ok(Event::InitApply(object)) => {
                match (convert(trim(object)), &named) {
                    (Some(object), Some(key)) if object.key() == *key => found = Some(object),
                    (Some(object), None) => listed.insert(object),
                    _ => {}
                }
                None
            }
            Ok(Event::InitDone) => {
                tracing::debug!(%kind, "listed");
                Some(match &named {
                    Some(key) => Change::RelistOne(kind, key.clone(), found.take()),
                    None => Change::Relist(kind, std::mem::replace(&mut listed, Box::new(Objects::new()))),
                })
            }
            // The watch's resourceVersion is too old (the API server restarted or compacted):
            // the watcher lists again, at once; waiting out a backoff would only keep the
            // controller stale.
            Err(error) if is_gone(&error) => {
                tracing::info!(%kind, "watch expired (410 Gone): listing again");
                None
            }
            Err(error) => {
                tracing::warn!(%kind, %error, "watch failed; retrying");
                if let Some(delay) = backoff.next() {
                    tokio::time::sleep(delay).await;
                }
                None
            }
        };
        if let Some(change) = change
            && tx.send(change).is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_stores_keep_no_managed_fields_and_no_applied_copy() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "tls", "namespace": "app",
                "annotations": {LAST_APPLIED: "{\"data\":{\"tls.key\":\"c2VjcmV0\"}}", "team": "a"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {}}]
            },
            "type": "kubernetes.io/tls",
            "data": {"tls.key": "c2VjcmV0"}
        }))
        .unwrap();
        let kept = trim(secret);
        assert!(kept.metadata.managed_fields.is_none());
        let annotations = kept.metadata.annotations.unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["team"]);
        assert!(kept.data.unwrap().contains_key("tls.key"), "the data translation reads stays");
    }
}
