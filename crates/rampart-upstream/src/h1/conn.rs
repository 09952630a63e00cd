//! An HTTP/1.1 upstream connection and one request/response exchange on it, driven directly by
//! the task that serves the client request.
//!
//! Hand-written on purpose: hyper's client runs every connection as its own task and hands
//! requests and responses across channels, which costs two task wake-ups, a channel and a
//! oneshot per request. Here the request head is written, the response head read and the body
//! streamed by the task that already owns the client request (measured with callgrind on the
//! proxy path; see docs/architecture.md). Upgrades and HTTP/2 still use hyper's client.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use http::Request;
use http_body::Body as _;
use http_body_util::BodyExt;
use rampart_core::{Body, BoxError};
use tokio::net::TcpStream;

use super::decode::{BadResponse, Field, Head, final_response_started, parse_head};
use super::encode::{LAST_CHUNK, RequestFraming, chunk_header, encode_head, framing};

/// Initial size of a connection's read buffer; it grows for large bodies.
const READ_BUF: usize = 8 * 1024;

/// Bytes read at once while streaming a large body.
const READ_CHUNK: usize = 64 * 1024;

/// An open HTTP/1.1 connection to a target.
#[derive(Debug)]
pub(crate) struct H1Conn {
    io: TcpStream,
    /// Bytes read from the upstream and not consumed yet.
    pub(crate) buf: BytesMut,
    /// Serialized request head (kept to reuse its allocation).
    out: BytesMut,
    /// Scratch space for parsing response heads.
    fields: Vec<Field>,
    /// Requests served so far on this connection.
    pub(crate) uses: u64,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// The connection failed before any byte of a response arrived.
    Io(io::Error),
    /// The response was not valid HTTP/1.1.
    BadResponse(&'static str),
    /// No response head within the timeout (counted from the end of the request body).
    Timeout,
    /// The client's request body failed.
    Body(BoxError),
}

impl From<BadResponse> for ExchangeError {
    fn from(e: BadResponse) -> Self {
        Self::BadResponse(e.0)
    }
}

impl H1Conn {
    /// Wraps a connected stream.
    pub(crate) fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(READ_BUF),
            out: BytesMut::with_capacity(512),
            fields: Vec::new(),
            uses: 0,
        }
    }

    /// True when an idle connection is still usable: the upstream has not closed it and has
    /// not sent anything unsolicited. Checks the reactor's readiness first, so a healthy idle
    /// connection costs no system call.
    pub(crate) fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                matches!(self.io.try_read_buf(&mut self.buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends `req` and reads the response head. The body of `req` is taken only when there is
    /// one; a request without a body stays intact in `req`, so it can be replayed on another
    /// connection if this one turns out to be dead.
    /// Also returns whether the whole request was sent (if not, the upstream answered early and
    /// the connection cannot be reused).
    pub(crate) async fn exchange(
        &mut self,
        req: &mut Request<Body>,
        timeout: Duration,
    ) -> Result<(Head, bool), ExchangeError> {
        self.uses += 1;
        let method = req.method().clone();
        let body = req.body();
        let framing = framing(body.is_end_stream(), body.size_hint().exact());
        self.out.clear();
        encode_head(req, framing, &mut self.out);
        let early = if framing == RequestFraming::Empty {
            self.write_head().await.map_err(ExchangeError::Io)?;
            false
        } else {
            let mut body = std::mem::take(req.body_mut());
            self.send_with_body(&mut body, framing).await?
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        if !early && let Some(head) = parse_head(&mut self.buf, &method, &mut self.fields)? {
            return Ok((head, true));
        }
        loop {
            tokio::select! {
                biased;
                read = self.read_more(READ_BUF) => {
                    read.map_err(ExchangeError::Io)?;
                    if let Some(head) = parse_head(&mut self.buf, &method, &mut self.fields)? {
                        return Ok((head, !early));
                    }
                }
                () = &mut deadline => return Err(ExchangeError::Timeout),
            }
        }
    }

    /// Writes the request head; usually one non-blocking write.
    async fn write_head(&mut self) -> io::Result<()> {
        let mut written = 0;
        while written < self.out.len() {
            self.io.writable().await?;
            match self.io.try_write(&self.out[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes the head and streams the body. Returns `true` when the upstream started answering
    /// before the whole body was sent (then sending stops and the connection is not reused).
    async fn send_with_body(
        &mut self,
        body: &mut Body,
        framing: RequestFraming,
    ) -> Result<bool, ExchangeError> {
        let mut out = std::mem::take(&mut self.out);
        let result = self.send_body_inner(&mut out, body, framing).await;
        out.clear();
        self.out = out;
        result
    }

    async fn send_body_inner(
        &mut self,
        out: &mut BytesMut,
        body: &mut Body,
        framing: RequestFraming,
    ) -> Result<bool, ExchangeError> {
        if self.write_watching(out).await.map_err(ExchangeError::Io)? {
            return Ok(true);
        }
        let chunked = framing == RequestFraming::Chunked;
        loop {
            out.clear();
            let frame = tokio::select! {
                biased;
                early = response_started(&self.io, &mut self.buf) => {
                    if early.map_err(ExchangeError::Io)? {
                        return Ok(true);
                    }
                    continue;
                }
                frame = body.frame() => frame,
            };
            match frame {
                None => {
                    if chunked {
                        out.extend_from_slice(LAST_CHUNK);
                        return self.write_watching(out).await.map_err(ExchangeError::Io);
                    }
                    return Ok(false);
                }
                Some(Err(e)) => return Err(ExchangeError::Body(e)),
                Some(Ok(frame)) => {
                    // Trailers of a client body are not forwarded over HTTP/1.1.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    let early = if chunked {
                        chunk_header(data.len(), out);
                        out.extend_from_slice(&data);
                        out.extend_from_slice(b"\r\n");
                        self.write_watching(out).await
                    } else {
                        self.write_watching(&data).await
                    };
                    if early.map_err(ExchangeError::Io)? {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Writes `data` fully, unless the upstream starts a response first (returns `true`), so an
    /// upstream that answers early and stops reading cannot stall the write.
    async fn write_watching(&mut self, data: &[u8]) -> io::Result<bool> {
        let mut rest = data;
        while !rest.is_empty() {
            match self.io.try_write(rest) {
                Ok(n) => {
                    rest = &rest[n..];
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            tokio::select! {
                biased;
                early = response_started(&self.io, &mut self.buf) => if early? { return Ok(true) },
                ready = self.io.writable() => ready?,
            }
        }
        Ok(false)
    }

    /// Reads at least one more byte into the buffer; end of stream is an error here.
    async fn read_more(&mut self, want: usize) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_read_more(cx, want))
            .await
            .and_then(|n| {
                if n == 0 {
                    Err(io::ErrorKind::UnexpectedEof.into())
                } else {
                    Ok(())
                }
            })
    }

    /// Reads what is available into the buffer, returning the number of bytes (0: end of
    /// stream).
    pub(crate) fn poll_read_more(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < want.min(READ_CHUNK) / 2 {
            self.buf.reserve(want.min(READ_CHUNK));
        }
        loop {
            std::task::ready!(self.io.poll_read_ready(cx))?;
            match self.io.try_read_buf(&mut self.buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Completes when the upstream started a final response (`true`), or when bytes arrived that
/// are only interim responses or a stale readiness was cleared (`false`).
async fn response_started(io: &TcpStream, buf: &mut BytesMut) -> io::Result<bool> {
    io.readable().await?;
    match io.try_read_buf(buf) {
        Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => Ok(final_response_started(buf)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}
