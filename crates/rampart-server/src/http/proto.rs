//! Which HTTP version a client connection speaks, and the hyper connection that serves it.
//!
//! Hot path for new connections: hyper-util's `auto` connection learns the version by reading
//! exactly 24 bytes, then hands them to hyper, whose parser needs a second read for the rest of
//! the head and grows its read buffer from 8 to 16 KiB on the way (kept for the life of the
//! connection). Here the first read takes what the client sent, up to hyper's initial buffer
//! size, so a request head usually arrives in one read and hyper keeps its 8 KiB buffer.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// hyper's initial read buffer: a first read of at most this much fits it whole.
const FIRST_READ: usize = 8192;

/// The protocol a connection opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// HTTP/1.x (also an empty connection: hyper reports what is wrong with it).
    H1,
    /// HTTP/2: the connection began with the prior-knowledge preface.
    H2,
}

/// Reads the connection's first bytes and tells the HTTP/2 preface from anything else. Returns
/// the version and the bytes read, which the connection must see first.
pub(crate) async fn sniff<I: AsyncRead + Unpin>(io: &mut I) -> io::Result<(Version, Bytes)> {
    let mut first = read_chunk(io).await?;
    loop {
        let seen = first.len().min(H2_PREFACE.len());
        if first.is_empty() || first[..seen] != H2_PREFACE[..seen] {
            return Ok((Version::H1, first));
        }
        if seen == H2_PREFACE.len() {
            return Ok((Version::H2, first));
        }
        // Part of the preface so far (rare): read on until it is whole or differs.
        let more = read_chunk(io).await?;
        if more.is_empty() {
            return Ok((Version::H1, first));
        }
        let mut joined = BytesMut::with_capacity(first.len() + more.len());
        joined.extend_from_slice(&first);
        joined.extend_from_slice(&more);
        first = joined.freeze();
    }
}

/// One read of at most [`FIRST_READ`] bytes (empty at end of stream). The buffer lives on the
/// stack during the poll only, so a connection waiting for its first byte holds none.
async fn read_chunk<I: AsyncRead + Unpin>(io: &mut I) -> io::Result<Bytes> {
    std::future::poll_fn(|cx| {
        let mut buf = [MaybeUninit::<u8>::uninit(); FIRST_READ];
        let mut read = ReadBuf::uninit(&mut buf);
        match Pin::new(&mut *io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Bytes::copy_from_slice(read.filled()))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// I/O that yields `prefix` before reading from `io` (writes go straight to `io`).
pub(crate) struct Prefixed<I> {
    prefix: Bytes,
    io: I,
}

impl<I> Prefixed<I> {
    /// `io` after `prefix` was read from it.
    pub(crate) const fn new(prefix: Bytes, io: I) -> Self {
        Self { prefix, io }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Free the first read's buffer now, not when the connection closes.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn sniffed(chunks: &[&[u8]]) -> (Version, Vec<u8>) {
        let mut io = chunks_then_eof(chunks);
        let (version, prefix) = sniff(&mut io).await.unwrap();
        (version, prefix.to_vec())
    }

    /// A reader that returns `chunks` one read at a time, then end of stream.
    fn chunks_then_eof(chunks: &[&[u8]]) -> impl AsyncRead + Unpin {
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        ChunkReader { chunks, next: 0 }
    }

    struct ChunkReader {
        chunks: Vec<Vec<u8>>,
        next: usize,
    }

    impl AsyncRead for ChunkReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(chunk) = self.chunks.get(self.next) {
                buf.put_slice(chunk);
                self.next += 1;
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_whole_http1_head_is_taken_in_one_read() {
        let head: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            sniffed(&[head, b"more"]).await,
            (Version::H1, head.to_vec())
        );
    }

    #[tokio::test]
    async fn the_preface_split_over_reads_is_http2() {
        let (a, b) = H2_PREFACE.split_at(5);
        let (version, prefix) = sniffed(&[a, b, b"frames"]).await;
        assert_eq!(version, Version::H2);
        assert_eq!(prefix, H2_PREFACE);
    }

    #[tokio::test]
    async fn a_preface_lookalike_is_http1_at_the_first_difference() {
        assert_eq!(
            sniffed(&[b"PRI", b" * HTTP/1.1\r\n"]).await,
            (Version::H1, b"PRI * HTTP/1.1\r\n".to_vec())
        );
        assert_eq!(sniffed(&[b"PRX"]).await.0, Version::H1);
    }

    #[tokio::test]
    async fn an_empty_or_cut_connection_is_left_to_http1() {
        assert_eq!(sniffed(&[]).await, (Version::H1, Vec::new()));
        assert_eq!(sniffed(&[b"PRI *"]).await, (Version::H1, b"PRI *".to_vec()));
    }

    #[tokio::test]
    async fn the_prefix_is_read_first_and_its_buffer_freed() {
        let mut io = Prefixed::new(Bytes::from_static(b"abc"), chunks_then_eof(&[b"def"]));
        let mut out = [0u8; 2];
        io.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"ab");
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"cdef");
        assert!(io.prefix.is_empty());
    }
}
