//! The canary family: `canary`, `canary-weight`, `canary-weight-total`, `canary-by-header`,
//! `canary-by-header-value`, `canary-by-header-pattern`, `canary-by-cookie`.
//!
//! As ingress-nginx: a canary Ingress adds no routes; its paths split the traffic of the routes
//! with the same host, path and path type (header, then cookie, then weight); its other
//! annotations are the main Ingress's business. A `canary-*` annotation without
//! `canary: "true"` has no effect.

use std::collections::BTreeMap;

use ingress_core::CanaryRule;

use super::Outcome;
use super::values::{go_bool, go_int, only};

/// What each annotation of the family does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "canary" => {
            "the Ingress adds no routes: its paths split the traffic of the same host, path and path type of another Ingress"
        }
        "canary-weight" => "requests out of the total (100) sent to the canary",
        "canary-weight-total" => "the weight total (above 100)",
        "canary-by-header" => "a header that sends to the canary (`always`) or not (`never`); checked first",
        "canary-by-header-value" => "the header value that sends to the canary",
        "canary-by-header-pattern" => "a regex on the header value that sends to the canary",
        "canary-by-cookie" => {
            "a cookie that sends to the canary (`always`) or not (`never`); checked after the header"
        }
        "affinity-canary-behavior" => {
            "on a canary of a main Ingress with `affinity: cookie`: `sticky` (a session the canary \
             served stays on it) or `legacy` (the canary keeps no sessions)"
        }
        _ => return None,
    })
}

/// Reads the family's annotations present in `ours`: the outcomes, and the rule when the
/// Ingress is a canary.
pub(super) fn read<'a>(ours: &BTreeMap<&'a str, &str>) -> (BTreeMap<&'a str, Outcome>, Option<CanaryRule>) {
    let mut outcomes = BTreeMap::new();
    let enabled = ours.get_key_value("canary").map(|(&k, &v)| (k, go_bool(v)));
    if let Some((key, value)) = &enabled {
        outcomes.insert(
            *key,
            value.clone().map(|on| {
                if on {
                    "a canary: its paths split the traffic of the main Ingress's routes"
                } else {
                    "not a canary"
                }
                .to_owned()
            }),
        );
    }
    let others = ours.iter().filter(|(n, _)| n.starts_with("canary-") || **n == "affinity-canary-behavior");
    if !matches!(enabled, Some((_, Ok(true)))) {
        for (&name, _) in others {
            outcomes.insert(name, Ok("no effect without `canary: \"true\"`".to_owned()));
        }
        return (outcomes, None);
    }
    let mut rule = CanaryRule { weight_total: 100, ..CanaryRule::default() };
    for (&name, &value) in others {
        let outcome = match name {
            "canary-weight" => weight(value).map(|w| {
                rule.weight = w;
                format!("{w} requests in the total to the canary")
            }),
            "canary-weight-total" => weight(value).map(|w| {
                rule.weight_total = w;
                if w > 100 {
                    format!("weights out of {w}")
                } else {
                    format!("{w} is not above 100: weights out of 100")
                }
            }),
            "canary-by-header" => basic(value).map(|h| {
                let what = format!("header {h} decides first");
                rule.header = Some(h);
                what
            }),
            "canary-by-header-value" => basic(value).map(|v| {
                let what = format!("header value {v} sends to the canary");
                rule.header_value = Some(v);
                what
            }),
            "canary-by-header-pattern" => pattern(value).map(|p| {
                let what = format!("header values matching {p} send to the canary");
                rule.header_pattern = Some(p);
                what
            }),
            "canary-by-cookie" => basic(value).map(|c| {
                let what = format!("cookie {c} decides after the header");
                rule.cookie = Some(c);
                what
            }),
            "affinity-canary-behavior" => match value.trim() {
                "sticky" => Ok("a session the canary served stays on it".to_owned()),
                "legacy" => {
                    rule.legacy_affinity = true;
                    Ok("the canary keeps no sessions by cookie".to_owned())
                }
                _ => Err("expected `sticky` or `legacy`".to_owned()),
            },
            _ => continue,
        };
        outcomes.insert(name, outcome);
    }
    (outcomes, Some(rule))
}

fn weight(value: &str) -> Result<u32, String> {
    match go_int(value) {
        Ok(n) if n >= 0 => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        _ => Err("expected a whole number, 0 or more".into()),
    }
}

/// ingress-nginx's `BasicCharsRegex`: letters, digits and `-._~/:`.
fn basic(value: &str) -> Result<String, String> {
    if !only(value, b"-._~/:") {
        return Err("expected letters, digits and `-._~/:`".into());
    }
    Ok(value.to_owned())
}

/// A header pattern: ingress-nginx's `IsValidRegex` characters, and a regex this proxy runs.
fn pattern(value: &str) -> Result<String, String> {
    if !only(value, b"/-._~:^$[](){}*+?|&=\\") {
        return Err("expected a regular expression of letters, digits and regex characters".into());
    }
    regex::bytes::Regex::new(value).map_err(|_| "not a regular expression this proxy can run".to_owned())?;
    Ok(value.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_all(
        pairs: &[(&'static str, &'static str)],
    ) -> (BTreeMap<&'static str, Outcome>, Option<CanaryRule>) {
        let ours: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        read(&ours)
    }

    #[test]
    fn a_canary_pair_reads() {
        let (o, rule) = read_all(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-cookie", "canary"),
            ("canary-weight", "20"),
        ]);
        assert!(o.values().all(Result::is_ok), "{o:?}");
        let rule = rule.unwrap();
        assert_eq!(
            (rule.header.as_deref(), rule.cookie.as_deref(), rule.weight, rule.weight_total),
            (Some("X-Canary"), Some("canary"), 20, 100)
        );
    }

    #[test]
    fn without_canary_true_nothing_splits() {
        let (o, rule) = read_all(&[("canary-weight", "50")]);
        assert!(rule.is_none());
        assert_eq!(o["canary-weight"].as_deref(), Ok("no effect without `canary: \"true\"`"));
        let (o, rule) = read_all(&[("canary", "yes"), ("canary-weight", "50")]);
        assert!(rule.is_none() && o["canary"].is_err());
    }

    #[test]
    fn bad_values_are_rejected_and_leave_the_default() {
        let (o, rule) =
            read_all(&[("canary", "true"), ("canary-weight", "-1"), ("canary-by-header-pattern", "(?=x)")]);
        assert!(o["canary-weight"].is_err() && o["canary-by-header-pattern"].is_err());
        let rule = rule.unwrap();
        assert_eq!((rule.weight, rule.header_pattern), (0, None));
    }
}
