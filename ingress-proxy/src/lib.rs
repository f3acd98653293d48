//! `ingress-proxy`: the data plane of the Ferry ingress controller — the `ingress-core`
//! routing model inside a [Pingora](https://github.com/cloudflare/pingora) server.
//!
//! Build a [`ProxyConfig`], create a [`ProxyHandle`], start a [`ProxyServer`], and install
//! [`RouteTable`](ingress_core::RouteTable) snapshots through the handle whenever the routing
//! changes. Swapping a snapshot never restarts anything, drops a connection or stalls a request
//! in flight: each request loads the current snapshot once, lock-free.
//!
//! What a request gets, over HTTP/1.x (the proxy's own engine) or HTTP/2 (Pingora's session),
//! from one pipeline of phases:
//! - a route from the snapshot (host from `Host`, the target or `:authority`; the path
//!   normalized as nginx normalizes it), with its [`RoutePolicy`](ingress_core::RoutePolicy),
//!   else the built-in default backend: `404` with body `default backend - 404`;
//! - an endpoint chosen by the [`Selector`] ([`RoundRobin`] by default); no endpoints → `503`;
//!   a failed connect is retried on the next endpoint (up to [`RouteLimits::max_attempts`]),
//!   then `502`; a timeout → `504`;
//! - `X-Forwarded-For` (appended), `X-Forwarded-Proto`, `-Host`, `-Port`, `X-Real-IP`, and
//!   `X-Request-ID` (the client's, else generated), then the route's header edits; bodies
//!   streamed, WebSocket upgrades proxied;
//! - a Prometheus sample and an access log line ([`AccessLog`]: Ferry's JSON object or an nginx
//!   `log_format` [`LogTemplate`]), written by a thread of its own so it never slows a request.
//!
//! Malformed, ambiguous or oversized HTTP/1 requests are refused as nginx refuses them
//! (`docs/http1.md` in the repository lists each case).
//!
//! ```no_run
//! use std::sync::Arc;
//! use ingress_core::{BackendRef, EndpointSet, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder};
//! use ingress_proxy::{ProxyConfig, ProxyHandle, ProxyServer};
//!
//! let app = BackendRef::new("default", "app", 80);
//! let mut endpoints = EndpointStore::new();
//! endpoints.set(&app, EndpointSet::new(["10.0.0.7:8080".parse::<std::net::SocketAddr>()?]));
//! let mut builder = TableBuilder::new();
//! builder.ingress(Ingress::new(Origin::new("default", "app"))
//!     .rule(HostRule::host("app.example.com").path(PathRule::prefix("/", app))));
//!
//! let handle = ProxyHandle::new();
//! handle.install(Arc::new(builder.build(&mut endpoints).table));
//! let running = ProxyServer::new(ProxyConfig::default(), handle).start()?;
//! running.wait();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod access_log;
mod admin;
mod client_cert;
mod config;
mod error;
mod h1;
mod h2;
mod handle;
mod metrics;
mod passthrough;
mod pipeline;
mod pool;
mod proxy_protocol;
mod server;
mod sni;
mod stream;
mod tls;
mod upstream;
mod upstream_tls;

pub use access_log::{
    AccessLog, LogEscape, LogFormat, LogFormatError, LogTemplate, QUEUE_BYTES, QUEUE_LINES, UPSTREAMINFO,
};
pub use config::{
    ClientLimits, Forwarding, HttpsSettings, ProxyConfig, RouteLimits, RuntimeSettings, Timeouts,
};
pub use error::{Error, Result};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use h1::fuzz;
pub use handle::{Installed, ProxyHandle};
pub use metrics::ControllerLabels;
pub use pipeline::answer::DEFAULT_BACKEND_BODY;
pub use server::{ProxyServer, RunningProxy};
pub use stream::StreamSettings;
pub use tls::PreparedCertificate;
pub use upstream::{RoundRobin, Selector};
