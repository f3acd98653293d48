//! ingress-nginx-shaped manifests for the standalone controller's tests: Ingresses with
//! annotations, ConfigMaps, Secrets, and a raw HTTP/1.1 exchange to read what came back.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::Controller;

/// ingress-nginx's annotation prefix.
pub const PREFIX: &str = "nginx.ingress.kubernetes.io";

/// An Ingress of class `nginx` for `host` → `service:80`, with annotations (names without the
/// prefix).
pub fn ingress(name: &str, host: &str, service: &str, annotations: &[(&str, &str)]) -> String {
    let mut meta = format!("  name: {name}\n  namespace: default\n");
    if !annotations.is_empty() {
        meta.push_str("  annotations:\n");
        for (k, v) in annotations {
            meta.push_str(&format!("    {PREFIX}/{k}: {v:?}\n"));
        }
    }
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n{meta}spec:\n  ingressClassName: nginx\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}\n"
    )
}

/// The IngressClass `nginx`, ours.
pub const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: ferry.dev/ingress-controller}\n";

/// Writes `docs` as the directory's Ingress manifest (replacing the last).
pub fn write_ingresses(dir: &Path, docs: &[String]) -> Result<()> {
    std::fs::write(dir.join("ingresses.yaml"), docs.concat())?;
    Ok(())
}

/// The controller in standalone mode on `dir`, for class `nginx`.
pub fn start(dir: &Path) -> Result<Controller> {
    let dir_s = dir.to_str().unwrap_or_default().to_owned();
    Controller::start(&["--manifests", &dir_s, "--ingress-class", "nginx"], dir.parent().unwrap_or(dir))
}

/// The controller in standalone mode on `dir`, for class `nginx`, with ConfigMap
/// `default/cfg` (a manifest of `dir`) as its `--configmap`.
pub fn start_with_configmap(dir: &Path) -> Result<Controller> {
    let dir_s = dir.to_str().unwrap_or_default().to_owned();
    Controller::start(
        &["--manifests", &dir_s, "--ingress-class", "nginx", "--configmap", "default/cfg"],
        dir.parent().unwrap_or(dir),
    )
}

/// A raw HTTP/1.1 exchange: the status, the head (lower-case) and the body.
pub fn exchange(port: u16, request: &str) -> Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok((status, head.to_ascii_lowercase(), body.to_owned()))
}

/// A ConfigMap manifest.
pub fn config_map(name: &str, data: &[(&str, &str)]) -> String {
    let mut doc = format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata:\n"
    );
    for (k, v) in data {
        doc.push_str(&format!("  {k:?}: {v:?}\n"));
    }
    doc
}

/// An Opaque Secret manifest with `data` (values base64-encoded here).
pub fn secret(name: &str, data: &[(&str, &str)]) -> String {
    let mut doc = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: Opaque\ndata:\n"
    );
    for (k, v) in data {
        doc.push_str(&format!("  {k}: {}\n", openssl::base64::encode_block(v.as_bytes())));
    }
    doc
}
