//! The regex family: `use-regex` and `rewrite-target`.
//!
//! As ingress-nginx: a `rewrite-target` implies regex paths; regex paths apply to every path
//! of the Ingress's hosts, whatever Ingress wrote them (the core builder does that); a bad
//! value leaves the setting off ("defaulting to empty", its `rewrite` parser says).

use std::collections::BTreeMap;

use ingress_core::{RewriteTarget, RoutePolicy};

use super::Outcome;
use super::values::{go_bool, only};

/// What each annotation of the family does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "use-regex" => {
            "every path of the Ingress's hosts is a case-insensitive regex anchored at the start, longest first (linear-time engine)"
        }
        "rewrite-target" => {
            "the path goes upstream as this target, `$1`…`$9` from the path regex; implies `use-regex`"
        }
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
            "use-regex" => go_bool(value).map(|on| {
                policy.use_regex = on;
                if on {
                    "paths are regular expressions on this Ingress's hosts"
                } else {
                    "paths are not regular expressions"
                }
                .to_owned()
            }),
            "rewrite-target" => target(value).map(|target| {
                let what =
                    format!("paths rewritten to `{target}` upstream (regex paths on this Ingress's hosts)");
                policy.rewrite_target = Some(target);
                what
            }),
            _ => continue,
        };
        outcomes.insert(name, outcome);
    }
    outcomes
}

/// ingress-nginx's `RegexPathWithCapture` (letters, digits, `-._~/:$`), and `$` only before a
/// group number.
fn target(value: &str) -> Result<RewriteTarget, String> {
    if !only(value, b"-._~/:$") {
        return Err("expected a path such as `/$2` (letters, digits, `-._~/:` and `$1`…`$9`)".into());
    }
    value.parse::<RewriteTarget>().map_err(|e| e.why.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_all(pairs: &[(&'static str, &'static str)]) -> (RoutePolicy, BTreeMap<&'static str, Outcome>) {
        super::super::read_family(pairs, read)
    }

    #[test]
    fn the_rewrite_idiom_reads() {
        let (p, o) = read_all(&[("use-regex", "true"), ("rewrite-target", "/$2")]);
        assert!(o.values().all(Result::is_ok), "{o:?}");
        assert!(p.use_regex);
        assert_eq!(p.rewrite_target.unwrap().as_str(), "/$2");
    }

    #[test]
    fn bad_values_leave_it_off() {
        for bad in ["/$host", "/a b", "/a?x=1", "/%2F", ""] {
            let (p, o) = read_all(&[("rewrite-target", bad)]);
            assert!(p.rewrite_target.is_none() && o["rewrite-target"].is_err(), "{bad:?}");
        }
        let (p, o) = read_all(&[("use-regex", "yes")]);
        assert!(!p.use_regex && o["use-regex"].is_err());
    }
}
