//! The ConfigMap's header keys → the header edits of every request and response.
//!
//! - `proxy-set-headers`: names a ConfigMap (`namespace/name`) whose entries are set on every
//!   request going upstream (nginx's `proxy_set_header`; an empty value removes the header).
//! - `add-headers`: names a ConfigMap whose entries are set on every response, the proxy's own
//!   answers included (nginx's http-level `more_set_headers`).
//! - `hide-headers`: upstream response headers removed (`proxy_hide_header`), comma-separated.
//! - `server-tokens` (off) and `allow-backend-server-header` (off): ingress-nginx sends no
//!   `Server` at all while `server-tokens` is off (`more_clear_headers Server`), whatever the
//!   upstream sent; when on, its own (here `ferry/<version>`), or the upstream's when that is
//!   allowed.
//!
//! nginx expands `$variables` in these values; Ferry never interprets configuration text, so
//! an entry with a `$` is reported and left out rather than sent with a literal `$name`.

use std::collections::BTreeMap;

use ingress_core::HeaderOp;

/// The header keys of one ConfigMap, gathered before they make the edit lists.
#[derive(Debug, Default)]
pub(super) struct HeaderKeys {
    pub(super) proxy_set_headers: Option<String>,
    pub(super) add_headers: Option<String>,
    pub(super) hide_headers: Vec<String>,
    pub(super) server_tokens: bool,
    pub(super) allow_backend_server_header: bool,
}

/// The request and response edits of `keys`, and what was left out (key, reason). The
/// ConfigMaps the keys name are found in `references` by the value naming them.
pub(super) fn edits(
    keys: &HeaderKeys,
    references: &BTreeMap<String, BTreeMap<String, String>>,
) -> (Vec<HeaderOp>, Vec<HeaderOp>, Vec<(&'static str, String)>) {
    let mut left_out = Vec::new();
    let request = keys
        .proxy_set_headers
        .as_deref()
        .map(|name| entries("proxy-set-headers", name, references, true, &mut left_out))
        .unwrap_or_default();
    let mut response = Vec::new();
    if !keys.server_tokens {
        response.extend(HeaderOp::remove("server"));
    } else if !keys.allow_backend_server_header {
        response.extend(HeaderOp::set("server", concat!("ferry/", env!("CARGO_PKG_VERSION"))));
    }
    for name in &keys.hide_headers {
        match HeaderOp::remove(name) {
            Ok(op) => response.push(op),
            Err(e) => left_out.push(("hide-headers", format!("`{name}`: {e}; not hidden"))),
        }
    }
    if let Some(name) = keys.add_headers.as_deref() {
        response.extend(entries("add-headers", name, references, false, &mut left_out));
    }
    (request, response, left_out)
}

/// The edits of the entries of the ConfigMap `name` (by its key's value), in key order; an
/// empty value removes the header when `empty_removes` (nginx's `proxy_set_header X ""`).
fn entries(
    key: &'static str,
    name: &str,
    references: &BTreeMap<String, BTreeMap<String, String>>,
    empty_removes: bool,
    left_out: &mut Vec<(&'static str, String)>,
) -> Vec<HeaderOp> {
    let Some(data) = references.get(name) else {
        left_out.push((key, format!("ConfigMap {name} not found; no headers from it (as ingress-nginx)")));
        return Vec::new();
    };
    let mut ops = Vec::with_capacity(data.len());
    for (header, value) in data {
        let op = if value.contains('$') {
            Err("nginx variables (`$name`) are not expanded by Ferry".to_owned())
        } else if value.is_empty() && empty_removes {
            HeaderOp::remove(header).map_err(|e| e.to_string())
        } else {
            HeaderOp::set(header, value).map_err(|e| e.to_string())
        };
        match op {
            Ok(op) => ops.push(op),
            Err(why) => left_out.push((key, format!("ConfigMap {name}, header `{header}`: {why}; left out"))),
        }
    }
    ops
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shown(ops: &[HeaderOp]) -> Vec<String> {
        ops.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_send_no_server_header() {
        let (request, response, left_out) = edits(&HeaderKeys::default(), &BTreeMap::new());
        assert!(request.is_empty() && left_out.is_empty());
        assert_eq!(shown(&response), shown(&[HeaderOp::remove("server").unwrap()]));
        let tokens = HeaderKeys { server_tokens: true, ..HeaderKeys::default() };
        let (_, response, _) = edits(&tokens, &BTreeMap::new());
        assert_eq!(response.len(), 1);
        assert!(response[0].value().starts_with("ferry/"));
        let backend =
            HeaderKeys { server_tokens: true, allow_backend_server_header: true, ..HeaderKeys::default() };
        assert!(edits(&backend, &BTreeMap::new()).1.is_empty(), "the upstream's Server goes through");
    }

    #[test]
    fn referenced_config_maps_become_edits_and_bad_entries_are_reported() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let references = BTreeMap::from([
            ("ns/req".to_owned(), data(&[("X-Team", "web"), ("X-Drop", ""), ("X-Start", "t=${msec}")])),
            ("ns/resp".to_owned(), data(&[("X-Frame-Options", "DENY"), ("Transfer-Encoding", "chunked")])),
        ]);
        let keys = HeaderKeys {
            proxy_set_headers: Some("ns/req".into()),
            add_headers: Some("ns/resp".into()),
            hide_headers: vec!["X-Powered-By".into(), "Content-Length".into()],
            ..HeaderKeys::default()
        };
        let (request, response, left_out) = edits(&keys, &references);
        assert_eq!(
            shown(&request),
            shown(&[HeaderOp::remove("X-Drop").unwrap(), HeaderOp::set("X-Team", "web").unwrap()])
        );
        assert_eq!(
            shown(&response),
            shown(&[
                HeaderOp::remove("server").unwrap(),
                HeaderOp::remove("X-Powered-By").unwrap(),
                HeaderOp::set("X-Frame-Options", "DENY").unwrap(),
            ])
        );
        let reasons: Vec<String> = left_out.iter().map(|(k, r)| format!("{k}: {r}")).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("`X-Start`: nginx variables")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.starts_with("hide-headers: `Content-Length`")), "{reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("add-headers: ConfigMap ns/resp, header `Transfer-Encoding`"))
        );

        let (_, _, left_out) =
            edits(&HeaderKeys { add_headers: Some("ns/none".into()), ..keys }, &BTreeMap::new());
        assert!(
            left_out.iter().any(|(k, r)| *k == "add-headers" && r.contains("ConfigMap ns/none not found"))
        );
    }
}
