//! `backend-protocol` and the `proxy-ssl-*` family: how a route's endpoints are spoken to.
//!
//! As ingress-nginx reads them: `backend-protocol` is trimmed and read in any case, and an
//! unknown value leaves HTTP; the `proxy-ssl-*` settings only apply with `proxy-ssl-secret`
//! (a `namespace/name` Secret of the Ingress's namespace holding `ca.crt`, and optionally
//! `tls.crt`/`tls.key` to present), whose absence or fault denies the Ingress (`503`);
//! `proxy-ssl-name` and `proxy-ssl-server-name` only apply together.

use std::collections::BTreeMap;
use std::sync::Arc;

use ingress_core::{
    BackendProtocol, InvalidProtocol, RoutePolicy, TlsVersion, UpstreamProtocol, UpstreamTls,
};

use super::Read;
use super::auth::SecretLookup;

/// The `proxy-ssl-*` names, `proxy-ssl-secret` first.
const NAMES: [&str; 7] = [
    "proxy-ssl-secret",
    "proxy-ssl-verify",
    "proxy-ssl-verify-depth",
    "proxy-ssl-name",
    "proxy-ssl-server-name",
    "proxy-ssl-protocols",
    "proxy-ssl-ciphers",
];

/// What the family read: the outcomes, the Secret named (to watch), and whether the Ingress
/// is denied (its routes answer `503`, as ingress-nginx's denied location).
pub(super) struct Backend<'a> {
    pub(super) outcomes: BTreeMap<&'a str, Read>,
    pub(super) secret: Option<crate::objects::Key>,
    pub(super) denied: Vec<&'a str>,
}

/// The documentation of an applied annotation of this family.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "backend-protocol" => {
            "`HTTP`, `HTTPS` (TLS 1.2/1.3), `AUTO_HTTP` (TLS upstream for requests that came over TLS), `GRPC` \
             (HTTP/2 without TLS, with prior knowledge) or `GRPCS` (HTTP/2 over TLS), any case; `FCGI` is ignored \
             (FastCGI is not supported); anything else leaves HTTP"
        }
        "proxy-ssl-secret" => {
            "`namespace/name` of a Secret of the Ingress's namespace with `ca.crt` (and `tls.crt`/`tls.key` to present \
             a client certificate): the other `proxy-ssl-*` apply only with it; a missing or foreign Secret, or one \
             without `ca.crt`, denies the Ingress (503), as in ingress-nginx"
        }
        "proxy-ssl-verify" => {
            "`on` checks the endpoint's certificate against `ca.crt` and the name (default `off`)"
        }
        "proxy-ssl-verify-depth" => "intermediates allowed in the endpoint's chain (default 1)",
        "proxy-ssl-name" => {
            "the name the endpoint's certificate is checked against and, with `proxy-ssl-server-name: on`, sent as \
             SNI (default ingress-nginx's `upstream_balancer`)"
        }
        "proxy-ssl-server-name" => "`on` sends `proxy-ssl-name` as SNI (only together with `proxy-ssl-name`)",
        "proxy-ssl-protocols" => {
            "`TLSv1.2` and/or `TLSv1.3` (default `TLSv1.2` with `proxy-ssl-secret`, else both); HTTP/2 clients' \
             requests use Pingora's TLS 1.2+ whatever this says"
        }
        "proxy-ssl-ciphers" => {
            "OpenSSL cipher list for TLS 1.2 (default `DEFAULT`); HTTP/2 clients' requests use Pingora's list"
        }
        _ => return None,
    })
}

/// Reads the family into `policy`.
pub(super) fn read<'a>(
    ours: &BTreeMap<&'a str, &str>,
    namespace: &str,
    secret: &SecretLookup<'_>,
    policy: &mut RoutePolicy,
) -> Backend<'a> {
    let mut outcomes = BTreeMap::new();
    let mut upstream = UpstreamProtocol::default();
    if let Some((&key, &value)) = ours.get_key_value("backend-protocol") {
        let read = match value.parse::<BackendProtocol>() {
            Ok(protocol) => {
                upstream.protocol = protocol;
                Read::Applied(format!("endpoints spoken to in {protocol}"))
            }
            Err(InvalidProtocol::Fcgi) => {
                Read::Ignored("FastCGI upstreams are not supported: requests go over HTTP/1.1".to_owned())
            }
            Err(e) => Read::Rejected(format!("{e}; HTTP stays")),
        };
        outcomes.insert(key, read);
    }
    let mut out = Backend { outcomes, secret: None, denied: Vec::new() };
    let all = NAMES.iter().filter_map(|n| ours.get_key_value(n)).map(|(k, _)| *k);
    let Some((&secret_key, &reference)) = ours.get_key_value("proxy-ssl-secret") else {
        for key in all {
            out.outcomes.insert(key, Read::Applied("no effect without `proxy-ssl-secret`".to_owned()));
        }
        if upstream != UpstreamProtocol::default() {
            policy.upstream = Some(Arc::new(upstream));
        }
        return out;
    };
    let tls = match load(reference, namespace, secret) {
        Ok((named, tls)) => {
            out.secret = Some(named);
            tls
        }
        Err(why) => {
            out.denied.push(secret_key);
            for key in all {
                let read = if key == secret_key {
                    Read::Rejected(why.clone())
                } else {
                    Read::Rejected(format!("not applied: `proxy-ssl-secret`: {why}"))
                };
                out.outcomes.insert(key, read);
            }
            if upstream != UpstreamProtocol::default() {
                policy.upstream = Some(Arc::new(upstream));
            }
            return out;
        }
    };
    let mut tls = UpstreamTls { versions: vec![TlsVersion::Tls12], ..tls };
    let on_off = |v: &str| match v.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected `on` or `off`; `off` stays".to_owned()),
    };
    let mut set = |key: &'a str, read: Result<String, String>| {
        out.outcomes.insert(key, read.map_or_else(Read::Rejected, Read::Applied));
    };
    if let Some((&key, &v)) = ours.get_key_value("proxy-ssl-verify") {
        set(
            key,
            on_off(v).map(|on| {
                tls.verify = on;
                format!("endpoint certificates {}", if on { "checked" } else { "not checked" })
            }),
        );
    }
    if let Some((&key, &v)) = ours.get_key_value("proxy-ssl-verify-depth") {
        set(
            key,
            match v.trim().parse::<u32>() {
                Ok(0) | Err(_) => Err("expected a whole number above 0; 1 stays".to_owned()),
                Ok(n) => {
                    tls.verify_depth = n;
                    Ok(format!("up to {n} intermediates"))
                }
            },
        );
    }
    let name = ours.get_key_value("proxy-ssl-name").map(|(&k, &v)| (k, v.trim()));
    if let Some((key, v)) = name {
        set(
            key,
            if valid_name(v) {
                tls.name = v.to_ascii_lowercase();
                Ok(format!("endpoint certificates checked for `{}`", tls.name))
            } else {
                Err("expected a host name; `upstream_balancer` stays".to_owned())
            },
        );
    }
    if let Some((&key, &v)) = ours.get_key_value("proxy-ssl-server-name") {
        let named = name.is_some_and(|(_, n)| valid_name(n));
        set(
            key,
            on_off(v).map(|on| {
                // ingress-nginx writes `proxy_ssl_server_name` only beside `proxy_ssl_name`.
                tls.server_name = on && named;
                match (on, named) {
                    (true, true) => format!("SNI `{}` sent", tls.name),
                    (true, false) => "no effect without `proxy-ssl-name`: no SNI".to_owned(),
                    (false, _) => "no SNI".to_owned(),
                }
            }),
        );
    }
    if let Some((&key, &v)) = ours.get_key_value("proxy-ssl-protocols") {
        set(
            key,
            protocols(v).map(|versions| {
                let text =
                    versions.iter().map(|v| if *v == TlsVersion::Tls12 { "TLSv1.2" } else { "TLSv1.3" });
                let text = text.collect::<Vec<_>>().join(" ");
                tls.versions = versions;
                format!("{text} to endpoints")
            }),
        );
    }
    if let Some((&key, &v)) = ours.get_key_value("proxy-ssl-ciphers") {
        let v = v.trim();
        set(
            key,
            if v.bytes().all(|b| b.is_ascii_alphanumeric() || b"+:_-!".contains(&b)) && !v.is_empty() {
                tls.ciphers = v.to_owned();
                Ok(format!("ciphers `{v}` to endpoints"))
            } else {
                Err("expected an OpenSSL cipher list (letters, digits, `+:_-!`); `DEFAULT` stays".to_owned())
            },
        );
    }
    out.outcomes.insert(secret_key, Read::Applied(format!("TLS to endpoints: {}", tls.describe())));
    upstream.tls = Some(Arc::new(tls));
    policy.upstream = Some(Arc::new(upstream));
    out
}

/// The Secret `reference` names, read: its `(namespace, name)` and what it holds.
fn load(
    reference: &str,
    namespace: &str,
    secret: &SecretLookup<'_>,
) -> Result<(crate::objects::Key, UpstreamTls), String> {
    let ((ns, name), mut fields) = super::auth::named_secret(reference, namespace, secret)?;
    let ca = fields.remove("ca.crt").ok_or_else(|| format!("Secret {ns}/{name} has no `ca.crt`"))?;
    let (certificate, key) = match (fields.remove("tls.crt"), fields.remove("tls.key")) {
        (Some(c), Some(k)) => (Some(c), Some(k)),
        (None, None) => (None, None),
        _ => return Err(format!("Secret {ns}/{name} has only one of `tls.crt` and `tls.key`")),
    };
    let tls = UpstreamTls { ca: Some(ca), certificate, key, ..UpstreamTls::default() };
    Ok(((ns, name), tls))
}

/// `TLSv1.2`, `TLSv1.3` or both, separated by spaces.
fn protocols(v: &str) -> Result<Vec<TlsVersion>, String> {
    let mut versions = Vec::new();
    for word in v.split(' ').filter(|w| !w.is_empty()) {
        match word {
            "TLSv1.2" => versions.push(TlsVersion::Tls12),
            "TLSv1.3" => versions.push(TlsVersion::Tls13),
            _ => return Err("expected `TLSv1.2` and/or `TLSv1.3`; `TLSv1.2` stays".to_owned()),
        }
    }
    versions.sort();
    versions.dedup();
    if versions.is_empty() {
        return Err("expected `TLSv1.2` and/or `TLSv1.3`; `TLSv1.2` stays".to_owned());
    }
    Ok(versions)
}

/// A DNS name (letters, digits, `-`, `.`, and `*` for a wildcard label).
fn valid_name(v: &str) -> bool {
    !v.is_empty() && v.len() <= 253 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_data() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([("ca.crt".to_owned(), b"-----BEGIN CERTIFICATE-----\n".to_vec())])
    }

    fn run(
        pairs: &[(&'static str, &'static str)],
    ) -> (RoutePolicy, BTreeMap<&'static str, Read>, Vec<&'static str>) {
        let ours: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        let mut policy = RoutePolicy::default();
        let lookup = |ns: &str, name: &str| (ns == "app" && name == "upstream-ca").then(secret_data);
        let b = read(&ours, "app", &lookup, &mut policy);
        (policy, b.outcomes, b.denied)
    }

    #[test]
    fn the_protocol_is_read_in_any_case_and_a_bad_one_leaves_http() {
        let (p, o, _) = run(&[("backend-protocol", " grpc ")]);
        assert_eq!(p.backend_protocol(), BackendProtocol::Grpc);
        assert!(matches!(o["backend-protocol"], Read::Applied(_)));
        let (p, o, denied) = run(&[("backend-protocol", "spdy")]);
        assert_eq!(p.backend_protocol(), BackendProtocol::Http);
        assert!(matches!(o["backend-protocol"], Read::Rejected(_)) && denied.is_empty());
        let (p, o, _) = run(&[("backend-protocol", "FCGI")]);
        assert_eq!(p.backend_protocol(), BackendProtocol::Http);
        assert!(matches!(o["backend-protocol"], Read::Ignored(_)));
    }

    #[test]
    fn proxy_ssl_applies_only_with_its_secret() {
        let (p, o, _) = run(&[("proxy-ssl-verify", "on")]);
        assert!(p.upstream_tls().is_none());
        assert!(matches!(&o["proxy-ssl-verify"], Read::Applied(t) if t.contains("no effect")));

        let (p, o, denied) = run(&[
            ("proxy-ssl-secret", "app/upstream-ca"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-verify-depth", "2"),
            ("proxy-ssl-name", "API.internal"),
            ("proxy-ssl-server-name", "on"),
            ("proxy-ssl-protocols", "TLSv1.3 TLSv1.2"),
        ]);
        assert!(denied.is_empty(), "{o:?}");
        let tls = p.upstream_tls().map(|t| &**t).cloned().unwrap_or_default();
        assert!(tls.verify && tls.server_name && tls.ca.is_some());
        assert_eq!((tls.verify_depth, tls.name.as_str()), (2, "api.internal"));
        assert_eq!(tls.versions, [TlsVersion::Tls12, TlsVersion::Tls13]);

        // With the secret alone: ingress-nginx's defaults for the family (TLS 1.2 only).
        let (p, _, _) = run(&[("proxy-ssl-secret", "app/upstream-ca")]);
        let tls = p.upstream_tls().map(|t| &**t).cloned().unwrap_or_default();
        assert!(!tls.verify && !tls.server_name);
        assert_eq!(
            (tls.versions.as_slice(), tls.name.as_str()),
            (&[TlsVersion::Tls12][..], "upstream_balancer")
        );
        // A server name without a name: no SNI.
        let (p, _, _) = run(&[("proxy-ssl-secret", "app/upstream-ca"), ("proxy-ssl-server-name", "on")]);
        assert!(!p.upstream_tls().map(|t| &**t).is_some_and(|t| t.server_name));
    }

    #[test]
    fn a_missing_or_foreign_secret_denies_the_ingress() {
        for reference in ["app/missing", "other/upstream-ca", "upstream-ca"] {
            let (p, o, denied) = run(&[("proxy-ssl-secret", reference), ("proxy-ssl-verify", "on")]);
            assert_eq!(denied, ["proxy-ssl-secret"], "{reference}");
            assert!(p.upstream_tls().is_none());
            assert!(matches!(o["proxy-ssl-verify"], Read::Rejected(_)));
        }
        let (_, o, denied) = run(&[("proxy-ssl-secret", "app/upstream-ca"), ("proxy-ssl-verify", "yes")]);
        assert!(denied.is_empty());
        assert!(matches!(o["proxy-ssl-verify"], Read::Rejected(_)), "a bad value leaves the default");
    }
}
