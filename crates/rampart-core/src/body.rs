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
            Self::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(bytes) => bytes.is_none(),
            Self::Incoming(body) => body.is_end_stream(),
            Self::Limited(body) => body.body.is_end_stream(),
            Self::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Incoming(body) => body.size_hint(),
            Self::Limited(body) => body.body.size_hint(),
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
