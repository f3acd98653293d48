//! Header edits: one list per message, computed from the request and its route's policy, that
//! each driver writes in its own representation (the HTTP/1 engine as bytes, the HTTP/2 driver
//! on Pingora's `RequestHeader`/`ResponseHeader`).
//!
//! A request going upstream keeps the client's end-to-end header lines, minus:
//! - hop-by-hop headers ([`HOP_BY_HOP`]) and those the client's `Connection` nominates;
//! - names nginx calls invalid (anything but letters, digits and `-`, and `_` unless
//!   `enable-underscores-in-headers`): dropped as nginx drops them by default
//!   (`ignore_invalid_headers on`), so `X_Real_IP` cannot pose as `X-Real-IP` at an origin that
//!   maps `_` to `-`;
//! - the headers the proxy sets itself ([`PROXY_OWNED`]): a client must not choose what the
//!   backend believes about its address, scheme, host, port or request id;
//! - the names the route's policy sets or removes.
//!
//! Then come the proxy's forwarding headers, then the route's own edits.

use ingress_core::{HeaderAction, HeaderOp, ResponseRewrites};

use super::client::Client;

/// `X-Request-ID`: kept from the client when present, so a trace spans hops.
pub(crate) const X_REQUEST_ID: &str = "x-request-id";

/// The longest client `X-Request-ID` kept; a longer one is replaced by a generated id.
pub(crate) const MAX_REQUEST_ID: usize = 200;

/// Request headers that describe one hop and are never forwarded (RFC 9110 section 7.6.1),
/// plus `Expect` (the proxy answers `100 Continue` itself, as nginx does) and `Proxy` (which
/// CGI-style backends read as `HTTP_PROXY`: httpoxy, cleared by ingress-nginx too).
pub(crate) const HOP_BY_HOP: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "http2-settings",
    "expect",
    "proxy",
];

/// Request headers the proxy sets itself, whatever the client sent (ingress-nginx sets the
/// same ones).
pub(crate) const PROXY_OWNED: [&str; 10] = [
    "x-forwarded-for",
    "x-original-forwarded-for",
    "x-original-forwarded-host",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-scheme",
    "x-forwarded-host",
    "x-forwarded-port",
    X_REQUEST_ID,
];

/// Headers a client's `Connection` may not make hop-by-hop: they frame or route the request,
/// so dropping one would let the upstream read the message differently from the proxy
/// (`Connection: content-length` would turn a body into a second request).
pub(crate) fn may_be_nominated(name: &str) -> bool {
    !["content-length", "transfer-encoding", "host"].iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Whether nginx takes `name` as a header at all: letters, digits and `-` only, and `_` when
/// `underscores` (`enable-underscores-in-headers`).
pub(crate) fn is_valid_name(name: &str, underscores: bool) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscores && b == b'_'))
}

/// Which client header names are forwarded: nginx's `underscores_in_headers` and
/// `ignore_invalid_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Names {
    pub(crate) underscores: bool,
    pub(crate) ignore_invalid: bool,
}

impl Names {
    /// The names `limits` allow.
    pub(crate) fn of(limits: &crate::ClientLimits) -> Self {
        Self { underscores: limits.underscores_in_headers, ignore_invalid: limits.ignore_invalid_headers }
    }

    /// Whether a header named `name` (a token, as the parsers guarantee) is forwarded.
    pub(crate) fn forwards(self, name: &str) -> bool {
        !self.ignore_invalid || is_valid_name(name, self.underscores)
    }
}

/// The edits of a request going upstream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestEdits<'a> {
    /// The request target upstream when the route rewrites it (`rewrite-target`); `None`
    /// keeps the client's.
    pub(crate) target: Option<&'a str>,
    /// The `Host` upstream instead of the client's (`upstream-vhost`).
    pub(crate) host: Option<&'a str>,
    /// `X-Forwarded-Prefix`, replacing the client's (`x-forwarded-prefix`, when rewritten).
    pub(crate) forwarded_prefix: Option<&'a str>,
    /// Who the client is (the forwarding headers).
    pub(crate) client: &'a Client<'a>,
    /// The request's id (`X-Request-ID`).
    pub(crate) request_id: &'a [u8],
    /// Headers the client's `Connection` nominated as hop-by-hop.
    pub(crate) nominated: &'a [&'a str],
    /// Which client header names are forwarded at all.
    pub(crate) names: Names,
    /// The edits of every request (`proxy-set-headers`).
    pub(crate) global: &'a [HeaderOp],
    /// The route's edits.
    pub(crate) route: &'a [HeaderOp],
    /// The edits the auth service's answer asks for (`auth-response-headers`); they win.
    pub(crate) auth: &'a [HeaderOp],
}

impl RequestEdits<'_> {
    /// Whether a client header line named `name` goes upstream.
    pub(crate) fn keeps(&self, name: &str) -> bool {
        let is = |n: &&str| name.eq_ignore_ascii_case(n);
        // Lines the route's policy writes itself.
        let policy_owned = (self.host.is_some() && is(&"host"))
            || (self.forwarded_prefix.is_some() && is(&"x-forwarded-prefix"));
        self.names.forwards(name)
            && !HOP_BY_HOP.iter().any(is)
            && !PROXY_OWNED.iter().any(is)
            && !self.nominated.iter().any(is)
            && !replaced_by(self.route, name)
            && !replaced_by(self.global, name)
            && !replaced_by(self.auth, name)
            && !policy_owned
    }

    /// Calls `line(name, value_parts)` for each line the proxy adds, in order: the forwarding
    /// headers (minus those the global or the route's edits set or remove), then the global
    /// `set` and `append` edits (minus those the route's replace), then the route's. A value
    /// comes in parts so nothing is joined on the way.
    pub(crate) fn added(&self, mut emit: impl FnMut(&str, &[&[u8]])) {
        let auth = self.auth;
        let mut line = |name: &str, value: &[&[u8]]| {
            if !replaced_by(auth, name) {
                emit(name, value);
            }
        };
        let mut own = |name: &str, value: &[&[u8]]| {
            if !replaced_by(self.route, name) && !replaced_by(self.global, name) {
                line(name, value);
            }
        };
        let client = self.client;
        if !client.ip_text.is_empty() {
            own("x-real-ip", &[client.ip_text.as_bytes()]);
        }
        if !client.forwarded_for.is_empty() {
            own("x-forwarded-for", &[client.forwarded_for.as_bytes()]);
        }
        let scheme = client.scheme.as_bytes();
        own("x-forwarded-proto", &[scheme]);
        own("x-forwarded-scheme", &[scheme]);
        own("x-scheme", &[scheme]);
        if !client.host.is_empty() {
            own("x-forwarded-host", &[client.host.as_bytes()]);
        }
        if !client.port.is_empty() {
            own("x-forwarded-port", &[client.port.as_bytes()]);
        }
        if let Some(original) = &client.original_forwarded_for {
            own("x-original-forwarded-for", &[original.as_bytes()]);
        }
        if let Some(original) = client.original_forwarded_host {
            own("x-original-forwarded-host", &[original.as_bytes()]);
        }
        if let Some(prefix) = self.forwarded_prefix {
            own("x-forwarded-prefix", &[prefix.as_bytes()]);
        }
        own(X_REQUEST_ID, &[self.request_id]);
        global_lines(self.global, self.route, &mut line);
        route_lines(self.route, &mut line);
        route_lines(auth, emit);
    }
}

/// The edits of a response going to the client: HSTS, CORS, then the route's. The default
/// edits nothing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ResponseEdits<'a> {
    /// `Strict-Transport-Security`, replacing the upstream's (HTTPS responses, `hsts`).
    pub(crate) hsts: Option<&'a str>,
    /// The route's CORS policy and `Access-Control-Allow-Origin`, when the request gets CORS
    /// headers; they replace the upstream's.
    pub(crate) cors: Option<(&'a ingress_core::Cors, &'a str)>,
    /// The edits of every response (`hide-headers`, `add-headers`, `Server`).
    pub(crate) global: &'a [HeaderOp],
    /// The route's edits.
    pub(crate) route: &'a [HeaderOp],
    /// The route's rewrites of upstream `Location`, `Refresh` and `Set-Cookie` values.
    pub(crate) rewrites: Option<&'a ResponseRewrites>,
    /// Lines the auth service's answer adds (its `Set-Cookie`): on `2xx`/`3xx` responses only
    /// (nginx's `add_header`), or on all with `auth_always` ([`Self::at`]).
    pub(crate) auth: &'a [HeaderOp],
    /// `auth-always-set-cookie`.
    pub(crate) auth_always: bool,
    /// The affinity cookie, when the session got a new endpoint (`affinity: cookie`).
    pub(crate) set_cookie: Option<&'a str>,
}

/// The HSTS header's name.
pub(crate) const HSTS: &str = "strict-transport-security";

impl ResponseEdits<'_> {
    /// Whether an upstream response header line named `name` goes to the client (the framing
    /// and connection headers are the driver's business, not this list's).
    pub(crate) fn keeps(&self, name: &str) -> bool {
        let ours = (self.hsts.is_some() && name.eq_ignore_ascii_case(HSTS))
            || (self.cors.is_some() && is_cors_header(name));
        !ours && !replaced_by(self.route, name) && !replaced_by(self.global, name)
    }

    /// Calls `line(name, value)` for each line the proxy and the route add, in order.
    pub(crate) fn added(&self, mut line: impl FnMut(&str, &[&[u8]])) {
        let replaced = |name: &str| replaced_by(self.route, name) || replaced_by(self.global, name);
        if let Some(hsts) = self.hsts
            && !replaced(HSTS)
        {
            line(HSTS, &[hsts.as_bytes()]);
        }
        if let Some((cors, origin)) = self.cors {
            for (name, value) in cors.headers(origin) {
                if !replaced(name) {
                    line(name, &[value.as_bytes()]);
                }
            }
        }
        global_lines(self.global, self.route, &mut line);
        route_lines(self.route, &mut line);
        route_lines(self.auth, &mut line);
        if let Some(cookie) = self.set_cookie {
            line("set-cookie", &[cookie.as_bytes()]);
        }
    }

    /// The new value of a kept upstream header line, when the route rewrites it
    /// (`proxy-redirect-*`, `proxy-cookie-*`); `None` keeps it as it is.
    pub(crate) fn rewritten(&self, name: &str, value: &[u8]) -> Option<String> {
        let rewrites = self.rewrites.filter(|r| r.touches(name))?;
        rewrites.rewrite(name, std::str::from_utf8(value).ok()?)
    }

    /// These edits for a response with `status`: the auth service's lines only where nginx's
    /// `add_header` (without `always`) adds them.
    pub(crate) fn at(self, status: u16) -> Self {
        let added = matches!(status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308);
        if self.auth_always || added { self } else { Self { auth: &[], ..self } }
    }

    /// Whether there is nothing to edit.
    pub(crate) fn is_empty(&self) -> bool {
        self.route.is_empty()
            && self.global.is_empty()
            && self.hsts.is_none()
            && self.cors.is_none()
            && self.rewrites.is_none()
            && self.auth.is_empty()
            && self.set_cookie.is_none()
    }
}

/// Whether `name` is one of the CORS response headers the proxy sets.
fn is_cors_header(name: &str) -> bool {
    const ALLOW: &[u8] = b"access-control-allow-";
    name.as_bytes().get(..ALLOW.len()).is_some_and(|p| p.eq_ignore_ascii_case(ALLOW))
        || name.eq_ignore_ascii_case("access-control-expose-headers")
        || name.eq_ignore_ascii_case("access-control-max-age")
}

/// Whether the route's edits set or remove `name` (so earlier lines of it go).
fn replaced_by(route: &[HeaderOp], name: &str) -> bool {
    route.iter().any(|op| op.action() != HeaderAction::Append && op.name().eq_ignore_ascii_case(name))
}

/// The lines of the global `set` and `append` edits whose names the route's edits do not set
/// or remove.
fn global_lines(global: &[HeaderOp], route: &[HeaderOp], line: &mut impl FnMut(&str, &[&[u8]])) {
    for op in global.iter().filter(|op| op.action() != HeaderAction::Remove) {
        if !replaced_by(route, op.name()) {
            line(op.name(), &[op.value().as_bytes()]);
        }
    }
}

/// The lines of the `set` and `append` edits of `route`.
fn route_lines(route: &[HeaderOp], mut line: impl FnMut(&str, &[&[u8]])) {
    for op in route.iter().filter(|op| op.action() != HeaderAction::Remove) {
        line(op.name(), &[op.value().as_bytes()]);
    }
}

/// A new request id: 128 random bits as 32 hex digits (the shape of ingress-nginx's
/// `$req_id`).
pub(crate) fn new_request_id() -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>();
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().enumerate() {
        *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    id
}

/// The client's request id if it is usable as one (not empty, not too long).
pub(crate) fn usable_request_id(value: &[u8]) -> Option<&[u8]> {
    Some(value).filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lines(edits: &RequestEdits<'_>) -> Vec<String> {
        let mut out = Vec::new();
        edits.added(|name, value| {
            let value: Vec<u8> = value.concat();
            out.push(format!("{name}: {}", String::from_utf8(value).unwrap()));
        });
        out
    }

    fn client() -> Client<'static> {
        use super::super::client::{Connection, Sent, identify};
        let forwarding = crate::config::Forwarding::default();
        let connection =
            Connection { peer: Some(("10.1.2.3".parse().unwrap(), "10.1.2.3")), tls: false, port: "8080" };
        let sent = Sent::from_lines(&forwarding, [("X-Forwarded-For", &b"203.0.113.9"[..])].into_iter());
        identify(&forwarding, connection, "demo.example.com", sent)
    }

    fn edits<'a>(
        client: &'a Client<'a>,
        route: &'a [HeaderOp],
        nominated: &'a [&'a str],
    ) -> RequestEdits<'a> {
        RequestEdits {
            target: None,
            host: None,
            forwarded_prefix: None,
            client,
            request_id: b"abc",
            nominated,
            names: Names { underscores: false, ignore_invalid: true },
            global: &[],
            route,
            auth: &[],
        }
    }

    #[test]
    fn forwarding_headers_replace_the_clients() {
        let client = client();
        let e = edits(&client, &[], &["x-secret"]);
        assert_eq!(
            lines(&e),
            [
                "x-real-ip: 10.1.2.3",
                "x-forwarded-for: 10.1.2.3",
                "x-forwarded-proto: http",
                "x-forwarded-scheme: http",
                "x-scheme: http",
                "x-forwarded-host: demo.example.com",
                "x-forwarded-port: 8080",
                "x-original-forwarded-for: 203.0.113.9",
                "x-request-id: abc",
            ]
        );
        for dropped in [
            "Connection",
            "TE",
            "Expect",
            "Proxy",
            "X-Real-IP",
            "X-Scheme",
            "X-Original-Forwarded-For",
            "x-secret",
            "X_Real_IP",
            "x.y",
            "naïve",
        ] {
            assert!(!e.keeps(dropped), "{dropped}");
        }
        for kept in ["Host", "Content-Length", "Accept", "x-a-b-9"] {
            assert!(e.keeps(kept), "{kept}");
        }
        assert!(
            RequestEdits { names: Names { underscores: true, ignore_invalid: true }, ..e }.keeps("x_custom")
        );
        let lax = RequestEdits { names: Names { underscores: false, ignore_invalid: false }, ..e };
        assert!(lax.keeps("x_custom") && lax.keeps("x.y") && !lax.keeps("X-Real-IP"));
    }

    #[test]
    fn route_edits_override_the_proxys_own() {
        let route = [
            HeaderOp::set("x-forwarded-proto", "https").unwrap(),
            HeaderOp::remove("x-request-id").unwrap(),
            HeaderOp::append("accept", "*/*").unwrap(),
        ];
        let client = client();
        let e = edits(&client, &route, &[]);
        let got = lines(&e);
        assert!(got.contains(&"x-forwarded-proto: https".to_owned()), "{got:?}");
        assert!(!got.iter().any(|l| l.starts_with("x-forwarded-proto: http\u{0}")));
        assert_eq!(got.iter().filter(|l| l.starts_with("x-forwarded-proto")).count(), 1);
        assert!(!got.iter().any(|l| l.starts_with("x-request-id")));
        assert!(e.keeps("accept"), "append keeps the client's lines");
        let r = ResponseEdits { route: &route, ..ResponseEdits::default() };
        assert!(!r.keeps("X-Request-Id") && r.keeps("accept"));
    }

    #[test]
    fn global_edits_come_before_the_routes_which_win() {
        let global = [
            HeaderOp::remove("server").unwrap(),
            HeaderOp::set("x-frame-options", "SAMEORIGIN").unwrap(),
            HeaderOp::set("x-global", "1").unwrap(),
        ];
        let route = [HeaderOp::set("x-frame-options", "DENY").unwrap()];
        let r = ResponseEdits {
            hsts: Some("max-age=1"),
            global: &global,
            route: &route,
            ..ResponseEdits::default()
        };
        assert!(!r.keeps("Server") && !r.keeps("x-frame-options") && r.keeps("x-other"));
        let mut got = Vec::new();
        r.added(|name, value| got.push(format!("{name}: {}", String::from_utf8_lossy(&value.concat()))));
        assert_eq!(got, ["strict-transport-security: max-age=1", "x-global: 1", "x-frame-options: DENY"]);
        // The same for requests: a global `set` replaces the forwarding header of that name.
        let client = client();
        let set = [HeaderOp::set("x-forwarded-proto", "https").unwrap()];
        let e = RequestEdits { global: &set, ..edits(&client, &[], &[]) };
        let got = lines(&e);
        assert_eq!(got.iter().filter(|l| l.starts_with("x-forwarded-proto")).count(), 1, "{got:?}");
        assert!(got.contains(&"x-forwarded-proto: https".to_owned()));
        assert!(!e.keeps("x-forwarded-proto"));
    }

    #[test]
    fn generated_request_ids_are_32_hex_digits() {
        let (a, b) = (new_request_id(), new_request_id());
        assert!(a.iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
        assert!(usable_request_id(b"").is_none());
        assert!(usable_request_id(&[b'a'; 201]).is_none());
    }
}
