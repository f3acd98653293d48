//! CORS as ingress-nginx answers it (`enable-cors` and the `cors-*` annotations): which
//! origins are allowed, and the headers a matching request's response carries.

use std::fmt;

/// The CORS policy of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Which `Origin`s get the CORS headers.
    pub origins: CorsOrigins,
    /// `Access-Control-Allow-Methods`.
    pub allow_methods: String,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: String,
    /// `Access-Control-Allow-Credentials: true` is sent.
    pub allow_credentials: bool,
    /// `Access-Control-Expose-Headers`, if any.
    pub expose_headers: Option<String>,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: i64,
}

/// The origins a [`Cors`] policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Every request, with or without `Origin` (`*`): `Access-Control-Allow-Origin: *`.
    Any,
    /// Requests whose `Origin` matches one of these.
    List(Vec<OriginPattern>),
}

/// One allowed origin: `https://app.example.com`, `https://*.example.com:8443`, `null`; the
/// scheme and port are optional, a `*` stands for one DNS label. Compared case-insensitively
/// with the whole `Origin` value.
///
/// # Examples
///
/// ```
/// use ingress_core::OriginPattern;
///
/// let p: OriginPattern = "https://*.example.com".parse()?;
/// assert!(p.matches("https://app.example.com"));
/// assert!(!p.matches("https://a.b.example.com"));
/// assert!(!p.matches("https://evil.com/?https://app.example.com"));
/// # Ok::<(), ingress_core::InvalidOrigin>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    text: Box<str>,
    /// Lower-case, split at its `*`, if it has one.
    before: Box<str>,
    after: Option<Box<str>>,
}

/// Why a text is not an origin pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an origin such as `https://app.example.com`, `https://*.example.com:8443` or `null`")]
pub struct InvalidOrigin(pub String);

impl std::str::FromStr for OriginPattern {
    type Err = InvalidOrigin;

    /// ingress-nginx's `^([a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|\*|null)?$`, minus the bare
    /// `*` (that is [`CorsOrigins::Any`]), plus origins without a scheme (which its list
    /// validator lets through).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidOrigin(text.to_owned());
        if text == "null" {
            return Ok(Self { text: text.into(), before: text.into(), after: None });
        }
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_lowercase()) => {
                rest
            }
            Some(_) => return Err(bad()),
            None => text,
        };
        // An optional port: digits only.
        let host = match rest.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return Err(bad()),
            None => rest,
        };
        let label = host.strip_prefix("*.").unwrap_or(host);
        if label.is_empty() || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return Err(bad());
        }
        let lower = text.to_ascii_lowercase();
        let (before, after) = match lower.split_once('*') {
            Some((before, after)) => (before.into(), Some(after.into())),
            None => (lower.into(), None),
        };
        Ok(Self { text: text.into(), before, after })
    }
}

impl OriginPattern {
    /// Whether an `Origin` header value matches.
    pub fn matches(&self, origin: &str) -> bool {
        let origin = origin.as_bytes();
        let starts = origin.len() >= self.before.len()
            && origin[..self.before.len()].eq_ignore_ascii_case(self.before.as_bytes());
        match &self.after {
            None => starts && origin.len() == self.before.len(),
            Some(after) => {
                let rest = &origin[self.before.len().min(origin.len())..];
                starts
                    && rest.len() > after.len()
                    && rest[rest.len() - after.len()..].eq_ignore_ascii_case(after.as_bytes())
                    && rest[..rest.len() - after.len()]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
        }
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request with this `Origin` (`None`: the
    /// request gets no CORS headers).
    pub fn allow_origin<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        match &self.origins {
            CorsOrigins::Any => Some("*"),
            CorsOrigins::List(list) => origin.filter(|o| list.iter().any(|p| p.matches(o))),
        }
    }

    /// The CORS response headers for a request allowed as `allow_origin`, in ingress-nginx's
    /// order.
    pub fn headers<'a>(
        &'a self,
        allow_origin: &'a str,
    ) -> impl Iterator<Item = (&'static str, std::borrow::Cow<'a, str>)> {
        use std::borrow::Cow;
        [
            Some(("access-control-allow-origin", Cow::Borrowed(allow_origin))),
            self.allow_credentials.then_some(("access-control-allow-credentials", Cow::Borrowed("true"))),
            Some(("access-control-allow-methods", Cow::Borrowed(self.allow_methods.as_str()))),
            Some(("access-control-allow-headers", Cow::Borrowed(self.allow_headers.as_str()))),
            self.expose_headers.as_deref().map(|e| ("access-control-expose-headers", Cow::Borrowed(e))),
            Some(("access-control-max-age", Cow::Owned(self.max_age.to_string()))),
        ]
        .into_iter()
        .flatten()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> OriginPattern {
        s.parse().unwrap()
    }

    #[test]
    fn origins_match_whole_values_case_insensitively() {
        assert!(p("https://app.example.com").matches("HTTPS://App.Example.com"));
        assert!(!p("https://app.example.com").matches("https://app.example.com.evil.net"));
        assert!(
            !p("app.example.com").matches("https://evilapp.example.com"),
            "anchored, unlike ingress-nginx"
        );
        assert!(p("https://*.example.com:8443").matches("https://a-1.example.com:8443"));
        assert!(!p("https://*.example.com:8443").matches("https://.example.com:8443"));
        assert!(!p("https://*.example.com:8443").matches("https://a.example.com"));
        assert!(p("null").matches("null"));
        for bad in
            ["https://a b", "HTTPS://a.com", "https://a.com:x", "https://a.com/path", "", "://a.com", "*"]
        {
            assert!(bad.parse::<OriginPattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers_in_ingress_nginx_order() {
        let cors = Cors {
            origins: CorsOrigins::List(vec![p("https://app.test")]),
            allow_methods: "GET, PUT".into(),
            allow_headers: "X-A".into(),
            allow_credentials: true,
            expose_headers: Some("X-B".into()),
            max_age: 600,
        };
        assert_eq!(cors.allow_origin(Some("https://app.test")), Some("https://app.test"));
        assert_eq!(cors.allow_origin(Some("https://other.test")), None);
        assert_eq!(cors.allow_origin(None), None);
        let names: Vec<&str> = cors.headers("https://app.test").map(|(n, _)| n).collect();
        assert_eq!(names.len(), 6);
        let any = Cors { origins: CorsOrigins::Any, allow_credentials: false, expose_headers: None, ..cors };
        assert_eq!(any.allow_origin(None), Some("*"));
        assert_eq!(any.headers("*").count(), 4);
    }
}
