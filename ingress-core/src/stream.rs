//! TCP and UDP services: ports whose connections (or datagram flows) the proxy forwards whole
//! to a Service's endpoints, without reading them (ingress-nginx's `tcp-services` and
//! `udp-services` ConfigMaps, nginx's `stream` module).
//!
//! They live in the [`RouteTable`](crate::RouteTable) beside the HTTP routes, so one snapshot
//! carries both and their endpoints come from the same shared slots.

use std::fmt;

use crate::{Backend, BackendRef};

/// The transport of a stream service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamProtocol {
    /// Connections (`tcp-services`).
    Tcp,
    /// Datagrams, grouped into per-client flows (`udp-services`).
    Udp,
}

impl StreamProtocol {
    /// `tcp` or `udp`, as URLs and ingress-nginx's upstream names spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamProtocol::Tcp => "tcp",
            StreamProtocol::Udp => "udp",
        }
    }
}

impl fmt::Display for StreamProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamProtocol::Tcp => "TCP",
            StreamProtocol::Udp => "UDP",
        })
    }
}

/// The PROXY protocol on a TCP service (the `:PROXY[:PROXY]` fields of a `tcp-services` value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ProxyProtocol {
    /// Clients must open each connection with a PROXY protocol header (v1 or v2), whose source
    /// address is the client's (ingress-nginx's `Decode`, the first `PROXY`).
    pub decode: bool,
    /// Each upstream connection opens with a PROXY protocol v1 header naming the client
    /// (ingress-nginx's `Encode`, the second `PROXY`: nginx's `proxy_protocol on`).
    pub encode: bool,
}

/// One port forwarded to one Service port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamService {
    /// TCP or UDP.
    pub protocol: StreamProtocol,
    /// The port the proxy listens on (on every address it binds).
    pub port: u16,
    /// The Service port whose ready endpoints get the traffic (its number: named ports are
    /// resolved by whoever builds the service, against the Service's ports of this protocol).
    pub backend: BackendRef,
    /// PROXY protocol from the client and to the upstream (TCP only).
    pub proxy_protocol: ProxyProtocol,
}

impl StreamService {
    /// `port` forwarded over `protocol` to `backend`, without the PROXY protocol.
    pub fn new(protocol: StreamProtocol, port: u16, backend: BackendRef) -> Self {
        Self { protocol, port, backend, proxy_protocol: ProxyProtocol::default() }
    }

    /// The same service, with the PROXY protocol as given.
    #[must_use]
    pub fn with_proxy_protocol(mut self, proxy_protocol: ProxyProtocol) -> Self {
        self.proxy_protocol = proxy_protocol;
        self
    }

    /// ingress-nginx's name for this upstream (`$proxy_upstream_name`):
    /// `tcp-<namespace>-<service>-<port>`.
    pub fn upstream_name(&self) -> String {
        let b = &self.backend;
        format!("{}-{}-{}-{}", self.protocol.as_str(), b.namespace, b.service, b.port)
    }
}

/// A stream service in a table, with its backend's live endpoints.
#[derive(Debug)]
pub struct StreamRoute {
    pub(crate) service: StreamService,
    pub(crate) backend: Backend,
}

impl StreamRoute {
    /// The service as configured.
    pub fn service(&self) -> &StreamService {
        &self.service
    }

    /// Its backend: the Service port and the endpoint slot shared with every table.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::{EndpointSet, EndpointStore, TableBuilder};

    #[test]
    fn streams_share_endpoint_slots_and_are_found_by_protocol_and_port() {
        let db = BackendRef::new("default", "db", 5432);
        let dns = BackendRef::new("kube-system", "dns", 53);
        let mut store = EndpointStore::new();
        let mut builder = TableBuilder::new();
        builder
            .stream(StreamService::new(StreamProtocol::Tcp, 5432, db.clone()))
            .stream(StreamService::new(StreamProtocol::Udp, 53, dns.clone()))
            .stream(StreamService::new(StreamProtocol::Tcp, 53, dns));
        let table = builder.build(&mut store).table;
        assert_eq!(table.streams().len(), 3);
        let pg = table.stream(StreamProtocol::Tcp, 5432).map(|s| s.backend().key().clone());
        assert_eq!(pg, Some(db.clone()));
        assert!(table.stream(StreamProtocol::Udp, 5432).is_none());
        assert_eq!(
            table.stream(StreamProtocol::Udp, 53).map(|s| s.service().upstream_name()),
            Some("udp-kube-system-dns-53".to_owned())
        );

        // An endpoint change reaches the table without a rebuild.
        let addr: SocketAddr = "10.0.0.9:5432".parse().unwrap_or_else(|_| unreachable!());
        store.set(&db, EndpointSet::new([addr]));
        let route = table.stream(StreamProtocol::Tcp, 5432);
        assert_eq!(route.map(|r| r.backend().endpoints().len()), Some(1));
    }

    #[test]
    fn a_later_service_on_the_same_port_replaces_the_earlier() {
        let mut builder = TableBuilder::new();
        builder
            .stream(StreamService::new(StreamProtocol::Tcp, 9000, BackendRef::new("a", "one", 1)))
            .stream(StreamService::new(StreamProtocol::Tcp, 9000, BackendRef::new("a", "two", 2)));
        let table = builder.build(&mut EndpointStore::new()).table;
        assert_eq!(table.streams().len(), 1);
        assert_eq!(&*table.streams()[0].backend().key().service, "two");
    }
}
