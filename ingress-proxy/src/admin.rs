//! The admin listener: `/metrics` (Prometheus), `/healthz` (alive; also at
//! `--health-check-path`), `/readyz` (a first snapshot is installed, so routing reflects the
//! cluster and not an empty table). The same app serves ingress-nginx's two internal
//! listeners when asked for: the status port (`/nginx_status` in `stub_status`'s format, and
//! the health check path) and the default server port (`404` for everything).

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::ProxyHandle;
use crate::metrics::Metrics;

/// Serves the admin endpoints.
pub(crate) struct AdminApp {
    pub(crate) handle: ProxyHandle,
    pub(crate) metrics: Arc<Metrics>,
    /// Which listener this is.
    pub(crate) role: Role,
    /// Where the health check also answers (`--health-check-path`).
    pub(crate) health_path: String,
}

/// The listeners the app serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The admin port.
    Admin,
    /// ingress-nginx's status port (`--status-port`).
    Status,
    /// ingress-nginx's default server port (`--default-server-port`).
    DefaultServer,
}

fn text(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = response.body().len();
    response.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    response
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        match self.role {
            Role::Admin if path == self.health_path => {
                return text(StatusCode::OK, "text/plain", b"ok\n".to_vec());
            }
            Role::Admin => {}
            Role::Status if path == self.health_path => {
                return text(StatusCode::OK, "text/plain", Vec::new());
            }
            Role::Status if path == "/nginx_status" => {
                return text(StatusCode::OK, "text/plain", self.metrics.stub_status().into_bytes());
            }
            Role::Status | Role::DefaultServer => {
                return text(StatusCode::NOT_FOUND, "text/plain", b"default backend - 404".to_vec());
            }
        }
        match path {
            "/metrics" => {
                text(StatusCode::OK, "text/plain; version=0.0.4", self.metrics.render(&self.handle))
            }
            "/healthz" => text(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.handle.is_ready() => text(StatusCode::OK, "text/plain", b"ready\n".to_vec()),
            "/readyz" => {
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", b"no snapshot installed yet\n".to_vec())
            }
            _ => text(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
