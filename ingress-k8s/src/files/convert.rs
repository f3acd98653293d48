//! Manifest documents → objects: apiVersion/kind dispatch, legacy Ingress conversion
//! (`extensions/v1beta1`, `networking.k8s.io/v1beta1`), core/v1 Endpoints → EndpointSlices.

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use serde_json::{Value, json};

use crate::Object;
use crate::translate::SERVICE_NAME_LABEL;

/// Turns one parsed document into objects (none for kinds the controller does not read, many
/// for a `List`). The error is the reason shown to users.
pub(crate) fn document(value: Value) -> Result<Vec<Object>, String> {
    if value.is_null() {
        return Ok(Vec::new());
    }
    let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    if api_version.is_empty() || kind.is_empty() {
        return Err("document has no apiVersion or kind".into());
    }
    let mut object = match (api_version.as_str(), kind.as_str()) {
        (_, "List") => {
            let items = value.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut all = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                all.extend(document(item).map_err(|e| format!("items[{i}]: {e}"))?);
            }
            return Ok(all);
        }
        ("networking.k8s.io/v1", "Ingress") => Object::Ingress(from(value)?),
        ("networking.k8s.io/v1beta1" | "extensions/v1beta1", "Ingress") => {
            Object::Ingress(from(legacy_ingress(value)?)?)
        }
        ("networking.k8s.io/v1" | "networking.k8s.io/v1beta1", "IngressClass") => {
            Object::IngressClass(from(with_version(value, "networking.k8s.io/v1"))?)
        }
        ("v1", "Service") => Object::Service(from(value)?),
        ("v1", "Secret") => Object::Secret(from(value)?),
        ("v1", "ConfigMap") => Object::ConfigMap(from(value)?),
        ("v1", "Namespace") => Object::Namespace(from(value)?),
        ("discovery.k8s.io/v1" | "discovery.k8s.io/v1beta1", "EndpointSlice") => {
            Object::EndpointSlice(from(with_version(value, "discovery.k8s.io/v1"))?)
        }
        ("v1", "Endpoints") => return Ok(endpoints_to_slices(&from(value)?)),
        _ => return Ok(Vec::new()),
    };
    default_namespace(&mut object);
    Ok(vec![object])
}

fn from<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn with_version(mut value: Value, api_version: &str) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), api_version.into());
    }
    value
}

/// Namespaced objects without a namespace land in `default`, as `kubectl apply` would put them.
fn default_namespace(object: &mut Object) {
    let meta = match object {
        Object::IngressClass(_) | Object::Namespace(_) => return,
        Object::Ingress(o) => &mut o.metadata,
        Object::Service(o) => &mut o.metadata,
        Object::EndpointSlice(o) => &mut o.metadata,
        Object::Secret(o) => &mut o.metadata,
        Object::ConfigMap(o) => &mut o.metadata,
    };
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some("default".into());
    }
}

/// `{serviceName, servicePort}` → `{service: {name, port: {number | name}}}`.
fn legacy_backend(backend: &Value) -> Value {
    if backend.get("resource").is_some() {
        return backend.clone();
    }
    let name = backend.get("serviceName").cloned().unwrap_or(Value::Null);
    let port = match backend.get("servicePort") {
        Some(Value::Number(n)) => json!({ "number": n }),
        Some(Value::String(s)) => match s.parse::<u16>() {
            Ok(n) => json!({ "number": n }),
            Err(_) => json!({ "name": s }),
        },
        _ => Value::Null,
    };
    json!({ "service": { "name": name, "port": port } })
}

/// A `v1beta1` Ingress (either group) → the `networking.k8s.io/v1` shape: `spec.backend` →
/// `spec.defaultBackend`, `serviceName`/`servicePort` → `service.name`/`service.port`, and a
/// missing `pathType` → `ImplementationSpecific` (what the API server itself does).
pub fn legacy_ingress(mut value: Value) -> Result<Value, String> {
    let root = value.as_object_mut().ok_or("document is not a mapping")?;
    root.insert("apiVersion".into(), "networking.k8s.io/v1".into());
    let Some(spec) = root.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(value) };
    if let Some(backend) = spec.remove("backend") {
        spec.insert("defaultBackend".into(), legacy_backend(&backend));
    }
    for rule in spec.get_mut("rules").and_then(Value::as_array_mut).into_iter().flatten() {
        let paths = rule.get_mut("http").and_then(|h| h.get_mut("paths")).and_then(Value::as_array_mut);
        for path in paths.into_iter().flatten() {
            let Some(path) = path.as_object_mut() else { continue };
            if let Some(backend) = path.get("backend") {
                let converted = legacy_backend(backend);
                path.insert("backend".into(), converted);
            }
            path.entry("pathType").or_insert_with(|| "ImplementationSpecific".into());
        }
    }
    Ok(value)
}

/// core/v1 Endpoints → one EndpointSlice per subset, named and labelled as the EndpointSlice
/// mirroring controller would.
fn endpoints_to_slices(endpoints: &Endpoints) -> Vec<Object> {
    let name = endpoints.metadata.name.clone().unwrap_or_default();
    let namespace =
        endpoints.metadata.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
    let mut out = Vec::new();
    for (i, subset) in endpoints.subsets.iter().flatten().enumerate() {
        let mut slice = EndpointSlice { address_type: "IPv4".into(), ..EndpointSlice::default() };
        slice.metadata.name = Some(format!("{name}-endpoints-{i}"));
        slice.metadata.namespace = Some(namespace.clone());
        slice.metadata.labels = Some([(SERVICE_NAME_LABEL.to_owned(), name.clone())].into());
        slice.ports = Some(
            subset
                .ports
                .iter()
                .flatten()
                .map(|p| EndpointPort { name: p.name.clone(), port: Some(p.port), ..EndpointPort::default() })
                .collect(),
        );
        let endpoint = |ip: &str, ready: bool| Endpoint {
            addresses: vec![ip.to_owned()],
            conditions: Some(EndpointConditions { ready: Some(ready), ..EndpointConditions::default() }),
            ..Endpoint::default()
        };
        let mut list: Vec<Endpoint> =
            subset.addresses.iter().flatten().map(|a| endpoint(&a.ip, true)).collect();
        list.extend(subset.not_ready_addresses.iter().flatten().map(|a| endpoint(&a.ip, false)));
        slice.endpoints = Some(list);
        out.push(Object::EndpointSlice(slice));
    }
    out
}
