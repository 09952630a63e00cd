//! [`Body`]: the one body type every stage, handler and protocol uses.
//!
//! A closed enum rather than a boxed trait object: the common cases (nothing, a fixed buffer,
//! a stream from a peer) are polled without an allocation or dynamic dispatch per request.

use std::pin::Pin;
use std::sync::Arc;
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
    /// A request body streamed from an HTTP/1.1 client by Rampart's own server.
    Client(ClientBody),
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
    pub const fn limited(body: Streamed, limit: u64) -> Self {
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
            Self::Client(_) => "Client",
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
            Self::Client(body) => body.poll_frame(cx),
            Self::Limited(body) => body.poll_frame(cx),
            Self::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(bytes) => bytes.is_none(),
            Self::Incoming(body) => body.is_end_stream(),
            Self::Client(body) => body.is_end_stream(),
            Self::Limited(body) => body.body.is_end_stream(),
            Self::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Incoming(body) => body.size_hint(),
            Self::Client(body) => body.size_hint(),
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
    body: Streamed,
    remaining: u64,
    limit: u64,
}

impl LimitedIncoming {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(self.body.poll_frame(cx));
        let Some(Ok(frame)) = frame else {
            return Poll::Ready(frame);
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

/// A streamed client request body, as [`Body::limited`] takes it.
pub enum Streamed {
    /// From hyper's server (HTTP/2).
    Incoming(Incoming),
    /// From Rampart's own HTTP/1.1 server.
    Client(ClientBody),
}

impl Streamed {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            Self::Incoming(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Client(body) => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Incoming(body) => body.is_end_stream(),
            Self::Client(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Incoming(body) => body.size_hint(),
            Self::Client(body) => body.size_hint(),
        }
    }
}

/// What a [`ClientBody`] reads from: the client connection that carries the request, which
/// decodes its body from the bytes it reads. One connection reads one body at a time; `id`
/// tells a body of an earlier request from the current one (an earlier one reads nothing).
pub trait BodySource: Send + Sync {
    /// The next frame of body `id`.
    fn poll_frame(
        &self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>;
    /// True once body `id` has been read to its end.
    fn is_end_stream(&self, id: u32) -> bool;
    /// What is known of the length of body `id`.
    fn size_hint(&self, id: u32) -> SizeHint;
}

/// A request body read from its client connection as it is polled (see [`BodySource`]).
pub struct ClientBody {
    source: Arc<dyn BodySource>,
    id: u32,
}

impl ClientBody {
    /// Body `id` of `source`.
    pub fn new(source: Arc<dyn BodySource>, id: u32) -> Self {
        Self { source, id }
    }

    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.source.poll_frame(self.id, cx)
    }

    fn is_end_stream(&self) -> bool {
        self.source.is_end_stream(self.id)
    }

    fn size_hint(&self) -> SizeHint {
        self.source.size_hint(self.id)
    }
}
