//! Rewrites of upstream response header values: nginx's `proxy_redirect` (`Location`,
//! `Refresh`), `proxy_cookie_domain` and `proxy_cookie_path` (`Set-Cookie`), as ingress-nginx's
//! `proxy-redirect-from`/`-to`, `proxy-cookie-domain` and `proxy-cookie-path` set them.

/// A text replaced at the start of a value: `from` (compared as written, as nginx's
/// `ngx_rstrncmp`) becomes `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRewrite {
    /// The prefix looked for.
    pub from: String,
    /// Its replacement.
    pub to: String,
}

impl PrefixRewrite {
    fn apply(&self, value: &str) -> Option<String> {
        let rest = value.strip_prefix(self.from.as_str())?;
        Some(format!("{}{rest}", self.to))
    }
}

/// What a route rewrites in its upstream responses' headers.
///
/// # Examples
///
/// ```
/// use ingress_core::{PrefixRewrite, ResponseRewrites};
///
/// let rw = ResponseRewrites {
///     redirect: Some(PrefixRewrite { from: "http://backend:8080/".into(), to: "https://shop.example.com/".into() }),
///     cookie_domain: Some(PrefixRewrite { from: "backend.local".into(), to: "shop.example.com".into() }),
///     cookie_path: Some(PrefixRewrite { from: "/app/".into(), to: "/".into() }),
/// };
/// assert_eq!(rw.rewrite("Location", "http://backend:8080/cart").as_deref(), Some("https://shop.example.com/cart"));
/// assert_eq!(rw.rewrite("location", "/relative"), None);
/// assert_eq!(
///     rw.rewrite("set-cookie", "id=1; Domain=.Backend.local; Path=/app/x; HttpOnly").as_deref(),
///     Some("id=1; Domain=.shop.example.com; Path=/x; HttpOnly"),
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseRewrites {
    /// `Location` and `Refresh` (`proxy-redirect-from` → `proxy-redirect-to`).
    pub redirect: Option<PrefixRewrite>,
    /// The `Domain` attribute of `Set-Cookie`, compared whole and without case, a leading dot
    /// kept (`proxy-cookie-domain`).
    pub cookie_domain: Option<PrefixRewrite>,
    /// The `Path` attribute of `Set-Cookie`, by prefix (`proxy-cookie-path`).
    pub cookie_path: Option<PrefixRewrite>,
}

impl ResponseRewrites {
    /// The new value of a response header named `name` (any case), or `None` to keep it.
    pub fn rewrite(&self, name: &str, value: &str) -> Option<String> {
        if name.eq_ignore_ascii_case("location") {
            self.redirect.as_ref()?.apply(value)
        } else if name.eq_ignore_ascii_case("refresh") {
            // `5; url=http://…`: the URL after `url=`, as nginx rewrites it.
            let at = find_ignore_case(value, "url=")? + 4;
            let url = self.redirect.as_ref()?.apply(&value[at..])?;
            Some(format!("{}{url}", &value[..at]))
        } else if name.eq_ignore_ascii_case("set-cookie") {
            self.set_cookie(value)
        } else {
            None
        }
    }

    /// Whether [`ResponseRewrites::rewrite`] may change a header named `name`.
    pub fn touches(&self, name: &str) -> bool {
        let redirect = self.redirect.is_some()
            && (name.eq_ignore_ascii_case("location") || name.eq_ignore_ascii_case("refresh"));
        let cookie = (self.cookie_domain.is_some() || self.cookie_path.is_some())
            && name.eq_ignore_ascii_case("set-cookie");
        redirect || cookie
    }

    fn set_cookie(&self, value: &str) -> Option<String> {
        let mut changed = false;
        let parts: Vec<String> = value
            .split(';')
            .enumerate()
            .map(|(i, part)| {
                let rewritten = (i > 0).then(|| self.attribute(part)).flatten();
                changed |= rewritten.is_some();
                rewritten.unwrap_or_else(|| part.to_owned())
            })
            .collect();
        changed.then(|| parts.join(";"))
    }

    /// One `; name=value` attribute of a cookie (with its leading spaces), rewritten.
    fn attribute(&self, part: &str) -> Option<String> {
        let trimmed = part.trim_start();
        let lead = &part[..part.len() - trimmed.len()];
        let (name, value) = trimmed.split_once('=')?;
        if name.eq_ignore_ascii_case("domain") {
            let rw = self.cookie_domain.as_ref()?;
            let (dot, bare) = match value.strip_prefix('.') {
                Some(bare) => (".", bare),
                None => ("", value),
            };
            let from = rw.from.strip_prefix('.').unwrap_or(&rw.from);
            bare.eq_ignore_ascii_case(from).then(|| format!("{lead}{name}={dot}{}", rw.to))
        } else if name.eq_ignore_ascii_case("path") {
            let path = self.cookie_path.as_ref()?.apply(value)?;
            Some(format!("{lead}{name}={path}"))
        } else {
            None
        }
    }
}

fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes().windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(from: &str, to: &str) -> Option<PrefixRewrite> {
        Some(PrefixRewrite { from: from.into(), to: to.into() })
    }

    #[test]
    fn redirect_rewrites_location_and_refresh_by_prefix_as_written() {
        let r = ResponseRewrites {
            redirect: rw("http://internal/", "https://public/app/"),
            ..Default::default()
        };
        assert_eq!(r.rewrite("LOCATION", "http://internal/a?b").as_deref(), Some("https://public/app/a?b"));
        assert_eq!(r.rewrite("location", "HTTP://internal/a"), None, "compared as written");
        assert_eq!(
            r.rewrite("refresh", "5; URL=http://internal/x").as_deref(),
            Some("5; URL=https://public/app/x")
        );
        assert_eq!(r.rewrite("refresh", "5"), None);
        assert_eq!(r.rewrite("content-location", "http://internal/"), None);
        assert!(r.touches("Location") && !r.touches("set-cookie"));
    }

    #[test]
    fn cookies_keep_their_other_attributes() {
        let r = ResponseRewrites {
            cookie_domain: rw("localhost", "example.org"),
            cookie_path: rw("/two/", "/"),
            ..Default::default()
        };
        assert_eq!(
            r.rewrite("Set-Cookie", "a=b; path=/two/some/uri/; domain=LOCALHOST; Secure").as_deref(),
            Some("a=b; path=/some/uri/; domain=example.org; Secure")
        );
        assert_eq!(
            r.rewrite("set-cookie", "a=b; Domain=.localhost").as_deref(),
            Some("a=b; Domain=.example.org")
        );
        assert_eq!(
            r.rewrite("set-cookie", "a=b; Domain=sub.localhost; Path=/one"),
            None,
            "whole domains only"
        );
        assert_eq!(r.rewrite("set-cookie", "domain=localhost"), None, "the first pair is the cookie itself");
        assert!(r.touches("set-cookie") && !r.touches("location"));
    }
}
