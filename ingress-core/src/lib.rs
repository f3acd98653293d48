//! `ingress-core`: the pure routing model of the Ferry ingress controller.
//!
//! Describe Ingress-like rules with plain Rust types ([`Ingress`], [`HostRule`],
//! [`PathRule`], [`BackendRef`]), compile them with a [`TableBuilder`] into an immutable
//! [`RouteTable`], and look requests up by host and path. Endpoints live in an
//! [`EndpointStore`] whose per-backend slots the table shares, so endpoint changes never
//! rebuild routes.
//!
//! The crate has no I/O, no async runtime and no Kubernetes types: the Kubernetes feed
//! (`ingress-k8s`) and the proxy (`ingress-proxy`) meet here.
//!
//! # Examples
//!
//! ```
//! use ingress_core::{BackendRef, EndpointSet, EndpointStore, HostRule, Ingress, MatchedBy, Origin, PathRule, TableBuilder};
//!
//! let demo = BackendRef::new("default", "demo-app", 80);
//! let mut endpoints = EndpointStore::new();
//! endpoints.set(&demo, EndpointSet::new(["10.0.0.7:80".parse::<std::net::SocketAddr>().unwrap()]));
//!
//! let mut builder = TableBuilder::new();
//! builder.ingress(Ingress::new(Origin::new("default", "demo-ingress"))
//!     .rule(HostRule::host("demo.example.com").path(PathRule::prefix("/", demo.clone()))));
//! let table = builder.build(&mut endpoints).table;
//!
//! let route = table.lookup("demo.example.com:30080", "/index.html").unwrap();
//! assert_eq!(route.backend.key(), &demo);
//! assert_eq!(route.backend.endpoints().len(), 1);
//! assert!(matches!(route.matched_by, MatchedBy::Path { .. }));
//!
//! // An endpoint change is visible through the same table, without a rebuild.
//! endpoints.set(&demo, EndpointSet::default());
//! assert!(table.lookup("demo.example.com", "/").unwrap().backend.endpoints().is_empty());
//! ```
#![deny(missing_docs)]

mod balance;
mod build;
mod canary;
mod cidr;
mod client_auth;
mod cors;
mod endpoints;
mod error;
mod explain;
mod external_auth;
mod header_rewrite;
mod host;
mod model;
mod path;
mod policy;
mod rewrite;
mod small_set;
mod stream;
mod table;
mod tls;
mod upstream;
mod uri;
mod vars;

pub use balance::{
    Affinity, Balance, DEFAULT_SESSION_COOKIE, HashBy, HashRing, LoadBalance, SessionCookie, crc32,
    samesite_none_incompatible,
};
pub use build::{Built, ListChanges, ListVersion, Rebuilder, TableBuilder};
pub use canary::{CanaryRoute, CanaryRule, cookie_value};
pub use cidr::{Cidr, InvalidCidr, admits, canonical as canonical_ip, parse_cidrs};
pub use client_auth::{ClientAuth, ClientCheck, ClientVerdict, CnPattern, VerifyClient};
pub use cors::{Cors, CorsOrigins, InvalidOrigin, OriginPattern};
pub use endpoints::{Endpoint, EndpointSet, EndpointSlot, EndpointStore};
pub use error::{Field, Reason, Rejection};
pub use explain::{Decision, Explanation, HostCandidate, PathCandidate, Verdict};
pub use external_auth::{
    AuthCache, CacheValid, DEFAULT_CACHE_DURATION, ExternalAuth, InvalidAuth, UrlParts, parse_cache_duration,
    signin_url, split_url, valid_auth_header, valid_auth_method,
};
pub use header_rewrite::{PrefixRewrite, ResponseRewrites};
pub use host::{HostPattern, normalize_host};
pub use model::{
    BackendRef, CertificateRef, HostRule, Ingress, Origin, PathRule, PathType, PortRef, Service, ServicePort,
    TlsRule,
};
pub use policy::{
    BasicAuth, BodyLimit, HeaderAction, HeaderOp, InvalidHeader, RESERVED_HEADERS, RateLimit, Redirect,
    RoutePolicy, is_token,
};
pub use rewrite::{InvalidRewrite, RewriteTarget};
pub use small_set::{SmallSet, SmallSetIter};
pub use stream::{ProxyProtocol, StreamProtocol, StreamRoute, StreamService};
pub use table::{Backend, MatchedBy, Route, RouteId, RouteTable};
pub use tls::{CertificateMaterial, CertificatePem, TlsEntry, TlsMap};
pub use upstream::{
    BackendProtocol, DEFAULT_UPSTREAM_NAME, InvalidProtocol, TlsVersion, UpstreamProtocol, UpstreamTls,
};
pub use uri::{InvalidTarget, normalize_path};
pub use vars::{Template, UnknownVariable, Var, Vars, escape_uri_component};
