//! External authentication: `auth-url` and its modifiers, `satisfy`, `enable-global-auth`.
//!
//! As ingress-nginx's `authreq` parser: without `auth-url` the modifiers do nothing. Where
//! ingress-nginx skips the whole of external authentication over a bad value (a bad
//! `auth-url`, `auth-cache-duration`, `auth-request-redirect` or `auth-always-set-cookie`: the
//! location is then served without it) Ferry denies the Ingress (`503`) instead, as it does
//! where ingress-nginx denies the location itself (a bad `auth-method`,
//! `auth-response-headers` or `auth-proxy-set-headers`). A bad `auth-signin`,
//! `auth-signin-redirect-param` or `auth-cache-key` is dropped with a warning there and here:
//! clients get the `401` instead of the redirect, or no cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use ingress_core::{
    AuthCache, ExternalAuth, RoutePolicy, Template, parse_cache_duration, signin_url, valid_auth_header,
    valid_auth_method,
};

use super::{ConfigMapLookup, Read};

/// What each annotation does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "auth-url" => {
            "each request is first sent (headers, no body) to this URL (`http`/`https`, nginx \
             variables such as `$host`): `2xx` lets it through, `401`/`403` are the answer, \
             anything else `500`; a bad value denies the Ingress (503), where ingress-nginx \
             would drop the authentication"
        }
        "auth-method" => "the auth request's method (default `GET`)",
        "auth-signin" => "where a `401` redirects (`302`), with `rd=` the original URL added",
        "auth-signin-redirect-param" => "the name of the sign-in URL's redirect parameter (default `rd`)",
        "auth-response-headers" => {
            "headers copied from the auth service's answer onto the upstream request (removed when \
             it sends none)"
        }
        "auth-request-redirect" => "the `X-Auth-Request-Redirect` of the auth request",
        "auth-proxy-set-headers" => {
            "a ConfigMap (same namespace, watched by name) of more headers for the auth request"
        }
        "auth-cache-key" => "answers are kept per this key (nginx variables)",
        "auth-cache-duration" => {
            "how long, per status (`200 202 401 5m`); an answer with `Set-Cookie` or \
             `Cache-Control: no-store`/`no-cache`/`private` is not kept, `max-age` wins"
        }
        "auth-always-set-cookie" => "the auth service's `Set-Cookie` goes on every response, errors too",
        "satisfy" => "`any`: one passing check (source ranges, basic or external auth) is enough",
        "enable-global-auth" => "`false`: the ConfigMap's `global-auth-url` does not apply",
        _ => return None,
    })
}

/// The annotations that modify `auth-url`.
const MODIFIERS: [&str; 9] = [
    "auth-method",
    "auth-signin",
    "auth-signin-redirect-param",
    "auth-response-headers",
    "auth-request-redirect",
    "auth-proxy-set-headers",
    "auth-cache-key",
    "auth-cache-duration",
    "auth-always-set-cookie",
];

/// What the family read: the outcomes, whether a rejected one denies the Ingress, and the
/// ConfigMap named (`auth-proxy-set-headers`, to watch).
pub(super) struct Reading<'a> {
    pub(super) outcomes: BTreeMap<&'a str, Read>,
    pub(super) denied: Vec<&'a str>,
    pub(super) config_map: Option<crate::objects::Key>,
}

/// Reads the family into `policy`.
pub(super) fn read<'a>(
    ours: &BTreeMap<&'a str, &str>,
    namespace: &str,
    config_map: &ConfigMapLookup<'_>,
    policy: &mut RoutePolicy,
) -> Reading<'a> {
    let mut reading = Reading { outcomes: BTreeMap::new(), denied: Vec::new(), config_map: None };
    if let Some((&key, &value)) = ours.get_key_value("satisfy") {
        let read = match value.trim() {
            "any" => {
                policy.satisfy_any = true;
                Read::Applied("one passing access check lets a request through".to_owned())
            }
            "all" => Read::Applied("every access check must pass (the default)".to_owned()),
            _ => Read::Rejected("expected `any` or `all`".to_owned()),
        };
        reading.outcomes.insert(key, read);
    }
    if let Some((&key, &value)) = ours.get_key_value("enable-global-auth") {
        let read = match value.trim() {
            "false" => {
                policy.no_global_auth = true;
                Read::Applied("the global external authentication does not apply".to_owned())
            }
            "true" => Read::Applied("the global external authentication applies (the default)".to_owned()),
            _ => Read::Rejected("expected `true` or `false`".to_owned()),
        };
        reading.outcomes.insert(key, read);
    }
    let Some((&url_key, &url)) = ours.get_key_value("auth-url") else {
        for name in MODIFIERS {
            if let Some((&key, _)) = ours.get_key_value(name) {
                reading.outcomes.insert(key, Read::Applied("no effect without `auth-url`".to_owned()));
            }
        }
        return reading;
    };
    let named = ours.get("auth-proxy-set-headers").map(|v| reference(v, namespace));
    if let Some(Ok(pair)) = &named {
        reading.config_map = Some(pair.clone());
    }
    let mut warnings = BTreeMap::new();
    match external(ours, url, namespace, config_map, &mut warnings) {
        Ok(auth) => {
            let what = format!("external authentication by {}", auth.url);
            for key in std::iter::once(url_key)
                .chain(MODIFIERS.iter().filter_map(|n| ours.get_key_value(n).map(|(k, _)| *k)))
            {
                let read = match warnings.remove(key) {
                    Some(why) => Read::Rejected(why),
                    None => Read::Applied(what.clone()),
                };
                reading.outcomes.insert(key, read);
            }
            policy.external_auth = Some(Arc::new(auth));
        }
        Err((culprit, why)) => {
            for key in std::iter::once(url_key)
                .chain(MODIFIERS.iter().filter_map(|n| ours.get_key_value(n).map(|(k, _)| *k)))
            {
                let read = if key == culprit {
                    Read::Rejected(why.clone())
                } else {
                    Read::Rejected(format!("external authentication not applied: `{culprit}`: {why}"))
                };
                reading.outcomes.insert(key, read);
                reading.denied.push(key);
            }
        }
    }
    reading
}

/// The external authentication the annotations ask for, or the annotation at fault and why;
/// `warnings` gets the modifiers dropped as ingress-nginx drops them.
fn external(
    ours: &BTreeMap<&str, &str>,
    url: &str,
    namespace: &str,
    config_map: &ConfigMapLookup<'_>,
    warnings: &mut BTreeMap<&'static str, String>,
) -> Result<ExternalAuth, (&'static str, String)> {
    let mut auth = ExternalAuth::new(url).map_err(|e| ("auth-url", e.0))?;
    if let Some(method) = ours.get("auth-method").map(|m| m.trim()).filter(|m| !m.is_empty()) {
        if !valid_auth_method(method) {
            return Err(("auth-method", "expected an HTTP method in capitals (GET, POST…)".to_owned()));
        }
        auth.method = Some(method.to_owned());
    }
    let param = ours.get("auth-signin-redirect-param").map_or("", |p| p.trim());
    let param = if param.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
        param
    } else {
        warnings.insert("auth-signin-redirect-param", "expected a URL parameter name; `rd` stays".to_owned());
        ""
    };
    if let Some(signin) = ours.get("auth-signin").filter(|s| !s.trim().is_empty()) {
        match signin_url(signin, param) {
            Ok(t) => auth.signin = Some(t),
            Err(e) => {
                warnings.insert("auth-signin", format!("{e}; a 401 is answered, not redirected"));
            }
        }
    }
    if let Some(list) = ours.get("auth-response-headers") {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !valid_auth_header(name) {
                return Err(("auth-response-headers", format!("`{name}` is not a header name")));
            }
            auth.response_headers.push(name.to_ascii_lowercase());
        }
    }
    if let Some(value) = ours.get("auth-request-redirect").filter(|v| !v.trim().is_empty()) {
        let value = value.trim();
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/:,?&=$".contains(&b)) {
            return Err(("auth-request-redirect", "expected a URL".to_owned()));
        }
        auth.request_redirect = Some(value.parse().map_err(|e| ("auth-request-redirect", format!("{e}")))?);
    }
    if let Some(value) = ours.get("auth-proxy-set-headers").filter(|v| !v.trim().is_empty()) {
        let (ns, name) = reference(value, namespace).map_err(|e| ("auth-proxy-set-headers", e))?;
        let data = config_map(&ns, &name)
            .ok_or_else(|| ("auth-proxy-set-headers", format!("ConfigMap {ns}/{name} not found")))?;
        for (header, value) in data {
            if !valid_auth_header(&header) {
                return Err((
                    "auth-proxy-set-headers",
                    format!("`{header}` in {ns}/{name} is not a header name"),
                ));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(("auth-proxy-set-headers", format!("the value of `{header}` breaks the header")));
            }
            let template: Template =
                value.parse().map_err(|e| ("auth-proxy-set-headers", format!("`{header}`: {e}")))?;
            auth.proxy_set_headers.push((header.to_ascii_lowercase(), template));
        }
    }
    if let Some(value) = ours.get("auth-always-set-cookie") {
        auth.always_set_cookie = match value.trim() {
            "true" => true,
            "false" => false,
            _ => return Err(("auth-always-set-cookie", "expected `true` or `false`".to_owned())),
        };
    }
    let duration = ours.get("auth-cache-duration").copied().unwrap_or("");
    let valid = parse_cache_duration(duration).map_err(|e| ("auth-cache-duration", e.0))?;
    if let Some(key) = ours.get("auth-cache-key").filter(|k| !k.trim().is_empty()) {
        match key.trim().parse::<Template>() {
            Ok(key) if key.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"-_${}".contains(&b)) => {
                auth.cache = Some(AuthCache { key, valid });
            }
            Ok(_) => {
                warnings
                    .insert("auth-cache-key", "expected nginx variables and letters; not cached".to_owned());
            }
            Err(e) => {
                warnings.insert("auth-cache-key", format!("{e}; not cached"));
            }
        }
    }
    Ok(auth)
}

/// `name` or `namespace/name`, in the Ingress's own namespace (ingress-nginx refuses others by
/// default).
fn reference(value: &str, namespace: &str) -> Result<crate::objects::Key, String> {
    let (ns, name) = value.trim().split_once('/').unwrap_or((namespace, value.trim()));
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    if !ok(ns) || !ok(name) {
        return Err("expected a ConfigMap as `name` or `namespace/name`".to_owned());
    }
    if ns != namespace {
        return Err(
            "a ConfigMap of another namespace is refused (as ingress-nginx refuses it by default)".to_owned()
        );
    }
    Ok((ns.into(), name.into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn maps(ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
        match (ns, name) {
            ("app", "auth-headers") => Some(BTreeMap::from([("X-Tenant".to_owned(), "$host".to_owned())])),
            ("app", "bad-headers") => Some(BTreeMap::from([("X Tenant".to_owned(), "a".to_owned())])),
            _ => None,
        }
    }

    fn run(pairs: &[(&'static str, &str)]) -> (RoutePolicy, Reading<'static>) {
        let ours: BTreeMap<&'static str, &str> = pairs.iter().copied().collect();
        let mut policy = RoutePolicy::default();
        let reading = read(&ours, "app", &maps, &mut policy);
        (policy, reading)
    }

    #[test]
    fn the_oauth2_proxy_setup_is_read() {
        let (p, r) = run(&[
            ("auth-url", "https://$host/oauth2/auth"),
            ("auth-signin", "https://$host/oauth2/start?rd=$escaped_request_uri"),
            ("auth-response-headers", "X-Auth-Request-User, X-Auth-Request-Email"),
            ("auth-proxy-set-headers", "auth-headers"),
            ("auth-cache-key", "$cookie__oauth2_proxy"),
            ("auth-cache-duration", "200 202 10m, 401 30s"),
            ("auth-method", "POST"),
            ("satisfy", "any"),
        ]);
        let a = p.external_auth.unwrap();
        assert_eq!(a.signin.as_ref().unwrap().as_str(), "https://$host/oauth2/start?rd=$escaped_request_uri");
        assert_eq!(a.response_headers, ["x-auth-request-user", "x-auth-request-email"]);
        assert_eq!(a.proxy_set_headers[0].0, "x-tenant");
        assert_eq!(a.method.as_deref(), Some("POST"));
        assert_eq!(a.cache.as_ref().unwrap().valid.len(), 2);
        assert!(p.satisfy_any);
        assert!(r.outcomes.values().all(|o| matches!(o, Read::Applied(_))), "{:?}", r.outcomes);
        assert!(r.denied.is_empty());
        assert_eq!(r.config_map, Some(("app".into(), "auth-headers".into())));
    }

    #[test]
    fn what_ingress_nginx_would_serve_without_auth_denies_the_ingress() {
        for (bad, culprit) in [
            (("auth-url", "auth.example.com/check"), "auth-url"),
            (("auth-url", "http://$upstream_addr/"), "auth-url"),
            (("auth-method", "get"), "auth-method"),
            (("auth-response-headers", "X-User, Bad Header"), "auth-response-headers"),
            (("auth-proxy-set-headers", "missing"), "auth-proxy-set-headers"),
            (("auth-proxy-set-headers", "bad-headers"), "auth-proxy-set-headers"),
            (("auth-proxy-set-headers", "other/auth-headers"), "auth-proxy-set-headers"),
            (("auth-cache-duration", "5 minutes"), "auth-cache-duration"),
            (("auth-always-set-cookie", "yes"), "auth-always-set-cookie"),
        ] {
            let mut pairs = vec![("auth-url", "http://auth.example.com/check")];
            pairs.retain(|(k, _)| *k != bad.0);
            pairs.push(bad);
            let (p, r) = run(&pairs);
            assert!(p.external_auth.is_none(), "{bad:?}");
            assert!(r.denied.contains(&culprit) && r.denied.contains(&"auth-url"), "{bad:?}: {:?}", r.denied);
        }
    }

    #[test]
    fn what_ingress_nginx_drops_is_dropped() {
        let (p, r) = run(&[
            ("auth-url", "http://auth/check"),
            ("auth-signin", "/relative"),
            ("auth-cache-key", "$nope"),
            ("satisfy", "some"),
        ]);
        let a = p.external_auth.as_ref().unwrap();
        assert!(a.signin.is_none() && a.cache.is_none());
        assert!(r.denied.is_empty());
        for key in ["auth-signin", "auth-cache-key", "satisfy"] {
            assert!(matches!(r.outcomes[key], Read::Rejected(_)), "{key}");
        }
        assert!(!p.satisfy_any);
        let (p, r) = run(&[("auth-method", "POST")]);
        assert!(p.external_auth.is_none() && matches!(r.outcomes["auth-method"], Read::Applied(_)));
    }
}
