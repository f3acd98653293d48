//! The TLS map of a build: each host's certificate from the oldest Ingress claiming it, the
//! aliases' certificates, the default certificate and the material. The last one made is kept
//! and handed to the next table while the TLS claims, the accepted aliases, the default
//! certificate and the material are the same, so a change elsewhere costs no TLS work at all;
//! when only the material changed (a Secret updated), the next map shares the hosts part.

use std::collections::HashMap;
use std::sync::Arc;

use super::TableBuilder;
use super::index;
use super::ingress::Entry;
use crate::tls::{TlsEntry, TlsHosts};
use crate::{CertificateRef, Field, HostPattern, Reason, Rejection, TlsMap};

/// Which TLS entry each host pattern got: the entry's index and the claim's field.
type Claims = HashMap<HostPattern, (u32, Field)>;

/// The TLS map the last build made, and what it was made from.
#[derive(Debug, Default)]
pub(super) struct TlsMemo {
    /// `None` once an Ingress with TLS claims came, went or changed them (see [`TlsMemo::forget`]).
    made: Option<Made>,
}

#[derive(Debug)]
struct Made {
    map: Arc<TlsMap>,
    /// The rejections of duplicate claims.
    rejected: Vec<Rejection>,
    /// The aliases served with their host's certificate: (host, alias), in order.
    aliases: Vec<(HostPattern, HostPattern)>,
    default: Option<CertificateRef>,
}

impl TlsMemo {
    /// Forgets the map: an Ingress with TLS claims came, went or changed them.
    pub(super) fn forget(&mut self) {
        self.made = None;
    }

    /// The TLS map of `with_tls` (the Ingresses with TLS claims, oldest first), `aliases` (each
    /// (host, alias) served with its host's certificate, in the order they were accepted) and
    /// the builder's certificates; the rejections of duplicate claims go to `rejected`. The
    /// last map when nothing it was made from changed; its hosts part with the builder's
    /// material when only that changed.
    pub(super) fn map<'e>(
        &mut self,
        with_tls: impl Iterator<Item = &'e Entry>,
        aliases: Vec<(HostPattern, HostPattern)>,
        builder: &TableBuilder,
        rejected: &mut Vec<Rejection>,
    ) -> Arc<TlsMap> {
        if let Some(made) = &mut self.made
            && made.aliases == aliases
            && made.default == builder.default_certificate
        {
            // The same claims: only the certificates' content may differ.
            if !made.map.material.same(&builder.certificates) {
                let hosts = Arc::clone(&made.map.hosts);
                made.map = Arc::new(TlsMap { hosts, material: builder.certificates.clone() });
            }
            rejected.extend(made.rejected.iter().cloned());
            return Arc::clone(&made.map);
        }
        let mut own = Vec::new();
        let (mut hosts, mut claims) = claimed(with_tls, &mut own);
        for (host, alias) in &aliases {
            alias_certificate(&mut hosts, &mut claims, host, alias);
        }
        if let Some(cert) = &builder.default_certificate {
            hosts.default =
                Some(TlsEntry { host: HostPattern::Any, certificate: cert.clone(), origin: None });
        }
        let map = Arc::new(TlsMap { hosts: Arc::new(hosts), material: builder.certificates.clone() });
        rejected.extend(own.iter().cloned());
        self.made = Some(Made {
            map: Arc::clone(&map),
            rejected: own,
            aliases,
            default: builder.default_certificate.clone(),
        });
        map
    }
}

/// Each host's certificate from the oldest Ingress claiming it (`with_tls`, oldest first); a
/// younger claim with another certificate is rejected.
fn claimed<'e>(
    with_tls: impl Iterator<Item = &'e Entry>,
    rejected: &mut Vec<Rejection>,
) -> (TlsHosts, Claims) {
    let mut map = TlsHosts::default();
    let mut claims: Claims = HashMap::new();
    for entry in with_tls {
        let origin = &entry.ingress.origin;
        for (field, pattern) in &entry.tls {
            let Some(certificate) = entry.certificate(*field) else { continue };
            if let Some(&(winner, winner_field)) = claims.get(pattern) {
                let Some(won) = map.entries.get(winner as usize) else { continue };
                if won.certificate != *certificate {
                    let winner = won.origin.clone().unwrap_or_else(|| origin.clone());
                    let reason = Reason::Duplicate { winner, winner_field };
                    rejected.push(Rejection { origin: origin.clone(), field: *field, reason });
                }
                continue;
            }
            claims.insert(pattern.clone(), (index(map.entries.len()), *field));
            map.insert(TlsEntry {
                host: pattern.clone(),
                certificate: certificate.clone(),
                origin: Some(origin.clone()),
            });
        }
    }
    (map, claims)
}

/// Serves an alias with its host's certificate, unless a TLS entry names the alias itself
/// (ingress-nginx gives an alias its server's certificate; when that does not cover the
/// name, the client sees a mismatch either way).
fn alias_certificate(tls: &mut TlsHosts, claims: &mut Claims, host: &HostPattern, alias: &HostPattern) {
    let Some(&(i, field)) = claims.get(host) else { return };
    if claims.contains_key(alias) {
        return;
    }
    let Some(e) = tls.entries.get(i as usize) else { return };
    let entry =
        TlsEntry { host: alias.clone(), certificate: e.certificate.clone(), origin: e.origin.clone() };
    claims.insert(alias.clone(), (index(tls.entries.len()), field));
    tls.insert(entry);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use crate::{
        BackendRef, CertificatePem, CertificateRef, EndpointStore, HostRule, Ingress, Origin, PathRule,
        PathType, Rebuilder, RouteTable, TableBuilder,
    };

    /// A new version of a TLS Ingress that claims the same hosts with the same certificates
    /// keeps the hosts part of the TLS map; new certificate content shares it too; a new claim
    /// makes a new one.
    #[test]
    fn the_hosts_part_is_shared_while_the_claims_are_the_same() {
        let cert = CertificateRef::new("ns", "tls");
        let site = |path: &str, host: &str| {
            let backend = BackendRef::new("ns", "svc", 80);
            let rule = HostRule::host(host).path(PathRule::new(path, PathType::Prefix, backend));
            Arc::new(Ingress::new(Origin::new("ns", "web")).rule(rule).tls([host], cert.clone()))
        };
        let mut rebuilder = Rebuilder::new();
        let mut store = EndpointStore::new();
        let mut build = |ingress: Arc<Ingress>, chain: &str| -> RouteTable {
            let mut b = TableBuilder::new();
            b.ingress(ingress);
            b.certificate(cert.clone(), CertificatePem::new(chain, "key"));
            rebuilder.build(&b, &mut store).table
        };
        let material = |t: &RouteTable| t.tls().material(&cert).map(|pem| pem.chain.clone());
        let first = build(site("/a", "a.example.com"), "one");
        let path_changed = build(site("/b", "a.example.com"), "one");
        assert!(Arc::ptr_eq(&first.tls.hosts, &path_changed.tls.hosts));
        let content_changed = build(site("/b", "a.example.com"), "two");
        assert!(Arc::ptr_eq(&first.tls.hosts, &content_changed.tls.hosts));
        assert_eq!(material(&content_changed).as_deref(), Some("two"));
        let host_changed = build(site("/b", "b.example.com"), "two");
        assert!(!Arc::ptr_eq(&first.tls.hosts, &host_changed.tls.hosts));
        let served =
            |t: &RouteTable, host| t.tls().certificate_for(Some(host)).map(|e| e.certificate.clone());
        assert_eq!(served(&host_changed, "b.example.com"), Some(cert.clone()));
        assert_eq!(served(&host_changed, "a.example.com"), None);
        assert_eq!(material(&host_changed).as_deref(), Some("two"));
    }
}
