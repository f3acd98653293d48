//! Request targets and hosts ([`super`]): what a request line or a `Host` line may name,
//! checked so that the proxy and the server behind it cannot read them two ways.

/// The origin-form part of a target and, for an absolute-form one, its authority.
pub(crate) fn split_target(target: &str) -> Result<(&str, Option<&str>), &'static str> {
    if target.starts_with('/') {
        return Ok((target, None));
    }
    let scheme_end = target.find("://").ok_or("request target is not origin-form or absolute-form")?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("absolute-form target with a scheme other than http(s)");
    }
    let rest = &target[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if !valid_host(authority) {
        return Err("invalid host in the request target");
    }
    match path.as_bytes().first() {
        None => Ok(("/", Some(authority))),
        Some(b'/') => Ok((path, Some(authority))),
        Some(_) => Err("absolute-form target without a path"),
    }
}

/// Whether `host` is a host nginx takes, and whose reading no one can dispute: a name or an
/// address, an optional numeric port; no whitespace or control bytes, no path, no userinfo,
/// no empty label run (`..`).
pub(crate) fn valid_host(host: &str) -> bool {
    let bytes = host.as_bytes();
    let (name, port) = if bytes.first() == Some(&b'[') {
        let Some(close) = host.find(']') else { return false };
        let literal = &host[1..close];
        if literal.is_empty() || !literal.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return false;
        }
        match &host[close + 1..] {
            "" => ("x", None),
            rest => match rest.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && !name.contains("..")
        && name.bytes().all(|b| b > 0x20 && b < 0x7f && !b"/\\@?#[]".contains(&b));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_origin_or_http_absolute_form() {
        assert_eq!(split_target("/a?b"), Ok(("/a?b", None)));
        assert_eq!(split_target("http://h.example:81"), Ok(("/", Some("h.example:81"))));
        assert_eq!(split_target("HTTPS://h/p?q"), Ok(("/p?q", Some("h"))));
        for bad in ["*", "h:443", "ftp://h/", "http://u@h/", "http://h?x", "http:///p", "admin"] {
            assert!(split_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_have_one_reading() {
        for good in [
            "a",
            "a.example.com",
            "A.Example.COM.",
            "a:8080",
            "[::1]",
            "[::1]:443",
            "10.0.0.1:80",
            "xn--bcher-kva.example",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "",
            ":80",
            "a b",
            "a\tb",
            "a/b",
            "a\\b",
            "u@a",
            "a?b",
            "a#b",
            "a..b",
            "a:",
            "a:8x",
            "a:123456",
            "[::1",
            "[zz]",
            "[]",
            "[::1]x",
            "caf\u{e9}.example",
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }
}
