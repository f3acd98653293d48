//! Chunked bodies ([`super`]), read by RFC 9112 section 7.1's grammar and nothing looser.
//!
//! A request body is decoded (its extensions and trailers go no further) and sent upstream in
//! chunks of the proxy's own; a response body is relayed as sent once it passed the same
//! checks, or decoded for an HTTP/1.0 client. Strict, because a proxy and a server that read
//! chunk framing differently disagree on where a message ends: no bare LF, chunk extensions
//! only as `;name[=token|"quoted"]`, trailer lines only as `name: value`, and bounded sizes.

/// Follows the framing of a chunked body.
#[derive(Debug, Default, Clone)]
pub(crate) struct Chunks {
    state: State,
    size: u64,
    digits: u8,
    /// Bytes of the current chunk's extensions, or of the trailer section, so far.
    extra: usize,
    /// Data bytes seen (what the access log counts, without the framing).
    pub(crate) payload: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    /// Whitespace after the size: a `;` must follow.
    SizeSpace,
    /// After `;`: whitespace, then an extension name.
    ExtName,
    InExtName,
    /// Whitespace after an extension name: `=`, `;` or nothing else.
    ExtNameSpace,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValue,
    InExtToken,
    InQuoted,
    QuotedEscape,
    /// After an extension value: whitespace, `;` or the line end.
    AfterExtValue,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    LastLf,
    Done,
}

/// Extension bytes of one chunk, and bytes of the trailer section, tolerated.
const MAX_EXTRA: usize = 4096;

/// Hex digits of a chunk size (60 bits).
const MAX_DIGITS: u8 = 15;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Field-value and quoted-string text: visible ASCII, space, tab, and obs-text.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

impl Chunks {
    /// The data bytes seen plus those the current chunk still declares: what the body will
    /// have reached once that chunk is in (so a size limit can refuse a chunk at its size line).
    pub(crate) fn promised(&self) -> u64 {
        self.payload + if self.state == State::Data { self.size } else { 0 }
    }

    /// Whether the last chunk and the trailer section have been seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Follows `data`, calling `on_data` with each run of chunk data in it; returns how many
    /// of its bytes belong to the body (all of them, unless the body ends inside `data`).
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < data.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = (data.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                on_data(&data[i..i + take]);
                self.size -= take as u64;
                self.payload += take as u64;
                i += take;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.state = self.step(data[i])?;
            i += 1;
        }
        Ok(i)
    }

    /// The state after one framing byte.
    fn step(&mut self, b: u8) -> Result<State, &'static str> {
        use State::*;
        const BAD_EXT: &str = "malformed chunk extension";
        let expect =
            |want: u8, next: State| if b == want { Ok(next) } else { Err("malformed chunk framing") };
        if matches!(
            self.state,
            SizeSpace
                | ExtName
                | InExtName
                | ExtNameSpace
                | ExtValue
                | InExtToken
                | InQuoted
                | QuotedEscape
                | AfterExtValue
        ) {
            self.extra += 1;
            if self.extra > MAX_EXTRA {
                return Err("chunk extension too long");
            }
        }
        Ok(match self.state {
            Size => match (b as char).to_digit(16) {
                Some(_) if self.digits == MAX_DIGITS => return Err("chunk size too large"),
                Some(d) => {
                    self.size = self.size * 16 + u64::from(d);
                    self.digits += 1;
                    Size
                }
                None if self.digits == 0 => return Err("malformed chunk size"),
                None if b == b';' => ExtName,
                None if is_space(b) => SizeSpace,
                None => expect(b'\r', SizeLf)?,
            },
            SizeSpace if is_space(b) => SizeSpace,
            SizeSpace => expect(b';', ExtName).map_err(|_| BAD_EXT)?,
            ExtName if is_space(b) => ExtName,
            ExtName | InExtName if is_tchar(b) => InExtName,
            InExtName if is_space(b) => ExtNameSpace,
            InExtName | ExtNameSpace if b == b'=' => ExtValue,
            InExtName | ExtNameSpace if b == b';' => ExtName,
            InExtName => expect(b'\r', SizeLf).map_err(|_| BAD_EXT)?,
            ExtValue if is_space(b) => ExtValue,
            ExtValue if b == b'"' => InQuoted,
            ExtValue | InExtToken if is_tchar(b) => InExtToken,
            InExtToken | AfterExtValue if is_space(b) => AfterExtValue,
            InExtToken | AfterExtValue if b == b';' => ExtName,
            InExtToken | AfterExtValue => expect(b'\r', SizeLf).map_err(|_| BAD_EXT)?,
            InQuoted if b == b'"' => AfterExtValue,
            InQuoted if b == b'\\' => QuotedEscape,
            InQuoted | QuotedEscape if is_text(b) => InQuoted,
            SizeLf => {
                expect(b'\n', Data)?;
                self.digits = 0;
                self.extra = 0;
                if self.size == 0 { TrailerStart } else { Data }
            }
            DataCr => expect(b'\r', DataLf)?,
            DataLf => expect(b'\n', Size)?,
            TrailerStart if b == b'\r' => LastLf,
            TrailerStart | TrailerName if is_tchar(b) => self.trailer(TrailerName)?,
            TrailerName if b == b':' => self.trailer(TrailerValue)?,
            TrailerValue if b == b'\r' => TrailerLf,
            TrailerValue if is_text(b) => self.trailer(TrailerValue)?,
            TrailerLf => expect(b'\n', TrailerStart)?,
            LastLf => expect(b'\n', Done)?,
            TrailerStart | TrailerName | TrailerValue => return Err("malformed trailer field"),
            ExtName | ExtNameSpace | ExtValue | InQuoted | QuotedEscape => return Err(BAD_EXT),
            Data | Done => self.state,
        })
    }

    /// Counts one more trailer byte.
    fn trailer(&mut self, next: State) -> Result<State, &'static str> {
        self.extra += 1;
        if self.extra > MAX_EXTRA { Err("trailer section too long") } else { Ok(next) }
    }
}

/// Appends `data` to `out` as one chunk (nothing for empty data: an empty chunk would end the
/// body).
pub(crate) fn encode(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let mut size = [0u8; 16];
    let mut n = data.len();
    let mut at = size.len();
    while n > 0 || at == size.len() {
        at -= 1;
        size[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.extend_from_slice(&size[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body the proxy writes: the last chunk and no trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode(body: &[u8]) -> Result<(usize, Vec<u8>, bool), &'static str> {
        let mut chunks = Chunks::default();
        let mut data = Vec::new();
        let used = chunks.feed(body, |d| data.extend_from_slice(d))?;
        Ok((used, data, chunks.is_done()))
    }

    #[test]
    fn finds_the_end_of_the_body_in_any_split() {
        let body =
            b"5;ext=1;q=\"a \\\" b\"\r\nhello\r\n10 ; x\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut chunks = Chunks::default();
            let mut data = Vec::new();
            let first = chunks.feed(&body[..split], |d| data.extend_from_slice(d)).unwrap();
            assert_eq!(first, split.min(end));
            let second = chunks.feed(&body[split.min(end)..], |d| data.extend_from_slice(d)).unwrap();
            assert_eq!(first + second, end, "split at {split}");
            assert!(chunks.is_done());
            assert_eq!(chunks.payload, 21, "payload bytes, framing not counted");
            assert_eq!(data, b"hello0123456789abcdef");
        }
    }

    #[test]
    fn refuses_what_could_be_read_two_ways() {
        for bad in [
            &b"x\r\n"[..],
            b"5 xyz\r\nhello\r\n",
            b"5 \r\nhello\r\n",
            b"5;\r\nhello\r\n",
            b"5;a=\r\nhello\r\n",
            b"5;a b\r\nhello\r\n",
            b"5;a=\"open\r\nhello\r\n",
            b"5;a=b c\r\nhello\r\n",
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"5\r\nhello\n",
            b"ffffffffffffffff0\r\n",
            b"0\r\n\nHTTP/1.1 200 OK\r\n\r\n",
            b"0\r\nX-T: a\x00b\r\n\r\n",
            b"0\r\nNo colon\r\n\r\n",
            b"0\r\nGET / HTTP/1.1\r\n\r\n",
            b"0\r\n X: folded\r\n\r\n",
            b"0\r\nX: v\n\r\n",
            b"-5\r\nhello\r\n",
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "a".repeat(MAX_EXTRA + 1));
        assert!(decode(long_ext.as_bytes()).is_err());
        let long_trailer = format!("0\r\nx: {}\r\n\r\n", "a".repeat(MAX_EXTRA + 1));
        assert!(decode(long_trailer.as_bytes()).is_err());
        // Within the grammar: a token value, spaces around `;` and `=`, obs-text in quotes.
        assert_eq!(decode(b"3 ;a = b ;c\r\nabc\r\n0\r\n\r\n").unwrap(), (23, b"abc".to_vec(), true));
        assert!(decode(b"3;a=\"\xe9\"\r\nabc\r\n0\r\nX-Sum: \xe9 ok\r\n\r\n").unwrap().2);
    }

    #[test]
    fn encodes_chunks() {
        let mut out = Vec::new();
        encode(b"", &mut out);
        encode(b"hello", &mut out);
        encode(&[b'x'; 300], &mut out);
        out.extend_from_slice(LAST_CHUNK);
        let (used, data, done) = decode(&out).unwrap();
        assert!(out.starts_with(b"5\r\nhello\r\n12c\r\n"));
        assert_eq!((used, data.len(), done), (out.len(), 305, true));
    }
}
