//! Free ports for tests, shared by this crate's proxy tests and `ingress-cli`'s tests (which
//! include this file by path).

/// A port on 127.0.0.1 that nothing listens on, handed out once per test process (Pingora
/// cannot report what port 0 became, so proxies are started on these; the binary's tests
/// start controllers on them).
///
/// Not `bind(0)`: a port the kernel picked and we released can be picked again at once, for
/// another test's listener or as the source port of any outgoing connection, so tests running
/// in parallel could share a port (a "refusing" endpoint that answers, a proxy whose requests
/// reach another test's proxy). Ports are taken from above the kernel's ephemeral range
/// (`ip_local_port_range`, 32768-60999 by default), which it never hands out by itself; each
/// process starts at its own offset so parallel test processes rarely meet, and a busy port
/// is skipped.
pub fn free_port() -> u16 {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};
    static RANGE: OnceLock<(u32, u32)> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let &(first, count) = RANGE.get_or_init(|| {
        let ephemeral_end = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u32>().ok())
            .unwrap_or(60_999);
        let first = (ephemeral_end + 1).clamp(1_024, 64_535);
        (first, 65_536 - first)
    });
    // Spread (Knuth's multiplicative hash): consecutive process ids, as two test binaries
    // started together get, would otherwise walk the same ports one step apart.
    let offset = std::process::id().wrapping_mul(2_654_435_761) % count;
    for _ in 0..count {
        let port = first + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % count;
        let port = u16::try_from(port).expect("ports are below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port from {first} up");
}
