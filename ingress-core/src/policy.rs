//! Per-route policy: what happens to a request on a route besides where it goes.
//!
//! A [`RoutePolicy`] is plain data attached to the routes of one Ingress (as linkerd2-proxy
//! attaches policy to its routes): the proxy gets it with the route from one lookup and applies
//! it in one place. Unset fields fall back to the proxy's global settings (the ConfigMap), so a
//! policy only says what differs for its routes.
//!
//! Header operations are validated when they are made ([`HeaderOp::set`] and friends return
//! an error for a name that is not a token, a name whose header frames or routes the message or
//! describes one hop, or a value with control bytes), so no route can carry a header that would
//! split or smuggle a message.

use std::fmt;
use std::time::Duration;

/// What one Ingress's routes do differently from the proxy's global settings.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ingress_core::{BodyLimit, HeaderOp, RoutePolicy};
///
/// let policy = RoutePolicy {
///     read_timeout: Some(Duration::from_secs(600)),
///     max_body_size: Some(BodyLimit::Unlimited),
///     response_headers: vec![HeaderOp::set("x-frame-options", "DENY")?],
///     ..RoutePolicy::default()
/// };
/// assert!(!policy.is_empty());
/// assert!(RoutePolicy::default().is_empty());
/// # Ok::<(), ingress_core::InvalidHeader>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Establishing a connection to an endpoint (`proxy-connect-timeout`).
    pub connect_timeout: Option<Duration>,
    /// Waiting for the next bytes from an endpoint (`proxy-read-timeout`).
    pub read_timeout: Option<Duration>,
    /// Waiting to send the next bytes to an endpoint (`proxy-send-timeout`).
    pub send_timeout: Option<Duration>,
    /// The largest request body accepted (`proxy-body-size`).
    pub max_body_size: Option<BodyLimit>,
    /// Attempts per request, each on another endpoint (`proxy-next-upstream-tries`).
    pub max_attempts: Option<u32>,
    /// Edits to the request going upstream, applied after the proxy's own forwarding headers
    /// (so a route can override them), in order.
    pub request_headers: Vec<HeaderOp>,
    /// Edits to the response going to the client, in order.
    pub response_headers: Vec<HeaderOp>,
    /// Whether requests on these routes are written to the access log (`enable-access-log`);
    /// `None` follows the global setting.
    pub access_log: Option<bool>,
    /// Why these routes are closed: set when an access restriction (authentication, source
    /// ranges, client certificates, limits) is asked for but cannot be applied, so every
    /// request is answered `503` rather than served more openly than asked. Fail closed.
    pub closed: Option<String>,
    /// Every request is answered with this redirect instead of being proxied
    /// (`permanent-redirect`, `temporal-redirect`).
    pub redirect: Option<Redirect>,
    /// Requests for `/` are redirected (`302`) to this path on the same host (`app-root`).
    pub app_root: Option<String>,
    /// Whether plain HTTP requests are redirected to HTTPS on hosts served over TLS
    /// (`ssl-redirect`); `None` follows the global setting.
    pub ssl_redirect: Option<bool>,
    /// Whether plain HTTP requests are redirected to HTTPS on every host
    /// (`force-ssl-redirect`); `None` follows the global setting.
    pub force_ssl_redirect: Option<bool>,
    /// Whether the HTTPS redirect keeps a trailing `/` of the target (`preserve-trailing-slash`;
    /// ingress-nginx drops it by default).
    pub preserve_trailing_slash: bool,
    /// Whether the HTTPS redirect names the proxy's HTTPS port (`use-port-in-redirects`).
    pub use_port_in_redirects: bool,
    /// Whether this Ingress's paths are regular expressions (`use-regex`). Regex paths apply
    /// to every path of each of its hosts, whatever Ingress wrote them, as in ingress-nginx.
    pub use_regex: bool,
    /// The path requests are sent upstream with (`rewrite-target`); a target other than a
    /// path's own text makes that path's host a regex host too.
    pub rewrite_target: Option<crate::RewriteTarget>,
    /// `X-Forwarded-Prefix` sent upstream when the path is rewritten (`x-forwarded-prefix`).
    pub forwarded_prefix: Option<String>,
    /// The `Host` header sent upstream instead of the client's (`upstream-vhost`).
    pub upstream_host: Option<String>,
    /// How long a request may spend trying endpoints before the last failure is its answer
    /// (`proxy-next-upstream-timeout`); `None` is no limit.
    pub next_upstream_timeout: Option<Duration>,
    /// CORS (`enable-cors`): preflights answered by the proxy, headers on responses.
    pub cors: Option<crate::Cors>,
    /// Rewrites of upstream `Location`, `Refresh` and `Set-Cookie` values
    /// (`proxy-redirect-from`/`-to`, `proxy-cookie-domain`, `proxy-cookie-path`); boxed, as
    /// few routes have them.
    pub response_rewrites: Option<Box<crate::ResponseRewrites>>,
    /// The statuses answered by an error backend instead (`custom-http-errors`); `None`
    /// follows the global list.
    pub custom_errors: Option<Box<[u16]>>,
    /// The only client addresses let in (`whitelist-source-range`/`allowlist-source-range`);
    /// `None` follows the ConfigMap's. Others get `403`.
    pub allow_ranges: Option<Box<[crate::Cidr]>>,
    /// Client addresses kept out, before the allowlist (`denylist-source-range`); `None`
    /// follows the ConfigMap's.
    pub deny_ranges: Option<Box<[crate::Cidr]>>,
    /// Request and connection limits per client address (`limit-rps`, `limit-rpm`,
    /// `limit-connections`); boxed, as few routes have them.
    pub rate_limit: Option<Box<RateLimit>>,
    /// Basic authentication (`auth-type: basic`): requests without a listed user's password
    /// get `401`.
    pub basic_auth: Option<std::sync::Arc<BasicAuth>>,
    /// External authentication (`auth-url`): requests the auth service does not let through
    /// get its `401`/`403` (or the sign-in redirect), or `500`.
    pub external_auth: Option<std::sync::Arc<crate::ExternalAuth>>,
    /// `satisfy: any`: one passing access check (source ranges, basic or external
    /// authentication) lets a request through; otherwise all must pass.
    pub satisfy_any: bool,
    /// `enable-global-auth: "false"`: the ConfigMap's `global-auth-url` does not apply.
    pub no_global_auth: bool,
    /// How requests are spread over the endpoints (`load-balance`, `upstream-hash-by`,
    /// `affinity`); `None` follows the ConfigMap's `load-balance`.
    pub balance: Option<Box<crate::Balance>>,
    /// How the endpoints are spoken to (`backend-protocol`, `proxy-ssl-*`); `None` is plain
    /// HTTP/1.1. Shared, as few routes have it.
    pub upstream: Option<std::sync::Arc<crate::UpstreamProtocol>>,
}

/// The users of basic authentication (`auth-secret`) and the realm their browsers are told
/// (`auth-realm`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasicAuth {
    /// `WWW-Authenticate: Basic realm="…"`.
    pub realm: String,
    /// User → htpasswd hash.
    pub users: std::collections::BTreeMap<String, String>,
}

/// ingress-nginx's per-Ingress limits, counted per client address (per replica, as there):
/// nginx's `limit_req` (a leaky bucket with `burst = limit × burst_multiplier`, `nodelay`)
/// and `limit_conn` (requests in flight).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// The Ingress whose routes share the counts (`namespace/name`): its zone.
    pub zone: String,
    /// Requests per second (`limit-rps`); 0 is none.
    pub rps: u32,
    /// Requests per minute (`limit-rpm`); 0 is none.
    pub rpm: u32,
    /// Requests in flight (`limit-connections`); 0 is none.
    pub connections: u32,
    /// The burst over the rate, as a multiple of it (`limit-burst-multiplier`, 5).
    pub burst_multiplier: u32,
    /// Client addresses never limited (`limit-allowlist`, `limit-whitelist`).
    pub allowlist: Vec<crate::Cidr>,
}

/// A redirect the proxy answers itself: a status and a `Location` checked to be safe in a
/// header (no control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    code: u16,
    location: Box<str>,
}

impl Redirect {
    /// A redirect with `code` (a 3xx status) to `location`.
    pub fn new(code: u16, location: &str) -> Result<Self, InvalidHeader> {
        if !(300..=399).contains(&code)
            || location.is_empty()
            || !location.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(InvalidHeader::Value("location".into()));
        }
        Ok(Self { code, location: location.into() })
    }

    /// The status.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// Where to.
    pub fn location(&self) -> &str {
        &self.location
    }
}

impl RoutePolicy {
    /// The protocol spoken to the endpoints (`backend-protocol`; HTTP/1.1 by default).
    pub fn backend_protocol(&self) -> crate::BackendProtocol {
        self.upstream.as_ref().map(|u| u.protocol).unwrap_or_default()
    }

    /// The TLS settings to the endpoints (`proxy-ssl-*`; `None`: nginx's defaults).
    pub fn upstream_tls(&self) -> Option<&std::sync::Arc<crate::UpstreamTls>> {
        self.upstream.as_ref().and_then(|u| u.tls.as_ref())
    }

    /// Whether the policy changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == RoutePolicy::default()
    }

    /// One line per setting that differs from the global settings, for people (`explain`).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(why) = &self.closed {
            out.push(format!("closed: every request is answered 503 ({why})"));
        }
        let secs = |d: &Duration| format!("{}s", d.as_secs_f64());
        if let Some(d) = &self.connect_timeout {
            out.push(format!("connect timeout {}", secs(d)));
        }
        if let Some(d) = &self.read_timeout {
            out.push(format!("read timeout {}", secs(d)));
        }
        if let Some(d) = &self.send_timeout {
            out.push(format!("send timeout {}", secs(d)));
        }
        match self.max_body_size {
            Some(BodyLimit::Bytes(n)) => out.push(format!("request bodies up to {n} bytes")),
            Some(BodyLimit::Unlimited) => out.push("request bodies unlimited".to_owned()),
            None => {}
        }
        if let Some(n) = self.max_attempts {
            out.push(format!("up to {n} attempts"));
        }
        if let Some(on) = self.access_log {
            out.push(format!("access log {}", if on { "on" } else { "off" }));
        }
        if let Some(r) = &self.redirect {
            out.push(format!("every request redirected: {} {}", r.code(), r.location()));
        }
        if let Some(root) = &self.app_root {
            out.push(format!("`/` redirected (302) to {root}"));
        }
        if let Some(on) = self.ssl_redirect {
            out.push(format!("HTTPS redirect on hosts with TLS {}", if on { "on" } else { "off" }));
        }
        if let Some(on) = self.force_ssl_redirect {
            out.push(format!("HTTPS redirect on every host {}", if on { "on" } else { "off" }));
        }
        if self.preserve_trailing_slash {
            out.push("HTTPS redirect keeps a trailing slash".to_owned());
        }
        if self.use_port_in_redirects {
            out.push("HTTPS redirect names the HTTPS port".to_owned());
        }
        if self.use_regex {
            out.push("paths are regular expressions (case-insensitive, anchored at the start)".to_owned());
        }
        if let Some(target) = &self.rewrite_target {
            out.push(format!("path rewritten to {target} upstream"));
        }
        if let Some(prefix) = &self.forwarded_prefix {
            out.push(format!("X-Forwarded-Prefix: {prefix} when rewritten"));
        }
        if let Some(host) = &self.upstream_host {
            out.push(format!("Host: {host} upstream"));
        }
        if let Some(cors) = &self.cors {
            let origins = match &cors.origins {
                crate::CorsOrigins::Any => "*".to_owned(),
                crate::CorsOrigins::List(list) => {
                    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                }
            };
            out.push(format!("CORS for {origins} (preflights answered 204 by the proxy)"));
        }
        if let Some(d) = &self.next_upstream_timeout {
            out.push(format!("retries stop after {}", secs(d)));
        }
        let list = |l: &[crate::Cidr]| l.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        if let Some(allow) = &self.allow_ranges {
            out.push(format!("only clients from {} (others 403)", list(allow)));
        }
        if let Some(deny) = &self.deny_ranges {
            out.push(format!("clients from {} refused (403)", list(deny)));
        }
        if let Some(auth) = &self.basic_auth {
            out.push(format!("basic authentication, realm {:?}, {} users", auth.realm, auth.users.len()));
        }
        if let Some(auth) = &self.external_auth {
            let signin = auth.signin.as_ref().map_or(String::new(), |s| format!(", 401 redirected to {s}"));
            out.push(format!("external authentication by {}{signin}", auth.url));
        }
        if self.satisfy_any {
            out.push("one passing access check is enough (satisfy any)".to_owned());
        }
        if self.no_global_auth {
            out.push("global external authentication off".to_owned());
        }
        if let Some(upstream) = &self.upstream {
            out.push(format!("endpoints spoken to in {}", upstream.protocol));
            if let Some(tls) = &upstream.tls {
                out.push(format!("TLS to endpoints: {}", tls.describe()));
            }
        }
        if let Some(b) = &self.balance {
            if let Some(a) = &b.affinity {
                let mode = if a.persistent { "persistent" } else { "balanced" };
                out.push(format!("sticky sessions by cookie {} ({mode})", a.cookie.name));
            } else if let Some(h) = &b.hash_by {
                let subset = h.subset.map_or(String::new(), |n| format!(", subsets of {n}"));
                out.push(format!("consistent hashing by {}{subset}", h.key));
            } else if let Some(lb) = b.load_balance {
                out.push(format!(
                    "balancing {}",
                    if lb == crate::LoadBalance::Ewma { "ewma" } else { "round_robin" }
                ));
            }
        }
        if let Some(rl) = &self.rate_limit {
            let mut parts = Vec::new();
            if rl.rps > 0 {
                parts.push(format!(
                    "{} req/s (burst {})",
                    rl.rps,
                    rl.rps.saturating_mul(rl.burst_multiplier)
                ));
            }
            if rl.rpm > 0 {
                parts.push(format!(
                    "{} req/min (burst {})",
                    rl.rpm,
                    rl.rpm.saturating_mul(rl.burst_multiplier)
                ));
            }
            if rl.connections > 0 {
                parts.push(format!("{} requests in flight", rl.connections));
            }
            out.push(format!("per client address: {}", parts.join(", ")));
        }
        if let Some(codes) = &self.custom_errors {
            let codes: Vec<String> = codes.iter().map(ToString::to_string).collect();
            out.push(format!(
                "statuses {} answered by the error backend (custom-http-errors)",
                codes.join(", ")
            ));
        }
        if let Some(rw) = &self.response_rewrites {
            let pairs = [
                ("Location/Refresh", &rw.redirect),
                ("cookie domain", &rw.cookie_domain),
                ("cookie path", &rw.cookie_path),
            ];
            for (what, pair) in pairs {
                if let Some(p) = pair {
                    out.push(format!("upstream {what} `{}` rewritten to `{}`", p.from, p.to));
                }
            }
        }
        out.extend(self.request_headers.iter().map(|op| format!("request: {op}")));
        out.extend(self.response_headers.iter().map(|op| format!("response: {op}")));
        out
    }
}

/// A request body size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// At most this many bytes; a larger body is answered `413`.
    Bytes(u64),
    /// No limit (`proxy-body-size: 0`).
    Unlimited,
}

impl BodyLimit {
    /// The limit in bytes, `None` when unlimited.
    pub fn bytes(self) -> Option<u64> {
        match self {
            BodyLimit::Bytes(n) => Some(n),
            BodyLimit::Unlimited => None,
        }
    }
}

/// What a [`HeaderOp`] does to its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderAction {
    /// Replaces every line of the header with one line of this value.
    Set,
    /// Adds a line, keeping those already there.
    Append,
    /// Removes every line of the header.
    Remove,
}

/// One edit of a message's headers: a validated lower-case name, an action and a value.
///
/// # Examples
///
/// ```
/// use ingress_core::{HeaderAction, HeaderOp};
///
/// let op = HeaderOp::set("X-Served-By", "ferry")?;
/// assert_eq!((op.name(), op.action(), op.value()), ("x-served-by", HeaderAction::Set, "ferry"));
/// assert!(HeaderOp::set("x-a", "evil\r\nx-b: 1").is_err());
/// assert!(HeaderOp::remove("bad name").is_err());
/// # Ok::<(), ingress_core::InvalidHeader>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderOp {
    name: Box<str>,
    action: HeaderAction,
    value: Box<str>,
}

/// Why a [`HeaderOp`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHeader {
    /// The name is empty or has a byte that is not a token character (RFC 9110 section 5.1).
    #[error("invalid header name `{0}`: must be a token (letters, digits, and !#$%&'*+-.^_`|~)")]
    Name(String),
    /// The value has a control byte (CR, LF, NUL…), which would end the line early.
    #[error("invalid value for header `{0}`: control characters are not allowed")]
    Value(String),
    /// The header frames or routes the message, or describes one hop (`Content-Length`,
    /// `Transfer-Encoding`, `Host`, `Connection`…): the proxy writes it, a route cannot.
    #[error("header `{0}` is the proxy's own (it frames or routes the message, or describes one hop)")]
    Reserved(String),
}

/// Headers no route may set or remove: the proxy writes them from the message itself.
pub const RESERVED_HEADERS: [&str; 11] = [
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "date",
];

impl HeaderOp {
    /// Replaces `name` with `value`.
    pub fn set(name: &str, value: &str) -> Result<Self, InvalidHeader> {
        Self::new(name, HeaderAction::Set, value)
    }

    /// Adds a `name: value` line.
    pub fn append(name: &str, value: &str) -> Result<Self, InvalidHeader> {
        Self::new(name, HeaderAction::Append, value)
    }

    /// Removes `name`.
    pub fn remove(name: &str) -> Result<Self, InvalidHeader> {
        Self::new(name, HeaderAction::Remove, "")
    }

    fn new(name: &str, action: HeaderAction, value: &str) -> Result<Self, InvalidHeader> {
        if !is_token(name) {
            return Err(InvalidHeader::Name(name.to_owned()));
        }
        if RESERVED_HEADERS.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            return Err(InvalidHeader::Reserved(name.to_owned()));
        }
        let value = value.trim_matches([' ', '\t']);
        if !value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)) {
            return Err(InvalidHeader::Value(name.to_owned()));
        }
        Ok(Self { name: name.to_ascii_lowercase().into(), action, value: value.into() })
    }

    /// The header's name, lower-case.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the edit does.
    pub fn action(&self) -> HeaderAction {
        self.action
    }

    /// The value written (empty for [`HeaderAction::Remove`]).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for HeaderOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            HeaderAction::Set => write!(f, "set {}: {}", self.name, self.value),
            HeaderAction::Append => write!(f, "append {}: {}", self.name, self.value),
            HeaderAction::Remove => write!(f, "remove {}", self.name),
        }
    }
}

/// Whether `name` is an RFC 9110 token: a valid header field name.
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_stays_small() {
        // One per Ingress with annotations: its size is paid per Ingress (see `benches/memory.rs`).
        assert!(std::mem::size_of::<RoutePolicy>() <= 512, "{}", std::mem::size_of::<RoutePolicy>());
    }

    #[test]
    fn header_ops_are_validated_and_lower_cased() {
        let op = HeaderOp::append("Cache-Control", "  no-store ").unwrap();
        assert_eq!((op.name(), op.value()), ("cache-control", "no-store"));
        assert_eq!(op.to_string(), "append cache-control: no-store");
        for bad in ["", "a b", "x:y", "naïve", "a\r\nb"] {
            assert!(matches!(HeaderOp::set(bad, "v"), Err(InvalidHeader::Name(_))), "{bad:?}");
        }
        for bad in ["a\rb", "a\nb", "a\0b", "a\x7fb"] {
            assert!(matches!(HeaderOp::set("x", bad), Err(InvalidHeader::Value(_))), "{bad:?}");
        }
        assert!(HeaderOp::set("x", "tab\tand obs-text é").is_ok());
        for reserved in ["Content-Length", "transfer-encoding", "HOST", "connection", "upgrade", "te"] {
            assert!(matches!(HeaderOp::remove(reserved), Err(InvalidHeader::Reserved(_))), "{reserved}");
        }
    }
}
