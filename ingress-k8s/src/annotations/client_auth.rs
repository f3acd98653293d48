//! `auth-tls-*`: client certificates for the Ingress's hosts.
//!
//! As ingress-nginx reads them: `auth-tls-secret` (`namespace/name` of a Secret of the
//! Ingress's namespace with `ca.crt`, and `ca.crl` if any) turns the family on; a missing or
//! foreign Secret, one without `ca.crt`, or an invalid `auth-tls-error-page` or
//! `auth-tls-match-cn` denies the Ingress (`503`); a bad `auth-tls-verify-client` leaves `on`
//! and a bad `auth-tls-verify-depth` leaves 1.

use std::collections::BTreeMap;

use ingress_core::{ClientAuth, CnPattern, VerifyClient};

use super::Read;
use super::auth::SecretLookup;

const NAMES: [&str; 6] = [
    "auth-tls-secret",
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-tls-error-page",
    "auth-tls-pass-certificate-to-upstream",
    "auth-tls-match-cn",
];

/// What the family read.
pub(super) struct ClientCerts<'a> {
    pub(super) outcomes: BTreeMap<&'a str, Read>,
    pub(super) auth: Option<ClientAuth>,
    pub(super) secret: Option<crate::objects::Key>,
    /// The annotations whose fault denies the Ingress.
    pub(super) denied: Vec<&'a str>,
}

/// The documentation of an applied annotation of this family.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "auth-tls-secret" => {
            "`namespace/name` of a Secret of the Ingress's namespace with `ca.crt` (a `ca.crl` is not supported yet and denies the Ingress): clients of the \
             Ingress's hosts are asked for a certificate in the TLS handshake (per host, as nginx's server-level \
             `ssl_verify_client`; the oldest Ingress of a host sets it); a missing or foreign Secret denies the Ingress"
        }
        "auth-tls-verify-client" => {
            "`on` (default: no valid certificate, 400), `optional` (a bad one 400), `optional_no_ca` (one of any issuer passes; an expired or otherwise broken one 400, as nginx), `off`"
        }
        "auth-tls-verify-depth" => "intermediates allowed in the client's chain (default 1)",
        "auth-tls-error-page" => "refused clients are redirected here instead of the 400",
        "auth-tls-pass-certificate-to-upstream" => {
            "the client's certificate goes upstream, URL-escaped PEM, in `ssl-client-cert` (`ssl-client-verify`, \
             `ssl-client-subject-dn` and `ssl-client-issuer-dn` always do)"
        }
        "auth-tls-match-cn" => "a regular expression the certificate's subject DN must match, else 403",
        _ => return None,
    })
}

/// Reads the family.
pub(super) fn read<'a>(
    ours: &BTreeMap<&'a str, &str>,
    namespace: &str,
    secret: &SecretLookup<'_>,
) -> ClientCerts<'a> {
    let mut out = ClientCerts { outcomes: BTreeMap::new(), auth: None, secret: None, denied: Vec::new() };
    let all: Vec<&str> = NAMES.iter().filter_map(|n| ours.get_key_value(n)).map(|(k, _)| *k).collect();
    let Some((&secret_key, &reference)) = ours.get_key_value("auth-tls-secret") else {
        for key in all {
            out.outcomes.insert(key, Read::Applied("no effect without `auth-tls-secret`".to_owned()));
        }
        return out;
    };
    // The whole family is denied: none of it applies while one part cannot.
    let deny = |out: &mut ClientCerts<'a>, culprit: &'a str, why: String| {
        out.denied.extend(all.iter().copied());
        for key in &all {
            let read = if *key == culprit {
                Read::Rejected(why.clone())
            } else {
                Read::Rejected(format!("client certificates not applied: `{culprit}`: {why}"))
            };
            out.outcomes.insert(key, read);
        }
    };
    let (named, ca) = match load(reference, namespace, secret) {
        Ok(loaded) => loaded,
        Err(why) => {
            deny(&mut out, secret_key, why);
            return out;
        }
    };
    let mut auth = ClientAuth {
        ca,
        verify: VerifyClient::On,
        depth: 1,
        error_page: None,
        pass_certificate: false,
        match_cn: None,
    };
    if let Some((&key, &v)) = ours.get_key_value("auth-tls-error-page") {
        let v = v.trim();
        if !valid_error_page(v) {
            deny(&mut out, key, "expected a URL or a path".to_owned());
            return out;
        }
        auth.error_page = Some(v.to_owned());
    }
    if let Some((&key, &v)) = ours.get_key_value("auth-tls-match-cn") {
        match CnPattern::new(v.trim()).ok().filter(|_| !v.trim().is_empty()) {
            Some(pattern) => auth.match_cn = Some(pattern),
            None => {
                deny(&mut out, key, "expected a regular expression".to_owned());
                return out;
            }
        }
    }
    if let Some((&key, &v)) = ours.get_key_value("auth-tls-pass-certificate-to-upstream") {
        match super::values::go_bool(v.trim()) {
            Ok(on) => auth.pass_certificate = on,
            Err(e) => {
                deny(&mut out, key, e);
                return out;
            }
        }
    }
    for key in &all {
        let read = match *key {
            "auth-tls-verify-client" => match ours[key].trim() {
                "on" => Ok(VerifyClient::On),
                "off" => Ok(VerifyClient::Off),
                "optional" => Ok(VerifyClient::Optional),
                "optional_no_ca" => Ok(VerifyClient::OptionalNoCa),
                _ => Err("expected `on`, `off`, `optional` or `optional_no_ca`; `on` stays".to_owned()),
            }
            .map(|v| {
                auth.verify = v;
                format!("client certificates: {v}")
            }),
            "auth-tls-verify-depth" => match ours[key].trim().parse::<u32>() {
                Ok(n) if n > 0 => {
                    auth.depth = n;
                    Ok(format!("up to {n} intermediates"))
                }
                _ => Err("expected a whole number above 0; 1 stays".to_owned()),
            },
            _ => Ok(String::new()),
        };
        out.outcomes.insert(key, read.map_or_else(Read::Rejected, Read::Applied));
    }
    let summary = format!(
        "client certificates {} (CA from Secret {}/{}){}{}",
        auth.verify,
        named.0,
        named.1,
        if auth.pass_certificate { ", passed upstream" } else { "" },
        auth.match_cn.as_ref().map_or(String::new(), |m| format!(", subject must match `{}`", m.source())),
    );
    for key in &all {
        if matches!(out.outcomes.get(key), Some(Read::Applied(text)) if text.is_empty()) {
            out.outcomes.insert(key, Read::Applied(summary.clone()));
        }
    }
    out.auth = Some(auth);
    out.secret = Some(named);
    out
}

/// The Secret `reference` names: its `(namespace, name)` and CA.
fn load(
    reference: &str,
    namespace: &str,
    secret: &SecretLookup<'_>,
) -> Result<(crate::objects::Key, String), String> {
    let ((ns, name), mut fields) = super::auth::named_secret(reference, namespace, secret)?;
    let ca = fields.remove("ca.crt").ok_or_else(|| format!("Secret {ns}/{name} has no `ca.crt`"))?;
    // Fail closed: a revocation list that cannot be applied must not let revoked clients in.
    if fields.contains_key("ca.crl") {
        return Err(format!(
            "Secret {ns}/{name} has a `ca.crl`; certificate revocation lists are not supported yet, so the Ingress is denied rather than let revoked certificates in"
        ));
    }
    Ok(((ns, name), ca))
}

/// ingress-nginx's `auth-tls-error-page` check: a named location, or an optional
/// `http(s)://host[:port]` and a path of letters, digits, `-_.`.
fn valid_error_page(v: &str) -> bool {
    if let Some(name) = v.strip_prefix('@') {
        return !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    }
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://")).unwrap_or(v);
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let authority_ok = authority.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    let path_ok =
        path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)) && !path.contains("//");
    !v.is_empty() && authority_ok && path_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pairs: &[(&'static str, &'static str)]) -> ClientCerts<'static> {
        let ours: BTreeMap<&'static str, &str> = pairs.iter().copied().collect();
        let ours: &'static BTreeMap<&'static str, &str> = Box::leak(Box::new(ours));
        let lookup = |ns: &str, name: &str| {
            (ns == "app" && name == "client-ca")
                .then(|| BTreeMap::from([("ca.crt".to_owned(), b"PEM".to_vec())]))
        };
        read(ours, "app", &lookup)
    }

    #[test]
    fn the_family_reads_as_ingress_nginx_reads_it() {
        let c = run(&[
            ("auth-tls-secret", "app/client-ca"),
            ("auth-tls-verify-client", "optional"),
            ("auth-tls-verify-depth", "3"),
            ("auth-tls-pass-certificate-to-upstream", "true"),
            ("auth-tls-match-cn", "CN=(alice|bob)"),
            ("auth-tls-error-page", "https://login.example.com/cert-error"),
        ]);
        assert!(c.denied.is_empty(), "{:?}", c.outcomes);
        let auth = c.auth.unwrap_or_else(|| panic!("applied"));
        assert_eq!((auth.verify, auth.depth, auth.pass_certificate), (VerifyClient::Optional, 3, true));
        assert_eq!(auth.error_page.as_deref(), Some("https://login.example.com/cert-error"));
        assert_eq!(c.secret, Some(("app".into(), "client-ca".into())));
        // Bad modifiers leave their defaults.
        let c = run(&[
            ("auth-tls-secret", "app/client-ca"),
            ("auth-tls-verify-client", "maybe"),
            ("auth-tls-verify-depth", "0"),
        ]);
        let auth = c.auth.unwrap_or_else(|| panic!("applied"));
        assert_eq!((auth.verify, auth.depth), (VerifyClient::On, 1));
        assert!(matches!(c.outcomes["auth-tls-verify-client"], Read::Rejected(_)));
    }

    #[test]
    fn what_cannot_be_applied_denies_the_ingress() {
        for pairs in [
            &[("auth-tls-secret", "app/missing")][..],
            &[("auth-tls-secret", "other/client-ca")],
            &[("auth-tls-secret", "client-ca")],
            &[("auth-tls-secret", "app/client-ca"), ("auth-tls-error-page", "javascript:alert(1)")],
            &[("auth-tls-secret", "app/client-ca"), ("auth-tls-match-cn", "CN=(")],
        ] {
            let c = run(pairs);
            assert!(c.auth.is_none() && !c.denied.is_empty(), "{pairs:?}");
        }
        let c = run(&[("auth-tls-verify-client", "on")]);
        assert!(c.auth.is_none() && c.denied.is_empty(), "nothing to apply without the secret");
    }
}
