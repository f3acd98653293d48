//! Private keys from a Secret's `tls.key`, read quickly. OpenSSL 3.0's generic PEM reader
//! (`PEM_read_bio_PrivateKey`, through its decoder framework) costs 0.45–0.74 ms per key here
//! whatever the key's type, about half of what checking a TLS Secret cost (the certificate
//! takes the rest); the type-specific DER readers it has for RSA (PKCS #1) and EC (SEC 1) keys
//! take microseconds. So the first private-key block is decoded here and read with those:
//! PKCS #1, SEC 1, and PKCS #8 holding an RSA key or an EC key on P-256, P-384 or P-521 (the
//! forms cert-manager, `openssl` and `kubectl create secret tls` users have). An encrypted key
//! is refused; anything else (another algorithm, a block with headers, or one that does not
//! read) goes to the generic reader, so what is accepted and refused stays OpenSSL's.

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;

/// The private key of `pem`, as OpenSSL's generic reader would read it, or why not. An
/// encrypted key is refused (there is no passphrase to give; OpenSSL would ask for one on the
/// terminal).
pub(crate) fn private_key(pem: &str) -> Result<PKey<Private>, String> {
    if let Some(key) = quick(pem) {
        return Ok(key);
    }
    if encrypted(pem) {
        return Err("the private key is encrypted".into());
    }
    generic(pem).map_err(|e| e.to_string())
}

/// Whether the first private-key block of `pem` is encrypted (PKCS #8, or OpenSSL's legacy
/// `Proc-Type: 4,ENCRYPTED` header).
fn encrypted(pem: &str) -> bool {
    let mut lines = pem.lines().map(str::trim);
    let Some(label) = lines.find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("PRIVATE KEY-----"))
    else {
        return false;
    };
    label == "ENCRYPTED "
        || lines.next().is_some_and(|l| l.starts_with("Proc-Type:") && l.contains("ENCRYPTED"))
}

/// OpenSSL's generic reader, given a passphrase no key has (so an encrypted key does not
/// decrypt; given none, or an empty one, OpenSSL asks on the terminal).
fn generic(pem: &str) -> Result<PKey<Private>, ErrorStack> {
    PKey::private_key_from_pem_callback(pem.as_bytes(), no_passphrase)
}

/// A passphrase callback for keys that must not be encrypted (see [`generic`]).
fn no_passphrase(buffer: &mut [u8]) -> Result<usize, ErrorStack> {
    const NONE: &[u8] = b"\x01ferry: no passphrase";
    let n = NONE.len().min(buffer.len());
    buffer[..n].copy_from_slice(&NONE[..n]);
    Ok(n)
}

/// The key of the first private-key block, if it is of a form read here.
fn quick(pem: &str) -> Option<PKey<Private>> {
    let (label, der) = first_key_block(pem)?;
    match label {
        "RSA PRIVATE KEY" => PKey::from_rsa(Rsa::private_key_from_der(&der).ok()?).ok(),
        "EC PRIVATE KEY" => PKey::from_ec_key(EcKey::private_key_from_der(&der).ok()?).ok(),
        "PRIVATE KEY" => pkcs8(&der),
        _ => None,
    }
}

/// The label and decoded body of the first block whose label names a private key (other
/// blocks, `EC PARAMETERS` or a certificate, are passed over as OpenSSL passes them).
fn first_key_block(pem: &str) -> Option<(&str, Vec<u8>)> {
    let mut lines = pem.lines().map(str::trim);
    loop {
        let line = lines.next()?;
        let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
            continue;
        };
        if !label.ends_with("PRIVATE KEY") {
            continue;
        }
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == end {
                return Some((label, openssl::base64::decode_block(&body).ok()?));
            }
            // Headers (`Proc-Type: 4,ENCRYPTED`): for OpenSSL to read.
            if line.contains(':') {
                return None;
            }
            body.push_str(line);
        }
        return None;
    }
}

/// DER, read one element at a time.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The contents of the next element, if it has tag `tag`.
    fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&found, rest) = self.0.split_first()?;
        if found != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (bytes, rest) = rest.split_at_checked(n)?;
            (bytes.iter().fold(0usize, |len, b| (len << 8) | usize::from(*b)), rest)
        };
        let (contents, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some(contents)
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
/// rsaEncryption (1.2.840.113549.1.1.1) and id-ecPublicKey (1.2.840.10045.2.1).
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// A PKCS #8 `PrivateKeyInfo` holding an RSA key, or an EC key on a named curve read here.
fn pkcs8(der: &[u8]) -> Option<PKey<Private>> {
    let mut info = Der(Der(der).read(SEQUENCE)?);
    info.read(INTEGER)?;
    let mut algorithm = Der(info.read(SEQUENCE)?);
    let oid = algorithm.read(OID)?;
    let key = info.read(OCTET_STRING)?;
    if oid == RSA {
        return PKey::from_rsa(Rsa::private_key_from_der(key).ok()?).ok();
    }
    if oid != EC {
        return None;
    }
    let curve = match algorithm.read(OID)? {
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => Nid::X9_62_PRIME256V1,
        [0x2b, 0x81, 0x04, 0x00, 0x22] => Nid::SECP384R1,
        [0x2b, 0x81, 0x04, 0x00, 0x23] => Nid::SECP521R1,
        _ => return None,
    };
    // SEC 1 `ECPrivateKey`, its curve given above: the private scalar is all that is taken; the
    // public point is computed from it, not read.
    let mut ec = Der(Der(key).read(SEQUENCE)?);
    ec.read(INTEGER)?;
    let scalar = BigNum::from_slice(ec.read(OCTET_STRING)?).ok()?;
    let group = EcGroup::from_curve_name(curve).ok()?;
    let mut public = EcPoint::new(&group).ok()?;
    let mut context = BigNumContext::new().ok()?;
    public.mul_generator2(&group, &scalar, &mut context).ok()?;
    PKey::from_ec_key(EcKey::from_private_components(&group, &scalar, &public).ok()?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use openssl::pkey::Id;
    use openssl::symm::Cipher;

    use super::*;

    const PARAMETERS: &str = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    /// Every form a key comes in, read here, and read alike by OpenSSL's generic reader.
    #[test]
    fn every_common_form_is_read_quickly_and_as_openssl_reads_it() {
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut forms = vec![
            ("PKCS #1", text(rsa.rsa().unwrap().private_key_to_pem().unwrap())),
            ("PKCS #8 RSA", text(rsa.private_key_to_pem_pkcs8().unwrap())),
        ];
        for (name, nid) in
            [("P-256", Nid::X9_62_PRIME256V1), ("P-384", Nid::SECP384R1), ("P-521", Nid::SECP521R1)]
        {
            let ec = EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap();
            let sec1 = text(ec.private_key_to_pem().unwrap());
            forms.push((name, sec1.clone()));
            // As `openssl ecparam -genkey` writes it: the curve's block first.
            forms.push((name, format!("{PARAMETERS}{sec1}")));
            forms.push((name, text(PKey::from_ec_key(ec).unwrap().private_key_to_pem_pkcs8().unwrap())));
        }
        for (name, pem) in &forms {
            let quick = quick(pem).unwrap_or_else(|| panic!("{name} not read quickly:\n{pem}"));
            let generic = generic(pem).unwrap();
            assert!(quick.public_eq(&generic), "{name}");
            assert_eq!(quick.id(), generic.id(), "{name}");
            // The private part too: the quick key signs what the generic key's public key verifies.
            let mut signer =
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &quick).unwrap();
            signer.update(b"ferry").unwrap();
            let signature = signer.sign_to_vec().unwrap();
            let mut verifier =
                openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &generic).unwrap();
            verifier.update(b"ferry").unwrap();
            assert!(verifier.verify(&signature).unwrap(), "{name}");
            // With CRLF line ends, as Windows tools write them.
            assert!(quick_eq(&pem.replace('\n', "\r\n"), &generic), "{name} CRLF");
        }
        assert_eq!(forms.iter().filter(|(_, pem)| quick(pem).unwrap().id() == Id::EC).count(), 9);
    }

    fn quick_eq(pem: &str, key: &PKey<Private>) -> bool {
        quick(pem).is_some_and(|k| k.public_eq(key))
    }

    /// What is not read here goes to OpenSSL, which reads it or refuses it as before.
    #[test]
    fn anything_else_is_left_to_openssl() {
        let rsa = Rsa::generate(2048).unwrap();
        let encrypted = text(
            PKey::from_rsa(rsa.clone())
                .unwrap()
                .private_key_to_pem_pkcs8_passphrase(Cipher::aes_128_cbc(), b"secret")
                .unwrap(),
        );
        let legacy_encrypted =
            text(rsa.private_key_to_pem_passphrase(Cipher::aes_128_cbc(), b"secret").unwrap());
        let ed25519 = text(PKey::generate_ed25519().unwrap().private_key_to_pem_pkcs8().unwrap());
        let good = text(rsa.private_key_to_pem().unwrap());
        let body: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
        let hostile = [
            String::new(),
            "not a key".to_owned(),
            "-----BEGIN RSA PRIVATE KEY-----\n".to_owned(),
            "-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----\n".to_owned(),
            format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
                &body[..body.len() / 2]
            ),
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----\n"),
            format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----\n"),
            "-----BEGIN PRIVATE KEY-----\nMIIBVQ==\n-----END PRIVATE KEY-----\n".to_owned(),
            "-----BEGIN PRIVATE KEY-----\nMIT/////\n-----END PRIVATE KEY-----\n".to_owned(),
        ];
        for pem in [&ed25519].into_iter().chain(&hostile) {
            assert!(quick(pem).is_none(), "{pem}");
            let ours = private_key(pem).map(|k| k.public_key_to_der().unwrap()).map_err(|_| ());
            let openssl = PKey::private_key_from_pem(pem.as_bytes())
                .map(|k| k.public_key_to_der().unwrap())
                .map_err(|_| ());
            assert_eq!(ours, openssl, "{pem}");
        }
        for pem in [&encrypted, &legacy_encrypted] {
            assert!(quick(pem).is_none());
            assert_eq!(private_key(pem).err().as_deref(), Some("the private key is encrypted"));
        }
        assert!(private_key(&ed25519).is_ok(), "another algorithm, read by OpenSSL");
        // DER lengths that run past the end, or are longer than four bytes, stop the reader.
        for der in
            [&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..], &[0x30, 0x85, 1, 1, 1, 1, 1], &[0x30, 0x80], &[0x30]]
        {
            assert!(pkcs8(der).is_none());
        }
    }
}
