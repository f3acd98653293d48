//! The path a request is routed on: its target normalized the way nginx normalizes `$uri`
//! before it matches locations (`ngx_http_parse_complex_uri` with `merge_slashes on`).
//!
//! Routing on the raw target would let `/%61dmin`, `//admin` or `/x/../admin` miss an `/admin`
//! rule and fall to a catch-all one, while the backend behind it reads `/admin`: a way around
//! whatever policy the `/admin` rule carries. nginx (and so ingress-nginx) routes all of them to
//! `/admin`; so does this.

use std::borrow::Cow;

/// Why a request target has no path to route on (nginx answers these `400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTarget {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding")]
    BadEscape,
    /// `%00`.
    #[error("encoded NUL byte")]
    Nul,
    /// A `..` segment above the root.
    #[error("`..` above the root")]
    AboveRoot,
    /// The target does not start with `/`.
    #[error("path does not start with `/`")]
    NotAbsolute,
}

/// The path of an origin-form request target (`/path?query#fragment`) as it is routed:
/// percent-escapes decoded, runs of `/` merged, `.` and `..` segments resolved, query and
/// fragment left out. Borrows the target when nothing needs to change (the usual case).
///
/// Decoded `%`, `#` and `?` stay literal characters; a decoded `/` or `.` counts as one (nginx
/// does the same). Bytes that do not form UTF-8 after decoding are replaced by U+FFFD, which no
/// rule's path contains.
///
/// # Examples
///
/// ```
/// use ingress_core::{InvalidTarget, normalize_path};
///
/// assert_eq!(normalize_path("/shop/cart?id=1").unwrap(), "/shop/cart");
/// assert_eq!(normalize_path("/%61dmin//users/./x/../y").unwrap(), "/admin/users/y");
/// assert_eq!(normalize_path("/a%2fb").unwrap(), "/a/b");
/// assert_eq!(normalize_path("/../etc"), Err(InvalidTarget::AboveRoot));
/// assert_eq!(normalize_path("/%zz"), Err(InvalidTarget::BadEscape));
/// ```
pub fn normalize_path(target: &str) -> Result<Cow<'_, str>, InvalidTarget> {
    if !target.starts_with('/') {
        return Err(InvalidTarget::NotAbsolute);
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    if is_plain(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = Vec::with_capacity(path.len());
    let bytes = target.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let (b, literal) = match bytes[i] {
            b'?' | b'#' => break,
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|&c| (c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(InvalidTarget::BadEscape);
                };
                i += 3;
                // Both digits are below 16, so the byte fits.
                let decoded = u8::try_from(hi * 16 + lo).unwrap_or(0);
                if decoded == 0 {
                    return Err(InvalidTarget::Nul);
                }
                (decoded, matches!(decoded, b'%' | b'#' | b'?'))
            }
            other => {
                i += 1;
                (other, false)
            }
        };
        push(&mut out, b, literal)?;
    }
    finish(&mut out)?;
    Ok(Cow::Owned(match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

/// Whether a path needs no normalizing: no escapes, and no empty, `.` or `..` segments.
fn is_plain(path: &[u8]) -> bool {
    !path.contains(&b'%')
        && path.windows(2).all(|w| w != b"//")
        && path.split(|&b| b == b'/').skip(1).all(|seg| seg != b"." && seg != b"..")
}

/// Appends one byte of the path, resolving what the segment before it ended with: a `/` after
/// `/` is merged; a `/` after a `.` or `..` segment removes that segment (and the one before
/// it).
fn push(out: &mut Vec<u8>, b: u8, literal: bool) -> Result<(), InvalidTarget> {
    if b == b'/' && !literal {
        resolve_dots(out)?;
        if out.last() == Some(&b'/') {
            return Ok(());
        }
    }
    out.push(b);
    Ok(())
}

/// At the end of the path: a trailing `.` or `..` segment resolves like one followed by `/`.
fn finish(out: &mut Vec<u8>) -> Result<(), InvalidTarget> {
    resolve_dots(out)?;
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(())
}

/// If `out` ends with a `/.` or `/..` segment, removes it (and for `..` the segment before),
/// leaving `out` ending in `/`.
fn resolve_dots(out: &mut Vec<u8>) -> Result<(), InvalidTarget> {
    if out.ends_with(b"/.") {
        out.pop();
    } else if out.ends_with(b"/..") {
        out.truncate(out.len() - 3);
        if out.is_empty() {
            return Err(InvalidTarget::AboveRoot);
        }
        // Back to just after the slash that starts the previous segment.
        let start = out.iter().rposition(|&b| b == b'/').map_or(0, |at| at + 1);
        out.truncate(start);
        if out.is_empty() {
            return Err(InvalidTarget::AboveRoot);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_borrowed() {
        for plain in ["/", "/a", "/a/b.c/", "/a..b/.x/"] {
            assert!(matches!(normalize_path(plain).unwrap(), Cow::Borrowed(_)), "{plain}");
        }
        assert!(matches!(normalize_path("/a?x=%zz#../..").unwrap(), Cow::Borrowed("/a")));
    }

    #[test]
    fn like_nginx_uri() {
        for (raw, want) in [
            ("//admin", "/admin"),
            ("/admin//x///", "/admin/x/"),
            ("/./admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/x/..", "/"),
            ("/x/.", "/x/"),
            ("/a/b/../../c", "/c"),
            ("/x/%2e%2e/y", "/y"),
            ("/%61dmin", "/admin"),
            ("/a%2F%2Fb", "/a/b"),
            ("/a%2fb%2f..%2fc", "/a/c"),
            ("/a%3fb?x", "/a?b"),
            ("/a%23b#frag", "/a#b"),
            ("/a%25b", "/a%b"),
            ("/a%2b+", "/a++"),
            ("/caf%C3%A9", "/café"),
            ("/bad%FF", "/bad\u{fffd}"),
            ("/admin#/../x", "/admin"),
            ("/a/b/..%2f..%2fc", "/c"),
        ] {
            assert_eq!(normalize_path(raw).unwrap(), want, "{raw}");
        }
        // ".." needs a segment to remove: `/x/..` is `/`, `/..` goes above it.
        for (raw, want) in [
            ("/..", InvalidTarget::AboveRoot),
            ("/../a", InvalidTarget::AboveRoot),
            ("/a/../..", InvalidTarget::AboveRoot),
            ("/%2e%2e", InvalidTarget::AboveRoot),
            ("/a/..%2f..%2fb", InvalidTarget::AboveRoot),
            ("/%", InvalidTarget::BadEscape),
            ("/%4", InvalidTarget::BadEscape),
            ("/%g0", InvalidTarget::BadEscape),
            ("/a%00b", InvalidTarget::Nul),
            ("admin", InvalidTarget::NotAbsolute),
            ("*", InvalidTarget::NotAbsolute),
        ] {
            assert_eq!(normalize_path(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing_more() {
        for raw in ["/a/./b//c/../d", "/%2e/x", "/x/y/z/../../..", "/a%2fb"] {
            let once = normalize_path(raw).unwrap().into_owned();
            assert_eq!(normalize_path(&once).unwrap(), once, "{raw}");
        }
    }
}
