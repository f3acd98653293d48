//! `explain tcp://:PORT` / `udp://:PORT`, and the stream services' lines in `check`.

use std::io::Write;

use anyhow::bail;
use ingress_core::{RouteTable, StreamProtocol, StreamRoute};

use crate::args::Output;

/// The protocol and port of a `tcp://[host]:PORT` or `udp://[host]:PORT` URL, or `None` when
/// the URL is not one.
pub(super) fn parse(url: &str) -> Option<anyhow::Result<(StreamProtocol, u16)>> {
    let (protocol, rest) = if let Some(rest) = url.strip_prefix("tcp://") {
        (StreamProtocol::Tcp, rest)
    } else if let Some(rest) = url.strip_prefix("udp://") {
        (StreamProtocol::Udp, rest)
    } else {
        return None;
    };
    let port = rest.trim_end_matches('/').rsplit_once(':').map_or(rest, |(_, p)| p);
    Some(match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((protocol, p)),
        _ => Err(anyhow::anyhow!("`{url}` names no port (use {}://:PORT)", protocol.as_str())),
    })
}

/// One line describing a stream service: protocol, port, backend, endpoints, PROXY protocol.
pub(super) fn describe(route: &StreamRoute) -> String {
    let service = route.service();
    let endpoints = route.backend().endpoints();
    let ready = match endpoints.len() {
        0 => "no endpoint ready: connections are closed at once".to_owned(),
        n => format!(
            "{n} ready: {}",
            endpoints.as_slice().iter().map(|e| e.addr.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut proxy = Vec::new();
    if service.proxy_protocol.decode {
        proxy.push("PROXY protocol from the client");
    }
    if service.proxy_protocol.encode {
        proxy.push("PROXY protocol to the upstream");
    }
    let proxy = if proxy.is_empty() { String::new() } else { format!("; {}", proxy.join(", ")) };
    format!("{} :{} → {} ({ready}){proxy}", service.protocol, service.port, service.backend)
}

/// `explain tcp://:PORT`: which service the port forwards to, or that none does.
pub(super) fn explain(
    table: &RouteTable,
    protocol: StreamProtocol,
    port: u16,
    output: Output,
) -> anyhow::Result<()> {
    let route = table.stream(protocol, port);
    let mut out = std::io::stdout().lock();
    match output {
        Output::Text => match route {
            Some(route) => writeln!(out, "{}", describe(route))?,
            None => {
                bail!("no {protocol} service on port {port} (see --{}-services-configmap)", protocol.as_str())
            }
        },
        Output::Json => {
            let json = match route {
                Some(route) => {
                    let s = route.service();
                    serde_json::json!({
                        "protocol": s.protocol.as_str(),
                        "port": s.port,
                        "backend": s.backend.to_string(),
                        "upstream": s.upstream_name(),
                        "endpoints": route.backend().endpoints().as_slice().iter()
                            .map(|e| e.addr.to_string()).collect::<Vec<_>>(),
                        "proxy_protocol": {"from_client": s.proxy_protocol.decode, "to_upstream": s.proxy_protocol.encode},
                    })
                }
                None => serde_json::json!({"protocol": protocol.as_str(), "port": port, "backend": null}),
            };
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_name_a_protocol_and_port() {
        let ok = |u: &str| parse(u).and_then(Result::ok);
        assert_eq!(ok("tcp://:5432"), Some((StreamProtocol::Tcp, 5432)));
        assert_eq!(ok("udp://localhost:53/"), Some((StreamProtocol::Udp, 53)));
        assert_eq!(ok("tcp://5432"), Some((StreamProtocol::Tcp, 5432)));
        assert!(parse("tcp://:0").is_some_and(|r| r.is_err()));
        assert!(parse("tcp://:x").is_some_and(|r| r.is_err()));
        assert!(parse("http://x/").is_none());
    }
}
