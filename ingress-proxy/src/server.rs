//! Starting and stopping the Pingora server that hosts the proxy.
//!
//! Pingora's `Server::run` blocks, creates its own runtimes and must not run inside a tokio
//! runtime, so [`ProxyServer::start`] runs it on a dedicated thread and returns a
//! [`RunningProxy`] to stop it. Pingora binds its listeners only once running and does not
//! report failures to bind, so `start` checks the addresses first and waits until every
//! listener accepts before returning.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::prelude::Server;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::GenBackgroundService;
use pingora::services::listening::Service;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::admin::{AdminApp, Role};
use crate::config::ProxyConfig;
use crate::h1::Front;
use crate::h2::H2;
use crate::metrics::Metrics;
use crate::pool::IdlePool;
use crate::sni::SniResolver;
use crate::stream::Streams;
use crate::tls::{ParsedCert, PreTls, fake_certificate, tls_settings};
use crate::upstream::{RoundRobin, Selector};
use crate::{Error, ProxyHandle, Result};

/// How long a draining server must have had no request in flight to count as done.
const DRAIN_SETTLE: Duration = Duration::from_millis(200);

/// How long [`ProxyServer::start`] waits for the listeners to accept.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy server, configured but not started.
///
/// # Examples
///
/// ```no_run
/// use ingress_proxy::{ProxyConfig, ProxyHandle, ProxyServer};
///
/// let handle = ProxyHandle::new();
/// let running = ProxyServer::new(ProxyConfig::default(), handle.clone()).start()?;
/// // … handle.install(table) whenever the cluster changes …
/// running.wait(); // until SIGTERM, then a graceful shutdown
/// # Ok::<(), ingress_proxy::Error>(())
/// ```
pub struct ProxyServer {
    config: ProxyConfig,
    handle: ProxyHandle,
    selector: Arc<dyn Selector>,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A started proxy. Dropping it stops the server without a grace period.
#[derive(Debug)]
pub struct RunningProxy {
    stop: watch::Sender<Option<Stop>>,
    thread: Option<JoinHandle<()>>,
    /// Set when a graceful stop begins (SIGTERM, [`RunningProxy::shutdown`]).
    draining: Arc<AtomicBool>,
    /// Requests and TCP service sessions in flight.
    in_flight: prometheus::IntGauge,
    /// Client connections open (idle keep-alive ones close when the stop begins).
    open: prometheus::IntGauge,
    /// Whose access log is flushed before returning.
    metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Graceful,
    Fast,
}

/// Ends Pingora's main loop on a signal (when configured) or on a [`RunningProxy`] request.
struct StopWatch {
    stop: watch::Receiver<Option<Stop>>,
    signals: bool,
    draining: Arc<AtomicBool>,
}

#[async_trait]
impl ShutdownSignalWatch for StopWatch {
    async fn recv(&self) -> ShutdownSignal {
        let mut stop = self.stop.clone();
        let requested = async move {
            match stop.wait_for(Option::is_some).await.map(|s| *s) {
                Ok(Some(Stop::Graceful)) => ShutdownSignal::GracefulTerminate,
                Ok(_) | Err(_) => ShutdownSignal::FastShutdown,
            }
        };
        if !self.signals {
            return requested.await;
        }
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            tracing::warn!("cannot watch SIGTERM/SIGINT; only RunningProxy::shutdown stops the server");
            return requested.await;
        };
        tokio::select! {
            s = requested => s,
            _ = term.recv() => {
                tracing::info!("SIGTERM: graceful shutdown, exiting once the requests in flight are done");
                self.draining.store(true, Ordering::Release);
                ShutdownSignal::GracefulTerminate
            }
            _ = int.recv() => { tracing::info!("SIGINT: fast shutdown"); ShutdownSignal::FastShutdown }
        }
    }
}

impl ProxyServer {
    /// A server that will serve `handle`'s snapshots with `config`, round-robin selection.
    pub fn new(config: ProxyConfig, handle: ProxyHandle) -> Self {
        Self { config, handle, selector: Arc::new(RoundRobin) }
    }

    /// Replaces the endpoint selector (round-robin by default).
    #[must_use]
    pub fn with_selector(mut self, selector: impl Selector) -> Self {
        self.selector = Arc::new(selector);
        self
    }

    /// Starts the server on its own thread and returns once every listener accepts.
    pub fn start(self) -> Result<RunningProxy> {
        let https = self.config.https_addr;
        // The TLS passthrough front's terminator is probed before the front that leads to it.
        let terminator = self.config.ssl_passthrough.filter(|_| https.is_some());
        let listeners: Vec<SocketAddr> = [
            self.config.http_addr,
            terminator,
            self.config.https_addr,
            self.config.admin_addr,
            self.config.status_addr,
            self.config.default_server_addr,
        ]
        .into_iter()
        .flatten()
        .collect();
        if listeners.is_empty() {
            return Err(Error::NoListener);
        }
        for addr in &listeners {
            // Pingora would only log a failed bind from inside its runtime; fail here instead.
            drop(TcpListener::bind(addr).map_err(|source| Error::Bind { addr: *addr, source })?);
        }
        let (server, metrics) = self.build()?;
        let (stop, stop_rx) = watch::channel(None);
        let signals = self.config.handle_signals;
        let draining = Arc::new(AtomicBool::new(false));
        let draining_flag = Arc::clone(&draining);
        let thread = std::thread::Builder::new()
            .name("ferry-pingora".into())
            .spawn(move || {
                let watch = StopWatch { stop: stop_rx, signals, draining: draining_flag };
                server.run(RunArgs { shutdown_signal: Box::new(watch) });
            })
            .map_err(Error::Thread)?;
        let in_flight = metrics.active_requests.clone();
        let open = metrics.active_connections.clone();
        let running = RunningProxy { stop, thread: Some(thread), draining, in_flight, open, metrics };
        wait_until_accepting(&listeners, https, terminator)?;
        Ok(running)
    }

    /// Builds the Pingora server: the proxy service (HTTP and HTTPS listeners) and the admin
    /// service.
    fn build(&self) -> Result<(Server, Arc<Metrics>)> {
        let conf = ServerConf {
            threads: self.config.threads.max(1),
            work_stealing: self.config.work_stealing,
            grace_period_seconds: Some(self.config.grace_period.as_secs()),
            graceful_shutdown_timeout_seconds: Some(self.config.shutdown_timeout.as_secs()),
            upstream_keepalive_pool_size: self.config.upstream_keepalive_pool_size,
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        let access_log = match &self.config.access_log {
            Some(log) => log.clone(),
            None => AccessLog::stdout().map_err(Error::Thread)?,
        };
        let metrics = Arc::new(Metrics::new(self.config.controller_labels.as_ref(), access_log)?);
        self.handle
            .shared
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::downgrade(&metrics));

        if self.config.http_addr.is_some() || self.config.https_addr.is_some() {
            let connectors = Arc::new(crate::upstream_tls::Connectors::default());
            let h2 = H2 {
                shared: Arc::clone(&self.handle.shared),
                selector: Arc::clone(&self.selector),
                metrics: Arc::clone(&metrics),
                connectors: Arc::clone(&connectors),
            };
            let front = Front {
                shared: Arc::clone(&self.handle.shared),
                selector: Arc::clone(&self.selector),
                metrics: Arc::clone(&metrics),
                connectors,
                pool: IdlePool::new(self.config.upstream_keepalive_pool_size),
                h2: Arc::new({
                    let mut app = pingora::proxy::http_proxy(&server.configuration, h2);
                    // Plain connections reach it only after the engine saw HTTP/2's preface.
                    let mut options = pingora::apps::HttpServerOptions::default();
                    options.h2c = true;
                    app.server_options = Some(options);
                    app
                }),
            };
            let app = Counted {
                inner: Arc::new(front),
                open: metrics.active_connections.clone(),
                metrics: Arc::clone(&metrics),
            };
            let mut proxy = Service::new("ferry proxy".to_owned(), app);
            if let Some(addr) = self.config.http_addr {
                proxy.add_tcp(&addr.to_string());
            }
            if let Some(addr) = self.config.https_addr {
                let fallback = Arc::new(self.default_certificate()?);
                let resolver = SniResolver::new(Arc::clone(&self.handle.shared), fallback);
                // With TLS passthrough, the front takes the public port and terminates here.
                let tls_addr = self.config.ssl_passthrough.unwrap_or(addr);
                proxy.add_tls_with_settings(&tls_addr.to_string(), None, tls_settings(Box::new(resolver))?);
                let behind_front = self.config.ssl_passthrough.map(|_| crate::passthrough::loopback());
                let pre_tls = PreTls { shared: Arc::clone(&self.handle.shared), behind_front };
                proxy.endpoints().set_pre_tls_callback(Arc::new(pre_tls));
            }
            server.add_service(proxy);
            if let (Some(listen), Some(terminator)) = (self.config.https_addr, self.config.ssl_passthrough) {
                let front = crate::passthrough::Front {
                    shared: Arc::clone(&self.handle.shared),
                    metrics: Arc::clone(&metrics),
                    listen,
                    terminator,
                };
                let mut service =
                    GenBackgroundService::new("ferry TLS passthrough".to_owned(), Arc::new(front));
                service.threads = Some(self.config.threads.max(1));
                server.add_service(service);
            }
        }
        // The TCP and UDP services bind the proxy's address, on the ports their tables name.
        if let Some(addr) = self.config.http_addr.or(self.config.https_addr) {
            let streams = Streams {
                shared: Arc::clone(&self.handle.shared),
                ip: addr.ip(),
                metrics: Arc::clone(&metrics),
            };
            let mut service = GenBackgroundService::new("ferry streams".to_owned(), Arc::new(streams));
            service.threads = Some(self.config.threads.max(1));
            server.add_service(service);
        }
        let listeners = [
            (self.config.admin_addr, Role::Admin, "ferry admin"),
            (self.config.status_addr, Role::Status, "ferry status"),
            (self.config.default_server_addr, Role::DefaultServer, "ferry default server"),
        ];
        for (addr, role, name) in listeners {
            let Some(addr) = addr else { continue };
            let app = AdminApp {
                handle: self.handle.clone(),
                metrics: Arc::clone(&metrics),
                role,
                health_path: self.config.health_check_path.clone(),
            };
            let mut service = Service::new(name.to_owned(), app);
            service.threads = Some(1);
            service.add_tcp(&addr.to_string());
            server.add_service(service);
        }
        Ok((server, metrics))
    }

    /// The configured default certificate, or a freshly generated fake one.
    fn default_certificate(&self) -> Result<ParsedCert> {
        match &self.config.default_certificate {
            Some(pem) => ParsedCert::from_pem(pem)
                .map_err(|(reason, source)| Error::DefaultCertificate { reason, source }),
            None => fake_certificate(),
        }
    }
}

/// Counts open client connections around Pingora's per-connection entry point (which serves
/// every request of a keep-alive or HTTP/2 connection before returning).
struct Counted<A> {
    inner: Arc<A>,
    open: prometheus::IntGauge,
    /// The metrics, whose `accepted` counts every connection.
    metrics: Arc<Metrics>,
}

/// Decrements the gauge however the connection ends.
struct OpenConnection(prometheus::IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Counted<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        self.open.inc();
        self.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        let _open = OpenConnection(self.open.clone());
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Polls until each address accepts a TCP connection.
fn wait_until_accepting(
    listeners: &[SocketAddr],
    tls: Option<SocketAddr>,
    terminator: Option<SocketAddr>,
) -> Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    for addr in listeners {
        let mut target = *addr;
        if target.ip().is_unspecified() {
            target.set_ip(if target.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        loop {
            match TcpStream::connect_timeout(&target, Duration::from_millis(200)) {
                Ok(mut probe) => {
                    // The TLS port gets a whole handshake, so the probe logs no handshake error;
                    // the passthrough terminator first gets the front's PROXY header.
                    if Some(*addr) == terminator {
                        let local = SocketAddr::from(([127, 0, 0, 1], target.port()));
                        let header = crate::proxy_protocol::v1(local, local);
                        let _ = std::io::Write::write_all(&mut probe, header.as_bytes());
                        handshake(probe);
                    } else if Some(*addr) == tls {
                        handshake(probe);
                    }
                    break;
                }
                Err(source) if Instant::now() >= deadline => return Err(Error::Bind { addr: *addr, source }),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    Ok(())
}

/// A TLS handshake with any certificate, then a clean close: the start-up probe of the HTTPS
/// listener.
fn handshake(probe: TcpStream) {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let _ = probe.set_read_timeout(Some(Duration::from_secs(2)));
    let Ok(mut builder) = SslConnector::builder(SslMethod::tls_client()) else { return };
    builder.set_verify(SslVerifyMode::NONE);
    if let Ok(mut tls) = builder.build().connect("localhost", probe) {
        let _ = tls.shutdown();
    }
}

impl RunningProxy {
    /// Graceful shutdown, as on SIGTERM: stop accepting, let in-flight requests finish within
    /// the grace period. Returns as soon as they are done (the grace period is a ceiling, not a
    /// wait; idle keep-alive connections are not waited for), or when the server has stopped.
    pub fn shutdown(mut self) {
        self.draining.store(true, Ordering::Release);
        self.stop.send_replace(Some(Stop::Graceful));
        self.join();
    }

    /// Stops at once, dropping requests in flight. Returns when the server has stopped.
    pub fn shutdown_now(mut self) {
        self.stop.send_replace(Some(Stop::Fast));
        self.join();
    }

    /// Blocks until the server stops (on SIGTERM or SIGINT when signals are handled); after
    /// SIGTERM, as soon as the requests in flight are done.
    pub fn wait(mut self) {
        self.join();
    }

    /// Waits for the server to stop, then up to a second for the access log's last lines.
    fn join(&mut self) {
        self.stopped();
        if !self.metrics.flush_access_log(Duration::from_secs(1)) {
            tracing::warn!("access log lines still queued at exit were lost");
        }
    }

    /// Waits for the server thread, or, once a graceful stop has begun, for the last request
    /// in flight to end and the last client connection to close (connections in a TLS
    /// handshake or a head count too; idle keep-alive ones are closed by the stop): Pingora
    /// then sleeps out its grace period whatever is left, and the thread is left to it (the
    /// process is about to exit; the listeners no longer accept).
    fn stopped(&mut self) {
        let mut idle_since: Option<Instant> = None;
        while let Some(thread) = self.thread.take() {
            if thread.is_finished() {
                if thread.join().is_err() {
                    tracing::error!("the proxy server thread panicked");
                }
                return;
            }
            self.thread = Some(thread);
            let quiet = self.in_flight.get() <= 0 && self.open.get() <= 0;
            if self.draining.load(Ordering::Acquire) && quiet {
                // Idle for a moment: a request accepted just before the stop has registered.
                if idle_since.get_or_insert_with(Instant::now).elapsed() >= DRAIN_SETTLE {
                    tracing::info!("no request in flight: stopped");
                    self.thread = None;
                    return;
                }
            } else {
                idle_since = None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop.send_if_modified(|s| {
                if s.is_none() {
                    *s = Some(Stop::Fast);
                    true
                } else {
                    false
                }
            });
        }
    }
}
