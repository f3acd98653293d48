//! Backends and clients for the TCP and UDP services' tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Result, bail};

/// A TCP backend: greets each connection with `hello from NAME\n`, then echoes what it reads.
pub fn tcp_echo(name: &'static str) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = conn.write_all(format!("hello from {name}\n").as_bytes());
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A UDP backend answering each datagram with `NAME:` and the datagram.
pub fn udp_echo(name: &'static str) -> Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let addr = socket.local_addr()?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from);
        }
    });
    Ok(addr)
}

/// A connection to a local port, with a read timeout.
pub fn connect(port: u16) -> Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// Reads until `want` bytes arrived (or the connection ends).
pub fn read_n(s: &mut TcpStream, want: usize) -> Result<Vec<u8>> {
    let mut got = vec![0u8; want];
    let mut at = 0;
    while at < want {
        let n = s.read(&mut got[at..])?;
        if n == 0 {
            got.truncate(at);
            break;
        }
        at += n;
    }
    Ok(got)
}

/// One exchange on a TCP service port: the greeting, then `ping` echoed.
pub fn ping(port: u16) -> Result<()> {
    let mut s = connect(port)?;
    let greeting = read_n(&mut s, "hello from a\n".len())?;
    if greeting != b"hello from a\n" {
        bail!("greeting {:?}", String::from_utf8_lossy(&greeting));
    }
    s.write_all(b"ping")?;
    let echoed = read_n(&mut s, 4)?;
    if echoed != b"ping" {
        bail!("echo {:?}", String::from_utf8_lossy(&echoed));
    }
    Ok(())
}
