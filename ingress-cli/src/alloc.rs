//! The process's allocator, mimalloc, and when the feed's threads give freed memory back to the
//! operating system.
//!
//! mimalloc returns freed memory to the OS ("purges" it) once it has been free for 10 ms, but
//! only when the thread that owns it later asks the allocator for a new page or collects. The
//! feed's threads work in bursts (the initial lists or manifest files and the first table, then
//! one change at a time) and then wait; the main thread reads the manifests at start-up and then
//! only waits for the proxy to stop. What a burst freed stayed resident: 5 MiB after start at
//! 10,000 Ingresses against the API server, 7 MiB in standalone mode, where it grew by another
//! 10–20 over the first edits (`benches/propagation.sh`, `benches/scale/run.sh`).
//!
//! So a feed thread collects its heap ([`collect`]: freed memory goes back, blocks other
//! threads freed come home) when it goes idle (tokio's `on_thread_park`, [`release`]) after a
//! configuration was installed ([`installed`]), at most once per [`QUIET`]; the main thread
//! collects once, before it starts waiting.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// mimalloc: the proxy and the table builder allocate many small, short-lived objects, where it
/// is faster than glibc's malloc (`benches/` measure with it too).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Configurations installed so far.
static INSTALLED: AtomicU64 = AtomicU64::new(0);

/// The least time between two collections on one thread: under a stream of changes (the churn
/// benchmark's 100 a second) a thread collects ten times a second, not after each. Collecting
/// after every install of `propagation.sh`'s 380 changes cost no latency there (all p99 4.03 ms)
/// and left 104.2 MiB after them, against 106.0 when a thread collected once a second.
const QUIET: Duration = Duration::from_millis(100);

thread_local! {
    /// The [`INSTALLED`] count this thread last collected at, and when.
    static COLLECTED: Cell<(u64, Option<Instant>)> = const { Cell::new((0, None)) };
}

/// Notes that a configuration was installed: the feed's threads collect when they next go
/// idle.
pub(crate) fn installed() {
    INSTALLED.fetch_add(1, Ordering::Relaxed);
}

/// Collects this thread's heap if a configuration was installed since its last collection and
/// that collection is [`QUIET`] old: for `on_thread_park` of the feed's runtime.
pub(crate) fn release() {
    let now = INSTALLED.load(Ordering::Relaxed);
    COLLECTED.with(|c| {
        let (seen, at) = c.get();
        if seen == now || at.is_some_and(|at| at.elapsed() < QUIET) {
            return;
        }
        collect();
        c.set((now, Some(Instant::now())));
    });
}

/// Collects this thread's heap: what is free goes back to the OS. About 0.1 ms for a feed
/// thread at 10,000 Ingresses.
// The one `unsafe` of the workspace (whose lint denies it everywhere else): mimalloc has no
// safe binding for this.
#[allow(unsafe_code)]
pub(crate) fn collect() {
    // SAFETY: `mi_collect` takes no pointer and touches only the calling thread's heap and
    // mimalloc's own thread-safe state; any thread may call it at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_collects_after_an_install_at_most_once_per_quiet_period() {
        // A test thread of its own: no earlier collection.
        let joined = std::thread::spawn(|| {
            installed();
            release();
            let (seen, at) = COLLECTED.get();
            assert_eq!(seen, INSTALLED.load(Ordering::Relaxed));
            assert!(at.is_some(), "collected");
            release();
            assert_eq!(COLLECTED.get(), (seen, at), "nothing installed since");
            installed();
            release();
            assert_eq!(COLLECTED.get(), (seen, at), "within the quiet period");
        })
        .join();
        assert!(joined.is_ok(), "the test thread's assertion above failed");
    }
}
