//! Chunked bodies on the fast path ([`super`]): relayed byte for byte, followed just closely
//! enough to find where they end and to refuse framing a client could read differently.

/// Follows the framing of a chunked body relayed unchanged, to find where it ends.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    state: State,
    size: u64,
    digits: u8,
    /// Bytes of the current extension or trailer section, bounded.
    extra: usize,
    /// Data bytes seen (what the access log counts, without the framing).
    pub(crate) payload: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    LastLf,
    Done,
}

/// Extension and trailer bytes tolerated (nginx refuses far smaller chunk-size lines).
const MAX_EXTRA: usize = 16 * 1024;

impl Chunks {
    /// Whether the last chunk and the trailer section have been seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Follows `data`; returns how many of its bytes belong to the body (all of them, unless
    /// the body ends inside `data`).
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < data.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = (data.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                self.size -= take as u64;
                self.payload += take as u64;
                i += take;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = data[i];
            let expect =
                |want: u8, next: State| if b == want { Ok(next) } else { Err("malformed chunk framing") };
            self.state = match self.state {
                State::Size => match (b as char).to_digit(16) {
                    Some(d) if self.digits < 15 => {
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                        State::Size
                    }
                    Some(_) => return Err("chunk size too large"),
                    None if self.digits == 0 => return Err("malformed chunk size"),
                    None if b == b';' || b == b' ' || b == b'\t' => State::Extension,
                    None => expect(b'\r', State::SizeLf)?,
                },
                State::Extension if b == b'\r' => State::SizeLf,
                State::Extension => self.more(b, State::Extension)?,
                State::SizeLf => {
                    expect(b'\n', State::Data)?;
                    self.digits = 0;
                    self.extra = 0;
                    if self.size == 0 { State::TrailerStart } else { State::Data }
                }
                State::Data | State::Done => self.state,
                State::DataCr => expect(b'\r', State::DataLf)?,
                State::DataLf => expect(b'\n', State::Size)?,
                State::TrailerStart | State::TrailerLine if b != b'\r' => self.more(b, State::TrailerLine)?,
                State::TrailerStart => State::LastLf,
                State::TrailerLine => State::TrailerLf,
                State::TrailerLf => expect(b'\n', State::TrailerStart)?,
                State::LastLf => expect(b'\n', State::Done)?,
            };
            i += 1;
        }
        Ok(i)
    }

    /// Takes one more extension or trailer byte: text only (no bare LF, no control bytes, as
    /// a lenient client might end a line there and read what follows as a response), and
    /// boundedly many.
    fn more(&mut self, b: u8, next: State) -> Result<State, &'static str> {
        self.extra += 1;
        if !(b == b'\t' || (b >= 0x20 && b != 0x7f)) {
            Err("control byte in chunk extension or trailers")
        } else if self.extra > MAX_EXTRA {
            Err("chunk extension or trailers too long")
        } else {
            Ok(next)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunks_find_the_end_of_the_body_in_any_split() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut chunks = Chunks::default();
            let first = chunks.feed(&body[..split]).unwrap();
            assert_eq!(first, split.min(end));
            let second = chunks.feed(&body[split.min(end)..]).unwrap();
            assert_eq!(first + second, end, "split at {split}");
            assert!(chunks.is_done());
            assert_eq!(chunks.payload, 21, "payload bytes, framing not counted");
        }
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"5\nhello",
            b"ffffffffffffffff0\r\n",
            // Bare LF or control bytes where a lenient client could end a line.
            b"5;x\nhello\r\n",
            b"0\r\n\nHTTP/1.1 200 OK\r\n\r\n",
            b"0\r\nX-T: a\x00b\r\n\r\n",
        ] {
            assert!(Chunks::default().feed(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
