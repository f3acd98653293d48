//! The access log as tests see it: every test proxy writes to one captured buffer.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use ingress_proxy::AccessLog;

/// The captured access log, and the sink writing to it.
fn capture() -> &'static (Arc<Mutex<Vec<u8>>>, AccessLog) {
    static CAPTURE: OnceLock<(Arc<Mutex<Vec<u8>>>, AccessLog)> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let log = AccessLog::to_writer(Capture(buf.clone()), ingress_proxy::QUEUE_LINES).unwrap();
        (buf, log)
    })
}

/// The sink test proxies write their access log to.
pub(crate) fn sink() -> AccessLog {
    capture().1.clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every line written so far.
pub(crate) fn text() -> String {
    String::from_utf8_lossy(&capture().0.lock().unwrap()).into_owned()
}

/// The JSON line of the request with `X-Request-ID: id`.
pub(crate) fn log_line_for(id: &str) -> Option<serde_json::Value> {
    text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["request_id"] == id)
}

/// The line (of any format) that contains `marker`, waiting up to 2 s for it.
pub(crate) async fn line_with(marker: &str) -> Option<String> {
    for _ in 0..100 {
        if let Some(line) = text().lines().find(|l| l.contains(marker)) {
            return Some(line.to_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}
