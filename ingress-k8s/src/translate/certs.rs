//! TLS Secrets → validated certificate material, each version of a Secret parsed once.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use ingress_core::CertificatePem;
use k8s_openapi::api::core::v1::Secret;
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::objects::Key;

/// TLS Secrets already checked, by key, with the version (the stored object) each was checked
/// in: parsing a private key is most of what a table costs to make, so a translation parses
/// only the Secrets that changed since the last one. Whether a certificate is valid *now* is
/// decided on every use.
#[derive(Debug, Default)]
pub struct CertificateCache {
    by_key: HashMap<Key, (Arc<Secret>, Verdict)>,
    /// Material checked, by a hash of its text: a Secret holding the same certificate as
    /// another (a wildcard certificate copied to many namespaces) shares its parse and its
    /// memory. Entries no Secret holds any more are swept as Secrets change.
    by_content: HashMap<u64, std::sync::Weak<Checked>>,
}

/// What checking one version of a Secret found: its material, or the reason it is refused.
type Verdict = Result<Arc<Checked>, String>;

/// A Secret that parsed: its material and the leaf's validity, in Unix seconds and as
/// OpenSSL prints it.
#[derive(Debug)]
struct Checked {
    /// Shared by every table made while the Secret is unchanged, so the proxy knows it by
    /// address and parses it once.
    pem: Arc<CertificatePem>,
    not_before: (i64, String),
    not_after: (i64, String),
}

impl CertificateCache {
    /// The material of `secret` (stored under `key`), parsed if this version was not, and
    /// valid now; else the reason shown to users. With it, the Unix second from which the
    /// answer may differ (the certificate expires, or becomes valid): a translation that used
    /// it is stale from then.
    pub(crate) fn get_until(
        &mut self,
        key: &Key,
        secret: &Arc<Secret>,
    ) -> (Result<Arc<CertificatePem>, String>, i64) {
        let fresh = self.by_key.get(key).is_some_and(|(seen, _)| Arc::ptr_eq(seen, secret));
        if !fresh {
            let checked = self.check(secret);
            self.by_key.insert(key.clone(), (Arc::clone(secret), checked));
        }
        let checked = match self.by_key.get(key) {
            Some((_, Ok(checked))) => checked,
            Some((_, Err(why))) => return (Err(why.clone()), i64::MAX),
            None => return (Err("secret not checked".into()), i64::MAX),
        };
        let now = unix_now();
        if checked.not_after.0 < now {
            return (Err(format!("certificate expired on {}", checked.not_after.1)), i64::MAX);
        }
        if checked.not_before.0 > now {
            return (
                Err(format!("certificate not valid before {}", checked.not_before.1)),
                checked.not_before.0,
            );
        }
        (Ok(Arc::clone(&checked.pem)), checked.not_after.0.saturating_add(1))
    }

    /// Forgets the Secrets of `keys` (those that changed) no longer stored, or stored in
    /// another version.
    pub(crate) fn forget_changed<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k Key>,
        secrets: &std::collections::BTreeMap<Key, Arc<Secret>>,
    ) {
        let mut forgot = false;
        for key in keys {
            let current = |seen: &Arc<Secret>| secrets.get(key).is_some_and(|now| Arc::ptr_eq(now, seen));
            if self.by_key.get(key).is_some_and(|(seen, _)| !current(seen)) {
                self.by_key.remove(key);
                forgot = true;
            }
        }
        if forgot {
            self.by_content.retain(|_, checked| checked.strong_count() > 0);
        }
    }

    /// `secret` checked: as a Secret of the same material was, else parsed.
    fn check(&mut self, secret: &Secret) -> Verdict {
        let chain = field(secret, "tls.crt")?;
        let key = field(secret, "tls.key")?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&chain, &key).hash(&mut hasher);
        let hash = hasher.finish();
        let same = self.by_content.get(&hash).and_then(std::sync::Weak::upgrade);
        if let Some(same) = same.filter(|c| c.pem.chain == chain && c.pem.key == key) {
            return Ok(same);
        }
        let checked = Arc::new(parse(chain, key)?);
        self.by_content.insert(hash, Arc::downgrade(&checked));
        Ok(checked)
    }
}

/// The clock certificate validity is judged by, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Checks one `kubernetes.io/tls` Secret as a fresh cache does: both keys present, the chain
/// parses, the key parses and matches the leaf certificate, and the leaf is valid now. The
/// error is the reason shown to users.
#[cfg(test)]
pub(crate) fn validate(secret: &Secret) -> Result<Arc<CertificatePem>, String> {
    CertificateCache::default().get_until(&Key::default(), &Arc::new(secret.clone())).0
}

/// Unix seconds of an ASN.1 time.
fn unix(time: &Asn1TimeRef) -> Result<i64, String> {
    let epoch = Asn1Time::from_unix(0).map_err(|e| format!("clock: {e}"))?;
    let diff = epoch.diff(time).map_err(|e| format!("certificate time unreadable: {e}"))?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// Parses the text of a `kubernetes.io/tls` Secret: the chain parses, the key parses and
/// matches the leaf certificate; the leaf's validity period, to be checked at each use.
fn parse(chain: String, key: String) -> Result<Checked, String> {
    let certs = X509::stack_from_pem(chain.as_bytes()).map_err(|e| format!("tls.crt does not parse: {e}"))?;
    let Some(leaf) = certs.first() else {
        return Err("tls.crt holds no PEM certificate".into());
    };
    let private = super::keys::private_key(&key).map_err(|e| format!("tls.key does not parse: {e}"))?;
    let public = leaf.public_key().map_err(|e| format!("tls.crt public key unreadable: {e}"))?;
    if !public.public_eq(&private) {
        return Err("tls.key does not match the certificate in tls.crt".into());
    }
    let not_before = (unix(leaf.not_before())?, leaf.not_before().to_string());
    let not_after = (unix(leaf.not_after())?, leaf.not_after().to_string());
    // What was parsed here goes along, so the proxy does not parse it again (the form
    // `ingress_proxy::PreparedCertificate` names: the chain, leaf first, and the key).
    let prepared: Arc<(Vec<X509>, PKey<Private>)> = Arc::new((certs, private));
    Ok(Checked {
        not_before,
        not_after,
        pem: Arc::new(CertificatePem::new(chain, key).with_prepared(prepared)),
    })
}

fn field(secret: &Secret, name: &str) -> Result<String, String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(name)) {
        return String::from_utf8(bytes.0.clone()).map_err(|_| format!("{name} is not UTF-8 PEM text"));
    }
    if let Some(text) = secret.string_data.as_ref().and_then(|d| d.get(name)) {
        return Ok(text.clone());
    }
    Err(format!("secret has no `{name}`"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;

    /// A self-signed certificate and key for `cn`, valid from `from` to `to` days from now.
    pub(crate) fn self_signed(cn: &str, from: i64, to: i64) -> (String, String) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        let at = |days: i64| Asn1Time::from_unix(openssl_now() + days * 86_400).unwrap();
        b.set_not_before(&at(from)).unwrap();
        b.set_not_after(&at(to)).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        (
            String::from_utf8(cert.to_pem().unwrap()).unwrap(),
            String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        )
    }

    fn openssl_now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn secret(crt: &str, key: &str) -> Secret {
        Secret {
            data: Some(
                [
                    ("tls.crt".to_owned(), ByteString(crt.into())),
                    ("tls.key".to_owned(), ByteString(key.into())),
                ]
                .into(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn validation_reasons() {
        let (crt, key) = self_signed("a.example.com", -1, 30);
        let (_, other_key) = self_signed("b.example.com", -1, 30);
        let (old_crt, old_key) = self_signed("old.example.com", -30, -1);
        assert!(validate(&secret(&crt, &key)).is_ok());
        assert_eq!(
            validate(&secret(&crt, &other_key)).unwrap_err(),
            "tls.key does not match the certificate in tls.crt"
        );
        assert!(validate(&secret("garbage", &key)).unwrap_err().starts_with("tls.crt"));
        assert!(validate(&secret(&crt, "garbage")).unwrap_err().starts_with("tls.key does not parse"));
        assert!(validate(&secret(&old_crt, &old_key)).unwrap_err().starts_with("certificate expired"));
        assert_eq!(validate(&Secret::default()).unwrap_err(), "secret has no `tls.crt`");
        // A cache parses each version once, and forgets versions no longer stored.
        let mut cache = CertificateCache::default();
        let name: Key = ("app".into(), "tls".into());
        let first = Arc::new(secret(&crt, &key));
        assert!(cache.get_until(&name, &first).0.is_ok());
        assert!(cache.get_until(&name, &first).0.is_ok(), "the same version, from the cache");
        let second = Arc::new(secret(&crt, &other_key));
        assert!(
            cache.get_until(&name, &second).0.unwrap_err().starts_with("tls.key does not match"),
            "a new version is parsed"
        );
        let stored = std::collections::BTreeMap::from([(name.clone(), Arc::clone(&second))]);
        cache.forget_changed([&name], &stored);
        assert_eq!(cache.by_key.len(), 1, "the stored version stays");
        cache.forget_changed([], &std::collections::BTreeMap::new());
        assert_eq!(cache.by_key.len(), 1, "a Secret not said to have changed stays");
        cache.forget_changed([&name], &std::collections::BTreeMap::from([(name.clone(), first)]));
        assert!(cache.by_key.is_empty(), "another version is stored");
        assert!(cache.get_until(&name, &second).0.is_err(), "parsed again");
        cache.forget_changed([&name], &std::collections::BTreeMap::new());
        assert!(cache.by_key.is_empty(), "deleted");
    }

    #[test]
    fn secrets_of_the_same_material_share_one_parse_handed_on_prepared() {
        let (crt, key) = self_signed("wild.example.com", -1, 30);
        let mut cache = CertificateCache::default();
        let (a, b): (Key, Key) = (("team-a".into(), "wild".into()), ("team-b".into(), "wild".into()));
        let (sa, sb) = (Arc::new(secret(&crt, &key)), Arc::new(secret(&crt, &key)));
        let pa = cache.get_until(&a, &sa).0.unwrap();
        let pb = cache.get_until(&b, &sb).0.unwrap();
        assert!(Arc::ptr_eq(&pa, &pb), "one parse, one copy of the material");
        // What the proxy takes instead of parsing again (`ingress_proxy::PreparedCertificate`).
        let (chain, private) = pa.prepared::<(Vec<X509>, PKey<Private>)>().expect("prepared");
        assert_eq!(chain.len(), 1);
        assert!(chain[0].public_key().unwrap().public_eq(private));
        // Both deleted: the material goes, and its entry with the next sweep.
        drop((pa, pb));
        cache.forget_changed([&a, &b], &std::collections::BTreeMap::new());
        assert!(cache.by_key.is_empty() && cache.by_content.is_empty());
    }
}
