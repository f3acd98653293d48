//! Every annotation ingress-nginx documents, and what Ferry does with it.
//!
//! One table, read by the parser ([`super::read`]) and by the documentation
//! (`docs/annotations.md` is generated from it and checked by a test), so the two cannot
//! drift. Names are without the prefix (`--annotations-prefix`, default
//! `nginx.ingress.kubernetes.io`); the groups are ingress-nginx's own.

/// What Ferry does with a known annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Read and applied (by one of the family modules of [`super`]).
    Applied,
    /// Known to ingress-nginx, not applied here, for this reason; the route is served as if
    /// the annotation were absent.
    Ignored(&'static str),
    /// An access restriction Ferry does not apply yet, for this reason: the Ingress is closed
    /// (its paths answer `503`) rather than served more openly than ingress-nginx would.
    Restricts(&'static str),
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// The name without the prefix.
    pub(crate) name: &'static str,
    /// ingress-nginx's group (the package that parses it there).
    pub(crate) group: &'static str,
    pub(crate) support: Support,
}

const fn known(name: &'static str, group: &'static str, support: Support) -> Known {
    Known { name, group, support }
}

const SNIPPET: &str =
    "configuration snippets are never supported: Ferry generates and runs no configuration text";
const AUTH_KEEPALIVE: &str = "Ferry opens a connection per auth request (nginx's default); keep-alive to the auth service is not supported yet";
const LIMITS: &str = "response bandwidth limits are not supported yet";
const CLIENT_CIPHERS: &str =
    "not supported yet: the ciphers offered to clients are Ferry's own, the same for every host";
const MODSECURITY: &str =
    "ModSecurity is not supported (ingress-nginx's default mode only detects, it does not block)";
const TRACING: &str = "OpenTelemetry tracing is not supported yet";
const MIRROR: &str = "request mirroring is not supported yet";
const FASTCGI: &str = "FastCGI upstreams are not supported";
const PUSH: &str = "HTTP/2 server push is obsolete (browsers and nginx 1.25 removed it)";
const BUFFERS: &str = "Ferry streams responses without nginx's buffers; there is nothing to size";
const REWRITE_LOG: &str = "nginx's rewrite debug log has no counterpart";
const CONNECTION: &str = "Ferry manages the upstream `Connection` header itself (keep-alive)";
const NOT_YET: &str = "not supported yet";

use Support::{Applied, Ignored, Restricts};

/// Every annotation, sorted by name.
pub(crate) const KNOWN: &[Known] = &[
    known("affinity", "affinity", Applied),
    known("affinity-canary-behavior", "affinity", Applied),
    known("affinity-mode", "affinity", Applied),
    known("allowlist-source-range", "acl", Applied),
    known("app-root", "rewrite", Applied),
    known("auth-always-set-cookie", "authentication", Applied),
    known("auth-cache-duration", "authentication", Applied),
    known("auth-cache-key", "authentication", Applied),
    known("auth-keepalive", "authentication", Ignored(AUTH_KEEPALIVE)),
    known("auth-keepalive-requests", "authentication", Ignored(AUTH_KEEPALIVE)),
    known("auth-keepalive-share-vars", "authentication", Ignored(AUTH_KEEPALIVE)),
    known("auth-keepalive-timeout", "authentication", Ignored(AUTH_KEEPALIVE)),
    known("auth-method", "authentication", Applied),
    known("auth-proxy-set-headers", "authentication", Applied),
    known("auth-realm", "authentication", Applied),
    known("auth-request-redirect", "authentication", Applied),
    known("auth-response-headers", "authentication", Applied),
    known("auth-secret", "authentication", Applied),
    known("auth-secret-type", "authentication", Applied),
    known("auth-signin", "authentication", Applied),
    known("auth-signin-redirect-param", "authentication", Applied),
    known("auth-snippet", "authentication", Ignored(SNIPPET)),
    known("auth-tls-error-page", "authentication", Applied),
    known("auth-tls-match-cn", "authentication", Applied),
    known("auth-tls-pass-certificate-to-upstream", "authentication", Applied),
    known("auth-tls-secret", "authentication", Applied),
    known("auth-tls-verify-client", "authentication", Applied),
    known("auth-tls-verify-depth", "authentication", Applied),
    known("auth-type", "authentication", Applied),
    known("auth-url", "authentication", Applied),
    known("backend-protocol", "backend", Applied),
    known("canary", "canary", Applied),
    known("canary-by-cookie", "canary", Applied),
    known("canary-by-header", "canary", Applied),
    known("canary-by-header-pattern", "canary", Applied),
    known("canary-by-header-value", "canary", Applied),
    known("canary-weight", "canary", Applied),
    known("canary-weight-total", "canary", Applied),
    known("client-body-buffer-size", "backend", Applied),
    known("configuration-snippet", "snippets", Ignored(SNIPPET)),
    known("connection-proxy-header", "backend", Ignored(CONNECTION)),
    known("cors-allow-credentials", "cors", Applied),
    known("cors-allow-headers", "cors", Applied),
    known("cors-allow-methods", "cors", Applied),
    known("cors-allow-origin", "cors", Applied),
    known("cors-expose-headers", "cors", Applied),
    known("cors-max-age", "cors", Applied),
    known("custom-headers", "backend", Applied),
    known("custom-http-errors", "backend", Applied),
    known("default-backend", "backend", Applied),
    known("denylist-source-range", "acl", Applied),
    known("disable-proxy-intercept-errors", "backend", Ignored(NOT_YET)),
    known("enable-access-log", "log", Applied),
    known("enable-cors", "cors", Applied),
    known("enable-global-auth", "authentication", Applied),
    known("enable-modsecurity", "modsecurity", Ignored(MODSECURITY)),
    known("enable-opentelemetry", "opentelemetry", Ignored(TRACING)),
    known("enable-owasp-core-rules", "modsecurity", Ignored(MODSECURITY)),
    known("enable-rewrite-log", "log", Ignored(REWRITE_LOG)),
    known("fastcgi-index", "fastcgi", Ignored(FASTCGI)),
    known("fastcgi-params-configmap", "fastcgi", Ignored(FASTCGI)),
    known("force-ssl-redirect", "rewrite", Applied),
    known("from-to-www-redirect", "redirect", Applied),
    known("http2-push-preload", "http2", Ignored(PUSH)),
    known("limit-allowlist", "rate-limit", Applied),
    known("limit-burst-multiplier", "rate-limit", Applied),
    known("limit-connections", "rate-limit", Applied),
    known("limit-rate", "rate-limit", Restricts(LIMITS)),
    known("limit-rate-after", "rate-limit", Restricts(LIMITS)),
    known("limit-rpm", "rate-limit", Applied),
    known("limit-rps", "rate-limit", Applied),
    known("limit-whitelist", "rate-limit", Applied),
    known("load-balance", "backend", Applied),
    known("mirror-host", "mirror", Ignored(MIRROR)),
    known("mirror-request-body", "mirror", Ignored(MIRROR)),
    known("mirror-target", "mirror", Ignored(MIRROR)),
    known("modsecurity-snippet", "modsecurity", Ignored(SNIPPET)),
    known("modsecurity-transaction-id", "modsecurity", Ignored(MODSECURITY)),
    known("opentelemetry-operation-name", "opentelemetry", Ignored(TRACING)),
    known("opentelemetry-trust-incoming-span", "opentelemetry", Ignored(TRACING)),
    known("permanent-redirect", "redirect", Applied),
    known("permanent-redirect-code", "redirect", Applied),
    known("preserve-trailing-slash", "rewrite", Applied),
    known("proxy-body-size", "backend", Applied),
    known("proxy-buffer-size", "backend", Ignored(BUFFERS)),
    known("proxy-buffering", "backend", Applied),
    known("proxy-buffers-number", "backend", Ignored(BUFFERS)),
    known("proxy-busy-buffers-size", "backend", Ignored(BUFFERS)),
    known("proxy-connect-timeout", "backend", Applied),
    known("proxy-cookie-domain", "backend", Applied),
    known("proxy-cookie-path", "backend", Applied),
    known("proxy-http-version", "backend", Applied),
    known("proxy-max-temp-file-size", "backend", Ignored(BUFFERS)),
    known("proxy-next-upstream", "backend", Applied),
    known("proxy-next-upstream-timeout", "backend", Applied),
    known("proxy-next-upstream-tries", "backend", Applied),
    known("proxy-read-timeout", "backend", Applied),
    known("proxy-redirect-from", "backend", Applied),
    known("proxy-redirect-to", "backend", Applied),
    known("proxy-request-buffering", "backend", Applied),
    known("proxy-send-timeout", "backend", Applied),
    known("proxy-ssl-ciphers", "proxy", Applied),
    known("proxy-ssl-name", "proxy", Applied),
    known("proxy-ssl-protocols", "proxy", Applied),
    known("proxy-ssl-secret", "proxy", Applied),
    known("proxy-ssl-server-name", "proxy", Applied),
    known("proxy-ssl-verify", "proxy", Applied),
    known("proxy-ssl-verify-depth", "proxy", Applied),
    known("relative-redirects", "redirect", Ignored(NOT_YET)),
    known("rewrite-target", "rewrite", Applied),
    known("satisfy", "authentication", Applied),
    known("server-alias", "alias", Applied),
    known("server-snippet", "snippets", Ignored(SNIPPET)),
    known("service-upstream", "backend", Applied),
    known("session-cookie-change-on-failure", "affinity", Applied),
    known("session-cookie-conditional-samesite-none", "affinity", Applied),
    known("session-cookie-domain", "affinity", Applied),
    known("session-cookie-expires", "affinity", Applied),
    known("session-cookie-max-age", "affinity", Applied),
    known("session-cookie-name", "affinity", Applied),
    known("session-cookie-path", "affinity", Applied),
    known("session-cookie-samesite", "affinity", Applied),
    known("session-cookie-secure", "affinity", Applied),
    known("ssl-ciphers", "backend", Ignored(CLIENT_CIPHERS)),
    known("ssl-passthrough", "sslpassthrough", Applied),
    known("ssl-prefer-server-ciphers", "backend", Ignored(CLIENT_CIPHERS)),
    known("ssl-redirect", "rewrite", Applied),
    known("stream-snippet", "snippets", Ignored(SNIPPET)),
    known("temporal-redirect", "redirect", Applied),
    known("temporal-redirect-code", "redirect", Applied),
    known("upstream-hash-by", "backend", Applied),
    known("upstream-hash-by-subset", "backend", Applied),
    known("upstream-hash-by-subset-size", "backend", Applied),
    known("upstream-vhost", "backend", Applied),
    known("use-port-in-redirects", "redirect", Applied),
    known("use-regex", "rewrite", Applied),
    known("whitelist-source-range", "acl", Applied),
    known("x-forwarded-prefix", "backend", Applied),
];

/// The row of `name` (without the prefix).
pub(crate) fn find(name: &str) -> Option<&'static Known> {
    KNOWN.binary_search_by(|k| k.name.cmp(name)).ok().map(|i| &KNOWN[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_unique_so_lookup_works() {
        assert!(KNOWN.windows(2).all(|w| w[0].name < w[1].name));
        assert_eq!(find("proxy-body-size").map(|k| k.group), Some("backend"));
        assert!(find("proxy-body-sizes").is_none());
    }

    #[test]
    fn snippets_are_never_applied() {
        for k in KNOWN.iter().filter(|k| k.name.ends_with("snippet")) {
            assert_eq!(k.support, Ignored(SNIPPET), "{}", k.name);
        }
    }

    #[test]
    fn access_restrictions_close_until_applied() {
        for k in KNOWN {
            let restricting = k.name.starts_with("auth-")
                || k.name.ends_with("-source-range")
                || k.name.starts_with("limit-")
                || k.name == "satisfy";
            // Snippets are never applied; keep-alive to the auth service restricts nothing.
            if restricting && !k.name.ends_with("snippet") && !k.name.starts_with("auth-keepalive") {
                assert!(matches!(k.support, Applied | Restricts(_)), "{} would fail open", k.name);
            }
        }
    }
}
