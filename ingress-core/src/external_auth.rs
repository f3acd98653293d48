//! External authentication: ingress-nginx's `auth-url` family and the ConfigMap's
//! `global-auth-*` keys, nginx's `auth_request`.
//!
//! Before a request goes upstream, the proxy asks the auth service with the request's headers
//! (no body): a `2xx` lets it through (with the headers `auth-response-headers` names copied
//! onto the upstream request), `401` and `403` are the client's answer (`401` becomes a
//! redirect to `auth-signin` when there is one), anything else is `500`. This module holds the
//! settings, checked when the Ingress is read; the proxy's `pipeline::external_auth` applies
//! them.

use std::time::Duration;

use crate::vars::{Template, UnknownVariable};

/// One external authentication: the auth service and what is sent to and taken from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAuth {
    /// `auth-url`: an `http` or `https` URL, nginx variables allowed.
    pub url: Template,
    /// The auth request's `Host`: the URL's host name without the port, as ingress-nginx
    /// sets it.
    pub host: Template,
    /// `auth-method`: the auth request's method; `None` sends `GET` (nginx's subrequest), and
    /// then `X-Original-URI` and `X-Scheme` are not sent.
    pub method: Option<String>,
    /// `auth-signin` with the redirect parameter added as ingress-nginx adds it: where a `401`
    /// sends the client (`302`).
    pub signin: Option<Template>,
    /// `auth-response-headers`: headers copied from the auth service's `2xx` onto the upstream
    /// request (a header it does not send is removed from the request).
    pub response_headers: Vec<String>,
    /// `auth-request-redirect`: `X-Auth-Request-Redirect` (default: the request target).
    pub request_redirect: Option<Template>,
    /// `auth-proxy-set-headers`: more headers of the auth request, from a ConfigMap.
    pub proxy_set_headers: Vec<(String, Template)>,
    /// `auth-cache-key` and `auth-cache-duration`: answers kept for a while.
    pub cache: Option<AuthCache>,
    /// `auth-always-set-cookie`: the auth service's `Set-Cookie` goes on every response, not
    /// only on successful ones.
    pub always_set_cookie: bool,
}

/// How long the auth service's answers are kept, by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCache {
    /// `auth-cache-key`: what tells requests apart (nginx variables).
    pub key: Template,
    /// `auth-cache-duration`: nginx's `proxy_cache_valid` entries, first match wins.
    pub valid: Vec<CacheValid>,
}

/// One `proxy_cache_valid` entry: statuses (`None`: any) and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheValid {
    /// The statuses it covers; `None` for `any`.
    pub codes: Option<Vec<u16>>,
    /// How long an answer with one of them is kept.
    pub ttl: Duration,
}

/// ingress-nginx's `auth-cache-duration` default.
pub const DEFAULT_CACHE_DURATION: &str = "200 202 401 5m";

impl AuthCache {
    /// How long an answer with `status` is kept, if at all.
    pub fn ttl(&self, status: u16) -> Option<Duration> {
        self.valid
            .iter()
            .find(|v| v.codes.as_ref().is_none_or(|codes| codes.contains(&status)))
            .map(|v| v.ttl)
            .filter(|ttl| !ttl.is_zero())
    }
}

/// An `auth-*` value that cannot be used; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAuth(pub String);

impl From<UnknownVariable> for InvalidAuth {
    fn from(e: UnknownVariable) -> Self {
        Self(e.to_string())
    }
}

/// The parts of an `http` or `https` URL, once its variables are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `https`.
    pub tls: bool,
    /// The host name or address (IPv6 without brackets).
    pub host: &'a str,
    /// The port (`80`/`443` when the URL names none).
    pub port: u16,
    /// The path and query (`/` when the URL has none).
    pub target: &'a str,
}

/// Splits an expanded URL; `None` unless it is `http` or `https` with a host, a valid port and
/// no bytes that could break a request head.
///
/// # Examples
///
/// ```
/// use ingress_core::split_url;
///
/// let u = split_url("https://auth.example.com:8443/oauth2/auth?x=1").unwrap();
/// assert_eq!((u.tls, u.host, u.port, u.target), (true, "auth.example.com", 8443, "/oauth2/auth?x=1"));
/// assert_eq!(split_url("http://[::1]").unwrap().host, "::1");
/// assert!(split_url("ftp://x/").is_none() && split_url("http:///x").is_none());
/// ```
pub fn split_url(url: &str) -> Option<UrlParts<'_>> {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let (tls, rest) = if let Some(rest) = strip_scheme(url, "https://") {
        (true, rest)
    } else {
        (false, strip_scheme(url, "http://")?)
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let target = target.split('#').next().unwrap_or("");
    // Userinfo is not sent (nginx's `proxy_pass` refuses it).
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| *p > 0)?,
        None if tls => 443,
        None => 80,
    };
    if host.is_empty() || host.contains("..") {
        return None;
    }
    let target = if target.is_empty() { "/" } else { target };
    if !target.starts_with('/') {
        return None;
    }
    Some(UrlParts { tls, host, port, target })
}

fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme).then(|| &url[scheme.len()..])
}

impl ExternalAuth {
    /// The external authentication of `auth-url` (or `global-auth-url`), with nothing else
    /// set: checked as ingress-nginx checks it (a scheme, a host, no `..` in it; Ferry also
    /// needs `http` or `https` and variables it knows).
    pub fn new(url: &str) -> Result<Self, InvalidAuth> {
        let url = url.trim();
        let expected = || InvalidAuth("expected an `http://` or `https://` URL with a host".to_owned());
        let template: Template = url.parse()?;
        // Check the shape with each variable standing for a plain word.
        let shape = url.replace('$', "v");
        split_url(&shape).ok_or_else(expected)?;
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        Ok(Self {
            url: template,
            host: host.parse()?,
            method: None,
            signin: None,
            response_headers: Vec::new(),
            request_redirect: None,
            proxy_set_headers: Vec::new(),
            cache: None,
            always_set_cookie: false,
        })
    }
}

/// `auth-method`: one of the methods ingress-nginx accepts.
pub fn valid_auth_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE")
}

/// A header name of `auth-response-headers` and `auth-proxy-set-headers`: letters, digits,
/// `-` and `_`, as ingress-nginx's `ValidHeader`.
pub fn valid_auth_header(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `auth-signin` with `param` (`auth-signin-redirect-param`, default `rd`) added as
/// ingress-nginx's `buildAuthSignURL` adds it: `?rd=` (or `&rd=` after a query) and the
/// request's URL, unless the URL already gives that parameter a value.
pub fn signin_url(url: &str, param: &str) -> Result<Template, InvalidAuth> {
    let url = url.trim();
    if split_url(&url.replace('$', "v")).is_none() {
        return Err(InvalidAuth("expected an `http://` or `https://` URL with a host".to_owned()));
    }
    let param = if param.is_empty() { "rd" } else { param };
    let query = url.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(""));
    let back = "$pass_access_scheme://$http_host$escaped_request_uri";
    let full = match query {
        None | Some("") => format!("{}?{param}={back}", url.trim_end_matches('?')),
        Some(q)
            if q.split('&')
                .any(|kv| kv.split_once('=').is_some_and(|(k, v)| k == param && !v.is_empty())) =>
        {
            url.to_owned()
        }
        Some(_) => format!("{url}&{param}={back}"),
    };
    Ok(full.parse()?)
}

/// `auth-cache-duration`: comma-separated `proxy_cache_valid` entries (`[code …] time`),
/// checked as ingress-nginx checks them; empty is [`DEFAULT_CACHE_DURATION`].
pub fn parse_cache_duration(value: &str) -> Result<Vec<CacheValid>, InvalidAuth> {
    let value = if value.trim().is_empty() { DEFAULT_CACHE_DURATION } else { value };
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || {
            InvalidAuth(format!("invalid cache duration `{entry}`: expected `[code …] time` (200 202 5m)"))
        };
        let words: Vec<&str> = entry.split(' ').filter(|w| !w.is_empty()).collect();
        let (time, codes) = words.split_last().ok_or_else(bad)?;
        let ttl = nginx_time(time).ok_or_else(bad)?;
        let codes = if codes.is_empty() {
            Some(vec![200, 301, 302])
        } else if codes == ["any"] {
            None
        } else {
            let parsed: Option<Vec<u16>> = codes
                .iter()
                .map(|c| c.parse::<u16>().ok().filter(|n| (100..600).contains(n) && c.len() == 3))
                .collect();
            Some(parsed.ok_or_else(bad)?)
        };
        out.push(CacheValid { codes, ttl });
    }
    Ok(out)
}

/// One nginx time with its unit (`ms`, `s`, `m`, `h`, `d`, `w`, `M` = 30 days, `y` = 365
/// days), as ingress-nginx's cache-duration check takes it.
fn nginx_time(word: &str) -> Option<Duration> {
    let split = word.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = word.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = |k: u64| n.checked_mul(k).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        "w" => secs(7 * 86_400),
        "M" => secs(30 * 86_400),
        "y" => secs(365 * 86_400),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn auth_urls_are_checked_and_their_host_taken() {
        let a = ExternalAuth::new("https://$host/oauth2/auth").unwrap();
        assert_eq!(a.host.as_str(), "$host");
        let a = ExternalAuth::new("http://oauth2-proxy.auth.svc:4180/oauth2/auth?x=$arg_y").unwrap();
        assert_eq!(a.host.as_str(), "oauth2-proxy.auth.svc");
        assert_eq!(ExternalAuth::new("http://[::1]:9/a").unwrap().host.as_str(), "::1");
        for bad in
            ["auth.example.com/auth", "ftp://x/", "http://", "http://a..b/", "http://$nope/", "http://x:0/"]
        {
            assert!(ExternalAuth::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signin_gets_the_redirect_parameter_as_ingress_nginx_adds_it() {
        let back = "$pass_access_scheme://$http_host$escaped_request_uri";
        let s = |u: &str, p: &str| signin_url(u, p).unwrap().as_str().to_owned();
        assert_eq!(s("https://auth/start", ""), format!("https://auth/start?rd={back}"));
        assert_eq!(s("https://auth/start?a=1", "next"), format!("https://auth/start?a=1&next={back}"));
        assert_eq!(s("https://auth/start?rd=/home", ""), "https://auth/start?rd=/home");
        assert_eq!(s("https://auth/start?rd=", ""), format!("https://auth/start?rd=&rd={back}"));
    }

    #[test]
    fn cache_durations_follow_proxy_cache_valid() {
        let c = AuthCache { key: "$remote_addr".parse().unwrap(), valid: parse_cache_duration("").unwrap() };
        assert_eq!(c.ttl(200), Some(Duration::from_secs(300)));
        assert_eq!(c.ttl(401), Some(Duration::from_secs(300)));
        assert_eq!(c.ttl(403), None);
        let v = parse_cache_duration("200 1m, any 10s, 5M").unwrap();
        assert_eq!(v[0].codes, Some(vec![200]));
        assert_eq!((v[1].codes.clone(), v[1].ttl), (None, Duration::from_secs(10)));
        assert_eq!(v[2].codes, Some(vec![200, 301, 302]));
        for bad in ["200", "5 minutes", "2000 5m", "200 5x"] {
            assert!(parse_cache_duration(bad).is_err(), "{bad}");
        }
    }
}
