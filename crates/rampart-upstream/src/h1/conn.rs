//! An HTTP/1.1 upstream connection and one request/response exchange on it, driven directly by
//! the task that serves the client request.
//!
//! Hand-written on purpose: hyper's client runs every connection as its own task and hands
//! requests and responses across channels, which costs two task wake-ups, a channel and a
//! oneshot per request. Here the request head is written, the response head read and the body
//! streamed by the task that already owns the client request (measured with callgrind on the
//! proxy path; see docs/architecture.md). Upgrades and HTTP/2 still use hyper's client.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use http::Request;
use http_body::Body as _;
use http_body_util::BodyExt;
use rampart_core::timer::LazyTimer;
use rampart_core::{Body, BoxError};
use tokio::io::AsyncWrite;
use tokio::time::Instant;

use crate::io::UpstreamIo;

use super::decode::{BadResponse, Head, HeadScratch, final_response_started, parse_head};
use super::encode::{LAST_CHUNK, RequestFraming, chunk_header, encode_head, framing};

/// Initial size of a connection's read buffer; it grows for large bodies.
const READ_BUF: usize = 8 * 1024;

/// Bytes read at once while streaming a large body.
const READ_CHUNK: usize = 64 * 1024;

/// An open HTTP/1.1 connection to a target.
#[derive(Debug)]
pub(crate) struct H1Conn {
    io: UpstreamIo,
    /// Bytes read from the upstream and not consumed yet.
    pub(crate) buf: BytesMut,
    /// Serialized request head (kept to reuse its allocation).
    out: BytesMut,
    /// Scratch space for parsing response heads.
    scratch: HeadScratch,
    /// Requests served so far on this connection.
    pub(crate) uses: u64,
    /// The response-head timer, kept across exchanges and moved lazily: each exchange's
    /// deadline is later than the previous one's.
    timer: LazyTimer,
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
    pub(crate) fn new(io: UpstreamIo) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(READ_BUF),
            out: BytesMut::with_capacity(512),
            scratch: HeadScratch::default(),
            uses: 0,
            timer: LazyTimer::new(Instant::now()),
        }
    }

    /// True when an idle connection is still usable: the upstream has not closed it and has
    /// not sent anything unsolicited. A cleartext stream answers from the reactor's readiness
    /// without a system call while nothing arrived.
    pub(crate) fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.buf.reserve(1);
        matches!(self.poll_read(&mut cx), Poll::Pending)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// Sends `req` (with the field lines `added` after its own, see
    /// [`encode_head`]) and reads the response head, waiting at most `timeout` after the request
    /// was sent; `started` is when the exchange began (the clock is read once). The body of `req` is taken only when there is
    /// one; a request without a body stays intact in `req`, so it can be replayed on another
    /// connection if this one turns out to be dead.
    /// Also returns whether the whole request was sent (if not, the upstream answered early and
    /// the connection cannot be reused).
    pub(crate) async fn exchange(
        &mut self,
        req: &mut Request<Body>,
        added: &[u8],
        started: Instant,
        timeout: Duration,
    ) -> Result<(Head, bool), ExchangeError> {
        self.uses += 1;
        let method = req.method().clone();
        let body = req.body();
        let framing = framing(body.is_end_stream(), body.size_hint().exact());
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        encode_head(req, added, framing, &mut out);
        let sent = if framing == RequestFraming::Empty {
            self.write_watching(&out).await
        } else {
            let mut body = std::mem::take(req.body_mut());
            self.send_with_body(&mut out, &mut body, framing).await
        };
        out.clear();
        self.out = out;
        let early = sent?;
        // Without a body, sending was one write: the deadline counts from the start.
        let sent_at = if framing == RequestFraming::Empty {
            started
        } else {
            Instant::now()
        };
        let deadline = sent_at + timeout;
        // Usually nothing has arrived yet: the first parse waits for the first read.
        if !self.buf.is_empty()
            && let Some(head) = parse_head(&mut self.buf, &method, &mut self.scratch)?
        {
            return Ok((head, !early));
        }
        loop {
            self.read_before(deadline).await?;
            if let Some(head) = parse_head(&mut self.buf, &method, &mut self.scratch)? {
                return Ok((head, !early));
            }
        }
    }

    /// Writes the head and streams the body. Returns `true` when the upstream started answering
    /// before the whole body was sent (then sending stops and the connection is not reused).
    async fn send_with_body(
        &mut self,
        out: &mut BytesMut,
        body: &mut Body,
        framing: RequestFraming,
    ) -> Result<bool, ExchangeError> {
        if self.write_watching(out).await? {
            return Ok(true);
        }
        let chunked = framing == RequestFraming::Chunked;
        loop {
            out.clear();
            let frame = tokio::select! {
                biased;
                early = std::future::poll_fn(|cx| self.poll_response_started(cx)) => {
                    early.map_err(ExchangeError::Io)?;
                    return Ok(true);
                }
                frame = body.frame() => frame,
            };
            let data = match frame {
                None if chunked => {
                    out.extend_from_slice(LAST_CHUNK);
                    return self.write_watching(out).await;
                }
                None => return Ok(false),
                Some(Err(e)) => return Err(ExchangeError::Body(e)),
                // Trailers of a client body are not forwarded over HTTP/1.1.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
            };
            let early = if chunked {
                chunk_header(data.len(), out);
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
                self.write_watching(out).await?
            } else {
                self.write_watching(&data).await?
            };
            if early {
                return Ok(true);
            }
        }
    }

    /// Writes `data` fully, unless the upstream starts a final response first (returns
    /// `true`), so an upstream that answers early and stops reading cannot stall the write.
    ///
    /// Hot path: the upstream is watched only while the write cannot go on (the socket is
    /// full, or took part of `data`), not before every write: a request head or chunk the
    /// socket takes at once costs no read attempt (about 280 instructions per request,
    /// measured with callgrind). Between the chunks of a body, `send_with_body` watches.
    async fn write_watching(&mut self, data: &[u8]) -> Result<bool, ExchangeError> {
        let mut written = 0;
        std::future::poll_fn(|cx| {
            while written < data.len() {
                let blocked = match Pin::new(&mut self.io).poll_write(cx, &data[written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        written += n;
                        false
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => true,
                };
                if (blocked || written < data.len())
                    && let Poll::Ready(started) = self.poll_response_started(cx)
                {
                    return Poll::Ready(started.map(|()| true));
                }
                if blocked {
                    return Poll::Pending;
                }
            }
            Poll::Ready(Ok(false))
        })
        .await
        .map_err(ExchangeError::Io)
    }

    /// Ready once the upstream started a final response; interim responses (`100 Continue`)
    /// are consumed on the way. End of stream is an error: the upstream went away.
    fn poll_response_started(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            self.buf.reserve(READ_BUF / 2);
            match std::task::ready!(self.poll_read(cx)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) if final_response_started(&mut self.buf) => return Poll::Ready(Ok(())),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Reads at least one more byte into the buffer before `deadline`; end of stream is an
    /// error here.
    async fn read_before(&mut self, deadline: Instant) -> Result<(), ExchangeError> {
        let read = std::future::poll_fn(|cx| {
            if let Poll::Ready(read) = self.poll_read_more(cx, READ_BUF) {
                return Poll::Ready(Some(read));
            }
            self.timer.poll_expired(cx, deadline).map(|()| None)
        })
        .await;
        match read {
            Some(Ok(0)) => Err(ExchangeError::Io(io::ErrorKind::UnexpectedEof.into())),
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(ExchangeError::Io(e)),
            None => Err(ExchangeError::Timeout),
        }
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
        self.poll_read(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Bounds every wait of these tests.
    const WAIT: Duration = Duration::from_secs(15);

    /// An upstream that reads one request head, writes `reply`, then holds the connection
    /// without reading until the test ends.
    async fn answering_without_reading(
        reply: &'static [u8],
    ) -> (H1Conn, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                if conn.read_buf(&mut head).await.unwrap() == 0 {
                    return;
                }
            }
            // Answer once the client is likely stuck writing (the outcome does not depend on it).
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn.write_all(reply).await.unwrap();
            tokio::time::sleep(WAIT).await;
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        (H1Conn::new(UpstreamIo::Tcp(stream)), upstream)
    }

    /// The body is far larger than the sockets can buffer, and the upstream answered without
    /// reading it: the write blocks, and the answer is seen instead of waiting forever.
    #[tokio::test]
    async fn an_answer_while_the_body_cannot_be_written_ends_the_send() {
        let (mut conn, upstream) = answering_without_reading(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let body = Bytes::from(vec![b'x'; 64 << 20]);
        let mut req = Request::post("/upload")
            .header("host", "upstream.example")
            .body(Body::full(body))
            .unwrap();
        let exchange = conn.exchange(&mut req, &[], Instant::now(), WAIT);
        let (head, complete) = tokio::time::timeout(WAIT, exchange)
            .await
            .expect("the send stalled")
            .unwrap();
        assert_eq!(head.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!complete, "the body was not sent whole");
        upstream.abort();
    }

    /// A request without a body is written at once and its answer read.
    #[tokio::test]
    async fn a_request_without_a_body_gets_its_answer() {
        let (mut conn, upstream) =
            answering_without_reading(b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n").await;
        let mut req = Request::get("/")
            .header("host", "upstream.example")
            .body(Body::Empty)
            .unwrap();
        let exchange = conn.exchange(&mut req, &[], Instant::now(), WAIT);
        let (head, complete) = tokio::time::timeout(WAIT, exchange)
            .await
            .expect("no answer")
            .unwrap();
        assert_eq!(head.status, http::StatusCode::NO_CONTENT);
        assert_eq!(head.headers["x-a"], "b");
        assert!(complete);
        upstream.abort();
    }
}
