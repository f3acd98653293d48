//! Every ConfigMap key of ingress-nginx, and what Ferry does with it.
//!
//! One table, read by [`super::from_configmap`] (a key it does not apply is reported with the
//! table's reason, or as unknown with the closest known name) and by the documentation
//! (`docs/annotations.md` carries it, generated and checked by a test), so the two cannot
//! drift. The keys are those ingress-nginx documents (`configmap.md`), those its
//! `config.Configuration` and `defaults.Backend` read (their `json` tags), and those its
//! `ReadConfig` parses by hand.

/// What Ferry does with a known key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Applied by [`super::from_configmap`].
    Applied {
        /// What Ferry does with it, with the value's form and ingress-nginx's default in
        /// parentheses (shown by the docs).
        note: &'static str,
        /// A valid value, fed to the parser by the tests.
        sample: &'static str,
    },
    /// Known to ingress-nginx, not applied here, for this reason: reported, and the default
    /// stays.
    Ignored(&'static str),
    /// An access restriction Ferry does not apply yet, for this reason: a non-empty value
    /// closes every route (`503`) rather than serve more openly than ingress-nginx would.
    Restricts(&'static str),
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// The ConfigMap key.
    pub(crate) name: &'static str,
    /// What Ferry does with it.
    pub(crate) support: Support,
}

/// A row for a key Ferry does not apply ([`Ignored`] or [`Restricts`]).
const fn key(name: &'static str, support: Support) -> Key {
    Key { name, support }
}

/// A row for a key [`super::from_configmap`] applies.
const fn applied(name: &'static str, note: &'static str, sample: &'static str) -> Key {
    Key { name, support: Support::Applied { note, sample } }
}

const NOT_YET: &str = "not supported yet";
const SNIPPET: &str =
    "configuration snippets are never supported: Ferry generates and runs no configuration text";
const ANNOTATION_ONLY: &str =
    "not supported in the ConfigMap yet (the annotation of the same name is applied)";

// Access restrictions (fail closed) and the keys that only shape them.
const BLOCKLISTS: &str = "blocklists are not supported yet";
const LIMIT_SHAPING: &str =
    "not supported: the `limit-*` annotations count per client address (`$binary_remote_addr`, the default)";
const BANDWIDTH: &str = "response bandwidth limits are not supported yet: responses go at full speed \
                         (a throttle, not an access restriction, so routes stay open)";
const NGINX_STATUS: &str =
    "restricts nginx's status page, which Ferry does not have (its `/metrics` is on the admin port)";

// Annotation policy.
const RISK_LEVEL: &str = "not supported: Ferry does not grade annotations by risk (none it applies is rated \
                          High or Critical by ingress-nginx; snippets never run)";
const WORD_BLOCKLIST: &str =
    "not supported: Ferry parses annotation values and never copies them into configuration text";
const CROSS_NAMESPACE: &str = "not supported: Ferry keeps ingress-nginx's default, `false`, whatever this \
                               says: an annotation naming another namespace's Secret or ConfigMap (`auth-secret`, \
                               `auth-tls-secret`, `proxy-ssl-secret`, `auth-proxy-set-headers`) is refused and its \
                               Ingress denied (503)";
const PATH_TYPE: &str = "not supported: Ferry checks `Exact` and `Prefix` paths with its own rules \
                         (the Kubernetes API's), whatever this says";

// The process: nginx's workers and listeners, Ferry's flags.
const NGINX_TUNING: &str =
    "nginx tuning with no counterpart in Ferry (it has no nginx workers, hash tables or reloads)";
const WORKERS: &str = "set with the `--threads` flag (the proxy's worker threads, default one per CPU)";
const SHUTDOWN: &str =
    "set with the `--shutdown-grace-period` flag (seconds in-flight requests get after SIGTERM, 30)";
const LUA: &str = "Ferry runs no Lua: there are no shared dictionaries to size";
const BIND: &str = "set with the `--bind-address` flag (one address for every listener)";
const IPV6: &str = "not supported: Ferry listens on the one `--bind-address` (default `0.0.0.0`, IPv4 only)";
const DNS: &str = "Ferry resolves no names: it sends to the addresses in EndpointSlices";
const PROXY_PROTOCOL: &str = "not used: with `use-proxy-protocol` and `use-forwarded-headers` both on, the PROXY header's source is the peer and the client address is then read from `forwarded-for-header` of a trusted peer, as without the PROXY protocol";
const STREAM: &str =
    "TCP and UDP session lines go where the access log goes (stdout); a path of their own is not supported";

// Logs and tracing.
const LOG_OUTPUT: &str =
    "Ferry writes no log files and no syslog: the access log goes to stdout, diagnostics to stderr";
const LOG_LEVEL: &str =
    "not supported: the diagnostics' level is set with the `RUST_LOG` environment variable";
const DEBUG_LOG: &str = "nginx's per-connection debug log has no counterpart";
const LOG_SELECTION: &str = "not supported yet: `disable-access-log`, `skip-access-log-urls` and the \
                             `enable-access-log` annotation choose what is logged";
const TRACING: &str = "OpenTelemetry tracing is not supported yet";
const JAEGER: &str =
    "documented, but no longer read by ingress-nginx (its OpenTracing was removed); Ferry does not trace";

// Requests, responses and upstreams.
const BUFFERS: &str = "Ferry streams responses without nginx's buffers; there is nothing to size";
const REQUEST_BUFFER: &str = "Ferry streams request bodies; there is no request buffer to size";
const RESPONSE_BUFFERING: &str =
    "not supported: Ferry streams responses, as `off` (ingress-nginx's default) does";
const REQUEST_BUFFERING: &str =
    "not supported: Ferry streams request bodies, as `off` does (ingress-nginx's default is `on`)";
const HTTP_VERSION: &str =
    "not supported: Ferry speaks HTTP/1.1 to endpoints (ingress-nginx's default); `1.0` is not offered";
const COMPRESSION: &str =
    "response compression is not supported yet: responses go out as the backend sent them";
const GEOIP: &str = "GeoIP lookups are not supported";
const MODSECURITY: &str =
    "ModSecurity is not supported (ingress-nginx's default mode only detects, it does not block)";
const REQUEST_ID: &str = "not supported: Ferry always sends `X-Request-ID` upstream, the client's or a \
                          generated one (ingress-nginx's default)";
const HASH_BY_UNREAD: &str =
    "ingress-nginx reads this key nowhere (only the annotation of the same name hashes); nor does Ferry";
const KEEPALIVE_POOL: &str =
    "not supported yet: the idle upstream connection pool's size is fixed at start-up";
const PROXY_SSL: &str = "not read: Ferry applies an Ingress's `proxy-ssl-*` annotations to that Ingress's \
                         own paths only (as `true` does); the other paths of its hosts do not inherit them";

// TLS and HTTP/2.
const TLS_VERSIONS: &str = "not supported yet: Ferry accepts TLS 1.2 and newer (ingress-nginx's default \
                            protocols) with its TLS library's default ciphers; a narrower list is not \
                            applied";
const TLS_TUNING: &str = "not supported yet: the TLS library's defaults apply";
const REJECT_HANDSHAKE: &str =
    "not supported yet: a handshake for an unknown name gets the default certificate";
const HTTP2: &str = "not supported yet: HTTPS always offers HTTP/2 (ALPN `h2`, then `http/1.1`) \
                     with Pingora's HTTP/2 settings";
const HTTP2_DEPRECATED: &str = "deprecated by ingress-nginx (nginx removed the directive); not supported";

use Support::{Ignored, Restricts};

/// Every key, sorted by name.
pub(crate) const KEYS: &[Key] = &[
    key("access-log-params", Ignored(LOG_OUTPUT)),
    key("access-log-path", Ignored(LOG_OUTPUT)),
    applied(
        "add-headers",
        "a ConfigMap (`namespace/name`, watched) whose entries are set on every response, the proxy's own answers included; entries with nginx `$variables` are left out and reported",
        "ns/headers",
    ),
    applied(
        "allow-backend-server-header",
        "with `server-tokens` on, the upstream's `Server` is passed instead of Ferry's (off)",
        "true",
    ),
    key("allow-cross-namespace-resources", Ignored(CROSS_NAMESPACE)),
    key("allow-snippet-annotations", Ignored(SNIPPET)),
    key("annotation-value-word-blocklist", Ignored(WORD_BLOCKLIST)),
    key("annotations-risk-level", Ignored(RISK_LEVEL)),
    key("app-root", Ignored(ANNOTATION_ONLY)),
    key("bind-address", Ignored(BIND)),
    key("bind-address-ipv4", Ignored(BIND)),
    key("bind-address-ipv6", Ignored(BIND)),
    applied(
        "block-cidrs",
        "clients from these addresses and CIDR ranges get 403 on every host (the real client address); a bad list closes every route (none)",
        "192.0.2.0/24, 2001:db8::1",
    ),
    key("block-referers", Restricts(BLOCKLISTS)),
    key("block-user-agents", Restricts(BLOCKLISTS)),
    key("brotli-level", Ignored(COMPRESSION)),
    key("brotli-min-length", Ignored(COMPRESSION)),
    key("brotli-types", Ignored(COMPRESSION)),
    key("client-body-buffer-size", Ignored(REQUEST_BUFFER)),
    applied("client-body-timeout", "how long each read of a request body may wait (whole seconds, 60)", "20"),
    applied(
        "client-header-buffer-size",
        "a request head line may always be this long (nginx size, `1k`)",
        "2k",
    ),
    applied(
        "client-header-timeout",
        "how long a request head may take to arrive; the connection is then closed (whole seconds, 60)",
        "10",
    ),
    applied(
        "compute-full-forwarded-for",
        "with `use-forwarded-headers`, `X-Forwarded-For` upstream is the client's list with the peer appended (bool, off)",
        "true",
    ),
    applied(
        "custom-http-errors",
        "statuses (from endpoints or the proxy) answered by the default backend with ingress-nginx's `X-Code` … headers, on routes without the annotation; comma-separated 400–599 (none)",
        "404,503",
    ),
    key("debug-connections", Ignored(DEBUG_LOG)),
    key("default-type", Ignored(NOT_YET)),
    applied(
        "denylist-source-range",
        "clients from these ranges get 403, on routes without the annotation; a bad list closes every route (none)",
        "10.9.0.0/16",
    ),
    applied("disable-access-log", "no access log line per request (bool, off)", "true"),
    key("disable-http-access-log", Ignored(LOG_SELECTION)),
    key("disable-ipv6", Ignored(IPV6)),
    key("disable-ipv6-dns", Ignored(DNS)),
    key("disable-proxy-intercept-errors", Ignored(NOT_YET)),
    applied(
        "disable-stream-access-log",
        "no access log line per TCP or UDP service session (bool, false)",
        "true",
    ),
    applied(
        "enable-access-log",
        "the access log on or off (bool, on); not an ingress-nginx ConfigMap key (only its annotation), read here too",
        "false",
    ),
    key("enable-access-log-for-default-backend", Ignored(LOG_SELECTION)),
    key("enable-aio-write", Ignored(NGINX_TUNING)),
    key("enable-auth-access-log", Ignored(LOG_SELECTION)),
    key("enable-brotli", Ignored(COMPRESSION)),
    key("enable-modsecurity", Ignored(MODSECURITY)),
    key("enable-multi-accept", Ignored(NGINX_TUNING)),
    key("enable-ocsp", Ignored(TLS_TUNING)),
    key("enable-opentelemetry", Ignored(TRACING)),
    key("enable-owasp-modsecurity-crs", Ignored(MODSECURITY)),
    applied(
        "enable-real-ip",
        "the client address from a trusted peer's forwarded-for header, without the other forwarding headers (bool, off)",
        "true",
    ),
    key("enable-serial-reloads", Ignored(NGINX_TUNING)),
    key("enable-syslog", Ignored(LOG_OUTPUT)),
    applied(
        "enable-underscores-in-headers",
        "header names with `_` are forwarded, not dropped (bool, off)",
        "true",
    ),
    key("error-log-level", Ignored(LOG_LEVEL)),
    key("error-log-path", Ignored(LOG_OUTPUT)),
    applied("force-ssl-redirect", "plain HTTP to every host is redirected to HTTPS (bool, off)", "true"),
    applied(
        "forwarded-for-header",
        "the header the client address is read from (header name, `X-Forwarded-For`)",
        "X-Client-IP",
    ),
    key("forwarded-for-proxy-protocol-header", Ignored(PROXY_PROTOCOL)),
    key("forwarded-host-header", Ignored(NOT_YET)),
    key("generate-request-id", Ignored(REQUEST_ID)),
    key("geoip2-autoreload-in-minutes", Ignored(GEOIP)),
    applied(
        "global-allowed-response-headers",
        "the headers `custom-headers` may set, comma-separated and compared as written; any other denies the Ingress (503), as in ingress-nginx (empty)",
        "X-Frame-Options,Content-Security-Policy",
    ),
    applied(
        "global-auth-always-set-cookie",
        "the auth service's `Set-Cookie` on every response (`false`)",
        "true",
    ),
    applied(
        "global-auth-cache-duration",
        "`[code …] time` entries, as `auth-cache-duration` (`200 202 401 5m`)",
        "200 202 5m",
    ),
    applied(
        "global-auth-cache-key",
        "answers kept per this key (nginx variables), as `auth-cache-key`",
        "$remote_addr",
    ),
    applied("global-auth-method", "the auth request's method (`GET`)", "POST"),
    applied(
        "global-auth-request-redirect",
        "`X-Auth-Request-Redirect` of the auth request (the request target)",
        "https://example.com/",
    ),
    applied(
        "global-auth-response-headers",
        "headers copied onto the upstream request, as `auth-response-headers`; a bad name closes every route (503)",
        "X-Auth-Request-User",
    ),
    applied(
        "global-auth-signin",
        "where a `401` redirects, as `auth-signin`",
        "https://auth.example.com/start",
    ),
    applied("global-auth-signin-redirect-param", "the sign-in redirect parameter (`rd`)", "next"),
    key("global-auth-snippet", Ignored(SNIPPET)),
    applied(
        "global-auth-url",
        "external authentication of every route without its own, as `auth-url` (except `enable-global-auth: \"false\"` and `no-auth-locations`); a bad URL closes every route (503)",
        "http://auth.example.com/check",
    ),
    key("grpc-buffer-size-kb", Ignored(BUFFERS)),
    key("gzip-disable", Ignored(COMPRESSION)),
    key("gzip-level", Ignored(COMPRESSION)),
    key("gzip-min-length", Ignored(COMPRESSION)),
    key("gzip-types", Ignored(COMPRESSION)),
    applied(
        "hide-headers",
        "upstream response headers removed, comma-separated (none)",
        "X-Powered-By,X-AspNet-Version",
    ),
    applied("hsts", "`Strict-Transport-Security` on HTTPS responses (bool, on)", "false"),
    applied("hsts-include-subdomains", "`includeSubDomains` in it (bool, on)", "false"),
    applied("hsts-max-age", "its `max-age` (whole seconds, 31536000)", "600"),
    applied("hsts-preload", "`preload` in it (bool, off)", "true"),
    key("http-access-log-path", Ignored(LOG_OUTPUT)),
    applied("http-redirect-code", "the status of the redirects to HTTPS (301, 302, 307 or 308; 308)", "301"),
    key("http-snippet", Ignored(SNIPPET)),
    key("http2-max-concurrent-streams", Ignored(HTTP2)),
    key("http2-max-field-size", Ignored(HTTP2_DEPRECATED)),
    key("http2-max-header-size", Ignored(HTTP2_DEPRECATED)),
    key("http2-max-requests", Ignored(HTTP2_DEPRECATED)),
    applied(
        "ignore-invalid-headers",
        "header names with anything but letters, digits and `-` (and `_` when allowed) are dropped (bool, on)",
        "false",
    ),
    key("jaeger-baggage-header", Ignored(JAEGER)),
    key("jaeger-collector-host", Ignored(JAEGER)),
    key("jaeger-collector-port", Ignored(JAEGER)),
    key("jaeger-debug-header", Ignored(JAEGER)),
    key("jaeger-endpoint", Ignored(JAEGER)),
    key("jaeger-propagation-format", Ignored(JAEGER)),
    key("jaeger-sampler-host", Ignored(JAEGER)),
    key("jaeger-sampler-param", Ignored(JAEGER)),
    key("jaeger-sampler-port", Ignored(JAEGER)),
    key("jaeger-sampler-type", Ignored(JAEGER)),
    key("jaeger-service-name", Ignored(JAEGER)),
    key("jaeger-trace-baggage-header-prefix", Ignored(JAEGER)),
    key("jaeger-trace-context-header-name", Ignored(JAEGER)),
    applied(
        "keep-alive",
        "how long a client connection may idle between requests; `0` turns keep-alive off (whole seconds, 75)",
        "0",
    ),
    applied("keep-alive-requests", "requests served on one client connection (count, 1000)", "50"),
    applied(
        "large-client-header-buffers",
        "the longest request line (else `414`) or header line (else `431`), and the head's total (`<count> <size>`, `4 8k`)",
        "8 16k",
    ),
    applied("limit-conn-status-code", "the status of a request over `limit-connections` (503)", "429"),
    key("limit-conn-zone-variable", Ignored(LIMIT_SHAPING)),
    key("limit-rate", Ignored(BANDWIDTH)),
    key("limit-rate-after", Ignored(BANDWIDTH)),
    applied("limit-req-status-code", "the status of a request over `limit-rps`/`limit-rpm` (503)", "429"),
    applied(
        "load-balance",
        "`round_robin` or `ewma` for routes without their own `load-balance` (`round_robin`)",
        "ewma",
    ),
    key("location-snippet", Ignored(SNIPPET)),
    applied(
        "log-format-escape-json",
        "`log-format-upstream`'s values escaped as in JSON strings, missing ones empty rather than `-` (bool, false)",
        "true",
    ),
    applied(
        "log-format-escape-none",
        "`log-format-upstream`'s values written unescaped (bool, false; wins over `log-format-escape-json`)",
        "true",
    ),
    applied(
        "log-format-stream",
        "each TCP/UDP session's line as an nginx stream `log_format` template (unset: Ferry's JSON object); a variable Ferry does not provide is reported and the JSON stays",
        "[$remote_addr] [$time_local] $protocol $status $bytes_sent $bytes_received $session_time",
    ),
    applied(
        "log-format-upstream",
        "each request's access log line as an nginx `log_format` template with ingress-nginx's variables; `upstreaminfo` names its default format (unset: Ferry's JSON object); a variable Ferry does not provide is reported and the JSON stays",
        "upstreaminfo",
    ),
    key("lua-shared-dicts", Ignored(LUA)),
    key("main-snippet", Ignored(SNIPPET)),
    key("map-hash-bucket-size", Ignored(NGINX_TUNING)),
    key("max-worker-connections", Ignored(NGINX_TUNING)),
    key("max-worker-open-files", Ignored(NGINX_TUNING)),
    key("modsecurity-snippet", Ignored(SNIPPET)),
    key("nginx-status-ipv4-whitelist", Ignored(NGINX_STATUS)),
    key("nginx-status-ipv6-whitelist", Ignored(NGINX_STATUS)),
    applied(
        "no-auth-locations",
        "comma-separated path prefixes `global-auth-url` leaves alone (`/.well-known/acme-challenge`)",
        "/public,/health",
    ),
    applied(
        "no-tls-redirect-locations",
        "path prefixes never redirected to HTTPS (comma-separated, `/.well-known/acme-challenge`)",
        "/a, /b",
    ),
    key("opentelemetry-config", Ignored(TRACING)),
    key("opentelemetry-operation-name", Ignored(TRACING)),
    key("opentelemetry-trust-incoming-span", Ignored(TRACING)),
    key("otel-max-export-batch-size", Ignored(TRACING)),
    key("otel-max-queuesize", Ignored(TRACING)),
    key("otel-sampler", Ignored(TRACING)),
    key("otel-sampler-parent-based", Ignored(TRACING)),
    key("otel-sampler-ratio", Ignored(TRACING)),
    key("otel-schedule-delay-millis", Ignored(TRACING)),
    key("otel-service-name", Ignored(TRACING)),
    key("otlp-collector-host", Ignored(TRACING)),
    key("otlp-collector-port", Ignored(TRACING)),
    key("preserve-trailing-slash", Ignored(ANNOTATION_ONLY)),
    key("proxy-add-original-uri-header", Ignored(NOT_YET)),
    applied(
        "proxy-body-size",
        "the largest request body, larger ones get `413`; `0` is unlimited (nginx size, `1m`)",
        "8m",
    ),
    key("proxy-buffer-size", Ignored(BUFFERS)),
    key("proxy-buffering", Ignored(RESPONSE_BUFFERING)),
    key("proxy-buffers-number", Ignored(BUFFERS)),
    key("proxy-busy-buffers-size", Ignored(BUFFERS)),
    applied(
        "proxy-connect-timeout",
        "connecting to an endpoint; exceeding it answers `504` (seconds, or nginx time such as `500ms`; 5)",
        "2",
    ),
    key("proxy-cookie-domain", Ignored(NOT_YET)),
    key("proxy-cookie-path", Ignored(NOT_YET)),
    key("proxy-headers-hash-bucket-size", Ignored(NGINX_TUNING)),
    key("proxy-headers-hash-max-size", Ignored(NGINX_TUNING)),
    key("proxy-http-version", Ignored(HTTP_VERSION)),
    key("proxy-max-temp-file-size", Ignored(BUFFERS)),
    key("proxy-next-upstream", Ignored(ANNOTATION_ONLY)),
    key("proxy-next-upstream-timeout", Ignored(ANNOTATION_ONLY)),
    applied(
        "proxy-next-upstream-tries",
        "attempts per request when connecting fails, each on the next endpoint; `0` and more than 10 mean 10 (count, 3)",
        "2",
    ),
    applied(
        "proxy-protocol-header-timeout",
        "how long a client may take to send its PROXY protocol header (`use-proxy-protocol`, and TCP service ports with `PROXY`); the connection is closed after (nginx time; 5s)",
        "10s",
    ),
    applied(
        "proxy-read-timeout",
        "waiting for the next bytes from the endpoint; exceeding it answers `504` (seconds or nginx time, 60)",
        "120s",
    ),
    applied(
        "proxy-real-ip-cidr",
        "the peers whose forwarded-for header is believed; a bad list trusts no one (comma-separated CIDRs, `0.0.0.0/0`)",
        "10.0.0.0/8, 192.168.0.0/16",
    ),
    key("proxy-redirect-from", Ignored(NOT_YET)),
    key("proxy-redirect-to", Ignored(NOT_YET)),
    key("proxy-request-buffering", Ignored(REQUEST_BUFFERING)),
    applied(
        "proxy-send-timeout",
        "waiting to send the next bytes to the endpoint; exceeding it answers `504` (seconds or nginx time, 60)",
        "1m",
    ),
    applied(
        "proxy-set-headers",
        "a ConfigMap (`namespace/name`, watched) whose entries are set on every request upstream (an empty value removes the header); entries with nginx `$variables` are left out and reported",
        "ns/headers",
    ),
    key("proxy-ssl-location-only", Ignored(PROXY_SSL)),
    applied(
        "proxy-stream-next-upstream",
        "a TCP service connection whose connect fails is tried on the next endpoint (bool, true)",
        "false",
    ),
    applied(
        "proxy-stream-next-upstream-timeout",
        "how long a TCP service connection tries endpoints; `0` is no limit (nginx time; 600s)",
        "30s",
    ),
    applied(
        "proxy-stream-next-upstream-tries",
        "endpoints a TCP service connection tries, at most, each once; `0` is all of them (count, 3)",
        "2",
    ),
    applied(
        "proxy-stream-responses",
        "UDP services: the replies expected per client datagram; a flow that got them all ends, so the client's next datagram may reach another endpoint; `0` expects none and ends the flow once the datagram is sent (count, 1)",
        "2",
    ),
    applied(
        "proxy-stream-timeout",
        "a TCP or UDP service connection or flow idle this long either way is closed (nginx time; 600s)",
        "10m",
    ),
    key("relative-redirects", Ignored(NOT_YET)),
    key("retry-non-idempotent", Ignored(NOT_YET)),
    key("reuse-port", Ignored(NGINX_TUNING)),
    key("server-name-hash-bucket-size", Ignored(NGINX_TUNING)),
    key("server-name-hash-max-size", Ignored(NGINX_TUNING)),
    key("server-snippet", Ignored(SNIPPET)),
    applied(
        "server-tokens",
        "off: no `Server` header at all, the upstream's removed too; on: `Server: ferry/<version>` (off)",
        "true",
    ),
    applied(
        "service-upstream",
        "the default of the `service-upstream` annotation: requests to the Services' cluster IPs (`false`)",
        "true",
    ),
    applied(
        "skip-access-log-urls",
        "requests not logged: their whole target (nginx's `$request_uri`, query included), compared without regard to case, in this comma-separated list",
        "/healthz,/ping?full=1",
    ),
    key("ssl-buffer-size", Ignored(TLS_TUNING)),
    key("ssl-ciphers", Ignored(TLS_VERSIONS)),
    key("ssl-dh-param", Ignored(TLS_TUNING)),
    key("ssl-early-data", Ignored(TLS_TUNING)),
    key("ssl-ecdh-curve", Ignored(TLS_TUNING)),
    key("ssl-protocols", Ignored(TLS_VERSIONS)),
    applied("ssl-redirect", "plain HTTP to hosts with TLS is redirected to HTTPS (bool, on)", "false"),
    key("ssl-reject-handshake", Ignored(REJECT_HANDSHAKE)),
    key("ssl-session-cache", Ignored(TLS_TUNING)),
    key("ssl-session-cache-size", Ignored(TLS_TUNING)),
    key("ssl-session-ticket-key", Ignored(TLS_TUNING)),
    key("ssl-session-tickets", Ignored(TLS_TUNING)),
    key("ssl-session-timeout", Ignored(TLS_TUNING)),
    key("stream-access-log-path", Ignored(STREAM)),
    key("stream-snippet", Ignored(SNIPPET)),
    key("strict-validate-path-type", Ignored(PATH_TYPE)),
    key("syslog-host", Ignored(LOG_OUTPUT)),
    key("syslog-port", Ignored(LOG_OUTPUT)),
    key("upstream-hash-by", Ignored(HASH_BY_UNREAD)),
    key("upstream-hash-by-subset", Ignored(HASH_BY_UNREAD)),
    key("upstream-hash-by-subset-size", Ignored(HASH_BY_UNREAD)),
    key("upstream-keepalive-connections", Ignored(KEEPALIVE_POOL)),
    key("upstream-keepalive-requests", Ignored(NOT_YET)),
    key("upstream-keepalive-time", Ignored(NOT_YET)),
    applied(
        "upstream-keepalive-timeout",
        "how long an idle upstream connection is kept (seconds or nginx time, 60)",
        "30",
    ),
    applied(
        "use-forwarded-headers",
        "believe `X-Forwarded-Proto`, `-Host` and `-Port`, and take the client address from a trusted peer's forwarded-for header (bool, off)",
        "true",
    ),
    key("use-geoip", Ignored(GEOIP)),
    key("use-geoip2", Ignored(GEOIP)),
    key("use-gzip", Ignored(COMPRESSION)),
    key("use-http2", Ignored(HTTP2)),
    key("use-port-in-redirects", Ignored(ANNOTATION_ONLY)),
    applied(
        "use-proxy-protocol",
        "every connection to the HTTP and HTTPS ports opens with a PROXY protocol header (v1 or v2, before TLS); from a peer in `proxy-real-ip-cidr` its source is the client (access log, metrics, forwarding headers, source ranges) and its destination port is `X-Forwarded-Port`; a connection without one is closed (bool, false)",
        "true",
    ),
    key("variables-hash-bucket-size", Ignored(NGINX_TUNING)),
    key("variables-hash-max-size", Ignored(NGINX_TUNING)),
    applied(
        "whitelist-source-range",
        "only clients from these ranges are let in (others 403), on routes without the annotation; a bad list closes every route (none)",
        "10.0.0.0/8",
    ),
    key("worker-cpu-affinity", Ignored(NGINX_TUNING)),
    key("worker-processes", Ignored(WORKERS)),
    key("worker-shutdown-timeout", Ignored(SHUTDOWN)),
];

/// The row of `name`.
pub(crate) fn find(name: &str) -> Option<&'static Key> {
    KEYS.binary_search_by(|k| k.name.cmp(name)).ok().map(|i| &KEYS[i])
}

/// Why [`super::from_configmap`] does not apply `name`, a key its match does not handle: the
/// table's reason for an ingress-nginx key, else the closest key name when one is close.
pub(crate) fn not_applied(name: &str) -> String {
    match find(name).map(|k| k.support) {
        Some(Ignored(why) | Restricts(why)) => format!("ingress-nginx key, not applied: {why}"),
        // The match applies every `Applied` key (a test checks it); this would be a bug.
        Some(Support::Applied { .. }) => {
            "ingress-nginx key, not applied (a bug: Ferry should apply it)".into()
        }
        None => match ingress_k8s::annotations::closest_name(name, KEYS.iter().map(|k| k.name)) {
            Some(known) => {
                format!("unknown key (not an ingress-nginx ConfigMap key; did you mean `{known}`?)")
            }
            None => "unknown key (not an ingress-nginx ConfigMap key)".into(),
        },
    }
}

/// The Markdown table of every key and what Ferry does with it, as `docs/annotations.md`
/// carries it between its configmap-table markers.
#[cfg_attr(not(test), expect(dead_code, reason = "only the docs test renders the table"))]
pub(crate) fn markdown_table() -> String {
    let mut out = String::from("| Key | Ferry | Notes |\n|---|---|---|\n");
    for k in KEYS {
        let (status, notes) = match k.support {
            Support::Applied { note, .. } => ("applied", note),
            Ignored(why) => ("ignored", why),
            Restricts(why) => ("**fail closed** (503)", why),
        };
        out.push_str(&format!("| `{}` | {status} | {notes} |\n", k.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ingress_proxy::RuntimeSettings;

    use super::super::{Ignored as Report, RESTRICTIONS};
    use super::*;

    /// What the parser makes of a ConfigMap holding `name: value` alone.
    fn one(name: &str, value: &str) -> (RuntimeSettings, Vec<Report>) {
        // The ConfigMap the samples of `add-headers` and `proxy-set-headers` name.
        let named = BTreeMap::from([("X-Sample".to_owned(), "1".to_owned())]);
        super::super::from_configmap(
            &RuntimeSettings::default(),
            &BTreeMap::from([(name.to_owned(), value.to_owned())]),
            &BTreeMap::from([("ns/headers".to_owned(), named)]),
        )
    }

    #[test]
    fn sorted_and_unique_so_lookup_works() {
        assert!(KEYS.windows(2).all(|w| w[0].name < w[1].name), "KEYS must be sorted and unique");
        assert!(matches!(find("proxy-body-size").map(|k| k.support), Some(Support::Applied { .. })));
        assert!(find("proxy-body-sizes").is_none());
    }

    /// The table says `Applied` exactly for the keys the match applies: each applied key's
    /// sample is taken, every other key is reported.
    #[test]
    fn applied_in_the_table_is_applied_by_the_parser() {
        for k in KEYS {
            match k.support {
                Support::Applied { sample, .. } => {
                    let (s, ignored) = one(k.name, sample);
                    assert!(ignored.is_empty(), "{}: {ignored:?}", k.name);
                    assert!(s.closed.is_none(), "{}", k.name);
                }
                Ignored(why) => {
                    let (s, ignored) = one(k.name, "1");
                    assert_eq!(ignored.len(), 1, "{} is not reported", k.name);
                    assert_eq!(
                        ignored[0].reason,
                        format!("value `1`: ingress-nginx key, not applied: {why}")
                    );
                    assert!(s.closed.is_none(), "{} closed the routes", k.name);
                }
                Restricts(_) => {
                    let (s, ignored) = one(k.name, "1");
                    assert_eq!(ignored.len(), 1, "{} is not reported", k.name);
                    assert!(s.closed.is_some_and(|c| c.contains(k.name)), "{} does not close", k.name);
                }
            }
        }
    }

    #[test]
    fn restrictions_are_the_ones_that_close() {
        let restricts: Vec<&str> =
            KEYS.iter().filter(|k| matches!(k.support, Restricts(_))).map(|k| k.name).collect();
        let mut closing = RESTRICTIONS.to_vec();
        closing.sort_unstable();
        assert_eq!(restricts, closing);
        for k in KEYS {
            if k.name.ends_with("-source-range")
                || k.name.starts_with("block-")
                || (k.name.starts_with("global-auth-") && !k.name.ends_with("snippet"))
            {
                assert!(
                    matches!(k.support, Restricts(_) | Support::Applied { .. }),
                    "{} would fail open",
                    k.name
                );
            }
        }
    }

    #[test]
    fn an_unreadable_source_range_closes_every_route() {
        for name in super::super::SOURCE_RANGES {
            let (s, ignored) = one(name, "10.0.0.0/8, not-a-range");
            assert_eq!(ignored.len(), 1, "{name}");
            assert!(s.closed.is_some(), "{name} would fail open");
        }
    }

    #[test]
    fn snippets_are_never_applied() {
        for k in KEYS.iter().filter(|k| k.name.ends_with("snippet")) {
            assert_eq!(k.support, Ignored(SNIPPET), "{}", k.name);
        }
    }

    #[test]
    fn unknown_keys_get_the_closest_name() {
        let (_, ignored) = one("proxy-conect-timeout", "5");
        assert!(ignored[0].reason.ends_with("did you mean `proxy-connect-timeout`?)"), "{ignored:?}");
        let (_, ignored) = one("completely-unrelated-setting", "5");
        assert!(
            ignored[0].reason.ends_with("unknown key (not an ingress-nginx ConfigMap key)"),
            "{ignored:?}"
        );
        let (_, ignored) = one("use-gzip", "true");
        assert!(ignored[0].reason.contains("ingress-nginx key, not applied: response compression"));
    }

    const BEGIN: &str = "<!-- BEGIN GENERATED: configmap table (ingress-cli/src/settings/keys.rs) -->\n";
    const END: &str = "<!-- END GENERATED: configmap table -->";

    /// `docs/annotations.md` carries this table, generated: this test fails when they differ.
    /// `FERRY_BLESS=1 cargo test -p ingress-cli --bin ingress-controller settings::keys`
    /// rewrites it.
    #[test]
    fn the_documented_table_is_the_parsers_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/annotations.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let start = doc.find(BEGIN).expect("no configmap BEGIN marker in docs/annotations.md");
        let end = start + doc[start..].find(END).expect("no configmap END marker in docs/annotations.md");
        let generated = format!("{}{BEGIN}{}{}", &doc[..start], markdown_table(), &doc[end..]);
        if std::env::var_os("FERRY_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
            return;
        }
        assert!(
            generated == doc,
            "docs/annotations.md is out of date with the ConfigMap key table; run \
             FERRY_BLESS=1 cargo test -p ingress-cli --bin ingress-controller settings::keys"
        );
    }
}
