//! Custom error pages: ingress-nginx's `custom-http-errors`.
//!
//! When a response's status is one a route lists (the Ingress's `custom-http-errors`, else the
//! ConfigMap's), whether the upstream sent it or the proxy chose it (`502`, `503`, `504`…),
//! the client gets the answer of an error backend instead: the Ingress's `default-backend`
//! when it has a ready endpoint and the Ingress lists its own codes, else the controller's
//! default backend (`--default-backend-service`). ingress-nginx asks it as its
//! `@custom_<upstream>_<code>` locations do: path `/` (query kept), `Host` as the client sent
//! it, and the `X-Code`, `X-Format`, `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`,
//! `X-Service-Name`, `X-Service-Port`, `X-Request-ID` and `X-Forwarded-For` headers; the
//! status the client gets is the error backend's.
//!
//! Without a default backend, ingress-nginx's is its built-in one, which answers `404` to
//! everything: so does Ferry (an intercepted `503` becomes the built-in `404`). An error backend
//! that cannot be reached gives `502`, one without ready endpoints `503`. The request goes as
//! `GET` (`HEAD` for `HEAD`) without a body, where nginx would repeat the method.

use std::net::SocketAddr;

use ingress_core::{Backend, MatchedBy, Route, RouteTable};

use super::subrequest::{self, Page};
use crate::config::{RuntimeSettings, Timeouts};
use crate::upstream::Selector;

/// Which statuses a request's route replaces with an error page, and from where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorPages<'t> {
    codes: &'t [u16],
    /// The error backend; `None` is ingress-nginx's built-in default backend (`404`).
    backend: Option<&'t Backend>,
}

impl<'t> ErrorPages<'t> {
    /// The error pages of a request on `route` (none without a route: the proxy's own `404`
    /// is the default backend's answer already).
    pub(crate) fn of(
        route: Option<&Route<'t>>,
        table: Option<&'t RouteTable>,
        settings: &'t RuntimeSettings,
    ) -> Option<Self> {
        let route = route?;
        let controller = table.and_then(RouteTable::default_backend);
        let (codes, backend) = match route.policy.custom_errors.as_deref() {
            Some(codes) => {
                let own = route.fallback.filter(|f| !f.endpoints().is_empty());
                (codes, own.or(controller))
            }
            None => (settings.custom_errors.as_slice(), controller),
        };
        (!codes.is_empty()).then_some(Self { codes, backend })
    }

    /// Whether a response with `status` is replaced.
    pub(crate) fn wants(&self, status: u16) -> bool {
        self.codes.contains(&status)
    }
}

/// What the error backend is told about the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRequest<'a> {
    /// The status being replaced (`X-Code`).
    pub(crate) code: u16,
    /// `HEAD` asks for no body.
    pub(crate) head: bool,
    /// The client's `Host` (or `:authority`).
    pub(crate) host: &'a str,
    /// The client's request target (`X-Original-URI`).
    pub(crate) target: &'a str,
    /// The client's `Accept` (`X-Format`).
    pub(crate) accept: Option<&'a str>,
    /// The request id (`X-Request-ID`).
    pub(crate) request_id: &'a str,
    /// The client's address (`X-Forwarded-For`).
    pub(crate) client: &'a str,
}

/// Fetches the error page for `request` on `route`, within `timeouts`.
pub(crate) async fn fetch(
    pages: &ErrorPages<'_>,
    route: &Route<'_>,
    request: &PageRequest<'_>,
    selector: &dyn Selector,
    timeouts: &Timeouts,
) -> Page {
    let Some(backend) = pages.backend else { return Page::builtin(404) };
    let endpoints = backend.endpoints();
    let Some(endpoint) = selector.select(backend, &endpoints, &[]) else { return Page::builtin(503) };
    let head = request_head(route, request);
    match ask(endpoint.addr, &head, request.head, timeouts).await {
        Ok(page) => page,
        Err(why) => {
            tracing::debug!(error = why, addr = %endpoint.addr, "error backend failed");
            Page::builtin(502)
        }
    }
}

/// The request head sent to the error backend.
fn request_head(route: &Route<'_>, r: &PageRequest<'_>) -> Vec<u8> {
    let (namespace, ingress) = match route.matched_by {
        MatchedBy::Path { origin, .. } | MatchedBy::IngressDefault { origin } => {
            (&*origin.namespace, &*origin.name)
        }
        MatchedBy::ControllerDefault => ("", ""),
    };
    let service = route.backend.key();
    let query = r.target.find('?').map_or("", |at| &r.target[at..]);
    let mut out = Vec::with_capacity(512);
    let method = if r.head { "HEAD" } else { "GET" };
    let mut line = |name: &str, value: &str| {
        // Values come from the request and the table; none may break the head.
        if !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    };
    line("Host", r.host);
    line("X-Code", itoa::Buffer::new().format(r.code));
    line("X-Format", r.accept.unwrap_or(""));
    line("X-Original-URI", r.target);
    line("X-Namespace", namespace);
    line("X-Ingress-Name", ingress);
    line("X-Service-Name", &service.service);
    line("X-Service-Port", &service.port.to_string());
    line("X-Request-ID", r.request_id);
    line("X-Forwarded-For", r.client);
    if let Some(accept) = r.accept {
        line("Accept", accept);
    }
    line("Connection", "close");
    let mut head = format!("{method} /{query} HTTP/1.1\r\n").into_bytes();
    head.extend_from_slice(&out);
    head.extend_from_slice(b"\r\n");
    head
}

/// One exchange with the error backend at `addr`: the response, whole, within the limits.
async fn ask(
    addr: SocketAddr,
    head: &[u8],
    head_request: bool,
    timeouts: &Timeouts,
) -> Result<Page, &'static str> {
    let stream = tokio::time::timeout(timeouts.connect, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out")?
        .map_err(|_| "connect failed")?;
    subrequest::exchange(stream, head, head_request, timeouts).await
}
