//! [`BatchedIo`]: a TLS stream whose writes reach TLS once per wake-up of the connection
//! instead of once per flush.
//!
//! The HTTP/2 codec flushes after every DATA frame larger than 256 bytes (it writes such
//! payloads without copying them and must flush before it can encode the next frame), and
//! tokio-rustls seals what it is given into a record and writes it to the socket at once. Ten
//! responses ready at the same moment thus cost ten records (each with its AEAD setup, nonce,
//! tag and 22 bytes on the wire) and ten `writev` calls. Here the plaintext a connection writes
//! is gathered while hyper runs, and the connection's serving loop hands it to TLS in one write
//! right after each poll of the connection ([`BatchFlusher::poll_write_out`]): one record per
//! 16 KiB and one system call. Hand-written: no crate defers an `AsyncWrite` flush to its
//! caller's task like this.
//!
//! A flush is deferred only while the serving loop owns the connection (until hyper finishes
//! with it); otherwise it writes at once, so a tunnel or a shutdown never waits for a loop that
//! no longer runs. Writes of [`DIRECT`] bytes or more pass straight through when nothing is
//! held, and the buffer is written out before it would pass [`LIMIT`].

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A write at least this large is not buffered when nothing is held (it fills a full-size TLS
/// record, 16 KiB, on its own).
const DIRECT: usize = 16 * 1024;
/// The buffer is written out before it grows past this.
const LIMIT: usize = 64 * 1024;
/// A buffer grown past this is freed once written out, so idle connections hold no large one.
const KEEP: usize = 16 * 1024;

struct Batch<S> {
    stream: S,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written.
    written: usize,
    /// Flushes wait for the serving loop.
    deferring: bool,
}

impl<S: AsyncWrite + Unpin> Batch<S> {
    /// Writes everything held to the stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.written = 0;
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// Writes everything held and flushes the stream (where TLS writes its records out).
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Makes room for `len` more bytes: true once they may be held, false when they should go
    /// straight to the stream.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.buf.len() + len > LIMIT {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(!(self.buf.is_empty() && len >= DIRECT)))
    }
}

fn lock<S>(batch: &Mutex<Batch<S>>) -> MutexGuard<'_, Batch<S>> {
    // A panic while the lock was held cannot leave the buffer inconsistent with `written`
    // in a way that matters more than the connection it belongs to.
    batch.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stream side, handed to hyper.
pub(crate) struct BatchedIo<S>(Arc<Mutex<Batch<S>>>);

/// The serving loop's side: writes out what the stream holds.
pub(crate) struct BatchFlusher(Arc<dyn WriteOut>);

/// What the serving loop does to a batch, whatever stream is under it.
trait WriteOut: Send + Sync {
    fn set_deferring(&self, deferring: bool);
    fn poll_write_out(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl<S: AsyncWrite + Unpin + Send> WriteOut for Mutex<Batch<S>> {
    fn set_deferring(&self, deferring: bool) {
        lock(self).deferring = deferring;
    }

    fn poll_write_out(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(self).poll_write_out(cx)
    }
}

impl<S: AsyncWrite + Unpin + Send + 'static> BatchedIo<S> {
    /// Wraps a stream; flushes write at once until [`BatchFlusher::defer`].
    pub(crate) fn new(stream: S) -> (Self, BatchFlusher) {
        let batch = Arc::new(Mutex::new(Batch {
            stream,
            buf: Vec::new(),
            written: 0,
            deferring: false,
        }));
        (Self(Arc::clone(&batch)), BatchFlusher(batch))
    }
}

impl BatchFlusher {
    /// From now on, flushes wait for [`Self::poll_write_out`].
    pub(crate) fn defer(&self) {
        self.0.set_deferring(true);
    }

    /// Writes out what is held (registering for writability if the socket is full).
    pub(crate) fn poll_write_out(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_write_out(cx)
    }

    /// The serving loop is done: flushes write at once again, and what is held is written.
    pub(crate) async fn finish(&self) -> io::Result<()> {
        self.0.set_deferring(false);
        std::future::poll_fn(|cx| self.poll_write_out(cx)).await
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BatchedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.0).stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BatchedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut batch = lock(&self.0);
        if !ready!(batch.poll_room(cx, data.len()))? {
            return Pin::new(&mut batch.stream).poll_write(cx, data);
        }
        batch.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut batch = lock(&self.0);
        let len = bufs.iter().map(|b| b.len()).sum();
        if !ready!(batch.poll_room(cx, len))? {
            return Pin::new(&mut batch.stream).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            batch.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut batch = lock(&self.0);
        if batch.deferring {
            return Poll::Ready(Ok(()));
        }
        batch.poll_write_out(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut batch = lock(&self.0);
        ready!(batch.poll_drain(cx))?;
        Pin::new(&mut batch.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A connected loopback pair: the batched side with its flusher, and a plain reader.
    async fn pair() -> (BatchedIo<TcpStream>, BatchFlusher, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (io, flusher) = BatchedIo::new(client.unwrap());
        (io, flusher, accepted.unwrap().0)
    }

    /// Whatever the reader gets within 200 ms.
    async fn available(reader: &mut TcpStream) -> Vec<u8> {
        let mut got = vec![0; 256 * 1024];
        let mut n = 0;
        while let Ok(Ok(k)) =
            tokio::time::timeout(Duration::from_millis(200), reader.read(&mut got[n..])).await
        {
            if k == 0 {
                break;
            }
            n += k;
        }
        got.truncate(n);
        got
    }

    #[tokio::test]
    async fn flushes_write_at_once_until_deferred_then_the_loop_writes_everything_together() {
        let (mut io, flusher, mut reader) = pair().await;
        io.write_all(b"handshake").await.unwrap();
        assert!(
            available(&mut reader).await.is_empty(),
            "sent before the flush"
        );
        io.flush().await.unwrap();
        assert_eq!(available(&mut reader).await, b"handshake");

        flusher.defer();
        io.write_all(b"frame one, ").await.unwrap();
        io.flush().await.unwrap();
        let n = io
            .write_vectored(&[IoSlice::new(b"frame "), IoSlice::new(b"two")])
            .await
            .unwrap();
        assert_eq!(n, 9, "a vectored write is held whole");
        io.flush().await.unwrap();
        assert!(
            available(&mut reader).await.is_empty(),
            "a deferred flush wrote"
        );
        std::future::poll_fn(|cx| flusher.poll_write_out(cx))
            .await
            .unwrap();
        assert_eq!(available(&mut reader).await, b"frame one, frame two");

        io.write_all(b"last response").await.unwrap();
        io.flush().await.unwrap();
        flusher.finish().await.unwrap();
        assert_eq!(available(&mut reader).await, b"last response");
        io.write_all(b", then a tunnel").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(available(&mut reader).await, b", then a tunnel");
    }

    #[tokio::test]
    async fn large_writes_pass_through_and_the_buffer_stays_bounded() {
        let (mut io, flusher, mut reader) = pair().await;
        flusher.defer();
        io.write_all(&vec![7u8; DIRECT]).await.unwrap();
        assert_eq!(
            available(&mut reader).await.len(),
            DIRECT,
            "a large write waited"
        );
        for _ in 0..(LIMIT / 1000 + 1) {
            io.write_all(&[1u8; 1000]).await.unwrap();
        }
        let early = available(&mut reader).await.len();
        assert!(early > 0, "a full buffer was not written out");
        std::future::poll_fn(|cx| flusher.poll_write_out(cx))
            .await
            .unwrap();
        assert_eq!(
            early + available(&mut reader).await.len(),
            LIMIT / 1000 * 1000 + 1000
        );
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_held_first_even_when_deferring() {
        let (mut io, flusher, mut reader) = pair().await;
        flusher.defer();
        io.write_all(b"close_notify").await.unwrap();
        io.shutdown().await.unwrap();
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"close_notify");
    }
}
