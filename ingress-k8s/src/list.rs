//! One read of a cluster, with `list` and `get` only (no watch, no write): the objects the
//! controller would watch, for reports such as `check --kubeconfig` that must run under a
//! read-only identity and change nothing.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::watch::{SliceApi, discover_slice_api, v1beta1_slice, watched_by_name};
use crate::{Config, Error, Kind, Object, Objects, Result};

/// Rounds of following what the translation names (an `auth-secret`, a `custom-headers`
/// ConfigMap) at most; each round can only add objects, so this ends long before.
const MAX_ROUNDS: usize = 4;

/// Reads, once, every object the controller would watch with `config`, then the Secrets and
/// ConfigMaps the Ingresses name, by name; a named object that does not exist is left out, as
/// the controller leaves it.
pub async fn list_once(client: &Client, config: &Config) -> Result<Objects> {
    let ns = config.watch_namespace.as_deref();
    let mut objects = Objects::new();
    let plain = ListParams::default;
    list(api::<Ingress>(client, ns), plain(), &mut objects, Object::Ingress, "Ingresses").await?;
    list(
        Api::<IngressClass>::all(client.clone()),
        plain(),
        &mut objects,
        Object::IngressClass,
        "IngressClasses",
    )
    .await?;
    list(api::<Service>(client, ns), plain(), &mut objects, Object::Service, "Services").await?;
    let tls = plain().fields("type=kubernetes.io/tls");
    list(api::<Secret>(client, ns), tls, &mut objects, Object::Secret, "TLS Secrets").await?;
    if let Some(selector) = &config.watch_namespace_selector {
        let selected = plain().labels(selector.as_str());
        list(Api::<Namespace>::all(client.clone()), selected, &mut objects, Object::Namespace, "Namespaces")
            .await?;
    }
    match discover_slice_api(client).await? {
        SliceApi::V1 => {
            list(
                api::<EndpointSlice>(client, ns),
                plain(),
                &mut objects,
                Object::EndpointSlice,
                "EndpointSlices",
            )
            .await?;
        }
        SliceApi::V1beta1 => {
            let resource = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("discovery.k8s.io", "v1beta1", "EndpointSlice"),
                "endpointslices",
            );
            let api = match ns {
                Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource),
                None => Api::<DynamicObject>::all_with(client.clone(), &resource),
            };
            let slices = api.list(&plain()).await.map_err(|e| Error::kube("listing EndpointSlices", e))?;
            slices.items.into_iter().filter_map(v1beta1_slice).for_each(|o| objects.insert(o));
        }
    }
    // The ConfigMaps the flags name.
    for name in [&config.configmap, &config.tcp_services_configmap, &config.udp_services_configmap]
        .into_iter()
        .flatten()
    {
        get::<ConfigMap>(client, &name.namespace, &name.name, &mut objects, Object::ConfigMap).await?;
    }
    // What the Ingresses name, until nothing new is named.
    for _ in 0..MAX_ROUNDS {
        let translation = crate::translate(&objects, config);
        let mut added = false;
        for key in translation.referenced_secrets.iter() {
            if !objects.secrets.contains_key(key) && watched_by_name(config, Kind::Secret, key) {
                added |= get::<Secret>(client, &key.0, &key.1, &mut objects, Object::Secret).await?;
            }
        }
        for key in translation.referenced_config_maps.iter() {
            if !objects.config_maps.contains_key(key) && watched_by_name(config, Kind::ConfigMap, key) {
                added |= get::<ConfigMap>(client, &key.0, &key.1, &mut objects, Object::ConfigMap).await?;
            }
        }
        if !added {
            break;
        }
    }
    Ok(objects)
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

/// Lists `api` into `objects`.
async fn list<K>(
    api: Api<K>,
    params: ListParams,
    objects: &mut Objects,
    wrap: fn(K) -> Object,
    what: &str,
) -> Result<()>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let listed = api.list(&params).await.map_err(|e| Error::kube(format!("listing {what}"), e))?;
    listed.items.into_iter().for_each(|o| objects.insert(wrap(o)));
    Ok(())
}

/// Reads one object by name into `objects`; false when it does not exist.
async fn get<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    objects: &mut Objects,
    wrap: fn(K) -> Object,
) -> Result<bool>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    match api.get_opt(name).await.map_err(|e| Error::kube(format!("reading {namespace}/{name}"), e))? {
        Some(object) => {
            objects.insert(wrap(object));
            Ok(true)
        }
        None => Ok(false),
    }
}
