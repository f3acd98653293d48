//! The proxy's own requests to a service beside the route's endpoints (the error backend of
//! `custom-http-errors`, the auth service of `auth-url`): one request head out, one whole
//! response back, bounded in size and time, and read as strictly as the upstream's.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::edits::HOP_BY_HOP;
use crate::config::Timeouts;

/// The largest response taken (head and body).
const MAX_PAGE: usize = 1 << 20;

/// A response to one of the proxy's own requests (an error page: the error backend's answer,
/// or the proxy's own when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) status: u16,
    /// End-to-end header lines (no framing, hop-by-hop, `Date` or `Server`).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Page {
    /// The proxy's own answer with `status` (its short text body).
    pub(crate) fn builtin(status: u16) -> Self {
        let body = super::answer::body_for(status);
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: Bytes::from_static(body.as_bytes()),
        }
    }
}

/// One exchange on `stream`: `head` out, the response back, whole, within the limits.
pub(crate) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &[u8],
    head_request: bool,
    timeouts: &Timeouts,
) -> Result<Page, &'static str> {
    tokio::time::timeout(timeouts.write, stream.write_all(head))
        .await
        .map_err(|_| "write timed out")?
        .map_err(|_| "write failed")?;
    let mut raw = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(page) = parse(&raw, head_request, false)? {
            return Ok(page);
        }
        let n = tokio::time::timeout(timeouts.read, stream.read(&mut chunk))
            .await
            .map_err(|_| "read timed out")?
            .map_err(|_| "read failed")?;
        if n == 0 {
            return parse(&raw, head_request, true)?.ok_or("closed before a whole response");
        }
        if raw.len() + n > MAX_PAGE {
            return Err("error page too large");
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// A response in `raw`, if whole (`eof`: nothing more will come, so a body
/// without framing ends here); `Err` for one that cannot become a response.
pub(crate) fn parse(raw: &[u8], head_request: bool, eof: bool) -> Result<Option<Page>, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if eof => return Err("closed inside the response head"),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed response head"),
    };
    let status = resp.code.ok_or("no status")?;
    if !(200..600).contains(&status) {
        return Err("not a final status");
    }
    let is = |h: &httparse::Header<'_>, name: &str| h.name.eq_ignore_ascii_case(name);
    let chunked = resp.headers.iter().any(|h| is(h, "transfer-encoding"));
    let lengths: Vec<&[u8]> =
        resp.headers.iter().filter(|h| is(h, "content-length")).map(|h| h.value).collect();
    let headers = resp
        .headers
        .iter()
        .filter(|h| {
            !["content-length", "transfer-encoding", "date", "server"].iter().any(|n| is(h, n))
                && !HOP_BY_HOP.iter().any(|n| is(h, n))
        })
        .filter_map(|h| Some((h.name.to_ascii_lowercase(), std::str::from_utf8(h.value).ok()?.to_owned())))
        .collect();
    let rest = &raw[len..];
    let no_body = head_request || status == 204 || status == 304;
    let body = if no_body {
        Bytes::new()
    } else if chunked {
        if !lengths.is_empty() {
            return Err("both Transfer-Encoding and Content-Length");
        }
        let mut chunks = crate::h1::chunks::Chunks::default();
        let mut body = Vec::new();
        chunks.feed(rest, |data| body.extend_from_slice(data))?;
        if !chunks.is_done() {
            return if eof { Err("closed inside a chunked body") } else { Ok(None) };
        }
        Bytes::from(body)
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err("conflicting Content-Length");
        }
        let n: usize = std::str::from_utf8(first)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .ok_or("bad Content-Length")?;
        if rest.len() < n {
            return if eof { Err("closed inside the body") } else { Ok(None) };
        }
        Bytes::copy_from_slice(&rest[..n])
    } else if eof {
        Bytes::copy_from_slice(rest)
    } else {
        return Ok(None);
    };
    Ok(Some(Page { status, headers, body }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_framing() {
        let raw = b"HTTP/1.1 503 X\r\nContent-Type: text/html\r\nServer: e\r\nContent-Length: 5\r\n\r\nhello";
        let page = parse(raw, false, false).unwrap().unwrap();
        assert_eq!((page.status, &page.body[..]), (503, &b"hello"[..]));
        assert_eq!(page.headers, [("content-type".to_owned(), "text/html".to_owned())]);
        assert_eq!(parse(&raw[..raw.len() - 1], false, false).unwrap(), None, "needs the whole body");
        assert!(parse(&raw[..raw.len() - 1], false, true).is_err(), "closed too early");

        let chunked = b"HTTP/1.1 404 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(&parse(chunked, false, false).unwrap().unwrap().body[..], b"abc");
        assert_eq!(parse(&chunked[..chunked.len() - 2], false, false).unwrap(), None);
        let close = b"HTTP/1.0 500 X\r\n\r\nuntil close";
        assert_eq!(parse(close, false, false).unwrap(), None);
        assert_eq!(&parse(close, false, true).unwrap().unwrap().body[..], b"until close");
        let head = b"HTTP/1.1 404 X\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(parse(head, true, false).unwrap().unwrap().body.len(), 0, "HEAD: no body");
    }

    #[test]
    fn hostile_pages_are_refused() {
        for bad in [
            &b"HTTP/1.1 200 X\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"[..],
            b"HTTP/1.1 200 X\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
            b"HTTP/1.1 200 X\r\nBad Header\r\n\r\n",
        ] {
            assert!(parse(bad, false, true).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
