//! Request bodies ([`super`]): streamed upstream as the client sends them, while the upstream
//! is watched for an early answer.
//!
//! A `Content-Length` body goes out byte for byte; a chunked one is decoded and goes out in
//! the proxy's own chunks, without the client's extensions and trailers ([`super::chunks`]).
//!
//! Why watch: an upstream may answer before it has read the body (a `413`, a `401`, a
//! redirect) and stop reading. A proxy that only writes would then sit in a full socket
//! buffer until the write timeout. Here every wait, on the client or on the upstream's
//! buffer, also ends when the upstream starts answering; the answer is relayed, and neither
//! connection is used again (the body was not consumed).
//!
//! A body must keep coming: each read waits at most `client-body-timeout` (nginx's
//! `client_body_timeout`), and the whole body has that long plus one second per
//! [`BODY_MIN_RATE`] bytes received (Apache's `mod_reqtimeout` rule), so a trickled body
//! cannot hold an upstream connection open for as long as the sender likes.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pingora::ErrorType::{
    ConnectionClosed, HTTPStatus, InvalidHTTPHeader, ReadError, ReadTimedout, WriteError, WriteTimedout,
};
use pingora::protocols::Stream;
use pingora::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::body::{Parts, within};
use super::chunks::{self, Chunks};
use super::head::BodyFraming;
use super::response::skip_interim;
use crate::pool::Upstream;

/// The most of a body kept to send again when a pooled connection turns out closed (the size
/// of Pingora's retry buffer); a longer body is not retried.
const REPLAY_MAX: usize = 64 * 1024;

/// Room made before each read of the client.
const READ_CHUNK: usize = 16 * 1024;

/// Bytes per second a body must average, after its first `client-body-timeout`.
pub(crate) const BODY_MIN_RATE: u64 = 500;

/// How a watched write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// All of it went out.
    All,
    /// The upstream began answering first; what it sent is in the response buffer.
    Answered,
}

/// Where the next bytes to send upstream are.
#[derive(Debug, Clone)]
enum Piece {
    /// Body bytes that came with the head, as sent.
    Prefix(std::ops::Range<usize>),
    /// Body bytes of the last client read, as sent.
    Scratch,
    /// Body bytes re-framed by the proxy (chunked).
    Framed,
}

/// One request's body: where its bytes come from, how far it got, and a copy for a retry.
#[derive(Debug)]
pub(crate) struct Upload<'p> {
    framer: Framer,
    /// Bytes read with the head: the body's start (and maybe the next request).
    prefix: &'p [u8],
    /// How much of `prefix` belonged to the body.
    pub(crate) consumed: usize,
    /// Bytes read from the client past the body: the next request's start.
    pub(crate) leftover: BytesMut,
    /// The last read from the client.
    scratch: BytesMut,
    /// The last piece of a chunked body, in the proxy's chunks.
    framed: Vec<u8>,
    replay: Replay,
    clock: BodyClock,
    /// What an interrupted write (the upstream began answering) had not sent yet.
    unsent: Vec<u8>,
    /// The whole body went out on the current connection (else it cannot be used again).
    written: bool,
}

/// Where a body ends.
#[derive(Debug)]
struct Framer {
    framing: BodyFraming,
    /// `Content-Length` bytes still to come.
    left: u64,
    chunks: Chunks,
    /// The route's body size limit, for bodies without a declared length.
    limit: Option<u64>,
    /// The whole body has been read.
    complete: bool,
}

/// What went out of the body so far, kept while it fits [`REPLAY_MAX`] so an idempotent
/// request can be sent again.
#[derive(Debug)]
struct Replay {
    bytes: Vec<u8>,
    whole: bool,
}

/// How long the client may take for the rest of the body.
#[derive(Debug)]
struct BodyClock {
    per_read: Duration,
    /// When the proxy first waited for the client's body bytes (not read before: most bodies
    /// come with the head, and reading the clock costs).
    started: Option<Instant>,
    received: u64,
}

impl<'p> Upload<'p> {
    /// Body bytes taken from the client so far (with the head, and read since).
    pub(crate) fn body_bytes(&self) -> u64 {
        (self.consumed as u64).saturating_add(self.clock.received.saturating_sub(self.leftover.len() as u64))
    }

    /// The body of a request delimited by `framing`, whose first bytes (if any) are in `prefix`.
    ///
    /// `replay`: whether to keep what is needed to send the body again (only idempotent
    /// requests are ever sent again). `per_read`: how long each read of the client may wait.
    pub(crate) fn new(framing: BodyFraming, prefix: &'p [u8], replay: bool, per_read: Duration) -> Self {
        Upload {
            framer: Framer {
                framing,
                left: if let BodyFraming::Length(n) = framing { n } else { 0 },
                chunks: Chunks::default(),
                limit: None,
                complete: framing == BodyFraming::None,
            },
            prefix,
            consumed: 0,
            leftover: BytesMut::new(),
            scratch: BytesMut::new(),
            framed: Vec::new(),
            replay: Replay { bytes: Vec::new(), whole: replay },
            clock: BodyClock { per_read, started: None, received: 0 },
            unsent: Vec::new(),
            written: false,
        }
    }

    /// Sets the body size limit of the request's route, enforced on chunked bodies as they
    /// arrive (a declared length is checked before the body is read).
    pub(crate) fn limit(&mut self, limit: Option<u64>) {
        self.framer.limit = limit;
    }

    /// Whether the whole body was read from the client (and so the connection can serve
    /// another request).
    pub(crate) fn is_complete(&self) -> bool {
        self.framer.complete
    }

    /// Takes the body bytes that came with the head, for a request answered without its body;
    /// returns whether that was all of it (so the connection can serve another request).
    pub(crate) fn skip_prefix(&mut self) -> bool {
        self.take_prefix().is_ok() && self.framer.complete
    }

    /// What was read with the head and is not body: the next request's start, or, after a
    /// `101`, the first bytes of the new protocol.
    pub(crate) fn unread(&self) -> &'p [u8] {
        &self.prefix[self.consumed..]
    }

    /// Whether the whole body went out on the connection of the last [`Upload::send`] (an
    /// upstream that answered early may still be reading it: its connection is not reused).
    pub(crate) fn is_written(&self) -> bool {
        self.written
    }

    /// Whether what was read of the body so far can go out again on another connection.
    pub(crate) fn replayable(&self) -> bool {
        self.replay.whole
    }

    /// Sends `head` and then the body, as the client sends it. On a `retry` the body sent so
    /// far goes out again first. The response buffer `answer` receives whatever the upstream
    /// sends meanwhile; it stops the body once it holds a final response head, and
    /// [`Upload::is_written`] then says the body did not all go out.
    pub(crate) async fn send(
        &mut self,
        head: &[u8],
        retry: bool,
        up: &mut Upstream,
        answer: &mut BytesMut,
        client: &mut Stream,
        write_timeout: Duration,
    ) -> Result<()> {
        self.written = false;
        self.unsent.clear();
        // The head goes out with the body bytes already read (or, again, those sent before),
        // in one write.
        let first = if retry {
            None
        } else if self.consumed < self.prefix.len() && !self.framer.complete {
            Some(self.take_prefix()?)
        } else {
            Some(Piece::Prefix(0..0))
        };
        let sent = {
            let first = first.as_ref().map_or(&self.replay.bytes[..], |piece| self.bytes(piece));
            let parts = [head, first];
            let mut pending = Parts::new(&parts);
            let sent = watch_write(up, &mut pending, answer, write_timeout).await?;
            (sent == Sent::Answered).then(|| pending.rest())
        };
        if let Some(rest) = sent {
            self.unsent = rest;
            return Ok(());
        }
        while !self.framer.complete {
            let piece = if self.consumed < self.prefix.len() {
                self.take_prefix()?
            } else if self.read_client(up, answer, client).await? {
                self.take_scratch()?
            } else {
                return Ok(());
            };
            let parts = [self.bytes(&piece)];
            let mut pending = Parts::new(&parts);
            if watch_write(up, &mut pending, answer, write_timeout).await? == Sent::Answered {
                self.unsent = pending.rest();
                return Ok(());
            }
        }
        self.written = true;
        Ok(())
    }

    /// Sends the rest of a body the upstream began answering early, while that answer is
    /// relayed (an upstream that streams its response as it reads, like an echo): what the
    /// interrupted write left, then the rest as the client sends it. Plain writes: the relay
    /// reads the upstream meanwhile.
    pub(crate) async fn finish<W, R>(
        &mut self,
        up: &mut W,
        client: &mut R,
        write_timeout: Duration,
    ) -> Result<()>
    where
        W: AsyncWrite + Unpin + Send,
        R: AsyncRead + Unpin + Send,
    {
        let unsent = std::mem::take(&mut self.unsent);
        send_up(up, &unsent, write_timeout).await?;
        while !self.framer.complete {
            let piece = if self.consumed < self.prefix.len() {
                self.take_prefix()?
            } else {
                self.scratch.clear();
                self.scratch.reserve(READ_CHUNK);
                let wait = self.clock.wait()?;
                let read = within(wait, client.read_buf(&mut self.scratch)).await;
                self.absorb(read)?;
                self.take_scratch()?
            };
            send_up(up, self.bytes(&piece), write_timeout).await?;
        }
        self.written = true;
        Ok(())
    }

    /// The bytes of a piece.
    fn bytes(&self, piece: &Piece) -> &[u8] {
        match piece {
            Piece::Prefix(range) => &self.prefix[range.clone()],
            Piece::Scratch => &self.scratch,
            Piece::Framed => &self.framed,
        }
    }

    /// The next body bytes of the prefix.
    fn take_prefix(&mut self) -> Result<Piece> {
        let start = self.consumed;
        let take = self.framer.follow(&self.prefix[start..], &mut self.framed)?;
        self.consumed += take;
        let piece = self.framer.piece(start..start + take);
        let bytes = match &piece {
            Piece::Prefix(range) => &self.prefix[range.clone()],
            _ => &self.framed[..],
        };
        self.replay.keep(bytes);
        Ok(piece)
    }

    /// The body bytes of the last client read ([`Upload::absorb`] trimmed it to the body).
    fn take_scratch(&mut self) -> Result<Piece> {
        let take = self.framer.follow(&self.scratch, &mut self.framed)?;
        // `absorb` already split off what came after the body.
        debug_assert_eq!(take, self.scratch.len());
        let piece = match self.framer.framing {
            BodyFraming::Chunked => Piece::Framed,
            _ => Piece::Scratch,
        };
        let bytes = match piece {
            Piece::Framed => &self.framed[..],
            _ => &self.scratch[..],
        };
        self.replay.keep(bytes);
        Ok(piece)
    }

    /// Reads the client's next body bytes into the scratch buffer; false if the upstream
    /// began answering first.
    async fn read_client(
        &mut self,
        up: &mut Upstream,
        answer: &mut BytesMut,
        client: &mut Stream,
    ) -> Result<bool> {
        self.scratch.clear();
        self.scratch.reserve(READ_CHUNK);
        loop {
            answer.reserve(READ_CHUNK);
            let wait = self.clock.wait()?;
            let read = within(wait, client.read_buf(&mut self.scratch));
            return tokio::select! {
                biased;
                early = up.read_buf(answer) => match early {
                    Ok(0) => Err(Error::explain(ConnectionClosed, "upstream closed during the request body").into_up()),
                    // Interim responses (`100 Continue`, `103`) do not stop the body.
                    Ok(_) if !skip_interim(answer) => continue,
                    Ok(_) => Ok(false),
                    Err(e) => Err(Error::because(ReadError, "upstream failed during the request body", e).into_up()),
                },
                read = read => self.absorb(read).map(|()| true),
            };
        }
    }

    /// Takes a client read into the scratch buffer: what belongs to the body stays there,
    /// what came after it is the next request's.
    fn absorb(
        &mut self,
        read: std::result::Result<std::io::Result<usize>, pingora::time::Elapsed>,
    ) -> Result<()> {
        match read {
            Ok(Ok(0)) => {
                Err(Error::explain(ConnectionClosed, "client closed inside the request body").into_down())
            }
            Ok(Ok(n)) => {
                self.clock.received += n as u64;
                let take = self.framer.body_len(&self.scratch)?;
                self.leftover.extend_from_slice(&self.scratch[take..]);
                self.scratch.truncate(take);
                Ok(())
            }
            Ok(Err(e)) => Err(Error::because(ReadError, "reading the request body", e).into_down()),
            Err(_) => Err(Error::explain(ReadTimedout, "request body timed out").into_down()),
        }
    }
}

/// Writes `data` upstream (and flushes), with the write timeout.
async fn send_up<W: AsyncWrite + Unpin>(up: &mut W, data: &[u8], timeout: Duration) -> Result<()> {
    super::body::write(up, &[data], timeout).await.map_err(|e| e.into_up())
}

impl Framer {
    /// How many bytes of `data` belong to the body, without consuming them (for chunked
    /// bodies, by following a copy of the decoder).
    fn body_len(&self, data: &[u8]) -> Result<usize> {
        match self.framing {
            BodyFraming::None => Ok(0),
            BodyFraming::Length(_) => Ok(data.len().min(usize::try_from(self.left).unwrap_or(usize::MAX))),
            BodyFraming::Chunked => {
                let mut probe = self.chunks.clone();
                probe.feed(data, |_| {}).map_err(|why| Error::explain(InvalidHTTPHeader, why).into_down())
            }
        }
    }

    /// Takes the body's bytes at the start of `data`: returns how many there are, and for a
    /// chunked body puts them, re-framed, in `framed` (the last chunk too once it is seen).
    /// Enforces the size limit on chunked bodies.
    fn follow(&mut self, data: &[u8], framed: &mut Vec<u8>) -> Result<usize> {
        match self.framing {
            BodyFraming::None => Ok(0),
            BodyFraming::Length(_) => {
                let take = data.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= take as u64;
                self.complete = self.left == 0;
                Ok(take)
            }
            BodyFraming::Chunked => {
                framed.clear();
                let take = self
                    .chunks
                    .feed(data, |piece| chunks::encode(piece, framed))
                    .map_err(|why| Error::explain(InvalidHTTPHeader, why).into_down())?;
                // A chunk whose size line says it would go over the limit is refused there,
                // before its data goes anywhere (as nginx does).
                if self.limit.is_some_and(|limit| self.chunks.promised() > limit) {
                    return Err(Error::explain(HTTPStatus(413), "request body over the size limit"));
                }
                self.complete = self.chunks.is_done();
                if self.complete {
                    framed.extend_from_slice(chunks::LAST_CHUNK);
                }
                Ok(take)
            }
        }
    }

    /// Where the piece just followed is: in the input (`range`) or re-framed.
    fn piece(&self, range: std::ops::Range<usize>) -> Piece {
        match self.framing {
            BodyFraming::Chunked => Piece::Framed,
            _ => Piece::Prefix(range),
        }
    }
}

impl Replay {
    /// Keeps a copy of a piece sent, while the body so far fits.
    fn keep(&mut self, piece: &[u8]) {
        if !self.whole {
            return;
        }
        if self.bytes.len() + piece.len() > REPLAY_MAX {
            self.whole = false;
            self.bytes = Vec::new();
        } else {
            self.bytes.extend_from_slice(piece);
        }
    }
}

impl BodyClock {
    /// How long the next read may wait: `per_read`, less when the body's deadline is nearer;
    /// an error once the deadline passed.
    fn wait(&mut self) -> Result<Duration> {
        let allowance = self.per_read + Duration::from_secs(self.received / BODY_MIN_RATE);
        let left = allowance.saturating_sub(self.started.get_or_insert_with(Instant::now).elapsed());
        if left.is_zero() {
            return Err(Error::explain(ReadTimedout, "request body too slow").into_down());
        }
        Ok(left.min(self.per_read))
    }
}

/// Writes `parts` and flushes. While the upstream's socket buffer is full, also watches for
/// it to start answering (its bytes land in `answer`), which ends the write early.
async fn watch_write(
    up: &mut Upstream,
    pending: &mut Parts<'_>,
    answer: &mut BytesMut,
    timeout: Duration,
) -> Result<Sent> {
    let io = poll_fn(|cx| {
        loop {
            let written = match pending.poll_write(up, cx) {
                Poll::Ready(Ok(())) => Pin::new(&mut *up).poll_flush(cx),
                other => other,
            };
            match written {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(Sent::All)),
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Error::because(WriteError, "writing upstream", e)));
                }
                Poll::Pending => {}
            }
            // Blocked on the upstream: see whether it is answering instead of reading. (The
            // buffer is made here, not up front: zeroing it cost every request a `memset`.)
            let mut peek = [0u8; 4096];
            let mut read = ReadBuf::new(&mut peek);
            match Pin::new(&mut *up).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    return Poll::Ready(Err(Error::explain(
                        ConnectionClosed,
                        "upstream closed during the request",
                    )));
                }
                Poll::Ready(Ok(())) => {
                    answer.extend_from_slice(read.filled());
                    // Interim responses (`100 Continue`, `103`) do not stop the body.
                    if skip_interim(answer) {
                        return Poll::Ready(Ok(Sent::Answered));
                    }
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Error::because(
                        ReadError,
                        "upstream failed during the request",
                        e,
                    )));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    match within(timeout, io).await {
        Ok(result) => result.map_err(|e| e.into_up()),
        Err(_) => Err(Error::explain(WriteTimedout, "upstream write timed out").into_up()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_reframed_without_extensions_or_trailers() {
        let prefix = b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\nGET /next";
        let mut upload = Upload::new(BodyFraming::Chunked, prefix, true, Duration::from_secs(60));
        upload.limit(Some(100));
        let piece = upload.take_prefix().unwrap();
        assert_eq!(upload.bytes(&piece), b"3\r\nabc\r\n0\r\n\r\n");
        assert!(upload.is_complete());
        assert_eq!(&prefix[upload.consumed..], b"GET /next");
        assert_eq!(upload.replay.bytes, b"3\r\nabc\r\n0\r\n\r\n");

        let mut over = Upload::new(BodyFraming::Chunked, b"5\r\nhello\r\n", false, Duration::from_secs(60));
        over.limit(Some(4));
        assert_eq!(over.take_prefix().unwrap_err().etype(), &HTTPStatus(413));
        // Refused at the size line, before any of the chunk's data arrived.
        let mut declared = Upload::new(BodyFraming::Chunked, b"200000\r\n", false, Duration::from_secs(60));
        declared.limit(Some(1 << 20));
        assert_eq!(declared.take_prefix().unwrap_err().etype(), &HTTPStatus(413));
        let mut bad = Upload::new(BodyFraming::Chunked, b"5 x\r\nhello\r\n", false, Duration::from_secs(60));
        assert_eq!(bad.take_prefix().unwrap_err().etype(), &InvalidHTTPHeader);
    }

    #[test]
    fn length_bodies_stop_at_their_length_and_replay_only_while_small() {
        let prefix = b"abcdeGET /next";
        let mut upload = Upload::new(BodyFraming::Length(5), prefix, true, Duration::from_secs(60));
        let piece = upload.take_prefix().unwrap();
        assert_eq!(upload.bytes(&piece), b"abcde");
        assert!(upload.is_complete() && upload.replayable());
        let mut replay = Replay { bytes: Vec::new(), whole: true };
        replay.keep(&vec![0; REPLAY_MAX]);
        assert!(replay.whole);
        replay.keep(b"x");
        assert!(!replay.whole && replay.bytes.is_empty());
    }

    #[test]
    fn a_body_must_keep_a_minimum_rate() {
        let mut clock = BodyClock { per_read: Duration::from_secs(60), started: None, received: 0 };
        let first = clock.wait().unwrap();
        assert!(first <= Duration::from_secs(60) && first > Duration::from_secs(59));
        let started = clock.started.unwrap();
        clock.started = Some(started - Duration::from_secs(59));
        assert!(clock.wait().unwrap() <= Duration::from_secs(1), "the first minute is nearly over");
        clock.received = 10 * BODY_MIN_RATE;
        assert!(clock.wait().unwrap() > Duration::from_secs(10), "bytes received buy time");
        clock.started = Some(started - Duration::from_secs(79));
        assert!(clock.wait().is_err(), "too slow on average");
    }
}
