//! Helpers for the binary's tests: free ports, a local echo backend, a controller child
//! process, and a plain HTTP/1.1 + TLS client. Traffic stays on 127.0.0.1.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod manifests;
pub mod streams;
pub mod webhook;

#[path = "../../../ingress-proxy/tests/proxy/ports.rs"]
mod ports;
pub use ports::free_port;

/// A local backend answering every request with `200` and body `backend=<name> path=<path>`.
/// Runs on its own thread until the process ends.
pub fn echo_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, name));
        }
    });
    addr
}

/// A local backend that answers `GET /status/<code>` with that status (any other path with
/// `200`), the headers `Server: upstream/1.0` and `X-Powered-By: test`, and the request head
/// it received as the body (so tests see the headers that went upstream), prefixed by
/// `backend=<name>`. `GET /redirect` is a `302` to `http://internal.svc/next`, with the same
/// URL in `Refresh` and two cookies for `internal.svc`, path `/app/…`.
pub fn head_echo_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Some(head) = read_head(&mut stream) else { return };
                let head = head.split("\r\n\r\n").next().unwrap_or_default();
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let status: u16 =
                    path.strip_prefix("/status/").and_then(|c| c.get(..3)?.parse().ok()).unwrap_or(200);
                let body = format!("backend={name}\r\n{head}\r\n");
                let (status, extra) = if path == "/redirect" {
                    (
                        302,
                        "Location: http://internal.svc/next\r\nRefresh: 0; url=http://internal.svc/next\r\n\
                         Set-Cookie: sid=1; Domain=internal.svc; Path=/app/x; HttpOnly\r\n\
                         Set-Cookie: pref=2; Path=/other\r\n",
                    )
                } else {
                    (status, "")
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nServer: upstream/1.0\r\nX-Powered-By: test\r\n{extra}Content-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(resp.as_bytes());
            });
        }
    });
    addr
}

/// A custom error backend as ingress-nginx's examples write one: it answers with the status
/// its `X-Code` header names (200 without one), `Content-Type: text/html`, and a body that
/// reports the ingress-nginx headers it got:
/// `error <code> uri=<X-Original-URI> ns=<X-Namespace> ingress=<X-Ingress-Name>
/// service=<X-Service-Name>:<X-Service-Port> format=<X-Format> id=<X-Request-ID> path=<path>`.
pub fn custom_error_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Some(head) = read_head(&mut stream) else { return };
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let code = header("x-code");
                let status: u16 = code.parse().unwrap_or(200);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let method = head.split_whitespace().next().unwrap_or("").to_owned();
                let body = format!(
                    "error {code} uri={} ns={} ingress={} service={}:{} format={} id={} path={path}",
                    header("x-original-uri"),
                    header("x-namespace"),
                    header("x-ingress-name"),
                    header("x-service-name"),
                    header("x-service-port"),
                    header("x-format"),
                    header("x-request-id"),
                );
                let body = if method == "HEAD" { String::new() } else { body };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(resp.as_bytes());
            });
        }
    });
    addr
}

/// A backend that reads a request head and answers only after `delay`.
pub fn slow_backend(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(delay);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow");
            });
        }
    });
    addr
}

/// [`echo_backend`] on `ip` and `port` (another loopback address than 127.0.0.1 lets several
/// endpoints of one EndpointSlice share a port), answering each request after `delay`; `None`
/// when the address is taken.
pub fn echo_backend_on(ip: [u8; 4], port: u16, name: &'static str, delay: Duration) -> Option<SocketAddr> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::from(ip), port)).ok()?;
    let addr = listener.local_addr().ok()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_after(stream, name, delay));
        }
    });
    Some(addr)
}

fn serve(stream: TcpStream, name: &str) {
    serve_after(stream, name, Duration::ZERO);
}

fn serve_after(mut stream: TcpStream, name: &str, delay: Duration) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Read one request head, then drain a Content-Length body, then answer; keep-alive.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + len);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        std::thread::sleep(delay);
        let body = format!("backend={name} path={path}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// One request head from `stream` (what came with it too), or `None` if it closes first.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while find(&buf, b"\r\n\r\n").is_none() {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&buf).to_string())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn request(port: u16, host: &str, method: &str, path: &str, body: &[u8]) -> Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    // A server may answer (e.g. 413) before reading the whole body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

/// `GET` shorthand.
pub fn get(port: u16, host: &str, path: &str) -> Result<Response> {
    request(port, host, "GET", path, b"")
}

fn parse(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { bail!("no HTTP response: {text:?}") };
    let status = head.split_whitespace().nth(1).context("no status")?.parse()?;
    Ok(Response { status, body: body.to_owned() })
}

/// The subject CN of the certificate the server presents for `sni` (`None`: no SNI).
pub fn served_cn(port: u16, sni: Option<&str>) -> Result<String> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    // Built once: `SslConnector::builder` loads the system CA bundle, tens of milliseconds that
    // would otherwise count in every propagation poll.
    static CONNECTOR: std::sync::OnceLock<SslConnector> = std::sync::OnceLock::new();
    let connector = match CONNECTOR.get() {
        Some(c) => c,
        None => {
            let mut b = SslConnector::builder(SslMethod::tls_client())?;
            b.set_verify(SslVerifyMode::NONE);
            CONNECTOR.get_or_init(|| b.build())
        }
    };
    let mut config = connector.configure()?;
    config.set_use_server_name_indication(sni.is_some());
    config.set_verify_hostname(false);
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    let tls =
        config.connect(sni.unwrap_or("ignored"), tcp).map_err(|e| anyhow::anyhow!("TLS handshake: {e}"))?;
    let cert = tls.ssl().peer_certificate().context("no peer certificate")?;
    let cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .context("no CN")?
        .data()
        .to_string()?;
    Ok(cn)
}

/// `curl -k https://<host>:<port><path>`: one HTTP/1.1 GET over TLS (SNI `host`, any
/// certificate); the status, the raw head (lower-case) and the body.
pub fn get_tls(port: u16, host: &str, path: &str) -> Result<(Response, String)> {
    get_tls_as(port, host, path, None)
}

/// [`get_tls`], presenting `identity` (a client certificate and its key) when asked.
pub fn get_tls_as(
    port: u16,
    host: &str,
    path: &str,
    identity: Option<(&openssl::x509::X509, &openssl::pkey::PKey<openssl::pkey::Private>)>,
) -> Result<(Response, String)> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    b.set_verify(SslVerifyMode::NONE);
    if let Some((certificate, key)) = identity {
        b.set_certificate(certificate)?;
        b.set_private_key(key)?;
    }
    let connector = b.build();
    let mut config = connector.configure()?;
    config.set_verify_hostname(false);
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = config.connect(host, tcp).map_err(|e| anyhow::anyhow!("TLS handshake: {e}"))?;
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let head =
        String::from_utf8_lossy(&raw).split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase();
    Ok((parse(&raw)?, head))
}

/// Polls `f` until it returns `Ok(true)` or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        match f() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("condition not met within {timeout:?} (last error: {last:?})")
}

/// The controller binary running as a child process; killed on drop.
pub struct Controller {
    pub child: Child,
    pub http: u16,
    pub https: u16,
    pub admin: u16,
    pub log: std::path::PathBuf,
    /// Where stdout (the access log) goes.
    pub access: std::path::PathBuf,
}

impl Controller {
    /// Starts `ingress-controller` with `args` plus listener flags on free ports, and waits until
    /// `/readyz` answers 200.
    pub fn start(args: &[&str], log_dir: &Path) -> Result<Self> {
        let (http, https, admin) = (free_port(), free_port(), free_port());
        let log = log_dir.join(format!("controller-{http}.log"));
        let access = log_dir.join(format!("access-{http}.log"));
        // FERRY_CONTROLLER_BIN runs another build (the release binary, for the latency figure).
        let bin = std::env::var("FERRY_CONTROLLER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ingress-controller").into());
        let child = Command::new(bin)
            .args(args)
            .args(if args.contains(&"--bind-address") { &[][..] } else { &["--bind-address", "127.0.0.1"] })
            .args(["--threads", "2"])
            .args(["--http-port", &http.to_string(), "--https-port", &https.to_string()])
            .args(["--admin-port", &admin.to_string()])
            .stdout(std::fs::File::create(&access)?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut c = Self { child, http, https, admin, log, access };
        let ready = eventually(Duration::from_secs(60), || {
            if let Some(status) = c.child.try_wait()? {
                bail!("controller exited early ({status}): {}", c.logs());
            }
            Ok(get(c.admin, "localhost", "/readyz").map(|r| r.status == 200).unwrap_or(false))
        });
        if let Err(e) = ready {
            bail!("{e}\ncontroller log:\n{}", c.logs());
        }
        Ok(c)
    }

    /// What the controller wrote to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The access log lines written so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.access).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > Duration::from_secs(40) {
                bail!("controller did not exit within 40 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo manifests (the seed's Ingresses and TLS Secret) with Services and EndpointSlices
/// pointing at the given local backends.
pub fn demo_manifests(dir: &Path, demo: SocketAddr, webapp: SocketAddr) -> Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    for f in ["ingress-demo.yaml", "ingress-tls.yaml", "webapp-tls-secret.yaml"] {
        std::fs::copy(src.join(f), dir.join(f))?;
    }
    std::fs::write(dir.join("services.yaml"), services(&[("demo-app", 80, demo), ("webapp", 8080, webapp)]))?;
    Ok(())
}

/// Services (port named `http`) and v1 EndpointSlices to local backends.
pub fn services(list: &[(&str, u16, SocketAddr)]) -> String {
    let mut out = String::new();
    for (name, port, backend) in list {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ports: [{{name: http, port: {port}, targetPort: {port}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-local\n  namespace: default\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
            backend.port(),
            backend.ip()
        ));
    }
    out
}
pub mod cluster;
