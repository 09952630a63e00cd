//! [`Tee`]: a response body that streams to the client unchanged while a copy of it, up to
//! the route's object size cap, is kept for the store. The object is stored when the body
//! ends whole; a body that fails, is abandoned by the client, or grows past the cap is not
//! stored (it keeps streaming). Either way the requests waiting for this one are let go.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{HeaderMap, HeaderName};
use http_body::{Body as _, Frame, SizeHint};
use rampart_core::{Body, BoxError};

use crate::entry::{Defaults, Entry};
use crate::flight::Leader;
use crate::store::CacheStore;

/// What becomes an object once the body has been read whole.
pub(crate) struct Pending {
    pub(crate) store: CacheStore,
    pub(crate) key: String,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) vary: Box<[(HeaderName, Option<String>)]>,
    pub(crate) extra_key: Box<str>,
    pub(crate) request_time: SystemTime,
    pub(crate) response_time: SystemTime,
    pub(crate) defaults: Defaults,
    /// Held until the object is stored (or given up), so waiters find it.
    pub(crate) leader: Option<Leader>,
}

/// A body copied into the store as it streams.
pub(crate) struct Tee {
    inner: Body,
    chunks: Vec<Bytes>,
    len: u64,
    limit: u64,
    pending: Option<Pending>,
}

impl Tee {
    /// Streams `inner`, storing it as `pending` when it ends whole within `limit` bytes.
    pub(crate) const fn new(inner: Body, limit: u64, pending: Pending) -> Self {
        Self {
            inner,
            chunks: Vec::new(),
            len: 0,
            limit,
            pending: Some(pending),
        }
    }

    fn keep(&mut self, data: &Bytes) {
        if self.pending.is_none() {
            return;
        }
        self.len += data.len() as u64;
        if self.len > self.limit {
            if let Some(p) = self.pending.take() {
                p.store.counters().too_large.fetch_add(1, Ordering::Relaxed);
            }
            self.chunks = Vec::new();
            return;
        }
        self.chunks.push(data.clone());
    }

    fn finish(&mut self) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let body = match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut whole = BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0));
                for chunk in self.chunks.drain(..) {
                    whole.extend_from_slice(&chunk);
                }
                whole.freeze()
            }
        };
        let entry = Entry::new(
            p.status,
            std::mem::take(&mut p.headers),
            body,
            std::mem::take(&mut p.vary),
            std::mem::take(&mut p.extra_key),
            p.request_time,
            p.response_time,
            p.defaults,
        );
        p.store.insert(&p.key, entry);
        // The waiters go now, and find the object.
        drop(p.leader.take());
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        // A body that ended without being polled to its end (an empty one, or one whose last
        // frame said so) is still whole.
        if self.inner.is_end_stream() {
            self.finish();
        }
    }
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    this.keep(data);
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Some(Err(_)) => {
                this.pending = None;
                this.chunks = Vec::new();
            }
            None => this.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
