//! The certificates of every translated Ingress, as one map handed to each translation's
//! builder, kept up to date with the Ingresses translated again or gone.

use std::collections::HashMap;
use std::sync::Arc;

use ingress_core::{CertificatePem, CertificateRef};

/// Every certificate the translated Ingresses registered, with how many of them registered it:
/// a change costs the certificates of the Ingresses it touches (and a copy of the map when the
/// last table still holds it), not a pass over every Ingress.
#[derive(Debug, Default)]
pub(crate) struct CertificateMap {
    map: Arc<HashMap<CertificateRef, Arc<CertificatePem>>>,
    users: HashMap<CertificateRef, usize>,
}

impl CertificateMap {
    /// The map, as one `Arc` (the same while nothing in it changed).
    pub(crate) fn shared(&self) -> Arc<HashMap<CertificateRef, Arc<CertificatePem>>> {
        Arc::clone(&self.map)
    }

    /// Counts the certificates an Ingress registered; each one's material replaces what the
    /// map had (every Ingress reading a changed Secret is translated again in the same pass, so
    /// they all bring the new material).
    pub(crate) fn add(&mut self, certificates: &[(CertificateRef, Arc<CertificatePem>)]) {
        for (certificate, pem) in certificates {
            *self.users.entry(certificate.clone()).or_default() += 1;
            if self.map.get(certificate).is_none_or(|had| !Arc::ptr_eq(had, pem)) {
                Arc::make_mut(&mut self.map).insert(certificate.clone(), Arc::clone(pem));
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
                Arc::make_mut(&mut self.map).remove(certificate);
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
        assert!(Arc::ptr_eq(&before, &map.shared()), "nothing changed: the same map");
        // The Secret changed: both Ingresses translated again, with the new material.
        let b = vec![(cert("tls"), Arc::clone(&v2))];
        map.remove(&a);
        map.add(&b);
        assert!(Arc::ptr_eq(&map.shared()[&cert("tls")], &v2));
        map.remove(&a);
        map.add(&b);
        map.remove(&b);
        assert!(map.shared().contains_key(&cert("tls")), "one Ingress still registers it");
        map.remove(&b);
        assert!(map.shared().is_empty());
        assert!(map.users.is_empty());
    }
}
