//! Upstream selection: which endpoint of a backend gets the next attempt, and which failures
//! earn another attempt.

use std::net::SocketAddr;

use ingress_core::{Backend, Endpoint, EndpointSet};
use pingora::ErrorType;

/// Chooses an endpoint for one attempt of one request.
///
/// A trait so that load-balancing policies (EWMA, least connections, consistent hashing) plug
/// in without touching the request path. Implementations must be cheap and must not block:
/// they run on the proxy's worker threads for every attempt.
pub trait Selector: Send + Sync + 'static {
    /// An endpoint of `endpoints` not in `tried` (the endpoints earlier attempts of this request
    /// failed to connect to), or `None` when every endpoint was tried or there is none.
    /// `backend` gives access to per-backend shared state such as
    /// [`EndpointSlot::next_cursor`](ingress_core::EndpointSlot::next_cursor).
    fn select(&self, backend: &Backend, endpoints: &EndpointSet, tried: &[SocketAddr]) -> Option<Endpoint>;
}

/// Round-robin over the backend's endpoints, shared by every request and every snapshot (the
/// cursor lives in the backend's endpoint slot), skipping endpoints this request already
/// failed on.
#[derive(Debug, Default, Clone, Copy)]
pub struct RoundRobin;

impl Selector for RoundRobin {
    fn select(&self, backend: &Backend, endpoints: &EndpointSet, tried: &[SocketAddr]) -> Option<Endpoint> {
        let all = endpoints.as_slice();
        if all.is_empty() {
            return None;
        }
        let start = backend.slot().next_cursor();
        (0..all.len()).map(|i| all[(start + i) % all.len()]).find(|e| !tried.contains(&e.addr))
    }
}

/// Whether a failure to connect may be retried on another endpoint: nothing reached the
/// endpoint, so trying elsewhere is safe for any method (ingress-nginx's
/// `proxy_next_upstream error timeout`).
pub(crate) fn connect_failure_is_retryable(etype: &ErrorType) -> bool {
    matches!(
        etype,
        ErrorType::ConnectRefused
            | ErrorType::ConnectTimedout
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::ConnectionClosed
            | ErrorType::SocketError
            | ErrorType::BindError
            | ErrorType::TLSHandshakeFailure
    )
}

/// Whether a request that failed on a pooled (reused) connection may go out again on another:
/// the upstream side closed or broke the connection (it may close idle ones before we do),
/// which a timeout is not (the upstream may still be working on the request). The request
/// must also be idempotent and nothing may have reached the client yet; callers check those.
pub(crate) fn stale_connection_is_retryable(e: &pingora::Error) -> bool {
    *e.esource() == pingora::ErrorSource::Upstream
        && matches!(e.etype(), ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ingress_core::{BackendRef, EndpointStore, Ingress, Origin, TableBuilder};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn round_robin_rotates_and_skips_tried() {
        let b = BackendRef::new("ns", "svc", 80);
        let mut store = EndpointStore::new();
        store.set(&b, EndpointSet::new([addr(1), addr(2), addr(3)]));
        let mut builder = TableBuilder::new();
        builder.ingress(Ingress::new(Origin::new("ns", "i")).default_backend(b));
        let table = builder.build(&mut store).table;
        let backend = table.lookup("x", "/").unwrap().backend;
        let set = backend.endpoints();

        let picks: Vec<u16> =
            (0..6).map(|_| RoundRobin.select(backend, &set, &[]).unwrap().addr.port()).collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);

        let next = RoundRobin.select(backend, &set, &[addr(1), addr(2)]).unwrap();
        assert_eq!(next.addr, addr(3));
        assert!(RoundRobin.select(backend, &set, &[addr(1), addr(2), addr(3)]).is_none());
        assert!(RoundRobin.select(backend, &EndpointSet::default(), &[]).is_none());
    }

    #[test]
    fn only_connect_failures_retry() {
        assert!(connect_failure_is_retryable(&ErrorType::ConnectRefused));
        assert!(!connect_failure_is_retryable(&ErrorType::ReadTimedout));
        assert!(!connect_failure_is_retryable(&ErrorType::HTTPStatus(503)));
    }

    #[test]
    fn only_upstream_breakage_retries_a_pooled_request() {
        let closed = pingora::Error::explain(ErrorType::ConnectionClosed, "closed").into_up();
        assert!(stale_connection_is_retryable(&closed));
        let timeout = pingora::Error::explain(ErrorType::ReadTimedout, "slow").into_up();
        assert!(!stale_connection_is_retryable(&timeout));
        let client = pingora::Error::explain(ErrorType::ReadError, "client went away").into_down();
        assert!(!stale_connection_is_retryable(&client));
    }
}
