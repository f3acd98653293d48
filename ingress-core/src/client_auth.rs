//! Client certificates (`auth-tls-*`): per host, as nginx's `ssl_verify_client` is per server.
//! The proxy asks for a certificate in the handshake of a host that has [`ClientAuth`], and
//! answers each request on that host by the result ([`ClientAuth::check`]).

use std::fmt;

/// Whether and how a client certificate is asked for (`auth-tls-verify-client`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum VerifyClient {
    /// A certificate from a trusted CA is required (the default).
    #[default]
    On,
    /// None is asked for.
    Off,
    /// One is asked for; without one the request passes, a bad one is refused.
    Optional,
    /// One is asked for, and not checked against the CA.
    OptionalNoCa,
}

impl fmt::Display for VerifyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerifyClient::On => "on",
            VerifyClient::Off => "off",
            VerifyClient::Optional => "optional",
            VerifyClient::OptionalNoCa => "optional_no_ca",
        })
    }
}

/// What a handshake said of the client's certificate (nginx's `$ssl_client_verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientVerdict {
    /// None was presented (`NONE`).
    None,
    /// It checked out (`SUCCESS`).
    Success,
    /// It did not (`FAILED:<reason>`).
    Failed(String),
    /// It did not only because no trusted CA vouches for it (self-signed, or of an unknown
    /// issuer: the errors nginx's `optional_no_ca` lets through); `FAILED:<reason>` too.
    Untrusted(String),
}

impl fmt::Display for ClientVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientVerdict::None => f.write_str("NONE"),
            ClientVerdict::Success => f.write_str("SUCCESS"),
            ClientVerdict::Failed(why) | ClientVerdict::Untrusted(why) => write!(f, "FAILED:{why}"),
        }
    }
}

/// What a request on a host with client authentication gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCheck {
    /// It goes on.
    Pass,
    /// nginx's 495/496 (a bad or missing certificate), answered `400`, or a redirect to the
    /// error page (`auth-tls-error-page`).
    Refuse {
        /// No certificate at all (496), rather than a bad one (495).
        missing: bool,
    },
    /// The subject does not match `auth-tls-match-cn`: `403`.
    Forbidden,
}

/// `auth-tls-match-cn`: a regular expression on the subject DN, compiled once.
#[derive(Debug, Clone)]
pub struct CnPattern {
    source: String,
    regex: regex::Regex,
}

impl CnPattern {
    /// The pattern `source`, if it is a regular expression.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(Self { source: source.to_owned(), regex: regex::Regex::new(source)? })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl PartialEq for CnPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CnPattern {}

impl std::hash::Hash for CnPattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

/// Client certificate authentication of a host (`auth-tls-secret` and its modifiers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientAuth {
    /// Trusted CAs, PEM (`ca.crt`).
    pub ca: String,
    /// `auth-tls-verify-client`.
    pub verify: VerifyClient,
    /// `auth-tls-verify-depth` (1).
    pub depth: u32,
    /// Where refused clients are sent (`auth-tls-error-page`).
    pub error_page: Option<String>,
    /// The certificate goes upstream in `ssl-client-cert` (`auth-tls-pass-certificate-to-upstream`).
    pub pass_certificate: bool,
    /// A regular expression the subject DN must match (`auth-tls-match-cn`).
    pub match_cn: Option<CnPattern>,
}

impl ClientAuth {
    /// What a request with this `verdict` on the certificate of `subject` (RFC 2253) gets, by
    /// nginx's rules: `on` needs `SUCCESS`, `optional` refuses only `FAILED`,
    /// `optional_no_ca` only a certificate that fails for another reason than its issuer
    /// (expired, say), `off` nothing; then `match_cn`.
    pub fn check(&self, verdict: &ClientVerdict, subject: &str) -> ClientCheck {
        let refused = match (self.verify, verdict) {
            (VerifyClient::On, ClientVerdict::None) => Some(true),
            (VerifyClient::On | VerifyClient::Optional, ClientVerdict::Untrusted(_))
            | (
                VerifyClient::On | VerifyClient::Optional | VerifyClient::OptionalNoCa,
                ClientVerdict::Failed(_),
            ) => Some(false),
            _ => None,
        };
        if let Some(missing) = refused {
            return ClientCheck::Refuse { missing };
        }
        match &self.match_cn {
            Some(pattern) if !pattern.regex.is_match(subject) => ClientCheck::Forbidden,
            _ => ClientCheck::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(verify: VerifyClient) -> ClientAuth {
        ClientAuth {
            ca: String::new(),
            verify,
            depth: 1,
            error_page: None,
            pass_certificate: false,
            match_cn: CnPattern::new("CN=alice").ok(),
        }
    }

    #[test]
    fn each_mode_refuses_what_nginx_refuses() {
        let failed = ClientVerdict::Failed("certificate has expired".into());
        let on = auth(VerifyClient::On);
        assert_eq!(on.check(&ClientVerdict::None, ""), ClientCheck::Refuse { missing: true });
        assert_eq!(on.check(&failed, "CN=alice"), ClientCheck::Refuse { missing: false });
        assert_eq!(on.check(&ClientVerdict::Success, "CN=alice,O=x"), ClientCheck::Pass);
        assert_eq!(on.check(&ClientVerdict::Success, "CN=bob"), ClientCheck::Forbidden);
        let optional = auth(VerifyClient::Optional);
        assert_eq!(optional.check(&failed, "CN=alice"), ClientCheck::Refuse { missing: false });
        assert_eq!(
            optional.check(&ClientVerdict::None, ""),
            ClientCheck::Forbidden,
            "match-cn still applies"
        );
        let untrusted = ClientVerdict::Untrusted("unable to get local issuer certificate".into());
        assert_eq!(optional.check(&untrusted, "CN=alice"), ClientCheck::Refuse { missing: false });
        let no_ca = auth(VerifyClient::OptionalNoCa);
        assert_eq!(no_ca.check(&untrusted, "CN=alice"), ClientCheck::Pass);
        assert_eq!(no_ca.check(&failed, "CN=alice"), ClientCheck::Refuse { missing: false }, "expired");
        assert_eq!(auth(VerifyClient::Off).check(&failed, "CN=alice"), ClientCheck::Pass);
        assert_eq!(ClientVerdict::Failed("x".into()).to_string(), "FAILED:x");
    }
}
