//! [`TimedIo`]: the client socket as hyper sees it, with the connection-phase timers hyper lacks.
//!
//! hyper's own header timer runs from the end of one response to the end of the next request
//! head, so it doubles as the keep-alive timeout and closes silently. Rampart wants two timers
//! and a 408: `timeouts.header_read` from the first byte of a request head (or from accept, for
//! the first request) until the head is complete, answered with 408 when exceeded; and
//! `timeouts.keepalive` for an idle connection with no request in flight, closed quietly.
//! The pipeline tells this wrapper when requests start and finish through [`ConnState`].

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use http::HeaderValue;
use rampart_core::timer::LazyTimer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::http::stream_scan::{HeadQueue, StreamScan};
use crate::pipeline::session::Carrier;

/// State shared by a connection's I/O wrapper and its requests.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// Requests whose response has not finished yet.
    in_flight: AtomicU32,
    /// Requests started on this connection (wrapping), so the I/O wrapper can tell that one
    /// came and went between two of its reads.
    started: AtomicU32,
    /// Set when an HTTP/2 connection has been idle for the keep-alive timeout (by the I/O
    /// wrapper, inside the connection's own poll: the serving loop checks it right after).
    idle: AtomicBool,
    /// The connection task, woken when the last in-flight request finishes: hyper may have
    /// polled the socket while the request was busy (no timer armed then) and would otherwise
    /// wait for client bytes forever instead of starting the keep-alive timer.
    reader: AtomicWaker,
    /// Set once an HTTP/1 connection switched protocols (a `101` was sent): it is a tunnel
    /// from then on, and none of the HTTP timers or scans apply to it.
    switched: AtomicBool,
    /// Set when a write to the client made no progress for `timeouts.send`: the connection is
    /// being closed, and its unfinished requests are logged with that reason.
    send_timed_out: AtomicBool,
    /// What the byte-level scan of each HTTP/1 request head found (see
    /// [`crate::http::stream_scan`]), in request order; taken by each request's pipeline.
    head_flags: HeadQueue,
}

impl ConnState {
    /// A request started.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's response finished (or was abandoned).
    pub(crate) fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.reader.wake();
        }
    }

    /// True once, after an HTTP/2 connection went idle for the keep-alive timeout.
    pub(crate) fn take_idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed) && self.idle.swap(false, Ordering::AcqRel)
    }

    /// The head-scan flags of the request being dispatched.
    pub(crate) fn take_head_flags(&self) -> u8 {
        self.head_flags.take()
    }

    /// The connection switched protocols: it carries a tunnel from now on.
    pub(crate) fn switch_protocols(&self) {
        self.switched.store(true, Ordering::Release);
    }

    /// Records that a write to the client made no progress for `timeouts.send`.
    pub(crate) fn mark_send_timed_out(&self) {
        self.send_timed_out.store(true, Ordering::Release);
    }

    /// A write to the client made no progress for `timeouts.send`.
    pub(crate) fn send_timed_out(&self) -> bool {
        self.send_timed_out.load(Ordering::Acquire)
    }

    /// A request is in flight.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

impl Carrier for ConnState {
    fn request_finished(&self) {
        Self::request_finished(self);
    }

    fn switch_protocols(&self) {
        Self::switch_protocols(self);
    }

    fn send_timed_out(&self) -> bool {
        Self::send_timed_out(self)
    }
}

/// The error a connection ends with when a write to the client made no progress for
/// `timeouts.send`.
#[derive(Debug, thiserror::Error)]
#[error("the client took in no response byte for {0:?}")]
pub(crate) struct SendTimeout(pub(crate) Duration);

/// The error a connection ends with when a request head did not arrive in time; carries the
/// request ID sent in the 408.
#[derive(Debug, thiserror::Error)]
#[error("request header read timed out")]
pub(crate) struct HeaderTimeout {
    /// The ID given to the timed-out request.
    pub(crate) request_id: HeaderValue,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head; `started` once some of it arrived.
    AwaitingHead { deadline: Instant, started: bool },
    /// A request is in flight: no client timer (body timeouts belong to the request).
    Busy,
    /// Keep-alive: no request in flight and none arriving.
    Idle { deadline: Instant },
}

/// A client stream (TCP, or TLS over TCP) with header-read and keep-alive timers.
pub(crate) struct TimedIo<S = TcpStream> {
    stream: S,
    state: std::sync::Arc<ConnState>,
    phase: Phase,
    header_timeout: Duration,
    keepalive: Duration,
    timer: LazyTimer,
    /// Bytes of the HTTP/2 preface seen so far while the protocol is undecided.
    preface_matched: usize,
    /// Protocol decided: the preface was complete (HTTP/2) or did not match (HTTP/1).
    decided: bool,
    http2: bool,
    /// Scan of the HTTP/1 request stream, head by head.
    scan: StreamScan,
    /// `ConnState::started` when the current phase began: a request may start and finish
    /// without a read in between (hyper does not read while a bodiless request is in flight).
    started_seen: u32,
    /// The client ended its side of the stream right after a complete request (RFC 9112
    /// §9.6: no more requests): the end is held back from hyper while requests are in flight,
    /// so they are answered, and handed over once they are, so the connection closes.
    client_done: bool,
    /// `timeouts.send`, and the timer for it: made on the first write that could not go out
    /// (writes that go out at once arm nothing).
    send: SendClock,
    /// Set once the write side is shut: until then, what the client still sends is read and
    /// dropped (see [`LINGER`]).
    linger_until: Option<Instant>,
}

/// The longest a closing connection reads and drops what its client still sends after its own
/// write side is shut. Closing a socket with unread bytes makes the kernel reset the
/// connection, and a reset can destroy the last data (an answer, a GOAWAY) in the client's
/// receive buffer before the client reads it.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// The send timeout of a connection: how long a write may make no progress.
pub(crate) struct SendClock {
    timeout: Duration,
    /// When the write waiting now gives up; `None` while writes go out.
    deadline: Option<Instant>,
    timer: Option<LazyTimer>,
}

impl SendClock {
    /// A clock for `timeout`, not running.
    pub(crate) const fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            deadline: None,
            timer: None,
        }
    }

    /// Follows a write's progress for `timeouts.send`: a write that went out stops the clock,
    /// one that could not starts it, and fails the connection (marking `state`) once it ran out.
    pub(crate) fn follow<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        state: &ConnState,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending if self.poll_stalled(cx) => {
                state.mark_send_timed_out();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    SendTimeout(self.timeout),
                )))
            }
            Poll::Pending => Poll::Pending,
            ready => {
                self.deadline = None;
                ready
            }
        }
    }

    /// A write returned `Pending`: starts the clock (if it is not running) and reports
    /// whether it ran out.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + self.timeout);
        let timer = self.timer.get_or_insert_with(|| LazyTimer::new(deadline));
        timer.poll_expired(cx, deadline).is_ready()
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

impl<S: AsyncRead + AsyncWrite + Unpin> TimedIo<S> {
    /// Wraps a freshly accepted stream.
    pub(crate) fn new(
        stream: S,
        state: std::sync::Arc<ConnState>,
        (header_timeout, keepalive, send_timeout): (Duration, Duration, Duration),
    ) -> Self {
        let deadline = Instant::now() + header_timeout;
        Self {
            stream,
            state,
            phase: Phase::AwaitingHead {
                deadline,
                started: false,
            },
            header_timeout,
            keepalive,
            timer: LazyTimer::new(deadline),
            preface_matched: 0,
            scan: StreamScan::default(),
            decided: false,
            http2: false,
            started_seen: 0,
            client_done: false,
            send: SendClock::new(send_timeout),
            linger_until: None,
        }
    }

    /// After the write side is shut: reads and drops until the client ends its side too, or
    /// until [`LINGER`] passed.
    fn poll_linger(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<io::Result<()>> {
        let mut scratch = [0_u8; 512];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                // The client closed or failed: close now.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending if self.timer.poll_expired(cx, deadline).is_ready() => {
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The stream, once HTTP/1.1 was chosen (Rampart's own server then keeps the timers).
    pub(crate) fn into_inner(self) -> S {
        self.stream
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingHead { deadline, .. } | Phase::Idle { deadline } => Some(deadline),
            Phase::Busy => None,
        }
    }

    /// Reports whether the current deadline has passed (the timer is moved lazily, see
    /// [`LazyTimer`]).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline() else {
            return false;
        };
        self.timer.poll_expired(cx, deadline).is_ready()
    }

    fn on_bytes(&mut self, data: &[u8]) {
        if !self.decided {
            self.detect_http2(data);
        }
        if self.http2 {
            return;
        }
        match self.phase {
            Phase::Idle { .. } => {
                self.phase = Phase::AwaitingHead {
                    deadline: Instant::now() + self.header_timeout,
                    started: true,
                };
                self.scan.resync();
            }
            Phase::AwaitingHead {
                deadline,
                started: false,
            } => {
                self.phase = Phase::AwaitingHead {
                    deadline,
                    started: true,
                };
            }
            Phase::AwaitingHead { .. } | Phase::Busy => {}
        }
        self.scan.feed(data, &self.state.head_flags);
    }

    /// Recognises the HTTP/2 preface even when it arrives split over several reads.
    fn detect_http2(&mut self, data: &[u8]) {
        let want = &H2_PREFACE[self.preface_matched..];
        let n = want.len().min(data.len());
        if data[..n] != want[..n] {
            self.decided = true;
            return;
        }
        self.preface_matched += n;
        if self.preface_matched == H2_PREFACE.len() {
            self.decided = true;
            self.http2 = true;
        }
    }

    /// A read while a request is in flight: its body, or heads pipelined behind it. No timer
    /// runs (body timeouts belong to the request), but the stream scan follows the bytes.
    fn poll_read_busy(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if !self.http2 && buf.filled().len() > before {
            self.scan
                .feed(&buf.filled()[before..], &self.state.head_flags);
        } else if matches!(polled, Poll::Ready(Ok(()))) && !self.http2 && buf.remaining() > 0 {
            return self.on_end_while_busy();
        }
        polled
    }

    /// The client's end of stream while a request is in flight. After a complete request it is
    /// a half-close: held back (the task is woken through `ConnState::reader` when the last
    /// request finishes). Anywhere else it cuts a request short, and hyper is told.
    fn on_end_while_busy(&mut self) -> Poll<io::Result<()>> {
        if self.scan.between_requests() && !self.state.switched.load(Ordering::Acquire) {
            self.client_done = true;
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn on_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.phase {
            Phase::AwaitingHead { started: true, .. } if !self.http2 => {
                let request_id = rampart_core::ids::new_request_id();
                let response = timeout_response(&request_id);
                // Best effort: one non-blocking write and its flush; a client this slow may not
                // read it. Over TLS the serving loop hands it to TLS as it ends (see
                // `crate::http::write_batch`).
                let _ = Pin::new(&mut self.stream).poll_write(cx, response.as_bytes());
                let _ = Pin::new(&mut self.stream).poll_flush(cx);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    HeaderTimeout { request_id },
                )))
            }
            _ if self.http2 => {
                // Let the connection task send GOAWAY and close gracefully.
                self.state.idle.store(true, Ordering::Release);
                self.phase = Phase::Busy;
                Poll::Pending
            }
            // Idle keep-alive connection, or a new one that never sent a byte: close quietly.
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// The `408` a client gets when its request head did not arrive in time.
pub(crate) fn timeout_response(request_id: &HeaderValue) -> String {
    let id = request_id.to_str().unwrap_or("");
    let body =
        format!("408 Request Timeout: The request took too long to arrive.\nRequest ID: {id}\n");
    format!(
        "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\nx-request-id: {id}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.state.busy() {
            this.phase = Phase::Busy;
            // Registered before the second check, so a request finishing in between still
            // wakes this task to arm the keep-alive timer.
            this.state.reader.register(cx.waker());
            if this.state.busy() {
                if this.client_done {
                    return Poll::Pending;
                }
                return this.poll_read_busy(cx, buf);
            }
        }
        if this.client_done {
            // Every request the client sent is answered: end of stream.
            return Poll::Ready(Ok(()));
        }
        if this.state.switched.load(Ordering::Acquire) {
            // The tunnel's own idle timeout governs it (see `crate::pipeline::tunnel`).
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let started = this.state.started.load(Ordering::Relaxed);
        if started != this.started_seen {
            // A request came and went since the last read: its head is over.
            this.started_seen = started;
            this.phase = Phase::Busy;
        }
        if let Phase::Busy = this.phase {
            this.phase = Phase::Idle {
                deadline: Instant::now() + this.keepalive,
            };
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    this.on_bytes(&filled[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.poll_deadline(cx) => this.on_deadline(cx),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_write(cx, data);
        this.send.follow(cx, polled, &this.state)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.send.follow(cx, polled, &this.state)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.send.follow(cx, polled, &this.state)
    }

    /// Shuts the write side, then lingers (HTTP/2 closes through here after its GOAWAY, which
    /// the client must get to read).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let deadline = match this.linger_until {
            Some(deadline) => deadline,
            None => {
                std::task::ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                *this.linger_until.insert(Instant::now() + LINGER)
            }
        };
        this.poll_linger(cx, deadline)
    }
}
