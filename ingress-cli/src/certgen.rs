//! `ingress-controller webhook-certificate`: provisions the validating webhook's certificate
//! in a cluster, as ingress-nginx's `kube-webhook-certgen` Jobs do, with Ferry's own image:
//! a CA and a serving certificate for the webhook's Service in a Secret (kept if it is
//! already there), then the CA in the ValidatingWebhookConfiguration's `caBundle`.

use anyhow::Context;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

use crate::args::CertgenArgs;

/// The Secret's keys: the names `kube-webhook-certgen` writes, which the deploy manifest mounts
/// as `/usr/local/certificates/cert` and `…/key`.
const CA: &str = "ca";
const CERT: &str = "cert";
const KEY: &str = "key";

/// A certificate and its key, PEM.
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

pub(crate) async fn run(args: CertgenArgs) -> anyhow::Result<bool> {
    let client = crate::run::client(&args.source).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &args.namespace);
    let ca = match secrets.get_opt(&args.secret).await? {
        Some(existing) => {
            let data = existing.data.unwrap_or_default();
            let ca = data.get(CA).filter(|_| data.contains_key(CERT) && data.contains_key(KEY));
            let ca = ca.with_context(|| {
                format!("Secret {}/{} lacks `ca`, `cert` or `key`", args.namespace, args.secret)
            })?;
            eprintln!("webhook-certificate: Secret {}/{} exists, kept", args.namespace, args.secret);
            ca.0.clone()
        }
        None => {
            let hosts = service_names(&args.service, &args.namespace);
            let (ca, serving) = generate(&hosts, args.days)?;
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(args.secret.clone()),
                    namespace: Some(args.namespace.clone()),
                    ..ObjectMeta::default()
                },
                data: Some(
                    [(CA, &ca.cert), (CERT, &serving.cert), (KEY, &serving.key)]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), ByteString(v.clone())))
                        .collect(),
                ),
                ..Secret::default()
            };
            secrets.create(&PostParams::default(), &secret).await.context("creating the webhook Secret")?;
            eprintln!(
                "webhook-certificate: Secret {}/{} created for {}",
                args.namespace,
                args.secret,
                hosts.join(", ")
            );
            ca.cert
        }
    };
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let mut config = webhooks
        .get(&args.webhook)
        .await
        .with_context(|| format!("ValidatingWebhookConfiguration {}", args.webhook))?;
    for webhook in config.webhooks.iter_mut().flatten() {
        webhook.client_config.ca_bundle = Some(ByteString(ca.clone()));
    }
    webhooks.replace(&args.webhook, &PostParams::default(), &config).await?;
    eprintln!("webhook-certificate: caBundle of ValidatingWebhookConfiguration {} set", args.webhook);
    Ok(true)
}

/// The names the API server may use for the Service.
fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

fn key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

/// A CA, and a serving certificate it signs for `hosts`, valid for `days`.
fn generate(hosts: &[String], days: u32) -> Result<(Pem, Pem), openssl::error::ErrorStack> {
    let builder =
        |cn: &str, key: &PKey<Private>| -> Result<openssl::x509::X509Builder, openssl::error::ErrorStack> {
            let mut name = X509NameBuilder::new()?;
            name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
            let name = name.build();
            let mut serial = BigNum::new()?;
            serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
            let mut b = X509::builder()?;
            b.set_version(2)?;
            b.set_serial_number(&*serial.to_asn1_integer()?)?;
            b.set_subject_name(&name)?;
            b.set_pubkey(key)?;
            b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
            b.set_not_after(&*Asn1Time::days_from_now(days)?)?;
            Ok(b)
        };
    let ca_key = key()?;
    let mut ca = builder("ingress-ferry-admission-ca", &ca_key)?;
    let ca_name = {
        let mut n = X509NameBuilder::new()?;
        n.append_entry_by_nid(Nid::COMMONNAME, "ingress-ferry-admission-ca")?;
        n.build()
    };
    ca.set_issuer_name(&ca_name)?;
    ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    ca.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    ca.sign(&ca_key, MessageDigest::sha256())?;
    let ca = ca.build();

    let leaf_key = key()?;
    let first = hosts.first().map_or("ingress-ferry-admission", String::as_str);
    let mut leaf = builder(first, &leaf_key)?;
    leaf.set_issuer_name(ca.subject_name())?;
    let mut san = SubjectAlternativeName::new();
    for host in hosts {
        san.dns(host);
    }
    let san = san.build(&leaf.x509v3_context(Some(&ca), None))?;
    leaf.append_extension(san)?;
    leaf.append_extension(KeyUsage::new().critical().digital_signature().key_encipherment().build()?)?;
    leaf.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    leaf.sign(&ca_key, MessageDigest::sha256())?;
    let leaf = leaf.build();
    Ok((
        Pem { cert: ca.to_pem()?, key: ca_key.private_key_to_pem_pkcs8()? },
        Pem { cert: leaf.to_pem()?, key: leaf_key.private_key_to_pem_pkcs8()? },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_certificate_is_signed_by_the_ca_for_the_service_names() {
        let hosts = service_names("ingress-ferry-admission", "ingress-ferry");
        let (ca, leaf) = generate(&hosts, 10).unwrap();
        let ca = X509::from_pem(&ca.cert).unwrap();
        let cert = X509::from_pem(&leaf.cert).unwrap();
        assert!(cert.verify(&ca.public_key().unwrap()).unwrap());
        let names: Vec<String> =
            cert.subject_alt_names().unwrap().iter().filter_map(|n| n.dnsname().map(str::to_owned)).collect();
        assert_eq!(names, hosts);
        let key = PKey::private_key_from_pem(&leaf.key).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
    }
}
