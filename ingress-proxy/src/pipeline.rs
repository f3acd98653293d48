//! The request pipeline: what happens to every request, whichever transport carries it.
//!
//! Two drivers call these phases, in this order, and only move bytes in between: the HTTP/1
//! engine ([`crate::h1`]) for every HTTP/1.x request, and Pingora's session for HTTP/2
//! ([`crate::h2`]), the way pingora-proxy's `proxy_h1` and `proxy_h2` drive one `ProxyHttp`.
//!
//! 1. [`admit`]: the route and its policy, looked up once, and the answers the proxy gives
//!    without an upstream (`400` for a target with no routable path, `404`, `413`, `503`; the
//!    limits; [`access::check`]: source ranges and basic authentication under `satisfy`);
//!    then, when the route has it, [`external_auth::ask`], the one phase that waits.
//! 2. [`Attempts::next`]: the endpoint of each attempt, by the route's balancing
//!    ([`balance`]).
//! 3. [`client::identify`]: who the client is (address, scheme, host, port), from the
//!    connection and, behind a trusted proxy, the forwarding headers.
//! 4. [`edits::RequestEdits`]: the header edits of the request going upstream (hop-by-hop and
//!    invalid names dropped, forwarding headers, the route's own edits), one list that each
//!    driver writes in its own representation.
//! 5. [`Attempts::connect_failed`] / [`Attempts::exchange_failed`]: after a failure, another
//!    attempt or the status the request ends with.
//! 6. [`edits::ResponseEdits`]: the route's edits of the response head.
//! 7. [`log::Finished::record`]: metrics and the access log.
//!
//! To change what a request gets, change it here (or in the route's policy, in `ingress-core`),
//! never in a driver.

pub(crate) mod access;
pub(crate) mod answer;
pub(crate) mod auth;
pub(crate) mod balance;
pub(crate) mod client;
pub(crate) mod edits;
pub(crate) mod errors;
pub(crate) mod external_auth;
pub(crate) mod limits;
pub(crate) mod log;
pub(crate) mod redirect;
pub(crate) mod request_vars;
pub(crate) mod subrequest;

use std::borrow::Cow;
use std::net::SocketAddr;

use ingress_core::{
    Backend, Cors, HeaderAction, HeaderOp, Route, RoutePolicy, RouteTable, admits, normalize_path,
};
use pingora::Error;

use crate::config::{RouteLimits, RuntimeSettings};
use crate::upstream::{Selector, connect_failure_is_retryable, stale_connection_is_retryable};

/// What the pipeline needs to know about a request before it goes anywhere.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    /// The host it is for (`Host`, or the authority of the target or `:authority`).
    pub(crate) host: &'a str,
    /// The request target as sent (path and query).
    pub(crate) target: &'a str,
    /// The declared body length, if any.
    pub(crate) length: Option<u64>,
    /// The connection is TLS.
    pub(crate) tls: bool,
    /// The scheme the client used ([`client::Client::scheme`]).
    pub(crate) scheme: &'a str,
    /// The host the client asked for, as forwarded ([`client::Client::host`]).
    pub(crate) forwarded_host: &'a str,
    /// The port the client connected to, as forwarded ([`client::Client::port`]).
    pub(crate) port: &'a str,
    /// The method.
    pub(crate) method: &'a str,
    /// `Origin`, for CORS.
    pub(crate) origin: Option<&'a str>,
    /// The client's address ([`client::Client::ip`]), for the source ranges.
    pub(crate) client: Option<std::net::IpAddr>,
    /// `Authorization`, for basic authentication.
    pub(crate) authorization: Option<&'a str>,
    /// What the connection's TLS handshake said of a client certificate, when its host asked
    /// for one (`auth-tls-*`).
    pub(crate) client_cert: Option<&'a crate::client_cert::ClientCertificate>,
}

/// What the pipeline keeps across requests and tables: the limits' counts, the verified
/// credentials and the auth service's kept answers.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) limits: limits::Limits,
    pub(crate) verified: auth::Verified,
    pub(crate) auth_cache: external_auth::Cache,
    pub(crate) ewma: balance::Ewma,
}

/// The outcome of [`admit`].
#[derive(Debug)]
pub(crate) struct Admitted<'t> {
    /// The route, if one matched (also when the proxy answers, for the metric labels).
    pub(crate) route: Option<Route<'t>>,
    /// The path routed on.
    pub(crate) path: Cow<'t, str>,
    /// The limits in force: the route's policy over the settings.
    pub(crate) limits: RouteLimits,
    /// A status the proxy answers itself with instead of going upstream.
    pub(crate) answer: Option<u16>,
    /// The `Location` of that answer, when it is a redirect.
    pub(crate) location: Option<String>,
    /// The request target upstream when the route rewrites the path (`rewrite-target`).
    pub(crate) upstream_target: Option<String>,
    /// The route's CORS policy and the `Access-Control-Allow-Origin` value, when the request
    /// gets CORS headers (on the proxy's own answer too).
    pub(crate) cors: Option<(&'t Cors, &'t str)>,
    /// The request's place in its route's `limit-connections` count, held until it ends.
    pub(crate) in_flight: Option<limits::InFlight>,
    /// The external authentication to ask before anything else happens to the request (its
    /// refusal replaces `answer`): [`external_auth::ask`].
    pub(crate) auth: Option<external_auth::Pending<'t>>,
    /// Header lines of the auth service's refusal, for the answer.
    pub(crate) auth_lines: Vec<(String, String)>,
    /// The route's external authentication (its own or the global one), asked or not.
    pub(crate) external: Option<&'t ingress_core::ExternalAuth>,
    /// Basic authentication refused the request's credentials.
    pub(crate) basic_refused: bool,
    /// The `ssl-client-*` headers going upstream, on a host with client certificates.
    pub(crate) client_cert: Vec<ingress_core::HeaderOp>,
}

impl Admitted<'_> {
    /// The header lines of the proxy's own answer to this request (besides the framing):
    /// `Location`, HSTS (`hsts`, on HTTPS), CORS, then the `set` lines of the edits of every
    /// response (`global`: `add-headers`, `server-tokens`), as nginx's http-level
    /// `more_set_headers` reaches its own answers too.
    pub(crate) fn answer_headers<'a>(
        &'a self,
        hsts: Option<&'a str>,
        global: &'a [HeaderOp],
    ) -> Vec<(&'a str, Cow<'a, str>)> {
        let mut lines: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
        if let Some(location) = &self.location {
            lines.push(("location", Cow::Borrowed(location.as_str())));
        }
        if let Some(hsts) = hsts {
            lines.push((edits::HSTS, Cow::Borrowed(hsts)));
        }
        if let Some((cors, origin)) = self.cors {
            for (name, value) in cors.headers(origin) {
                lines.push((name, value));
            }
        }
        if let Some(auth) = self
            .route
            .as_ref()
            .and_then(|r| r.policy.basic_auth.as_ref())
            .filter(|_| self.answer == Some(401) && self.basic_refused)
        {
            lines.push(("www-authenticate", Cow::Owned(format!("Basic realm=\"{}\"", auth.realm))));
        }
        for (name, value) in &self.auth_lines {
            lines.push((name.as_str(), Cow::Borrowed(value.as_str())));
        }
        // `add-headers` replaces a line of the same name, as nginx's `more_set_headers` does.
        for op in global.iter().filter(|op| op.action() == HeaderAction::Set) {
            lines.retain(|(name, _)| !name.eq_ignore_ascii_case(op.name()));
            lines.push((op.name(), Cow::Borrowed(op.value())));
        }
        lines
    }
}

/// Phase 1: finds the route (once per request) and decides whether the request goes upstream.
///
/// The proxy answers itself, in this order: `400` when the target has no routable path
/// (malformed escapes, `..` above the root), the `www.` redirect of a host twin
/// (`from-to-www-redirect`, a server of its own in ingress-nginx), `404` without a route (the
/// built-in default backend; `403` for a client in `block-cidrs`); then ingress-nginx's rewrite
/// phase: `app-root`, a CORS preflight (`204`), the fixed redirects and the redirect to HTTPS
/// ([`redirect`]); then `503` when the route is closed (an access restriction it asks for
/// cannot be applied), nginx's access phase: `403` for a client the source ranges keep out
/// (`block-cidrs`, `denylist-source-range`, `whitelist-source-range`), then `413` when the
/// declared body is over the route's limit, `503` when neither the route's backend nor its
/// fallback has an endpoint. A rewrite (`rewrite-target`) gives the upstream target.
pub(crate) fn admit<'t>(
    table: Option<&'t RouteTable>,
    settings: &'t RuntimeSettings,
    state: &State,
    facts: &Facts<'t>,
) -> Admitted<'t> {
    let no_route = |path, answer| Admitted {
        route: None,
        path,
        limits: settings.limits_for(&RoutePolicy::default()),
        answer: Some(answer),
        location: None,
        upstream_target: None,
        cors: None,
        in_flight: None,
        auth: None,
        auth_lines: Vec::new(),
        external: None,
        basic_refused: false,
        client_cert: Vec::new(),
    };
    let Ok(path) = normalize_path(facts.target) else {
        return no_route(Cow::Borrowed(facts.target), 400);
    };
    if let Some(to) = table.and_then(|t| t.host_redirect(facts.host)) {
        let location = redirect::www(to, facts);
        return Admitted { location: Some(location), ..no_route(path, settings.https.redirect_code) };
    }
    let blocked = !admits(facts.client, &[], &settings.access.block);
    let Some(route) = table.and_then(|t| t.lookup(facts.host, &path)) else {
        return no_route(path, if blocked { 403 } else { 404 });
    };
    let route_limits = settings.limits_for(route.policy);
    let cors = route.policy.cors.as_ref().and_then(|c| Some((c, c.allow_origin(facts.origin)?)));
    let local = |answer, location| Admitted {
        route: Some(route),
        path: path.clone(),
        limits: route_limits,
        answer: Some(answer),
        location,
        upstream_target: None,
        cors,
        in_flight: None,
        auth: None,
        auth_lines: Vec::new(),
        external: None,
        basic_refused: false,
        client_cert: Vec::new(),
    };
    // Client certificates first, as nginx checks `ssl_verify_client` before any phase.
    // Over plain HTTP nginx checks nothing (its `ssl-redirect` usually sends the client to
    // HTTPS first) and its `ssl-client-*` lines are empty, so a client's own never pass.
    let client_cert = match table.and_then(|t| t.client_auth(facts.host)) {
        Some(auth) if facts.tls => match client_cert(auth, facts.client_cert) {
            Ok(lines) => lines,
            Err((status, location)) => return local(status, location),
        },
        Some(_) => CLIENT_CERT_HEADERS.iter().filter_map(|name| HeaderOp::remove(name).ok()).collect(),
        None => Vec::new(),
    };
    // ingress-nginx's rewrite phase, in its order: app-root, the CORS preflight, the fixed
    // redirects, the HTTPS redirect.
    if let Some((code, location)) = redirect::app_root(&route, facts, &path) {
        return local(code, Some(location));
    }
    if cors.is_some() && facts.method == "OPTIONS" {
        return local(204, None);
    }
    if let Some((code, location)) = redirect::redirect(&route, &settings.https, facts) {
        return local(code, Some(location));
    }
    let allow = route.policy.allow_ranges.as_deref().unwrap_or(&settings.access.allow);
    let deny = route.policy.deny_ranges.as_deref().unwrap_or(&settings.access.deny);
    let closed = route.policy.closed.is_some() || settings.closed.is_some();
    // nginx's preaccess phase (limit_req, limit_conn) comes after the rewrite phase's answers.
    let limited = match route.policy.rate_limit.as_deref().filter(|_| !closed) {
        Some(limit) => state.limits.admit(limit, facts.client, std::time::Instant::now()),
        None => Ok(None),
    };
    let (in_flight, refused) = match limited {
        Ok(held) => (held, None),
        Err(limits::Refused::Requests) => (None, Some(settings.limit_req_status)),
        Err(limits::Refused::Connections) => (None, Some(settings.limit_conn_status)),
    };
    let external = route.policy.external_auth.as_deref().or_else(|| access::global_auth(&route, settings));
    let access::Access { refused: access, pending: auth, basic_refused } =
        access::check(&route, facts, state, allow, deny, external);
    let answer = if closed {
        Some(503)
    } else if refused.is_some() {
        refused
    } else if blocked {
        Some(403)
    } else if access.is_some() {
        access
    } else if route_limits.max_body_size.zip(facts.length).is_some_and(|(limit, n)| n > limit) {
        Some(413)
    } else if route.backend.endpoints().is_empty() && route.fallback.is_none_or(|f| f.endpoints().is_empty())
    {
        Some(503)
    } else {
        None
    };
    let upstream_target = route.rewritten(&path).map(|rewritten| with_query(&rewritten, facts.target));
    Admitted {
        route: Some(route),
        path,
        limits: route_limits,
        answer,
        location: None,
        upstream_target,
        cors,
        in_flight,
        auth: auth.filter(|_| !closed && refused.is_none() && !blocked),
        auth_lines: Vec::new(),
        external,
        basic_refused,
        client_cert,
    }
}

/// The lines ingress-nginx sets upstream on a host with client certificates.
const CLIENT_CERT_HEADERS: [&str; 4] =
    ["ssl-client-verify", "ssl-client-subject-dn", "ssl-client-issuer-dn", "ssl-client-cert"];

/// Phase 1b, on a host with client certificates (`auth-tls-*`): the `ssl-client-*` headers
/// the request takes upstream, or the answer that refuses it (400, a redirect to
/// `auth-tls-error-page`, or 403 for a subject `auth-tls-match-cn` does not match).
fn client_cert(
    auth: &ingress_core::ClientAuth,
    cert: Option<&crate::client_cert::ClientCertificate>,
) -> Result<Vec<HeaderOp>, (u16, Option<String>)> {
    let none = ingress_core::ClientVerdict::None;
    let (verdict, subject) = cert.map_or((&none, ""), |c| (&c.verdict, c.subject.as_str()));
    match auth.check(verdict, subject) {
        ingress_core::ClientCheck::Pass => {}
        // nginx's 495/496, which ingress-nginx's `error_page 495 496 = <page>` redirects.
        ingress_core::ClientCheck::Refuse { .. } => {
            return Err(match &auth.error_page {
                Some(page) => (302, Some(page.clone())),
                None => (400, None),
            });
        }
        ingress_core::ClientCheck::Forbidden => return Err((403, None)),
    }
    // ingress-nginx's `proxy_set_header ssl-client-*`: the client's own lines of these names
    // never pass, and an empty value sends none. (`ssl-client-cert` goes only with
    // `auth-tls-pass-certificate-to-upstream`; unlike ingress-nginx, a client's own is dropped
    // without it too.)
    let empty = |c: &crate::client_cert::ClientCertificate| c.subject.is_empty();
    let value = |pick: fn(&crate::client_cert::ClientCertificate) -> &str| {
        cert.filter(|c| !empty(c)).map(pick).unwrap_or_default().to_owned()
    };
    let values = [
        verdict.to_string(),
        value(|c| &c.subject),
        value(|c| &c.issuer),
        if auth.pass_certificate { value(|c| &c.escaped) } else { String::new() },
    ];
    Ok(CLIENT_CERT_HEADERS
        .into_iter()
        .zip(values)
        .filter_map(|(name, value)| {
            if value.is_empty() { HeaderOp::remove(name).ok() } else { HeaderOp::set(name, &value).ok() }
        })
        .collect())
}

/// Phase 2b: the backend of a request on `route`: its canary's when the route has one and the
/// split says so (`canary-by-header`, then `-cookie`, then `-weight`), else the route's; the
/// route's fallback (`default-backend`) while that one has no ready endpoint. `headers` are
/// the request's header lines.
pub(crate) fn backend_for<'t, 'h>(
    route: &Route<'t>,
    headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
) -> &'t Backend {
    let chosen = split(route, headers);
    match route.fallback {
        Some(fallback) if chosen.endpoints().is_empty() => fallback,
        _ => chosen,
    }
}

/// The canary split of [`backend_for`]: a session an affinity cookie pins to one of the pair
/// stays there (ingress-nginx's `affinity-canary-behavior: sticky`), then the header, cookie
/// and weight rules.
fn split<'t, 'h>(
    route: &Route<'t>,
    headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
) -> &'t Backend {
    let Some(canary) = route.canary else { return route.backend };
    if let Some(pinned) = balance::affinity_backend(route, headers.clone()) {
        if pinned == balance::backend_key(route.backend.key()) {
            return route.backend;
        }
        if !canary.rule.legacy_affinity && pinned == balance::backend_key(canary.backend.key()) {
            return canary.backend;
        }
    }
    let wanted = canary.rule.header.as_deref().unwrap_or("");
    let (mut header, mut cookie) = (None, None);
    for (name, value) in headers {
        if !wanted.is_empty() && header.is_none() && name.eq_ignore_ascii_case(wanted) {
            header = std::str::from_utf8(value).ok().map(str::trim);
        } else if name.eq_ignore_ascii_case("cookie")
            && let Some(name) = canary.rule.cookie.as_deref()
            && cookie.is_none()
        {
            cookie = std::str::from_utf8(value).ok().and_then(|v| ingress_core::cookie_value(v, name));
        }
    }
    let roll = |total: u32| rand::Rng::gen_range(&mut rand::thread_rng(), 1..=total);
    if canary.chooses(header, cookie, roll) { canary.backend } else { route.backend }
}

/// A rewritten path as it goes upstream: escaped as nginx escapes a changed `$uri`
/// (`ngx_escape_uri`: controls, space, `#`, `%`, `?`, DEL and non-ASCII), with the client's
/// query string after it.
fn with_query(path: &[u8], target: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len() + target.len());
    // A target without a leading `/` (`$1` with a group that does not start with one) would
    // not be a path at all upstream.
    if path.first() != Some(&b'/') {
        out.push('/');
    }
    for &b in path {
        if b <= b' ' || matches!(b, b'#' | b'%' | b'?' | 0x7f..) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(b));
        }
    }
    if let Some(at) = target.find('?') {
        out.push_str(&target[at..]);
    }
    out
}

/// The attempts of one request: which endpoints were tried, and how many tries are left.
#[derive(Debug)]
pub(crate) struct Attempts {
    /// Endpoints this request failed to connect to; not chosen again.
    tried: Vec<SocketAddr>,
    made: usize,
    max: usize,
    /// The status the last failure would give, if no endpoint is left to try.
    failure: Option<u16>,
    /// The endpoint of the attempt in progress (or of the last one).
    current: Option<SocketAddr>,
    /// How long attempts may go on (`proxy-next-upstream-timeout`), from the first.
    budget: Option<std::time::Duration>,
    first: Option<std::time::Instant>,
    /// How endpoints are chosen ([`balance`]).
    choice: balance::Choice,
    /// The affinity cookie of the last pick, when it chose a new endpoint for the session.
    cookie: Option<String>,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Try again (on the next endpoint, or on a new connection to the same one).
    Retry,
    /// The request ends with this status (0: the client is gone, nothing to send).
    Fail(u16),
}

/// What is known about a failed exchange, to decide whether it can be sent again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange {
    /// The connection came from the pool (it may have been closed by the upstream meanwhile).
    pub(crate) reused: bool,
    /// The method is idempotent.
    pub(crate) idempotent: bool,
    /// The body read so far can be sent again.
    pub(crate) replayable: bool,
    /// Part of the response already went to the client.
    pub(crate) committed: bool,
}

impl Attempts {
    /// No attempt yet; at most `limits.max_attempts`.
    pub(crate) fn new(limits: &RouteLimits) -> Self {
        Self {
            tried: Vec::new(),
            made: 0,
            max: limits.max_attempts,
            failure: None,
            current: None,
            budget: limits.next_upstream_timeout,
            first: None,
            choice: balance::Choice::RoundRobin,
            cookie: None,
        }
    }

    /// The same, choosing endpoints by `choice` (the route's balancing).
    pub(crate) fn choosing(self, choice: balance::Choice) -> Self {
        Self { choice, ..self }
    }

    /// The `Set-Cookie` value of the affinity cookie, when the session got a new endpoint.
    pub(crate) fn set_cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// Whether attempts' latencies feed the EWMA balancer ([`balance::Ewma::observe`]).
    pub(crate) fn measures_latency(&self) -> bool {
        matches!(self.choice, balance::Choice::Ewma)
    }

    /// Phase 2: the endpoint of the next attempt, chosen by `selector` among those not tried;
    /// `Err(status)` when none is left (`503`, or the status of the last failure).
    pub(crate) fn next(
        &mut self,
        selector: &dyn Selector,
        backend: &Backend,
        state: &State,
    ) -> Result<SocketAddr, u16> {
        if let (Some(budget), Some(first)) = (self.budget, self.first)
            && first.elapsed() >= budget
        {
            return Err(self.failure.unwrap_or(503));
        }
        if self.budget.is_some() && self.first.is_none() {
            self.first = Some(std::time::Instant::now());
        }
        let endpoints = backend.endpoints();
        let rotate = || selector.select(backend, &endpoints, &self.tried);
        let retry = self.made > 0;
        let picked =
            balance::pick(&self.choice, backend, &endpoints, &self.tried, retry, &state.ewma, rotate);
        let Some((endpoint, cookie)) = picked else {
            return Err(self.failure.unwrap_or(503));
        };
        if cookie.is_some() {
            self.cookie = cookie;
        }
        self.made += 1;
        self.current = Some(endpoint.addr);
        Ok(endpoint.addr)
    }

    /// The endpoint of the current (or last) attempt, for the access log.
    pub(crate) fn upstream(&self) -> Option<SocketAddr> {
        self.current
    }

    /// Phase 4a: connecting failed. Nothing reached the endpoint, so the next endpoint may be
    /// tried for any method (ingress-nginx's `proxy_next_upstream error timeout`), within the
    /// attempt budget.
    pub(crate) fn connect_failed(&mut self, e: &Error) -> AfterFailure {
        if let Some(addr) = self.current {
            self.tried.push(addr);
        }
        let status = answer::status_for(e.etype(), &pingora::ErrorSource::Upstream);
        self.failure = Some(status);
        if connect_failure_is_retryable(e.etype()) && self.made < self.max {
            AfterFailure::Retry
        } else {
            AfterFailure::Fail(status)
        }
    }

    /// Phase 4b: an exchange failed on an open connection. Only a pooled connection the
    /// upstream had closed is worth another try (it may close idle ones before we do), and only
    /// for an idempotent request whose body can be sent again and of which the client has seen
    /// nothing; a timeout is not retried (the upstream may still be working on the request).
    pub(crate) fn exchange_failed(&mut self, e: &Error, exchange: Exchange) -> AfterFailure {
        let retry = exchange.reused
            && !exchange.committed
            && exchange.idempotent
            && exchange.replayable
            && stale_connection_is_retryable(e)
            && self.made < self.max;
        if retry {
            return AfterFailure::Retry;
        }
        AfterFailure::Fail(if exchange.committed { 0 } else { answer::status_for(e.etype(), e.esource()) })
    }
}

/// Whether `method` may be sent again after a failure (RFC 9110 section 9.2.2).
pub(crate) fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::upstream::RoundRobin;
    use ingress_core::{BackendRef, BodyLimit, EndpointSet, EndpointStore, Ingress, Origin, TableBuilder};
    use pingora::ErrorType;

    fn table(endpoints: &[SocketAddr], policy: RoutePolicy) -> RouteTable {
        let b = BackendRef::new("ns", "svc", 80);
        let mut store = EndpointStore::new();
        store.set(&b, EndpointSet::new(endpoints.iter().copied()));
        let mut builder = TableBuilder::new();
        builder.ingress(
            Ingress::new(Origin::new("ns", "i"))
                .rule(
                    ingress_core::HostRule::host("h.example.com")
                        .path(ingress_core::PathRule::prefix("/admin", b.clone())),
                )
                .policy(policy),
        );
        builder.build(&mut store).table
    }

    /// A `GET target` on `h.example.com` from no known address.
    fn facts(target: &str) -> Facts<'_> {
        Facts {
            host: "h.example.com",
            target,
            length: None,
            tls: false,
            scheme: "http",
            forwarded_host: "h.example.com",
            port: "80",
            method: "GET",
            origin: None,
            client: None,
            authorization: None,
            client_cert: None,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn admission_answers_in_order() {
        let settings = RuntimeSettings { max_body_size: Some(10), ..RuntimeSettings::default() };
        let t = table(&[addr(1)], RoutePolicy::default());
        let facts = |target, length| Facts { length, ..facts(target) };
        let a = admit(Some(&t), &settings, &State::default(), &facts("/%61dmin//x?q", Some(10)));
        assert_eq!((a.answer, &*a.path), (None, "/admin/x"), "normalized path routes");
        assert!(a.route.is_some());
        assert_eq!(
            admit(Some(&t), &settings, &State::default(), &facts("/admin", Some(11))).answer,
            Some(413)
        );
        assert_eq!(admit(Some(&t), &settings, &State::default(), &facts("/other", None)).answer, Some(404));
        assert_eq!(
            admit(Some(&t), &settings, &State::default(), &facts("/../admin", None)).answer,
            Some(400)
        );
        assert_eq!(admit(None, &settings, &State::default(), &facts("/admin", None)).answer, Some(404));
        // The route's own limit wins over the settings'.
        let t =
            table(&[], RoutePolicy { max_body_size: Some(BodyLimit::Unlimited), ..RoutePolicy::default() });
        let a = admit(Some(&t), &settings, &State::default(), &facts("/admin", Some(1 << 30)));
        assert_eq!(a.answer, Some(503), "no endpoints (the body is within the route's limit)");
    }

    #[test]
    fn satisfy_any_lets_one_passing_check_through_as_nginx() {
        let users = std::collections::BTreeMap::from([("u".to_owned(), "{PLAIN}p".to_owned())]);
        let basic = Some(std::sync::Arc::new(ingress_core::BasicAuth { realm: "r".into(), users }));
        let external = std::sync::Arc::new(ingress_core::ExternalAuth::new("http://auth/").unwrap());
        let outside = ingress_core::parse_cidrs("10.0.0.0/8").unwrap();
        let credentials = format!("Basic {}", openssl::base64::encode_block(b"u:p"));
        let answer = |any: bool, ranges: bool, basic_on: bool, external_on: bool, creds: Option<&str>| {
            let policy = RoutePolicy {
                satisfy_any: any,
                allow_ranges: ranges.then(|| outside.clone().into()),
                basic_auth: basic.clone().filter(|_| basic_on),
                external_auth: Some(external.clone()).filter(|_| external_on),
                ..RoutePolicy::default()
            };
            let t = table(&[addr(1)], policy);
            let facts =
                Facts { client: Some("127.0.0.1".parse().unwrap()), authorization: creds, ..facts("/admin") };
            let settings = RuntimeSettings::default();
            let a = admit(Some(&t), &settings, &State::default(), &facts);
            (a.answer, a.auth.map(|p| p.prior))
        };
        let good = Some(credentials.as_str());
        // satisfy all: the first refusal stands, and external auth is asked only after the others pass.
        assert_eq!(answer(false, true, true, true, good), (Some(403), None));
        assert_eq!(answer(false, false, true, true, None), (Some(401), None));
        assert_eq!(answer(false, false, true, true, good), (None, Some(None)));
        // satisfy any: a passing check is enough, the others are not asked.
        assert_eq!(answer(true, true, true, true, good), (None, None));
        // All that apply refuse: 401 over 403, after external auth has its say.
        assert_eq!(answer(true, true, true, true, None), (None, Some(Some(401))));
        assert_eq!(answer(true, true, true, false, None), (Some(401), None));
        assert_eq!(answer(true, true, false, false, None), (Some(403), None));
        assert_eq!(answer(true, false, false, true, None), (None, Some(None)));
    }

    /// A route with cookie affinity and a canary at weight 0 (`legacy`: the canary keeps no
    /// sessions), and the cookie that pins a session to `backend`.
    fn sticky_canary(legacy: bool) -> (RouteTable, BackendRef, BackendRef) {
        let (main, canary) = (BackendRef::new("ns", "main", 80), BackendRef::new("ns", "canary", 80));
        let mut store = EndpointStore::new();
        store.set(&main, EndpointSet::new([addr(1)]));
        store.set(&canary, EndpointSet::new([addr(2)]));
        let affinity = ingress_core::Affinity {
            persistent: false,
            change_on_failure: false,
            cookie: ingress_core::SessionCookie::default(),
        };
        let balance = ingress_core::Balance { load_balance: None, hash_by: None, affinity: Some(affinity) };
        let mut builder = TableBuilder::new();
        let rule = |b: &BackendRef| {
            ingress_core::HostRule::host("h.example.com").path(ingress_core::PathRule::prefix("/", b.clone()))
        };
        builder.ingress(
            Ingress::new(Origin::new("ns", "main"))
                .rule(rule(&main))
                .policy(RoutePolicy { balance: Some(Box::new(balance)), ..RoutePolicy::default() }),
        );
        let split = ingress_core::CanaryRule {
            weight: 0,
            weight_total: 100,
            legacy_affinity: legacy,
            ..ingress_core::CanaryRule::default()
        };
        builder.ingress(Ingress::new(Origin::new("ns", "canary")).rule(rule(&canary)).as_canary(split));
        (builder.build(&mut store).table, main, canary)
    }

    /// The backend a request with the affinity cookie pinned to `pinned` goes to.
    fn pinned_to<'t>(route: &Route<'t>, pinned: &BackendRef) -> &'t Backend {
        let value = format!("INGRESSCOOKIE=1.2.3|{}", balance::backend_key(pinned));
        let lines = [("cookie", value.as_bytes())];
        backend_for(route, lines.iter().copied())
    }

    #[test]
    fn an_affinity_cookie_keeps_a_session_on_its_side_of_a_canary_pair() {
        let (t, main, canary) = sticky_canary(false);
        let route = t.lookup("h.example.com", "/").unwrap();
        assert_eq!(pinned_to(&route, &canary).key(), &canary);
        assert_eq!(pinned_to(&route, &main).key(), &main);
        assert_eq!(backend_for(&route, std::iter::empty()).key(), &main, "weight 0: the main side");
    }

    #[test]
    fn a_legacy_canary_keeps_no_sessions() {
        let (t, main, canary) = sticky_canary(true);
        let route = t.lookup("h.example.com", "/").unwrap();
        assert_eq!(pinned_to(&route, &canary).key(), &main, "not pinned to the canary");
        assert_eq!(pinned_to(&route, &main).key(), &main);
    }

    #[test]
    fn a_fallback_takes_requests_while_the_route_has_no_endpoint() {
        let (down, spare) = (BackendRef::new("ns", "down", 80), BackendRef::new("ns", "spare", 80));
        let mut store = EndpointStore::new();
        store.set(&spare, EndpointSet::new([addr(9)]));
        let mut builder = TableBuilder::new();
        builder.ingress(
            Ingress::new(Origin::new("ns", "i"))
                .rule(
                    ingress_core::HostRule::host("h.example.com")
                        .path(ingress_core::PathRule::prefix("/", down)),
                )
                .fallback(spare.clone()),
        );
        let t = builder.build(&mut store).table;
        let facts = facts("/x");
        let settings = RuntimeSettings::default();
        let a = admit(Some(&t), &settings, &State::default(), &facts);
        assert_eq!(a.answer, None, "the fallback has an endpoint");
        let route = a.route.unwrap();
        assert_eq!(backend_for(&route, std::iter::empty()).key(), &spare);
    }

    #[test]
    fn attempts_follow_the_retry_rules() {
        let t = table(&[addr(1), addr(2)], RoutePolicy::default());
        let route = t.lookup("h.example.com", "/admin").unwrap();
        let limits = RuntimeSettings::default().limits_for(route.policy);
        let mut attempts = Attempts::new(&limits);
        let first = attempts.next(&RoundRobin, route.backend, &State::default()).unwrap();
        let refused = Error::explain(ErrorType::ConnectRefused, "no");
        assert_eq!(attempts.connect_failed(&refused), AfterFailure::Retry);
        let second = attempts.next(&RoundRobin, route.backend, &State::default()).unwrap();
        assert_ne!(first, second, "a failed endpoint is not chosen again");
        assert_eq!(attempts.connect_failed(&refused), AfterFailure::Retry);
        assert_eq!(
            attempts.next(&RoundRobin, route.backend, &State::default()),
            Err(502),
            "every endpoint failed"
        );

        // proxy-next-upstream-timeout: once spent, the last failure is the answer, however
        // many endpoints are left.
        let spent = RouteLimits { next_upstream_timeout: Some(std::time::Duration::ZERO), ..limits };
        let mut attempts = Attempts::new(&spent);
        attempts.next(&RoundRobin, route.backend, &State::default()).unwrap();
        assert_eq!(attempts.connect_failed(&refused), AfterFailure::Retry);
        assert_eq!(
            attempts.next(&RoundRobin, route.backend, &State::default()),
            Err(502),
            "no time left to retry"
        );

        let mut attempts = Attempts::new(&limits);
        attempts.next(&RoundRobin, route.backend, &State::default()).unwrap();
        let stale = Error::explain(ErrorType::ConnectionClosed, "closed").into_up();
        let ok = Exchange { reused: true, idempotent: true, replayable: true, committed: false };
        assert_eq!(attempts.exchange_failed(&stale, ok), AfterFailure::Retry);
        for no in [
            Exchange { reused: false, ..ok },
            Exchange { idempotent: false, ..ok },
            Exchange { replayable: false, ..ok },
        ] {
            assert_eq!(attempts.exchange_failed(&stale, no), AfterFailure::Fail(502));
        }
        assert_eq!(
            attempts.exchange_failed(&stale, Exchange { committed: true, ..ok }),
            AfterFailure::Fail(0)
        );
        let slow = Error::explain(ErrorType::ReadTimedout, "slow").into_up();
        assert_eq!(attempts.exchange_failed(&slow, ok), AfterFailure::Fail(504));
    }
}
