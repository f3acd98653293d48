//! Request headers the proxy adds: the `X-Forwarded-*` family, `X-Real-IP`, `X-Request-ID`.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::HeaderValue;
use pingora::Result;
use pingora::http::RequestHeader;

/// `X-Request-ID`: kept from the client when present, so a trace spans hops.
pub(crate) const X_REQUEST_ID: &str = "x-request-id";

/// Request headers that describe one hop and are never forwarded (RFC 9110 section 7.6.1, and
/// what Pingora's default upstream request policy strips); both request paths drop them.
pub(crate) const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "keep-alive",
    "proxy-connection",
    "http2-settings",
];

/// Headers a client's `Connection` may not make hop-by-hop: they frame or route the request,
/// so dropping one would let the upstream read the message differently from the proxy
/// (`Connection: content-length` would turn a body into a second request).
pub(crate) fn may_be_nominated(name: &str) -> bool {
    !["content-length", "transfer-encoding", "host"].iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// What the forwarding headers describe.
#[derive(Debug)]
pub(crate) struct Forwarded<'a> {
    pub(crate) client: Option<IpAddr>,
    pub(crate) tls: bool,
    pub(crate) host: &'a str,
    pub(crate) port: Option<u16>,
    pub(crate) request_id: Option<&'a HeaderValue>,
}

/// The client's request id if it sent a usable one, else a new random 128-bit hex id (the
/// shape of ingress-nginx's `$req_id`).
pub(crate) fn request_id(req: &RequestHeader) -> HeaderValue {
    if let Some(id) = req.headers.get(X_REQUEST_ID).filter(|v| !v.is_empty() && v.len() <= 200) {
        return id.clone();
    }
    let mut id = String::with_capacity(32);
    let _ = write!(id, "{:032x}", rand::random::<u128>());
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("0"))
}

/// The declared `Content-Length`, if any and valid.
pub(crate) fn content_length(req: &RequestHeader) -> Option<u64> {
    req.headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Sets the forwarding headers on the request going upstream. `X-Forwarded-For` is appended
/// to, the others are replaced (a client must not choose what the backend believes about
/// scheme, host and port).
pub(crate) fn set_forwarded(req: &mut RequestHeader, f: &Forwarded<'_>) -> Result<()> {
    if let Some(ip) = f.client {
        let mut ip_text = String::with_capacity(40);
        let _ = write!(ip_text, "{ip}");
        let xff = match req.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) if !prior.trim().is_empty() => format!("{prior}, {ip_text}"),
            _ => ip_text.clone(),
        };
        req.insert_header("x-forwarded-for", xff)?;
        req.insert_header("x-real-ip", ip_text)?;
    }
    req.insert_header("x-forwarded-proto", if f.tls { "https" } else { "http" })?;
    if !f.host.is_empty() {
        req.insert_header("x-forwarded-host", f.host)?;
    }
    if let Some(port) = f.port {
        req.insert_header("x-forwarded-port", port.to_string())?;
    }
    if let Some(id) = f.request_id {
        req.insert_header(X_REQUEST_ID, id.clone())?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_append_and_replace() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-forwarded-for", "203.0.113.9").unwrap();
        req.insert_header("x-forwarded-proto", "https").unwrap();
        let id = HeaderValue::from_static("abc");
        set_forwarded(
            &mut req,
            &Forwarded {
                client: Some("10.1.2.3".parse().unwrap()),
                tls: false,
                host: "demo.example.com",
                port: Some(8080),
                request_id: Some(&id),
            },
        )
        .unwrap();
        let h = |n: &str| req.headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("x-forwarded-for"), "203.0.113.9, 10.1.2.3");
        assert_eq!(h("x-real-ip"), "10.1.2.3");
        assert_eq!(h("x-forwarded-proto"), "http");
        assert_eq!(h("x-forwarded-host"), "demo.example.com");
        assert_eq!(h("x-forwarded-port"), "8080");
        assert_eq!(h("x-request-id"), "abc");
    }

    #[test]
    fn request_id_kept_or_generated() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        let generated = request_id(&req);
        assert_eq!(generated.len(), 32);
        assert_ne!(generated, request_id(&req));
        req.insert_header(X_REQUEST_ID, "client-id").unwrap();
        assert_eq!(request_id(&req), "client-id");
    }
}
