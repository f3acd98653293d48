//! TLS test helpers: certificates made on the fly, an OpenSSL client that reports what the
//! server presented.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;

use ingress_core::CertificatePem;
use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509NameBuilder};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// A self-signed certificate whose CN is `names[0]` and whose SANs are `names`.
pub(crate) fn make_cert(names: &[&str]) -> CertificatePem {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, names[0]).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    let mut san = SubjectAlternativeName::new();
    for n in names {
        san.dns(n);
    }
    let san = san.build(&b.x509v3_context(None, None)).unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    CertificatePem::new(
        String::from_utf8(b.build().to_pem().unwrap()).unwrap(),
        String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
    )
}

/// A TLS connection to `addr` with the given SNI (none if `None`) and ALPN offer.
pub(crate) async fn connect(addr: SocketAddr, sni: Option<&str>, alpn: &[&[u8]]) -> SslStream<TcpStream> {
    let mut builder = SslConnector::builder(SslMethod::tls()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    if !alpn.is_empty() {
        let mut wire = Vec::new();
        for p in alpn {
            wire.push(p.len() as u8);
            wire.extend_from_slice(p);
        }
        builder.set_alpn_protos(&wire).unwrap();
    }
    let connector = builder.build();
    let mut config = connector.configure().unwrap();
    config.set_verify_hostname(false);
    config.set_use_server_name_indication(sni.is_some());
    let ssl = config.into_ssl(sni.unwrap_or("")).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut stream).connect().await.unwrap();
    stream
}

/// The CN of the certificate the server presented.
pub(crate) fn served_cn(stream: &SslStream<TcpStream>) -> String {
    let cert = stream.ssl().peer_certificate().unwrap();
    let cn = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next().unwrap();
    cn.data().to_string().unwrap()
}

/// The DNS SANs of the certificate the server presented.
pub(crate) fn served_sans(stream: &SslStream<TcpStream>) -> Vec<String> {
    let cert = stream.ssl().peer_certificate().unwrap();
    cert.subject_alt_names()
        .map(|names| names.iter().filter_map(|n| n.dnsname().map(str::to_owned)).collect())
        .unwrap_or_default()
}
