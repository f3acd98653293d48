//! Translation on YAML fixtures: manifests → objects → one pure `translate` → core table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ingress_core::{BackendRef, EndpointStore, PortRef};
use ingress_k8s::{Config, ManifestDir, Problem, Severity, translate};

struct Built {
    table: ingress_core::RouteTable,
    problems: Vec<Problem>,
    _store: EndpointStore,
}

fn build(dir: &str, config: &Config) -> Built {
    let mut manifests =
        ManifestDir::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir));
    manifests.scan().unwrap();
    assert!(manifests.errors().is_empty(), "{:?}", manifests.errors());
    let mut translation = translate(&manifests.objects(), config);
    let mut store = EndpointStore::new();
    let (table, problems) = translation.compile(&mut store);
    Built { table, problems, _store: store }
}

fn addrs(table: &ingress_core::RouteTable, host: &str, path: &str) -> Vec<String> {
    let route = table.lookup(host, path).unwrap_or_else(|| panic!("no route for {host}{path}"));
    route.backend.endpoints().as_slice().iter().map(|e| e.addr.to_string()).collect()
}

#[test]
fn seed_tutorial_extensions_v1beta1() {
    let nginx = Config { ingress_class: "nginx".into(), ..Config::default() };
    let built = build("seed", &nginx);
    let route = built.table.lookup("demo.example.com", "/index.html").unwrap();
    assert_eq!(route.backend.key(), &BackendRef::new("default", "demo-app", PortRef::Number(80)));
    // Ready and unset-ready endpoints; not the unready one.
    assert_eq!(addrs(&built.table, "demo.example.com", "/"), ["10.244.1.5:80", "10.244.2.7:80"]);
    // core/v1 Endpoints, converted: ready addresses only, target port of the named port.
    assert_eq!(addrs(&built.table, "webapp.example.com", "/"), ["10.244.1.20:8080", "10.244.2.21:8080"]);
    assert!(built.table.lookup("unknown.example.com", "/").is_none());
    let tls = built.table.tls().certificate_for(Some("webapp.example.com")).unwrap();
    assert_eq!(tls.certificate.name, "webapp-tls-secret");
    let pem = built.table.tls().material(&tls.certificate).unwrap();
    assert!(pem.chain.starts_with("-----BEGIN CERTIFICATE-----"));
    // The two webapp Ingresses claim the same rule: the older one wins, the other is told why.
    assert_eq!(built.problems.len(), 1, "{:#?}", built.problems);
    assert_eq!(&*built.problems[0].object.1, "webapp-ingress-tls");
    assert_eq!(built.problems[0].field, "spec.rules[0].http.paths[0]");
    assert!(built.problems[0].reason.contains("default/webapp-ingress"));

    // With our default class name, the seed's `nginx` Ingresses are not ours.
    let ferry = build("seed", &Config::default());
    assert!(ferry.table.lookup("demo.example.com", "/").is_none());
}

#[test]
fn every_problem_is_named_and_the_rest_keeps_working() {
    let built = build("problems", &Config::default());
    let found: Vec<(String, String, Severity, String)> = built
        .problems
        .iter()
        .map(|p| (p.object.1.to_string(), p.field.clone(), p.severity, p.reason.clone()))
        .collect();
    let has = |name: &str, field: &str, severity: Severity, reason: &str| {
        assert!(
            found.iter().any(|(n, f, s, r)| n == name && f == field && *s == severity && r.contains(reason)),
            "missing {name} {field} {reason:?} in {found:#?}"
        );
    };
    has(
        "missing-service",
        "spec.rules[0].http.paths[0].backend",
        Severity::Warning,
        "service shop/nowhere not found",
    );
    has("bad-port", "spec.rules[0].http.paths[1]", Severity::Rejected, "has no port named `grpc`");
    has("bad-tls", "spec.tls[0].secretName", Severity::Rejected, "tls.key does not match the certificate");
    has("bad-tls", "spec.tls[1].secretName", Severity::Rejected, "tls.crt");
    has("bad-tls", "spec.tls[2].secretName", Severity::Rejected, "not found");
    has("late-duplicate", "spec.rules[0].http.paths[0]", Severity::Rejected, "shop/good");
    // Annotations: one problem per annotation not applied; an access restriction closes the
    // Ingress and is Rejected, the others are Warnings, a bad value is Rejected.
    let annotation = |name: &str| format!("metadata.annotations[nginx.ingress.kubernetes.io/{name}]");
    has(
        "annotated",
        &annotation("auth-tls-secret"),
        Severity::Rejected,
        "value `shop/client-ca`: Secret shop/client-ca not found",
    );
    has(
        "annotated",
        &annotation("auth-tls-secret"),
        Severity::Rejected,
        "answer 503 until this is fixed (fail closed)",
    );
    has(
        "annotated",
        &annotation("configuration-snippet"),
        Severity::Warning,
        "ignored: configuration snippets",
    );
    has(
        "annotated",
        &annotation("proxy-bdy-size"),
        Severity::Warning,
        "unknown: not an ingress-nginx annotation",
    );
    has(
        "annotated",
        &annotation("proxy-read-timeout"),
        Severity::Rejected,
        "value `60s`: expected whole seconds",
    );
    assert_eq!(found.len(), 10, "{found:#?}");
    let annotated = built.table.lookup("annotated.example.com", "/").unwrap();
    assert!(annotated.policy.closed.is_some(), "closed, not open");

    // The good Ingress routes to its ready, non-terminating endpoint at the target port.
    assert_eq!(addrs(&built.table, "good.example.com", "/"), ["10.1.0.1:8080"]);
    // A missing Service keeps the route (the proxy answers 503: no endpoints).
    assert!(addrs(&built.table, "missing.example.com", "/").is_empty());
    // The bad path is out, the good path of the same Ingress is in (port 80 by number).
    assert_eq!(addrs(&built.table, "badport.example.com", "/ok"), ["10.1.0.1:8080"]);
    // Invalid TLS: the route stays, its host gets no certificate of its own.
    assert!(built.table.lookup("mismatch.example.com", "/").is_some());
    assert!(built.table.tls().certificate_for(Some("mismatch.example.com")).is_none());
    // Another class's Ingress is ignored.
    assert!(built.table.lookup("other.example.com", "/").is_none());
}

#[test]
fn unparsable_file_is_reported_and_keeps_its_last_good_content() {
    let dir = std::env::temp_dir().join(format!("ferry-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.yaml");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed/demo.yaml");
    std::fs::copy(&seed, &file).unwrap();
    let mut manifests = ManifestDir::new(&dir);
    assert!(manifests.scan().unwrap());
    assert_eq!(manifests.objects().ingresses.len(), 1);

    std::fs::write(&file, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n---\nkind: [broken\n")
        .unwrap();
    assert!(!manifests.scan().unwrap(), "a broken file changes nothing");
    let errors = manifests.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, file);
    assert_eq!(errors[0].document, Some(1));
    assert!(errors[0].to_string().contains("app.yaml document 1:"), "{}", errors[0]);
    assert_eq!(manifests.objects().ingresses.len(), 1, "previous good content stays in force");

    std::fs::write(&file, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n").unwrap();
    assert!(manifests.scan().unwrap());
    assert!(manifests.errors().is_empty());
    assert!(manifests.objects().ingresses.is_empty());
    assert_eq!(manifests.objects().services.keys().next().unwrap(), &("default".into(), "x".into()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn legacy_backend_conversion() {
    let v1beta1: serde_json::Value = serde_yaml::from_str(
        "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: a}\nspec:\n  backend: {serviceName: def, servicePort: http}\n  rules:\n  - http:\n      paths:\n      - backend: {serviceName: s, servicePort: 8080}\n",
    )
    .unwrap();
    let v1 = ingress_k8s::legacy_ingress(v1beta1).unwrap();
    assert_eq!(v1["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(v1["spec"]["defaultBackend"]["service"]["port"]["name"], "http");
    let path = &v1["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["backend"]["service"]["name"], "s");
    assert_eq!(path["backend"]["service"]["port"]["number"], 8080);
    assert_eq!(path["pathType"], "ImplementationSpecific");
}

#[test]
fn status_addresses_from_publish_service_or_flag() {
    let mut objects = ingress_k8s::Objects::new();
    let service = |status: &str| {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: ingress-ferry, namespace: ingress-ferry}}\nspec:\n  externalIPs: [198.51.100.7]\n  ports: [{{port: 80}}]\n{status}"
        );
        ingress_k8s::parse_manifest(Path::new("svc.yaml"), &yaml).unwrap().remove(0)
    };
    let by_service =
        Config { publish_service: Some("ingress-ferry/ingress-ferry".parse().unwrap()), ..Config::default() };
    objects.insert(service(""));
    assert_eq!(
        translate(&objects, &by_service).status_addresses,
        ["198.51.100.7"],
        "external IPs without a load balancer"
    );
    objects.insert(service(
        "status: {loadBalancer: {ingress: [{ip: 203.0.113.1}, {hostname: lb.example.com}]}}\n",
    ));
    assert_eq!(translate(&objects, &by_service).status_addresses, ["203.0.113.1", "lb.example.com"]);
    let by_flag = Config { publish_status_address: vec!["192.0.2.1".into()], ..by_service };
    assert_eq!(translate(&objects, &by_flag).status_addresses, ["192.0.2.1"], "the flag wins");
    assert!(translate(&objects, &Config::default()).status_addresses.is_empty());
}

#[test]
fn controller_default_backend_and_certificate() {
    let config = Config {
        ingress_class: "nginx".into(),
        default_backend_service: Some("default/demo-app".parse().unwrap()),
        default_ssl_certificate: Some("default/webapp-tls-secret".parse().unwrap()),
        ..Config::default()
    };
    let built = build("seed", &config);
    let fallback = built.table.lookup("unknown.example.com", "/anything").expect("the default backend");
    assert_eq!(fallback.backend.key(), &BackendRef::new("default", "demo-app", PortRef::Number(80)));
    let tls = built.table.tls().certificate_for(Some("unknown.example.com")).unwrap();
    assert_eq!(tls.certificate.name, "webapp-tls-secret");
    assert!(built.table.tls().material(&tls.certificate).is_some());

    let missing = Config {
        default_backend_service: Some("default/nope".parse().unwrap()),
        default_ssl_certificate: Some("default/nope".parse().unwrap()),
        ..config
    };
    let built = build("seed", &missing);
    let fields: Vec<&str> =
        built.problems.iter().filter(|p| p.object.0.is_empty()).map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["--default-backend-service", "--default-ssl-certificate"]);
    assert!(built.table.lookup("unknown.example.com", "/").is_none());
    assert!("no-slash".parse::<ingress_k8s::ObjectName>().is_err());
}

#[test]
fn disable_catch_all_leaves_out_ingresses_with_a_default_backend() {
    let config = Config { ingress_class: "nginx".into(), ..Config::default() };
    let built = build("catch-all", &config);
    assert!(built.table.lookup("anything.example.com", "/").is_some(), "served by default");
    let strict = Config { disable_catch_all: true, ..config };
    let built = build("catch-all", &strict);
    assert!(built.table.lookup("anything.example.com", "/").is_none(), "left out");
    assert!(built.table.lookup("site.example.com", "/").is_some(), "the others stay");
    let problem = built.problems.iter().find(|p| &*p.object.1 == "catch-all").expect("reported");
    assert_eq!((problem.field.as_str(), problem.severity), ("spec.defaultBackend", Severity::Rejected));
}
