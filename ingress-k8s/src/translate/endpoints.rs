//! EndpointSlices → the ready endpoints of each Service port.

use std::net::SocketAddr;

use ingress_core::{BackendRef, EndpointSet, PortRef};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::objects::Key;
use crate::{StoredService, StoredSlice};

/// The label linking an EndpointSlice to its Service.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service an EndpointSlice (as the API hands it over) belongs to, if it is labelled with
/// one.
pub(crate) fn slice_service(slice: &EndpointSlice) -> Option<Key> {
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some((slice.metadata.namespace.as_deref().unwrap_or_default().into(), name.as_str().into()))
}

/// The endpoint set of every port of one Service, keyed as the route table keys backends (the
/// Service port number).
///
/// Target-port semantics: the EndpointSlice controller names each slice port after the Service
/// port it serves and gives it the resolved target (container) port, so a Service port is
/// matched to the slice port of the same name (unnamed matches unnamed), and the address is
/// `endpoint IP : slice port`. Only ready endpoints count; an unset `ready` is ready, and
/// terminating endpoints are left out.
pub(crate) fn service_endpoints(
    (namespace, name): &Key,
    service: &StoredService,
    slices: &[&StoredSlice],
) -> Vec<(BackendRef, EndpointSet)> {
    let ports = &service.ports;
    let single_port = ports.len() == 1;
    ports
        .iter()
        .filter_map(|port| {
            let number = u16::try_from(port.port).ok()?;
            let wanted = port.name.as_deref().unwrap_or("");
            let mut addrs = Vec::new();
            for slice in slices {
                let Some(target) = find_port(&slice.ports, wanted, single_port) else { continue };
                addrs.extend(slice.ready.iter().map(|ip| SocketAddr::new(*ip, target)));
            }
            Some((
                BackendRef::new(namespace.clone(), name.clone(), PortRef::Number(number)),
                EndpointSet::new(addrs),
            ))
        })
        .collect()
}

/// The endpoint of `backend` (a port of `service`) reached through the Service's cluster IP
/// (`service-upstream`), keyed as the table keys it (port number resolved): `clusterIP:port`;
/// for a Service without a cluster IP (headless), its endpoints from `pods` (the Service's own
/// endpoint sets), as ingress-nginx falls back to them.
pub(crate) fn cluster_ip_endpoints<'a>(
    service: &StoredService,
    backend: &BackendRef,
    pods: impl IntoIterator<Item = (&'a BackendRef, &'a EndpointSet)>,
) -> Option<(BackendRef, EndpointSet)> {
    let ports = &service.ports;
    let number = match &backend.port {
        PortRef::Number(n) => *n,
        PortRef::Name(name) => {
            u16::try_from(ports.iter().find(|p| p.name.as_deref() == Some(name))?.port).ok()?
        }
    };
    let key = BackendRef { port: PortRef::Number(number), ..backend.clone() };
    let set = match service.cluster_ip {
        Some(ip) => EndpointSet::new([SocketAddr::new(ip, number)]),
        None => {
            let plain = BackendRef { cluster_ip: false, ..key.clone() };
            pods.into_iter().find(|(b, _)| **b == plain).map(|(_, set)| set.clone()).unwrap_or_default()
        }
    };
    Some((key, set))
}

fn find_port(ports: &[(String, Option<i32>)], wanted: &str, single_port: bool) -> Option<u16> {
    let by_name = ports.iter().find(|(name, _)| name == wanted);
    let (_, port) = match by_name {
        Some(p) => p,
        // A hand-written slice for a one-port Service may leave the name out.
        None if single_port && ports.len() == 1 => &ports[0],
        None => return None,
    };
    port.and_then(|p| u16::try_from(p).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::Objects;
    use crate::objects::{Change, Object};

    fn labelled(name: &str, service: &str) -> EndpointSlice {
        serde_yaml::from_str(&format!(
            "metadata: {{name: {name}, namespace: a, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nendpoints: []\n"
        ))
        .unwrap()
    }

    /// The translation cache's index of each Service's slices, which endpoint-only changes
    /// read too, follows every change as a scan of the stores would see it: a slice added,
    /// moved to another Service, deleted, and a re-list; between translations, as the engine
    /// reads it (the journal of changes is cleared only by a translation).
    #[test]
    fn the_slices_of_each_service_follow_changes() {
        let mut objects = Objects::new();
        let mut cache = super::super::TranslationCache::default();
        let mut changed = crate::Changed::default();
        let names =
            |objects: &Objects, cache: &super::super::TranslationCache, service: &str| -> Vec<String> {
                let key: Key = ("a".into(), service.into());
                let stored = |slice: &StoredSlice| {
                    objects
                        .endpoint_slices
                        .iter()
                        .find(|(_, o)| std::ptr::eq(&***o, slice))
                        .unwrap()
                        .0
                        .1
                        .to_string()
                };
                cache.slices_of(objects, &key).into_iter().map(stored).collect()
            };
        let mut apply =
            |objects: &mut Objects, cache: &mut super::super::TranslationCache, change: Change| {
                changed.note(&change);
                objects.apply(change);
                cache.sync_slices(objects, &changed);
            };
        apply(&mut objects, &mut cache, Change::Apply(Object::EndpointSlice(labelled("web-1", "web"))));
        assert_eq!(names(&objects, &cache, "web"), ["web-1"]);
        apply(&mut objects, &mut cache, Change::Apply(Object::EndpointSlice(labelled("web-2", "web"))));
        apply(&mut objects, &mut cache, Change::Apply(Object::EndpointSlice(labelled("api-1", "api"))));
        assert_eq!(names(&objects, &cache, "web"), ["web-1", "web-2"]);
        apply(&mut objects, &mut cache, Change::Apply(Object::EndpointSlice(labelled("web-2", "api"))));
        assert_eq!(names(&objects, &cache, "web"), ["web-1"]);
        assert_eq!(names(&objects, &cache, "api"), ["api-1", "web-2"]);
        let key: Key = ("a".into(), "web-1".into());
        apply(&mut objects, &mut cache, Change::Delete(crate::Kind::EndpointSlice, key));
        assert!(names(&objects, &cache, "web").is_empty());
        let relisted = vec![Object::EndpointSlice(labelled("web-9", "web"))];
        apply(&mut objects, &mut cache, Change::relist(crate::Kind::EndpointSlice, relisted));
        assert_eq!(names(&objects, &cache, "web"), ["web-9"]);
        assert!(names(&objects, &cache, "api").is_empty());
    }

    #[test]
    fn ready_named_ports_only() {
        let service: k8s_openapi::api::core::v1::Service = serde_yaml::from_str(
            "metadata: {name: web, namespace: default}\nspec:\n  ports:\n  - {name: http, port: 8080, targetPort: 80}\n  - {name: ajp, port: 8009}\n",
        )
        .unwrap();
        let slice: EndpointSlice = serde_yaml::from_str(
            r#"
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 80}, {name: ajp, port: 8009}]
endpoints:
- addresses: ["10.0.0.1"]
- addresses: ["10.0.0.2"]
  conditions: {ready: false}
- addresses: ["10.0.0.3"]
  conditions: {ready: true, terminating: true}
- addresses: ["10.0.0.4"]
  conditions: {ready: true}
"#,
        )
        .unwrap();
        let key: Key = ("default".into(), "web".into());
        let sets = service_endpoints(&key, &service.into(), &[&slice.into()]);
        let addrs = |i: usize| sets[i].1.as_slice().iter().map(|e| e.addr.to_string()).collect::<Vec<_>>();
        assert_eq!(sets[0].0, BackendRef::new("default", "web", 8080));
        assert_eq!(addrs(0), ["10.0.0.1:80", "10.0.0.4:80"]);
        assert_eq!(sets[1].0, BackendRef::new("default", "web", 8009));
        assert_eq!(addrs(1), ["10.0.0.1:8009", "10.0.0.4:8009"]);
    }
}
