//! The pieces of the TCP service benchmark (`benches/stream/run.sh`):
//!
//! ```text
//! bench_stream proxy LISTEN_PORT UPSTREAM      # Ferry: one TCP service, LISTEN_PORT → UPSTREAM
//! bench_stream echo PORT                       # the upstream: echoes every byte
//! bench_stream load PORT CONNS SECONDS CHUNK   # CONNS connections, each writing CHUNK bytes and
//!                                              # reading them back, for SECONDS; prints MB/s
//! ```
//!
//! The proxy runs one worker thread on Pingora's runtime, access log off, mimalloc, as the
//! HTTP benchmark's. The load is bounded by its duration, and only ever reaches 127.0.0.1.
#![allow(clippy::print_stdout)] // the load's figure is its output

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ingress_core::{BackendRef, EndpointSet, EndpointStore, StreamProtocol, StreamService, TableBuilder};
use ingress_proxy::{ProxyConfig, ProxyHandle, ProxyServer, RuntimeSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        "proxy" => proxy(arg(1).parse()?, arg(2).parse()?),
        "echo" => runtime()?.block_on(echo(arg(1).parse()?)),
        "load" => {
            let (port, conns, seconds, chunk) =
                (arg(1).parse()?, arg(2).parse()?, arg(3).parse()?, arg(4).parse()?);
            runtime()?.block_on(load(port, conns, Duration::from_secs(seconds), chunk))
        }
        _ => Err("usage: bench_stream proxy|echo|load …".into()),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn proxy(port: u16, upstream: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let backend = BackendRef::new("bench", "upstream", 9000);
    let mut endpoints = EndpointStore::new();
    endpoints.set(&backend, EndpointSet::new([upstream]));
    let mut builder = TableBuilder::new();
    builder.stream(StreamService::new(StreamProtocol::Tcp, port, backend));
    let table = builder.build(&mut endpoints).table;
    let handle =
        ProxyHandle::with_settings(RuntimeSettings { access_log: false, ..RuntimeSettings::default() });
    handle.install(Arc::new(table));
    // The HTTP listener only places the stream ports on an address; it carries no traffic.
    let config = ProxyConfig {
        http_addr: Some(SocketAddr::from(([127, 0, 0, 1], port.wrapping_add(1000)))),
        https_addr: None,
        admin_addr: None,
        threads: 1,
        handle_signals: true,
        ..ProxyConfig::default()
    };
    ProxyServer::new(config, handle).start()?.wait();
    Ok(())
}

async fn echo(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (mut conn, _) = listener.accept().await?;
        conn.set_nodelay(true)?;
        tokio::spawn(async move {
            let (mut r, mut w) = conn.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

async fn load(
    port: u16,
    conns: usize,
    duration: Duration,
    chunk: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        conn.set_nodelay(true)?;
        let (bytes, stop) = (Arc::clone(&bytes), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let out = vec![b'x'; chunk];
            let mut back = vec![0u8; chunk];
            while !stop.load(Ordering::Relaxed) {
                if conn.write_all(&out).await.is_err() || conn.read_exact(&mut back).await.is_err() {
                    return false;
                }
                bytes.fetch_add(chunk as u64, Ordering::Relaxed);
            }
            true
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let took = started.elapsed();
    let total = bytes.load(Ordering::Relaxed);
    let mut failed = 0;
    for task in tasks {
        if !task.await.unwrap_or(false) {
            failed += 1;
        }
    }
    // Bytes through the proxy each way per second.
    println!("{:.1} {failed}", total as f64 / took.as_secs_f64() / 1e6);
    Ok(())
}
