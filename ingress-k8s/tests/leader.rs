//! Status is written by the leader only; the Lease moves when the leader stops. Also: the
//! controller works with the least-privilege RBAC of `deploy/` and the controller's token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::{ApiServer, apply, routed, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;

const T: Duration = Duration::from_secs(20);
const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ferry}\nspec: {controller: ferry.dev/ingress-controller}\n";
const APP: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  ports: [{name: http, port: 80, protocol: TCP}]\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: app}\nspec:\n  ingressClassName: ferry\n  rules:\n  - host: app.example.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: theirs, annotations: {kubernetes.io/ingress.class: other}}\nspec:\n  rules:\n  - host: theirs.example.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}\n";

async fn address(api: &Api<Ingress>, name: &str) -> Option<String> {
    let ingress = api.get(name).await.ok()?;
    ingress.status?.load_balancer?.ingress?.first()?.ip.clone()
}

async fn wait_address(api: &Api<Ingress>, want: &str) {
    let deadline = Instant::now() + T;
    while address(api, "app").await.as_deref() != Some(want) {
        assert!(Instant::now() < deadline, "status never became {want}: {:?}", address(api, "app").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn status_by_the_leader_only_and_lease_handover() -> Result<()> {
    common::logs();
    let server = ApiServer::shared()?;
    let admin = server.admin().await?;
    let ns = common::namespace(&admin, "leader").await?;
    apply(&admin, &ns, CLASS).await?;
    apply(&admin, &ns, APP).await?;
    // Two replicas that would write different addresses: flapping would show two writers.
    let config = |id: &str, ip: &str| ingress_k8s::Config {
        publish_status_address: vec![ip.into()],
        ..common::config(&ns, id)
    };
    let a = ingress_k8s::Controller::start(admin.clone(), config("a", "192.0.2.1")).await?;
    let b = ingress_k8s::Controller::start(admin.clone(), config("b", "192.0.2.2")).await?;
    a.ready().await?;
    b.ready().await?;
    let deadline = Instant::now() + T;
    while *a.leadership().borrow() == *b.leadership().borrow() {
        assert!(Instant::now() < deadline, "no single leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (leader, follower, leader_ip, follower_ip, follower_id) = if *a.leadership().borrow() {
        (a, b, "192.0.2.1", "192.0.2.2", "b")
    } else {
        (b, a, "192.0.2.2", "192.0.2.1", "a")
    };
    let ingresses: Api<Ingress> = Api::namespaced(admin.clone(), &ns);
    wait_address(&ingresses, leader_ip).await;
    // It stays the leader's address: the follower never writes.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(address(&ingresses, "app").await.as_deref(), Some(leader_ip));
        assert!(!*follower.leadership().borrow());
    }
    // Another class's Ingress is never touched.
    assert!(address(&ingresses, "theirs").await.is_none());

    // The leader stops (releasing the Lease): the follower takes over and writes its address.
    leader.shutdown().await;
    wait_address(&ingresses, follower_ip).await;
    assert!(*follower.leadership().borrow());
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &ns);
    let lease = leases.get("ingress-ferry-leader").await?;
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some(follower_id));
    assert!(address(&ingresses, "theirs").await.is_none());
    follower.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn least_privilege_rbac_with_the_controller_token() -> Result<()> {
    common::logs();
    let server = ApiServer::shared()?;
    let admin = server.admin().await?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base");
    apply(&admin, "", &std::fs::read_to_string(root.join("namespace.yaml"))?).await?;
    apply(&admin, "", &std::fs::read_to_string(root.join("rbac.yaml"))?).await?;
    let ns = common::namespace(&admin, "rbac").await?;
    // Cluster-wide like a real deployment, so a class of its own keeps it off the other tests'
    // Ingresses.
    let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ferry-rbac}\nspec: {controller: ferry.dev/rbac-test}\n";
    apply(&admin, &ns, class).await?;
    apply(&admin, &ns, &APP.replace("ingressClassName: ferry", "ingressClassName: ferry-rbac")).await?;
    let (crt, key) = (
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/web.crt"),
        )?,
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/web.key"),
        )?,
    );
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    apply(&admin, &ns, &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}", indent(&crt), indent(&key))).await?;
    apply(&admin, &ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: password}\ntype: Opaque\nstringData: {password: hunter2}\n").await?;
    apply(&admin, &ns, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: secure}\nspec:\n  ingressClassName: ferry-rbac\n  tls: [{hosts: [app.example.com], secretName: tls}]\n  rules:\n  - host: secure.example.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}\n").await?;
    let election_id = format!("ingress-ferry-{ns}");
    apply(
        &admin,
        "ingress-ferry",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ingress-ferry}\ndata: {proxy-body-size: 8m}\n",
    )
    .await?;

    let controller_client = server.client("FERRY_CONTROLLER_TOKEN").await?;
    let config = ingress_k8s::Config {
        // Cluster-wide, as deployed; only the Lease lives in ingress-ferry.
        watch_namespace: None,
        ingress_class: "ferry-rbac".into(),
        controller_name: "ferry.dev/rbac-test".into(),
        election_namespace: "ingress-ferry".into(),
        election_id,
        configmap: Some("ingress-ferry/ingress-ferry".parse()?),
        publish_status_address: vec!["192.0.2.50".into()],
        ..common::config(&ns, "rbac")
    };
    let controller = ingress_k8s::Controller::start(controller_client.clone(), config).await?;
    let snapshots = controller.snapshots();
    let s = wait_for(&snapshots, T, "routes with the controller token", |s| {
        routed(s, "app.example.com", "/").is_some()
            && s.table.tls().certificate_for(Some("app.example.com")).is_some()
    })
    .await?;
    assert_eq!(s.config.get("proxy-body-size").map(String::as_str), Some("8m"), "the --configmap is read");
    // Status written (ingresses/status) and Sync events recorded (events) with these grants.
    let ingresses: Api<Ingress> = Api::namespaced(admin.clone(), &ns);
    wait_address(&ingresses, "192.0.2.50").await;

    // And no more: no Secret by name (TLS or not), no ConfigMap writes (ConfigMaps are read,
    // each watched by name: the ones custom-headers and add-headers name may be anywhere, as
    // ingress-nginx's ClusterRole reads them too), no Ingress spec writes.
    let secrets: Api<Secret> = Api::namespaced(controller_client.clone(), &ns);
    let forbidden = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(e)) if e.code == 403);
    assert!(forbidden(secrets.get("password").await.map(drop)), "must not read a non-TLS Secret");
    assert!(forbidden(secrets.get("tls").await.map(drop)));
    let configmaps: Api<ConfigMap> = Api::namespaced(controller_client.clone(), &ns);
    let mut planted = ConfigMap::default();
    planted.metadata.name = Some("planted".into());
    assert!(
        forbidden(configmaps.create(&Default::default(), &planted).await.map(drop)),
        "no ConfigMap writes"
    );
    assert!(
        forbidden(configmaps.get("anything").await.map(drop)),
        "no get by name: watched by field selector"
    );
    let theirs: Api<Ingress> = Api::namespaced(controller_client.clone(), &ns);
    let mut app = ingresses.get("app").await?;
    app.metadata.managed_fields = None;
    assert!(forbidden(theirs.replace("app", &Default::default(), &app).await.map(drop)));
    controller.shutdown().await;
    Ok(())
}
