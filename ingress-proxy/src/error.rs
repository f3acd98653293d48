//! The crate's error type.

use ingress_core::CertificateRef;

/// What can go wrong while setting up or running the proxy.
///
/// Request-time failures never surface here: they become HTTP statuses (see the crate docs).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key from a snapshot could not be parsed; its hosts get the default
    /// certificate instead.
    #[error("certificate {certificate}: {reason}")]
    Certificate {
        /// Which certificate.
        certificate: CertificateRef,
        /// What is wrong with it.
        reason: String,
        /// The OpenSSL error, when OpenSSL reported one.
        #[source]
        source: Option<openssl::error::ErrorStack>,
    },
    /// The configured default certificate could not be parsed.
    #[error("default certificate: {reason}")]
    DefaultCertificate {
        /// What is wrong with it.
        reason: String,
        /// The OpenSSL error, when OpenSSL reported one.
        #[source]
        source: Option<openssl::error::ErrorStack>,
    },
    /// A listener address cannot be bound (in use, not local, no permission) or never
    /// started accepting.
    #[error("listener {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// OpenSSL failed while building TLS settings or generating the fake certificate.
    #[error("TLS set-up: {0}")]
    Tls(#[source] openssl::error::ErrorStack),
    /// Pingora refused the listener or server configuration.
    #[error("server set-up: {0}")]
    Server(#[source] Box<pingora::Error>),
    /// A Prometheus metric could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[source] prometheus::Error),
    /// The server thread could not be started or panicked.
    #[error("server thread: {0}")]
    Thread(#[source] std::io::Error),
    /// No listener is configured, so the server would serve nothing.
    #[error("no listener configured (http_addr, https_addr and admin_addr are all None)")]
    NoListener,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<prometheus::Error> for Error {
    fn from(e: prometheus::Error) -> Self {
        Error::Metrics(e)
    }
}
