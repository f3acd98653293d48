//! Basic authentication: `auth-type: basic`, `auth-secret`, `auth-secret-type`, `auth-realm`.
//!
//! As ingress-nginx's `auth` parser: without `auth-type` the others do nothing; `auth-type`
//! must be `basic` or `digest`; the Secret is `name` or `namespace/name` in the Ingress's own
//! namespace (other namespaces are refused, as ingress-nginx refuses them by default); an
//! `auth-file` Secret holds htpasswd lines under its `auth` key, an `auth-map` one a hash per
//! user. Anything that cannot be applied — a missing Secret, no `auth` key, no user, `digest`
//! (not supported), a bad realm — denies the Ingress: its paths answer `503`, never served
//! without the authentication asked for.

use std::collections::BTreeMap;
use std::sync::Arc;

use ingress_core::{BasicAuth, RoutePolicy};

use super::Read;
use super::values::only;

/// What each annotation does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "auth-type" => {
            "`basic`: requests need a user and password of `auth-secret` (else 401); `digest` is not \
             supported and denies the Ingress (503)"
        }
        "auth-secret" => {
            "the Secret of the users (`name` or `namespace/name`, same namespace), watched by name; \
             missing or empty denies the Ingress (503)"
        }
        "auth-secret-type" => {
            "`auth-file` (htpasswd lines under the `auth` key) or `auth-map` (a hash per user)"
        }
        "auth-realm" => "the realm in `WWW-Authenticate`",
        _ => return None,
    })
}

/// The names this family reads.
pub(super) const NAMES: [&str; 4] = ["auth-type", "auth-secret", "auth-secret-type", "auth-realm"];

/// Finds a Secret's data by namespace and name.
pub type SecretLookup<'a> = dyn Fn(&str, &str) -> Option<BTreeMap<String, Vec<u8>>> + 'a;

/// A Secret's fields that hold text, as text.
pub(super) type SecretText = BTreeMap<String, String>;

/// The Secret an annotation names as `namespace/name`, which must be of the Ingress's
/// `namespace` (another namespace's is refused, as ingress-nginx refuses it by default): its
/// `(namespace, name)` and its fields that hold text, as text.
pub(super) fn named_secret(
    reference: &str,
    namespace: &str,
    secret: &SecretLookup<'_>,
) -> Result<(crate::objects::Key, SecretText), String> {
    let Some((ns, name)) = reference.trim().split_once('/') else {
        return Err("expected `namespace/name`".to_owned());
    };
    if ns != namespace {
        return Err(
            "a Secret of another namespace is refused (as ingress-nginx refuses it by default)".to_owned()
        );
    }
    let data = secret(ns, name).ok_or_else(|| format!("Secret {ns}/{name} not found"))?;
    let fields = data
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    Ok(((ns.into(), name.into()), fields))
}

/// Reads the family into `policy`: the outcomes, and the Secret named (to watch), if any. A
/// rejected outcome denies the Ingress.
pub(super) fn read<'a>(
    ours: &BTreeMap<&'a str, &str>,
    namespace: &str,
    secret: &SecretLookup<'_>,
    policy: &mut RoutePolicy,
) -> (BTreeMap<&'a str, Read>, Option<crate::objects::Key>) {
    let mut outcomes = BTreeMap::new();
    let Some((&type_key, &kind)) = ours.get_key_value("auth-type") else {
        for name in ["auth-secret", "auth-secret-type", "auth-realm"] {
            if let Some((&key, _)) = ours.get_key_value(name) {
                outcomes.insert(key, Read::Applied("no effect without `auth-type`".to_owned()));
            }
        }
        return (outcomes, None);
    };
    let named = ours.get("auth-secret").and_then(|s| reference(s, namespace).ok());
    let result = basic(ours, kind.trim(), namespace, secret);
    let all = NAMES.iter().filter_map(|n| ours.get_key_value(n)).map(|(k, _)| *k);
    match result {
        Ok(auth) => {
            let what = format!("basic authentication, {} users, realm {:?}", auth.users.len(), auth.realm);
            for key in all {
                outcomes.insert(key, Read::Applied(what.clone()));
            }
            policy.basic_auth = Some(Arc::new(auth));
            // ingress-nginx's `proxy_set_header Authorization ""`: the password stays here.
            if let Ok(op) = ingress_core::HeaderOp::remove("authorization") {
                policy.request_headers.push(op);
            }
        }
        // The reason goes on `auth-type` (what closes the Ingress); the others say where.
        Err((culprit, why)) => {
            for key in all {
                let read = if key == culprit || (key == type_key && !ours.contains_key(culprit)) {
                    Read::Rejected(why.clone())
                } else {
                    Read::Rejected(format!("basic authentication not applied: `{culprit}`: {why}"))
                };
                outcomes.insert(key, read);
            }
        }
    }
    (outcomes, named)
}

/// The basic authentication the annotations ask for, or the annotation at fault and why.
fn basic(
    ours: &BTreeMap<&str, &str>,
    kind: &str,
    namespace: &str,
    secret: &SecretLookup<'_>,
) -> Result<BasicAuth, (&'static str, String)> {
    match kind {
        "basic" => {}
        "digest" => return Err(("auth-type", "digest authentication is not supported".to_owned())),
        _ => return Err(("auth-type", "expected `basic` or `digest`".to_owned())),
    }
    let realm = ours.get("auth-realm").map_or("", |r| *r);
    if !realm.is_empty() && !only(realm, b"/-._~: ") {
        return Err(("auth-realm", "expected letters, digits, spaces and `/-._~:`".to_owned()));
    }
    let name = ours.get("auth-secret").ok_or(("auth-secret", "no `auth-secret`".to_owned()))?;
    let (ns, name) = reference(name, namespace).map_err(|e| ("auth-secret", e))?;
    let data = secret(&ns, &name).ok_or_else(|| ("auth-secret", format!("Secret {ns}/{name} not found")))?;
    let users = match ours.get("auth-secret-type").map_or("auth-file", |t| t.trim()) {
        "auth-file" => {
            let file = data
                .get("auth")
                .ok_or_else(|| ("auth-secret", format!("Secret {ns}/{name} has no `auth` key")))?;
            htpasswd(&String::from_utf8_lossy(file))
        }
        "auth-map" => data
            .iter()
            .filter_map(|(user, hash)| {
                Some((user.clone(), String::from_utf8(hash.clone()).ok()?.trim().to_owned()))
            })
            .collect(),
        _ => return Err(("auth-secret-type", "expected `auth-file` or `auth-map`".to_owned())),
    };
    if users.is_empty() {
        return Err(("auth-secret", format!("Secret {ns}/{name} lists no user")));
    }
    Ok(BasicAuth { realm: realm.to_owned(), users })
}

/// `name` or `namespace/name`, in the Ingress's own namespace.
fn reference(value: &str, namespace: &str) -> Result<crate::objects::Key, String> {
    let (ns, name) = value.trim().split_once('/').unwrap_or((namespace, value.trim()));
    if name.is_empty() || name.contains('/') || !only(name, b"-.") || !only(ns, b"-.") {
        return Err("expected a Secret as `name` or `namespace/name`".to_owned());
    }
    if ns != namespace {
        return Err(
            "a Secret of another namespace is refused (as ingress-nginx refuses it by default)".to_owned()
        );
    }
    Ok((ns.into(), name.into()))
}

/// htpasswd lines as nginx reads them: `user:hash`, the hash up to the next `:`; empty lines
/// and `#` comments skipped.
fn htpasswd(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (user, rest) = l.split_once(':')?;
            let hash = rest.split(':').next().unwrap_or("");
            (!user.is_empty() && !hash.is_empty()).then(|| (user.to_owned(), hash.to_owned()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secrets(ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        match (ns, name) {
            ("app", "users") => Some(BTreeMap::from([(
                "auth".to_owned(),
                b"# admins\nalice:{PLAIN}a\r\nbob:$apr1$x$y:comment\n\nbroken\n".to_vec(),
            )])),
            ("app", "map") => Some(BTreeMap::from([("carol".to_owned(), b"{PLAIN}c\n".to_vec())])),
            ("app", "empty") => Some(BTreeMap::from([("other".to_owned(), b"x".to_vec())])),
            _ => None,
        }
    }

    fn run(
        pairs: &[(&'static str, &str)],
    ) -> (RoutePolicy, BTreeMap<&'static str, Read>, Option<crate::objects::Key>) {
        let ours: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        let mut policy = RoutePolicy::default();
        let (out, named) = read(&ours, "app", &secrets, &mut policy);
        (policy, out, named)
    }

    #[test]
    fn basic_auth_from_a_file_or_a_map() {
        let (p, out, named) =
            run(&[("auth-type", "basic"), ("auth-secret", "users"), ("auth-realm", "Admins only")]);
        let auth = p.basic_auth.unwrap();
        assert_eq!(auth.users.keys().collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(auth.users["bob"], "$apr1$x$y");
        assert_eq!(auth.realm, "Admins only");
        assert!(out.values().all(|r| matches!(r, Read::Applied(_))), "{out:?}");
        assert_eq!(named, Some(("app".into(), "users".into())));
        let (p, _, _) =
            run(&[("auth-type", "basic"), ("auth-secret", "app/map"), ("auth-secret-type", "auth-map")]);
        assert_eq!(p.basic_auth.unwrap().users["carol"], "{PLAIN}c");
    }

    #[test]
    fn what_cannot_be_applied_is_rejected() {
        for pairs in [
            &[("auth-type", "digest"), ("auth-secret", "users")][..],
            &[("auth-type", "basci"), ("auth-secret", "users")],
            &[("auth-type", "basic")],
            &[("auth-type", "basic"), ("auth-secret", "nope")],
            &[("auth-type", "basic"), ("auth-secret", "other/users")],
            &[("auth-type", "basic"), ("auth-secret", "empty")],
            &[("auth-type", "basic"), ("auth-secret", "users"), ("auth-secret-type", "auth-list")],
            &[("auth-type", "basic"), ("auth-secret", "users"), ("auth-realm", "a\"b")],
        ] {
            let (p, out, _) = run(pairs);
            assert!(p.basic_auth.is_none(), "{pairs:?}");
            assert!(matches!(out["auth-type"], Read::Rejected(_)), "{pairs:?}: {out:?}");
        }
        let (p, out, named) = run(&[("auth-secret", "users")]);
        assert!(p.basic_auth.is_none() && named.is_none() && matches!(out["auth-secret"], Read::Applied(_)));
    }
}
