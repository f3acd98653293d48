//! Shared helpers for the tests against the real API server (`scripts/apiserver.sh`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ingress_k8s::{Config, Snapshot, Snapshots};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

/// One running etcd + kube-apiserver, as described by its `$STATE/env`.
pub struct ApiServer {
    pub state: PathBuf,
    pub env: HashMap<String, String>,
    ports: Option<[u16; 3]>,
    own: bool,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/apiserver.sh")
}

fn run_script(state: &Path, ports: Option<[u16; 3]>, command: &str) -> Result<()> {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg(command).env("FERRY_APISERVER_STATE", state);
    if let Some([etcd, peer, api]) = ports {
        cmd.env("FERRY_ETCD_PORT", etcd.to_string())
            .env("FERRY_ETCD_PEER_PORT", peer.to_string())
            .env("FERRY_APISERVER_PORT", api.to_string());
    }
    let status = cmd.status().context("running scripts/apiserver.sh")?;
    if !status.success() {
        bail!("scripts/apiserver.sh {command} failed: {status}");
    }
    Ok(())
}

fn read_env(state: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(state.join("env")).context("reading the API server env file")?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

impl ApiServer {
    /// The shared instance (started if needed; `FERRY_APISERVER_STATE` or the default state dir).
    pub fn shared() -> Result<Self> {
        let state = std::env::var("FERRY_APISERVER_STATE").unwrap_or_else(|_| "/tmp/ferry-apiserver".into());
        let state = PathBuf::from(state);
        run_script(&state, None, "ensure")?;
        Ok(Self { env: read_env(&state)?, state, ports: None, own: false })
    }

    /// A private instance on its own ports, for tests that restart it. Stopped on drop.
    pub fn own(name: &str, ports: [u16; 3]) -> Result<Self> {
        let state = std::env::temp_dir().join(format!("ferry-apiserver-{name}"));
        run_script(&state, Some(ports), "start")?;
        Ok(Self { env: read_env(&state)?, state, ports: Some(ports), own: true })
    }

    pub fn restart_apiserver(&self) -> Result<()> {
        run_script(&self.state, self.ports, "restart-apiserver")
    }

    pub fn stop_apiserver(&self) -> Result<()> {
        run_script(&self.state, self.ports, "stop-apiserver")
    }

    pub fn start_apiserver(&self) -> Result<()> {
        run_script(&self.state, self.ports, "start-apiserver")
    }

    pub async fn client(&self, token_var: &str) -> Result<Client> {
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: u\n  user: {{token: \"{}\"}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: default}}\ncurrent-context: x\n",
            self.env["FERRY_APISERVER_URL"], self.env["FERRY_APISERVER_CA"], self.env[token_var]
        );
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::from_yaml(&kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        Ok(Client::try_from(config)?)
    }

    pub async fn admin(&self) -> Result<Client> {
        self.client("FERRY_ADMIN_TOKEN").await
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.own {
            let _ = run_script(&self.state, self.ports, "stop");
        }
    }
}

/// (plural, namespaced) for the kinds the tests apply.
fn resource(api_version: &str, kind: &str) -> Result<ApiResource> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (plural, _) = match kind {
        "Namespace" => ("namespaces", false),
        "Service" => ("services", true),
        "Secret" => ("secrets", true),
        "ConfigMap" => ("configmaps", true),
        "ServiceAccount" => ("serviceaccounts", true),
        "Ingress" => ("ingresses", true),
        "IngressClass" => ("ingressclasses", false),
        "EndpointSlice" => ("endpointslices", true),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        other => bail!("the tests do not know kind {other}"),
    };
    Ok(ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural))
}

fn namespaced(kind: &str) -> bool {
    !matches!(kind, "Namespace" | "IngressClass" | "ClusterRole" | "ClusterRoleBinding")
}

/// Server-side applies every document of `yaml`; namespaced objects without a namespace go to
/// `namespace`.
pub async fn apply(client: &Client, namespace: &str, yaml: &str) -> Result<()> {
    use serde::Deserialize;
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let mut object: DynamicObject = serde_json::from_value(value.clone())?;
        let types = object.types.clone().context("document without apiVersion/kind")?;
        let resource = resource(&types.api_version, &types.kind)?;
        let name = object.metadata.name.clone().context("document without a name")?;
        let api: Api<DynamicObject> = if namespaced(&types.kind) {
            let ns = object.metadata.namespace.get_or_insert_with(|| namespace.to_owned()).clone();
            Api::namespaced_with(client.clone(), &ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        // Create, else merge-patch (server-side apply trips over Service ports without `protocol`
        // on 1.20).
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // A merge patch keeps server-set fields (a Service's clusterIP).
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&object))
                    .await
                    .with_context(|| format!("replacing {} {name}", types.kind))?;
            }
            Err(e) => return Err(e).with_context(|| format!("creating {} {name}", types.kind)),
        }
    }
    Ok(())
}

/// Deletes one object (kind as `apply` knows it).
pub async fn delete(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Result<()> {
    let resource = resource(api_version, kind)?;
    let api: Api<DynamicObject> = if namespaced(kind) {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    api.delete(name, &Default::default()).await?;
    Ok(())
}

/// A fresh namespace for one test (deleted namespaces cannot be reused quickly, so names are
/// unique per run).
pub async fn namespace(client: &Client, prefix: &str) -> Result<String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let name = format!("{prefix}-{}-{nanos:x}", std::process::id());
    apply(client, "", &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")).await?;
    Ok(name)
}

/// A config watching only `namespace`, electing in it, reacting fast.
pub fn config(namespace: &str, identity: &str) -> Config {
    Config {
        watch_namespace: Some(namespace.to_owned()),
        election_namespace: namespace.to_owned(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(3),
        lease_renew: Duration::from_millis(300),
        ..Config::default()
    }
}

/// Waits until a published snapshot satisfies `check` (endpoint slots are read live, so the
/// current snapshot is re-checked every millisecond, not only on publish).
pub async fn wait_for(
    snapshots: &Snapshots,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Snapshot) -> bool,
) -> Result<Arc<Snapshot>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(snapshot) = snapshots.borrow().clone()
            && check(&snapshot)
        {
            return Ok(snapshot);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The endpoint addresses routed for `host` + `path`, if any route matches.
pub fn routed(snapshot: &Snapshot, host: &str, path: &str) -> Option<Vec<String>> {
    let route = snapshot.table.lookup(host, path)?;
    Some(route.backend.endpoints().as_slice().iter().map(|e| e.addr.to_string()).collect())
}

/// A `discovery.k8s.io/v1beta1` EndpointSlice for `service`, port `port_name`→`port`.
pub fn slice(name: &str, service: &str, port_name: &str, port: u16, addresses: &[&str]) -> String {
    let endpoints: String = addresses
        .iter()
        .map(|a| format!("- addresses: [\"{a}\"]\n  conditions: {{ready: true}}\n"))
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {{name: {name}, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{{name: {port_name}, port: {port}, protocol: TCP}}]\nendpoints:\n{endpoints}"
    )
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
