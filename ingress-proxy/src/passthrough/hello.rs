//! The server name a TLS ClientHello asks for (its SNI extension, RFC 6066 section 3), read
//! from the bytes a client sends first, before anything is decrypted.
//!
//! Bytes from the network, so everything is bounded: a record is at most 16 KiB plus
//! 2 KiB (RFC 8446 section 5.2), the ClientHello at most [`MAX_HELLO`] however many records
//! carry it, and a name at most 255 bytes. What cannot be a ClientHello is [`Hello::NotTls`];
//! a ClientHello without a usable name is [`Hello::NoName`]. Either way the connection is
//! terminated as usual, where the TLS library answers it.

/// The largest ClientHello read (post-quantum key shares make them a few KiB; 32 KiB is
/// ample).
pub(crate) const MAX_HELLO: usize = 32 * 1024;

/// The largest TLS record body accepted.
const MAX_RECORD: usize = 16 * 1024 + 2048;

/// The most records a ClientHello may come in (real clients use one); past it, no name is
/// looked for, so splitting a hello into tiny records cannot buy a slow parse.
const MAX_RECORDS: usize = 64;

/// How long `buf` must grow before parsing it again can say more: the end of its first
/// record not yet whole (or of the next record header), or its length when the records so far
/// already hold the whole ClientHello. Cheap: it reads record headers only.
pub(crate) fn wanted(buf: &[u8]) -> usize {
    // The hello's first 4 bytes (type and length), gathered from the whole records walked.
    let mut head = [0u8; 4];
    let mut have = 0;
    let mut carried = 0;
    let mut at = 0;
    for _ in 0..MAX_RECORDS {
        let needed = (have == 4)
            .then(|| 4 + (usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3])));
        // Every record whole, or the hello whole in them (or too long to look into): parse.
        if at == buf.len() || needed.is_some_and(|n| carried >= n || n > MAX_HELLO + 4) {
            return buf.len();
        }
        let Some(header) = buf.get(at..at + 5) else { return at + 5 };
        let end = at + 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
        let Some(fragment) = buf.get(at + 5..end) else { return end };
        for &b in fragment.iter().take(4 - have) {
            head[have] = b;
            have += 1;
        }
        carried += fragment.len();
        at = end;
    }
    // Enough records to decide: parse now.
    buf.len()
}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hello {
    /// Not all of the ClientHello is here yet.
    Partial,
    /// A ClientHello for this server name (lower case).
    Name(String),
    /// A ClientHello without a (valid) server name.
    NoName,
    /// Not a TLS ClientHello.
    NotTls,
}

/// Reads the ClientHello at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Hello {
    // The handshake message, gathered from as many records as carry it.
    let mut message = Vec::new();
    let mut rest = buf;
    for _ in 0..MAX_RECORDS {
        let Some(header) = rest.get(..5) else { return Hello::Partial };
        // Content type 22 (handshake), legacy version 3.x.
        if header[0] != 22 || header[1] != 3 {
            return Hello::NotTls;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Hello::NotTls;
        }
        let Some(fragment) = rest.get(5..5 + len) else { return Hello::Partial };
        message.extend_from_slice(fragment);
        rest = &rest[5 + len..];
        if message.len() < 4 {
            continue;
        }
        // Handshake type 1 (ClientHello), 24-bit length.
        if message[0] != 1 {
            return Hello::NotTls;
        }
        let body_len = usize::from(message[1]) << 16 | usize::from(message[2]) << 8 | usize::from(message[3]);
        if body_len > MAX_HELLO {
            return Hello::NoName;
        }
        if message.len() >= 4 + body_len {
            return client_hello(&message[4..4 + body_len]).map_or(Hello::NoName, Hello::Name);
        }
    }
    Hello::NoName
}

/// A cursor over a ClientHello's fields; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A field with a one-byte length.
    fn short(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }

    /// A field with a two-byte length.
    fn long(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The host name of a ClientHello body, if it has a valid one.
fn client_hello(body: &[u8]) -> Option<String> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy version, random
    r.short()?; // session id
    r.long()?; // cipher suites
    r.short()?; // compression methods
    let mut extensions = Reader(r.long()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.long()?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(Reader(data).long()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.long()?;
            if name_type == 0 {
                return host_name(name);
            }
        }
        return None;
    }
    None
}

/// `name` as a host name in lower case, if it is one (letters, digits, `-`, `_`, `.`; at most
/// 255 bytes; RFC 6066 forbids a trailing dot).
fn host_name(name: &[u8]) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.ends_with(b".")
        && name.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// Fuzzing entry point: whatever the bytes, parsing returns, a name is a valid lower-case host
/// name, and every prefix of a complete ClientHello is [`Hello::Partial`] or not TLS.
#[cfg(feature = "fuzzing")]
pub fn fuzz_client_hello(data: &[u8]) {
    let whole = parse(data);
    if let Hello::Name(name) = &whole {
        assert!(host_name(name.as_bytes()).as_deref() == Some(name.as_str()), "{name:?}");
    }
    if matches!(whole, Hello::Name(_) | Hello::NoName) {
        // A prefix either lacks part of the hello, or holds all of it and reads the same.
        for cut in [0, 1, 4, 5, data.len() / 2, data.len().saturating_sub(1)] {
            if cut < data.len() {
                let prefix = parse(&data[..cut]);
                assert!(prefix == Hello::Partial || prefix == whole, "{prefix:?} vs {whole:?} at {cut}");
            }
        }
    }
    // Waiting for `wanted` bytes before parsing loses nothing: short of them, a parse could
    // only say "not yet" (or "not TLS", which more bytes would not change).
    if data.len() < wanted(data) {
        assert!(matches!(whole, Hello::Partial | Hello::NotTls), "{whole:?} before {} bytes", wanted(data));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello record for `name` (none: no SNI extension), with `padding` bytes of an
    /// unknown extension before it.
    pub(crate) fn client_hello_record(name: Option<&str>, padding: usize) -> Vec<u8> {
        let mut extensions = Vec::new();
        extensions.extend_from_slice(&0xfe00u16.to_be_bytes());
        extensions.extend_from_slice(&(padding as u16).to_be_bytes());
        extensions.extend(std::iter::repeat_n(0u8, padding));
        if let Some(name) = name {
            let entry_len = 3 + name.len();
            extensions.extend_from_slice(&0u16.to_be_bytes());
            extensions.extend_from_slice(&((entry_len + 2) as u16).to_be_bytes());
            extensions.extend_from_slice(&(entry_len as u16).to_be_bytes());
            extensions.push(0);
            extensions.extend_from_slice(&(name.len() as u16).to_be_bytes());
            extensions.extend_from_slice(name.as_bytes());
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(&extensions);
        let mut message = vec![1];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        records(&message, MAX_RECORD)
    }

    /// `message` in handshake records of at most `size` bytes each.
    fn records(message: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in message.chunks(size) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn the_server_name_is_read_in_lower_case() {
        assert_eq!(
            parse(&client_hello_record(Some("Pass.Example.com"), 0)),
            Hello::Name("pass.example.com".into())
        );
        assert_eq!(parse(&client_hello_record(None, 10)), Hello::NoName);
        // Trailing bytes (the client's next records) do not matter.
        let mut more = client_hello_record(Some("a.test"), 3);
        more.extend_from_slice(&[23, 3, 3, 0, 5, 1, 2, 3]);
        assert_eq!(parse(&more), Hello::Name("a.test".into()));
    }

    #[test]
    fn every_prefix_is_partial_and_a_hello_over_several_records_is_gathered() {
        let whole = client_hello_record(Some("split.test"), 3000);
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]), Hello::Partial, "cut at {cut}");
        }
        let message = &whole[5..];
        for size in [60, 100, 1000] {
            assert_eq!(parse(&records(message, size)), Hello::Name("split.test".into()), "records of {size}");
        }
    }

    #[test]
    fn what_is_not_a_client_hello_is_told_apart() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Hello::NotTls);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), Hello::NotTls);
        assert_eq!(parse(&[22, 3, 1, 0, 0]), Hello::NotTls, "an empty record");
        assert_eq!(parse(&[22, 3, 1, 0xff, 0xff]), Hello::NotTls, "an oversized record");
        assert_eq!(parse(&[22, 3, 1, 0, 4, 2, 0, 0, 0]), Hello::NotTls, "a ServerHello");
        assert_eq!(parse(&[21, 3, 1, 0, 2, 2, 40]), Hello::NotTls, "an alert");
        // A ClientHello announcing more than MAX_HELLO: no name is looked for.
        assert_eq!(parse(&[22, 3, 1, 0, 4, 1, 0x01, 0, 0]), Hello::NoName);
        // Lengths that overrun their field.
        let mut bad = client_hello_record(Some("x.test"), 0);
        let at = bad.len() - "x.test".len() - 2;
        bad[at] = 0xff;
        assert_eq!(parse(&bad), Hello::NoName);
    }

    #[test]
    fn parsing_waits_for_whole_records_and_gives_up_past_64() {
        let whole = client_hello_record(Some("split.test"), 3000);
        let message = &whole[5..];
        let split = records(message, 1000);
        let mut fed = Vec::new();
        let mut parses = 0;
        for byte in &split {
            fed.push(*byte);
            if fed.len() >= wanted(&fed) {
                parses += 1;
                if parse(&fed) != Hello::Partial {
                    break;
                }
            }
        }
        assert!(fed.len() >= wanted(&fed), "the last record's end is a time to parse");
        assert_eq!(parse(&fed), Hello::Name("split.test".into()));
        assert!(parses <= 8, "a parse per record, not per byte: {parses}");
        // More records than any client uses: no name looked for.
        assert_eq!(parse(&records(message, 40)), Hello::NoName);
    }

    #[test]
    fn bytes_after_a_whole_hello_do_not_delay_it() {
        // A hello whole in its record, then bytes that look like a long record (early data, or
        // garbage): the hello is parsed now, not after 27 KB that may never come.
        let mut buf = client_hello_record(Some("early.test"), 0);
        buf.extend_from_slice(&[0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b]);
        assert_eq!(wanted(&buf), buf.len());
        assert_eq!(parse(&buf), Hello::Name("early.test".into()));
        // A hello announcing more than we read: parse now, which says so.
        let long = [22, 3, 1, 0, 4, 1, 0x01, 0, 0, 22, 3, 1, 0x40, 0];
        assert_eq!(wanted(&long), long.len());
        assert_eq!(parse(&long), Hello::NoName);
    }

    #[test]
    fn names_that_are_not_host_names_are_no_name() {
        for name in ["", "bad name.test", "trailing.dot.", "nul\0.test", "é.test"] {
            assert_eq!(parse(&client_hello_record(Some(name), 0)), Hello::NoName, "{name:?}");
        }
        assert_eq!(parse(&client_hello_record(Some(&"a".repeat(256)), 0)), Hello::NoName);
        assert_eq!(
            parse(&client_hello_record(Some("_srv.ok-1.test"), 0)),
            Hello::Name("_srv.ok-1.test".into())
        );
    }
}
