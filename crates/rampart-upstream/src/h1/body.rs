//! The body of an HTTP/1.1 upstream response, read straight from the connection by the task
//! that sends it on to the client; once read to the end, the connection goes back to its pool.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use rampart_core::BoxError;

use super::conn::H1Conn;
use super::decode::ResponseFraming;
use crate::pool::{self, PoolSlot};
use rampart_core::chunked::{ChunkedDecoder, Decoded};

#[derive(Debug)]
enum Kind {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// A streaming upstream response body.
#[derive(Debug)]
pub(crate) struct H1Body {
    conn: Option<Box<H1Conn>>,
    kind: Kind,
    /// Return the connection to its pool at the end (keep-alive, request fully sent).
    reusable: bool,
    slot: PoolSlot,
}

/// The upstream broke off a response body.
#[derive(Debug, thiserror::Error)]
#[error("upstream response body: {0}")]
pub(crate) struct BodyError(&'static str);

impl H1Body {
    /// A body framed by `framing`, read from `conn`. `Empty` framing should not get here: the
    /// caller releases the connection at once instead.
    pub(crate) fn new(
        conn: Box<H1Conn>,
        framing: ResponseFraming,
        reusable: bool,
        slot: PoolSlot,
    ) -> Self {
        let kind = match framing {
            ResponseFraming::Empty | ResponseFraming::Length(0) => Kind::Done,
            ResponseFraming::Length(n) => Kind::Length(n),
            ResponseFraming::Chunked => Kind::Chunked(ChunkedDecoder::new()),
            ResponseFraming::UntilClose => Kind::UntilClose,
        };
        Self {
            conn: Some(conn),
            kind,
            reusable,
            slot,
        }
    }

    /// Ends the body: the connection goes back to the pool only if nothing beyond the response
    /// was received (an upstream that sends more than it framed is not trusted again).
    fn finish(&mut self) {
        self.kind = Kind::Done;
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.buf.is_empty()
        {
            pool::release_h1(conn, self.slot);
        }
    }

    fn fail(&mut self, what: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.kind = Kind::Done;
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(BodyError(what)))))
    }

    /// Reads more bytes; `Ready(Ok(false))` on end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: u64) -> Poll<io::Result<bool>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let want = usize::try_from(want).unwrap_or(usize::MAX);
        conn.poll_read_more(cx, want).map_ok(|n| n > 0)
    }
}

impl http_body::Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.kind {
                Kind::Done => return Poll::Ready(None),
                Kind::Length(left) => {
                    if !conn.buf.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        *left -= take as u64;
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let left = *left;
                    match std::task::ready!(this.poll_fill(cx, left)) {
                        Ok(true) => {}
                        Ok(false) => {
                            return this.fail("upstream closed before the end of the body");
                        }
                        Err(_) => return this.fail("upstream connection failed mid-body"),
                    }
                }
                Kind::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::Trailers(trailers)) => {
                        this.finish();
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Decoded::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => match std::task::ready!(this.poll_fill(cx, 16 * 1024))
                    {
                        Ok(true) => {}
                        Ok(false) => return this.fail("upstream closed inside a chunked body"),
                        Err(_) => return this.fail("upstream connection failed mid-body"),
                    },
                    Err(e) => return this.fail(e.0),
                },
                Kind::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match std::task::ready!(this.poll_fill(cx, 64 * 1024)) {
                        Ok(true) => {}
                        Ok(false) => {
                            this.kind = Kind::Done;
                            this.conn = None;
                            return Poll::Ready(None);
                        }
                        Err(_) => return this.fail("upstream connection failed mid-body"),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.kind {
            Kind::Done => SizeHint::with_exact(0),
            Kind::Length(n) => SizeHint::with_exact(n),
            Kind::Chunked(_) | Kind::UntilClose => SizeHint::default(),
        }
    }
}
