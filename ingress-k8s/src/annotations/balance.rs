//! The balancing family: `load-balance`, `upstream-hash-by` (and `-subset`, `-subset-size`),
//! `affinity`, `affinity-mode`, `affinity-canary-behavior` and the `session-cookie-*`
//! attributes.
//!
//! As ingress-nginx's `loadbalancing`, `upstreamhashby` and `sessionaffinity` parsers: a value
//! that is not valid counts as absent (the default stays); affinity wins over hashing, which
//! wins over `load-balance`; the cookie attributes only matter with `affinity: cookie`.

use std::collections::BTreeMap;

use ingress_core::{Affinity, Balance, HashBy, LoadBalance, RoutePolicy, SessionCookie, Template};

use super::Read;
use super::values::{go_bool, go_int, only};

/// What each annotation does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "load-balance" => {
            "`round_robin` or `ewma` (the lower moving-average latency of two random endpoints)"
        }
        "upstream-hash-by" => {
            "consistent hashing on an nginx variable expression (`$request_uri`, `$remote_addr`, \
             `$http_x_user`, `$cookie_id`…): ingress-nginx's ring, so the same keys reach the same \
             endpoints and one endpoint change moves about 1/n of them"
        }
        "upstream-hash-by-subset" => "the key picks a subset of endpoints, the endpoint within it is random",
        "upstream-hash-by-subset-size" => "the subsets' size (3)",
        "affinity" => "`cookie`: sticky sessions by cookie",
        "affinity-mode" => {
            "`balanced` (a key on the hash ring: endpoint changes move about 1/n of the sessions) or \
             `persistent` (only the endpoint's leaving moves its sessions)"
        }
        "session-cookie-name" => "the affinity cookie's name (`INGRESSCOOKIE`)",
        "session-cookie-path" => "its `Path` (the rule's path)",
        "session-cookie-domain" => "its `Domain`",
        "session-cookie-expires" => "its `Expires`, in seconds from now",
        "session-cookie-max-age" => "its `Max-Age`, in seconds",
        "session-cookie-samesite" => "its `SameSite` (`Strict`, `Lax`, `None`, as written)",
        "session-cookie-secure" => "`Secure` on plain HTTP too (always on HTTPS)",
        "session-cookie-conditional-samesite-none" => "no `SameSite=None` for browsers that mishandle it",
        "session-cookie-change-on-failure" => "a retry after a failure picks a new endpoint and cookie",
        _ => return None,
    })
}

const COOKIE_ATTRIBUTES: [&str; 10] = [
    "affinity-mode",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-domain",
    "session-cookie-expires",
    "session-cookie-max-age",
    "session-cookie-samesite",
    "session-cookie-secure",
    "session-cookie-conditional-samesite-none",
    "session-cookie-change-on-failure",
];

/// Reads the family into `policy`.
pub(super) fn read<'a>(ours: &BTreeMap<&'a str, &str>, policy: &mut RoutePolicy) -> BTreeMap<&'a str, Read> {
    let mut out = BTreeMap::new();
    let mut balance = Balance { load_balance: None, hash_by: None, affinity: None };
    if let Some((&key, &value)) = ours.get_key_value("load-balance") {
        let read = match value.trim() {
            "round_robin" => {
                balance.load_balance = Some(LoadBalance::RoundRobin);
                Read::Applied("round robin".to_owned())
            }
            "ewma" => {
                balance.load_balance = Some(LoadBalance::Ewma);
                Read::Applied("the lower latency of two random endpoints".to_owned())
            }
            "chash" | "chashsubset" | "sticky_balanced" | "sticky_persistent" => Read::Ignored(
                "set by `upstream-hash-by` and `affinity` (and meaningless without them); the ConfigMap's \
                 `load-balance` stays"
                    .to_owned(),
            ),
            _ => Read::Rejected("expected `round_robin` or `ewma`".to_owned()),
        };
        out.insert(key, read);
    }
    if let Some((&key, &value)) = ours.get_key_value("upstream-hash-by") {
        let read = hash_by(value.trim(), ours).map(|h| {
            let what = format!("consistent hashing by `{}`", h.key);
            balance.hash_by = Some(h);
            what
        });
        out.insert(key, read.into());
    }
    for name in ["upstream-hash-by-subset", "upstream-hash-by-subset-size"] {
        if let Some((&key, _)) = ours.get_key_value(name) {
            let read = match &balance.hash_by {
                None => Read::Applied("no effect without `upstream-hash-by`".to_owned()),
                Some(h) => match (name, h.subset) {
                    ("upstream-hash-by-subset", Some(n)) => {
                        Read::Applied(format!("subsets of {n} endpoints"))
                    }
                    ("upstream-hash-by-subset", None) => Read::Applied("off".to_owned()),
                    (_, _) => match subset_size(ours) {
                        Ok(n) => Read::Applied(format!("{n} endpoints per subset")),
                        Err(e) => Read::Rejected(format!("{e}; 3 stays")),
                    },
                },
            };
            out.insert(key, read);
        }
    }
    let affinity = ours.get_key_value("affinity");
    if let Some((&key, &value)) = affinity {
        let read = if value.trim() == "cookie" {
            let (affinity, reads) = cookie(ours);
            out.extend(reads);
            let mode = if affinity.persistent { "persistent" } else { "balanced" };
            let what = format!("sticky sessions by cookie `{}` ({mode})", affinity.cookie.name);
            balance.affinity = Some(affinity);
            Read::Applied(what)
        } else {
            Read::Rejected("expected `cookie`".to_owned())
        };
        out.insert(key, read);
    }
    if balance.affinity.is_none() {
        for name in COOKIE_ATTRIBUTES {
            if let Some((&key, _)) = ours.get_key_value(name) {
                out.insert(key, Read::Applied("no effect without `affinity: cookie`".to_owned()));
            }
        }
    }
    if balance != (Balance { load_balance: None, hash_by: None, affinity: None }) {
        policy.balance = Some(Box::new(balance));
    }
    out
}

/// `upstream-hash-by` with its subset settings.
fn hash_by(value: &str, ours: &BTreeMap<&str, &str>) -> Result<HashBy, String> {
    if !only(value, b"-_${}") {
        return Err("expected nginx variables and letters (`$request_uri`, `$http_x_user`…)".to_owned());
    }
    let key: Template = value.parse().map_err(|e| format!("{e}"))?;
    let subset = match ours.get("upstream-hash-by-subset").map(|v| go_bool(v.trim())) {
        Some(Ok(true)) => Some(subset_size(ours).unwrap_or(3)),
        _ => None,
    };
    Ok(HashBy { key, subset })
}

/// `upstream-hash-by-subset-size`: 3 when absent or 0.
fn subset_size(ours: &BTreeMap<&str, &str>) -> Result<usize, String> {
    match ours.get("upstream-hash-by-subset-size").map(|v| go_int(v.trim())) {
        None | Some(Ok(0)) => Ok(3),
        Some(Ok(n)) if n > 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(Ok(_)) => Err("expected a whole number above 0".to_owned()),
        Some(Err(e)) => Err(e),
    }
}

/// The cookie affinity of `ours`, and the outcome of each attribute.
fn cookie<'a>(ours: &BTreeMap<&'a str, &str>) -> (Affinity, BTreeMap<&'a str, Read>) {
    let mut reads = BTreeMap::new();
    let mut affinity =
        Affinity { persistent: false, change_on_failure: false, cookie: SessionCookie::default() };
    let mut read = |name: &str, apply: &mut dyn FnMut(&str) -> Result<String, String>| {
        if let Some((&key, &value)) = ours.get_key_value(name) {
            let outcome = match apply(value.trim()) {
                Ok(what) => Read::Applied(what),
                Err(e) => Read::Rejected(format!("{e}; the default stays")),
            };
            reads.insert(key, outcome);
        }
    };
    read("affinity-mode", &mut |v| match v {
        "balanced" => Ok("balanced".to_owned()),
        "persistent" => {
            affinity.persistent = true;
            Ok("persistent".to_owned())
        }
        _ => Err("expected `balanced` or `persistent`".to_owned()),
    });
    read("session-cookie-name", &mut |v| {
        if only(v, b"-._~") {
            affinity.cookie.name = v.to_owned();
            Ok(format!("cookie `{v}`"))
        } else {
            Err("expected a cookie name (letters, digits, `-._~`)".to_owned())
        }
    });
    read("session-cookie-path", &mut |v| {
        if v.starts_with('/') && only(v, b"-._~/:,?&=") {
            affinity.cookie.path = Some(v.to_owned());
            Ok(format!("Path={v}"))
        } else {
            Err("expected a path".to_owned())
        }
    });
    read("session-cookie-domain", &mut |v| {
        if only(v, b"-._~") {
            affinity.cookie.domain = Some(v.to_owned());
            Ok(format!("Domain={v}"))
        } else {
            Err("expected a domain".to_owned())
        }
    });
    read("session-cookie-expires", &mut |v| {
        let n = go_int(v)?;
        affinity.cookie.expires = Some(n);
        Ok(format!("Expires in {n} s"))
    });
    read("session-cookie-max-age", &mut |v| {
        let n = go_int(v)?;
        affinity.cookie.max_age = Some(n);
        Ok(format!("Max-Age={n}"))
    });
    read("session-cookie-samesite", &mut |v| {
        if ["none", "lax", "strict"].contains(&v.to_ascii_lowercase().as_str()) {
            affinity.cookie.samesite = Some(v.to_owned());
            if ["None", "Lax", "Strict"].contains(&v) {
                Ok(format!("SameSite={v}"))
            } else {
                // ingress-nginx's cookie library drops any other spelling.
                Ok(format!(
                    "accepted, but only `Strict`, `Lax` or `None` is sent, as ingress-nginx: no SameSite for `{v}`"
                ))
            }
        } else {
            Err("expected `None`, `Lax` or `Strict`".to_owned())
        }
    });
    read("session-cookie-secure", &mut |v| {
        affinity.cookie.secure = go_bool(v)?;
        Ok(if affinity.cookie.secure { "Secure always" } else { "Secure on HTTPS only" }.to_owned())
    });
    read("session-cookie-conditional-samesite-none", &mut |v| {
        affinity.cookie.conditional_samesite_none = go_bool(v)?;
        Ok("SameSite=None left out for browsers that mishandle it".to_owned())
    });
    read("session-cookie-change-on-failure", &mut |v| {
        affinity.change_on_failure = go_bool(v)?;
        Ok("a retry after a failure moves the session".to_owned())
    });
    (affinity, reads)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(pairs: &[(&'static str, &'static str)]) -> (RoutePolicy, BTreeMap<&'static str, Read>) {
        super::super::read_family(pairs, read)
    }

    #[test]
    fn affinity_wins_and_its_cookie_is_read() {
        let (p, out) = run(&[
            ("affinity", "cookie"),
            ("affinity-mode", "persistent"),
            ("session-cookie-name", "route"),
            ("session-cookie-max-age", "172800"),
            ("session-cookie-samesite", "None"),
            ("session-cookie-secure", "true"),
            ("upstream-hash-by", "$request_uri"),
            ("load-balance", "ewma"),
        ]);
        let b = p.balance.unwrap();
        let a = b.affinity.unwrap();
        assert!(a.persistent && a.cookie.secure);
        assert_eq!((a.cookie.name.as_str(), a.cookie.max_age), ("route", Some(172_800)));
        assert_eq!(b.hash_by.unwrap().key.as_str(), "$request_uri");
        assert_eq!(b.load_balance, Some(LoadBalance::Ewma));
        assert!(out.values().all(|r| matches!(r, Read::Applied(_))), "{out:?}");
    }

    #[test]
    fn bad_values_count_as_absent() {
        let (p, out) = run(&[
            ("affinity", "ip"),
            ("load-balance", "least_conn"),
            ("upstream-hash-by", "$upstream_addr"),
            ("session-cookie-name", "x"),
        ]);
        assert!(p.balance.is_none());
        for k in ["affinity", "load-balance", "upstream-hash-by"] {
            assert!(matches!(out[k], Read::Rejected(_)), "{k}");
        }
        assert!(matches!(out["session-cookie-name"], Read::Applied(_)), "no effect on its own");
        let (p, out) = run(&[
            ("upstream-hash-by", "$remote_addr$http_x_tenant"),
            ("upstream-hash-by-subset", "true"),
            ("upstream-hash-by-subset-size", "0"),
        ]);
        assert_eq!(p.balance.unwrap().hash_by.unwrap().subset, Some(3), "0 is the default 3");
        assert!(out.values().all(|r| matches!(r, Read::Applied(_))), "{out:?}");
        let (_, out) = run(&[("affinity", "cookie"), ("session-cookie-expires", "1h")]);
        assert!(matches!(out["session-cookie-expires"], Read::Rejected(_)));
    }
}
