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
    }
}
