//! The redirects the proxy answers itself, in ingress-nginx's order: `app-root` (a server-level
//! `return`), `permanent-redirect`/`temporal-redirect` (a location `return`), then the
//! redirect to HTTPS (its Lua rewrite phase, which comes after both). The pipeline answers a
//! CORS preflight between the first two, where ingress-nginx's location `if` does.

use ingress_core::{MatchedBy, Route};

use super::Facts;
use crate::config::HttpsSettings;

/// The `app-root` redirect of a request for `/` (routed on `path`): ingress-nginx's
/// server-level `return 302 $scheme://$http_host<app-root>` (the connection's scheme).
pub(crate) fn app_root(route: &Route<'_>, facts: &Facts<'_>, path: &str) -> Option<(u16, String)> {
    let root = route.policy.app_root.as_ref().filter(|_| path == "/")?;
    let scheme = if facts.tls { "https" } else { "http" };
    Some((302, format!("{scheme}://{}{root}", facts.host)))
}

/// The redirect `route` gives the request of `facts`, if any: a fixed redirect
/// (`permanent-redirect`, `temporal-redirect`), else the redirect to HTTPS; its status and
/// `Location`.
pub(crate) fn redirect(route: &Route<'_>, https: &HttpsSettings, facts: &Facts<'_>) -> Option<(u16, String)> {
    let policy = route.policy;
    if let Some(r) = &policy.redirect {
        return Some((r.code(), r.location().to_owned()));
    }
    if facts.scheme != "http" {
        return None;
    }
    let location_path = match route.matched_by {
        MatchedBy::Path { path, .. } => path,
        MatchedBy::IngressDefault { .. } | MatchedBy::ControllerDefault => "/",
    };
    if https.no_redirect_locations.iter().any(|exempt| location_path.starts_with(exempt.as_str())) {
        return None;
    }
    let force = policy.force_ssl_redirect.unwrap_or(https.force_ssl_redirect);
    let ssl = policy.ssl_redirect.unwrap_or(https.ssl_redirect);
    let wanted = force || (ssl && route.host_tls);
    if !wanted {
        return None;
    }
    // ingress-nginx drops one trailing `/` of the whole target (query included) unless told
    // not to, and names the host without its port.
    let mut uri = facts.target;
    if !policy.preserve_trailing_slash {
        uri = uri.strip_suffix('/').unwrap_or(uri);
    }
    let host = without_port(facts.forwarded_host);
    let location = if policy.use_port_in_redirects {
        format!("https://{host}:{}{uri}", https.https_port)
    } else {
        format!("https://{host}{uri}")
    };
    Some((https.redirect_code, location))
}

/// The `Location` of a `from-to-www-redirect` to host `to`, as ingress-nginx's
/// `ngx_srv_redirect.lua` writes it: the scheme and port the client used (always named, even
/// the default one), and the request target without one trailing `/`.
pub(crate) fn www(to: &str, facts: &Facts<'_>) -> String {
    let target = facts.target.strip_suffix('/').unwrap_or(facts.target);
    format!("{}://{to}:{}{target}", facts.scheme, facts.port)
}

/// `host[:port]` or `[v6]:port` without the port.
fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ingress_core::{
        BackendRef, EndpointStore, HostRule, Ingress, Origin, PathRule, Redirect, RoutePolicy, RouteTable,
        TableBuilder,
    };

    use super::*;

    /// `secure.test` from an Ingress with a TLS section, `plain.test` from one without; both
    /// with `policy`.
    fn table(policy: RoutePolicy) -> RouteTable {
        let web = BackendRef::new("ns", "web", 80);
        let secure = Ingress::new(Origin::new("ns", "secure"))
            .rule(
                HostRule::host("secure.test")
                    .path(PathRule::prefix("/", web.clone()))
                    .path(PathRule::prefix("/.well-known/acme-challenge", web.clone())),
            )
            .with_tls_section()
            .policy(policy.clone());
        let plain = Ingress::new(Origin::new("ns", "plain"))
            .rule(HostRule::host("plain.test").path(PathRule::prefix("/", web)))
            .policy(policy);
        let mut b = TableBuilder::new();
        b.ingress(secure).ingress(plain);
        b.build(&mut EndpointStore::new()).table
    }

    fn facts<'a>(host: &'a str, target: &'a str, scheme: &'a str) -> Facts<'a> {
        Facts {
            host,
            target,
            length: None,
            tls: scheme == "https",
            scheme,
            forwarded_host: host,
            port: if scheme == "https" { "443" } else { "80" },
            method: "GET",
            origin: None,
            client: None,
            authorization: None,
            client_cert: None,
        }
    }

    fn ask(
        policy: RoutePolicy,
        https: &HttpsSettings,
        host: &str,
        target: &str,
        scheme: &str,
    ) -> Option<(u16, String)> {
        let t = table(policy);
        let f = facts(host, target, scheme);
        let path = ingress_core::normalize_path(target).unwrap();
        let route = t.lookup(host, &path).unwrap();
        app_root(&route, &f, &path).or_else(|| redirect(&route, https, &f))
    }

    #[test]
    fn plain_http_to_a_tls_host_is_redirected_as_ingress_nginx_does() {
        let https = HttpsSettings::default();
        let none = RoutePolicy::default();
        assert_eq!(
            ask(none.clone(), &https, "secure.test:8080", "/a/b/?x=1", "http"),
            Some((308, "https://secure.test/a/b/?x=1".into()))
        );
        assert_eq!(
            ask(none.clone(), &https, "secure.test", "/a/", "http"),
            Some((308, "https://secure.test/a".into()))
        );
        assert_eq!(
            ask(none.clone(), &https, "secure.test", "/", "http"),
            Some((308, "https://secure.test".into()))
        );
        assert_eq!(ask(none.clone(), &https, "secure.test", "/a", "https"), None, "already HTTPS");
        assert_eq!(ask(none.clone(), &https, "plain.test", "/a", "http"), None, "no TLS for this host");
        assert_eq!(
            ask(none, &https, "secure.test", "/.well-known/acme-challenge/tok", "http"),
            None,
            "certificate challenges stay on HTTP"
        );
        let keep = RoutePolicy {
            preserve_trailing_slash: true,
            use_port_in_redirects: true,
            ..RoutePolicy::default()
        };
        let https8443 = HttpsSettings { redirect_code: 301, https_port: 8443, ..HttpsSettings::default() };
        assert_eq!(
            ask(keep, &https8443, "secure.test", "/a/", "http"),
            Some((301, "https://secure.test:8443/a/".into()))
        );
        let off = RoutePolicy { ssl_redirect: Some(false), ..RoutePolicy::default() };
        assert_eq!(ask(off, &https, "secure.test", "/a", "http"), None);
        let force = RoutePolicy { force_ssl_redirect: Some(true), ..RoutePolicy::default() };
        assert_eq!(
            ask(force, &https, "plain.test", "/a", "http"),
            Some((308, "https://plain.test/a".into()))
        );
    }

    #[test]
    fn app_root_then_fixed_redirects_come_first() {
        let https = HttpsSettings::default();
        let root = RoutePolicy { app_root: Some("/app1".into()), ..RoutePolicy::default() };
        assert_eq!(
            ask(root.clone(), &https, "plain.test:81", "/", "http"),
            Some((302, "http://plain.test:81/app1".into()))
        );
        assert_eq!(ask(root.clone(), &https, "plain.test", "/x", "http"), None);
        assert_eq!(
            ask(root, &https, "secure.test", "/", "https"),
            Some((302, "https://secure.test/app1".into()))
        );
        let moved = RoutePolicy {
            redirect: Some(Redirect::new(301, "https://new.test/").unwrap()),
            ..RoutePolicy::default()
        };
        assert_eq!(ask(moved, &https, "secure.test", "/a", "http"), Some((301, "https://new.test/".into())));
    }

    #[test]
    fn ports_are_dropped_from_the_redirect_host() {
        assert_eq!(without_port("a.test:80"), "a.test");
        assert_eq!(without_port("[2001:db8::1]:80"), "[2001:db8::1]");
        assert_eq!(without_port("a.test"), "a.test");
    }
}
