//! TLS material: certificates parsed once per snapshot ([`CertCache::parse_all`], at install
//! time, never per handshake), the start-up fake certificate, and the listener settings.
//! Which certificate a handshake gets is [`crate::sni`]'s business.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use ingress_core::{CertificatePem, CertificateRef, RouteTable};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslRef, SslVersion};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509NameBuilder};
use pingora::listeners::TlsAccept;
use pingora::listeners::tls::TlsSettings;
use pingora::tls::ext;

use crate::{Error, Result};

/// A certificate chain and key, parsed and checked, ready to hand to OpenSSL.
pub(crate) struct ParsedCert {
    /// Leaf first.
    chain: Vec<X509>,
    key: PKey<Private>,
}

impl ParsedCert {
    /// When the leaf certificate expires, in Unix seconds.
    pub(crate) fn not_after(&self) -> Option<i64> {
        let leaf = self.chain.first()?;
        let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
        let diff = epoch.diff(leaf.not_after()).ok()?;
        Some(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
    }
}

impl std::fmt::Debug for ParsedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedCert").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

/// The parsed form of a [`CertificatePem`] the proxy takes instead of parsing its text again
/// (see [`CertificatePem::with_prepared`]): the chain, leaf first, and the private key. The
/// proxy still checks that the key matches the leaf.
pub type PreparedCertificate = (Vec<X509>, PKey<Private>);

impl ParsedCert {
    /// The prepared form of `pem` if it has one, else its PEM text parsed; `Err` carries a
    /// reason and OpenSSL's error, if any.
    pub(crate) fn from_pem(
        pem: &CertificatePem,
    ) -> std::result::Result<Self, (String, Option<openssl::error::ErrorStack>)> {
        let (chain, key) = match pem.prepared::<PreparedCertificate>() {
            Some((chain, key)) => (chain.clone(), key.clone()),
            None => (
                X509::stack_from_pem(pem.chain.as_bytes())
                    .map_err(|e| ("invalid certificate chain PEM".to_owned(), Some(e)))?,
                PKey::private_key_from_pem(pem.key.as_bytes())
                    .map_err(|e| ("invalid private key PEM".to_owned(), Some(e)))?,
            ),
        };
        let Some(leaf) = chain.first() else {
            return Err(("no certificate in chain".to_owned(), None));
        };
        match leaf.public_key().map(|public| public.public_eq(&key)) {
            Ok(true) => Ok(Self { chain, key }),
            Ok(false) => Err(("private key does not match the certificate".to_owned(), None)),
            Err(e) => Err(("unreadable public key".to_owned(), Some(e))),
        }
    }

    /// Hands the chain and key to a handshake in progress.
    pub(crate) fn apply(&self, ssl: &mut SslRef) -> std::result::Result<(), openssl::error::ErrorStack> {
        let (leaf, intermediates) = self.chain.split_first().ok_or_else(openssl::error::ErrorStack::get)?;
        ext::ssl_use_certificate(ssl, leaf)?;
        ext::ssl_use_private_key(ssl, &self.key)?;
        for cert in intermediates {
            ext::ssl_add_chain_cert(ssl, cert)?;
        }
        Ok(())
    }
}

/// Parsed certificates, kept across installs so an unchanged certificate is parsed once however
/// many snapshots carry it. Known first by the address of its material (the controller hands
/// every table the same `Arc` while a Secret is unchanged), then by content (the same material
/// in a new `Arc`), so an install costs no hashing of material already seen.
#[derive(Debug, Default)]
pub(crate) struct CertCache {
    /// By the address of the material, which the entry holds (so the address stays its own).
    by_address: HashMap<usize, Cached>,
    /// By a hash of the content.
    by_content: HashMap<u64, Cached>,
    /// How many PEM pairs were actually parsed (for tests and metrics): material that came
    /// prepared is not.
    pub(crate) parsed: u64,
}

/// One parsed certificate, with the material it was parsed from and that material's hash.
#[derive(Debug, Clone)]
struct Cached {
    pem: Arc<CertificatePem>,
    hash: u64,
    parsed: Arc<ParsedCert>,
}

fn content_hash(pem: &CertificatePem) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pem.chain.hash(&mut h);
    pem.key.hash(&mut h);
    h.finish()
}

fn address(pem: &Arc<CertificatePem>) -> usize {
    Arc::as_ptr(pem) as usize
}

impl CertCache {
    /// Parses every certificate `table` can hand out, reusing cached parses, and forgets cached
    /// certificates the table no longer uses. Invalid certificates are left out and returned.
    pub(crate) fn parse_all(
        &mut self,
        table: &RouteTable,
    ) -> (HashMap<CertificateRef, Arc<ParsedCert>>, Vec<Error>) {
        let mut out = HashMap::new();
        let mut errors = Vec::new();
        let mut by_address = HashMap::new();
        let mut by_content = HashMap::new();
        for cert in table.tls().certificates() {
            let Some(pem) = table.tls().material(cert) else { continue };
            let cached = match self.by_address.get(&address(pem)) {
                Some(cached) => cached.clone(),
                None => {
                    let hash = content_hash(pem);
                    let same = self.by_content.get(&hash).filter(|c| *c.pem == **pem);
                    let parsed = match same {
                        Some(c) => Arc::clone(&c.parsed),
                        None => {
                            self.parsed += u64::from(pem.prepared::<PreparedCertificate>().is_none());
                            match ParsedCert::from_pem(pem) {
                                Ok(p) => Arc::new(p),
                                Err((reason, source)) => {
                                    errors.push(Error::Certificate {
                                        certificate: cert.clone(),
                                        reason,
                                        source,
                                    });
                                    continue;
                                }
                            }
                        }
                    };
                    Cached { pem: Arc::clone(pem), hash, parsed }
                }
            };
            out.insert(cert.clone(), Arc::clone(&cached.parsed));
            by_content.insert(cached.hash, cached.clone());
            by_address.insert(address(&cached.pem), cached);
        }
        self.by_address = by_address;
        self.by_content = by_content;
        (out, errors)
    }
}

/// Generates the self-signed certificate served when nothing else matches, as ingress-nginx
/// does, so HTTPS answers (with a 404 or a route) even before any Secret exists.
pub(crate) fn fake_certificate() -> Result<ParsedCert> {
    let build = || -> std::result::Result<ParsedCert, openssl::error::ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Ferry")?;
        name.append_entry_by_nid(Nid::COMMONNAME, "Ferry Ingress Controller Fake Certificate")?;
        let name = name.build();
        let mut serial = BigNum::new()?;
        serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(365)?)?;
        let san = SubjectAlternativeName::new().dns("ingress.local").build(&b.x509v3_context(None, None))?;
        b.append_extension(san)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(ParsedCert { chain: vec![b.build()], key })
    };
    build().map_err(Error::Tls)
}

/// HTTPS listener settings: TLS 1.2 and newer, ALPN `h2` then `http/1.1`, and `callbacks`
/// choosing each handshake's certificate.
pub(crate) fn tls_settings(callbacks: Box<dyn TlsAccept + Send + Sync>) -> Result<TlsSettings> {
    let mut settings = TlsSettings::with_callbacks(callbacks).map_err(Error::Server)?;
    settings.set_min_proto_version(Some(SslVersion::TLS1_2)).map_err(Error::Tls)?;
    settings.enable_h2();
    Ok(settings)
}

/// Reads the PROXY protocol header before the TLS handshake when `use-proxy-protocol` is on,
/// and makes the addresses it names the connection's (its socket digest), so everything after
/// (HTTP/1 and HTTP/2 alike) sees the client the balancer saw. A connection without a valid
/// header within the timeout is dropped.
pub(crate) struct PreTls {
    pub(crate) shared: std::sync::Arc<crate::handle::Shared>,
    /// Behind the TLS passthrough front ([`crate::passthrough`]), on the loopback: every
    /// connection opens with the front's PROXY header, believed from the loopback only.
    /// `None`: the public listener, which reads a header when `use-proxy-protocol` says so.
    pub(crate) behind_front: Option<Vec<ingress_core::Cidr>>,
}

#[async_trait::async_trait]
impl pingora::listeners::PreTlsProcess for PreTls {
    async fn process(&self, stream: &mut pingora::protocols::l4::stream::Stream) -> pingora::Result<()> {
        use pingora::protocols::GetSocketDigest;
        let forwarding = self.shared.settings.load().forwarding.clone();
        if !forwarding.proxy_protocol && self.behind_front.is_none() {
            return Ok(());
        }
        let (header, rest) = crate::proxy_protocol::read(stream, forwarding.proxy_protocol_timeout)
            .await
            .map_err(|e| pingora::Error::explain(pingora::ErrorType::ReadError, e.to_string()))?;
        stream.rewind(&rest);
        let peer = stream.get_socket_digest().and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let trusted = self.behind_front.as_deref().unwrap_or(&forwarding.trusted);
        if let Some((client, local)) = crate::proxy_protocol::believed(&header, peer, trusted) {
            set_addresses(stream, client, local);
        }
        Ok(())
    }
}

/// Makes `stream`'s socket digest name `client` as its peer and `local` as its local
/// address (what a believed PROXY header said), for every later phase and driver.
pub(crate) fn set_addresses(
    stream: &mut pingora::protocols::l4::stream::Stream,
    client: std::net::SocketAddr,
    local: std::net::SocketAddr,
) {
    use std::os::fd::AsRawFd;

    use pingora::protocols::{GetSocketDigest, SocketDigest};
    let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
    let _ = digest.peer_addr.set(Some(client.into()));
    let _ = digest.local_addr.set(Some(local.into()));
    stream.set_socket_digest(digest);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fake_certificate_is_self_signed_and_valid() {
        let cert = fake_certificate().unwrap();
        let leaf = &cert.chain[0];
        assert!(leaf.verify(&cert.key).unwrap());
        let cn = leaf.subject_name().entries_by_nid(Nid::COMMONNAME).next().unwrap();
        assert_eq!(cn.data().to_string().unwrap(), "Ferry Ingress Controller Fake Certificate");
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let a = fake_certificate().unwrap();
        let b = fake_certificate().unwrap();
        let pem = CertificatePem::new(
            String::from_utf8(a.chain[0].to_pem().unwrap()).unwrap(),
            String::from_utf8(b.key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        );
        let err = ParsedCert::from_pem(&pem).unwrap_err();
        assert_eq!(err.0, "private key does not match the certificate");
        let garbage = CertificatePem::new("nope", "nope");
        assert!(ParsedCert::from_pem(&garbage).is_err());
    }

    #[test]
    fn prepared_material_is_taken_as_it_is_and_still_checked() {
        let a = fake_certificate().unwrap();
        let b = fake_certificate().unwrap();
        // Text that does not parse: only the prepared form can make it usable.
        let prepared: Arc<PreparedCertificate> = Arc::new((a.chain.clone(), a.key.clone()));
        let pem = CertificatePem::new("not parsed", "not parsed").with_prepared(prepared);
        let parsed = ParsedCert::from_pem(&pem).unwrap();
        assert_eq!(parsed.chain[0].to_der().unwrap(), a.chain[0].to_der().unwrap());
        let mismatched: Arc<PreparedCertificate> = Arc::new((a.chain, b.key));
        let pem = CertificatePem::new("x", "x").with_prepared(mismatched);
        assert_eq!(ParsedCert::from_pem(&pem).unwrap_err().0, "private key does not match the certificate");
    }
}
