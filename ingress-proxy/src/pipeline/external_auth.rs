//! External authentication (`auth-url`, the ConfigMap's `global-auth-url`): nginx's
//! `auth_request`, as ingress-nginx's `/_external-auth-…` location sets it up.
//!
//! The auth service gets the client's request head without the body: the client's header
//! lines (minus `Content-Length`, `X-Forwarded-Proto` and the hop-by-hop ones), `Host` the
//! URL's host name, and `X-Original-URL`, `X-Original-Method`, `X-Sent-From`, `X-Real-IP`,
//! `X-Forwarded-For`, `X-Auth-Request-Redirect`, `X-Request-ID` (with `auth-method`, also
//! `X-Original-URI` and `X-Scheme`), then `auth-proxy-set-headers`. Its answer decides:
//!
//! - `2xx`: the request goes upstream with each `auth-response-headers` header set from the
//!   answer (removed when the answer has none, so a client cannot send its own), and the
//!   answer's `Set-Cookie` goes on the response (`2xx`/`3xx` only, unless
//!   `auth-always-set-cookie`).
//! - `401` (with the answer's `WWW-Authenticate`) or `403`; a `401` becomes a `302` to
//!   `auth-signin` when there is one, with the answer's `Set-Cookie`.
//! - anything else, or no answer: `500`.
//!
//! Like nginx with `proxy_ssl_verify off` (ingress-nginx's default for this location), an
//! `https` auth service's certificate is not verified; SNI is sent.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ingress_core::{ExternalAuth, HeaderOp, split_url};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

use super::edits::{HOP_BY_HOP, Names};
use super::request_vars::RequestVars;
use super::subrequest::{self, Page};
use crate::config::Timeouts;

/// The external authentication a request waits for, and what the other access checks said
/// (`satisfy any`: a refusal of theirs that stands if this one refuses too).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending<'t> {
    pub(crate) auth: &'t ExternalAuth,
    pub(crate) prior: Option<u16>,
}

/// What the auth service decided.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The request goes on.
    Allowed(Granted),
    /// The client's answer: the status and its extra header lines.
    Refused { status: u16, lines: Vec<(String, String)> },
}

/// What an allowed request carries from the auth service's answer.
#[derive(Debug, Default)]
pub(crate) struct Granted {
    /// Edits of the upstream request (`auth-response-headers`).
    pub(crate) upstream: Vec<HeaderOp>,
    /// `Set-Cookie` lines for the response ([`ResponseEdits::auth`](super::edits::ResponseEdits)).
    pub(crate) cookies: Vec<HeaderOp>,
    /// `auth-always-set-cookie`: every status gets them.
    pub(crate) always: bool,
}

impl Granted {
    /// What a request gets on a route with external authentication when the auth service was
    /// not asked (another check let it through under `satisfy: any`): each
    /// `auth-response-headers` header removed, so a client cannot send its own, as
    /// ingress-nginx's `proxy_set_header` with an empty variable removes it.
    pub(crate) fn unasked(auth: Option<&ExternalAuth>) -> Self {
        let upstream = auth.map_or(&[][..], |a| &a.response_headers).iter();
        Self {
            upstream: upstream.filter_map(|name| HeaderOp::remove(name).ok()).collect(),
            ..Self::default()
        }
    }
}

/// The answers kept by `auth-cache-key`, across tables.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<String, (Page, Instant)>>,
}

/// At most this many answers are kept; past it, expired ones go, and new ones are not kept
/// until there is room.
const MAX_CACHED: usize = 10_000;

impl Cache {
    fn get(&self, key: &str, now: Instant) -> Option<Page> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(key).filter(|(_, until)| *until > now).map(|(page, _)| page.clone())
    }

    fn put(&self, key: String, page: Page, until: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_CACHED {
            let now = Instant::now();
            entries.retain(|_, (_, until)| *until > now);
            // Still full of live answers: start afresh rather than scan on every insert.
            if entries.len() >= MAX_CACHED / 2 {
                entries.clear();
            }
        }
        // The body is never read again; only the status and headers are kept.
        entries.insert(key, (Page { body: bytes::Bytes::new(), ..page }, until));
    }
}

/// Asks the auth service about the request `vars` describes.
pub(crate) async fn ask(
    pending: Pending<'_>,
    vars: &RequestVars<'_>,
    names: Names,
    timeouts: &Timeouts,
    cache: &Cache,
) -> Verdict {
    let auth = pending.auth;
    let url = auth.url.render(vars);
    // Kept per host, rule and key, as ingress-nginx's `$server.Hostname$authPath$key` (its
    // auth location is per rule path): an answer for one host never lets a request to another
    // through.
    let cache_key = auth.cache.as_ref().map(|c| {
        let mut host = String::new();
        ingress_core::Vars::expand(vars, &ingress_core::Var::Host, &mut host);
        let rule = match vars.route.matched_by {
            ingress_core::MatchedBy::Path { path, path_type, .. } => format!("{path_type:?} {path}"),
            _ => String::new(),
        };
        format!("{url}\0{host}\0{rule}\0{}", c.key.render(vars))
    });
    let now = Instant::now();
    let cached = cache_key.as_deref().and_then(|k| cache.get(k, now));
    let page = match cached {
        Some(page) => Ok(page),
        None => {
            let answer = fetch(auth, &url, vars, names, timeouts).await;
            if let (Ok(page), Some(key), Some(c)) = (&answer, cache_key, &auth.cache)
                && let Some(ttl) = keep_for(page, c)
            {
                cache.put(key, page.clone(), now + ttl);
            }
            answer
        }
    };
    match page {
        Ok(page) => decide(pending, &page, vars),
        Err(why) => {
            tracing::warn!(error = why, url = %url, "external authentication failed");
            Verdict::Refused { status: 500, lines: Vec::new() }
        }
    }
}

/// The verdict of the auth service's `page`.
fn decide(pending: Pending<'_>, page: &Page, vars: &RequestVars<'_>) -> Verdict {
    let auth = pending.auth;
    let all = |name: &'static str| values(page, name);
    let cookies: Vec<HeaderOp> =
        all("set-cookie").filter_map(|v| HeaderOp::append("set-cookie", v).ok()).collect();
    match page.status {
        200..=299 => {
            let upstream = auth
                .response_headers
                .iter()
                .filter_map(|name| {
                    let value = values(page, name).collect::<Vec<_>>().join(", ");
                    if value.is_empty() {
                        HeaderOp::remove(name).ok()
                    } else {
                        HeaderOp::set(name, &value).ok()
                    }
                })
                .collect();
            Verdict::Allowed(Granted { upstream, cookies, always: auth.always_set_cookie })
        }
        code @ (401 | 403) => {
            // nginx's `satisfy any` answers 401 over 403.
            let status = if pending.prior == Some(401) { 401 } else { code };
            let cookie_lines = || cookies.iter().map(|c| (c.name().to_owned(), c.value().to_owned()));
            if let (401, Some(signin)) = (status, &auth.signin) {
                let mut lines = vec![("location".to_owned(), escape_controls(&signin.render(vars)))];
                lines.extend(cookie_lines());
                return Verdict::Refused { status: 302, lines };
            }
            let mut lines: Vec<(String, String)> = Vec::new();
            if code == 401 {
                lines.extend(all("www-authenticate").map(|v| ("www-authenticate".to_owned(), v.to_owned())));
            }
            if auth.always_set_cookie {
                lines.extend(cookie_lines());
            }
            Verdict::Refused { status, lines }
        }
        other => {
            tracing::warn!(status = other, "the auth service answered neither 2xx, 401 nor 403");
            Verdict::Refused { status: 500, lines: Vec::new() }
        }
    }
}

/// `value` with control bytes percent-escaped: a variable expanded from the request (`$uri`
/// is decoded) never breaks a header.
fn escape_controls(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii_control() {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The values of `page`'s header lines named `name` (lower-case).
fn values<'p>(page: &'p Page, name: &'p str) -> impl Iterator<Item = &'p str> {
    page.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// How long `page` may be kept, as nginx's `proxy_cache` decides: never with `Set-Cookie`,
/// `X-Accel-Expires` first, then `Cache-Control` (`no-store`, `no-cache`, `private`,
/// `max-age`), then `auth-cache-duration`.
fn keep_for(page: &Page, cache: &ingress_core::AuthCache) -> Option<Duration> {
    let header = |name: &str| page.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim());
    if header("set-cookie").is_some() {
        return None;
    }
    if let Some(secs) = header("x-accel-expires").and_then(|v| v.parse::<u64>().ok()) {
        return (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some(cc) = header("cache-control") {
        let directives: Vec<String> = cc.split(',').map(|d| d.trim().to_ascii_lowercase()).collect();
        if directives.iter().any(|d| matches!(d.as_str(), "no-store" | "no-cache" | "private")) {
            return None;
        }
        if let Some(secs) = directives.iter().find_map(|d| d.strip_prefix("max-age=")?.parse::<u64>().ok()) {
            return (secs > 0).then(|| Duration::from_secs(secs));
        }
    }
    cache.ttl(page.status)
}

/// One exchange with the auth service at `url`.
async fn fetch(
    auth: &ExternalAuth,
    url: &str,
    vars: &RequestVars<'_>,
    names: Names,
    timeouts: &Timeouts,
) -> Result<Page, &'static str> {
    let parts = split_url(url).ok_or("the auth URL is not an http(s) URL once expanded")?;
    let head = request_head(auth, parts.target, vars, names);
    let method = auth.method.as_deref().unwrap_or("GET");
    let connecting = async {
        let addr = tokio::net::lookup_host((parts.host, parts.port))
            .await
            .map_err(|_| "the auth service's name does not resolve")?
            .next()
            .ok_or("the auth service's name has no address")?;
        tokio::net::TcpStream::connect(addr).await.map_err(|_| "connecting to the auth service failed")
    };
    let tcp = tokio::time::timeout(timeouts.connect, connecting).await.map_err(|_| "connect timed out")??;
    if !parts.tls {
        return subrequest::exchange(tcp, &head, method == "HEAD", timeouts).await;
    }
    let connector = connector().ok_or("no TLS client")?;
    let ssl = connector
        .configure()
        .and_then(|c| c.verify_hostname(false).into_ssl(parts.host))
        .map_err(|_| "TLS set-up failed")?;
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).map_err(|_| "TLS set-up failed")?;
    tokio::time::timeout(timeouts.connect, std::pin::Pin::new(&mut tls).connect())
        .await
        .map_err(|_| "TLS handshake timed out")?
        .map_err(|_| "TLS handshake failed")?;
    subrequest::exchange(tls, &head, method == "HEAD", timeouts).await
}

/// The TLS client of `https` auth services (no verification, as nginx's default).
fn connector() -> Option<&'static SslConnector> {
    static CONNECTOR: OnceLock<Option<SslConnector>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let mut builder = SslConnector::builder(SslMethod::tls_client()).ok()?;
            builder.set_verify(SslVerifyMode::NONE);
            Some(builder.build())
        })
        .as_ref()
}

/// The auth request's head.
fn request_head(auth: &ExternalAuth, target: &str, vars: &RequestVars<'_>, names: Names) -> Vec<u8> {
    let method = auth.method.as_deref().unwrap_or("GET");
    let mut set: Vec<(&str, String)> = vec![
        ("host", auth.host.render(vars)),
        (
            "x-original-url",
            format!("{}://{}{}", if vars.tls { "https" } else { "http" }, vars.host, vars.target),
        ),
        ("x-original-method", vars.method.to_owned()),
        ("x-sent-from", "nginx-ingress-controller".to_owned()),
        ("x-real-ip", vars.client.ip_text.to_string()),
        ("x-forwarded-for", vars.client.forwarded_for.to_string()),
        (
            "x-auth-request-redirect",
            auth.request_redirect.as_ref().map_or_else(|| vars.target.to_owned(), |r| r.render(vars)),
        ),
        ("x-request-id", vars.request_id.to_owned()),
    ];
    if auth.method.is_some() {
        set.push(("x-original-uri", vars.target.to_owned()));
        set.push(("x-scheme", vars.client.scheme.to_owned()));
    }
    for (name, value) in &auth.proxy_set_headers {
        set.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        set.push((name.as_str(), value.render(vars)));
    }
    let mut out = Vec::with_capacity(1024);
    for part in [method, " ", target, " HTTP/1.1\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    let dropped = ["content-length", "transfer-encoding", "x-forwarded-proto"];
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in vars.headers {
        let ours = set.iter().any(|(n, _)| is(n, name));
        if ours || !names.forwards(name) || dropped.iter().chain(HOP_BY_HOP.iter()).any(|d| is(d, name)) {
            continue;
        }
        // HTTP/2 sends cookies as separate crumbs; the auth service gets one line, as nginx
        // joins them.
        if is(name, "cookie") {
            cookies.push(value);
            continue;
        }
        line(&mut out, name, value);
    }
    if !cookies.is_empty() {
        line(&mut out, "Cookie", &cookies.join(&b"; "[..]));
    }
    for (name, value) in &set {
        // An empty value sends no line, as nginx's `proxy_set_header` with an empty value.
        if !value.is_empty() {
            line(&mut out, name, value.as_bytes());
        }
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

/// One header line; a value that would break the head (expanded from the request) is left
/// out.
fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return;
    }
    for part in [name.as_bytes(), b": ", value, b"\r\n"] {
        out.extend_from_slice(part);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ingress_core::{BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder};

    fn page(status: u16, headers: &[(&str, &str)]) -> Page {
        Page {
            status,
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            body: bytes::Bytes::new(),
        }
    }

    fn with_vars(f: impl FnOnce(&RequestVars<'_>)) {
        let b = BackendRef::new("app", "web", 80);
        let mut builder = TableBuilder::new();
        builder.ingress(
            Ingress::new(Origin::new("app", "site"))
                .rule(HostRule::host("app.example.com").path(PathRule::prefix("/", b))),
        );
        let table = builder.build(&mut EndpointStore::new()).table;
        let route = table.lookup("app.example.com", "/a").unwrap();
        let forwarding = crate::config::Forwarding::default();
        let connection = super::super::client::Connection {
            peer: Some(("10.1.2.3".parse().unwrap(), "10.1.2.3")),
            tls: true,
            port: "443",
        };
        let sent = super::super::client::Sent::from_lines(&forwarding, std::iter::empty());
        let client = super::super::client::identify(&forwarding, connection, "app.example.com", sent);
        let headers: Vec<(&str, &[u8])> = vec![
            ("Host", b"app.example.com"),
            ("Cookie", b"_oauth2_proxy=abc"),
            ("Content-Length", b"5"),
            ("X-Forwarded-Proto", b"gopher"),
            ("X-Auth-Request-User", b"mallory"),
            ("Connection", b"keep-alive"),
        ];
        let vars = RequestVars {
            method: "POST",
            target: "/a?b=c d",
            path: "/a",
            host: "app.example.com",
            headers: &headers,
            client: &client,
            tls: true,
            request_id: "rid",
            route: &route,
        };
        f(&vars);
    }

    #[test]
    fn the_auth_request_is_made_as_ingress_nginx_makes_it() {
        with_vars(|vars| {
            let mut auth = ExternalAuth::new("http://auth.svc:4180/oauth2/auth").unwrap();
            auth.proxy_set_headers.push(("x-tenant".to_owned(), "$host".parse().unwrap()));
            let head = String::from_utf8(request_head(
                &auth,
                "/oauth2/auth",
                vars,
                Names { underscores: false, ignore_invalid: true },
            ))
            .unwrap();
            assert!(head.starts_with("GET /oauth2/auth HTTP/1.1\r\n"), "{head}");
            for line in [
                "host: auth.svc\r\n",
                "Cookie: _oauth2_proxy=abc\r\n",
                "X-Auth-Request-User: mallory\r\n",
                "x-original-url: https://app.example.com/a?b=c d\r\n",
                "x-original-method: POST\r\n",
                "x-sent-from: nginx-ingress-controller\r\n",
                "x-real-ip: 10.1.2.3\r\n",
                "x-forwarded-for: 10.1.2.3\r\n",
                "x-auth-request-redirect: /a?b=c d\r\n",
                "x-request-id: rid\r\n",
                "x-tenant: app.example.com\r\n",
            ] {
                assert!(head.contains(line), "{line:?} in {head}");
            }
            for absent in ["Content-Length", "X-Forwarded-Proto", "keep-alive", "x-original-uri"] {
                assert!(!head.contains(absent), "{absent} in {head}");
            }
            auth.method = Some("POST".to_owned());
            let head = String::from_utf8(request_head(
                &auth,
                "/",
                vars,
                Names { underscores: false, ignore_invalid: true },
            ))
            .unwrap();
            assert!(
                head.starts_with("POST / ")
                    && head.contains("x-original-uri: /a?b=c d\r\nx-scheme: https\r\n"),
                "{head}"
            );
        });
    }

    #[test]
    fn verdicts_follow_auth_request() {
        with_vars(|vars| {
            let mut auth = ExternalAuth::new("http://auth/").unwrap();
            auth.response_headers = vec!["x-auth-request-user".to_owned(), "x-auth-request-email".to_owned()];
            let pending = Pending { auth: &auth, prior: None };
            let ok = page(200, &[("x-auth-request-user", "alice"), ("set-cookie", "s=1")]);
            let Verdict::Allowed(granted) = decide(pending, &ok, vars) else { panic!("allowed") };
            let ops: Vec<String> = granted.upstream.iter().map(ToString::to_string).collect();
            assert_eq!(ops.len(), 2);
            assert!(ops[0].contains("alice") && ops[1].contains("x-auth-request-email"), "{ops:?}");
            assert_eq!(granted.upstream[1].action(), ingress_core::HeaderAction::Remove, "absent: removed");
            assert_eq!(granted.cookies.len(), 1);
            assert!(!granted.always);

            let denied = page(401, &[("www-authenticate", "Bearer"), ("set-cookie", "s=2")]);
            let Verdict::Refused { status, lines } = decide(pending, &denied, vars) else { panic!() };
            assert_eq!((status, lines), (401, vec![("www-authenticate".to_owned(), "Bearer".to_owned())]));
            assert!(matches!(decide(pending, &page(403, &[]), vars), Verdict::Refused { status: 403, .. }));
            assert!(matches!(decide(pending, &page(302, &[]), vars), Verdict::Refused { status: 500, .. }));
            let any = Pending { auth: &auth, prior: Some(401) };
            assert!(matches!(decide(any, &page(403, &[]), vars), Verdict::Refused { status: 401, .. }));

            auth.signin = Some(ingress_core::signin_url("https://$host/oauth2/start", "").unwrap());
            let pending = Pending { auth: &auth, prior: None };
            let Verdict::Refused { status, lines } = decide(pending, &denied, vars) else { panic!() };
            assert_eq!(status, 302);
            assert_eq!(
                lines[0].1,
                "https://app.example.com/oauth2/start?rd=https://app.example.com%2Fa%3Fb%3Dc%20d"
            );
            assert_eq!(lines[1], ("set-cookie".to_owned(), "s=2".to_owned()));
        });
    }

    #[test]
    fn answers_are_kept_as_proxy_cache_keeps_them() {
        let cache = ingress_core::AuthCache {
            key: "$remote_addr".parse().unwrap(),
            valid: ingress_core::parse_cache_duration("200 1m").unwrap(),
        };
        assert_eq!(keep_for(&page(200, &[]), &cache), Some(Duration::from_secs(60)));
        assert_eq!(keep_for(&page(401, &[]), &cache), None);
        assert_eq!(keep_for(&page(200, &[("set-cookie", "a=b")]), &cache), None);
        assert_eq!(keep_for(&page(200, &[("cache-control", "private")]), &cache), None);
        assert_eq!(
            keep_for(&page(200, &[("cache-control", "max-age=5")]), &cache),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            keep_for(&page(200, &[("x-accel-expires", "0"), ("cache-control", "max-age=5")]), &cache),
            None
        );
    }
}
