//! The `--configmap` ConfigMap → the proxy's live [`RuntimeSettings`].
//!
//! Keys are ingress-nginx's. A change applies to the next request. An unknown key or a bad
//! value is reported and ignored (the default stays), never fatal.

use std::collections::BTreeMap;
use std::time::Duration;

use ingress_proxy::RuntimeSettings;

mod global_auth;
mod headers;
mod keys;
mod log_keys;

/// ingress-nginx's default `proxy-body-size` (nginx's `client_max_body_size`).
const DEFAULT_BODY_SIZE: u64 = 1024 * 1024;

/// ingress-nginx ConfigMap keys that restrict access on every route. Ferry does not apply them
/// yet, so a non-empty one closes every route (`503`) rather than leaving them open.
const RESTRICTIONS: [&str; 2] = ["block-user-agents", "block-referers"];

/// The source range keys: applied, and, like the restrictions, a value that cannot be read
/// closes every route rather than leave it open.
const SOURCE_RANGES: [&str; 3] = ["whitelist-source-range", "denylist-source-range", "block-cidrs"];

/// ingress-nginx's HSTS keys, gathered before they make one header value.
struct Hsts {
    enabled: bool,
    max_age: String,
    include_subdomains: bool,
    preload: bool,
}

impl Default for Hsts {
    fn default() -> Self {
        Self { enabled: true, max_age: "31536000".into(), include_subdomains: true, preload: false }
    }
}

impl Hsts {
    /// The `Strict-Transport-Security` value, as ingress-nginx's Lua writes it.
    fn header(&self) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let mut value = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        Some(value)
    }
}

/// One key that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ignored {
    pub(crate) key: String,
    pub(crate) reason: String,
}

/// The settings for ConfigMap `data`, on top of `base` (what the flags say), and the keys that
/// were ignored. `references` holds the data of the ConfigMaps that `data` names
/// (`add-headers`, `proxy-set-headers`), by the value naming them.
pub(crate) fn from_configmap(
    base: &RuntimeSettings,
    data: &BTreeMap<String, String>,
    references: &BTreeMap<String, BTreeMap<String, String>>,
) -> (RuntimeSettings, Vec<Ignored>) {
    let mut s = base.clone();
    s.max_body_size = Some(DEFAULT_BODY_SIZE);
    let mut ignored = Vec::new();
    let mut closing = Vec::new();
    let mut hsts = Hsts::default();
    let mut header_keys = headers::HeaderKeys::default();
    let mut auth_keys = global_auth::GlobalAuthKeys::default();
    let mut log_keys = log_keys::LogKeys::default();
    for (key, value) in data {
        let value = value.trim();
        if auth_keys.take(key, value) || log_keys.take(key, value) {
            continue;
        }
        let applied = match key.as_str() {
            "proxy-connect-timeout" => seconds(value).map(|d| s.timeouts.connect = d),
            "proxy-read-timeout" => seconds(value).map(|d| s.timeouts.read = d),
            "proxy-send-timeout" => seconds(value).map(|d| s.timeouts.write = d),
            "proxy-body-size" => size(value).map(|n| s.max_body_size = (n > 0).then_some(n)),
            "proxy-next-upstream-tries" => count(value).map(|n| s.max_attempts = n),
            "upstream-keepalive-timeout" => seconds(value).map(|d| s.upstream_keepalive_timeout = d),
            "disable-access-log" => boolean(value).map(|off| s.access_log = !off),
            "enable-access-log" => boolean(value).map(|on| s.access_log = on),
            "client-header-timeout" => whole_seconds(value, 1).map(|d| s.client.header_timeout = d),
            "client-body-timeout" => whole_seconds(value, 1).map(|d| s.client.body_timeout = d),
            "keep-alive" => whole_seconds(value, 0).map(|d| s.client.keepalive_timeout = d),
            "keep-alive-requests" => {
                value.parse::<u32>().map(|n| s.client.keepalive_requests = n).map_err(|_| WHOLE.to_owned())
            }
            "client-header-buffer-size" => nginx_size(value).map(|n| s.client.header_buffer_size = n),
            "large-client-header-buffers" => header_buffers(value).map(|(n, size)| {
                s.client.large_header_buffers = n;
                s.client.large_header_buffer_size = size;
            }),
            "enable-underscores-in-headers" => boolean(value).map(|on| s.client.underscores_in_headers = on),
            "ignore-invalid-headers" => boolean(value).map(|on| s.client.ignore_invalid_headers = on),
            "use-forwarded-headers" => boolean(value).map(|on| s.forwarding.use_forwarded_headers = on),
            "enable-real-ip" => boolean(value).map(|on| s.forwarding.enable_real_ip = on),
            "compute-full-forwarded-for" => {
                boolean(value).map(|on| s.forwarding.compute_full_forwarded_for = on)
            }
            "forwarded-for-header" => header_name(value).map(|name| s.forwarding.forwarded_for_header = name),
            "proxy-real-ip-cidr" => match ingress_core::parse_cidrs(value) {
                Ok(list) => {
                    s.forwarding.trusted = list;
                    Ok(())
                }
                // Trusting every peer on a typo would let any client choose its address.
                Err(e) => {
                    s.forwarding.trusted = Vec::new();
                    Err(format!("{e}; no peer is trusted until it is fixed"))
                }
            },
            "ssl-redirect" => boolean(value).map(|on| s.https.ssl_redirect = on),
            "force-ssl-redirect" => boolean(value).map(|on| s.https.force_ssl_redirect = on),
            "http-redirect-code" => match value.parse::<u16>() {
                Ok(code @ (301 | 302 | 307 | 308)) => {
                    s.https.redirect_code = code;
                    Ok(())
                }
                _ => Err("expected 301, 302, 307 or 308".to_owned()),
            },
            "no-tls-redirect-locations" => {
                s.https.no_redirect_locations =
                    value.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
                Ok(())
            }
            "hsts" => boolean(value).map(|on| hsts.enabled = on),
            "hsts-max-age" => match value.parse::<u64>() {
                Ok(_) => {
                    hsts.max_age = value.to_owned();
                    Ok(())
                }
                Err(_) => Err("expected whole seconds".to_owned()),
            },
            "hsts-include-subdomains" => boolean(value).map(|on| hsts.include_subdomains = on),
            "hsts-preload" => boolean(value).map(|on| hsts.preload = on),
            "proxy-set-headers" => reference(value).map(|r| header_keys.proxy_set_headers = Some(r)),
            "add-headers" => reference(value).map(|r| header_keys.add_headers = Some(r)),
            "hide-headers" => {
                header_keys.hide_headers =
                    value.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect();
                Ok(())
            }
            "server-tokens" => boolean(value).map(|on| header_keys.server_tokens = on),
            "allow-backend-server-header" => {
                boolean(value).map(|on| header_keys.allow_backend_server_header = on)
            }
            "custom-http-errors" => {
                let (codes, bad) = status_list(value);
                s.custom_errors = codes;
                if bad.is_empty() {
                    Ok(())
                } else {
                    Err(format!("not statuses 400–599, left out: {}", bad.join(", ")))
                }
            }
            "disable-stream-access-log" => boolean(value).map(|off| s.stream.access_log = !off),
            "skip-access-log-urls" => {
                s.skip_access_log_urls =
                    value.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
                Ok(())
            }
            "proxy-stream-timeout" => seconds(value).map(|d| s.stream.timeout = d),
            "proxy-stream-next-upstream" => boolean(value).map(|on| s.stream.next_upstream = on),
            "proxy-stream-next-upstream-timeout" => {
                // `0`: no limit, as nginx's `proxy_next_upstream_timeout 0`.
                let limit = if value == "0" { Ok(Duration::MAX) } else { seconds(value) };
                limit.map(|d| s.stream.next_upstream_timeout = d)
            }
            "proxy-stream-next-upstream-tries" => {
                value.parse::<u32>().map(|n| s.stream.next_upstream_tries = n).map_err(|_| WHOLE.to_owned())
            }
            "proxy-stream-responses" => {
                value.parse::<u32>().map(|n| s.stream.responses = n).map_err(|_| WHOLE.to_owned())
            }
            "proxy-protocol-header-timeout" => {
                seconds(value).map(|d| s.forwarding.proxy_protocol_timeout = d)
            }
            "use-proxy-protocol" => boolean(value).map(|on| s.forwarding.proxy_protocol = on),
            "load-balance" => match value {
                "round_robin" => {
                    s.load_balance = ingress_core::LoadBalance::RoundRobin;
                    Ok(())
                }
                "ewma" => {
                    s.load_balance = ingress_core::LoadBalance::Ewma;
                    Ok(())
                }
                _ => Err("expected `round_robin` or `ewma`".to_owned()),
            },
            "limit-req-status-code" => status_code(value).map(|code| s.limit_req_status = code),
            "limit-conn-status-code" => status_code(value).map(|code| s.limit_conn_status = code),
            "no-auth-locations" => {
                s.no_auth_locations =
                    value.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
                Ok(())
            }
            // Read with the Ingresses' annotations (it limits `custom-headers`).
            "global-allowed-response-headers" => Ok(()),
            // Read with the Ingresses (the default of their `service-upstream`).
            "service-upstream" => match value {
                "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false"
                | "False" => Ok(()),
                _ => Err("expected `true` or `false`".to_owned()),
            },
            range if SOURCE_RANGES.contains(&range) => match ingress_core::parse_cidrs(value) {
                Ok(list) => {
                    match range {
                        "whitelist-source-range" => s.access.allow = list,
                        "denylist-source-range" => s.access.deny = list,
                        _ => s.access.block = list,
                    }
                    Ok(())
                }
                Err(e) => {
                    closing.push(key.as_str());
                    Err(format!("{e}: every route answers 503 until it is fixed (fail closed)"))
                }
            },
            restriction if RESTRICTIONS.contains(&restriction) => {
                if !value.is_empty() {
                    closing.push(key.as_str());
                }
                Err("access restrictions in the ConfigMap are not supported yet: every route answers 503 \
                     until the key is removed (fail closed)"
                    .to_owned())
            }
            _ => Err(keys::not_applied(key)),
        };
        if let Err(reason) = applied {
            ignored.push(Ignored { key: key.clone(), reason: format!("value `{value}`: {reason}") });
        }
    }
    s.https.hsts = hsts.header();
    let (request, response, left_out) = headers::edits(&header_keys, references);
    (s.request_headers, s.response_headers) = (request, response);
    ignored.extend(left_out.into_iter().map(|(key, reason)| Ignored { key: key.to_owned(), reason }));
    for (key, reason) in log_keys.apply(&mut s) {
        let value = data.get(key).map_or("", |v| v.trim());
        ignored.push(Ignored { key: key.to_owned(), reason: format!("value `{value}`: {reason}") });
    }
    let global = global_auth::build(&auth_keys);
    s.global_auth = global.auth;
    for (key, reason) in global.reported {
        let value = data.get(key).map_or("", |v| v.trim());
        ignored.push(Ignored { key: key.to_owned(), reason: format!("value `{value}`: {reason}") });
    }
    if global.close {
        closing.push("global-auth-url");
    }
    if !closing.is_empty() {
        s.closed = Some(format!("ConfigMap access restriction not applied: {}", closing.join(", ")));
    }
    (s, ignored)
}

/// A status nginx's `limit_req_status`/`limit_conn_status` take: 400–599.
fn status_code(v: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|c| (400..600).contains(c))
        .ok_or_else(|| "expected a status from 400 to 599".to_owned())
}

/// `custom-http-errors`: comma-separated statuses; as ingress-nginx, an entry that is not one
/// is left out (reported) and the others apply.
fn status_list(v: &str) -> (Vec<u16>, Vec<String>) {
    let mut codes = Vec::new();
    let mut bad = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.parse::<u16>() {
            Ok(code) if (400..600).contains(&code) => codes.push(code),
            _ => bad.push(format!("`{entry}`")),
        }
    }
    (codes, bad)
}

/// A ConfigMap named as `namespace/name`.
fn reference(v: &str) -> Result<String, String> {
    match v.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok(v.to_owned()),
        _ => Err("expected a ConfigMap as `namespace/name`".to_owned()),
    }
}

/// nginx time: plain seconds, or a number with `ms`, `s`, `m`, `h`.
fn seconds(v: &str) -> Result<Duration, String> {
    let (num, unit) = split_unit(v);
    let n: u64 = num.parse().map_err(|_| "expected a duration such as `60`, `60s` or `500ms`".to_owned())?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => return Err(format!("unknown time unit `{other}`")),
    };
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// nginx size: bytes, or a number with `k`, `m`, `g` (either case). `0` means unlimited.
fn size(v: &str) -> Result<u64, String> {
    let (num, unit) = split_unit(v);
    let n: u64 = num.parse().map_err(|_| "expected a size such as `1m`, `512k` or `0`".to_owned())?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}`")),
    };
    n.checked_mul(mult).ok_or_else(|| "too large".to_owned())
}

const WHOLE: &str = "expected a whole number";

/// ingress-nginx's integer seconds (it appends the `s`): `60`, not `60s`; at least `min`.
fn whole_seconds(v: &str, min: u64) -> Result<Duration, String> {
    let n: u64 = v.parse().map_err(|_| "expected whole seconds such as `60` (no unit)".to_owned())?;
    if n < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(Duration::from_secs(n))
}

/// An nginx buffer size: digits with an optional `k` or `m` (either case); not zero.
fn nginx_size(v: &str) -> Result<usize, String> {
    let (num, unit) = split_unit(v);
    let n: usize = num.parse().map_err(|_| "expected a size such as `1k` or `8k`".to_owned())?;
    let mult = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        other => return Err(format!("unknown size unit `{other}`")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err("must not be zero".into()),
        Some(size) => Ok(size),
        None => Err("too large".into()),
    }
}

/// `large-client-header-buffers`: `<number> <size>`, as nginx reads it (`4 8k`).
fn header_buffers(v: &str) -> Result<(usize, usize), String> {
    let mut parts = v.split_ascii_whitespace();
    let (Some(n), Some(size), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected `<number> <size>` such as `4 8k`".into());
    };
    let n: usize =
        n.parse().ok().filter(|&n| n > 0).ok_or("the number of buffers must be a whole number above 0")?;
    Ok((n, nginx_size(size)?))
}

fn count(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        // ingress-nginx: 0 means "no limit"; a bound keeps a dead backend from being retried forever.
        Ok(0) => Ok(10),
        Ok(n) => Ok(n.min(10)),
        Err(_) => Err("expected a whole number".into()),
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "true" | "True" | "TRUE" | "yes" | "on" => Ok(true),
        "false" | "False" | "FALSE" | "no" | "off" => Ok(false),
        _ => Err("expected `true` or `false`".into()),
    }
}

/// A header name (a token), lower-cased.
fn header_name(v: &str) -> Result<String, String> {
    if ingress_core::is_token(v) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err("expected a header name such as `X-Forwarded-For`".into())
    }
}

fn split_unit(v: &str) -> (&str, &str) {
    let at = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    (&v[..at], &v[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn ingress_nginx_keys_apply() {
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[
                ("proxy-connect-timeout", "2"),
                ("proxy-read-timeout", "120s"),
                ("proxy-send-timeout", "1m"),
                ("proxy-body-size", "8m"),
                ("proxy-next-upstream-tries", "2"),
                ("disable-access-log", "true"),
            ]),
            &BTreeMap::new(),
        );
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(s.timeouts.connect, Duration::from_secs(2));
        assert_eq!(s.timeouts.read, Duration::from_secs(120));
        assert_eq!(s.timeouts.write, Duration::from_secs(60));
        assert_eq!(s.max_body_size, Some(8 << 20));
        assert_eq!(s.max_attempts, 2);
        assert!(!s.access_log);
    }

    #[test]
    fn client_limit_keys_parse_as_ingress_nginx_reads_them() {
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[
                ("client-header-timeout", "10"),
                ("client-body-timeout", "20"),
                ("keep-alive", "0"),
                ("keep-alive-requests", "50"),
                ("client-header-buffer-size", "2k"),
                ("large-client-header-buffers", "8  16K"),
                ("enable-underscores-in-headers", "true"),
                ("ignore-invalid-headers", "false"),
            ]),
            &BTreeMap::new(),
        );
        assert!(ignored.is_empty(), "{ignored:?}");
        let c = s.client;
        assert_eq!((c.header_timeout, c.body_timeout), (Duration::from_secs(10), Duration::from_secs(20)));
        assert_eq!((c.keepalive_timeout, c.keepalive_requests), (Duration::ZERO, 50));
        assert_eq!(
            (c.header_buffer_size, c.large_header_buffers, c.large_header_buffer_size),
            (2048, 8, 16384)
        );
        assert!(c.underscores_in_headers && !c.ignore_invalid_headers);

        // As ingress-nginx: `60s` is not an integer, and a bad value keeps the default.
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[
                ("client-header-timeout", "60s"),
                ("keep-alive", "-1"),
                ("large-client-header-buffers", "8k"),
                ("client-header-buffer-size", "0"),
            ]),
            &BTreeMap::new(),
        );
        assert_eq!(ignored.len(), 4, "{ignored:?}");
        assert_eq!(s.client, ingress_proxy::ClientLimits::default());
    }

    #[test]
    fn forwarding_keys_as_ingress_nginx() {
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[
                ("use-forwarded-headers", "true"),
                ("compute-full-forwarded-for", "true"),
                ("forwarded-for-header", "X-Client-IP"),
                ("proxy-real-ip-cidr", "10.0.0.0/8, 192.168.0.0/16"),
            ]),
            &BTreeMap::new(),
        );
        assert!(ignored.is_empty(), "{ignored:?}");
        let f = &s.forwarding;
        assert!(f.use_forwarded_headers && f.compute_full_forwarded_for && !f.enable_real_ip);
        assert_eq!(f.forwarded_for_header, "x-client-ip");
        assert_eq!(f.trusted.len(), 2);
        assert_eq!(RuntimeSettings::default().forwarding.trusted, [ingress_core::Cidr::ANY_IPV4]);

        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[("proxy-real-ip-cidr", "10.0.0.0/8,10.0.0.0/99")]),
            &BTreeMap::new(),
        );
        assert_eq!(ignored.len(), 1);
        assert!(s.forwarding.trusted.is_empty(), "a bad list trusts no one, not everyone");
        let (_, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[("forwarded-for-header", "x y")]),
            &BTreeMap::new(),
        );
        assert_eq!(ignored.len(), 1);
    }

    #[test]
    fn https_redirect_and_hsts_keys() {
        let (s, ignored) = from_configmap(&RuntimeSettings::default(), &BTreeMap::new(), &BTreeMap::new());
        assert!(ignored.is_empty());
        assert_eq!(s.https.hsts.as_deref(), Some("max-age=31536000; includeSubDomains"));
        assert!(s.https.ssl_redirect && !s.https.force_ssl_redirect);
        assert_eq!(s.https.redirect_code, 308);
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[
                ("hsts-max-age", "600"),
                ("hsts-include-subdomains", "false"),
                ("hsts-preload", "true"),
                ("http-redirect-code", "301"),
                ("no-tls-redirect-locations", "/a, /b"),
                ("force-ssl-redirect", "true"),
            ]),
            &BTreeMap::new(),
        );
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(s.https.hsts.as_deref(), Some("max-age=600; preload"));
        assert_eq!((s.https.redirect_code, s.https.force_ssl_redirect), (301, true));
        assert_eq!(s.https.no_redirect_locations, ["/a", "/b"]);
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[("hsts", "false"), ("http-redirect-code", "303"), ("hsts-max-age", "1y")]),
            &BTreeMap::new(),
        );
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        assert_eq!((s.https.hsts, s.https.redirect_code), (None, 308));
    }

    #[test]
    fn access_restrictions_close_every_route_until_applied() {
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[("block-referers", "~evil"), ("block-user-agents", ""), ("keep-alive", "5")]),
            &BTreeMap::new(),
        );
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        let closed = s.closed.unwrap();
        assert!(closed.contains("block-referers") && !closed.contains("block-user-agents"), "{closed}");
        assert_eq!(s.client.keepalive_timeout, Duration::from_secs(5), "the other keys apply");
    }

    #[test]
    fn source_ranges_apply_and_a_bad_one_closes_every_route() {
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[
                ("whitelist-source-range", "10.0.0.0/8, 2001:db8::/32"),
                ("denylist-source-range", "10.9.0.0/16"),
                ("block-cidrs", "192.0.2.1,"),
            ]),
            &BTreeMap::new(),
        );
        assert!(ignored.is_empty() && s.closed.is_none(), "{ignored:?}");
        assert_eq!((s.access.allow.len(), s.access.deny.len(), s.access.block.len()), (2, 1, 1));
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[("block-cidrs", "10.0.0.0/8, nope")]),
            &BTreeMap::new(),
        );
        assert_eq!(ignored.len(), 1);
        assert!(s.closed.unwrap().contains("block-cidrs"), "fail closed");
    }

    #[test]
    fn defaults_follow_ingress_nginx() {
        let (s, ignored) = from_configmap(&RuntimeSettings::default(), &BTreeMap::new(), &BTreeMap::new());
        assert!(ignored.is_empty());
        assert_eq!(s.max_body_size, Some(1 << 20));
        assert_eq!(s.timeouts.connect, Duration::from_secs(5));
        let (s, _) =
            from_configmap(&RuntimeSettings::default(), &data(&[("proxy-body-size", "0")]), &BTreeMap::new());
        assert_eq!(s.max_body_size, None);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_ignored_not_fatal() {
        let (s, ignored) = from_configmap(
            &RuntimeSettings::default(),
            &data(&[("proxy-read-timeout", "soon"), ("no-such-key", "1"), ("proxy-connect-timeout", "3")]),
            &BTreeMap::new(),
        );
        let keys: Vec<&str> = ignored.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["no-such-key", "proxy-read-timeout"]);
        assert_eq!(s.timeouts.read, Duration::from_secs(60), "bad value keeps the default");
        assert_eq!(s.timeouts.connect, Duration::from_secs(3), "good keys still apply");
    }
}
