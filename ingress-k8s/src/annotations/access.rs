//! The source range family: `whitelist-source-range` (ingress-nginx's older name of
//! `allowlist-source-range`) and `denylist-source-range`, on the client's real address.
//!
//! As ingress-nginx's `ipallowlist` and `ipdenylist` parsers: comma-separated addresses and
//! CIDR ranges, each trimmed; an Ingress's list replaces the ConfigMap's of the same kind.
//! A value that is empty or has an entry that is neither (a trailing comma included) denies
//! the Ingress: its paths answer `503`, as ingress-nginx denies the location. When both allow
//! names are set, `allowlist-source-range` is the one read.

use std::collections::BTreeMap;

use ingress_core::{Cidr, RoutePolicy};

use super::Read;

/// What each annotation does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "allowlist-source-range" | "whitelist-source-range" => {
            "only clients from these addresses and CIDR ranges (the real client address) are let in, \
             others get 403; replaces the ConfigMap's `whitelist-source-range`; a bad list denies the \
             Ingress (503)"
        }
        "denylist-source-range" => {
            "clients from these addresses and CIDR ranges get 403 (checked before the allowlist); \
             replaces the ConfigMap's `denylist-source-range`; a bad list denies the Ingress (503)"
        }
        _ => return None,
    })
}

/// A list as ingress-nginx's `ParseIPNets` reads it: every entry must parse.
fn ranges(value: &str) -> Result<Vec<Cidr>, String> {
    value
        .split(',')
        .map(str::trim)
        .map(|entry| entry.parse::<Cidr>().map_err(|e| format!("{e}; ingress-nginx denies the location")))
        .collect()
}

/// Reads the family's annotations present in `ours` into `policy`; a rejected one denies the
/// Ingress (the caller closes it).
pub(super) fn read<'a>(ours: &BTreeMap<&'a str, &str>, policy: &mut RoutePolicy) -> BTreeMap<&'a str, Read> {
    let mut outcomes = BTreeMap::new();
    let allow = ["allowlist-source-range", "whitelist-source-range"]
        .into_iter()
        .filter_map(|name| ours.get_key_value(name))
        .collect::<Vec<_>>();
    // The primary name wins when it has a value, as ingress-nginx reads its aliases.
    let chosen = allow.iter().find(|(_, v)| !v.is_empty()).or(allow.first()).map(|(k, _)| **k);
    for &(&name, &value) in &allow {
        if Some(name) != chosen {
            let other = chosen.unwrap_or("allowlist-source-range");
            outcomes.insert(name, Read::Ignored(format!("`{other}` is set too, and is the one read")));
            continue;
        }
        outcomes.insert(
            name,
            match ranges(value) {
                Ok(list) => {
                    let what = format!("only clients from {} (others 403)", shown(&list));
                    policy.allow_ranges = Some(list.into());
                    Read::Applied(what)
                }
                Err(e) => Read::Rejected(e),
            },
        );
    }
    if let Some((&name, &value)) = ours.get_key_value("denylist-source-range") {
        outcomes.insert(
            name,
            match ranges(value) {
                Ok(list) => {
                    let what = format!("clients from {} get 403", shown(&list));
                    policy.deny_ranges = Some(list.into());
                    Read::Applied(what)
                }
                Err(e) => Read::Rejected(e),
            },
        );
    }
    outcomes
}

fn shown(list: &[Cidr]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
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
    fn lists_of_addresses_and_ranges() {
        let (p, out) = run(&[
            ("whitelist-source-range", " 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32"),
            ("denylist-source-range", "10.9.0.0/16"),
        ]);
        assert_eq!(p.allow_ranges.unwrap().len(), 3);
        assert_eq!(p.deny_ranges.unwrap().len(), 1);
        assert!(out.values().all(|r| matches!(r, Read::Applied(_))), "{out:?}");
    }

    #[test]
    fn a_bad_entry_or_a_trailing_comma_is_rejected() {
        for bad in ["10.0.0.0/8,", "", "10.0.0.0/33", "10.0.0.0/8, nope", "10.0.0.0/8 10.1.0.0/16"] {
            let (p, out) = run(&[("whitelist-source-range", bad)]);
            assert!(p.allow_ranges.is_none(), "{bad:?}");
            assert!(matches!(out["whitelist-source-range"], Read::Rejected(_)), "{bad:?}");
        }
    }

    #[test]
    fn the_primary_allow_name_wins() {
        let (p, out) =
            run(&[("allowlist-source-range", "10.0.0.0/8"), ("whitelist-source-range", "192.0.2.0/24")]);
        assert_eq!(p.allow_ranges.unwrap()[0].to_string(), "10.0.0.0/8");
        assert!(matches!(out["whitelist-source-range"], Read::Ignored(_)));
        let (p, _) = run(&[("allowlist-source-range", ""), ("whitelist-source-range", "192.0.2.0/24")]);
        assert_eq!(
            p.allow_ranges.unwrap()[0].to_string(),
            "192.0.2.0/24",
            "an empty primary falls to the alias"
        );
    }
}
