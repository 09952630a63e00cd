//! The client's stream once a connection switched protocols: what the connection read past
//! the request head comes first, then the stream itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::h1::wire::{SharedWire, lock};

/// The stream of an upgraded connection, handed to the tunnel.
pub(crate) struct Upgraded<S>(pub(crate) SharedWire<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Upgraded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut wire = lock(&self.0);
        if let Some(buf) = wire.buf.as_mut().filter(|b| !b.is_empty()) {
            let n = buf.len().min(out.remaining());
            out.put_slice(&buf[..n]);
            buf.advance(n);
            if buf.is_empty() {
                wire.buf = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut wire.io).poll_read(cx, out)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Upgraded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut lock(&self.0).io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.0).io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.0).io).poll_shutdown(cx)
    }
}
