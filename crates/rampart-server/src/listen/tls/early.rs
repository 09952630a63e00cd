//! A server TLS stream that serves TLS 1.3 early data (0-RTT) before the handshake completes.
//!
//! tokio-rustls completes the whole handshake before it yields a stream, and offers no way to
//! read early data on the server. This stream drives `rustls::ServerConnection` itself: it is
//! handed to hyper as soon as the ClientHello is processed and the server's flight is sent;
//! reads yield the early data first, then the rest of the handshake (the client's Finished) is
//! processed as more bytes arrive. [`EarlyTlsStream::handshake_done`] tells the request path
//! whether the handshake has completed: a request dispatched before that came in early data and
//! may be a replay (RFC 8470), so only safe methods are served and `Early-Data: 1` is sent on.

use std::io::{self, Read as _, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use rustls::{ServerConfig, ServerConnection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Server TLS over a TCP stream, with early data.
pub(crate) struct EarlyTlsStream {
    io: TcpStream,
    conn: ServerConnection,
    done: Arc<AtomicBool>,
    eof: bool,
    early_accepted: bool,
}

struct SyncIo<'a, 'b> {
    io: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl io::Read for SyncIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut rb) {
            Poll::Ready(Ok(())) => Ok(rb.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl io::Write for SyncIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl EarlyTlsStream {
    /// Reads the ClientHello and sends the server's flight. Returns once the handshake is
    /// complete, or earlier when early data was accepted (the rest then happens while reading).
    pub(crate) async fn accept(io: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut this = Self {
            io,
            conn,
            done: Arc::new(AtomicBool::new(false)),
            eof: false,
            early_accepted: false,
        };
        std::future::poll_fn(|cx| this.poll_start(cx)).await?;
        this.early_accepted = this.conn.early_data().is_some();
        Ok(this)
    }

    fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.poll_write_tls(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
            }
            if !self.conn.is_handshaking() {
                self.done.store(true, Ordering::Release);
                return Poll::Ready(Ok(()));
            }
            if self.conn.early_data().is_some() {
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            match self.poll_read_tls(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The rustls connection (for the negotiated parameters).
    pub(crate) const fn connection(&self) -> &ServerConnection {
        &self.conn
    }

    /// The client's early data was accepted.
    pub(crate) const fn early_accepted(&self) -> bool {
        self.early_accepted
    }

    /// Set once the handshake has completed (the client's Finished was verified).
    pub(crate) fn handshake_done(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.done)
    }

    /// Writes pending TLS records to the socket; `Ready(Ok)` when nothing is left to write.
    fn poll_write_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let mut sync = SyncIo {
                io: &mut self.io,
                cx,
            };
            match self.conn.write_tls(&mut sync) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Reads TLS records from the socket and processes them.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sync = SyncIo {
            io: &mut self.io,
            cx,
        };
        match self.conn.read_tls(&mut sync) {
            Ok(0) => self.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        }
        if let Err(err) = self.conn.process_new_packets() {
            // Send the alert rustls queued, best effort.
            let _ = self.poll_write_tls(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, err)));
        }
        if !self.conn.is_handshaking() {
            self.done.store(true, Ordering::Release);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for EarlyTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let dst = buf.initialize_unfilled();
            if dst.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if let Some(mut early) = this.conn.early_data()
                && let Ok(n) = early.read(dst)
                && n > 0
            {
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            match this.conn.reader().read(dst) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.eof {
                // The peer closed without close_notify after rustls saw everything.
                return Poll::Ready(Ok(()));
            }
            // Handshake messages or alerts may be waiting to go out (best effort here).
            if let Poll::Ready(Err(e)) = this.poll_write_tls(cx) {
                return Poll::Ready(Err(e));
            }
            match this.poll_read_tls(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for EarlyTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut n = this.conn.writer().write(data)?;
        let flushed = this.poll_write_tls(cx)?;
        if n == 0 {
            if flushed.is_pending() {
                return Poll::Pending;
            }
            n = this.conn.writer().write(data)?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let _ = this.poll_write_tls(cx)?;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.conn.writer().flush()?;
        // Writes the records and flushes the stream under them.
        this.poll_write_tls(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.conn.send_close_notify();
        std::task::ready!(this.poll_write_tls(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
