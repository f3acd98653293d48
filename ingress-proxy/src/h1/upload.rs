//! Request bodies on the fast path ([`super`]): streamed upstream as the client sends them,
//! while the upstream is watched for an early answer.
//!
//! Why watch: an upstream may answer before it has read the body (a `413`, a `401`, a
//! redirect) and stop reading. A proxy that only writes would then sit in a full socket
//! buffer until the write timeout. Here every wait, on the client or on the upstream's
//! buffer, also ends when the upstream starts answering; the answer is relayed, and neither
//! connection is used again (the body was not consumed).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use pingora::ErrorType::{
    ConnectionClosed, HTTPStatus, InvalidHTTPHeader, ReadError, ReadTimedout, WriteError, WriteTimedout,
};
use pingora::protocols::Stream;
use pingora::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::body::Parts;
use super::chunks::Chunks;
use super::head::BodyFraming;
use super::response::skip_interim;

/// The most of a body kept to send again when a pooled connection turns out closed (the size
/// of Pingora's retry buffer); a longer body is not retried.
const REPLAY_MAX: usize = 64 * 1024;

/// Room made before each read of the client.
const READ_CHUNK: usize = 16 * 1024;

/// How a watched write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// All of it went out.
    All,
    /// The upstream began answering first; what it sent is in the response buffer.
    Answered,
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
    scratch: BytesMut,
    replay: Replay,
    /// How long to wait for the client's next bytes.
    client_timeout: Duration,
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
    /// The configured body size limit, for bodies without a declared length.
    limit: Option<u64>,
    /// The whole body has been read.
    complete: bool,
}

/// What of the body was read from the client after the head, while the body so far fits
/// [`REPLAY_MAX`] (what came with the head stays in the connection's buffer until the request
/// ends, so it needs no copy).
#[derive(Debug)]
struct Replay {
    bytes: Vec<u8>,
    /// Body bytes read so far, the prefix's included.
    total: usize,
    whole: bool,
}

impl<'p> Upload<'p> {
    /// The body of a request delimited by `framing`, whose first bytes (if any) are in `prefix`.
    ///
    /// `replay`: whether to keep what is needed to send the body again (only idempotent
    /// requests are ever sent again).
    pub(crate) fn new(
        framing: BodyFraming,
        prefix: &'p [u8],
        replay: bool,
        client_timeout: Duration,
    ) -> Self {
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
            replay: Replay { bytes: Vec::new(), total: 0, whole: replay },
            client_timeout,
            unsent: Vec::new(),
            written: false,
        }
    }

    /// Sets the body size limit of the request's route, enforced on bodies without a declared
    /// length as they arrive (a declared length is checked before the body is read).
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
        if self.next_from_prefix().is_err() {
            return false;
        }
        self.framer.complete
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

    /// Sends `head` and then the body, as the client sends it. On a `retry` the body read so
    /// far goes out again first. The response buffer `answer` receives whatever the upstream
    /// sends meanwhile; it stops the body once it holds a final response head, and
    /// [`Upload::is_written`] then says the body did not all go out.
    pub(crate) async fn send(
        &mut self,
        head: &[u8],
        retry: bool,
        up: &mut Stream,
        answer: &mut BytesMut,
        client: &mut Stream,
        write_timeout: Duration,
    ) -> Result<()> {
        self.written = false;
        self.unsent.clear();
        // The head goes out with the body bytes already read, in one write.
        let first = if retry { &self.prefix[..self.consumed] } else { self.next_from_prefix()? };
        let again = if retry { &self.replay.bytes[..] } else { &[] };
        let parts = [head, first, again];
        let mut pending = Parts::new(&parts);
        if watch_write(up, &mut pending, answer, write_timeout).await? == Sent::Answered {
            self.unsent = pending.rest();
            return Ok(());
        }
        while !self.framer.complete {
            let piece = if self.consumed < self.prefix.len() {
                self.next_from_prefix()?
            } else if self.read_client(up, answer, client).await? {
                &self.scratch[..]
            } else {
                return Ok(());
            };
            let parts = [piece];
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
            if self.consumed < self.prefix.len() {
                let piece = self.next_from_prefix()?;
                send_up(up, piece, write_timeout).await?;
                continue;
            }
            self.scratch.clear();
            self.scratch.reserve(READ_CHUNK);
            let read = pingora::time::timeout(self.client_timeout, client.read_buf(&mut self.scratch)).await;
            self.absorb(read)?;
            send_up(up, &self.scratch, write_timeout).await?;
        }
        self.written = true;
        Ok(())
    }

    /// The next body bytes of the prefix.
    fn next_from_prefix(&mut self) -> Result<&'p [u8]> {
        let rest = &self.prefix[self.consumed..];
        let take = self.framer.follow(rest)?;
        self.consumed += take;
        self.replay.count(take);
        Ok(&rest[..take])
    }

    /// Reads the client's next body bytes into the scratch buffer; false if the upstream
    /// began answering first.
    async fn read_client(
        &mut self,
        up: &mut Stream,
        answer: &mut BytesMut,
        client: &mut Stream,
    ) -> Result<bool> {
        self.scratch.clear();
        self.scratch.reserve(READ_CHUNK);
        loop {
            answer.reserve(READ_CHUNK);
            let read = pingora::time::timeout(self.client_timeout, client.read_buf(&mut self.scratch));
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
}

impl Upload<'_> {
    /// Takes a client read into the scratch buffer: the body's part stays there (and in the
    /// replay), what came after it is the next request's.
    fn absorb(
        &mut self,
        read: std::result::Result<std::io::Result<usize>, pingora::time::Elapsed>,
    ) -> Result<()> {
        match read {
            Ok(Ok(0)) => {
                Err(Error::explain(ConnectionClosed, "client closed inside the request body").into_down())
            }
            Ok(Ok(_)) => {
                let take = self.framer.follow(&self.scratch)?;
                self.leftover.extend_from_slice(&self.scratch[take..]);
                self.scratch.truncate(take);
                self.replay.keep(&self.scratch);
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
    /// How many bytes of `data` belong to the body; notes where the body ends and enforces
    /// the size limit on bodies without a declared length.
    fn follow(&mut self, data: &[u8]) -> Result<usize> {
        let take = match self.framing {
            BodyFraming::None => 0,
            BodyFraming::Length(_) => {
                let take = data.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= take as u64;
                self.complete = self.left == 0;
                take
            }
            BodyFraming::Chunked => {
                let take = self
                    .chunks
                    .feed(data)
                    .map_err(|why| Error::explain(InvalidHTTPHeader, why).into_down())?;
                if self.limit.is_some_and(|limit| self.chunks.payload > limit) {
                    return Err(Error::explain(HTTPStatus(413), "request body over the size limit"));
                }
                self.complete = self.chunks.is_done();
                take
            }
        };
        Ok(take)
    }
}

impl Replay {
    /// Counts `n` more body bytes; false once the body outgrew the replay.
    fn count(&mut self, n: usize) -> bool {
        self.total += n;
        if self.whole && self.total > REPLAY_MAX {
            self.whole = false;
            self.bytes = Vec::new();
        }
        self.whole
    }

    /// Keeps a copy of `piece`, read from the client, while the body so far fits.
    fn keep(&mut self, piece: &[u8]) {
        if self.count(piece.len()) {
            self.bytes.extend_from_slice(piece);
        }
    }
}

/// Writes `parts` and flushes. While the upstream's socket buffer is full, also watches for
/// it to start answering (its bytes land in `answer`), which ends the write early.
async fn watch_write(
    up: &mut Stream,
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
            // Blocked on the upstream: see whether it is answering instead of reading. (The buffer
            // is made here, not up front: zeroing it cost every request a `memset`.)
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
    match pingora::time::timeout(timeout, io).await {
        Ok(result) => result.map_err(|e| e.into_up()),
        Err(_) => Err(Error::explain(WriteTimedout, "upstream write timed out").into_up()),
    }
}
