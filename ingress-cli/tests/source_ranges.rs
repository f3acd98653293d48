//! Source ranges on real client addresses: the controller listens on `[::]` (IPv4 and IPv6)
//! and each request comes from its own loopback address, 127.0.0.x or `::1`, so the proxy sees
//! the address the connection really comes from (no forwarding headers involved).

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use support::manifests::{CLASS, ingress, write_ingresses};
use support::{Controller, echo_backend, services};

/// The status of `GET /` on `host`, over a connection from `from` to the proxy's HTTP port.
fn status_from(c: &Controller, from: IpAddr, host: &str) -> Result<u16> {
    let to = SocketAddr::new(if from.is_ipv6() { "::1".parse()? } else { "127.0.0.1".parse()? }, c.http);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let stream = runtime.block_on(async {
        let socket =
            if from.is_ipv6() { tokio::net::TcpSocket::new_v6()? } else { tokio::net::TcpSocket::new_v4()? };
        socket.bind(SocketAddr::new(from, 0))?;
        socket.connect(to).await
    })?;
    let mut stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    Ok(raw.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

#[test]
fn source_ranges_by_the_address_a_connection_comes_from() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(dir.join("services.yaml"), services(&[("echo", 80, echo_backend("echo"))]))?;
    write_ingresses(
        &dir,
        &[
            ingress("two", "two.test", "echo", &[("whitelist-source-range", "127.0.0.2/32")]),
            ingress(
                "most",
                "most.test",
                "echo",
                &[("whitelist-source-range", "127.0.0.0/8, ::1/128"), ("denylist-source-range", "127.0.0.3")],
            ),
            ingress("six", "six.test", "echo", &[("whitelist-source-range", "::1")]),
            ingress(
                "any",
                "any.test",
                "echo",
                &[
                    ("whitelist-source-range", "127.0.0.4"),
                    ("satisfy", "any"),
                    ("auth-type", "basic"),
                    ("auth-secret", "none"),
                ],
            ),
        ],
    )?;
    let dir_s = dir.to_str().unwrap_or_default().to_owned();
    let c = Controller::start(
        &["--manifests", &dir_s, "--ingress-class", "nginx", "--bind-address", "::"],
        tmp.path(),
    )?;
    let ip = |s: &str| -> IpAddr { s.parse().unwrap_or(IpAddr::from([127, 0, 0, 1])) };
    for (host, from, status) in [
        ("two.test", "127.0.0.2", 200),
        ("two.test", "127.0.0.1", 403),
        ("two.test", "::1", 403),
        ("most.test", "127.0.0.1", 200),
        ("most.test", "127.0.0.5", 200),
        ("most.test", "127.0.0.3", 403),
        ("most.test", "::1", 200),
        ("six.test", "::1", 200),
        ("six.test", "127.0.0.1", 403),
    ] {
        assert_eq!(status_from(&c, ip(from), host)?, status, "{host} from {from}");
    }
    // An access restriction that cannot be applied (a missing auth-secret) denies the Ingress,
    // even under `satisfy: any` and from an address its range admits.
    assert_eq!(status_from(&c, ip("127.0.0.4"), "any.test")?, 503);
    Ok(())
}
