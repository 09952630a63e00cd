//! Noticing an HTTP/1 client that closes its connection while its request is in flight, so the
//! request is abandoned (logged 499, upstream work dropped) as nginx does, without hyper's own
//! check.
//!
//! hyper finds such a client by reading the socket again while the request is in flight. That
//! read makes it allocate a fresh 8 KiB read buffer for every request (the previous one is still
//! shared with the request's head), and the waker it leaves makes the connection's task run
//! once more when the request finishes: about 2,000 instructions per request in all
//! (callgrind, scenario a). With hyper's `half_close(true)` that read is skipped, and the
//! connection loop watches the socket itself: it waits for read readiness and peeks one byte.
//! A reset means the client is gone. Zero bytes is the client ending its side: after a
//! complete request that is a half-close (RFC 9112 §9.6), answered as usual; inside a body,
//! hyper's own read of the body meets the same end and fails the request. Data means the
//! client sent more (a body, or a pipelined request). Either way hyper reads in its time, and
//! the watch rests until hyper has read again.
//!
//! The socket is shared between hyper's I/O and the watch, behind a mutex that is never
//! contended: both are polled by the connection's one task.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http::io::ConnState;

/// A client TCP stream that hyper reads and writes while [`CloseWatch`] can peek at it.
pub(crate) struct SharedStream(Arc<Mutex<TcpStream>>);

impl SharedStream {
    /// Shares `stream`; the second half watches it.
    pub(crate) fn new(stream: TcpStream) -> (Self, CloseWatch) {
        let shared = Arc::new(Mutex::new(stream));
        let watch = CloseWatch {
            stream: Arc::clone(&shared),
            resting_at: None,
        };
        (Self(shared), watch)
    }

    fn lock(&self) -> MutexGuard<'_, TcpStream> {
        lock(&self.0)
    }
}

/// Locks the shared stream. A panic while it was held cannot leave a `TcpStream` half-changed,
/// so a poisoned lock is used as is.
fn lock(stream: &Mutex<TcpStream>) -> MutexGuard<'_, TcpStream> {
    stream.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_shutdown(cx)
    }
}

/// Watches a [`SharedStream`] for its client closing while a request is in flight.
pub(crate) struct CloseWatch {
    stream: Arc<Mutex<TcpStream>>,
    /// Set when a peek found data: the watch rests until hyper has read since (the count of
    /// in-flight reads it saw then).
    resting_at: Option<u32>,
}

impl CloseWatch {
    /// Ready once the client reset the connection while a request is in flight.
    /// Registers for read readiness otherwise; with no request in flight it does nothing.
    pub(crate) fn poll_closed(&mut self, cx: &mut Context<'_>, state: &ConnState) -> Poll<()> {
        if !state.busy() {
            self.resting_at = None;
            return Poll::Pending;
        }
        let reads = state.reads_in_flight();
        if self.resting_at == Some(reads) {
            return Poll::Pending;
        }
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        match lock(&self.stream).poll_peek(cx, &mut buf) {
            Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(_)) => {
                self.resting_at = Some(reads);
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
