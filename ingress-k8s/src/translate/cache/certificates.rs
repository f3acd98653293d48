//! The certificates of every translated Ingress, as one map handed to each translation's
//! builder, kept up to date with the Ingresses translated again or gone.

use std::collections::HashMap;
use std::sync::Arc;

use ingress_core::{CertificateMaterial, CertificatePem, CertificateRef};

/// Every certificate the translated Ingresses registered, with how many of them registered it:
/// a change costs the certificates of the Ingresses it touches (and a copy of the shard it is
/// in when the last table still holds the map), not a pass over every Ingress.
#[derive(Debug, Default)]
pub(crate) struct CertificateMap {
    map: CertificateMaterial,
    users: HashMap<CertificateRef, usize>,
}

impl CertificateMap {
    /// The map, shared (the same version while nothing in it changed).
    pub(crate) fn shared(&self) -> CertificateMaterial {
        self.map.clone()
    }

    /// Counts the certificates an Ingress registered; each one's material replaces what the
    /// map had (every Ingress reading a changed Secret is translated again in the same pass, so
    /// they all bring the new material).
    pub(crate) fn add(&mut self, certificates: &[(CertificateRef, Arc<CertificatePem>)]) {
        for (certificate, pem) in certificates {
            *self.users.entry(certificate.clone()).or_default() += 1;
            if self.map.get(certificate).is_none_or(|had| !Arc::ptr_eq(had, pem)) {
                self.map.insert(certificate.clone(), Arc::clone(pem));
            }
        }
    }

    /// Takes back what [`Self::add`] counted for an Ingress translated again or gone; a
    /// certificate no Ingress registers any more leaves the map.
    pub(crate) fn remove(&mut self, certificates: &[(CertificateRef, Arc<CertificatePem>)]) {
        for (certificate, _) in certificates {
            let Some(users) = self.users.get_mut(certificate) else { continue };
            *users -= 1;
            if *users == 0 {
                self.users.remove(certificate);
                self.map.remove(certificate);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cert(name: &str) -> CertificateRef {
        CertificateRef { namespace: "default".into(), name: name.into() }
    }

    #[test]
    fn a_certificate_stays_while_an_ingress_registers_it_with_the_latest_material() {
        let mut map = CertificateMap::default();
        let (v1, v2) = (Arc::new(CertificatePem::new("1", "k")), Arc::new(CertificatePem::new("2", "k")));
        let a = vec![(cert("tls"), Arc::clone(&v1))];
        map.add(&a);
        map.add(&a);
        let before = map.shared();
        map.add(&[]);
        assert!(before.same(&map.shared()), "nothing changed: the same map");
        // The Secret changed: both Ingresses translated again, with the new material.
        let b = vec![(cert("tls"), Arc::clone(&v2))];
        map.remove(&a);
        map.add(&b);
        assert!(Arc::ptr_eq(map.shared().get(&cert("tls")).unwrap(), &v2));
        map.remove(&a);
        map.add(&b);
        map.remove(&b);
        assert!(map.shared().get(&cert("tls")).is_some(), "one Ingress still registers it");
        map.remove(&b);
        assert!(map.shared().is_empty());
        assert!(map.users.is_empty());
    }
}
