//! The redirect family: to HTTPS (`ssl-redirect`, `force-ssl-redirect`,
//! `preserve-trailing-slash`, `use-port-in-redirects`), fixed redirects (`permanent-redirect`,
//! `temporal-redirect` and their codes) and `app-root`.
//!
//! As ingress-nginx's `rewrite` and `redirect` parsers: a bad boolean leaves the ConfigMap's
//! setting; a redirect code outside 300–308 (300–307 for temporal) becomes the default (301,
//! 302); `temporal-redirect` wins over `permanent-redirect`.

use std::collections::BTreeMap;

use ingress_core::{Redirect, RoutePolicy};

use super::Outcome;
use super::values::{go_bool, go_int, only};

/// What each annotation of the family does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "ssl-redirect" => {
            "plain HTTP to a host with TLS is redirected to HTTPS (ConfigMap `http-redirect-code`, 308)"
        }
        "force-ssl-redirect" => "plain HTTP is redirected to HTTPS on every host",
        "preserve-trailing-slash" => "the HTTPS redirect keeps a trailing `/` (ingress-nginx drops it)",
        "use-port-in-redirects" => "the HTTPS redirect names the HTTPS port",
        "permanent-redirect" => "every request answered with a redirect to this URL (301)",
        "permanent-redirect-code" => "its status (300–308, else 301)",
        "temporal-redirect" => {
            "every request answered with a redirect to this http(s) URL (302); wins over `permanent-redirect`"
        }
        "temporal-redirect-code" => "its status (300–307, else 302)",
        "app-root" => "requests for `/` redirected (302) to this path",
        "from-to-www-redirect" => {
            "requests for the `www.` twin of each host (or the bare name of a `www.` host) are redirected to it \
             (ConfigMap `http-redirect-code`, 308), unless the twin is a host of its own"
        }
        "server-alias" => {
            "more names for the Ingress's hosts (exact or `*.` wildcards; not nginx regex names), \
             unless a name is a host of its own"
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
        let switch = |on: bool, what: &str| format!("{what} {}", if on { "on" } else { "off" });
        let outcome = match name {
            "ssl-redirect" => go_bool(value).map(|on| {
                policy.ssl_redirect = Some(on);
                switch(on, "HTTPS redirect on hosts with TLS")
            }),
            "force-ssl-redirect" => go_bool(value).map(|on| {
                policy.force_ssl_redirect = Some(on);
                switch(on, "HTTPS redirect on every host")
            }),
            "preserve-trailing-slash" => go_bool(value).map(|on| {
                policy.preserve_trailing_slash = on;
                switch(on, "trailing slash kept in the HTTPS redirect")
            }),
            "use-port-in-redirects" => go_bool(value).map(|on| {
                policy.use_port_in_redirects = on;
                switch(on, "HTTPS port named in the HTTPS redirect")
            }),
            "app-root" => app_root(value).map(|root| {
                let what = format!("`/` redirected (302) to {root}");
                policy.app_root = Some(root);
                what
            }),
            _ => continue,
        };
        outcomes.insert(name, outcome);
    }
    fixed_redirects(ours, policy, &mut outcomes);
    outcomes
}

/// The names a family's Ingress adds to its hosts: `server-alias` and
/// `from-to-www-redirect`.
#[derive(Debug, Default)]
pub(super) struct Names {
    pub(super) aliases: Vec<String>,
    pub(super) www_redirect: bool,
}

/// Reads `server-alias` and `from-to-www-redirect`.
pub(super) fn names<'a>(ours: &BTreeMap<&'a str, &str>) -> (BTreeMap<&'a str, super::Read>, Names) {
    use super::Read;
    let mut names = Names::default();
    let mut outcomes = BTreeMap::new();
    if let Some((&key, &value)) = ours.get_key_value("from-to-www-redirect") {
        let read = match go_bool(value) {
            Ok(on) => {
                names.www_redirect = on;
                Read::Applied(if on {
                    "the `www.` twin of each host redirects to it".to_owned()
                } else {
                    "no `www.` redirect".to_owned()
                })
            }
            Err(e) => Read::Rejected(e),
        };
        outcomes.insert(key, read);
    }
    if let Some((&key, &value)) = ours.get_key_value("server-alias") {
        let (mut served, mut regex, mut bad) = (Vec::new(), Vec::new(), Vec::new());
        for alias in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match ingress_core::HostPattern::parse(Some(alias)) {
                Ok(ingress_core::HostPattern::Any) => {}
                Ok(p) => served.push(p.to_string()),
                // nginx's regex and trailing-wildcard server names, which ingress-nginx accepts.
                Err(_) if alias.starts_with('~') || alias.ends_with(".*") => regex.push(alias),
                Err(why) => bad.push(format!("`{alias}`: {why}")),
            }
        }
        served.sort();
        served.dedup();
        let read = if !bad.is_empty() {
            Read::Rejected(format!("expected comma-separated host names ({})", bad.join("; ")))
        } else if !regex.is_empty() {
            Read::Ignored(format!(
                "nginx regex and trailing-wildcard server names are not supported: {}{}",
                regex.join(", "),
                if served.is_empty() { String::new() } else { "; no alias is served".to_owned() }
            ))
        } else if served.is_empty() {
            Read::Rejected("expected comma-separated host names".to_owned())
        } else {
            let what = format!("also served as {}", served.join(", "));
            names.aliases = served;
            Read::Applied(what)
        };
        outcomes.insert(key, read);
    }
    (outcomes, names)
}

/// `temporal-redirect` (with its code), else `permanent-redirect` (with its code).
fn fixed_redirects<'a>(
    ours: &BTreeMap<&'a str, &str>,
    policy: &mut RoutePolicy,
    outcomes: &mut BTreeMap<&'a str, Outcome>,
) {
    let temporal = ours.get_key_value("temporal-redirect");
    let permanent = ours.get_key_value("permanent-redirect");
    let mut chosen = false;
    for (kind, entry, default, max) in [("temporal", temporal, 302, 307), ("permanent", permanent, 301, 308)]
    {
        let code_name = if kind == "temporal" { "temporal-redirect-code" } else { "permanent-redirect-code" };
        let code_entry = ours.get_key_value(code_name);
        let Some((&name, &url)) = entry else {
            if let Some((&code_key, _)) = code_entry {
                outcomes.insert(code_key, Ok(format!("no effect without `{kind}-redirect`")));
            }
            continue;
        };
        let code: u16 = match code_entry {
            None => default,
            Some((&code_key, &code)) => {
                let (used, note) = match go_int(code) {
                    Ok(c) if (300..=max).contains(&c) => {
                        (u16::try_from(c).unwrap_or(default), Ok(format!("redirect status {c}")))
                    }
                    Ok(c) => (
                        default,
                        Ok(format!("{c} is outside 300–{max}: {default} is used, as in ingress-nginx")),
                    ),
                    Err(e) => (default, Err(format!("{e}; {default} is used"))),
                };
                outcomes.insert(code_key, note);
                used
            }
        };
        let outcome = if chosen {
            Err("`temporal-redirect` is set too, and wins".to_owned())
        } else {
            redirect_url(url, kind == "temporal").and_then(|url| {
                let redirect = Redirect::new(code, url).map_err(|e| e.to_string())?;
                policy.redirect = Some(redirect);
                chosen = true;
                Ok(format!("every request answered {code} to {url}"))
            })
        };
        outcomes.insert(name, outcome);
    }
}

/// ingress-nginx's `URLIsValidRegex`: letters, digits and `-._~/:,?&=` only (no `%`, no
/// spaces). `temporal-redirect` must also be an http(s) URL.
fn redirect_url(url: &str, http_only: bool) -> Result<&str, String> {
    if !only(url, b"-._~/:,?&=") {
        return Err(
            "expected a URL of letters, digits and `-._~/:,?&=` (as ingress-nginx validates it)".into()
        );
    }
    if http_only && !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("expected an http:// or https:// URL".into());
    }
    Ok(url)
}

/// `app-root`: a path (`/app`), not a URL, of ingress-nginx's `RegexPathWithCapture`
/// characters.
fn app_root(value: &str) -> Result<String, String> {
    if !value.starts_with('/') || !only(value, b"-._~/:$") {
        return Err("expected a path such as `/app1` (letters, digits and `-._~/:`)".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_all(pairs: &[(&'static str, &'static str)]) -> (RoutePolicy, BTreeMap<&'static str, Outcome>) {
        super::super::read_family(pairs, read)
    }

    #[test]
    fn https_switches() {
        let (p, o) = read_all(&[
            ("ssl-redirect", "false"),
            ("force-ssl-redirect", "true"),
            ("preserve-trailing-slash", "True"),
            ("use-port-in-redirects", "1"),
        ]);
        assert!(o.values().all(Result::is_ok), "{o:?}");
        assert_eq!((p.ssl_redirect, p.force_ssl_redirect), (Some(false), Some(true)));
        assert!(p.preserve_trailing_slash && p.use_port_in_redirects);
        let (p, o) = read_all(&[("ssl-redirect", "no")]);
        assert!(o["ssl-redirect"].is_err() && p.ssl_redirect.is_none(), "a bad value keeps the ConfigMap's");
    }

    #[test]
    fn fixed_redirects_as_ingress_nginx() {
        let (p, o) = read_all(&[("permanent-redirect", "https://new.example.com/x?a=1")]);
        let r = p.redirect.unwrap();
        assert_eq!((r.code(), r.location()), (301, "https://new.example.com/x?a=1"));
        assert!(o["permanent-redirect"].is_ok());

        let (p, o) =
            read_all(&[("permanent-redirect", "https://a.test"), ("permanent-redirect-code", "308")]);
        assert_eq!(p.redirect.unwrap().code(), 308);
        assert_eq!(o["permanent-redirect-code"].as_deref(), Ok("redirect status 308"));

        let (p, o) =
            read_all(&[("permanent-redirect", "https://a.test"), ("permanent-redirect-code", "200")]);
        assert_eq!(p.redirect.unwrap().code(), 301);
        assert!(o["permanent-redirect-code"].as_ref().unwrap().contains("outside 300–308"));

        let (p, o) = read_all(&[
            ("temporal-redirect", "https://t.test"),
            ("temporal-redirect-code", "308"),
            ("permanent-redirect", "https://p.test"),
        ]);
        let r = p.redirect.unwrap();
        assert_eq!((r.code(), r.location()), (302, "https://t.test"), "308 is not a temporal code");
        assert!(o["permanent-redirect"].is_err(), "temporal wins: {o:?}");

        for bad in ["https://a.test/%2e", "https://a.test/ x", "javascript:alert(1)\"", ""] {
            let (p, o) = read_all(&[("permanent-redirect", bad)]);
            assert!(p.redirect.is_none() && o["permanent-redirect"].is_err(), "{bad:?}");
        }
        let (p, o) = read_all(&[("temporal-redirect", "/relative")]);
        assert!(p.redirect.is_none() && o["temporal-redirect"].is_err());
        let (_, o) = read_all(&[("permanent-redirect-code", "308")]);
        assert_eq!(o["permanent-redirect-code"].as_deref(), Ok("no effect without `permanent-redirect`"));
    }

    #[test]
    fn app_root_is_a_path() {
        let (p, _) = read_all(&[("app-root", "/app1")]);
        assert_eq!(p.app_root.as_deref(), Some("/app1"));
        for bad in ["app1", "https://x.test/app", "/a b", "/a%20"] {
            let (p, o) = read_all(&[("app-root", bad)]);
            assert!(p.app_root.is_none() && o["app-root"].is_err(), "{bad}");
        }
    }
}
