//! The request head as it goes upstream ([`super`]): HTTP/1.1, origin-form, the client's
//! header lines in their order and spelling where [`RequestEdits`] keeps them, then the lines
//! the pipeline adds, then the framing and upgrade lines the engine owns.

use super::head::{BodyFraming, Head};
use crate::pipeline::edits::RequestEdits;

/// Writes `head` as it goes upstream into `out`.
pub(crate) fn write(head: &Head<'_>, edits: &RequestEdits<'_>, out: &mut Vec<u8>) {
    out.clear();
    let target = edits.target.unwrap_or(head.origin_form);
    for part in [head.method.as_bytes(), b" ", target.as_bytes(), b" HTTP/1.1\r\n"] {
        out.extend_from_slice(part);
    }
    // An absolute-form target names the host (RFC 9112 section 3.2.2); HTTP/1.0 may have
    // sent none, and HTTP/1.1 upstream needs the line (empty when there is no authority).
    let own_host = head.absolute || head.host.is_empty() || edits.host.is_some();
    if own_host {
        line(out, b"host", &[edits.host.unwrap_or(head.host).as_bytes()]);
    }
    for h in head.headers {
        if (own_host && h.name.eq_ignore_ascii_case("host")) || !edits.keeps(h.name) {
            continue;
        }
        line(out, h.name.as_bytes(), &[h.value]);
    }
    edits.added(|name, value| line(out, name.as_bytes(), value));
    if head.body == BodyFraming::Chunked {
        // The client's `Transfer-Encoding` line went with the hop-by-hop headers; the body goes
        // out in the proxy's own chunks.
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if let Some(protocol) = head.upgrade {
        line(out, b"upgrade", &[protocol.as_bytes()]);
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value\r\n`, the value given in parts.
pub(crate) fn line(out: &mut Vec<u8>, name: &[u8], value: &[&[u8]]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for part in value {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::head::{HeadLimits, Parsed, header_slots, parse};
    use super::*;
    use ingress_core::HeaderOp;

    fn upstream(raw: &[u8], route: &[HeaderOp]) -> String {
        let mut slots = header_slots();
        let Parsed::Request(head) = parse(raw, &mut slots, HeadLimits { line: 8192, total: 32768 }) else {
            panic!("refused")
        };
        let forwarding = crate::config::Forwarding::default();
        let connection = crate::pipeline::client::Connection {
            peer: Some((std::net::IpAddr::from([10, 0, 0, 9]), "10.0.0.9")),
            tls: true,
            port: "443",
        };
        let sent = crate::pipeline::client::Sent::from_lines(
            &forwarding,
            head.headers.iter().map(|h| (h.name, h.value)),
        );
        let client = crate::pipeline::client::identify(&forwarding, connection, head.host, sent);
        let edits = RequestEdits {
            target: None,
            host: None,
            forwarded_prefix: None,
            client: &client,
            request_id: head.request_id.unwrap_or(b"rid"),
            nominated: head.nominated(),
            names: crate::pipeline::edits::Names { underscores: false, ignore_invalid: true },
            global: &[],
            route,
            auth: &[],
        };
        let mut out = Vec::new();
        write(&head, &edits, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keeps_end_to_end_headers_and_sets_forwarding() {
        let up = upstream(
            b"GET /a/b?q=1 HTTP/1.1\r\nHost: Demo.example.com:8080\r\nConnection: keep-alive, X-Secret\r\n\
            X-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Forwarded-For: 203.0.113.9\r\n\
            X-Forwarded-Proto: http\r\nX-Real-IP: 1.2.3.4\r\nX_Real_IP: 6.6.6.6\r\nAccept: */*\r\n\r\n",
            &[],
        );
        assert_eq!(
            up,
            "GET /a/b?q=1 HTTP/1.1\r\nHost: Demo.example.com:8080\r\nAccept: */*\r\n\
             x-real-ip: 10.0.0.9\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: https\r\n\
             x-forwarded-scheme: https\r\nx-scheme: https\r\n\
             x-forwarded-host: Demo.example.com:8080\r\nx-forwarded-port: 443\r\n\
             x-original-forwarded-for: 203.0.113.9\r\nx-request-id: rid\r\n\r\n"
        );
    }

    #[test]
    fn framing_host_and_upgrade_lines_are_the_proxys() {
        let up = upstream(
            b"POST /u HTTP/1.1\r\nHost: h\r\nConnection: content-length, host, x-gone\r\nX-Gone: 1\r\n\
              Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
            &[],
        );
        assert!(up.starts_with("POST /u HTTP/1.1\r\nHost: h\r\n"), "{up}");
        assert!(!up.contains("X-Gone") && !up.to_ascii_lowercase().contains("expect"), "{up}");
        assert!(up.ends_with("transfer-encoding: chunked\r\n\r\n"), "{up}");
        assert_eq!(up.matches("transfer-encoding").count(), 1, "{up}");

        let up = upstream(b"GET http://abs.example.com/p HTTP/1.1\r\nHost: other\r\n\r\n", &[]);
        assert!(up.starts_with("GET /p HTTP/1.1\r\nhost: abs.example.com\r\n"), "{up}");
        assert!(!up.contains("other"), "{up}");
        let up = upstream(b"GET / HTTP/1.0\r\n\r\n", &[]);
        assert!(up.starts_with("GET / HTTP/1.1\r\nhost: \r\n"), "{up}");

        let up = upstream(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            &[],
        );
        assert!(up.ends_with("upgrade: websocket\r\nconnection: upgrade\r\n\r\n"), "{up}");
        assert_eq!(up.to_ascii_lowercase().matches("upgrade").count(), 2, "{up}");
    }

    #[test]
    fn route_edits_come_last() {
        let route = [
            HeaderOp::set("x-forwarded-proto", "http").unwrap(),
            HeaderOp::set("accept", "text/html").unwrap(),
        ];
        let up = upstream(b"GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", &route);
        assert!(
            up.ends_with("x-request-id: rid\r\nx-forwarded-proto: http\r\naccept: text/html\r\n\r\n"),
            "{up}"
        );
        assert!(!up.contains("*/*") && !up.contains("x-forwarded-proto: https"), "{up}");
        assert!(up.contains("x-scheme: https\r\n"), "only the header the route sets changes: {up}");
    }
}
