//! The validating admission webhook (`--validating-webhook`, ingress-nginx's flags): an HTTPS
//! endpoint the API server calls with an `AdmissionReview` before it writes an Ingress. The
//! answer comes from the running controller's store ([`ingress_k8s::Validator`]): denied with
//! the reasons `check` prints when a rule or annotation would be rejected or the Ingress would
//! fail closed, allowed with warnings for `ignored` and `unknown` annotations. Nothing from
//! the request is ever executed or rendered into configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use ingress_k8s::{Admission, Validator};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
use serde_json::{Value, json};

/// The largest AdmissionReview read (the API server's own request limit is 3 MiB).
const MAX_REVIEW: usize = 4 << 20;
/// How long one connection may last.
const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// How often the certificate files are looked at for a renewal.
const RELOAD_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Where and with what the webhook listens.
#[derive(Debug, Clone)]
pub(crate) struct WebhookConfig {
    pub(crate) addr: SocketAddr,
    /// PEM certificate chain.
    pub(crate) certificate: PathBuf,
    /// PEM private key.
    pub(crate) key: PathBuf,
}

/// `:8443` (Go's form, every address), `0.0.0.0:8443` or `[::]:8443`.
pub(crate) fn parse_addr(value: &str) -> anyhow::Result<SocketAddr> {
    let full = if value.starts_with(':') { format!("0.0.0.0{value}") } else { value.to_owned() };
    full.parse().with_context(|| format!("--validating-webhook `{value}` is not an address such as `:8443`"))
}

/// Binds the webhook's port and serves it on the current runtime until the process ends.
/// Fails at once (one clear error) when the port or the certificate cannot be used.
pub(crate) async fn start(config: WebhookConfig, validator: Validator) -> anyhow::Result<()> {
    let acceptor = Arc::new(std::sync::RwLock::new(Arc::new(build_acceptor(&config)?)));
    // A renewed certificate (cert-manager, a new Secret mounted) is taken without a restart.
    let reloading = Arc::clone(&acceptor);
    let files = config.clone();
    tokio::spawn(async move {
        let mut seen = modified(&files);
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            let now = modified(&files);
            if now == seen {
                continue;
            }
            match build_acceptor(&files) {
                Ok(fresh) => {
                    *reloading.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
                    tracing::info!("validating webhook certificate reloaded");
                    seen = now;
                }
                // Half-written files: the old certificate serves until the next look.
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "webhook certificate not reloaded");
                }
            }
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("--validating-webhook: cannot listen on {}", config.addr))?;
    tracing::info!(addr = %config.addr, "validating admission webhook listening");
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, most likely: wait a little rather than spin.
                    tracing::warn!(%error, "webhook accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Beyond the cap, a connection waits for a slot (the API server retries).
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
            let current = Arc::clone(&acceptor.read().unwrap_or_else(std::sync::PoisonError::into_inner));
            let validator = validator.clone();
            tokio::spawn(async move {
                if let Err(error) = connection(tcp, &current, validator).await {
                    tracing::debug!(%peer, %error, "webhook connection ended");
                }
                drop(slot);
            });
        }
    });
    Ok(())
}

/// The TLS acceptor for the configured files.
fn build_acceptor(config: &WebhookConfig) -> anyhow::Result<SslAcceptor> {
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    acceptor
        .set_certificate_chain_file(&config.certificate)
        .with_context(|| format!("--validating-webhook-certificate {}", config.certificate.display()))?;
    acceptor
        .set_private_key_file(&config.key, SslFiletype::PEM)
        .with_context(|| format!("--validating-webhook-key {}", config.key.display()))?;
    acceptor.check_private_key().context("the webhook's key does not match its certificate")?;
    Ok(acceptor.build())
}

/// When the certificate and key files last changed.
fn modified(config: &WebhookConfig) -> [Option<std::time::SystemTime>; 2] {
    let at = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    [at(&config.certificate), at(&config.key)]
}

async fn connection(
    tcp: tokio::net::TcpStream,
    acceptor: &SslAcceptor,
    validator: Validator,
) -> anyhow::Result<()> {
    let ssl = openssl::ssl::Ssl::new(acceptor.context())?;
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp)?;
    // The API server's client sends its hello at once; a silent peer is dropped.
    tokio::time::timeout(std::time::Duration::from_secs(10), Pin::new(&mut tls).accept())
        .await
        .context("TLS handshake timed out")??;
    let service = hyper::service::service_fn(move |request| {
        let validator = validator.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(request, &validator).await) }
    });
    let serve = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
    tokio::pin!(serve);
    // A connection lasts about a minute: then it closes after the request it is serving (the
    // API server opens another when it needs one), and a client trickling a body gets 30 s
    // more at most.
    tokio::select! {
        served = serve.as_mut() => served?,
        () = tokio::time::sleep(CONNECTION_LIFETIME) => {
            serve.as_mut().graceful_shutdown();
            tokio::time::timeout(std::time::Duration::from_secs(30), serve).await.context("webhook connection timed out")??;
        }
    }
    Ok(())
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// One AdmissionReview → its answer. A review that cannot be read is a `400` (the API server
/// then applies the webhook's `failurePolicy`); so is a controller without its first
/// configuration yet (`503`).
async fn answer(request: Request<Incoming>, validator: &Validator) -> Response<Full<Bytes>> {
    if request.method() != http::Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "POST an AdmissionReview"}));
    }
    let body = match Limited::new(request.into_body(), MAX_REVIEW).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => return reply(StatusCode::BAD_REQUEST, &json!({"error": error.to_string()})),
    };
    let review: Value = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(error) => return reply(StatusCode::BAD_REQUEST, &json!({"error": error.to_string()})),
    };
    let request = &review["request"];
    let Some(uid) = request["uid"].as_str() else {
        return reply(StatusCode::BAD_REQUEST, &json!({"error": "no request.uid"}));
    };
    if !validator.is_ready() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "the controller has not read the cluster yet"}),
        );
    }
    let admission = match judge(request, validator).await {
        Ok(admission) => admission,
        Err(why) => Admission { allowed: false, reasons: vec![why], warnings: Vec::new() },
    };
    let name = format!(
        "{}/{}",
        request["namespace"].as_str().unwrap_or_default(),
        request["name"].as_str().unwrap_or_default()
    );
    let mut response = json!({"uid": uid, "allowed": admission.allowed});
    if !admission.allowed {
        tracing::info!(ingress = %name, reasons = ?admission.reasons, "admission denied");
        response["status"] = json!({
            "status": "Failure",
            "code": 400,
            "reason": "BadRequest",
            "message": format!("ingress {name} would not be served as written: {}", admission.reasons.join("; ")),
        });
    }
    if !admission.warnings.is_empty() {
        response["warnings"] = json!(admission.warnings);
    }
    let api_version = review["apiVersion"].as_str().unwrap_or("admission.k8s.io/v1");
    reply(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response}),
    )
}

/// The verdict on the review's Ingress; what is not an Ingress of `networking.k8s.io/v1` (or
/// a deletion) is allowed without a look, as ingress-nginx allows it.
async fn judge(request: &Value, validator: &Validator) -> Result<Admission, String> {
    let kind = &request["kind"];
    let is_ingress = kind["group"] == "networking.k8s.io" && kind["kind"] == "Ingress";
    if !is_ingress || request["object"].is_null() {
        return Ok(Admission { allowed: true, ..Admission::default() });
    }
    let mut ingress: k8s_openapi::api::networking::v1::Ingress =
        serde_json::from_value(request["object"].clone()).map_err(|e| format!("unreadable Ingress: {e}"))?;
    // The review names the namespace even when the object (a create) does not yet.
    if ingress.metadata.namespace.is_none() {
        ingress.metadata.namespace = request["namespace"].as_str().map(str::to_owned);
    }
    validator.validate(ingress).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_go_writes_them() {
        assert_eq!(parse_addr(":8443").ok(), "0.0.0.0:8443".parse().ok());
        assert_eq!(parse_addr("127.0.0.1:9443").ok(), "127.0.0.1:9443".parse().ok());
        assert_eq!(parse_addr("[::]:8443").ok(), "[::]:8443".parse().ok());
        assert!(parse_addr("8443").is_err());
    }
}
