//! Annotation values as ingress-nginx reads them: Go's `strconv` for booleans and integers,
//! nginx sizes, and the character classes of its validators.

/// A boolean as Go's `strconv.ParseBool` reads it (what ingress-nginx uses): `1`, `t`, `T`,
/// `TRUE`, `true`, `True`, and the same six for false. `yes`/`on` are not booleans there.
pub(crate) fn go_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("expected `true` or `false`".into()),
    }
}

/// An integer as Go's `strconv.Atoi` reads it: an optional sign and decimal digits, nothing
/// else (no spaces, no unit).
pub(crate) fn go_int(v: &str) -> Result<i64, String> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a whole number".into());
    }
    v.parse().map_err(|_| "the number is too large".into())
}

/// Whether `value` is not empty and made of ASCII letters, digits and `extra` bytes only: the
/// character classes ingress-nginx's annotation validators are built from (`BasicCharsRegex`,
/// `URLIsValidRegex`…), and what keeps a value from carrying anything but what it names.
pub(crate) fn only(value: &str, extra: &[u8]) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Whole seconds above zero: ingress-nginx's `proxy-*-timeout` values (it appends the `s`).
pub(crate) fn seconds(v: &str) -> Result<std::time::Duration, String> {
    match go_int(v) {
        Ok(n) if n > 0 => Ok(std::time::Duration::from_secs(n.unsigned_abs())),
        Ok(_) => Err("expected whole seconds above 0, such as `60`".into()),
        Err(_) => Err("expected whole seconds, such as `60` (no unit: ingress-nginx appends the `s`)".into()),
    }
}

/// An nginx size: digits and an optional `k`, `m` or `g` in either case (ingress-nginx's
/// `SizeRegex`). Its regex also lets a `b` through, which nginx itself refuses; so do we.
pub(crate) fn size(v: &str) -> Result<u64, String> {
    let at = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(at);
    let expected = || "expected a size such as `8m`, `512k` or `0`".to_owned();
    if digits.is_empty() {
        return Err(expected());
    }
    let n: u64 = digits.parse().map_err(|_| "the size is too large".to_owned())?;
    let multiplier: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(expected()),
    };
    n.checked_mul(multiplier).ok_or_else(|| "the size is too large".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(f), Ok(false), "{f}");
        }
        for bad in ["yes", "on", "tRUE", " true", "", "2"] {
            assert!(go_bool(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn go_integers() {
        assert_eq!(go_int("60"), Ok(60));
        assert_eq!(go_int("+7"), Ok(7));
        assert_eq!(go_int("-1"), Ok(-1));
        for bad in ["", "-", "60s", " 60", "1e3", "0x10", "99999999999999999999"] {
            assert!(go_int(bad).is_err(), "{bad:?}");
        }
        assert!(seconds("0").is_err() && seconds("-5").is_err() && seconds("5s").is_err());
        assert_eq!(seconds("600"), Ok(std::time::Duration::from_secs(600)));
    }

    #[test]
    fn character_classes() {
        assert!(only("a-b.c", b"-."));
        assert!(!only("", b"-"));
        assert!(!only("a b", b"-"));
        assert!(!only("a\r\nb", b"-"));
    }

    #[test]
    fn nginx_sizes() {
        assert_eq!(size("0"), Ok(0));
        assert_eq!(size("100"), Ok(100));
        assert_eq!(size("8k"), Ok(8 << 10));
        assert_eq!(size("8K"), Ok(8 << 10));
        assert_eq!(size("1m"), Ok(1 << 20));
        assert_eq!(size("2G"), Ok(2 << 30));
        for bad in ["", "m", "1mb", "1 m", "1.5m", "-1", "10b", "99999999999999999999g"] {
            assert!(size(bad).is_err(), "{bad:?}");
        }
    }
}
