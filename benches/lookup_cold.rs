//! Route lookup with cold caches: for 100 and 100k routes, lookups of requests spread over
//! every host, timed in batches of 64 right after the CPU caches were flushed (a 64 MiB
//! buffer written between batches; the requests' own bytes then read again, as a proxy has
//! them hot), and the same requests in a warm sweep. Prints ns per
//! lookup (p50 and p99 of the cold batches) and the 100k/100 ratio; then, for scale, what one
//! load costs when it depends on the one before and lands at a random place in 256 MiB (a
//! cache miss to memory, as each step of a cold lookup is: the hash table, the host's block,
//! its paths, the route), and the cold lookup at 100k routes in such loads. Last, the same
//! dependent load over working sets from 1 to 256 MiB, in 4 KiB and in 2 MiB pages: where this
//! machine's cache levels end, and what one load that leaves them costs at best (no design of
//! the table can make a lookup that reads one such line cost less).
//!
//! `LOOKUP_ONLY=<hosts>:<lookups>` does only that many warm-sweep lookups on that table (and
//! prints nothing), for a cache-miss count against a run of 0 lookups (`perf stat`, or
//! cachegrind where the machine has no hardware counters): `benches/lookup-cold.sh` does both.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use ferry_benches::{PATHS_PER_HOST, build, hits};
use ingress_core::EndpointStore;

/// The allocator the `ingress-controller` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 64;
const BATCHES: usize = 2_000;
const FLUSH_BYTES: usize = 64 << 20;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Memory for [`dependent_load_ns`], mapped fresh from the OS (no page of it used before, so
/// its page size is the one asked for), 2 MiB aligned, unmapped on drop.
struct Mapped {
    base: *mut libc::c_void,
    len: usize,
    words: *mut u32,
    n: usize,
}

impl Mapped {
    const HUGE: usize = 2 << 20;

    /// `n` words in 2 MiB pages (transparent huge pages, asked for with `madvise`) or in 4 KiB
    /// pages; `None` if the OS refused the mapping.
    #[allow(unsafe_code)]
    fn new(n: usize, huge: bool) -> Option<Self> {
        let len = n * std::mem::size_of::<u32>() + Self::HUGE;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let offset = (Self::HUGE - base as usize % Self::HUGE) % Self::HUGE;
        let advice = if huge { libc::MADV_HUGEPAGE } else { libc::MADV_NOHUGEPAGE };
        // SAFETY: the range is the mapping made above. Where the kernel has no transparent
        // huge pages, the advice fails, the pages stay 4 KiB and the two columns agree.
        unsafe { libc::madvise(base, len, advice) };
        // SAFETY: `offset + 4n` bytes fit in `len`; the pointer is 4-byte aligned (the mapping
        // is page aligned, the offset a multiple of 2 MiB).
        let words = unsafe { base.cast::<u8>().add(offset).cast::<u32>() };
        Some(Self { base, len, words, n })
    }

    #[allow(unsafe_code)]
    fn slice(&mut self) -> &mut [u32] {
        // SAFETY: `n` words from `words` lie in the mapping, which lives as long as `self`;
        // anonymous memory starts zeroed, so every word is initialised.
        unsafe { std::slice::from_raw_parts_mut(self.words, self.n) }
    }
}

impl Drop for Mapped {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Nanoseconds per load of a chain of `loads` dependent loads through a random single cycle
/// over `bytes` of memory (Sattolo's shuffle), in 2 MiB pages if `huge`: each load's address
/// comes from the one before, so none can start early. Over more memory than the caches hold,
/// almost every load misses every cache level (and, in 4 KiB pages, the TLB).
fn dependent_load_ns(bytes: usize, loads: usize, huge: bool) -> f64 {
    let n = bytes / std::mem::size_of::<u32>();
    let Some(mut memory) = Mapped::new(n, huge) else { return f64::NAN };
    let next = memory.slice();
    for (i, word) in next.iter_mut().enumerate() {
        *word = i as u32;
    }
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        next.swap(i, (x % i as u64) as usize);
    }
    let mut at = 0u32;
    let started = Instant::now();
    for _ in 0..loads {
        at = next[at as usize];
    }
    black_box(at);
    started.elapsed().as_nanos() as f64 / loads as f64
}

fn sweep(hosts: usize, lookups: usize) {
    let table = build(hosts, &mut EndpointStore::new());
    let requests = hits(hosts, 100_000);
    for k in 0..lookups {
        let (h, p) = &requests[k % requests.len()];
        black_box(table.lookup(black_box(h), black_box(p)));
    }
}

fn main() {
    if let Ok(only) = std::env::var("LOOKUP_ONLY") {
        let (hosts, lookups) = only.split_once(':').unwrap();
        sweep(hosts.parse().unwrap(), lookups.parse().unwrap());
        return;
    }
    // Under `cargo test` (no `--bench`): a smoke run, small and short.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (sizes, batches, flush_bytes) =
        if smoke { ([10, 100], 10, 1 << 20) } else { ([10, 10_000], BATCHES, FLUSH_BYTES) };
    let mut flush = vec![0u8; flush_bytes];
    println!("{:>8} {:>16} {:>16} {:>16}", "routes", "cold p50 ns", "cold p99 ns", "warm sweep ns");
    let mut cold_p50 = Vec::new();
    for hosts in sizes {
        let table = build(hosts, &mut EndpointStore::new());
        let requests = hits(hosts, BATCH * batches);
        let mut per_lookup = Vec::with_capacity(BATCHES);
        for (b, batch) in requests.chunks(BATCH).enumerate() {
            // Evict the table from every cache level: write a buffer larger than the LLC.
            for i in (0..flush.len()).step_by(64) {
                flush[i] = flush[i].wrapping_add(b as u8);
            }
            black_box(&flush);
            // The request's own bytes are hot in a proxy (just read from the socket): only the
            // table is cold.
            let touched: usize =
                batch.iter().map(|(h, p)| h.bytes().chain(p.bytes()).map(usize::from).sum::<usize>()).sum();
            black_box(touched);
            let started = Instant::now();
            for (h, p) in batch {
                black_box(table.lookup(black_box(h), black_box(p)));
            }
            per_lookup.push(started.elapsed().as_nanos() as f64 / batch.len() as f64);
        }
        per_lookup.sort_by(f64::total_cmp);
        let started = Instant::now();
        for _ in 0..5 {
            for (h, p) in &requests {
                black_box(table.lookup(black_box(h), black_box(p)));
            }
        }
        let warm = started.elapsed().as_nanos() as f64 / (5 * requests.len()) as f64;
        let p50 = percentile(&per_lookup, 0.5);
        cold_p50.push(p50);
        println!(
            "{:>8} {:>16.1} {:>16.1} {:>16.1}",
            hosts * PATHS_PER_HOST,
            p50,
            percentile(&per_lookup, 0.99),
            warm
        );
    }
    println!(
        "cold flatness (p50 {} / p50 {} routes): {:.2}x",
        sizes[1] * PATHS_PER_HOST,
        sizes[0] * PATHS_PER_HOST,
        cold_p50[1] / cold_p50[0]
    );
    // The ladder first: its largest working set, where almost every load goes to memory, is
    // the scale for the cold lookup.
    let (ladder, loads): (&[usize], usize) =
        if smoke { (&[1, 4], 10_000) } else { (&[1, 4, 8, 16, 32, 256], 2_000_000) };
    let rungs: Vec<(usize, f64, f64)> = ladder
        .iter()
        .map(|&mib| {
            (mib, dependent_load_ns(mib << 20, loads, false), dependent_load_ns(mib << 20, loads, true))
        })
        .collect();
    let (mib, load, _) = rungs[rungs.len() - 1];
    println!(
        "one dependent load at a random place in {mib} MiB: {load:.1} ns; the cold lookup at {} routes costs {:.1} of them",
        sizes[1] * PATHS_PER_HOST,
        cold_p50[1] / load
    );
    println!("one dependent load at a random place in a working set, ns:");
    println!("{:>16} {:>16} {:>16}", "working set MiB", "4 KiB pages", "2 MiB pages");
    for (mib, small, huge) in rungs {
        println!("{mib:>16} {small:>16.1} {huge:>16.1}");
    }
}
