//! Where access log lines go: a bounded queue drained by a thread of its own, so writing the
//! log never slows a request. When the writer falls behind (a slow pipe, a stalled log
//! collector) and the queue is full, the line is dropped and counted
//! (`ferry_access_log_dropped_total`), never waited for.
//!
//! What a line says is [`format`]'s business: Ferry's JSON object by default, or an nginx
//! `log_format` ([`LogTemplate`]).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub(crate) mod clock;
pub(crate) mod format;
pub(crate) mod json;

pub use format::{LogEscape, LogFormat, LogFormatError, LogTemplate, UPSTREAMINFO};

/// Lines queued at most before new ones are dropped: seconds of a busy proxy's log.
pub const QUEUE_LINES: usize = 16_384;

/// Bytes queued at most: lines can be long (a template may log every header), and a stalled
/// writer must not let them take the proxy's memory.
pub const QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// A sink for access log lines: cheap to clone, shared by every worker thread.
#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<Vec<u8>>,
    counts: Arc<Counts>,
}

/// Lines accepted and written so far, to tell when the queue is drained.
#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    /// Bytes queued and not yet written.
    bytes: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("dropped", &self.dropped()).finish_non_exhaustive()
    }
}

impl AccessLog {
    /// The process's standard output (one writer thread for the whole process).
    pub fn stdout() -> std::io::Result<Self> {
        static STDOUT: OnceLock<AccessLog> = OnceLock::new();
        if let Some(log) = STDOUT.get() {
            return Ok(log.clone());
        }
        let log = Self::to_writer(std::io::stdout(), QUEUE_LINES)?;
        Ok(STDOUT.get_or_init(|| log).clone())
    }

    /// Lines written to `writer` by a thread of their own; at most `capacity` wait for it.
    pub fn to_writer(writer: impl Write + Send + 'static, capacity: usize) -> std::io::Result<Self> {
        let (queue, lines) = std::sync::mpsc::sync_channel(capacity.max(1));
        let counts = Arc::new(Counts::default());
        let written = Arc::clone(&counts);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || drain(&lines, writer, &written))?;
        Ok(Self { queue, counts })
    }

    /// Queues `line` (which ends with its newline); false when it was dropped because the
    /// queue is full.
    pub(crate) fn write(&self, line: Vec<u8>) -> bool {
        let len = line.len();
        let queued = self.counts.bytes.fetch_add(len, Ordering::Relaxed);
        let sent = queued.saturating_add(len) <= QUEUE_BYTES && self.queue.try_send(line).is_ok();
        if sent {
            self.counts.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counts.bytes.fetch_sub(len, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Lines dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Waits up to `wait` for every queued line to be written; false if some were not.
    pub fn flush(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let queued = self.counts.queued.load(Ordering::Acquire);
            if self.counts.written.load(Ordering::Acquire) >= queued {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// This machine's name (nginx's `$hostname`): the pod's name in Kubernetes.
pub(crate) fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|n| n.trim().to_owned())
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default()
    })
}

/// The writer thread: lines as they come, flushed whenever the queue is empty.
fn drain(lines: &Receiver<Vec<u8>>, writer: impl Write, counts: &Counts) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, writer);
    while let Ok(line) = lines.recv() {
        // A write that fails (stdout closed) loses the line; the proxy goes on.
        let _ = out.write_all(&line);
        counts.bytes.fetch_sub(line.len(), Ordering::Relaxed);
        let mut done = 1;
        while let Ok(line) = lines.try_recv() {
            let _ = out.write_all(&line);
            counts.bytes.fetch_sub(line.len(), Ordering::Relaxed);
            done += 1;
        }
        let _ = out.flush();
        counts.written.fetch_add(done, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar, Mutex};

    use super::*;

    /// A writer that blocks until released, then records what it got.
    #[derive(Clone, Default)]
    struct Stalled {
        open: Arc<(Mutex<bool>, Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let (lock, cvar) = &*self.open;
            let mut open = lock.lock().map_err(|_| std::io::ErrorKind::Other)?;
            while !*open {
                open = cvar.wait(open).map_err(|_| std::io::ErrorKind::Other)?;
            }
            self.got.lock().map_err(|_| std::io::ErrorKind::Other)?.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_past_the_byte_budget_are_dropped() -> std::io::Result<()> {
        let stalled = Stalled::default();
        let log = AccessLog::to_writer(stalled, 1000)?;
        assert!(!log.write(vec![b'x'; QUEUE_BYTES + 1]), "one line over the budget");
        assert_eq!(log.dropped(), 1);
        assert!(log.write(b"small\n".to_vec()), "the budget is given back");
        Ok(())
    }

    #[test]
    fn a_stalled_writer_never_blocks_a_request_and_drops_are_counted() -> std::io::Result<()> {
        let stalled = Stalled::default();
        let log = AccessLog::to_writer(stalled.clone(), 8)?;
        let started = Instant::now();
        // Lines larger than the writer's buffer, so the first one already meets the stall.
        let padding = "x".repeat(70 * 1024);
        let accepted = (0..100).filter(|i| log.write(format!("line {i} {padding}\n").into_bytes())).count();
        assert!(started.elapsed() < Duration::from_secs(1), "writing never waits for the writer");
        // The thread holds one line while it blocks: the queue's 8, plus that one.
        assert!((8..=9).contains(&accepted), "{accepted} lines accepted");
        assert_eq!(log.dropped(), 100 - accepted as u64);
        assert!(!log.flush(Duration::from_millis(20)), "nothing written while the writer is stalled");

        let (lock, cvar) = &*stalled.open;
        *lock.lock().map_err(|_| std::io::ErrorKind::Other)? = true;
        cvar.notify_all();
        assert!(log.flush(Duration::from_secs(5)), "the queued lines are written once it moves");
        let got =
            String::from_utf8_lossy(&stalled.got.lock().map_err(|_| std::io::ErrorKind::Other)?).into_owned();
        assert_eq!(got.lines().count(), accepted);
        assert!(got.starts_with("line 0 "), "in order: {}", &got[..got.len().min(20)]);
        assert!(log.write(b"after\n".to_vec()), "room again");
        assert!(log.flush(Duration::from_secs(5)));
        Ok(())
    }
}
