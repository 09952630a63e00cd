//! The client's request body on its way to the handler: what already arrived of a chunked or
//! HTTP/2 body is validated before anything is forwarded, and a minimum data rate is enforced
//! on the rest (slow-body "R.U.D.Y." clients).
//!
//! Validation: a chunked HTTP/1.1 body, or an HTTP/2 body, can turn out malformed (bad chunk
//! size, length mismatch) only while it is read. The frames that are already buffered when the
//! handler starts (up to [`PREFETCH_LIMIT`]) are read first, so a request whose malformed body
//! arrived with its head is refused with 400 before an upstream sees a byte of it. A body that
//! breaks later fails mid-stream: the upstream gets an incomplete message on a connection that
//! is then closed, which it cannot misread as a further request.
//!
//! Rate: a body may take `timeouts.body_grace` plus one second per `limits.min_body_rate` bytes
//! received. Only time spent waiting for the client counts: an upstream that reads slowly does
//! not make the client slow.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Version, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use rampart_core::body_error::{BodyTooSlow, client_body_reason};
use rampart_core::{Body, BoxError, ErrorKind, ProxyError};
use tokio::time::{Instant, Sleep};

use crate::pipeline::gates::GlobalGates;

/// Most body bytes read ahead for validation before forwarding starts.
pub(crate) const PREFETCH_LIMIT: usize = 64 * 1024;

/// Prepares `req`'s body for the handler (see the module documentation).
pub(crate) fn prepare(req: &mut Request<Body>, gates: &GlobalGates) -> Result<(), ProxyError> {
    if req.body().is_end_stream() {
        return Ok(());
    }
    let validate = match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => true,
        _ => req.headers().contains_key(header::TRANSFER_ENCODING),
    };
    let prefetched = if validate {
        prefetch(req.body_mut())?
    } else {
        VecDeque::new()
    };
    if prefetched.is_empty() && gates.min_body_rate == 0 {
        return Ok(());
    }
    let inner = std::mem::take(req.body_mut());
    *req.body_mut() = Body::boxed(GuardedBody {
        inner,
        prefetched,
        rate: gates.min_body_rate,
        allowance: gates.body_grace,
        waited: Duration::ZERO,
        waiting_since: None,
        timer: None,
    });
    Ok(())
}

/// Reads the frames that are already available, up to [`PREFETCH_LIMIT`] bytes.
fn prefetch(body: &mut Body) -> Result<VecDeque<Frame<Bytes>>, ProxyError> {
    let mut frames = VecDeque::new();
    let mut bytes = 0usize;
    while bytes < PREFETCH_LIMIT && !body.is_end_stream() {
        match body.frame().now_or_never() {
            None | Some(None) => break,
            Some(Some(Ok(frame))) => {
                bytes += frame.data_ref().map_or(0, Bytes::len);
                frames.push_back(frame);
            }
            Some(Some(Err(e))) => {
                let kind = client_body_reason(&*e).unwrap_or(ErrorKind::AmbiguousFraming);
                return Err(ProxyError::new(kind, format!("request body: {e}")));
            }
        }
    }
    Ok(frames)
}

/// The body handed on: prefetched frames first, then the rest under the rate limit.
struct GuardedBody {
    inner: Body,
    prefetched: VecDeque<Frame<Bytes>>,
    /// Minimum bytes per second (0: no limit).
    rate: u64,
    /// Waiting time allowed so far: the grace period plus what received bytes earned.
    allowance: Duration,
    /// Waiting time used so far (finished waits).
    waited: Duration,
    /// Start of the current wait for the client.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl GuardedBody {
    fn end_wait(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
    }

    fn earn(&mut self, bytes: usize) {
        if self.rate > 0 && bytes > 0 {
            let secs = bytes as f64 / self.rate as f64;
            self.allowance = self
                .allowance
                .saturating_add(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
        }
    }

    /// Arms the timer for the current wait; true when the allowance is used up.
    fn too_slow(&mut self, cx: &mut Context<'_>) -> bool {
        if self.rate == 0 {
            return false;
        }
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        let left = self.allowance.saturating_sub(self.waited);
        let deadline = since + left;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(frame) = this.prefetched.pop_front() {
            this.earn(frame.data_ref().map_or(0, Bytes::len));
            return Poll::Ready(Some(Ok(frame)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.end_wait();
                if let Some(Ok(f)) = &frame {
                    this.earn(f.data_ref().map_or(0, Bytes::len));
                }
                Poll::Ready(frame)
            }
            Poll::Pending if this.too_slow(cx) => {
                this.end_wait();
                Poll::Ready(Some(Err(Box::new(BodyTooSlow { rate: this.rate }))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefetched.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .prefetched
            .iter()
            .map(|f| f.data_ref().map_or(0, |d| d.len() as u64))
            .sum();
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + buffered);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}
