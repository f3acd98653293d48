//! The `tcp-services` and `udp-services` ConfigMaps → stream services.
//!
//! ingress-nginx's format, read as its `getStreamServices` reads it: each key is the port to
//! listen on, each value `<namespace>/<service>:<port>[:PROXY[:PROXY]]`, where `<port>` is the
//! Service port's number or name (of the ConfigMap's protocol), the first `PROXY` means the
//! client sends a PROXY protocol header, the second that the upstream gets one (TCP only).
//! Where ingress-nginx skips an entry with a log line, Ferry reports a [`Problem`] naming the
//! ConfigMap and key; the other entries are served.

use ingress_core::{BackendRef, ProxyProtocol, StreamProtocol, StreamService, TableBuilder};

use super::{Problem, Severity};
use crate::config::ObjectName;
use crate::objects::Key;
use crate::{Kind, Objects, StoredService};

/// Adds the services of one stream ConfigMap to `builder`; returns what was wrong with its
/// entries. A missing ConfigMap adds nothing (ingress-nginx serves no stream port then).
pub(crate) fn add(
    builder: &mut TableBuilder,
    objects: &Objects,
    configmap: &ObjectName,
    protocol: StreamProtocol,
    reserved: &[u16],
    used_services: &mut Vec<Key>,
) -> Vec<Problem> {
    let key = configmap.key();
    let Some(data) = objects.config_maps.get(&key).and_then(|c| c.data.as_ref()) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (port, value) in data {
        let problem = |reason: String, severity| Problem {
            kind: Kind::ConfigMap,
            object: key.clone(),
            field: format!("data[{port}]"),
            reason,
            severity,
        };
        // The Service it names, whatever else is wrong with the entry.
        if let Some((ns, name)) = value.trim().split(':').next().and_then(|n| n.split_once('/')) {
            used_services.push((ns.into(), name.into()));
        }
        match entry(port, value, protocol, reserved, objects) {
            Ok((service, warnings)) => {
                problems.extend(warnings.into_iter().map(|w| problem(w, Severity::Warning)));
                builder.stream(service);
            }
            Err(why) => problems.push(problem(why, Severity::Rejected)),
        }
    }
    problems
}

/// One entry: the service, with warnings about fields ignored as ingress-nginx ignores them,
/// or why it cannot be served.
fn entry(
    port: &str,
    value: &str,
    protocol: StreamProtocol,
    reserved: &[u16],
    objects: &Objects,
) -> Result<(StreamService, Vec<String>), String> {
    let listen = match port.trim().parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("`{port}` is not a valid {protocol} port number")),
    };
    if reserved.contains(&listen) {
        return Err(format!(
            "port {listen} cannot be used for {protocol} services: it is reserved for the controller"
        ));
    }
    let fields: Vec<&str> = value.trim().split(':').collect();
    let [name, service_port, extra @ ..] = fields.as_slice() else {
        return Err(format!("invalid Service reference `{value}`: expected `namespace/service:port`"));
    };
    let Some((namespace, service)) =
        name.split_once('/').filter(|(ns, svc)| !ns.is_empty() && !svc.is_empty() && !svc.contains('/'))
    else {
        return Err(format!("invalid Service reference `{value}`: `{name}` is not `namespace/name`"));
    };
    let mut warnings = Vec::new();
    let mut proxy_protocol = ProxyProtocol::default();
    for (i, field) in extra.iter().enumerate() {
        let proxy = field.eq_ignore_ascii_case("PROXY");
        match (i, protocol) {
            (_, StreamProtocol::Udp) => {
                warnings.push(format!("`{field}` ignored: the PROXY protocol applies to TCP services only"));
            }
            (0, _) if proxy => proxy_protocol.decode = true,
            // ingress-nginx reads the fourth field only when there are exactly four.
            (1, _) if proxy && extra.len() == 2 => proxy_protocol.encode = true,
            _ => warnings.push(format!("`{field}` ignored: only `PROXY` is understood in fields 3 and 4")),
        }
    }
    let Some(svc) = objects.services.get(&(namespace.into(), service.into())) else {
        return Err(format!("service {namespace}/{service} not found"));
    };
    let number = service_port_number(svc, service_port, protocol)
        .ok_or_else(|| format!("service {namespace}/{service} has no {protocol} port `{service_port}`"))?;
    let backend = BackendRef::new(namespace, service, number);
    Ok((StreamService::new(protocol, listen, backend).with_proxy_protocol(proxy_protocol), warnings))
}

/// The number of the Service port named or numbered `port` whose protocol is `protocol` (a
/// port without one is TCP).
fn service_port_number(service: &StoredService, port: &str, protocol: StreamProtocol) -> Option<u16> {
    let wanted = match protocol {
        StreamProtocol::Tcp => "TCP",
        StreamProtocol::Udp => "UDP",
    };
    let number = port.parse::<i32>().ok();
    service
        .ports
        .iter()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == wanted)
        .find(|p| match number {
            Some(n) => p.port == n,
            None => p.name.as_deref() == Some(port),
        })
        .and_then(|p| u16::try_from(p.port).ok())
}
