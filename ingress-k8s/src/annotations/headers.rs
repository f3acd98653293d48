//! `custom-headers`: response headers from a ConfigMap, as ingress-nginx's `customheaders`
//! parser reads them.
//!
//! The value names a ConfigMap (`namespace/name`); each of its entries is a response header set
//! on the Ingress's routes (nginx's `more_set_headers`, literal values). ingress-nginx denies
//! the location (every path answers `503`) when the ConfigMap is missing, a name or value has
//! characters outside its patterns, or a header is not listed in the controller ConfigMap's
//! `global-allowed-response-headers`; Ferry does the same, and also refuses the headers no
//! route may set (framing, hop-by-hop).

use ingress_core::{HeaderOp, RoutePolicy};

use super::values::only;

/// What the annotation does, for the documentation.
pub(super) const DOC: &str = "response headers set from the named ConfigMap (`namespace/name`, watched); each \
     must be listed in ConfigMap `global-allowed-response-headers`, else the Ingress answers 503, as \
     ingress-nginx denies it";

/// ingress-nginx's `valueRegexp` for header values: printable ASCII but `\t`, control bytes
/// and a few others.
fn valid_value(value: &str) -> bool {
    only(value, b"_ :;.,\\/\"'?!(){}[]@<>=-+*#$&`|~^%")
}

/// Reads `custom-headers` (`value`) into `policy`: `Ok` says what is set, `Err` why the
/// Ingress is denied. `config_map` finds a ConfigMap's data by namespace and name.
pub(super) fn read(
    value: &str,
    config_map: &super::ConfigMapLookup<'_>,
    allowed: &[String],
    policy: &mut RoutePolicy,
) -> Result<String, String> {
    let (namespace, name) = reference(value)?;
    let data = config_map(namespace, name).ok_or_else(|| {
        format!("ConfigMap {namespace}/{name} not found (ingress-nginx denies the location)")
    })?;
    let mut ops = Vec::with_capacity(data.len());
    for (header, text) in &data {
        if !only(header, b"-_") {
            return Err(format!("ConfigMap {namespace}/{name}: invalid header name `{header}`"));
        }
        if !valid_value(text) {
            return Err(format!("ConfigMap {namespace}/{name}: invalid value of header `{header}`"));
        }
        // As ingress-nginx: the names are compared as written.
        if !allowed.iter().any(|a| a == header) {
            return Err(format!(
                "header `{header}` is not listed in ConfigMap `global-allowed-response-headers` \
                 (ingress-nginx denies the location)"
            ));
        }
        let op = HeaderOp::set(header, text).map_err(|e| format!("ConfigMap {namespace}/{name}: {e}"))?;
        ops.push(op);
    }
    let names: Vec<&str> = data.keys().map(String::as_str).collect();
    policy.response_headers.extend(ops);
    Ok(if names.is_empty() {
        format!("ConfigMap {namespace}/{name} has no headers")
    } else {
        format!("sets {} on responses (from ConfigMap {namespace}/{name})", names.join(", "))
    })
}

/// `namespace/name`, of ingress-nginx's `BasicCharsRegex` characters.
pub(super) fn reference(value: &str) -> Result<(&str, &str), String> {
    let expected = || "expected a ConfigMap as `namespace/name`".to_owned();
    if !only(value, b"-._~/:") {
        return Err(expected());
    }
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok((ns, name)),
        _ => Err(expected()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn run(
        value: &str,
        map: &BTreeMap<String, String>,
        allowed: &[&str],
    ) -> (Result<String, String>, RoutePolicy) {
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        let lookup = |ns: &str, name: &str| (ns == "ns" && name == "hdrs").then(|| map.clone());
        let mut policy = RoutePolicy::default();
        (read(value, &lookup, &allowed, &mut policy), policy)
    }

    #[test]
    fn allowed_headers_are_set_and_anything_else_denies() {
        let map = data(&[("X-Frame-Options", "DENY"), ("Content-Security-Policy", "default-src 'self'")]);
        let (ok, policy) = run("ns/hdrs", &map, &["X-Frame-Options", "Content-Security-Policy"]);
        assert_eq!(
            ok.unwrap(),
            "sets Content-Security-Policy, X-Frame-Options on responses (from ConfigMap ns/hdrs)"
        );
        assert_eq!(policy.response_headers.len(), 2);

        let (err, policy) = run("ns/hdrs", &map, &["X-Frame-Options", "content-security-policy"]);
        assert!(err.unwrap_err().contains("`Content-Security-Policy` is not listed"));
        assert!(policy.response_headers.is_empty(), "nothing half-applied");
        assert!(run("ns/missing", &map, &[]).0.unwrap_err().contains("not found"));
        for bad in ["hdrs", "ns/", "/hdrs", "ns/a/b", "ns/h$"] {
            assert!(run(bad, &map, &[]).0.unwrap_err().contains("namespace/name"), "{bad}");
        }
        let (err, _) = run("ns/hdrs", &data(&[("X-A", "a\u{1}b")]), &["X-A"]);
        assert!(err.unwrap_err().contains("invalid value"));
        let (err, _) = run("ns/hdrs", &data(&[("X A", "b")]), &["X A"]);
        assert!(err.unwrap_err().contains("invalid header name"));
        let (err, _) = run("ns/hdrs", &data(&[("Content-Length", "0")]), &["Content-Length"]);
        assert!(err.is_err(), "a framing header is never set by a route");
    }
}
