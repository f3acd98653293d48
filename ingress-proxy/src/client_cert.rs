//! Client certificates (`auth-tls-*`) in the handshake: for a host with
//! [`ClientAuth`](ingress_core::ClientAuth), the SNI callback asks the client for a certificate
//! and checks it against the host's CAs without ending the handshake whatever the result (as
//! nginx does: the request gets the verdict); when the handshake completes, what came of it
//! is kept with the connection ([`ClientCertificate`], in Pingora's TLS digest), where both
//! HTTP drivers read it for the pipeline.

use std::fmt::Write as _;

use ingress_core::{ClientAuth, ClientVerdict, VerifyClient, escape_uri_component};
use openssl::nid::Nid;
use openssl::ssl::{SslRef, SslVerifyMode};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509NameRef, X509VerifyResult};

/// What a connection's handshake said of its client certificate (nginx's `$ssl_client_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCertificate {
    pub(crate) verdict: ClientVerdict,
    /// The subject DN, RFC 2253 (`$ssl_client_s_dn`).
    pub(crate) subject: String,
    /// The issuer DN (`$ssl_client_i_dn`).
    pub(crate) issuer: String,
    /// The certificate, PEM, URL-escaped (`$ssl_client_escaped_cert`).
    pub(crate) escaped: String,
}

/// Asks the client of this handshake for a certificate checked against `auth`'s CAs. A CA
/// that cannot be read refuses every certificate (the requests then get 400).
pub(crate) fn request(ssl: &mut SslRef, auth: &ClientAuth) {
    if auth.verify == VerifyClient::Off {
        return;
    }
    let cas = X509::stack_from_pem(auth.ca.as_bytes()).unwrap_or_default();
    let store = X509StoreBuilder::new().and_then(|mut b| {
        for ca in &cas {
            b.add_cert(ca.clone())?;
        }
        Ok(b.build())
    });
    match store {
        Ok(store) => {
            if let Err(error) = ssl.set_verify_cert_store(store) {
                tracing::warn!(%error, "cannot set the CAs of a client certificate check");
            }
        }
        Err(error) => tracing::warn!(%error, "cannot build the CAs of a client certificate check"),
    }
    if let Ok(mut names) = Stack::new() {
        for ca in &cas {
            if let Ok(name) = ca.subject_name().to_owned() {
                let _ = names.push(name);
            }
        }
        ssl.set_client_ca_list(names);
    }
    // nginx's `ssl_verify_depth`: the chain may hold this many certificates above the client's.
    ssl.param_mut().set_depth(i32::try_from(auth.depth).unwrap_or(i32::MAX));
    // The handshake goes on whatever the check says; the request gets the verdict.
    ssl.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
}

/// OpenSSL's verification errors that say only that no trusted CA vouches for a certificate
/// (nginx's `ngx_ssl_verify_error_optional`): `X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT`,
/// `_SELF_SIGNED_CERT_IN_CHAIN`, `_UNABLE_TO_GET_ISSUER_CERT_LOCALLY`,
/// `_UNABLE_TO_VERIFY_LEAF_SIGNATURE` and `_CERT_UNTRUSTED`.
const UNTRUSTED: [i32; 5] = [18, 19, 20, 21, 27];

/// What the completed handshake `ssl` says of the client's certificate.
pub(crate) fn verdict(ssl: &SslRef) -> ClientCertificate {
    let Some(cert) = ssl.peer_certificate() else {
        return ClientCertificate {
            verdict: ClientVerdict::None,
            subject: String::new(),
            issuer: String::new(),
            escaped: String::new(),
        };
    };
    let result = ssl.verify_result();
    let verdict = if result == X509VerifyResult::OK {
        ClientVerdict::Success
    } else if UNTRUSTED.contains(&result.as_raw()) {
        ClientVerdict::Untrusted(result.error_string().to_owned())
    } else {
        ClientVerdict::Failed(result.error_string().to_owned())
    };
    let pem = cert.to_pem().map(|p| String::from_utf8_lossy(&p).into_owned()).unwrap_or_default();
    let mut escaped = String::with_capacity(pem.len() + pem.len() / 8);
    escape_uri_component(&pem, &mut escaped);
    ClientCertificate {
        verdict,
        subject: rfc2253(cert.subject_name()),
        issuer: rfc2253(cert.issuer_name()),
        escaped,
    }
}

/// A distinguished name as RFC 2253 writes it (what nginx's `$ssl_client_s_dn` gives since
/// 1.11.6): the most specific part first, `,` between parts, special characters escaped.
fn rfc2253(name: &X509NameRef) -> String {
    let mut out = String::new();
    for entry in name.entries().collect::<Vec<_>>().into_iter().rev() {
        if !out.is_empty() {
            out.push(',');
        }
        let nid = entry.object().nid();
        let label = match nid {
            Nid::UNDEF => entry.object().to_string(),
            _ => nid.short_name().map(str::to_owned).unwrap_or_else(|_| entry.object().to_string()),
        };
        out.push_str(&label);
        out.push('=');
        let value = entry.data().to_string().unwrap_or_default();
        for (i, c) in value.chars().enumerate() {
            let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.chars().count() && c == ' ');
            if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
                out.push('\\');
            }
            if c.is_control() {
                let _ = write!(out, "\\{:02X}", c as u32);
            } else {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use openssl::x509::X509NameBuilder;

    use super::*;

    #[test]
    fn names_print_as_rfc_2253() {
        let mut b = X509NameBuilder::new().unwrap_or_else(|_| panic!("builder"));
        for (field, value) in [("C", "US"), ("O", "Example, Inc."), ("CN", "alice")] {
            b.append_entry_by_text(field, value).unwrap_or_else(|_| panic!("{field}"));
        }
        assert_eq!(rfc2253(&b.build()), "CN=alice,O=Example\\, Inc.,C=US");
    }
}
