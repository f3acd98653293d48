//! The ConfigMap's global external authentication: `global-auth-url` and its modifiers,
//! `no-auth-locations`.
//!
//! As ingress-nginx's `ReadConfig` reads them: the modifiers only matter with
//! `global-auth-url`; a bad method, sign-in URL, redirect parameter, cache key or duration is
//! reported and left at its default. Where ingress-nginx would serve every route without the
//! authentication (a `global-auth-url` it cannot parse) or drop a header name it was asked to
//! copy (`global-auth-response-headers`), Ferry closes every route instead (`503`, fail
//! closed).

use std::sync::Arc;

use ingress_core::{
    AuthCache, ExternalAuth, Template, parse_cache_duration, signin_url, valid_auth_header, valid_auth_method,
};

/// The keys, gathered before they make one [`ExternalAuth`].
#[derive(Debug, Default)]
pub(super) struct GlobalAuthKeys<'a> {
    pub(super) url: Option<&'a str>,
    pub(super) method: Option<&'a str>,
    pub(super) signin: Option<&'a str>,
    pub(super) signin_redirect_param: Option<&'a str>,
    pub(super) response_headers: Option<&'a str>,
    pub(super) request_redirect: Option<&'a str>,
    pub(super) cache_key: Option<&'a str>,
    pub(super) cache_duration: Option<&'a str>,
    pub(super) always_set_cookie: Option<&'a str>,
}

impl<'a> GlobalAuthKeys<'a> {
    /// Takes `key` if it is one of these; whether it was.
    pub(super) fn take(&mut self, key: &str, value: &'a str) -> bool {
        let slot = match key {
            "global-auth-url" => &mut self.url,
            "global-auth-method" => &mut self.method,
            "global-auth-signin" => &mut self.signin,
            "global-auth-signin-redirect-param" => &mut self.signin_redirect_param,
            "global-auth-response-headers" => &mut self.response_headers,
            "global-auth-request-redirect" => &mut self.request_redirect,
            "global-auth-cache-key" => &mut self.cache_key,
            "global-auth-cache-duration" => &mut self.cache_duration,
            "global-auth-always-set-cookie" => &mut self.always_set_cookie,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

/// What the keys amount to: the authentication (if `global-auth-url` is set and usable), the
/// keys reported (key, reason), and whether every route must close.
pub(super) struct GlobalAuth {
    pub(super) auth: Option<Arc<ExternalAuth>>,
    pub(super) reported: Vec<(&'static str, String)>,
    pub(super) close: bool,
}

/// Builds the global authentication of `keys`.
pub(super) fn build(keys: &GlobalAuthKeys<'_>) -> GlobalAuth {
    let mut out = GlobalAuth { auth: None, reported: Vec::new(), close: false };
    let Some(url) = keys.url.filter(|u| !u.is_empty()) else { return out };
    let mut auth = match ExternalAuth::new(url) {
        Ok(auth) => auth,
        Err(e) => {
            out.reported.push((
                "global-auth-url",
                format!("{e}: every route answers 503 until it is fixed (fail closed)"),
            ));
            out.close = true;
            return out;
        }
    };
    if let Some(method) = keys.method.filter(|m| !m.is_empty()) {
        if valid_auth_method(method) {
            auth.method = Some(method.to_owned());
        } else {
            out.reported
                .push(("global-auth-method", "expected an HTTP method in capitals; GET stays".to_owned()));
        }
    }
    let param = keys.signin_redirect_param.unwrap_or("");
    let param = if param.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
        param
    } else {
        out.reported.push((
            "global-auth-signin-redirect-param",
            "expected a URL parameter name; `rd` stays".to_owned(),
        ));
        ""
    };
    if let Some(signin) = keys.signin.filter(|s| !s.is_empty()) {
        match signin_url(signin, param) {
            Ok(t) => auth.signin = Some(t),
            Err(e) => {
                out.reported.push(("global-auth-signin", format!("{e}; a 401 is answered, not redirected")));
            }
        }
    }
    for name in keys.response_headers.unwrap_or("").split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if valid_auth_header(name) {
            auth.response_headers.push(name.to_ascii_lowercase());
        } else {
            // ingress-nginx drops the name, and a client could then send it itself.
            out.reported.push((
                "global-auth-response-headers",
                format!(
                    "`{name}` is not a header name: every route answers 503 until it is fixed (fail closed)"
                ),
            ));
            out.close = true;
        }
    }
    if let Some(value) = keys.request_redirect.filter(|v| !v.is_empty()) {
        match value.parse::<Template>() {
            Ok(t) if !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) => {
                auth.request_redirect = Some(t);
            }
            Ok(_) => out.reported.push((
                "global-auth-request-redirect",
                "breaks the header; the request target stays".to_owned(),
            )),
            Err(e) => {
                out.reported.push(("global-auth-request-redirect", format!("{e}; the request target stays")));
            }
        }
    }
    if let Some(value) = keys.always_set_cookie {
        match value {
            "true" => auth.always_set_cookie = true,
            "false" => {}
            _ => out.reported.push((
                "global-auth-always-set-cookie",
                "expected `true` or `false`; false stays".to_owned(),
            )),
        }
    }
    let valid = match parse_cache_duration(keys.cache_duration.unwrap_or("")) {
        Ok(valid) => valid,
        Err(e) => {
            out.reported.push(("global-auth-cache-duration", format!("{}; the default stays", e.0)));
            parse_cache_duration("").unwrap_or_default()
        }
    };
    if let Some(key) = keys.cache_key.filter(|k| !k.is_empty()) {
        match key.parse::<Template>() {
            Ok(key) => auth.cache = Some(AuthCache { key, valid }),
            Err(e) => out.reported.push(("global-auth-cache-key", format!("{e}; not cached"))),
        }
    }
    out.auth = Some(Arc::new(auth));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys<'a>(pairs: &[(&str, &'a str)]) -> GlobalAuthKeys<'a> {
        let mut keys = GlobalAuthKeys::default();
        for (k, v) in pairs {
            assert!(keys.take(k, v), "{k}");
        }
        keys
    }

    #[test]
    fn global_auth_is_built_as_ingress_nginx_reads_it() {
        let g = build(&keys(&[
            ("global-auth-url", "http://oauth2-proxy.auth.svc/oauth2/auth"),
            ("global-auth-signin", "https://auth.example.com/oauth2/start"),
            ("global-auth-response-headers", "X-Auth-Request-User"),
            ("global-auth-method", "get"),
            ("global-auth-cache-key", "$cookie__oauth2_proxy"),
        ]));
        let auth = g.auth.unwrap();
        assert!(!g.close);
        assert!(auth.method.is_none(), "a bad method is reported and GET stays");
        assert_eq!(g.reported.len(), 1);
        assert!(auth.signin.as_ref().unwrap().as_str().contains("?rd=$pass_access_scheme"));
        assert!(auth.cache.is_some());
        assert!(build(&keys(&[("global-auth-method", "POST")])).auth.is_none(), "nothing without a URL");
    }

    #[test]
    fn what_ingress_nginx_would_leave_open_closes() {
        for pairs in [
            &[("global-auth-url", "oauth2-proxy/auth")][..],
            &[("global-auth-url", "http://auth/"), ("global-auth-response-headers", "X-User, Bad Name")],
        ] {
            let g = build(&keys(pairs));
            assert!(g.close, "{pairs:?}");
        }
    }
}
