//! Ferry's own access log line: one JSON object, shaped as `tracing`'s flattened JSON events
//! (`timestamp`, `level`, `message`, then the fields), which is what the access log was before
//! it had a writer of its own.

use std::fmt::Display;
use std::io::Write;

use super::clock::Stamp;
use super::format::escape_json;

/// One JSON object being written as a log line.
pub(crate) struct JsonLine {
    out: Vec<u8>,
}

impl JsonLine {
    /// An object opening with `timestamp` (`at`), `level` and `message`.
    pub(crate) fn new(at: &Stamp, message: &str) -> Self {
        let mut out = Vec::with_capacity(384);
        out.extend_from_slice(b"{\"timestamp\":\"");
        at.rfc3339(&mut out);
        out.extend_from_slice(b"\",\"level\":\"INFO\"");
        let mut line = Self { out };
        line.str("message", message);
        line
    }

    /// Adds a string field.
    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.out.push(b'"');
        escape_json(value.as_bytes(), &mut self.out);
        self.out.push(b'"');
        self
    }

    /// Adds a number field.
    pub(crate) fn num(&mut self, key: &str, value: impl Display) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    fn key(&mut self, key: &str) {
        self.out.extend_from_slice(b",\"");
        escape_json(key.as_bytes(), &mut self.out);
        self.out.extend_from_slice(b"\":");
    }

    /// The line, closed and ended.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"}\n");
        self.out
    }
}
