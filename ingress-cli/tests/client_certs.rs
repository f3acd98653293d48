//! Client certificates (`auth-tls-*`) through the real binary in standalone mode: the CA comes
//! from a Secret of the manifest directory, the host asks for a certificate in its handshake,
//! and the endpoint gets the verdict in `ssl-client-*` headers.

mod support;

use anyhow::Result;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::BasicConstraints;
use openssl::x509::{X509, X509Name};
use support::manifests::{CLASS, ingress, secret, start, write_ingresses};
use support::{get, get_tls_as, head_echo_backend, services};

/// A certificate for `cn` and its key, signed by `issuer` (self-signed, a CA, without one).
fn certificate(cn: &str, issuer: Option<&(X509, PKey<Private>)>) -> Result<(X509, PKey<Private>)> {
    let group = openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?;
    let mut name = X509Name::builder()?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = openssl::bn::BigNum::from_u32(u32::from(issuer.is_some()) + 1)?.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_pubkey(&key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    match issuer {
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name())?;
            b.sign(ca_key, MessageDigest::sha256())?;
        }
        None => {
            b.set_issuer_name(&name)?;
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            b.sign(&key, MessageDigest::sha256())?;
        }
    }
    Ok((b.build(), key))
}

#[test]
fn auth_tls_secret_asks_the_hosts_clients_for_a_certificate() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let ca = certificate("Clients CA", None)?;
    let stranger = certificate("Stranger CA", None)?;
    let alice = certificate("alice", Some(&ca))?;
    let mallory = certificate("alice", Some(&stranger))?;
    let ca_pem = String::from_utf8(ca.0.to_pem()?)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, head_echo_backend("echo"))]))?;
    std::fs::write(
        dir.join("secrets.yaml"),
        [
            secret("client-ca", &[("ca.crt", &ca_pem)]),
            secret("with-crl", &[("ca.crt", &ca_pem), ("ca.crl", "-----BEGIN X509 CRL-----\n")]),
        ]
        .concat(),
    )?;
    write_ingresses(
        &dir,
        &[
            ingress(
                "mtls",
                "mtls.example.com",
                "echo",
                &[
                    ("auth-tls-secret", "default/client-ca"),
                    ("auth-tls-pass-certificate-to-upstream", "true"),
                ],
            ),
            ingress("crl", "crl.example.com", "echo", &[("auth-tls-secret", "default/with-crl")]),
            ingress("open", "open.example.com", "echo", &[]),
        ],
    )?;
    let c = start(&dir)?;
    let ask = |host: &str, who: Option<&(X509, PKey<Private>)>| {
        get_tls_as(c.https, host, "/", who.map(|(cert, key)| (cert, key))).map(|(r, _)| (r.status, r.body))
    };
    let (status, head) = ask("mtls.example.com", Some(&alice))?;
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("ssl-client-verify: success"), "{head}");
    assert!(head.contains("ssl-client-subject-dn: cn=alice"), "{head}");
    assert!(head.contains("ssl-client-issuer-dn: cn=clients ca"), "{head}");
    assert!(head.contains("ssl-client-cert: -----begin%20certificate-----"), "{head}");
    assert_eq!(ask("mtls.example.com", Some(&mallory))?.0, 400, "a certificate of another CA");
    assert_eq!(ask("mtls.example.com", None)?.0, 400, "no certificate");
    // A revocation list Ferry cannot apply denies the Ingress rather than let revoked clients in.
    assert_eq!(ask("crl.example.com", Some(&alice))?.0, 503);
    assert_eq!(ask("open.example.com", None)?.0, 200, "other hosts ask for nothing");
    assert_eq!(get(c.http, "open.example.com", "/")?.status, 200);
    Ok(())
}
