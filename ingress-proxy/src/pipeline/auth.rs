//! Basic authentication (`auth-type: basic`): the `Authorization` header checked against the
//! Ingress's htpasswd users, as nginx's `auth_basic` checks it.
//!
//! Hashes as nginx reads them: `$apr1$` (Apache MD5), `{SHA}`, `{SSHA}` and `{PLAIN}` (nginx's
//! own), then what its `crypt()` knows: bcrypt (`$2a$`, `$2b$`, `$2y$`), `$1$`, `$5$`, `$6$`
//! and DES. Hashes are compared in constant time. A password is hashed once per distinct
//! credentials: a verified one is remembered by a SHA-256 of the user, password and stored
//! hash (never the password itself), so bcrypt's cost is paid once, not on every request.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use ingress_core::BasicAuth;
use openssl::hash::{Hasher, MessageDigest};

/// Credentials remembered as verified; past it, the memory starts afresh.
const MAX_VERIFIED: usize = 10_000;

/// The credentials verified so far (SHA-256 of user, password and hash).
#[derive(Debug, Default)]
pub(crate) struct Verified {
    seen: Mutex<HashSet<[u8; 32]>>,
}

impl Verified {
    /// Whether `authorization` (the request's header value) names a user of `auth` with its
    /// password.
    pub(crate) fn admits(&self, auth: &BasicAuth, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else { return false };
        let Some(hash) = auth.users.get(user.as_str()) else { return false };
        let key = {
            let mut h = openssl::sha::Sha256::new();
            for part in [user.as_bytes(), b"\0", &password, b"\0", hash.as_bytes()] {
                h.update(part);
            }
            h.finish()
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&key) {
            return true;
        }
        drop(seen);
        if !verify(&password, hash) {
            return false;
        }
        seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_VERIFIED {
            seen.clear();
        }
        seen.insert(key);
        true
    }
}

/// The user a `Basic` `Authorization` value names (nginx's `$remote_user`), checked or not.
pub(crate) fn basic_user(value: &str) -> Option<String> {
    credentials(value).map(|(user, _)| user)
}

/// The user and password of a `Basic` `Authorization` value.
fn credentials(value: &str) -> Option<(String, Vec<u8>)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = openssl::base64::decode_block(token.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Whether `password` matches the htpasswd `hash`.
pub(crate) fn verify(password: &[u8], hash: &str) -> bool {
    let computed = if let Some(rest) = hash.strip_prefix("$apr1$") {
        md5_crypt(password, rest, "$apr1$")
    } else if let Some(rest) = hash.strip_prefix("$1$") {
        md5_crypt(password, rest, "$1$")
    } else if let Some(digest) = hash.strip_prefix("{SHA}") {
        return same(&openssl::base64::encode_block(&openssl::sha::sha1(password)), digest);
    } else if let Some(encoded) = hash.strip_prefix("{SSHA}") {
        return ssha(password, encoded);
    } else if let Some(plain) = hash.strip_prefix("{PLAIN}") {
        return same_bytes(password, plain.as_bytes());
    } else {
        // bcrypt, $5$, $6$, DES: crypt(3)'s formats.
        let Ok(password) = std::str::from_utf8(password) else { return false };
        return pwhash::unix::verify(password, hash);
    };
    computed.is_some_and(|c| same(&c, hash))
}

fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// Constant-time equality (the lengths are not secret: they come from the hash format).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// `{SSHA}`: base64 of SHA-1(password + salt) followed by the salt.
fn ssha(password: &[u8], encoded: &str) -> bool {
    let Ok(raw) = openssl::base64::decode_block(encoded) else { return false };
    if raw.len() < 20 {
        return false;
    }
    let (digest, salt) = raw.split_at(20);
    let mut h = openssl::sha::Sha1::new();
    h.update(password);
    h.update(salt);
    same_bytes(&h.finish(), digest)
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt (Poul-Henning Kamp's, `$1$`; Apache's `$apr1$` differs only in the magic): the
/// whole hash for `password` and the salt at the start of `rest` (up to 8 characters, before
/// a `$`). `None` if OpenSSL's MD5 is unavailable.
fn md5_crypt(password: &[u8], rest: &str, magic: &str) -> Option<String> {
    let salt = rest.split('$').next().unwrap_or("");
    let salt = &salt.as_bytes()[..salt.len().min(8)];
    let md5 = |parts: &[&[u8]]| -> Option<Vec<u8>> {
        let mut h = Hasher::new(MessageDigest::md5()).ok()?;
        for p in parts {
            h.update(p).ok()?;
        }
        Some(h.finish().ok()?.to_vec())
    };
    let alt = md5(&[password, salt, password])?;
    let mut ctx = Hasher::new(MessageDigest::md5()).ok()?;
    ctx.update(password).ok()?;
    ctx.update(magic.as_bytes()).ok()?;
    ctx.update(salt).ok()?;
    let mut left = password.len();
    while left > 0 {
        ctx.update(&alt[..left.min(16)]).ok()?;
        left = left.saturating_sub(16);
    }
    let mut i = password.len();
    while i != 0 {
        ctx.update(if i & 1 == 1 { &[0u8][..] } else { &password[..1] }).ok()?;
        i >>= 1;
    }
    let mut fin = ctx.finish().ok()?.to_vec();
    for round in 0..1000 {
        let first: &[u8] = if round & 1 == 1 { password } else { &fin };
        let last: &[u8] = if round & 1 == 1 { &fin } else { password };
        let salt_part: &[u8] = if round % 3 != 0 { salt } else { &[] };
        let pw_part: &[u8] = if round % 7 != 0 { password } else { &[] };
        fin = md5(&[first, salt_part, pw_part, last])?;
    }
    let mut out = format!("{magic}{}$", String::from_utf8_lossy(salt));
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    let b = |i: usize| u32::from(fin[i]);
    for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put((b(x) << 16) | (b(y) << 8) | b(z), 4);
    }
    put(b(11), 2);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_htpasswd_format_nginx_reads() {
        for (hash, what) in [
            ("$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00", "apr1"),
            ("$apr1$RandSalt$PgCXHRrkpSt4cbyC2C6bm/", "apr1, 8-character salt"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("{PLAIN}password", "plain"),
            ("$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe", "bcrypt"),
            ("xOAFZqRz5RduI", "DES crypt"),
        ] {
            assert!(verify(b"password", hash), "{what}");
            assert!(!verify(b"passwore", hash), "{what}: a wrong password");
        }
        let ssha = {
            let mut h = openssl::sha::Sha1::new();
            h.update(b"password");
            h.update(b"salt");
            let mut raw = h.finish().to_vec();
            raw.extend_from_slice(b"salt");
            format!("{{SSHA}}{}", openssl::base64::encode_block(&raw))
        };
        assert!(verify(b"password", &ssha) && !verify(b"other", &ssha));
        assert_eq!(md5_crypt(b"password", "saltsalt", "$1$").unwrap(), "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/");
        for junk in ["", "$apr1$", "{SSHA}!!", "{SSHA}c2hvcnQ=", "$2y$99$x", "*"] {
            assert!(!verify(b"password", junk), "{junk:?}");
        }
    }

    #[test]
    fn the_authorization_header_names_a_user_and_its_password() {
        let auth = BasicAuth {
            realm: "r".into(),
            users: [("alice".to_owned(), "{PLAIN}s3cret".to_owned())].into_iter().collect(),
        };
        let v = Verified::default();
        let header = |creds: &str| format!("Basic {}", openssl::base64::encode_block(creds.as_bytes()));
        assert!(v.admits(&auth, Some(&header("alice:s3cret"))));
        assert!(v.admits(&auth, Some(&header("alice:s3cret"))), "remembered");
        assert!(v.admits(&auth, Some(&format!("basic  {}", openssl::base64::encode_block(b"alice:s3cret")))));
        for bad in [
            header("alice:wrong"),
            header("bob:s3cret"),
            header("alice"),
            "Bearer x".into(),
            "Basic !!".into(),
        ] {
            assert!(!v.admits(&auth, Some(&bad)), "{bad}");
        }
        assert!(!v.admits(&auth, None));
    }
}
