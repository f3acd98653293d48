//! Canary Ingresses (`canary: "true"`), as ingress-nginx splits traffic: a canary Ingress adds
//! no routes; each of its paths gives the route with the same host, path and path type an
//! alternative backend, chosen per request by header, then cookie, then weight.

use regex::bytes::Regex;

/// How requests are split between a route's backend and its canary (the `canary-*`
/// annotations). Checked in ingress-nginx's order: the header, the cookie, the weight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryRule {
    /// `canary-by-header`: the request header that decides.
    pub header: Option<String>,
    /// `canary-by-header-value`: the header value that sends to the canary (instead of
    /// `always`).
    pub header_value: Option<String>,
    /// `canary-by-header-pattern`: a regex on the header value that sends to the canary.
    pub header_pattern: Option<String>,
    /// `canary-by-cookie`: the cookie that decides (`always`, `never`).
    pub cookie: Option<String>,
    /// `canary-weight`: requests out of `weight_total` that go to the canary.
    pub weight: u32,
    /// `canary-weight-total` (100; a smaller value counts as 100, as in ingress-nginx).
    pub weight_total: u32,
    /// `affinity-canary-behavior: legacy`: the canary keeps no sessions by the main route's
    /// affinity cookie (the split is decided anew on every request not pinned to the main
    /// side); by default (`sticky`) a session the canary served stays on it.
    pub legacy_affinity: bool,
}

/// A compiled header pattern: unanchored, as `ngx.re.match` runs it.
pub(crate) fn header_pattern(pattern: &str) -> Result<Regex, String> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("not a regular expression this proxy can run: {e}"))
}

/// A route's canary: its backend and how requests are split.
#[derive(Debug, Clone, Copy)]
pub struct CanaryRoute<'t> {
    /// Where canary requests go.
    pub backend: &'t crate::Backend,
    /// The split.
    pub rule: &'t CanaryRule,
    pub(crate) pattern: Option<&'t Regex>,
}

impl CanaryRoute<'_> {
    /// Whether a request goes to the canary: `header` is the value of the rule's header (if
    /// the request has it), `cookie` the value of its cookie, `roll` a number drawn uniformly
    /// from `1..=total` where `total` is what [`CanaryRoute::weight_total`] says.
    pub fn chooses(&self, header: Option<&str>, cookie: Option<&str>, roll: impl FnOnce(u32) -> u32) -> bool {
        let rule = self.rule;
        if let Some(value) = header.filter(|_| rule.header.is_some()) {
            if let Some(wanted) = rule.header_value.as_deref().filter(|v| !v.is_empty()) {
                if value == wanted {
                    return true;
                }
            } else if let Some(pattern) = self.pattern {
                if pattern.is_match(value.as_bytes()) {
                    return true;
                }
            } else if value == "always" {
                return true;
            } else if value == "never" {
                return false;
            }
        }
        match cookie.filter(|_| rule.cookie.is_some()) {
            Some("always") => return true,
            Some("never") => return false,
            _ => {}
        }
        rule.weight > 0 && roll(self.weight_total()) <= rule.weight
    }

    /// The weight total: `canary-weight-total` when above 100, else 100.
    pub fn weight_total(&self) -> u32 {
        self.rule.weight_total.max(100)
    }
}

/// The value of cookie `name` in a `Cookie` header, as nginx's `$cookie_<name>` reads it.
pub fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{BackendRef, EndpointStore};

    fn with<R>(rule: &CanaryRule, f: impl FnOnce(CanaryRoute<'_>) -> R) -> R {
        let mut store = EndpointStore::new();
        let (key, endpoints) = store.slot(&BackendRef::new("ns", "canary", 80));
        let backend = crate::Backend { key, endpoints };
        let pattern = rule.header_pattern.as_deref().map(|p| header_pattern(p).unwrap());
        f(CanaryRoute { backend: &backend, rule, pattern: pattern.as_ref() })
    }

    #[test]
    fn header_then_cookie_then_weight() {
        let rule = CanaryRule {
            header: Some("x-canary".into()),
            cookie: Some("canary".into()),
            weight: 10,
            ..CanaryRule::default()
        };
        with(&rule, |c| {
            let never_rolls = |_| panic!("no roll");
            assert!(c.chooses(Some("always"), Some("never"), never_rolls));
            assert!(!c.chooses(Some("never"), Some("always"), never_rolls));
            assert!(c.chooses(Some("other"), Some("always"), never_rolls), "another value falls through");
            assert!(!c.chooses(None, Some("never"), never_rolls));
            assert!(c.chooses(None, None, |total| {
                assert_eq!(total, 100);
                10
            }));
            assert!(!c.chooses(None, None, |_| 11));
        });
        let by_value = CanaryRule {
            header: Some("x-region".into()),
            header_value: Some("eu".into()),
            weight: 0,
            ..CanaryRule::default()
        };
        with(&by_value, |c| {
            assert!(c.chooses(Some("eu"), None, |_| 1));
            assert!(!c.chooses(Some("always"), None, |_| 1), "with a value, `always` is just a value");
        });
        let by_pattern = CanaryRule {
            header: Some("x-user".into()),
            header_pattern: Some("^beta-".into()),
            ..CanaryRule::default()
        };
        with(&by_pattern, |c| {
            assert!(c.chooses(Some("beta-7"), None, |_| 1));
            assert!(!c.chooses(Some("prod-7"), None, |_| 1));
        });
        let heavy = CanaryRule { weight: 1, weight_total: 10_000, ..CanaryRule::default() };
        with(&heavy, |c| assert_eq!(c.weight_total(), 10_000));
    }

    #[test]
    fn cookies_as_nginx_reads_them() {
        assert_eq!(cookie_value("a=1; canary=always; b=2", "canary"), Some("always"));
        assert_eq!(cookie_value("canary_x=1", "canary"), None);
        assert_eq!(cookie_value("", "canary"), None);
    }
}
