//! nginx variables in annotation values: `auth-url: https://$host/oauth2/auth`,
//! `auth-cache-key: $remote_user$http_authorization`, `upstream-hash-by: $request_uri`.
//!
//! A [`Template`] is parsed once, when the Ingress is read, into text and the variables Ferry
//! knows; a value naming another variable is refused then (what it would expand to is unknown,
//! so the annotation cannot be applied). The proxy expands it per request through [`Vars`].

use std::fmt;

/// An nginx variable Ferry can expand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Var {
    /// `$host`: the request's host name, lower-case, without the port.
    Host,
    /// `$http_host`, `$best_http_host`: the `Host` header as sent.
    HttpHost,
    /// `$request_uri`: the request target as sent (path and query).
    RequestUri,
    /// `$escaped_request_uri`: `$request_uri` escaped as a URI component (ingress-nginx's
    /// `set_escape_uri`).
    EscapedRequestUri,
    /// `$uri`: the normalized path, without the query.
    Uri,
    /// `$args`, `$query_string`: the query, without `?`.
    Args,
    /// `$is_args`: `?` when there is a query.
    IsArgs,
    /// `$scheme`: the scheme of the client's connection.
    Scheme,
    /// `$pass_access_scheme`: the scheme the client used, as forwarded.
    PassAccessScheme,
    /// `$remote_addr`: the client's address (behind trusted proxies, the forwarded one).
    RemoteAddr,
    /// `$request_method`.
    RequestMethod,
    /// `$server_port`, `$pass_server_port`: the port the client connected to.
    ServerPort,
    /// `$request_id`, `$req_id`: the request's id.
    RequestId,
    /// `$namespace`: the Ingress's namespace.
    Namespace,
    /// `$ingress_name`: the Ingress's name.
    IngressName,
    /// `$service_name`: the backend Service's name.
    ServiceName,
    /// `$service_port`: the backend Service's port.
    ServicePort,
    /// `$http_<name>`: a request header (`_` for `-`, any case).
    Http(String),
    /// `$cookie_<name>`: a request cookie.
    Cookie(String),
    /// `$arg_<name>`: a query argument.
    Arg(String),
}

impl Var {
    /// The variable named `name` (without `$`), if Ferry knows it.
    fn named(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "host" => Self::Host,
            "http_host" | "best_http_host" => Self::HttpHost,
            "request_uri" => Self::RequestUri,
            "escaped_request_uri" => Self::EscapedRequestUri,
            "uri" | "document_uri" => Self::Uri,
            "args" | "query_string" => Self::Args,
            "is_args" => Self::IsArgs,
            "scheme" => Self::Scheme,
            "pass_access_scheme" => Self::PassAccessScheme,
            "remote_addr" => Self::RemoteAddr,
            "request_method" => Self::RequestMethod,
            "server_port" | "pass_server_port" | "pass_port" => Self::ServerPort,
            "request_id" | "req_id" => Self::RequestId,
            "namespace" => Self::Namespace,
            "ingress_name" => Self::IngressName,
            "service_name" => Self::ServiceName,
            "service_port" => Self::ServicePort,
            _ => {
                let (kind, rest) = lower.split_once('_')?;
                if rest.is_empty() {
                    return None;
                }
                match kind {
                    "http" => Self::Http(rest.replace('_', "-")),
                    // Cookie and argument names keep their case, as nginx matches them.
                    "cookie" => Self::Cookie(name[7..].to_owned()),
                    "arg" => Self::Arg(name[4..].to_owned()),
                    _ => return None,
                }
            }
        })
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = match self {
            Self::Host => "host",
            Self::HttpHost => "http_host",
            Self::RequestUri => "request_uri",
            Self::EscapedRequestUri => "escaped_request_uri",
            Self::Uri => "uri",
            Self::Args => "args",
            Self::IsArgs => "is_args",
            Self::Scheme => "scheme",
            Self::PassAccessScheme => "pass_access_scheme",
            Self::RemoteAddr => "remote_addr",
            Self::RequestMethod => "request_method",
            Self::ServerPort => "server_port",
            Self::RequestId => "request_id",
            Self::Namespace => "namespace",
            Self::IngressName => "ingress_name",
            Self::ServiceName => "service_name",
            Self::ServicePort => "service_port",
            Self::Http(name) => return write!(f, "$http_{}", name.replace('-', "_")),
            Self::Cookie(name) => return write!(f, "$cookie_{name}"),
            Self::Arg(name) => return write!(f, "$arg_{name}"),
        };
        write!(f, "${plain}")
    }
}

/// What a request's variables expand to; the proxy implements it over one request.
pub trait Vars {
    /// Appends the value of `var` to `out` (nothing when it has none, as nginx expands an
    /// unset variable to the empty string).
    fn expand(&self, var: &Var, out: &mut String);
}

/// A value with nginx variables in it, parsed.
///
/// # Examples
///
/// ```
/// use ingress_core::{Template, Var, Vars};
///
/// struct Request;
/// impl Vars for Request {
///     fn expand(&self, var: &Var, out: &mut String) {
///         match var {
///             Var::Host => out.push_str("app.example.com"),
///             Var::EscapedRequestUri => out.push_str("%2Fa%3Fb"),
///             _ => {}
///         }
///     }
/// }
///
/// let t: Template = "https://$host/start?rd=${escaped_request_uri}".parse()?;
/// assert_eq!(t.render(&Request), "https://app.example.com/start?rd=%2Fa%3Fb");
/// assert!("https://$hots/".parse::<Template>().is_err(), "an unknown variable is refused");
/// # Ok::<(), ingress_core::UnknownVariable>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    raw: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Text(String),
    Var(Var),
}

/// A value names a variable Ferry cannot expand (or a malformed `${…}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown nginx variable `${name}`")]
pub struct UnknownVariable {
    /// The name as written.
    pub name: String,
}

impl std::str::FromStr for Template {
    type Err = UnknownVariable;

    fn from_str(raw: &str) -> Result<Self, UnknownVariable> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = raw;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, next) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}').ok_or_else(|| UnknownVariable { name: after.to_owned() })?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end =
                    after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            let var = Var::named(name).ok_or_else(|| UnknownVariable { name: name.to_owned() })?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Var(var));
            rest = next;
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self { raw: raw.to_owned(), parts })
    }
}

impl Template {
    /// The value as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the value names no variable.
    pub fn is_literal(&self) -> bool {
        !self.parts.iter().any(|p| matches!(p, Part::Var(_)))
    }

    /// The variables it names, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    /// The value with each variable expanded by `vars`.
    pub fn render(&self, vars: &dyn Vars) -> String {
        let mut out = String::with_capacity(self.raw.len() + 32);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => vars.expand(v, &mut out),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Appends `value` to `out` escaped as ingress-nginx's `set_escape_uri` escapes it: every byte
/// but ASCII letters, digits and `-._~` as `%XX`.
pub fn escape_uri_component(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Fixed;
    impl Vars for Fixed {
        fn expand(&self, var: &Var, out: &mut String) {
            match var {
                Var::Http(name) => out.push_str(&format!("<{name}>")),
                Var::Cookie(name) => out.push_str(&format!("[{name}]")),
                other => out.push_str(&format!("{{{other}}}")),
            }
        }
    }

    #[test]
    fn variables_are_parsed_as_nginx_reads_them() {
        let t: Template = "$remote_addr$http_X_Auth_Token-${request_uri}x$cookie_Session/".parse().unwrap();
        assert_eq!(t.render(&Fixed), "{$remote_addr}<x-auth-token>-{$request_uri}x[Session]/");
        assert!(!t.is_literal());
        assert_eq!(t.vars().count(), 4);
        assert!("plain text".parse::<Template>().unwrap().is_literal());
        assert_eq!("a$".parse::<Template>().unwrap_err().name, "", "a lone `$` names nothing");
        for bad in ["$unknown", "${host", "$http_", "$1", "$upstream_addr"] {
            assert!(bad.parse::<Template>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hostile_values_are_refused_or_kept_literal_never_a_panic() {
        for value in ["${", "$", "${}", "$$$$", "${cookie_é}", "${http_\u{0}}", "é$hostéé", "${host}}{"] {
            if let Ok(t) = value.parse::<Template>() {
                let _ = t.render(&Fixed);
            }
        }
        let long = "$host".repeat(10_000);
        assert_eq!(long.parse::<Template>().unwrap().vars().count(), 10_000);
        assert_eq!("${cookie_é}".parse::<Template>().unwrap().vars().next(), Some(&Var::Cookie("é".into())));
    }

    #[test]
    fn uri_components_are_escaped() {
        let mut out = String::new();
        escape_uri_component("/a b?c=d&e~f", &mut out);
        assert_eq!(out, "%2Fa%20b%3Fc%3Dd%26e~f");
    }
}
