//! The upstream limits family: timeouts, body size, attempts, and the access log switch.
//!
//! As in ingress-nginx (its `proxy` parser), a bad value falls back to the ConfigMap's
//! setting for that route instead of failing the Ingress.

use std::collections::BTreeMap;

use ingress_core::{BodyLimit, RoutePolicy};

use super::Outcome;
use super::values::{go_bool, go_int, seconds, size};

/// ingress-nginx treats `proxy-next-upstream-tries: 0` as unlimited; Ferry bounds it so that a
/// dead backend is not retried for ever (the ConfigMap key does the same).
const MAX_TRIES: u32 = 10;

/// What each annotation of the family does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "proxy-connect-timeout" => "seconds to connect to an endpoint",
        "proxy-read-timeout" => "seconds to wait for each read from an endpoint",
        "proxy-send-timeout" => "seconds to wait for each write to an endpoint",
        "proxy-body-size" => "largest request body (`0`: unlimited), else 413",
        "proxy-next-upstream-tries" => "attempts per request (`0`: Ferry's bound of 10)",
        "enable-access-log" => "writes this Ingress's requests to the access log, or not",
        _ => return None,
    })
}

/// Reads the family's annotations present in `ours` into `policy`.
pub(super) fn read<'a>(
    ours: &BTreeMap<&'a str, &str>,
    policy: &mut RoutePolicy,
) -> BTreeMap<&'a str, Outcome> {
    let mut outcomes = BTreeMap::new();
    for (&name, &value) in ours {
        let outcome = match name {
            "proxy-connect-timeout" => seconds(value).map(|d| {
                policy.connect_timeout = Some(d);
                format!("connect timeout {}s", d.as_secs())
            }),
            "proxy-read-timeout" => seconds(value).map(|d| {
                policy.read_timeout = Some(d);
                format!("read timeout {}s", d.as_secs())
            }),
            "proxy-send-timeout" => seconds(value).map(|d| {
                policy.send_timeout = Some(d);
                format!("send timeout {}s", d.as_secs())
            }),
            "proxy-body-size" => size(value).map(|n| {
                let limit = if n == 0 { BodyLimit::Unlimited } else { BodyLimit::Bytes(n) };
                policy.max_body_size = Some(limit);
                match limit {
                    BodyLimit::Unlimited => "request bodies unlimited".to_owned(),
                    BodyLimit::Bytes(n) => format!("request bodies up to {n} bytes"),
                }
            }),
            "proxy-next-upstream-tries" => tries(value).map(|n| {
                policy.max_attempts = Some(n);
                format!("up to {n} attempts")
            }),
            "enable-access-log" => go_bool(value).map(|on| {
                policy.access_log = Some(on);
                if on { "requests are logged" } else { "requests are not logged" }.to_owned()
            }),
            _ => continue,
        };
        outcomes.insert(name, outcome);
    }
    outcomes
}

fn tries(value: &str) -> Result<u32, String> {
    match go_int(value)? {
        0 => Ok(MAX_TRIES),
        n if n > 0 => Ok(u32::try_from(n).unwrap_or(MAX_TRIES).min(MAX_TRIES)),
        _ => Err("expected a whole number of attempts, 0 or more".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn read_all(pairs: &[(&'static str, &'static str)]) -> (RoutePolicy, BTreeMap<&'static str, Outcome>) {
        super::super::read_family(pairs, read)
    }

    #[test]
    fn values_as_ingress_nginx_reads_them() {
        let (p, o) = read_all(&[
            ("proxy-connect-timeout", "2"),
            ("proxy-read-timeout", "3600"),
            ("proxy-send-timeout", "30"),
            ("proxy-body-size", "0"),
            ("proxy-next-upstream-tries", "0"),
            ("enable-access-log", "false"),
            ("something-else", "x"),
        ]);
        assert!(o.values().all(Result::is_ok), "{o:?}");
        assert_eq!(o.len(), 6);
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(p.read_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(p.send_timeout, Some(Duration::from_secs(30)));
        assert_eq!(p.max_body_size, Some(BodyLimit::Unlimited));
        assert_eq!(p.max_attempts, Some(MAX_TRIES));
        assert_eq!(p.access_log, Some(false));
        let (p, _) = read_all(&[("proxy-body-size", "8m"), ("proxy-next-upstream-tries", "2")]);
        assert_eq!((p.max_body_size, p.max_attempts), (Some(BodyLimit::Bytes(8 << 20)), Some(2)));
    }

    #[test]
    fn bad_values_change_nothing() {
        let (p, o) = read_all(&[
            ("proxy-connect-timeout", "5s"),
            ("proxy-read-timeout", "0"),
            ("proxy-body-size", "1mb"),
            ("proxy-next-upstream-tries", "-1"),
            ("enable-access-log", "yes"),
        ]);
        assert!(o.values().all(Result::is_err), "{o:?}");
        assert_eq!(p, RoutePolicy::default());
    }
}
