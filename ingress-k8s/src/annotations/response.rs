//! The response rewrite family: `proxy-redirect-from`/`-to` (nginx's `proxy_redirect`),
//! `proxy-cookie-domain` and `proxy-cookie-path` (`proxy_cookie_domain`, `proxy_cookie_path`).
//!
//! As ingress-nginx's `proxy` parser and template: every value defaults to `off`;
//! `proxy-redirect-from: off` or `default` turns `proxy-redirect-to` off (nginx's `default`
//! rewrites its own `proxy_pass` URL, which no upstream sends back); otherwise both are needed.
//! Values are of ingress-nginx's URL characters; the cookie keys take `off` or two
//! space-separated words (`from to`).

use std::collections::BTreeMap;

use ingress_core::{PrefixRewrite, ResponseRewrites, RoutePolicy};

use super::Read;
use super::values::only;

/// What each annotation does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "proxy-redirect-from" => {
            "upstream `Location` and `Refresh` values starting with this text (as written) get \
             `proxy-redirect-to` instead (`off`/`default`: no rewrite)"
        }
        "proxy-redirect-to" => "the replacement of `proxy-redirect-from`",
        "proxy-cookie-domain" => {
            "`from to`: a `Set-Cookie` `Domain` equal to `from` (any case, leading dot aside) becomes `to`"
        }
        "proxy-cookie-path" => "`from to`: a `Set-Cookie` `Path` starting with `from` gets `to` instead",
        _ => return None,
    })
}

/// ingress-nginx's URL characters (`URLIsValidRegex`).
const URL: &[u8] = b"-._~/:,?&=";

fn word(value: &str) -> Result<&str, String> {
    if only(value, URL) {
        Ok(value)
    } else {
        Err("expected a URL or path of letters, digits and `-._~/:,?&=`, without spaces".into())
    }
}

/// `off`, or `from to`.
fn pair(value: &str) -> Result<Option<PrefixRewrite>, String> {
    if value == "off" {
        return Ok(None);
    }
    let mut words = value.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(from), Some(to), None) if only(from, URL) && only(to, URL) => {
            Ok(Some(PrefixRewrite { from: from.to_owned(), to: to.to_owned() }))
        }
        _ => Err("expected `off` or two words, `<from> <to>`, of URL characters".into()),
    }
}

/// Reads the family's annotations present in `ours` into `policy`.
pub(super) fn read<'a>(ours: &BTreeMap<&'a str, &str>, policy: &mut RoutePolicy) -> BTreeMap<&'a str, Read> {
    let mut outcomes = BTreeMap::new();
    let mut rewrites = ResponseRewrites::default();
    for (name, slot) in [("proxy-cookie-domain", 0), ("proxy-cookie-path", 1)] {
        let Some((&key, &value)) = ours.get_key_value(name) else { continue };
        let read = match pair(value.trim()) {
            Ok(None) => Read::Applied("off".to_owned()),
            Ok(Some(p)) => {
                let what = format!("`{}` becomes `{}` in Set-Cookie", p.from, p.to);
                *(if slot == 0 { &mut rewrites.cookie_domain } else { &mut rewrites.cookie_path }) = Some(p);
                Read::Applied(what)
            }
            Err(e) => Read::Rejected(e),
        };
        outcomes.insert(key, read);
    }
    let from = ours.get_key_value("proxy-redirect-from").map(|(&k, &v)| (k, word(v.trim())));
    let to = ours.get_key_value("proxy-redirect-to").map(|(&k, &v)| (k, word(v.trim())));
    if let (Some((_, Ok(from))), Some((_, Ok(to)))) = (&from, &to)
        && !matches!(*from, "off" | "default")
        && !from.starts_with('~')
        && *to != "off"
    {
        rewrites.redirect = Some(PrefixRewrite { from: (*from).to_owned(), to: (*to).to_owned() });
    }
    let redirect = rewrites.redirect.as_ref();
    if let Some((key, from)) = from {
        let read = match (from, redirect) {
            (Err(e), _) => Read::Rejected(e),
            (Ok(f @ ("off" | "default")), _) => Read::Applied(format!("`{f}`: no rewrite")),
            (Ok(f), _) if f.starts_with('~') => {
                Read::Ignored("nginx regex redirects (`~`) are not supported; no rewrite".to_owned())
            }
            (Ok(_), Some(r)) => Read::Applied(format!(
                "upstream Location/Refresh starting with `{}` get `{}` instead",
                r.from, r.to
            )),
            (Ok(_), None) => Read::Ignored(
                "no effect without a valid `proxy-redirect-to` (ingress-nginx's default is `off`)".to_owned(),
            ),
        };
        outcomes.insert(key, read);
    }
    if let Some((key, to)) = to {
        let read = match (to, redirect) {
            (Err(e), _) => Read::Rejected(e),
            (Ok(_), Some(r)) => Read::Applied(format!("replaces `{}`", r.from)),
            (Ok("off"), None) => Read::Applied("off".to_owned()),
            (Ok(_), None) => Read::Ignored(
                "no effect: `proxy-redirect-from` is absent, `off`, `default`, a regex or not valid"
                    .to_owned(),
            ),
        };
        outcomes.insert(key, read);
    }
    if rewrites != ResponseRewrites::default() {
        policy.response_rewrites = Some(Box::new(rewrites));
    }
    outcomes
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
    fn both_redirect_annotations_make_one_rewrite() {
        let (p, out) =
            run(&[("proxy-redirect-from", "http://internal/"), ("proxy-redirect-to", "https://public/")]);
        let rw = p.response_rewrites.unwrap();
        assert_eq!(rw.redirect.unwrap().to, "https://public/");
        assert!(out.values().all(|r| matches!(r, Read::Applied(_))), "{out:?}");

        for (from, to) in [("off", "https://x/"), ("default", "https://x/"), ("http://a/", "off")] {
            let (p, _) = run(&[("proxy-redirect-from", from), ("proxy-redirect-to", to)]);
            assert!(p.response_rewrites.is_none(), "{from} {to}");
        }
        let (p, out) = run(&[("proxy-redirect-to", "https://x/")]);
        assert!(p.response_rewrites.is_none() && matches!(out["proxy-redirect-to"], Read::Ignored(_)));
        let (_, out) = run(&[("proxy-redirect-from", "http://a b/"), ("proxy-redirect-to", "/")]);
        assert!(matches!(out["proxy-redirect-from"], Read::Rejected(_)), "{out:?}");
    }

    #[test]
    fn cookie_annotations_take_off_or_two_words() {
        let (p, out) =
            run(&[("proxy-cookie-domain", "backend.local shop.test"), ("proxy-cookie-path", "/app/ /")]);
        let rw = p.response_rewrites.unwrap();
        assert_eq!(rw.cookie_domain.unwrap().to, "shop.test");
        assert_eq!(rw.cookie_path.unwrap().from, "/app/");
        assert_eq!(out.len(), 2);
        let (p, out) = run(&[("proxy-cookie-domain", "off"), ("proxy-cookie-path", "/only-one")]);
        assert!(p.response_rewrites.is_none());
        assert!(matches!(out["proxy-cookie-path"], Read::Rejected(_)));
        assert!(matches!(out["proxy-cookie-domain"], Read::Applied(_)));
    }
}
