//! The upstream request family: `upstream-vhost`, `x-forwarded-prefix`, `proxy-http-version`,
//! `proxy-request-buffering`, `proxy-buffering`, `client-body-buffer-size`,
//! `proxy-next-upstream` and `proxy-next-upstream-timeout`.
//!
//! Ferry streams bodies both ways and speaks HTTP/1.1 to endpoints: a value asking for what it
//! already does is `applied`, one asking for something else is `ignored` with what happens
//! instead.

use std::collections::BTreeMap;
use std::time::Duration;

use ingress_core::RoutePolicy;

use super::Read;
use super::values::{go_int, only, size};

/// What each annotation of the family does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "upstream-vhost" => "the `Host` header sent upstream",
        "x-forwarded-prefix" => "`X-Forwarded-Prefix` sent upstream when the path is rewritten",
        "proxy-http-version" => "`1.1` (what Ferry speaks to endpoints); `1.0` is ignored with a note",
        "proxy-request-buffering" => "`off` (Ferry streams request bodies); `on` is ignored with a note",
        "proxy-buffering" => {
            "`off` (Ferry streams responses, ingress-nginx's default); `on` is ignored with a note"
        }
        "client-body-buffer-size" => "validated; ignored (there is no request buffer to size)",
        "proxy-next-upstream" => {
            "`error timeout` (Ferry's retries) or `off`; other conditions are ignored with a note"
        }
        "proxy-next-upstream-timeout" => "seconds a request may spend on retries (`0`: no limit)",
        "custom-http-errors" => {
            "these statuses (from the endpoint or the proxy) are answered by the `default-backend` Service \
             (else the controller's default backend, else the built-in 404) with ingress-nginx's `X-Code` … \
             headers; replaces the ConfigMap's list"
        }
        _ => return None,
    })
}

/// `custom-http-errors`: statuses 400–599, comma-separated (ingress-nginx's
/// `^(?:[4,5]\d{2},?)*$`, spaces removed first).
pub(crate) fn custom_errors(value: &str) -> Result<Vec<u16>, String> {
    let compact: String = value.chars().filter(|c| *c != ' ').collect();
    let codes: Option<Vec<u16>> = compact
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|c| c.parse::<u16>().ok().filter(|n| (400..600).contains(n) && c.len() == 3))
        .collect();
    match codes {
        Some(codes) if !codes.is_empty() => Ok(codes),
        _ => Err("expected HTTP statuses 400–599, comma-separated, such as `404,503`".to_owned()),
    }
}

/// What `default-backend` does, for the documentation.
pub(super) const DEFAULT_BACKEND_DOC: &str = "a Service of the Ingress's namespace (its first port) that takes requests while the route's own backend has no ready endpoint, instead of 503";

/// `default-backend`: a Service name (a DNS-1035 label, as ingress-nginx validates it) of the
/// Ingress's namespace, and its first port (`service_port`).
pub(super) fn default_backend(
    value: &str,
    service_port: &dyn Fn(&str) -> Option<u16>,
) -> Result<(String, u16), String> {
    let value = value.trim();
    let label = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('-')
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !label {
        return Err("expected a Service name of the Ingress's namespace".into());
    }
    match service_port(value) {
        Some(port) => Ok((value.to_owned(), port)),
        None => Err(format!("service {value} not found in the Ingress's namespace, or it has no port")),
    }
}

/// The conditions Ferry retries on, as `proxy-next-upstream` names them.
const RETRIED: [&str; 2] = ["error", "timeout"];
/// Every condition ingress-nginx accepts.
const CONDITIONS: [&str; 12] = [
    "error",
    "timeout",
    "invalid_header",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_403",
    "http_404",
    "http_429",
    "non_idempotent",
    "off",
];

/// Reads the family's annotations present in `ours` into `policy`.
pub(super) fn read<'a>(ours: &BTreeMap<&'a str, &str>, policy: &mut RoutePolicy) -> BTreeMap<&'a str, Read> {
    let mut outcomes = BTreeMap::new();
    for (&name, &value) in ours {
        let outcome = match name {
            "upstream-vhost" => match server_name(value) {
                Ok(host) => {
                    let what = format!("Host: {host} upstream");
                    policy.upstream_host = Some(host);
                    Read::Applied(what)
                }
                Err(e) => Read::Rejected(e),
            },
            "x-forwarded-prefix" => match prefix(value) {
                Ok(prefix) => {
                    let what = if policy.rewrite_target.is_some() {
                        format!("X-Forwarded-Prefix: {prefix} on rewritten requests")
                    } else {
                        "no effect without `rewrite-target` (as in ingress-nginx)".to_owned()
                    };
                    policy.forwarded_prefix = Some(prefix);
                    Read::Applied(what)
                }
                Err(e) => Read::Rejected(e),
            },
            "proxy-http-version" => match value.trim() {
                "1.1" => Read::Applied("HTTP/1.1 to endpoints".into()),
                "1.0" => Read::Ignored("Ferry speaks HTTP/1.1 to endpoints (with keep-alive); 1.0 is not offered".into()),
                _ => Read::Rejected("expected `1.0` or `1.1`".into()),
            },
            "proxy-request-buffering" => match value.trim().to_ascii_lowercase().as_str() {
                "off" => Read::Applied("request bodies are streamed to the endpoint as they arrive".into()),
                "on" => Read::Ignored(
                    "Ferry streams request bodies as they arrive (as `off`); it does not read the whole body first"
                        .into(),
                ),
                _ => Read::Rejected("expected `on` or `off`".into()),
            },
            "proxy-buffering" => match value.trim().to_ascii_lowercase().as_str() {
                "off" => Read::Applied("responses are streamed to the client as they arrive".into()),
                "on" => Read::Ignored("Ferry streams responses as they arrive (as `off`, ingress-nginx's default)".into()),
                _ => Read::Rejected("expected `on` or `off`".into()),
            },
            "client-body-buffer-size" => match size(value.trim()) {
                Ok(_) => Read::Ignored("Ferry streams request bodies: there is no buffer to size".into()),
                Err(e) => Read::Rejected(e),
            },
            "custom-http-errors" => match custom_errors(value) {
                Ok(codes) => {
                    let list: Vec<String> = codes.iter().map(ToString::to_string).collect();
                    policy.custom_errors = Some(codes.into());
                    Read::Applied(format!(
                        "statuses {} answered by the default-backend Service, else the controller's default backend",
                        list.join(", ")
                    ))
                }
                Err(e) => Read::Rejected(e),
            },
            "proxy-next-upstream" => next_upstream(value, policy),
            "proxy-next-upstream-timeout" => match go_int(value) {
                Ok(0) => Read::Applied("no time limit on retries".into()),
                Ok(n) if n > 0 => {
                    policy.next_upstream_timeout = Some(Duration::from_secs(n.unsigned_abs()));
                    Read::Applied(format!("retries stop after {n}s"))
                }
                _ => Read::Rejected("expected whole seconds, 0 or more".into()),
            },
            _ => continue,
        };
        outcomes.insert(name, outcome);
    }
    outcomes
}

/// `proxy-next-upstream`: space-separated conditions.
fn next_upstream(value: &str, policy: &mut RoutePolicy) -> Read {
    let conditions: Vec<&str> = value.split_ascii_whitespace().collect();
    if conditions.is_empty() || conditions.iter().any(|c| !CONDITIONS.contains(c)) {
        return Read::Rejected(format!("expected conditions among {}", CONDITIONS.join(", ")));
    }
    if conditions.contains(&"off") {
        policy.max_attempts = Some(1);
        return Read::Applied("no retries".into());
    }
    let unsupported: Vec<&str> = conditions.iter().copied().filter(|c| !RETRIED.contains(c)).collect();
    if unsupported.is_empty() {
        Read::Applied("retries on connection errors and timeouts".into())
    } else {
        Read::Ignored(format!(
            "Ferry retries on connection errors and timeouts only; not on {}",
            unsupported.join(", ")
        ))
    }
}

/// A host name for `upstream-vhost`: ingress-nginx's server-name characters, without nginx
/// variables.
fn server_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.contains('$') {
        return Err("nginx variables (`$host`, `$namespace`…) are not supported; name the host".into());
    }
    if !only(value, b"-._~:[]") {
        return Err("expected a host name such as `api.internal` or `api.internal:8080`".into());
    }
    Ok(value.to_owned())
}

/// An `X-Forwarded-Prefix` value: ingress-nginx's `RegexPathWithCapture` characters.
fn prefix(value: &str) -> Result<String, String> {
    if !only(value, b"-._~/:") {
        return Err("expected a path such as `/api` (letters, digits and `-._~/:`)".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_all(pairs: &[(&'static str, &'static str)]) -> (RoutePolicy, BTreeMap<&'static str, Read>) {
        super::super::read_family(pairs, read)
    }

    fn verdict(r: &Read) -> &'static str {
        match r {
            Read::Applied(_) => "applied",
            Read::Ignored(_) => "ignored",
            Read::Rejected(_) => "rejected",
        }
    }

    #[test]
    fn what_ferry_does_is_applied_and_what_it_does_not_is_said() {
        let (p, o) = read_all(&[
            ("upstream-vhost", "api.internal"),
            ("x-forwarded-prefix", "/shop"),
            ("rewrite-target", "/$1"),
            ("proxy-http-version", "1.0"),
            ("proxy-request-buffering", "on"),
            ("proxy-buffering", "off"),
            ("client-body-buffer-size", "16k"),
            ("proxy-next-upstream", "error timeout http_502"),
            ("proxy-next-upstream-timeout", "5"),
        ]);
        let got: Vec<(&str, &str)> = o.iter().map(|(k, v)| (*k, verdict(v))).collect();
        assert_eq!(
            got,
            [
                ("client-body-buffer-size", "ignored"),
                ("proxy-buffering", "applied"),
                ("proxy-http-version", "ignored"),
                ("proxy-next-upstream", "ignored"),
                ("proxy-next-upstream-timeout", "applied"),
                ("proxy-request-buffering", "ignored"),
                ("upstream-vhost", "applied"),
                ("x-forwarded-prefix", "applied"),
            ]
        );
        assert_eq!(p.upstream_host.as_deref(), Some("api.internal"));
        assert_eq!(p.forwarded_prefix.as_deref(), Some("/shop"));
        assert_eq!(p.next_upstream_timeout, Some(Duration::from_secs(5)));
        assert!(matches!(&o["proxy-next-upstream"], Read::Ignored(why) if why.contains("http_502")));
        let (p, o) = read_all(&[("proxy-next-upstream", "off")]);
        assert_eq!((p.max_attempts, verdict(&o["proxy-next-upstream"])), (Some(1), "applied"));
    }

    #[test]
    fn bad_values_are_rejected() {
        for (name, bad) in [
            ("upstream-vhost", "$service.$namespace.svc"),
            ("upstream-vhost", "a b"),
            ("x-forwarded-prefix", "/a b"),
            ("proxy-http-version", "2"),
            ("proxy-request-buffering", "yes"),
            ("client-body-buffer-size", "1mb"),
            ("proxy-next-upstream", "error sometimes"),
            ("proxy-next-upstream-timeout", "5s"),
        ] {
            let (p, o) = read_all(&[(name, bad)]);
            assert_eq!(verdict(&o[name]), "rejected", "{name}: {bad}");
            assert_eq!(p, RoutePolicy::default(), "{name}: {bad}");
        }
    }
}
