//! The TLS map of a build: each host's certificate from the oldest Ingress claiming it, the
//! aliases' certificates, the default certificate and the material. The last one made is kept
//! and handed to the next table while the Ingresses with TLS, the accepted aliases and the
//! certificates are the same, so a change elsewhere costs no TLS work at all.

use std::collections::HashMap;
use std::sync::Arc;

use super::TableBuilder;
use super::index;
use super::ingress::Entry;
use crate::tls::TlsEntry;
use crate::{CertificateRef, Field, HostPattern, Reason, Rejection, TlsMap};

/// Which TLS entry each host pattern got: the entry's index and the claim's field.
type Claims = HashMap<HostPattern, (u32, Field)>;

/// The TLS map the last build made, and what it was made from.
#[derive(Debug, Default)]
pub(super) struct TlsMemo {
    /// `None` once an Ingress with TLS claims came or went (see [`TlsMemo::forget`]).
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
    /// Forgets the map: an Ingress with TLS claims came or went.
    pub(super) fn forget(&mut self) {
        self.made = None;
    }

    /// The TLS map of `with_tls` (the Ingresses with TLS claims, oldest first), `aliases` (each
    /// (host, alias) served with its host's certificate, in the order they were accepted) and
    /// the builder's certificates; the rejections of duplicate claims go to `rejected`. The
    /// last map when nothing it was made from changed.
    pub(super) fn map<'e>(
        &mut self,
        with_tls: impl Iterator<Item = &'e Entry>,
        aliases: Vec<(HostPattern, HostPattern)>,
        builder: &TableBuilder,
        rejected: &mut Vec<Rejection>,
    ) -> Arc<TlsMap> {
        if let Some(made) = &self.made
            && made.aliases == aliases
            && made.default == builder.default_certificate
            && (Arc::ptr_eq(&made.map.material, &builder.certificates)
                || made.map.material == builder.certificates)
        {
            rejected.extend(made.rejected.iter().cloned());
            return Arc::clone(&made.map);
        }
        let mut own = Vec::new();
        let (mut map, mut claims) = claimed(with_tls, &mut own);
        for (host, alias) in &aliases {
            alias_certificate(&mut map, &mut claims, host, alias);
        }
        if let Some(cert) = &builder.default_certificate {
            map.default = Some(TlsEntry { host: HostPattern::Any, certificate: cert.clone(), origin: None });
        }
        map.material = Arc::clone(&builder.certificates);
        let map = Arc::new(map);
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
fn claimed<'e>(with_tls: impl Iterator<Item = &'e Entry>, rejected: &mut Vec<Rejection>) -> (TlsMap, Claims) {
    let mut map = TlsMap::default();
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
fn alias_certificate(tls: &mut TlsMap, claims: &mut Claims, host: &HostPattern, alias: &HostPattern) {
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
