//! The real API server (`scripts/apiserver.sh ensure`) and small helpers to write objects to it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};

/// An API server's connection details: the shared instance (started if needed), or a private
/// one that a test may stop and start.
pub struct ApiServer {
    pub env: HashMap<String, String>,
    state: PathBuf,
    /// etcd, etcd peer and API server ports of a private instance (stopped on drop).
    own: Option<[u16; 3]>,
}

fn run_script(state: &Path, ports: Option<[u16; 3]>, command: &str) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/apiserver.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(command).env("FERRY_APISERVER_STATE", state);
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
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
}

impl ApiServer {
    pub fn ensure() -> Result<Self> {
        let state = std::env::var("FERRY_APISERVER_STATE").unwrap_or_else(|_| "/tmp/ferry-apiserver".into());
        let state = PathBuf::from(state);
        run_script(&state, None, "ensure")?;
        Ok(Self { env: read_env(&state)?, state, own: None })
    }

    /// A private instance on its own ports, for a test that stops it. Stopped on drop.
    pub fn own(name: &str, ports: [u16; 3]) -> Result<Self> {
        let state = std::env::temp_dir().join(format!("ferry-apiserver-{name}"));
        run_script(&state, Some(ports), "start")?;
        Ok(Self { env: read_env(&state)?, state, own: Some(ports) })
    }

    /// Stops the API server of a private instance (etcd keeps running).
    pub fn stop_apiserver(&self) -> Result<()> {
        run_script(&self.state, self.own, "stop-apiserver")
    }

    /// Starts it again.
    pub fn start_apiserver(&self) -> Result<()> {
        run_script(&self.state, self.own, "start-apiserver")
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &str {
        &self.env["FERRY_KUBECONFIG"]
    }

    /// An admin client.
    pub async fn client(&self) -> Result<Client> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Runs kubectl with the admin kubeconfig; fails with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .output()
            .context("running kubectl (scripts/setup.sh installs one)")?;
        if !out.status.success() {
            bail!("kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.own.is_some() {
            let _ = run_script(&self.state, self.own, "stop");
        }
    }
}

/// The controller binary against `api`, watching namespace `ns` for IngressClass `class`
/// (its own election Lease), with `extra` flags.
pub fn controller(api: &ApiServer, ns: &str, class: &str, extra: &[&str]) -> Result<super::Controller> {
    let election = format!("ferry-{ns}");
    let mut args = vec![
        "--kubeconfig",
        api.kubeconfig(),
        "--ingress-class",
        class,
        "--watch-namespace",
        ns,
        "--pod-namespace",
        ns,
        "--pod-name",
        "cli-test",
        "--election-id",
        &election,
    ];
    args.extend_from_slice(extra);
    super::Controller::start(&args, &std::env::temp_dir())
}

/// A fresh namespace named after `prefix`.
pub async fn namespace(client: &Client, prefix: &str) -> Result<String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let name = format!("{prefix}-{}-{nanos:x}", std::process::id());
    create(client, "", &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")).await?;
    Ok(name)
}

fn resource(object: &DynamicObject) -> Result<(ApiResource, bool)> {
    let types = object.types.as_ref().context("document without apiVersion/kind")?;
    let (group, version) = types.api_version.split_once('/').unwrap_or(("", &types.api_version));
    let (plural, namespaced) = match types.kind.as_str() {
        "Namespace" => ("namespaces", false),
        "Service" => ("services", true),
        "Secret" => ("secrets", true),
        "ConfigMap" => ("configmaps", true),
        "Ingress" => ("ingresses", true),
        "IngressClass" => ("ingressclasses", false),
        "EndpointSlice" => ("endpointslices", true),
        "Deployment" => ("deployments", true),
        "ServiceAccount" => ("serviceaccounts", true),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        other => bail!("the tests do not know kind {other}"),
    };
    let gvk = GroupVersionKind::gvk(group, version, &types.kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

fn api_for(client: &Client, namespace: &str, object: &mut DynamicObject) -> Result<Api<DynamicObject>> {
    let (ar, namespaced) = resource(object)?;
    Ok(if namespaced {
        let ns = object.metadata.namespace.get_or_insert_with(|| namespace.to_owned()).clone();
        Api::namespaced_with(client.clone(), &ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    })
}

fn documents(yaml: &str) -> Result<Vec<DynamicObject>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(doc)?;
        if !value.is_null() {
            out.push(serde_json::from_value(value)?);
        }
    }
    Ok(out)
}

/// Creates every document of `yaml` (namespaced ones default to `namespace`); returns when the
/// API server has acknowledged the last write.
pub async fn create(client: &Client, namespace: &str, yaml: &str) -> Result<()> {
    for mut object in documents(yaml)? {
        let api = api_for(client, namespace, &mut object)?;
        api.create(&PostParams::default(), &object).await.with_context(|| format!("creating {yaml}"))?;
    }
    Ok(())
}

/// Replaces every document of `yaml` (read-modify-write of the resourceVersion).
pub async fn replace(client: &Client, namespace: &str, yaml: &str) -> Result<()> {
    for mut object in documents(yaml)? {
        let api = api_for(client, namespace, &mut object)?;
        let name = object.metadata.name.clone().context("no name")?;
        let current = api.get(&name).await?;
        object.metadata.resource_version = current.metadata.resource_version;
        api.replace(&name, &PostParams::default(), &object).await?;
    }
    Ok(())
}

/// Deletes every document of `yaml`.
pub async fn delete(client: &Client, namespace: &str, yaml: &str) -> Result<()> {
    for mut object in documents(yaml)? {
        let api = api_for(client, namespace, &mut object)?;
        let name = object.metadata.name.clone().context("no name")?;
        api.delete(&name, &DeleteParams::default()).await?;
    }
    Ok(())
}

/// A `discovery.k8s.io/v1beta1` EndpointSlice of Service `service` (port `http`) with one
/// ready endpoint: what the endpoint controller would write for a pod at `backend`.
pub fn slice(name: &str, service: &str, backend: std::net::SocketAddr) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nports: [{{name: http, port: {}, protocol: TCP}}]\nendpoints: [{{addresses: [\"{}\"], conditions: {{ready: true}}}}]\n",
        backend.port(),
        backend.ip()
    )
}
