//! TCP and UDP services (`--tcp-services-configmap`, `--udp-services-configmap`) in standalone
//! mode, with real traffic: echo backends, the PROXY protocol both ways, listeners opened and
//! closed live while another port carries load, and the entries refused as ingress-nginx
//! refuses them, reported by `check`. Then the PROXY protocol on the HTTP and HTTPS ports
//! (`use-proxy-protocol`).

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use support::manifests::{CLASS, config_map, ingress};
use support::streams::{connect, ping, read_n, tcp_echo, udp_echo};
use support::{Controller, eventually, free_port, head_echo_backend, services};

/// Service `echo` (TCP port 9000 named `echo`, UDP port 5353 named `dns`) and its endpoints.
fn echo_service(tcp: SocketAddr, udp: SocketAddr) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: echo, namespace: default}}\nspec:\n  ports:\n  - {{name: echo, port: 9000, protocol: TCP}}\n  - {{name: dns, port: 5353, protocol: UDP}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: echo-tcp\n  namespace: default\n  labels: {{kubernetes.io/service-name: echo}}\naddressType: IPv4\nports: [{{name: echo, port: {}, protocol: TCP}}]\nendpoints: [{{addresses: [\"127.0.0.1\"]}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: echo-udp\n  namespace: default\n  labels: {{kubernetes.io/service-name: echo}}\naddressType: IPv4\nports: [{{name: dns, port: {}, protocol: UDP}}]\nendpoints: [{{addresses: [\"127.0.0.1\"]}}]\n",
        tcp.port(),
        udp.port()
    )
}

/// A PROXY protocol v2 header for a TCP4 connection from `from` to `to`.
fn v2_header(from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    for addr in [from, to] {
        if let std::net::IpAddr::V4(ip) = addr.ip() {
            h.extend_from_slice(&ip.octets());
        }
    }
    h.extend_from_slice(&from.port().to_be_bytes());
    h.extend_from_slice(&to.port().to_be_bytes());
    h
}

struct Ports {
    plain: u16,
    from_client: u16,
    to_upstream: u16,
    both: u16,
    udp: u16,
}

fn tcp_services(p: &Ports, extra: &[(String, &str)]) -> String {
    let mut entries = vec![
        (p.plain.to_string(), "default/echo:9000"),
        (p.from_client.to_string(), "default/echo:echo:PROXY"),
        (p.to_upstream.to_string(), "default/echo:9000::PROXY"),
        (p.both.to_string(), "default/echo:9000:PROXY:PROXY"),
    ];
    entries.extend(extra.iter().cloned());
    let refs: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    config_map("tcp-services", &refs)
}

fn write(dir: &Path, file: &str, text: &str) -> Result<()> {
    // Written whole, then renamed, so the polling reader never sees half a file.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(file))?;
    Ok(())
}

#[test]
fn tcp_and_udp_services_forward_with_the_proxy_protocol_and_change_live() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let (tcp, udp) = (tcp_echo("a")?, udp_echo("u")?);
    let p = Ports {
        plain: free_port(),
        from_client: free_port(),
        to_upstream: free_port(),
        both: free_port(),
        udp: free_port(),
    };
    std::fs::write(dir.join("services.yaml"), echo_service(tcp, udp))?;
    write(&dir, "tcp.yaml", &tcp_services(&p, &[]))?;
    std::fs::write(
        dir.join("udp.yaml"),
        config_map("udp-services", &[(&p.udp.to_string(), "default/echo:dns")]),
    )?;
    let session_format =
        "stream> $protocol $remote_addr:$remote_port $status $upstream_addr [$proxy_upstream_name]";
    std::fs::write(
        dir.join("cfg.yaml"),
        config_map("cfg", &[("proxy-protocol-header-timeout", "1s"), ("log-format-stream", session_format)]),
    )?;
    let dir_s = dir.to_str().context("path")?.to_owned();
    let c = Controller::start(
        &[
            "--manifests",
            &dir_s,
            "--configmap",
            "default/cfg",
            "--tcp-services-configmap",
            "default/tcp-services",
            "--udp-services-configmap",
            "default/udp-services",
        ],
        tmp.path(),
    )?;
    eventually(Duration::from_secs(10), || Ok(ping(p.plain).is_ok())).with_context(|| c.logs())?;

    // PROXY protocol from the client, v1 and v2: the backend is reached, the access log names
    // the client the header names.
    let mut s = connect(p.from_client)?;
    s.write_all(format!("PROXY TCP4 203.0.113.9 127.0.0.1 4444 {}\r\nping", p.from_client).as_bytes())?;
    assert_eq!(read_n(&mut s, 17)?, b"hello from a\nping");
    drop(s);
    let mut s = connect(p.from_client)?;
    let proxy_addr: SocketAddr = format!("127.0.0.1:{}", p.from_client).parse()?;
    let mut opening = v2_header("198.51.100.7:5555".parse()?, proxy_addr);
    opening.extend_from_slice(b"ping");
    s.write_all(&opening)?;
    assert_eq!(read_n(&mut s, 17)?, b"hello from a\nping");
    drop(s);
    // A connection without a header, and one that sends nothing, never reach the backend.
    let mut s = connect(p.from_client)?;
    s.write_all(b"GET / HTTP/1.1\r\n\r\n")?;
    assert_eq!(read_n(&mut s, 13)?, b"", "a connection without a PROXY header is closed");
    let mut silent = connect(p.from_client)?;
    let started = Instant::now();
    assert_eq!(read_n(&mut silent, 13)?, b"", "a silent client is closed");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(5), "{waited:?}");

    // PROXY protocol to the upstream: the echo returns the header the proxy sent.
    let mut s = connect(p.to_upstream)?;
    let local = s.local_addr()?;
    let header = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n", local.port(), p.to_upstream);
    s.write_all(b"ping")?;
    let got = read_n(&mut s, 13 + header.len() + 4)?;
    assert_eq!(String::from_utf8_lossy(&got), format!("hello from a\n{header}ping"));
    // Both: the client's header in, the client it names out.
    let mut s = connect(p.both)?;
    let mut opening = v2_header("198.51.100.7:5555".parse()?, "127.0.0.1:1".parse()?);
    opening.extend_from_slice(b"ping");
    s.write_all(&opening)?;
    let header = format!("PROXY TCP4 198.51.100.7 127.0.0.1 5555 {}\r\n", p.both);
    let got = read_n(&mut s, 13 + header.len() + 4)?;
    assert_eq!(String::from_utf8_lossy(&got), format!("hello from a\n{header}ping"));
    drop(s);

    // UDP: replies go back to the client that asked, from the service port.
    let clients = [UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?];
    for (i, client) in clients.iter().enumerate() {
        client.set_read_timeout(Some(Duration::from_secs(5)))?;
        client.connect(("127.0.0.1", p.udp))?;
        client.send(format!("q{i}").as_bytes())?;
    }
    for (i, client) in clients.iter().enumerate() {
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf)?;
        assert_eq!(&buf[..n], format!("u:q{i}").as_bytes());
        // The flow got its reply and ended; the next datagram opens a new one.
        client.send(b"again")?;
        let n = client.recv(&mut buf)?;
        assert_eq!(&buf[..n], b"u:again");
    }

    // Live changes under load: a client keeps exchanging on the plain port while a port is
    // added, used, held open, and removed.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, done, failures, port) = (stop.clone(), done.clone(), failures.clone(), p.plain);
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                match ping(port) {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let added = free_port();
    write(&dir, "tcp.yaml", &tcp_services(&p, &[(added.to_string(), "default/echo:9000")]))?;
    eventually(Duration::from_secs(10), || Ok(ping(added).is_ok()))?;
    let mut held = connect(added)?;
    assert_eq!(read_n(&mut held, 13)?, b"hello from a\n");
    write(&dir, "tcp.yaml", &tcp_services(&p, &[]))?;
    eventually(Duration::from_secs(10), || Ok(TcpStream::connect(("127.0.0.1", added)).is_err()))?;
    // The connection opened before the port went away is drained, not cut.
    held.write_all(b"still here")?;
    assert_eq!(read_n(&mut held, 10)?, b"still here");
    stop.store(true, Ordering::Relaxed);
    load.join().map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    assert_eq!(failures.load(Ordering::Relaxed), 0, "exchanges on the untouched port failed");
    assert!(done.load(Ordering::Relaxed) > 0);

    // Sessions are logged in `log-format-stream`, with the client the PROXY header named.
    let access = c.access_log();
    assert!(access.contains("stream> TCP 203.0.113.9:4444 200 127.0.0.1:"), "{access}");
    assert!(access.contains("stream> TCP 198.51.100.7:5555 200 127.0.0.1:"), "{access}");
    assert!(access.contains("stream> UDP 127.0.0.1:"), "{access}");
    assert!(access.lines().all(|l| l.starts_with("stream> ") || l.starts_with('{')), "{access}");
    Ok(())
}

#[test]
fn check_reports_each_stream_entry_and_explain_names_the_service() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    std::fs::write(dir.join("services.yaml"), echo_service("127.0.0.1:7".parse()?, "127.0.0.1:8".parse()?))?;
    std::fs::write(
        dir.join("tcp.yaml"),
        config_map(
            "tcp-services",
            &[
                ("9000", "default/echo:9000"),
                ("9001", "default/echo:echo:PROXY:PROXY"),
                ("80", "default/echo:9000"),
                ("9002", "default/missing:9000"),
                ("9003", "default/echo:5353"),
                ("9004", "echo:9000"),
                ("http", "default/echo:9000"),
                ("9005", "default/echo"),
                ("9006", "default/echo:9000:proxy:NOPE"),
            ],
        ),
    )?;
    std::fs::write(dir.join("udp.yaml"), config_map("udp-services", &[("53", "default/echo:5353:PROXY")]))?;
    let bin = env!("CARGO_BIN_EXE_ingress-controller");
    let flags = [
        "--manifests",
        dir.to_str().context("path")?,
        "--tcp-services-configmap",
        "default/tcp-services",
        "--udp-services-configmap",
        "default/udp-services",
    ];
    let out = std::process::Command::new(bin).arg("check").args(flags).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for line in [
        "stream    TCP :9000 → default/echo:9000 (1 ready: 127.0.0.1:7)",
        "stream    TCP :9001 → default/echo:9000 (1 ready: 127.0.0.1:7); PROXY protocol from the client, PROXY protocol to the upstream",
        "stream    TCP :9006 → default/echo:9000 (1 ready: 127.0.0.1:7); PROXY protocol from the client",
        "stream    UDP :53 → default/echo:5353 (1 ready: 127.0.0.1:8)",
        "rejected  ConfigMap default/tcp-services data[80]: port 80 cannot be used for TCP services: it is reserved for the controller",
        "rejected  ConfigMap default/tcp-services data[9002]: service default/missing not found",
        "rejected  ConfigMap default/tcp-services data[9003]: service default/echo has no TCP port `5353`",
        "rejected  ConfigMap default/tcp-services data[9004]: invalid Service reference `echo:9000`: `echo` is not `namespace/name`",
        "rejected  ConfigMap default/tcp-services data[http]: `http` is not a valid TCP port number",
        "rejected  ConfigMap default/tcp-services data[9005]: invalid Service reference `default/echo`: expected `namespace/service:port`",
        "warning   ConfigMap default/tcp-services data[9006]: `NOPE` ignored: only `PROXY` is understood in fields 3 and 4",
        "warning   ConfigMap default/udp-services data[53]: `PROXY` ignored: the PROXY protocol applies to TCP services only",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }

    let explain = |url: &str| -> Result<(bool, String, String)> {
        let out = std::process::Command::new(bin).arg("explain").args(flags).arg(url).output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (ok, text, _) = explain("tcp://:9001")?;
    assert!(ok && text.starts_with("TCP :9001 → default/echo:9000"), "{text}");
    let (ok, _, err) = explain("udp://:9001")?;
    assert!(!ok && err.contains("no UDP service on port 9001"), "{err}");
    Ok(())
}

/// One request over a connection that opens with `preamble`, plain or over TLS (the PROXY
/// header goes before the handshake); the status and body, or `None` when the proxy closed
/// the connection without an answer.
fn through_proxy(port: u16, preamble: &[u8], tls: bool, host: &str) -> Result<Option<(u16, String)>> {
    let mut tcp = connect(port)?;
    tcp.write_all(preamble)?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    if tls {
        use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        b.set_verify(SslVerifyMode::NONE);
        let mut config = b.build().configure()?;
        config.set_verify_hostname(false);
        let Ok(mut s) = config.connect(host, tcp) else { return Ok(None) };
        s.write_all(request.as_bytes())?;
        let _ = std::io::Read::read_to_end(&mut s, &mut raw);
    } else {
        // The proxy may close before reading the request: a failed write is a closed connection.
        if tcp.write_all(request.as_bytes()).is_err() {
            return Ok(None);
        }
        let _ = std::io::Read::read_to_end(&mut tcp, &mut raw);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return Ok(None) };
    Ok(Some((head.split_whitespace().nth(1).unwrap_or("0").parse()?, body.to_owned())))
}

#[test]
fn http_and_https_ports_take_the_client_from_the_proxy_protocol() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, head_echo_backend("echo"))]))?;
    let ingresses = [
        ingress("open", "open.test", "echo", &[]),
        ingress("ranged", "ranged.test", "echo", &[("whitelist-source-range", "203.0.113.0/24")]),
    ];
    std::fs::write(dir.join("ingresses.yaml"), ingresses.concat())?;
    let cfg =
        |on: &str| config_map("cfg", &[("use-proxy-protocol", on), ("proxy-protocol-header-timeout", "1s")]);
    write(&dir, "cfg.yaml", &cfg("true"))?;
    let dir_s = dir.to_str().context("path")?.to_owned();
    let c = Controller::start(
        &["--manifests", &dir_s, "--ingress-class", "nginx", "--configmap", "default/cfg"],
        tmp.path(),
    )?;

    for (port, tls) in [(c.http, false), (c.https, true)] {
        let v1 = b"PROXY TCP4 203.0.113.9 192.0.2.1 4444 8443\r\n";
        let (status, body) = through_proxy(port, v1, tls, "open.test")?.context("no answer")?;
        assert_eq!(status, 200, "{body}");
        let body = body.to_ascii_lowercase();
        assert!(body.contains("x-real-ip: 203.0.113.9"), "{body}");
        assert!(body.contains("x-forwarded-for: 203.0.113.9"), "{body}");
        assert!(body.contains("x-forwarded-port: 8443"), "{body}");
        // Source ranges see the same client: v2 from inside the range, v1 from outside.
        let inside = v2_header("203.0.113.7:5555".parse()?, "192.0.2.1:443".parse()?);
        assert_eq!(through_proxy(port, &inside, tls, "ranged.test")?.map(|r| r.0), Some(200));
        let outside = "PROXY TCP4 198.51.100.7 192.0.2.1 5555 443\r\n";
        assert_eq!(through_proxy(port, outside.as_bytes(), tls, "ranged.test")?.map(|r| r.0), Some(403));
        // No header, or a broken one: closed without an answer.
        assert_eq!(through_proxy(port, b"", tls, "open.test")?, None, "tls={tls}");
        assert_eq!(through_proxy(port, b"PROXY TCP4 nonsense\r\n", tls, "open.test")?, None);
    }
    let access = c.access_log();
    assert!(access.contains("203.0.113.9"), "the access log names the client: {access}");

    // Turned off live: the next connections are plain again.
    write(&dir, "cfg.yaml", &cfg("false"))?;
    eventually(Duration::from_secs(10), || {
        Ok(through_proxy(c.http, b"", false, "open.test")?.is_some_and(|r| r.0 == 200))
    })?;
    let (status, _) = get_tls_status(c.https)?;
    assert_eq!(status, 200);
    Ok(())
}

fn get_tls_status(port: u16) -> Result<(u16, String)> {
    through_proxy(port, b"", true, "open.test")?.context("no answer over TLS")
}
