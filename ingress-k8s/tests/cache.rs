//! The translation cache gives what a fresh translation gives: a long pseudo-random sequence of
//! changes to every kind of object (and to the flags), each followed by a cached translation
//! compared with a fresh one; and it reuses what did not change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use ingress_core::{EndpointStore, RouteTable};
use ingress_k8s::{
    Change, Changed, Config, Kind, Object, ObjectName, Objects, Translation, TranslationCache, translate,
    translate_changed, translate_with,
};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const NAMESPACES: [&str; 2] = ["a", "b"];
const SERVICES: [&str; 4] = ["s0", "s1", "s2", "s3"];
const HOSTS: [&str; 4] = ["x.example.com", "y.example.com", "*.example.com", ""];
const PATHS: [&str; 3] = ["/", "/api", "/v1/items"];
const INGRESSES: usize = 10;
const PREFIX: &str = "nginx.ingress.kubernetes.io";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

fn object(kind: &str, api_version: &str, value: Value) -> Object {
    let mut value = value;
    value["kind"] = json!(kind);
    value["apiVersion"] = json!(api_version);
    let yaml = serde_yaml::to_string(&value).unwrap();
    ingress_k8s::parse_manifest(Path::new("generated.yaml"), &yaml).unwrap().remove(0)
}

/// The generated objects, by kind: each function makes one random version of one object.
struct World {
    rng: Rng,
    crt: String,
    key: String,
    other_key: String,
    /// The Services and Ingresses as last sent (the stores keep only what translation reads of
    /// them, so sending one again takes the object sent).
    sent: BTreeMap<(Kind, ingress_k8s::Key), Object>,
}

impl World {
    /// Notes a change sent to the stores.
    fn sent(&mut self, change: &Change) {
        let kept = |kind: &Kind| matches!(kind, Kind::Service | Kind::Ingress);
        match change {
            Change::Apply(object) if kept(&object.kind()) => {
                self.sent.insert((object.kind(), object.key()), object.clone());
            }
            Change::Delete(kind, key) if kept(kind) => drop(self.sent.remove(&(*kind, key.clone()))),
            _ => {}
        }
    }

    /// Notes a relist of `kind` sent to the stores, made of `listed`.
    fn relisted(&mut self, kind: Kind, listed: &[Object]) {
        self.sent.retain(|(k, _), _| *k != kind);
        self.sent.extend(listed.iter().map(|o| ((o.kind(), o.key()), o.clone())));
    }

    /// The objects of `kind` as last sent, in key order.
    fn sent_of(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        self.sent.iter().filter(move |((k, _), _)| *k == kind).map(|(_, o)| o)
    }

    fn ns(&mut self) -> &'static str {
        self.rng.pick(&NAMESPACES)
    }

    fn service(&mut self, ns: &str, name: &str) -> Object {
        let ports = match self.rng.below(3) {
            0 => json!([{"name": "http", "port": 80, "targetPort": 8080}]),
            1 => json!([{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]),
            _ => json!([{"port": 81}]),
        };
        let cluster_ip =
            if self.rng.chance(30) { "None".to_owned() } else { format!("10.96.0.{}", self.rng.below(9)) };
        object(
            "Service",
            "v1",
            json!({"metadata": {"name": name, "namespace": ns}, "spec": {"ports": ports, "clusterIP": cluster_ip}}),
        )
    }

    fn slice(&mut self, ns: &str, name: &str) -> Object {
        let service = self.rng.pick(&SERVICES);
        let ports = match self.rng.below(3) {
            0 => json!([{"name": "http", "port": 8080}]),
            1 => json!([{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]),
            _ => json!([{"port": 8081}]),
        };
        let endpoints: Vec<Value> = (0..1 + self.rng.below(3))
            .map(|_| {
                let ip = format!("10.0.{}.{}", self.rng.below(3), 1 + self.rng.below(9));
                json!({"addresses": [ip], "conditions": {"ready": self.rng.chance(80)}})
            })
            .collect();
        object(
            "EndpointSlice",
            "discovery.k8s.io/v1",
            json!({
                "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "ports": ports, "endpoints": endpoints
            }),
        )
    }

    fn tls_secret(&mut self, ns: &str, name: &str) -> Object {
        let key = if self.rng.chance(75) { &self.key } else { &self.other_key };
        object(
            "Secret",
            "v1",
            json!({
                "metadata": {"name": name, "namespace": ns}, "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": self.crt, "tls.key": key}
            }),
        )
    }

    fn auth_secret(&mut self, ns: &str) -> Object {
        // `user:password` with apr1, as htpasswd writes it; or a line that does not parse.
        let auth = if self.rng.chance(70) { "user:$apr1$x9.vqHfV$PXlA8X.pk2UUzxg8z9rSa1" } else { "garbage" };
        object(
            "Secret",
            "v1",
            json!({"metadata": {"name": "auth-0", "namespace": ns}, "type": "Opaque", "stringData": {"auth": auth}}),
        )
    }

    fn headers(&mut self, ns: &str) -> Object {
        let data = match self.rng.below(3) {
            0 => json!({"X-Custom": format!("v{}", self.rng.below(5))}),
            1 => json!({"X-Custom": "a", "X-Other": "b"}),
            _ => json!({"Bad Header": "x"}),
        };
        object("ConfigMap", "v1", json!({"metadata": {"name": "hdr-0", "namespace": ns}, "data": data}))
    }

    fn controller_config(&mut self) -> Object {
        let data = match self.rng.below(5) {
            0 => json!({}),
            1 => json!({"service-upstream": "true"}),
            2 => json!({"global-allowed-response-headers": "X-Custom"}),
            3 => json!({"add-headers": "a/hdr-0", "proxy-read-timeout": "20"}),
            _ => json!({"service-upstream": "false", "global-allowed-response-headers": "X-Other"}),
        };
        object(
            "ConfigMap",
            "v1",
            json!({"metadata": {"name": "ferry", "namespace": "ingress"}, "data": data}),
        )
    }

    fn tcp_services(&mut self) -> Object {
        let data = match self.rng.below(3) {
            0 => json!({"9000": "a/s0:80"}),
            1 => json!({"9000": "a/s1:http", "9001": "b/missing:80"}),
            _ => json!({"70000": "a/s0:80"}),
        };
        object("ConfigMap", "v1", json!({"metadata": {"name": "tcp", "namespace": "ingress"}, "data": data}))
    }

    fn class(&mut self, name: &str) -> Object {
        let controller =
            if self.rng.chance(60) { "ferry.dev/ingress-controller" } else { "example.com/other" };
        let default = if self.rng.chance(50) { "true" } else { "false" };
        object(
            "IngressClass",
            "networking.k8s.io/v1",
            json!({
                "metadata": {"name": name, "annotations": {"ingressclass.kubernetes.io/is-default-class": default}},
                "spec": {"controller": controller}
            }),
        )
    }

    fn namespace(&mut self, name: &str) -> Object {
        let team = if self.rng.chance(60) { "web" } else { "ops" };
        object("Namespace", "v1", json!({"metadata": {"name": name, "labels": {"team": team}}}))
    }

    fn backend(&mut self) -> Value {
        let service = if self.rng.chance(10) { "missing" } else { self.rng.pick(&SERVICES) };
        let port = match self.rng.below(5) {
            0 => json!({"number": 80}),
            1 => json!({"number": 81}),
            2 => json!({"number": 9000}),
            3 => json!({"name": "http"}),
            _ => json!({"name": "admin"}),
        };
        json!({"service": {"name": service, "port": port}})
    }

    fn ingress(&mut self, ns: &str, name: &str) -> Object {
        let mut annotations = serde_json::Map::new();
        let mut spec = serde_json::Map::new();
        match self.rng.below(4) {
            0 => drop(spec.insert("ingressClassName".into(), json!("ferry"))),
            1 => drop(spec.insert("ingressClassName".into(), json!("other"))),
            2 => drop(annotations.insert("kubernetes.io/ingress.class".into(), json!("ferry"))),
            _ => {}
        }
        let optional: [(&str, &str); 9] = [
            ("custom-headers", "@/hdr-0"),
            ("auth-type", "basic"),
            ("auth-secret", "auth-0"),
            ("canary", "true"),
            ("canary-weight", "30"),
            ("service-upstream", "true"),
            ("default-backend", "s1"),
            ("proxy-read-timeout", "30"),
            ("rewrite-target", "/"),
        ];
        for (annotation, value) in optional {
            if self.rng.chance(20) {
                annotations.insert(format!("{PREFIX}/{annotation}"), json!(value.replace('@', ns)));
            }
        }
        let rules: Vec<Value> = (0..1 + self.rng.below(2))
            .map(|_| {
                let paths: Vec<Value> = (0..1 + self.rng.below(3))
                    .map(|_| {
                        let path_type = self.rng.pick(&["Prefix", "Exact", "ImplementationSpecific"]);
                        json!({"path": self.rng.pick(&PATHS), "pathType": path_type, "backend": self.backend()})
                    })
                    .collect();
                let host = self.rng.pick(&HOSTS);
                if host.is_empty() {
                    json!({"http": {"paths": paths}})
                } else {
                    json!({"host": host, "http": {"paths": paths}})
                }
            })
            .collect();
        spec.insert("rules".into(), json!(rules));
        if self.rng.chance(20) {
            spec.insert("defaultBackend".into(), self.backend());
        }
        if self.rng.chance(40) {
            let secret = format!("tls-{}", self.rng.below(3));
            let host = self.rng.pick(&HOSTS[..3]);
            spec.insert("tls".into(), json!([{"hosts": [host], "secretName": secret}]));
        }
        let created = format!("2026-01-0{}T00:00:00Z", 1 + self.rng.below(3));
        let status = if self.rng.chance(30) {
            json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}})
        } else {
            json!({})
        };
        object(
            "Ingress",
            "networking.k8s.io/v1",
            json!({
                "metadata": {"name": name, "namespace": ns, "annotations": annotations, "creationTimestamp": created,
                             "uid": format!("uid-{name}"), "generation": self.rng.below(4)},
                "spec": spec,
                "status": status
            }),
        )
    }

    /// One random change to the stores.
    fn change(&mut self, objects: &Objects) -> Change {
        let ns = self.ns();
        let delete = self.rng.chance(20);
        let key = |name: &str| -> ingress_k8s::Key { (ns.into(), name.into()) };
        match self.rng.below(12) {
            0..=2 => {
                let name = format!("i{}", self.rng.below(INGRESSES));
                if delete {
                    Change::Delete(Kind::Ingress, key(&name))
                } else {
                    Change::Apply(self.ingress(ns, &name))
                }
            }
            3 => {
                let name = self.rng.pick(&SERVICES);
                if delete {
                    Change::Delete(Kind::Service, key(name))
                } else {
                    Change::Apply(self.service(ns, name))
                }
            }
            4 => {
                let name = format!("slice-{}", self.rng.below(6));
                if delete {
                    Change::Delete(Kind::EndpointSlice, key(&name))
                } else {
                    Change::Apply(self.slice(ns, &name))
                }
            }
            5 => {
                let name = format!("tls-{}", self.rng.below(3));
                if delete {
                    Change::Delete(Kind::Secret, key(&name))
                } else {
                    Change::Apply(self.tls_secret(ns, &name))
                }
            }
            6 => {
                if delete {
                    Change::Delete(Kind::Secret, key("auth-0"))
                } else {
                    Change::Apply(self.auth_secret(ns))
                }
            }
            7 => {
                if delete {
                    Change::Delete(Kind::ConfigMap, key("hdr-0"))
                } else {
                    Change::Apply(self.headers(ns))
                }
            }
            8 => {
                let name: ingress_k8s::Key = ("ingress".into(), "ferry".into());
                if delete {
                    Change::Delete(Kind::ConfigMap, name)
                } else {
                    Change::Apply(self.controller_config())
                }
            }
            9 => {
                let name = self.rng.pick(&["ferry", "other"]);
                if delete {
                    Change::Delete(Kind::IngressClass, ("".into(), name.into()))
                } else {
                    Change::Apply(self.class(name))
                }
            }
            10 => {
                if self.rng.chance(50) {
                    Change::Apply(self.tcp_services())
                } else if delete {
                    Change::Delete(Kind::Namespace, ("".into(), ns.into()))
                } else {
                    Change::Apply(self.namespace(ns))
                }
            }
            // The same content in a new version (a resync, a label nothing reads).
            _ => match self.rng.below(4) {
                0 => self.sent_of(Kind::Ingress).next().cloned(),
                1 => self.sent_of(Kind::Service).next().cloned(),
                2 => objects.secrets.values().next().map(|s| Object::Secret((**s).clone())),
                _ => objects.config_maps.values().next().map(|c| Object::ConfigMap((**c).clone())),
            }
            .map_or(Change::Delete(Kind::Ingress, key("none")), Change::Apply),
        }
    }
}

fn name(namespace: &str, name: &str) -> Option<ObjectName> {
    Some(ObjectName { namespace: namespace.into(), name: name.into() })
}

/// The controller settings the sequence runs under: most flags that change what is read.
fn configs() -> [Config; 2] {
    let first = Config {
        configmap: name("ingress", "ferry"),
        default_backend_service: name("a", "s0"),
        default_ssl_certificate: name("a", "tls-0"),
        publish_service: name("a", "s1"),
        tcp_services_configmap: name("ingress", "tcp"),
        ..Config::default()
    };
    let second = Config {
        configmap: name("ingress", "ferry"),
        watch_ingress_without_class: true,
        watch_namespace_selector: Some("team=web".parse().unwrap()),
        disable_catch_all: true,
        ..Config::default()
    };
    [first, second]
}

/// What a route table does for a set of requests, and its certificates, as text.
fn behaviour(table: &RouteTable) -> Vec<String> {
    let mut out = vec![format!("fingerprint {}", table.fingerprint())];
    for host in ["x.example.com", "y.example.com", "z.example.com", "other.test", "www.x.example.com"] {
        for path in ["/", "/api", "/api/x", "/v1/items", "/v1/items/2", "/nothing"] {
            let line = match table.lookup(host, path) {
                None => "none".to_owned(),
                Some(route) => {
                    let addrs: Vec<String> =
                        route.backend.endpoints().as_slice().iter().map(|e| e.addr.to_string()).collect();
                    format!(
                        "{:?} {addrs:?} {:?} {:?} tls={} fallback={:?} canary={:?}",
                        route.backend.key(),
                        route.matched_by,
                        route.policy,
                        route.host_tls,
                        route.fallback.map(|f| f.key()),
                        route.canary.map(|c| format!("{c:?}")),
                    )
                }
            };
            out.push(format!("{host}{path}: {line}"));
        }
    }
    let tls = table.tls();
    out.push(format!("tls {:?} default {:?}", tls.entries(), tls.default_certificate()));
    for certificate in tls.certificates() {
        out.push(format!(
            "{certificate:?}: {}",
            tls.material(certificate).is_some_and(|m| !m.chain.is_empty())
        ));
    }
    for stream in table.streams() {
        out.push(format!("stream {:?}", stream.service()));
    }
    out
}

/// The controller's side of the comparison: its endpoint store and its rebuilder, kept from
/// one change to the next, with the backends of the last translation.
#[derive(Default)]
struct Live {
    store: EndpointStore,
    rebuilder: ingress_core::Rebuilder,
    loaded: ingress_k8s::EndpointList,
    /// Builds that read only the changes to the Ingress list, not the whole list.
    read_changes_only: usize,
}

/// Asserts that a cached translation is the fresh one, before and after compiling (the cached
/// one incrementally, against the live store, as the engine compiles it).
fn assert_same(mut cached: Translation, mut fresh: Translation, live: &mut Live, step: usize, what: &str) {
    let context = format!("step {step} ({what})");
    assert_eq!(cached.problems, fresh.problems, "{context}: problems");
    assert_eq!(cached.ingresses, fresh.ingresses, "{context}: ingresses");
    assert_eq!(cached.endpoints, fresh.endpoints, "{context}: endpoints");
    assert_eq!(cached.config, fresh.config, "{context}: config");
    assert_eq!(cached.config_references, fresh.config_references, "{context}: config references");
    assert_eq!(
        cached.referenced_config_maps, fresh.referenced_config_maps,
        "{context}: referenced ConfigMaps"
    );
    assert_eq!(cached.referenced_secrets, fresh.referenced_secrets, "{context}: referenced Secrets");
    assert_eq!(cached.used_services, fresh.used_services, "{context}: used Services");
    assert_eq!(cached.used_secrets, fresh.used_secrets, "{context}: used Secrets");
    assert_eq!(cached.status_addresses, fresh.status_addresses, "{context}: status addresses");
    // As the engine does: the backends the new translation lacks answer 503 from now on.
    let backends: Vec<&ingress_core::BackendRef> = cached.endpoints.iter().map(|e| &*e.0).collect();
    for gone in live.loaded.iter().map(|e| &*e.0).filter(|b| !backends.contains(b)) {
        live.store.remove(gone);
    }
    let loaded = std::mem::replace(&mut live.loaded, cached.endpoints.clone());
    // A rebuilder that built nothing before reads every Ingress of the builder.
    let mut first = ingress_core::Rebuilder::new();
    drop(first.build(&cached.builder, &mut EndpointStore::new()));
    let (cached_table, cached_problems) = cached.compile_with(&mut live.store, &mut live.rebuilder, &loaded);
    live.read_changes_only += usize::from(live.rebuilder.last_read() < first.last_read());
    live.store.prune();
    let (fresh_table, fresh_problems) = fresh.compile(&mut EndpointStore::new());
    assert_eq!(cached_problems, fresh_problems, "{context}: compiled problems");
    assert_eq!(behaviour(&cached_table), behaviour(&fresh_table), "{context}: table");
}

#[test]
fn a_cached_translation_is_a_fresh_one_after_every_change() {
    cached_is_fresh(false);
}

/// The same, with the cache told which keys each change touched, as the engine tells it.
#[test]
fn a_cached_translation_told_what_changed_is_a_fresh_one_after_every_change() {
    cached_is_fresh(true);
}

/// 2,000 random changes, each followed by a cached translation compared with a fresh one;
/// `journal`: through [`translate_changed`] and a journal of the changes, as the engine
/// translates, else through [`translate_with`], which compares every object.
fn cached_is_fresh(journal: bool) {
    let mut world = World {
        rng: Rng(0x5EED_CAFE_F00D_0001),
        crt: fixture("web.crt"),
        key: fixture("web.key"),
        other_key: fixture("other.key"),
        sent: BTreeMap::new(),
    };
    let configs = configs();
    let mut objects = Objects::new();
    // A start with something of everything.
    for ns in NAMESPACES {
        for service in SERVICES {
            let service = Change::Apply(world.service(ns, service));
            world.sent(&service);
            objects.apply(service);
        }
        for i in 0..4 {
            objects.insert(world.slice(ns, &format!("slice-{i}")));
        }
        for i in 0..3 {
            objects.insert(world.tls_secret(ns, &format!("tls-{i}")));
        }
        objects.insert(world.auth_secret(ns));
        objects.insert(world.headers(ns));
        objects.insert(world.namespace(ns));
    }
    for i in 0..INGRESSES {
        let ns = world.ns();
        let ingress = Change::Apply(world.ingress(ns, &format!("i{i}")));
        world.sent(&ingress);
        objects.apply(ingress);
    }
    objects.insert(world.class("ferry"));
    objects.insert(world.class("other"));
    objects.insert(world.controller_config());
    objects.insert(world.tcp_services());

    let mut cache = TranslationCache::default();
    let mut changed = Changed::default();
    let mut live = Live::default();
    let mut config = 0;
    let (mut reused, mut translated) = (0, 0);
    for step in 0..2_000 {
        let what = if step % 250 == 249 {
            // Now and then the flags change under the same cache.
            config = 1 - config;
            "flags".to_owned()
        } else if step % 100 == 50 {
            // Now and then a relist (a watch restarted), one object short.
            let kind = if step % 200 == 50 { Kind::Service } else { Kind::Ingress };
            let listed: Vec<Object> = world.sent_of(kind).skip(1).cloned().collect();
            world.relisted(kind, &listed);
            let change = Change::relist(kind, listed);
            changed.note(&change);
            objects.apply(change);
            format!("relist {kind}")
        } else {
            let change = world.change(&objects);
            let what = format!("{change:?}").chars().take(120).collect::<String>();
            world.sent(&change);
            changed.note(&change);
            objects.apply(change);
            what
        };
        let cached = if journal {
            let cached = translate_changed(&objects, &configs[config], &mut cache, &changed);
            changed.clear();
            cached
        } else {
            translate_with(&objects, &configs[config], &mut cache)
        };
        reused += cache.stats().ingresses_reused;
        translated += cache.stats().ingresses_translated;
        assert_same(cached, translate(&objects, &configs[config]), &mut live, step, &what);
    }
    // The sequence changes one object at a time: most Ingresses are reused, and most builds
    // read only what changed in the Ingress list.
    assert!(reused > 3 * translated, "reused {reused}, translated {translated}");
    assert!(
        live.read_changes_only > 1_000,
        "{} of 2,000 builds read only the changes",
        live.read_changes_only
    );
}

/// Service `name` of [`cluster`].
fn cluster_service(ns: &str, name: &str) -> Object {
    object(
        "Service",
        "v1",
        json!({"metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"name": "http", "port": 80}]}}),
    )
}

/// The EndpointSlice of Service `service` of Ingress `i` of [`cluster`].
fn cluster_slice(ns: &str, service: &str, i: usize) -> Object {
    object(
        "EndpointSlice",
        "discovery.k8s.io/v1",
        json!({"metadata": {"name": format!("{service}-1"), "namespace": ns,
                            "labels": {"kubernetes.io/service-name": service}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
               "endpoints": [{"addresses": [format!("10.1.{}.{}", i / 200, i % 200 + 1)]}]}),
    )
}

/// Ingresses, Services, EndpointSlices and TLS Secrets as the `changes` benchmark makes them.
/// Ingress `i` of [`cluster`], with `annotations` if any.
fn cluster_ingress(i: usize, annotations: Option<Value>) -> Object {
    let ns = format!("team-{}", i % 3);
    let paths: Vec<Value> = ["web", "api"]
        .iter()
        .map(|s| json!({"path": format!("/{s}"), "pathType": "Prefix", "backend": {"service": {"name": format!("{s}-{i}"), "port": {"number": 80}}}}))
        .collect();
    let mut spec = json!({"ingressClassName": "ferry", "rules": [{"host": format!("h{i}.example.com"), "http": {"paths": paths}}]});
    if i.is_multiple_of(5) {
        spec["tls"] = json!([{"hosts": [format!("h{i}.example.com")], "secretName": format!("tls-{i}")}]);
    }
    let mut metadata = json!({"name": format!("ing-{i}"), "namespace": ns});
    if let Some(annotations) = annotations {
        metadata["annotations"] = annotations;
    }
    object("Ingress", "networking.k8s.io/v1", json!({"metadata": metadata, "spec": spec}))
}

fn cluster(n: usize, crt: &str, key: &str) -> Objects {
    let mut objects = Objects::new();
    for i in 0..n {
        let ns = format!("team-{}", i % 3);
        if i.is_multiple_of(5) {
            objects.insert(object(
                "Secret",
                "v1",
                json!({"metadata": {"name": format!("tls-{i}"), "namespace": ns}, "type": "kubernetes.io/tls",
                       "stringData": {"tls.crt": crt, "tls.key": key}}),
            ));
        }
        objects.insert(cluster_ingress(i, None));
        for s in ["web", "api"] {
            let service = format!("{s}-{i}");
            objects.insert(cluster_service(&ns, &service));
            objects.insert(cluster_slice(&ns, &service, i));
        }
    }
    objects.insert(object(
        "IngressClass",
        "networking.k8s.io/v1",
        json!({"metadata": {"name": "ferry"}, "spec": {"controller": "ferry.dev/ingress-controller"}}),
    ));
    objects
}

#[test]
fn a_change_remakes_what_it_touches_only() {
    let (crt, key) = (fixture("web.crt"), fixture("web.key"));
    let config = Config::default();
    let mut objects = cluster(50, &crt, &key);
    let mut cache = TranslationCache::default();
    let mut live = Live::default();
    let mut step = |objects: &Objects, what: &str| {
        let cached = translate_with(objects, &config, &mut cache);
        assert_same(cached, translate(objects, &config), &mut live, 0, what);
        cache.stats()
    };
    let first = step(&objects, "start");
    assert_eq!((first.ingresses_translated, first.services_translated), (50, 100));

    let unchanged = step(&objects, "nothing");
    assert_eq!((unchanged.ingresses_translated, unchanged.ingresses_reused), (0, 50));
    assert_eq!((unchanged.services_translated, unchanged.services_reused), (0, 100));

    // One Ingress edited: only it.
    let edited = cluster_ingress(7, Some(json!({format!("{PREFIX}/proxy-read-timeout"): "5"})));
    assert_eq!(edited.key(), ("team-1".into(), "ing-7".into()));
    objects.apply(Change::Apply(edited));
    let stats = step(&objects, "one Ingress");
    assert_eq!((stats.ingresses_translated, stats.ingresses_reused), (1, 49));
    assert_eq!(stats.services_translated, 0);

    // A Service: it, and the Ingress that routes to it.
    objects.apply(Change::Apply(cluster_service("team-2", "web-5")));
    let stats = step(&objects, "one Service");
    assert_eq!((stats.ingresses_translated, stats.services_translated), (1, 1));

    // An EndpointSlice: its Service's endpoints, no Ingress.
    objects.apply(Change::Apply(cluster_slice("team-0", "api-3", 3)));
    let stats = step(&objects, "one EndpointSlice");
    assert_eq!((stats.ingresses_translated, stats.services_translated), (0, 1));

    // A TLS Secret: the Ingress that names it.
    objects.apply(Change::Delete(Kind::Secret, ("team-1".into(), "tls-10".into())));
    let stats = step(&objects, "one TLS Secret");
    assert_eq!((stats.ingresses_translated, stats.services_translated), (1, 0));

    // A Service nothing names yet, then an Ingress deleted.
    objects.apply(Change::Delete(Kind::Ingress, ("team-0".into(), "ing-0".into())));
    let stats = step(&objects, "one Ingress deleted");
    assert_eq!((stats.ingresses_translated, stats.ingresses_reused), (0, 49));

    // Their IngressClass: every Ingress that names it.
    let class = objects.ingress_classes[&("".into(), "ferry".into())].as_ref().clone();
    objects.apply(Change::Apply(Object::IngressClass(class)));
    assert_eq!(step(&objects, "the IngressClass").ingresses_translated, 49);
}
