//! A synthetic cluster as the controller's stores hold it: N Ingresses × 10 paths, 2N Services
//! and EndpointSlices, N/10 TLS Secrets, each object shaped as the API server returns it (the
//! fields it fills in itself: uid, resourceVersion, a Service's cluster IPs, a slice's owner,
//! node and Pod reference) and as a watcher hands it on (no `managedFields`).

use ingress_k8s::{Object, Objects};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;

/// Paths per Ingress.
pub const PATHS: usize = 10;

/// The object `value` describes, read from its JSON text as a watcher reads the API server's
/// answer (so its strings are as long as their text, not as the `json!` values built here).
fn from<T: k8s_openapi::serde::de::DeserializeOwned>(value: &serde_json::Value) -> T {
    match serde_json::from_str(&value.to_string()) {
        Ok(t) => t,
        Err(e) => panic!("fixture: {e}"),
    }
}

/// The metadata the API server returns for object `name` number `i`.
fn meta(ns: &str, name: &str, i: usize, rev: usize) -> serde_json::Value {
    serde_json::json!({
        "name": name, "namespace": ns,
        "uid": format!("6f1c2a9e-0000-4000-8000-{i:012}"),
        "resourceVersion": (100_000 + i * 7 + rev).to_string(),
        "generation": rev + 1,
        "creationTimestamp": "2026-01-01T00:00:00Z",
    })
}

/// Ingress `i` (revision `rev`): host `svc-<i>.apps.example.com`, ten paths over two Services,
/// TLS for every tenth, one annotation, the load balancer status a controller wrote.
pub fn ingress(i: usize, rev: usize) -> Ingress {
    let ns = format!("team-{}", i % 50);
    let paths: Vec<serde_json::Value> = (0..PATHS)
        .map(|j| {
            let service = if j % 2 == 0 { format!("web-{i}") } else { format!("api-{i}") };
            serde_json::json!({
                "path": if j == 0 { "/".to_owned() } else { format!("/p{j}/r{rev}") },
                "pathType": if j % 3 == 0 { "Exact" } else { "Prefix" },
                "backend": {"service": {"name": service, "port": {"number": 80}}}
            })
        })
        .collect();
    let host = format!("svc-{i}.apps.example.com");
    let mut spec = serde_json::json!({"rules": [{"host": host, "http": {"paths": paths}}]});
    if i.is_multiple_of(10) {
        spec["tls"] = serde_json::json!([{"hosts": [host], "secretName": format!("tls-{i}")}]);
    }
    let mut metadata = meta(&ns, &format!("ing-{i}"), i, rev);
    metadata["annotations"] = serde_json::json!({"nginx.ingress.kubernetes.io/proxy-read-timeout": "30"});
    from(&serde_json::json!({
        "metadata": metadata,
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    }))
}

/// A Service with one port, or (`extra`) a second port numbered `10_000 + extra`.
pub fn service(ns: &str, name: &str, i: usize, extra: Option<usize>) -> Service {
    let mut ports =
        vec![serde_json::json!({"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080})];
    if let Some(round) = extra {
        ports.push(serde_json::json!({"name": "extra", "protocol": "TCP", "port": 10_000 + round, "targetPort": 9090}));
    }
    let ip = format!("10.96.{}.{}", (i / 250) % 250, i % 250);
    from(&serde_json::json!({
        "metadata": meta(ns, name, i, extra.unwrap_or(0)),
        "spec": {
            "ports": ports, "selector": {"app": name}, "type": "ClusterIP",
            "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster"
        },
        "status": {"loadBalancer": {}}
    }))
}

/// The slice of Service `service` (number `i`): two ready Pods.
pub fn slice(ns: &str, service: &str, i: usize) -> EndpointSlice {
    let name = format!("{service}-1");
    let mut metadata = meta(ns, &name, i, 0);
    metadata["labels"] = serde_json::json!({
        "kubernetes.io/service-name": service,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
    });
    metadata["annotations"] =
        serde_json::json!({"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z"});
    metadata["ownerReferences"] = serde_json::json!([{
        "apiVersion": "v1", "kind": "Service", "name": service, "controller": true,
        "blockOwnerDeletion": true, "uid": format!("6f1c2a9e-0000-4000-8000-{i:012}")
    }]);
    let endpoint = |k: usize| {
        serde_json::json!({
            "addresses": [format!("10.{}.{}.{k}", (i / 250) % 250, i % 250)],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": format!("node-{}", (i + k) % 20),
            "zone": "zone-a",
            "targetRef": {"kind": "Pod", "namespace": ns, "name": format!("{service}-{k}"),
                          "uid": format!("7a2b3c4d-0000-4000-8000-{i:010}{k:02}")}
        })
    };
    from(&serde_json::json!({
        "metadata": metadata,
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [endpoint(1), endpoint(2)]
    }))
}

/// The demo's TLS Secret, the template of every TLS Secret here.
pub fn tls_template() -> Secret {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo/webapp-tls-secret.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match ingress_k8s::parse_manifest(&path, &text).map(|mut o| o.remove(0)) {
        Ok(Object::Secret(s)) => s,
        _ => panic!("{}: not a Secret", path.display()),
    }
}

/// TLS Secret `name`: the demo's certificate, or (`other`) the test fixtures' `web.crt`, a
/// certificate of its own.
pub fn tls_secret(ns: &str, name: &str, other: bool) -> Secret {
    let mut secret = tls_template();
    if other {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingress-k8s/tests/fixtures");
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        secret.data = Some(
            [("tls.crt", read("web.crt")), ("tls.key", read("web.key"))]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), k8s_openapi::ByteString(v)))
                .collect(),
        );
    }
    renamed(secret, ns, name)
}

/// `secret`, named `ns/name`.
fn renamed(mut secret: Secret, ns: &str, name: &str) -> Secret {
    secret.metadata.name = Some(name.to_owned());
    secret.metadata.namespace = Some(ns.to_owned());
    secret
}

/// Every object of a cluster of `n` Ingresses, in the order a list would hand them over.
pub fn objects(n: usize) -> Vec<Object> {
    let template = tls_template();
    let mut objects = Vec::with_capacity(n * 5 + n / 10);
    for i in 0..n {
        let ns = format!("team-{}", i % 50);
        objects.push(Object::Ingress(ingress(i, 0)));
        for name in [format!("web-{i}"), format!("api-{i}")] {
            objects.push(Object::Service(service(&ns, &name, i, None)));
            objects.push(Object::EndpointSlice(slice(&ns, &name, i)));
        }
        if i.is_multiple_of(10) {
            objects.push(Object::Secret(renamed(template.clone(), &ns, &format!("tls-{i}"))));
        }
    }
    objects
}

/// The stores holding [`objects`]`(n)`.
pub fn stores(n: usize) -> Objects {
    let mut stores = Objects::default();
    stores.extend(objects(n));
    stores
}
