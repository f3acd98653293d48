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

use bytes::Bytes;
use ingress_core::{Backend, MatchedBy, Route, RouteTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::edits::HOP_BY_HOP;
use crate::config::{RuntimeSettings, Timeouts};
use crate::upstream::Selector;

/// The largest error page taken from an error backend (head and body).
const MAX_PAGE: usize = 1 << 20;

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

/// An error page: the error backend's answer, or the proxy's own when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) status: u16,
    /// End-to-end header lines (no framing, hop-by-hop, `Date` or `Server`).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Page {
    /// The proxy's own answer with `status` (its short text body).
    pub(crate) fn builtin(status: u16) -> Self {
        let body = super::answer::body_for(status);
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: Bytes::from_static(body.as_bytes()),
        }
    }
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
            (origin.namespace.as_str(), origin.name.as_str())
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
    let mut stream = tokio::time::timeout(timeouts.connect, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out")?
        .map_err(|_| "connect failed")?;
    tokio::time::timeout(timeouts.write, stream.write_all(head))
        .await
        .map_err(|_| "write timed out")?
        .map_err(|_| "write failed")?;
    let mut raw = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(page) = parse(&raw, head_request, false)? {
            return Ok(page);
        }
        let n = tokio::time::timeout(timeouts.read, stream.read(&mut chunk))
            .await
            .map_err(|_| "read timed out")?
            .map_err(|_| "read failed")?;
        if n == 0 {
            return parse(&raw, head_request, true)?.ok_or("closed before a whole response");
        }
        if raw.len() + n > MAX_PAGE {
            return Err("error page too large");
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// An error backend's response in `raw`, if whole (`eof`: nothing more will come, so a body
/// without framing ends here); `Err` for one that cannot become a response.
pub(crate) fn parse(raw: &[u8], head_request: bool, eof: bool) -> Result<Option<Page>, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if eof => return Err("closed inside the response head"),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed response head"),
    };
    let status = resp.code.ok_or("no status")?;
    if !(200..600).contains(&status) {
        return Err("not a final status");
    }
    let is = |h: &httparse::Header<'_>, name: &str| h.name.eq_ignore_ascii_case(name);
    let chunked = resp.headers.iter().any(|h| is(h, "transfer-encoding"));
    let lengths: Vec<&[u8]> =
        resp.headers.iter().filter(|h| is(h, "content-length")).map(|h| h.value).collect();
    let headers = resp
        .headers
        .iter()
        .filter(|h| {
            !["content-length", "transfer-encoding", "date", "server"].iter().any(|n| is(h, n))
                && !HOP_BY_HOP.iter().any(|n| is(h, n))
        })
        .filter_map(|h| Some((h.name.to_ascii_lowercase(), std::str::from_utf8(h.value).ok()?.to_owned())))
        .collect();
    let rest = &raw[len..];
    let no_body = head_request || status == 204 || status == 304;
    let body = if no_body {
        Bytes::new()
    } else if chunked {
        if !lengths.is_empty() {
            return Err("both Transfer-Encoding and Content-Length");
        }
        let mut chunks = crate::h1::chunks::Chunks::default();
        let mut body = Vec::new();
        chunks.feed(rest, |data| body.extend_from_slice(data))?;
        if !chunks.is_done() {
            return if eof { Err("closed inside a chunked body") } else { Ok(None) };
        }
        Bytes::from(body)
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err("conflicting Content-Length");
        }
        let n: usize = std::str::from_utf8(first)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .ok_or("bad Content-Length")?;
        if rest.len() < n {
            return if eof { Err("closed inside the body") } else { Ok(None) };
        }
        Bytes::copy_from_slice(&rest[..n])
    } else if eof {
        Bytes::copy_from_slice(rest)
    } else {
        return Ok(None);
    };
    Ok(Some(Page { status, headers, body }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_framing() {
        let raw = b"HTTP/1.1 503 X\r\nContent-Type: text/html\r\nServer: e\r\nContent-Length: 5\r\n\r\nhello";
        let page = parse(raw, false, false).unwrap().unwrap();
        assert_eq!((page.status, &page.body[..]), (503, &b"hello"[..]));
        assert_eq!(page.headers, [("content-type".to_owned(), "text/html".to_owned())]);
        assert_eq!(parse(&raw[..raw.len() - 1], false, false).unwrap(), None, "needs the whole body");
        assert!(parse(&raw[..raw.len() - 1], false, true).is_err(), "closed too early");

        let chunked = b"HTTP/1.1 404 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(&parse(chunked, false, false).unwrap().unwrap().body[..], b"abc");
        assert_eq!(parse(&chunked[..chunked.len() - 2], false, false).unwrap(), None);
        let close = b"HTTP/1.0 500 X\r\n\r\nuntil close";
        assert_eq!(parse(close, false, false).unwrap(), None);
        assert_eq!(&parse(close, false, true).unwrap().unwrap().body[..], b"until close");
        let head = b"HTTP/1.1 404 X\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(parse(head, true, false).unwrap().unwrap().body.len(), 0, "HEAD: no body");
    }

    #[test]
    fn hostile_pages_are_refused() {
        for bad in [
            &b"HTTP/1.1 200 X\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"[..],
            b"HTTP/1.1 200 X\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
            b"HTTP/1.1 200 X\r\nBad Header\r\n\r\n",
        ] {
            assert!(parse(bad, false, true).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
