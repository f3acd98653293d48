//! The rate limit family: `limit-rps`, `limit-rpm`, `limit-connections`,
//! `limit-burst-multiplier` and `limit-allowlist` (`limit-whitelist`, its older name).
//!
//! As ingress-nginx's `ratelimit` parser: whole numbers, `0` for none; the burst is the limit
//! times `limit-burst-multiplier` (5 when absent or not a number); the allowlist is addresses
//! and CIDR ranges never limited. ingress-nginx drops every limit of the Ingress when one of
//! these values is not valid (the Ingress is then served unlimited); Ferry closes it instead
//! (`503`), as for every access restriction it cannot apply. The counts are per client
//! address, per Ingress and per replica (the proxy keeps them); `limit-rate` and
//! `limit-rate-after` (bandwidth) are not applied and close the Ingress.

use std::collections::BTreeMap;

use ingress_core::{Cidr, RateLimit, RoutePolicy};

use super::Read;
use super::values::go_int;

/// ingress-nginx's default `limit-burst-multiplier`.
const DEFAULT_BURST_MULTIPLIER: u32 = 5;

/// What each annotation does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "limit-rps" => {
            "requests per second per client address (burst: × `limit-burst-multiplier`), else \
             ConfigMap `limit-req-status-code` (503); per replica"
        }
        "limit-rpm" => "requests per minute per client address, as `limit-rps`",
        "limit-connections" => {
            "requests in flight per client address, else ConfigMap `limit-conn-status-code` (503)"
        }
        "limit-burst-multiplier" => "the burst of `limit-rps`/`limit-rpm` as a multiple of the rate (5)",
        "limit-allowlist" | "limit-whitelist" => "addresses and CIDR ranges never limited",
        _ => return None,
    })
}

/// A whole number of at least 0.
fn count(value: &str) -> Result<u32, String> {
    match go_int(value.trim()) {
        Ok(n) => u32::try_from(n).map_err(|_| "expected a whole number of at least 0".to_owned()),
        Err(e) => Err(e),
    }
}

/// Reads the family's annotations present in `ours` into `policy` (the limits only when every
/// value is valid); which rejected outcomes deny the Ingress is [`denies`].
pub(super) fn read<'a>(ours: &BTreeMap<&'a str, &str>, policy: &mut RoutePolicy) -> BTreeMap<&'a str, Read> {
    let mut outcomes = BTreeMap::new();
    let mut limit = RateLimit { burst_multiplier: DEFAULT_BURST_MULTIPLIER, ..RateLimit::default() };
    let mut valid = true;
    for (name, slot) in [("limit-rps", 0), ("limit-rpm", 1), ("limit-connections", 2)] {
        let Some((&key, &value)) = ours.get_key_value(name) else { continue };
        let read = match count(value) {
            Ok(n) => {
                *[&mut limit.rps, &mut limit.rpm, &mut limit.connections][slot] = n;
                Read::Applied(if n == 0 { "no limit".to_owned() } else { format!("{n} per client address") })
            }
            Err(e) => {
                valid = false;
                Read::Rejected(e)
            }
        };
        outcomes.insert(key, read);
    }
    if let Some((&key, &value)) = ours.get_key_value("limit-burst-multiplier") {
        let read = match count(value) {
            Ok(n) => {
                limit.burst_multiplier = n;
                Read::Applied(format!("burst {n} × the rate"))
            }
            Err(e) => Read::Rejected(format!("{e}; {DEFAULT_BURST_MULTIPLIER} is used, as in ingress-nginx")),
        };
        outcomes.insert(key, read);
    }
    // The primary name wins when it has a value, as ingress-nginx reads its aliases.
    let lists: Vec<(&&str, &&str)> =
        ["limit-allowlist", "limit-whitelist"].into_iter().filter_map(|n| ours.get_key_value(n)).collect();
    let chosen = lists.iter().find(|(_, v)| !v.is_empty()).or(lists.first()).map(|(k, _)| **k);
    for (&key, &value) in lists {
        if Some(key) != chosen {
            outcomes.insert(
                key,
                Read::Ignored(format!("`{}` is set too, and is the one read", chosen.unwrap_or(""))),
            );
            continue;
        }
        let parsed: Result<Vec<Cidr>, _> = if value.is_empty() {
            Ok(Vec::new())
        } else {
            value.split(',').map(|e| e.trim().parse::<Cidr>()).collect()
        };
        let read = match parsed {
            Ok(list) => {
                let what = format!("{} entries never limited", list.len());
                limit.allowlist = list;
                Read::Applied(what)
            }
            Err(e) => {
                valid = false;
                Read::Rejected(e.to_string())
            }
        };
        outcomes.insert(key, read);
    }
    if valid && (limit.rps > 0 || limit.rpm > 0 || limit.connections > 0) {
        policy.rate_limit = Some(Box::new(limit));
    }
    outcomes
}

/// Whether a rejected annotation of this family denies the Ingress (the limits themselves and
/// the allowlist; a bad multiplier only falls back to 5).
pub(super) fn denies(name: &str) -> bool {
    name != "limit-burst-multiplier"
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(pairs: &[(&'static str, &str)]) -> (RoutePolicy, BTreeMap<&'static str, Read>) {
        let ours: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        let mut policy = RoutePolicy::default();
        let out = read(&ours, &mut policy);
        (policy, out)
    }

    #[test]
    fn limits_as_ingress_nginx_reads_them() {
        let (p, out) = run(&[
            ("limit-rps", "5"),
            ("limit-connections", "2"),
            ("limit-whitelist", "10.0.0.0/8, 192.0.2.1"),
        ]);
        let l = p.rate_limit.unwrap();
        assert_eq!((l.rps, l.rpm, l.connections, l.burst_multiplier, l.allowlist.len()), (5, 0, 2, 5, 2));
        assert!(out.values().all(|r| matches!(r, Read::Applied(_))), "{out:?}");
        let (p, _) = run(&[("limit-rpm", "120"), ("limit-burst-multiplier", "2")]);
        assert_eq!(p.rate_limit.unwrap().burst_multiplier, 2);
        let (p, _) = run(&[("limit-rps", "0")]);
        assert!(p.rate_limit.is_none(), "0 is no limit");
    }

    #[test]
    fn bad_values_are_rejected_and_leave_no_half_limit() {
        for pairs in [
            &[("limit-rps", "5r/s")][..],
            &[("limit-rps", "-1")],
            &[("limit-rps", "5"), ("limit-allowlist", "10.0.0.0/8,nope")],
        ] {
            let (p, out) = run(pairs);
            assert!(p.rate_limit.is_none(), "{pairs:?}");
            assert!(out.values().any(|r| matches!(r, Read::Rejected(_))), "{pairs:?}");
        }
        let (p, out) = run(&[("limit-rps", "5"), ("limit-burst-multiplier", "x")]);
        assert_eq!(p.rate_limit.unwrap().burst_multiplier, 5);
        assert!(matches!(out["limit-burst-multiplier"], Read::Rejected(_)));
        assert!(!denies("limit-burst-multiplier") && denies("limit-rps"));
    }
}
