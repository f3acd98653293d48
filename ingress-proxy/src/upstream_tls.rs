//! TLS to endpoints (`backend-protocol: HTTPS`, `AUTO_HTTP`, `GRPCS`, with `proxy-ssl-*`):
//! each route's [`UpstreamTls`] compiled once into OpenSSL settings, for the HTTP/1 engine's
//! own connections ([`Upstream::Tls`]) and for Pingora's peers (HTTP/2 clients).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use ingress_core::{TlsVersion, UpstreamTls};
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// An upstream connection of the HTTP/1 engine: plain TCP or TLS over it.
#[derive(Debug)]
pub(crate) enum Upstream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Plain(s) => s.is_write_vectored(),
            Upstream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// One [`UpstreamTls`], compiled.
pub(crate) struct Compiled {
    /// What the HTTP/1 engine connects with.
    pub(crate) connector: SslConnector,
    /// The settings, for the name, SNI and verification of each connection.
    pub(crate) settings: Arc<UpstreamTls>,
    /// Trusted CAs, for Pingora's peers.
    pub(crate) ca: Option<Arc<Box<[X509]>>>,
    /// The client certificate and key, for Pingora's peers.
    pub(crate) client: Option<Arc<pingora::utils::tls::CertKey>>,
    /// Tells the pools' connections of different settings apart: unique for the process's
    /// life (an address could be reused by the next table's settings), never 0 (plain TCP's).
    pub(crate) id: u64,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why a route's TLS settings could not be used; its requests get `502`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    #[error("TLS to endpoints: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("TLS to endpoints: `tls.crt` holds no certificate")]
    NoCertificate,
}

/// A cache entry: the settings it was compiled from (weakly), and the result.
type Entry = (Weak<UpstreamTls>, Arc<Compiled>);

/// Compiled settings, by the address of the [`UpstreamTls`] they came from (checked through a
/// weak reference, so a new table's settings never find an old table's entry).
#[derive(Default)]
pub(crate) struct Connectors {
    by_settings: Mutex<HashMap<usize, Entry>>,
    /// nginx's defaults (`backend-protocol: HTTPS` without `proxy-ssl-secret`).
    default: Mutex<Option<Arc<Compiled>>>,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors").finish_non_exhaustive()
    }
}

impl Connectors {
    /// The compiled form of `settings` (`None`: nginx's defaults).
    pub(crate) fn get(&self, settings: Option<&Arc<UpstreamTls>>) -> Result<Arc<Compiled>, TlsSetupError> {
        let Some(settings) = settings else {
            let mut default = self.default.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = default.as_ref() {
                return Ok(Arc::clone(c));
            }
            let compiled = Arc::new(compile(&Arc::new(UpstreamTls::default()))?);
            *default = Some(Arc::clone(&compiled));
            return Ok(compiled);
        };
        let key = Arc::as_ptr(settings) as usize;
        let mut map = self.by_settings.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((weak, compiled)) = map.get(&key)
            && weak.upgrade().is_some_and(|s| Arc::ptr_eq(&s, settings))
        {
            return Ok(Arc::clone(compiled));
        }
        // Forget what belonged to tables no longer served.
        map.retain(|_, (weak, _)| weak.strong_count() > 0);
        let compiled = Arc::new(compile(settings)?);
        map.insert(key, (Arc::downgrade(settings), Arc::clone(&compiled)));
        Ok(compiled)
    }
}

fn compile(settings: &Arc<UpstreamTls>) -> Result<Compiled, TlsSetupError> {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    let version =
        |v: TlsVersion| if v == TlsVersion::Tls12 { SslVersion::TLS1_2 } else { SslVersion::TLS1_3 };
    b.set_min_proto_version(settings.versions.iter().min().copied().map(version))?;
    b.set_max_proto_version(settings.versions.iter().max().copied().map(version))?;
    b.set_cipher_list(&settings.ciphers)?;
    let ca = match &settings.ca {
        Some(pem) => Some(X509::stack_from_pem(pem.as_bytes())?),
        None => None,
    };
    if settings.verify {
        let mut store = X509StoreBuilder::new()?;
        for cert in ca.iter().flatten() {
            store.add_cert(cert.clone())?;
        }
        b.set_verify_cert_store(store.build())?;
        b.set_verify(SslVerifyMode::PEER);
        b.set_verify_depth(settings.verify_depth);
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }
    let mut client = None;
    if let (Some(chain), Some(key)) = (&settings.certificate, &settings.key) {
        let chain = X509::stack_from_pem(chain.as_bytes())?;
        let key: PKey<Private> = PKey::private_key_from_pem(key.as_bytes())?;
        let leaf = chain.first().ok_or(TlsSetupError::NoCertificate)?;
        b.set_certificate(leaf)?;
        for extra in chain.iter().skip(1) {
            b.add_extra_chain_cert(extra.clone())?;
        }
        b.set_private_key(&key)?;
        b.check_private_key()?;
        client = Some(Arc::new(pingora::utils::tls::CertKey::new(chain, key)));
    }
    Ok(Compiled {
        connector: b.build(),
        settings: Arc::clone(settings),
        ca: ca.map(|list| Arc::new(list.into_boxed_slice())),
        client,
        id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}

/// TLS over `tcp`, as `compiled` says (within the caller's connect timeout).
pub(crate) async fn handshake(compiled: &Compiled, tcp: TcpStream) -> std::io::Result<Upstream> {
    let settings = &compiled.settings;
    let mut config = compiled.connector.configure().map_err(std::io::Error::other)?;
    config.set_use_server_name_indication(settings.server_name);
    config.set_verify_hostname(settings.verify);
    let ssl = config.into_ssl(&settings.name).map_err(std::io::Error::other)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(std::io::Error::other)?;
    Pin::new(&mut stream).connect().await.map_err(|e| {
        let verify = stream.ssl().verify_result();
        if verify == openssl::x509::X509VerifyResult::OK {
            std::io::Error::other(e.to_string())
        } else {
            std::io::Error::other(format!("endpoint certificate refused: {verify}"))
        }
    })?;
    Ok(Upstream::Tls(Box::new(stream)))
}
