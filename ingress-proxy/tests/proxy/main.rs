//! Proxy behaviour against real sockets on 127.0.0.1 and real local backends.
//!
//! One test binary (modules below) so the Pingora-sized link happens once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accesslog;
#[allow(unreachable_pub)]
mod ports;
mod support;
mod tlsutil;

mod admin;
mod client_certs;
mod fastpath;
mod grpc;
mod hostile;
mod messages;
mod parity;
mod passthrough;
mod routing;
mod streaming;
mod swap;
mod tls;
mod uploads;
mod upstreams;
mod websocket;
