//! [`Body`]: the one body type every stage, handler and protocol uses.
//!
//! A closed enum rather than a boxed trait object: the common cases (nothing, a fixed buffer,
//! a stream from a peer) are polled without an allocation or dynamic dispatch per request.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

/// Errors carried by bodies (type-erased, as hyper expects).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body.
#[derive(Default)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// A complete body already in memory.
    Full(Option<Bytes>),
    /// A body streamed from a client or an upstream.
    Incoming(Incoming),
    /// A request body streamed from a client, refused once it exceeds a size limit.
    Limited(LimitedIncoming),
    /// A response body from a pooled upstream connection, which goes back to its pool once the
    /// body has been read to the end.
    Pooled(PooledIncoming),
    /// Any other body.
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// A body holding `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::Empty
        } else {
            Self::Full(Some(bytes))
        }
    }

    /// A streamed client body that fails with [`BodyTooLarge`] after `limit` bytes.
    #[must_use]
    pub const fn limited(body: Incoming, limit: u64) -> Self {
        Self::Limited(LimitedIncoming {
            body,
            remaining: limit,
            limit,
        })
    }

    /// Wraps any body type.
    pub fn boxed<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        Self::Boxed(UnsyncBoxBody::new(body.map_err(Into::into)))
    }
}

impl From<Incoming> for Body {
    fn from(body: Incoming) -> Self {
        Self::Incoming(body)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::Empty => "Empty",
            Self::Full(_) => "Full",
            Self::Incoming(_) => "Incoming",
            Self::Limited(_) => "Limited",
            Self::Pooled(_) => "Pooled",
            Self::Boxed(_) => "Boxed",
        };
        f.write_str(kind)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Incoming(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Limited(body) => body.poll_frame(cx),
            Self::Pooled(body) => body.poll_frame(cx),
            Self::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(bytes) => bytes.is_none(),
            Self::Incoming(body) => body.is_end_stream(),
            Self::Limited(body) => body.body.is_end_stream(),
            Self::Pooled(body) => body.body.is_end_stream(),
            Self::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Incoming(body) => body.size_hint(),
            Self::Limited(body) => body.body.size_hint(),
            Self::Pooled(body) => body.body.size_hint(),
            Self::Boxed(body) => body.size_hint(),
        }
    }
}

/// The error a [`Body::Limited`] body fails with once it exceeds its limit.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request body exceeds the limit of {limit} bytes")]
pub struct BodyTooLarge {
    /// The limit, in bytes.
    pub limit: u64,
}

/// See [`Body::limited`].
pub struct LimitedIncoming {
    body: Incoming,
    remaining: u64,
    limit: u64,
}

impl LimitedIncoming {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        let Some(Ok(frame)) = frame else {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.remaining {
                self.remaining = 0;
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit: self.limit }))));
            }
            self.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

/// The HTTP/1.1 upstream connection handle carried by [`Body::Pooled`].
pub type UpstreamSender = hyper::client::conn::http1::SendRequest<Body>;

/// An upstream HTTP/1.1 connection on its way back to the pool it came from.
pub struct PooledConn {
    /// The connection's request sender.
    pub sender: UpstreamSender,
    /// Which pool (target) it belongs to.
    pub pool_key: usize,
    /// Most idle connections that pool keeps.
    pub max_idle: usize,
    /// How long the connection may stay idle in the pool.
    pub idle_timeout: std::time::Duration,
}

/// A connection plus the function that puts it back (a plain function pointer, so handing a
/// connection back costs no allocation).
pub struct PoolReturn {
    /// The connection.
    pub conn: PooledConn,
    /// Puts the connection back into its pool.
    pub release: fn(PooledConn),
}

/// See [`Body::Pooled`].
pub struct PooledIncoming {
    body: Incoming,
    ret: Option<PoolReturn>,
}

impl PooledIncoming {
    /// A body whose connection is returned with `ret` once `body` has been read to the end.
    #[must_use]
    pub const fn new(body: Incoming, ret: Option<PoolReturn>) -> Self {
        Self { body, ret }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            None => self.release(),
            Some(Ok(_)) if self.body.is_end_stream() => self.release(),
            // On an error the connection is dropped, never reused.
            Some(Err(_)) => self.ret = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame.map(|r| r.map_err(Into::into)))
    }

    fn release(&mut self) {
        if let Some(ret) = self.ret.take() {
            (ret.release)(ret.conn);
        }
    }
}

impl Body {
    /// A body from a pooled upstream connection; see [`Body::Pooled`].
    #[must_use]
    pub fn pooled(body: Incoming, ret: Option<PoolReturn>) -> Self {
        if body.is_end_stream() {
            if let Some(ret) = ret {
                (ret.release)(ret.conn);
            }
            return Self::Incoming(body);
        }
        Self::Pooled(PooledIncoming::new(body, ret))
    }
}
