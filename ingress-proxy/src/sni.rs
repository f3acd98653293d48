//! Which certificate each TLS handshake gets: Pingora pauses the OpenSSL handshake after the
//! ClientHello and calls [`TlsAccept::certificate_callback`]; [`SniResolver`] answers from the
//! current snapshot's parsed certificates (exact host, then wildcard, then the snapshot's
//! default, then the start-up default), so a new snapshot changes the certificate of the next
//! handshake with no restart.

use std::sync::Arc;

use async_trait::async_trait;
use openssl::ssl::{NameType, SslRef};
use pingora::listeners::TlsAccept;

use crate::handle::Shared;
use crate::tls::ParsedCert;

/// Picks the certificate of each handshake from the current snapshot.
pub(crate) struct SniResolver {
    shared: Arc<Shared>,
    fallback: Arc<ParsedCert>,
}

impl SniResolver {
    pub(crate) fn new(shared: Arc<Shared>, fallback: Arc<ParsedCert>) -> Self {
        Self { shared, fallback }
    }
}

impl SniResolver {
    /// The client certificate settings of the host this handshake names, if it has them.
    fn client_auth(&self, ssl: &SslRef) -> Option<Arc<ingress_core::ClientAuth>> {
        let name = ssl.servername(NameType::HOST_NAME)?;
        let snapshot = self.shared.snapshot.load();
        snapshot.as_ref()?.table.client_auth(name).cloned()
    }
}

#[async_trait]
impl TlsAccept for SniResolver {
    async fn certificate_callback(&self, ssl: &mut SslRef) {
        let cert = {
            let server_name = ssl.servername(NameType::HOST_NAME);
            let snapshot = self.shared.snapshot.load();
            snapshot
                .as_ref()
                .and_then(|s| s.certificate_for(server_name))
                .unwrap_or_else(|| Arc::clone(&self.fallback))
        };
        if let Err(e) = cert.apply(ssl) {
            tracing::warn!(error = %e, "could not install certificate for handshake");
        }
        // `auth-tls-*`: the host's clients are asked for a certificate.
        if let Some(auth) = self.client_auth(ssl) {
            crate::client_cert::request(ssl, &auth);
        }
    }

    async fn handshake_complete_callback(
        &self,
        ssl: &SslRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        // Kept with the connection for the pipeline, on hosts that asked for a certificate.
        let auth = self.client_auth(ssl)?;
        (auth.verify != ingress_core::VerifyClient::Off)
            .then(|| Arc::new(crate::client_cert::verdict(ssl)) as Arc<dyn std::any::Any + Send + Sync>)
    }
}
