//! [`Wire`]: one HTTP/1.1 client connection's stream and read buffer, shared by the
//! connection's loop (which reads heads and writes responses) and the body of the request in
//! flight (which reads and decodes itself from the stream as the pipeline polls it, so body
//! bytes need no hand-off between tasks).
//!
//! The read buffer comes from the worker's pool ([`crate::http::h1::pool`]) when there are bytes
//! to read and goes back when none are left, so an idle connection holds none.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use http_body::{Frame, SizeHint};
use rampart_core::chunked::{ChunkedDecoder, Decoded};
use rampart_core::{BodySource, BoxError, ErrorKind, ProxyError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::http::h1::head::{self, Head, HeadError, Limits};
use crate::http::h1::pool;
use crate::http::io::{ConnState, SendClock};

/// Room made in the buffer for one read of a body.
const BODY_READ: usize = 16 * 1024;

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What is left of the body of the request in flight.
#[derive(Debug)]
enum BodyLeft {
    /// Nothing: read to its end, or the request had none.
    Done,
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Broken off: the connection cannot carry another request.
    Failed,
}

/// What reading a head produced.
#[derive(Debug)]
pub(crate) enum HeadRead {
    /// Boxed: the waiting connection's future would otherwise have room for a whole head.
    Head(Box<Head>),
    Bad(HeadError),
    /// The client ended its side; `partial`: inside a head.
    End {
        partial: bool,
    },
}

/// A client connection's stream and read state; see the module documentation.
pub(crate) struct Wire<S> {
    pub(crate) io: S,
    /// Bytes read and not used yet; `None` while there are none.
    pub(crate) buf: Option<BytesMut>,
    /// The body being read, and its number ([`rampart_core::ClientBody`] carries it).
    body: BodyLeft,
    body_id: u32,
    /// The body is chunked: its length stays unknown to the end, as it was declared.
    body_chunked: bool,
    /// Bytes of `100 Continue` still to send before the body is read (0: none owed).
    continue_left: usize,
    /// The client ended its side of the stream.
    pub(crate) peer_done: bool,
    send: SendClock,
    state: Arc<ConnState>,
}

/// A [`Wire`] behind the lock its users share: the connection's task and the task that
/// polls a request body take turns, never at the same time in practice.
pub(crate) struct WireLock<S>(Mutex<Wire<S>>);

impl<S> WireLock<S> {
    /// Shares `wire`.
    pub(crate) fn new(wire: Wire<S>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(wire)))
    }
}

/// The shared form every user of a [`Wire`] holds.
pub(crate) type SharedWire<S> = Arc<WireLock<S>>;

/// Locks `wire`. A panic while it was held leaves nothing that matters more than the
/// connection.
pub(crate) fn lock<S>(wire: &WireLock<S>) -> MutexGuard<'_, Wire<S>> {
    wire.0.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    /// A connection over `io`; `first`: bytes already read from it.
    pub(crate) fn new(io: S, first: &[u8], state: Arc<ConnState>, send: SendClock) -> Self {
        let buf = (!first.is_empty()).then(|| {
            let mut buf = pool::take();
            buf.extend_from_slice(first);
            buf
        });
        Self {
            io,
            buf,
            body: BodyLeft::Done,
            body_id: 0,
            body_chunked: false,
            continue_left: 0,
            peer_done: false,
            send,
            state,
        }
    }

    /// True when bytes are buffered (part of a head, or a pipelined request).
    pub(crate) fn has_buffered(&self) -> bool {
        self.buf.as_ref().is_some_and(|b| !b.is_empty())
    }

    /// Hands the buffer back to the pool once it is empty.
    fn release_if_empty(&mut self) {
        if self.buf.as_ref().is_some_and(BytesMut::is_empty)
            && let Some(buf) = self.buf.take()
        {
            pool::give(buf);
        }
    }

    /// One read into the buffer (taken from the pool if there is none); `Ok(0)` at the end of
    /// the stream. The buffer goes back to the pool when the read found nothing.
    fn poll_fill(&mut self, cx: &mut Context<'_>, room: usize) -> Poll<io::Result<usize>> {
        if self.peer_done {
            return Poll::Ready(Ok(0));
        }
        let buf = self.buf.get_or_insert_with(pool::take);
        if buf.capacity() - buf.len() < room.min(pool::BUF_SIZE) {
            buf.reserve(room);
        }
        let polled = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, buf);
        match polled {
            Poll::Ready(Ok(0)) => {
                self.peer_done = true;
                self.release_if_empty();
                Poll::Ready(Ok(0))
            }
            Poll::Pending => {
                self.release_if_empty();
                Poll::Pending
            }
            other => other,
        }
    }

    /// The next request head: parsed from what is buffered, reading more as needed.
    pub(crate) fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        limits: Limits,
    ) -> Poll<io::Result<HeadRead>> {
        loop {
            if let Some(buf) = self.buf.as_mut()
                && !buf.is_empty()
            {
                match head::parse(buf, limits) {
                    Ok(Some(head)) => {
                        self.release_if_empty();
                        return Poll::Ready(Ok(HeadRead::Head(Box::new(head))));
                    }
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Ok(HeadRead::Bad(e))),
                }
            }
            let partial = self.has_buffered();
            if ready!(self.poll_fill(cx, pool::BUF_SIZE))? == 0 {
                return Poll::Ready(Ok(HeadRead::End { partial }));
            }
        }
    }

    /// Starts reading the body of the request just parsed; returns its number.
    pub(crate) fn start_body(&mut self, framing: head::Framing, expects_continue: bool) -> u32 {
        self.body_id = self.body_id.wrapping_add(1);
        self.body_chunked = framing == head::Framing::Chunked;
        self.body = match framing {
            head::Framing::Length(n) => BodyLeft::Length(n),
            head::Framing::Chunked => BodyLeft::Chunked(ChunkedDecoder::new()),
            head::Framing::Empty | head::Framing::Refused => BodyLeft::Done,
        };
        self.continue_left = if expects_continue && !matches!(self.body, BodyLeft::Done) {
            CONTINUE.len()
        } else {
            0
        };
        self.body_id
    }

    /// True once the body of the request in flight was read to its end (or it had none).
    pub(crate) const fn body_done(&self) -> bool {
        matches!(self.body, BodyLeft::Done)
    }

    /// The request's body will not be read further (its request is over, or the connection
    /// is closing).
    pub(crate) fn abandon_body(&mut self) {
        if !self.body_done() {
            self.body = BodyLeft::Failed;
        }
        self.continue_left = 0;
    }

    fn poll_body(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, BoxError>>> {
        if id != self.body_id {
            return Poll::Ready(Some(Err("the request body is no longer readable".into())));
        }
        if self.continue_left > 0
            && let Err(e) = ready!(self.poll_continue(cx))
        {
            self.body = BodyLeft::Failed;
            return Poll::Ready(Some(Err(e.into())));
        }
        loop {
            let buffered = self.buf.as_mut().filter(|b| !b.is_empty());
            match (&mut self.body, buffered) {
                (BodyLeft::Done, _) => return Poll::Ready(None),
                (BodyLeft::Failed, _) => {
                    return Poll::Ready(Some(Err("the request body was broken off".into())));
                }
                (BodyLeft::Length(left), Some(buf)) => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    *left -= take as u64;
                    if *left == 0 {
                        self.body = BodyLeft::Done;
                        self.release_if_empty();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                // Decoded even with nothing buffered: the end may need no more bytes.
                (BodyLeft::Chunked(decoder), buf) => {
                    match decoder.decode(buf.unwrap_or(&mut BytesMut::new())) {
                        Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Decoded::Trailers(map)) => {
                            return Poll::Ready(Some(Ok(Frame::trailers(map))));
                        }
                        Ok(Decoded::End) => {
                            self.body = BodyLeft::Done;
                            self.release_if_empty();
                            return Poll::Ready(None);
                        }
                        Ok(Decoded::NeedMore) => {}
                        Err(e) => {
                            self.body = BodyLeft::Failed;
                            let refused = ProxyError::new(ErrorKind::AmbiguousFraming, e.0);
                            return Poll::Ready(Some(Err(Box::new(refused))));
                        }
                    }
                }
                (BodyLeft::Length(_), None) => {}
            }
            let room = match self.body {
                BodyLeft::Length(left) => usize::try_from(left).unwrap_or(BODY_READ).min(BODY_READ),
                _ => pool::BUF_SIZE,
            };
            match ready!(self.poll_fill(cx, room)) {
                Ok(0) => {
                    self.body = BodyLeft::Failed;
                    let cut = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client ended the connection inside the request body",
                    );
                    return Poll::Ready(Some(Err(cut.into())));
                }
                Ok(_) => {}
                Err(e) => {
                    self.body = BodyLeft::Failed;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    /// Sends what is left of `100 Continue`.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.continue_left > 0 {
            let from = CONTINUE.len() - self.continue_left;
            let n = ready!(self.poll_write(cx, &CONTINUE[from..]))?;
            self.continue_left -= n;
        }
        self.poll_flush(cx)
    }

    /// Writes some of `data`, under the send timeout.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        self.send.follow(cx, polled, &self.state)
    }

    /// Writes all of `parts` (advancing them), under the send timeout.
    pub(crate) fn poll_write_all(
        &mut self,
        cx: &mut Context<'_>,
        parts: &mut [&[u8]],
    ) -> Poll<io::Result<()>> {
        loop {
            let mut slices = [IoSlice::new(&[]); 4];
            let mut count = 0;
            for part in parts.iter().filter(|p| !p.is_empty()).take(slices.len()) {
                slices[count] = IoSlice::new(part);
                count += 1;
            }
            if count == 0 {
                return Poll::Ready(Ok(()));
            }
            let polled = Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]);
            let mut n = ready!(self.send.follow(cx, polled, &self.state))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            for part in parts.iter_mut() {
                let step = n.min(part.len());
                part.advance(step);
                n -= step;
            }
        }
    }

    /// Flushes the stream (TLS writes its records out here), under the send timeout.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.send.follow(cx, polled, &self.state)
    }

    /// Reads ahead while a request is in flight and its body is read: pipelined bytes are
    /// kept for the next request; the end of the stream is a half-close. Ready with an error
    /// when the connection failed (the client reset it).
    pub(crate) fn poll_watch(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.peer_done || self.has_buffered() || !self.body_done() {
            return Poll::Pending;
        }
        match self.poll_fill(cx, pool::BUF_SIZE) {
            Poll::Ready(Err(e)) => Poll::Ready(e),
            Poll::Ready(Ok(_)) | Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> BodySource for WireLock<S> {
    fn poll_frame(
        &self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, BoxError>>> {
        lock(self).poll_body(id, cx)
    }

    fn is_end_stream(&self, id: u32) -> bool {
        let wire = lock(self);
        wire.body_id == id && wire.body_done()
    }

    fn size_hint(&self, id: u32) -> SizeHint {
        let wire = lock(self);
        match wire.body {
            _ if wire.body_id != id || wire.body_chunked => SizeHint::default(),
            BodyLeft::Done => SizeHint::with_exact(0),
            BodyLeft::Length(n) => SizeHint::with_exact(n),
            BodyLeft::Chunked(_) | BodyLeft::Failed => SizeHint::default(),
        }
    }
}
