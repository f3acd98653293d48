//! The admin listener: `/metrics` (Prometheus), `/healthz` (alive), `/readyz` (a first
//! snapshot is installed, so routing reflects the cluster and not an empty table).

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
        match session.req_header().uri.path() {
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
