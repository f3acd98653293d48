//! Reads, writes and response bodies ([`super`]), with the route's timeouts
//! and Pingora's error types, so [`crate::pipeline::answer::status_for`] and the retry rules apply
//! unchanged.

use std::future::poll_fn;
use std::io::{IoSlice, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pingora::{Error, ErrorType, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::chunks::{Chunks, LAST_CHUNK};
use super::response::Framing;

/// Room made in a buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// `io`, given at most `limit`. It is polled once first, and gets a timer only when it has to
/// wait: most writes, and reads of bytes already there, are done at once, and registering a
/// timer for them was a measurable share of the proxy's CPU per request.
pub(crate) async fn within<F: Future>(limit: Duration, io: F) -> Result<F::Output, pingora::time::Elapsed> {
    let mut io = std::pin::pin!(io);
    if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(io.as_mut().poll(cx))).await {
        return Ok(done);
    }
    pingora::time::timeout(limit, io).await
}

/// Reads what the upstream sent into `buf`; `Ok(0)` when it closed.
pub(crate) async fn read_upstream<U: AsyncRead + Unpin>(
    up: &mut U,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Result<usize> {
    buf.reserve(READ_CHUNK);
    match within(timeout, up.read_buf(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(Error::because(ErrorType::ReadError, "reading from upstream", e).into_up()),
        Err(_) => Err(Error::explain(ErrorType::ReadTimedout, "upstream read timed out").into_up()),
    }
}

/// Writes `parts` and flushes (Pingora's streams buffer writes). The error says which side
/// failed only once the caller marks it (`into_up`/`into_down`).
pub(crate) async fn write<W: AsyncWrite + Unpin>(
    stream: &mut W,
    parts: &[&[u8]],
    timeout: Duration,
) -> Result<()> {
    let mut pending = Parts::new(parts);
    let io = poll_fn(|cx| {
        ready!(pending.poll_write(stream, cx))?;
        Pin::new(&mut *stream).poll_flush(cx)
    });
    let e = match within(timeout, io).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => Error::because(ErrorType::WriteError, "writing", e),
        Err(_) => Error::explain(ErrorType::WriteTimedout, "write timed out"),
    };
    Err(e)
}

/// Byte slices on their way out, written with as few writes as the stream takes: vectored,
/// so a head and the body after it leave in one `writev`, where a buffered writer would send
/// the head alone once the two outgrow its buffer.
pub(crate) struct Parts<'a> {
    parts: &'a [&'a [u8]],
    part: usize,
    offset: usize,
}

impl<'a> Parts<'a> {
    pub(crate) fn new(parts: &'a [&'a [u8]]) -> Self {
        Parts { parts, part: 0, offset: 0 }
    }

    /// Writes what is left (without flushing); ready once all of it was taken.
    pub(crate) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut slices = [IoSlice::new(&[]); 4];
            let mut n = 0;
            for (i, part) in self.parts.iter().enumerate().skip(self.part) {
                let rest = if i == self.part { &part[self.offset..] } else { part };
                if rest.is_empty() {
                    continue;
                }
                let Some(slot) = slices.get_mut(n) else { break };
                *slot = IoSlice::new(rest);
                n += 1;
            }
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            let written = ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.advance(written);
        }
    }

    /// What is left to write, as one piece.
    pub(crate) fn rest(&self) -> Vec<u8> {
        let mut rest = Vec::new();
        for (i, part) in self.parts.iter().enumerate().skip(self.part) {
            rest.extend_from_slice(if i == self.part { &part[self.offset..] } else { part });
        }
        rest
    }

    fn advance(&mut self, mut n: usize) {
        while let Some(part) = self.parts.get(self.part) {
            let left = part.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            (self.part, self.offset) = (self.part + 1, 0);
        }
    }
}

/// The two connections a response body moves between (or the halves of them that read the
/// upstream and write the client), and their timeouts.
pub(crate) struct Relay<'a, U, C> {
    pub(crate) up: &'a mut U,
    /// What was read from the upstream past the response head.
    pub(crate) buf: &'a mut BytesMut,
    pub(crate) client: &'a mut C,
    pub(crate) read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    /// Body payload bytes sent to the client so far (chunk framing not counted).
    pub(crate) sent: u64,
    /// Whether writing to the client began (the response head is, at least partly, out).
    pub(crate) started: bool,
}

impl<U: AsyncRead + Unpin + Send, C: AsyncWrite + Unpin + Send> Relay<'_, U, C> {
    /// Sends the response head in `head` and then the body, relayed as `framing` delimits
    /// it; the first body bytes go out in the same write as the head. Returns whether the
    /// upstream connection ended clean (nothing left over), so it can be used again.
    pub(crate) async fn run(&mut self, framing: Framing, head: &mut Vec<u8>) -> Result<bool> {
        match framing {
            Framing::Empty => {
                self.send(&[head]).await?;
                Ok(self.buf.is_empty())
            }
            Framing::Length(length) => {
                let mut left = length;
                self.relay_until(head, |buf| {
                    let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    left -= take as u64;
                    Ok((take, take as u64, left == 0))
                })
                .await
            }
            Framing::Chunked => {
                let mut chunks = Chunks::default();
                self.relay_until(head, |buf| {
                    let before = chunks.payload;
                    let take = chunks
                        .feed(buf, |_| {})
                        .map_err(|why| Error::explain(ErrorType::InvalidHTTPHeader, why).into_up())?;
                    Ok((take, chunks.payload - before, chunks.is_done()))
                })
                .await
            }
            Framing::Dechunk => {
                // The chunks' data, without their framing, for a client that cannot read them.
                let mut chunks = Chunks::default();
                let mut data = Vec::new();
                loop {
                    data.clear();
                    let take = chunks
                        .feed(self.buf, |piece| data.extend_from_slice(piece))
                        .map_err(|why| Error::explain(ErrorType::InvalidHTTPHeader, why).into_up())?;
                    self.send(&[head, &data]).await?;
                    head.clear();
                    self.sent += data.len() as u64;
                    self.buf.advance(take);
                    if chunks.is_done() {
                        return Ok(self.buf.is_empty());
                    }
                    self.read_more().await?;
                }
            }
            Framing::Rechunk => loop {
                // One chunk per read, and the last chunk once the upstream closes.
                if !self.buf.is_empty() {
                    let _ = write!(head, "{:x}\r\n", self.buf.len());
                    head.extend_from_slice(self.buf);
                    head.extend_from_slice(b"\r\n");
                    self.sent += self.buf.len() as u64;
                    self.buf.clear();
                }
                if !head.is_empty() {
                    self.send(&[head]).await?;
                    head.clear();
                }
                if self.read().await? == 0 {
                    self.send(&[LAST_CHUNK]).await?;
                    return Ok(false);
                }
            },
            Framing::Raw => loop {
                // As sent, until the upstream closes (and then the client's connection too).
                self.started = true;
                write(self.client, &[head, self.buf], self.write_timeout).await.map_err(|e| e.into_down())?;
                head.clear();
                self.sent += self.buf.len() as u64;
                self.buf.clear();
                if self.read().await? == 0 {
                    return Ok(false);
                }
            },
        }
    }

    /// Relays a body that delimits itself: `next` says how many bytes of what was read belong
    /// to the body, how many of those are payload (not framing), and whether that is its end.
    /// The head goes out with the first bytes.
    async fn relay_until(
        &mut self,
        head: &[u8],
        mut next: impl FnMut(&[u8]) -> Result<(usize, u64, bool)> + Send,
    ) -> Result<bool> {
        let mut first = true;
        loop {
            let (take, payload, done) = next(&self.buf[..])?;
            let pair = [head, &self.buf[..take]];
            let parts = if first { &pair[..] } else { &pair[1..] };
            self.started = true;
            write(self.client, parts, self.write_timeout).await.map_err(|e| e.into_down())?;
            first = false;
            self.sent += payload;
            self.buf.advance(take);
            if done {
                return Ok(self.buf.is_empty());
            }
            self.read_more().await?;
        }
    }

    async fn read(&mut self) -> Result<usize> {
        read_upstream(self.up, self.buf, self.read_timeout).await
    }

    async fn send(&mut self, parts: &[&[u8]]) -> Result<()> {
        self.started = true;
        write(self.client, parts, self.write_timeout).await.map_err(|e| e.into_down())
    }

    /// Reads more of a body whose end has not come yet.
    async fn read_more(&mut self) -> Result<()> {
        if self.read().await? == 0 {
            return Err(
                Error::explain(ErrorType::ConnectionClosed, "upstream closed inside the body").into_up()
            );
        }
        Ok(())
    }
}
