//! nginx's variables over one request (`$host`, `$request_uri`, `$http_<name>`…), for the
//! annotation values that name them ([`ingress_core::Template`]).

use ingress_core::{Route, Var, Vars, escape_uri_component};

use super::client::Client;

/// One request, as its variables see it.
#[derive(Debug)]
pub(crate) struct RequestVars<'a> {
    /// The method.
    pub(crate) method: &'a str,
    /// The target as sent (`$request_uri`).
    pub(crate) target: &'a str,
    /// The normalized path (`$uri`).
    pub(crate) path: &'a str,
    /// `Host` (or `:authority`) as sent.
    pub(crate) host: &'a str,
    /// The client's header lines.
    pub(crate) headers: &'a [(&'a str, &'a [u8])],
    /// Who the client is.
    pub(crate) client: &'a Client<'a>,
    /// The connection is TLS (`$scheme`).
    pub(crate) tls: bool,
    /// The request id.
    pub(crate) request_id: &'a str,
    /// The route it matched.
    pub(crate) route: &'a Route<'a>,
}

impl RequestVars<'_> {
    /// The values of the header `name`, joined as nginx joins repeated ones (`; ` for
    /// cookies, `, ` for the others).
    pub(crate) fn header(&self, name: &str, out: &mut String) {
        let separator = if name.eq_ignore_ascii_case("cookie") { "; " } else { ", " };
        let mut first = true;
        for (n, v) in self.headers {
            if n.eq_ignore_ascii_case(name) {
                if !first {
                    out.push_str(separator);
                }
                out.push_str(&String::from_utf8_lossy(v));
                first = false;
            }
        }
    }

    fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

impl Vars for RequestVars<'_> {
    fn expand(&self, var: &Var, out: &mut String) {
        match var {
            Var::Host => {
                let host = if self.host.starts_with('[') {
                    self.host.split_inclusive(']').next().unwrap_or(self.host)
                } else {
                    self.host.split(':').next().unwrap_or(self.host)
                };
                out.push_str(&host.to_ascii_lowercase());
            }
            Var::HttpHost => out.push_str(self.host),
            Var::RequestUri => out.push_str(self.target),
            Var::EscapedRequestUri => escape_uri_component(self.target, out),
            Var::Uri => out.push_str(self.path),
            Var::Args => out.push_str(self.query().unwrap_or("")),
            Var::IsArgs => {
                if self.query().is_some() {
                    out.push('?');
                }
            }
            Var::Scheme => out.push_str(if self.tls { "https" } else { "http" }),
            Var::PassAccessScheme => out.push_str(self.client.scheme),
            Var::RemoteAddr => out.push_str(&self.client.ip_text),
            Var::RequestMethod => out.push_str(self.method),
            Var::ServerPort => out.push_str(self.client.port),
            Var::RequestId => out.push_str(self.request_id),
            Var::Namespace | Var::IngressName => {
                if let ingress_core::MatchedBy::Path { origin, .. }
                | ingress_core::MatchedBy::IngressDefault { origin } = self.route.matched_by
                {
                    out.push_str(if *var == Var::Namespace { &origin.namespace } else { &origin.name });
                }
            }
            Var::ServiceName => out.push_str(&self.route.backend.key().service),
            Var::ServicePort => out.push_str(&self.route.backend.key().port.to_string()),
            Var::Http(name) => self.header(name, out),
            Var::Cookie(name) => {
                let found = self
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
                    .find_map(|(_, v)| ingress_core::cookie_value(std::str::from_utf8(v).ok()?, name));
                out.push_str(found.unwrap_or(""));
            }
            Var::Arg(name) => {
                let found = self.query().and_then(|q| {
                    q.split('&').find_map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        k.eq_ignore_ascii_case(name).then_some(v)
                    })
                });
                out.push_str(found.unwrap_or(""));
            }
        }
    }
}
