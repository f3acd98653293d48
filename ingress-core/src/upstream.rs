//! How a route talks to its endpoints: the protocol (`backend-protocol`) and, over TLS, how
//! the endpoint's certificate is checked and what the proxy presents (`proxy-ssl-*`).
//!
//! Plain data, as every policy: the proxy compiles [`UpstreamTls`] into its TLS library's
//! settings once per value.

use std::fmt;
use std::str::FromStr;

/// The protocol spoken to a route's endpoints (ingress-nginx's `backend-protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum BackendProtocol {
    /// HTTP/1.1 in clear text (the default).
    #[default]
    Http,
    /// HTTP/1.1 over TLS.
    Https,
    /// The client's scheme: TLS upstream for requests that came over TLS (`AUTO_HTTP`,
    /// nginx's `proxy_pass $scheme://`).
    AutoHttp,
    /// HTTP/2 in clear text, with prior knowledge (h2c): gRPC.
    Grpc,
    /// HTTP/2 over TLS: gRPC.
    Grpcs,
}

impl BackendProtocol {
    /// Whether requests go over TLS, for a client connection that `client_tls` or not.
    pub fn tls(self, client_tls: bool) -> bool {
        match self {
            BackendProtocol::Http | BackendProtocol::Grpc => false,
            BackendProtocol::Https | BackendProtocol::Grpcs => true,
            BackendProtocol::AutoHttp => client_tls,
        }
    }

    /// Whether requests go over HTTP/2 (gRPC).
    pub fn http2(self) -> bool {
        matches!(self, BackendProtocol::Grpc | BackendProtocol::Grpcs)
    }
}

impl fmt::Display for BackendProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendProtocol::Http => "HTTP",
            BackendProtocol::Https => "HTTPS",
            BackendProtocol::AutoHttp => "AUTO_HTTP",
            BackendProtocol::Grpc => "GRPC",
            BackendProtocol::Grpcs => "GRPCS",
        })
    }
}

/// Why a `backend-protocol` value was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProtocol {
    /// FastCGI, which Ferry does not speak.
    #[error("FastCGI upstreams are not supported")]
    Fcgi,
    /// Not one of ingress-nginx's values.
    #[error("expected HTTP, HTTPS, GRPC, GRPCS, AUTO_HTTP or FCGI")]
    Unknown,
}

impl FromStr for BackendProtocol {
    type Err = InvalidProtocol;

    /// As ingress-nginx reads it: trimmed, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" => Ok(BackendProtocol::Http),
            "https" => Ok(BackendProtocol::Https),
            "auto_http" => Ok(BackendProtocol::AutoHttp),
            "grpc" => Ok(BackendProtocol::Grpc),
            "grpcs" => Ok(BackendProtocol::Grpcs),
            "fcgi" => Err(InvalidProtocol::Fcgi),
            _ => Err(InvalidProtocol::Unknown),
        }
    }
}

/// How a route's endpoints are spoken to: the protocol, and over TLS, how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UpstreamProtocol {
    /// `backend-protocol`.
    pub protocol: BackendProtocol,
    /// `proxy-ssl-*` (`None`: nginx's defaults, when the protocol is over TLS).
    pub tls: Option<std::sync::Arc<UpstreamTls>>,
}

/// A TLS protocol version the proxy may use with an endpoint (`proxy-ssl-protocols`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// How the proxy connects to a route's endpoints over TLS: nginx's `proxy_ssl_*` directives,
/// as ingress-nginx sets them. The default is nginx's: no certificate check, no SNI, TLS 1.2
/// and 1.3, no client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// Trusted CAs, PEM (`proxy-ssl-secret`'s `ca.crt`).
    pub ca: Option<String>,
    /// The client certificate chain presented to the endpoint, PEM (`tls.crt`).
    pub certificate: Option<String>,
    /// Its private key, PEM (`tls.key`).
    pub key: Option<String>,
    /// Check the endpoint's certificate against `ca` and `name` (`proxy-ssl-verify`).
    pub verify: bool,
    /// How many intermediate certificates may stand between the endpoint's and a trusted
    /// CA (`proxy-ssl-verify-depth`).
    pub verify_depth: u32,
    /// The name the certificate is checked against and, with `server_name`, sent as SNI
    /// (`proxy-ssl-name`; nginx's default is `$proxy_host`, which ingress-nginx makes
    /// `upstream_balancer`).
    pub name: String,
    /// Send `name` as SNI (`proxy-ssl-server-name`).
    pub server_name: bool,
    /// The versions allowed (`proxy-ssl-protocols`).
    pub versions: Vec<TlsVersion>,
    /// OpenSSL's cipher list for TLS 1.2 (`proxy-ssl-ciphers`).
    pub ciphers: String,
}

/// nginx's `$proxy_host` in ingress-nginx, the name checked when `proxy-ssl-name` is not set.
pub const DEFAULT_UPSTREAM_NAME: &str = "upstream_balancer";

impl Default for UpstreamTls {
    fn default() -> Self {
        Self {
            ca: None,
            certificate: None,
            key: None,
            verify: false,
            verify_depth: 1,
            name: DEFAULT_UPSTREAM_NAME.to_owned(),
            server_name: false,
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            ciphers: "DEFAULT".to_owned(),
        }
    }
}

impl UpstreamTls {
    /// One line for people (`explain`).
    pub fn describe(&self) -> String {
        let mut parts = vec![if self.verify {
            format!("certificate checked against its CA for `{}` (depth {})", self.name, self.verify_depth)
        } else {
            "certificate not checked".to_owned()
        }];
        if self.server_name {
            parts.push(format!("SNI `{}`", self.name));
        }
        if self.certificate.is_some() {
            parts.push("client certificate presented".to_owned());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_read_as_ingress_nginx_reads_them() {
        assert_eq!(" grpcs ".parse(), Ok(BackendProtocol::Grpcs));
        assert_eq!("Auto_Http".parse(), Ok(BackendProtocol::AutoHttp));
        assert_eq!("HTTPS".parse(), Ok(BackendProtocol::Https));
        assert_eq!("FCGI".parse::<BackendProtocol>(), Err(InvalidProtocol::Fcgi));
        assert_eq!("h2c".parse::<BackendProtocol>(), Err(InvalidProtocol::Unknown));
        assert!(BackendProtocol::AutoHttp.tls(true) && !BackendProtocol::AutoHttp.tls(false));
        assert!(BackendProtocol::Grpc.http2() && !BackendProtocol::Grpc.tls(true));
        assert!(BackendProtocol::Grpcs.http2() && BackendProtocol::Grpcs.tls(false));
    }
}
