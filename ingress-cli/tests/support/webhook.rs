//! The validating webhook's side of the tests: a certificate for it, and one AdmissionReview
//! sent as the API server sends it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A self-signed certificate for `127.0.0.1` (an IP SAN, as Go's TLS client requires) and its
/// key, as PEM files in `dir`; their paths.
pub fn certificate(dir: &Path) -> Result<(String, String)> {
    let (cert, key) = (dir.join("webhook.crt"), dir.join("webhook.key"));
    let (cert, key) = (cert.to_str().context("path")?.to_owned(), key.to_str().context("path")?.to_owned());
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", &key, "-out", &cert])
        .output()?;
    if !out.status.success() {
        bail!("openssl: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((cert, key))
}

/// Sends an AdmissionReview (v1, uid `test-uid`, CREATE) of `ingress` to the webhook on
/// `port` over TLS, and returns the review it answers.
pub fn review(port: u16, ingress: &serde_json::Value) -> Result<serde_json::Value> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let body = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "test-uid", "operation": "CREATE",
            "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "namespace": ingress["metadata"]["namespace"], "name": ingress["metadata"]["name"],
            "object": ingress,
        }
    })
    .to_string();
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    b.set_verify(SslVerifyMode::NONE);
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = b.build().connect("127.0.0.1", tcp).map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    write!(
        tls,
        "POST /networking/v1/ingresses?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let (head, answer) = text.split_once("\r\n\r\n").with_context(|| format!("no answer: {text:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("webhook answered {head}");
    }
    Ok(serde_json::from_str(answer)?)
}
