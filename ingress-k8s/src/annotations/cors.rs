//! The CORS family: `enable-cors` and `cors-allow-origin`, `-methods`, `-headers`,
//! `-credentials`, `-expose-headers`, `-max-age`, with ingress-nginx's defaults (every origin,
//! `GET, PUT, POST, DELETE, PATCH, OPTIONS`, its header list, credentials allowed, 1728000 s).
//!
//! One deliberate difference: ingress-nginx allows every origin when `cors-allow-origin` fails
//! its validation; Ferry rejects the annotation and sends CORS headers to no origin, rather
//! than open an API to every site because of a typo.

use std::collections::BTreeMap;

use ingress_core::{Cors, CorsOrigins, OriginPattern, RoutePolicy};

use super::Outcome;
use super::values::{go_bool, go_int, only};

const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
const DEFAULT_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
const DEFAULT_MAX_AGE: i64 = 1_728_000;

/// What each annotation of the family does, for the documentation.
pub(super) fn doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "enable-cors" => {
            "CORS headers on responses to allowed origins; preflights (`OPTIONS`) answered 204 by the proxy"
        }
        "cors-allow-origin" => {
            "`*` (default) or a list of origins, `*.` for one label; an invalid list allows no origin (ingress-nginx: every origin)"
        }
        "cors-allow-methods" => "`Access-Control-Allow-Methods`",
        "cors-allow-headers" => "`Access-Control-Allow-Headers`",
        "cors-allow-credentials" => "`Access-Control-Allow-Credentials: true` (default on)",
        "cors-expose-headers" => "`Access-Control-Expose-Headers`",
        "cors-max-age" => "`Access-Control-Max-Age` (default 1728000)",
        _ => return None,
    })
}

/// Reads the family's annotations present in `ours` into `policy`.
pub(super) fn read<'a>(
    ours: &BTreeMap<&'a str, &str>,
    policy: &mut RoutePolicy,
) -> BTreeMap<&'a str, Outcome> {
    let mut outcomes = BTreeMap::new();
    let Some((&enable_key, &enable)) = ours.get_key_value("enable-cors") else {
        for (&name, _) in ours.iter().filter(|(n, _)| n.starts_with("cors-")) {
            outcomes.insert(name, Ok("no effect without `enable-cors: \"true\"`".to_owned()));
        }
        return outcomes;
    };
    let enabled = go_bool(enable);
    outcomes.insert(enable_key, enabled.clone().map(|on| if on { "CORS on" } else { "CORS off" }.to_owned()));
    if enabled != Ok(true) {
        for (&name, _) in ours.iter().filter(|(n, _)| n.starts_with("cors-")) {
            outcomes.insert(name, Ok("no effect: CORS is not enabled".to_owned()));
        }
        return outcomes;
    }
    let mut cors = Cors {
        origins: CorsOrigins::Any,
        allow_methods: DEFAULT_METHODS.into(),
        allow_headers: DEFAULT_HEADERS.into(),
        allow_credentials: true,
        expose_headers: None,
        max_age: DEFAULT_MAX_AGE,
    };
    for (&name, &value) in ours.iter().filter(|(n, _)| n.starts_with("cors-")) {
        let outcome = match name {
            "cors-allow-origin" => origins(value).map(|(list, skipped)| {
                let what = match &list {
                    CorsOrigins::Any => "every origin".to_owned(),
                    CorsOrigins::List(l) => {
                        let names: Vec<String> = l.iter().map(ToString::to_string).collect();
                        format!("origins {}", names.join(", "))
                    }
                };
                cors.origins = list;
                if skipped.is_empty() {
                    what
                } else {
                    format!("{what} (skipped, as ingress-nginx: {})", skipped.join(", "))
                }
            }),
            "cors-allow-methods" => listed(value, |b| b.is_ascii_alphabetic()).map(|v| {
                cors.allow_methods = v.clone();
                format!("methods {v}")
            }),
            "cors-allow-headers" => listed(value, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                .map(|v| {
                    cors.allow_headers = v.clone();
                    format!("headers {v}")
                }),
            "cors-expose-headers" => {
                listed(value, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*').map(|v| {
                    cors.expose_headers = Some(v.clone());
                    format!("exposes {v}")
                })
            }
            "cors-allow-credentials" => go_bool(value).map(|on| {
                cors.allow_credentials = on;
                format!("credentials {}", if on { "allowed" } else { "not allowed" })
            }),
            "cors-max-age" => go_int(value).map(|n| {
                cors.max_age = n;
                format!("preflights cached {n}s")
            }),
            _ => continue,
        };
        // A rejected origin list allows no origin (see the module's note); other bad values
        // keep their defaults, as ingress-nginx keeps them.
        if name == "cors-allow-origin" && outcome.is_err() {
            cors.origins = CorsOrigins::List(Vec::new());
        }
        outcomes.insert(name, outcome);
    }
    policy.cors = Some(cors);
    outcomes
}

/// `cors-allow-origin`: `*`, or a comma-separated list; entries ingress-nginx's own check
/// would skip are skipped (and said), a value it would reject as a whole is rejected.
fn origins(value: &str) -> Result<(CorsOrigins, Vec<String>), String> {
    let expected =
        || "expected `*` or origins such as `https://app.example.com, https://*.example.com`".to_owned();
    if !only(value, b"-.:/*, ") {
        return Err(expected());
    }
    let mut list = Vec::new();
    let mut skipped = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry == "*" {
            return Ok((CorsOrigins::Any, Vec::new()));
        }
        match entry.parse::<OriginPattern>() {
            Ok(pattern) => list.push(pattern),
            Err(_) => skipped.push(entry.to_owned()),
        }
    }
    if list.is_empty() {
        return Err(expected());
    }
    Ok((CorsOrigins::List(list), skipped))
}

/// A comma-separated list of tokens made of `token` bytes (spaces around commas allowed), as
/// ingress-nginx's method and header regexes take them.
fn listed(value: &str, token: impl Fn(u8) -> bool) -> Result<String, String> {
    let ok = !value.trim().is_empty()
        && value.split(',').all(|t| {
            let t = t.trim();
            !t.is_empty() && t.bytes().all(&token)
        });
    if ok {
        Ok(value.trim().to_owned())
    } else {
        Err("expected a comma-separated list such as `GET, POST`".into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_all(pairs: &[(&'static str, &'static str)]) -> (RoutePolicy, BTreeMap<&'static str, Outcome>) {
        super::super::read_family(pairs, read)
    }

    #[test]
    fn defaults_as_ingress_nginx() {
        let (p, o) = read_all(&[("enable-cors", "true")]);
        assert!(o["enable-cors"].is_ok());
        let cors = p.cors.unwrap();
        assert_eq!(cors.origins, CorsOrigins::Any);
        assert_eq!(
            (cors.allow_methods.as_str(), cors.max_age, cors.allow_credentials),
            (DEFAULT_METHODS, DEFAULT_MAX_AGE, true)
        );
        let (p, o) = read_all(&[("cors-allow-origin", "https://a.test")]);
        assert!(p.cors.is_none());
        assert_eq!(o["cors-allow-origin"].as_deref(), Ok("no effect without `enable-cors: \"true\"`"));
    }

    #[test]
    fn values_are_read_and_checked() {
        let (p, o) = read_all(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://app.test, https://*.example.com:8443 , bad origin"),
            ("cors-allow-methods", "GET,POST"),
            ("cors-allow-headers", "X-A, X_B"),
            ("cors-expose-headers", "*, X-C"),
            ("cors-allow-credentials", "false"),
            ("cors-max-age", "60"),
        ]);
        assert!(o.values().all(Result::is_ok), "{o:?}");
        assert!(o["cors-allow-origin"].as_ref().unwrap().contains("skipped"));
        let cors = p.cors.unwrap();
        let CorsOrigins::List(list) = &cors.origins else { panic!("{:?}", cors.origins) };
        assert_eq!(list.len(), 2);
        assert_eq!((cors.allow_credentials, cors.max_age), (false, 60));
        assert_eq!(cors.expose_headers.as_deref(), Some("*, X-C"));
    }

    #[test]
    fn a_bad_origin_list_allows_no_origin() {
        let (p, o) = read_all(&[("enable-cors", "true"), ("cors-allow-origin", "https://a.test/$uri")]);
        assert!(o["cors-allow-origin"].is_err());
        assert_eq!(p.cors.unwrap().origins, CorsOrigins::List(Vec::new()), "not every origin");
        let (p, o) = read_all(&[("enable-cors", "true"), ("cors-allow-methods", "GET;DROP")]);
        assert!(o["cors-allow-methods"].is_err());
        assert_eq!(p.cors.unwrap().allow_methods, DEFAULT_METHODS, "the default stays");
    }
}
