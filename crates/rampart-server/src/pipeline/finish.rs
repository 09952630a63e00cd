//! Finishing a request, exactly once: its metrics, its span, the route's logging stages, the
//! access log line, and telling the connection. [`ResponseBody`] does it when the response
//! body is done; a request dropped unanswered does it as abandoned by the client (499).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use rampart_core::{Body, BoxError, ErrorKind, Outcome, RequestCtx};

use crate::observe::access_log::AccessLog;
use crate::observe::otel::Tracer;
use crate::pipeline::plane::{CompiledRoute, Plane};
use crate::pipeline::session::{Carrier, Session};
use crate::pipeline::tunnel::TunnelReport;

/// The status logged for a request the client abandoned before any response existed (nginx's
/// "client closed request"); it is never sent.
pub(crate) const CLIENT_CLOSED_REQUEST: u16 = 499;

/// What finishing a request does, exactly once. Dropped unfinished, it finishes the request as
/// abandoned by the client.
pub(crate) struct Finish {
    pub(crate) ctx: Box<RequestCtx>,
    pub(crate) status: u16,
    log: Option<Arc<AccessLog>>,
    /// The OTLP span pipeline, when `[tracing]` is enabled.
    tracer: Option<Arc<Tracer>>,
    carrier: Arc<dyn Carrier>,
    done: bool,
    /// The plane the request ran on, the index of its listener there, and its route: what
    /// the request's metrics count into.
    pub(crate) plane: Arc<Plane>,
    pub(crate) listener: usize,
    pub(crate) route: Option<Arc<CompiledRoute>>,
    /// The tunnel a `101` opened: the request is logged when it closes, with what it relayed.
    pub(crate) tunnel: Option<TunnelReport>,
    /// The connection was told the request is over (before a tunnel closed).
    released: bool,
}

impl Finish {
    /// A request on `session` running on `plane`, logged 499 unless it is answered.
    pub(crate) fn new(
        ctx: Box<RequestCtx>,
        session: &Session,
        plane: Arc<Plane>,
        listener: usize,
    ) -> Self {
        Self {
            ctx,
            status: CLIENT_CLOSED_REQUEST,
            log: session.shared.access_log.clone(),
            tracer: session.shared.tracer.clone(),
            carrier: Arc::clone(&session.carrier),
            done: false,
            plane,
            listener,
            route: None,
            tunnel: None,
            released: false,
        }
    }

    /// Tells the connection the request is over, then finishes the request once its tunnel
    /// closed, counting what the tunnel relayed.
    fn complete_after_tunnel(mut self, tunnel: TunnelReport, bytes_sent: u64) {
        self.carrier.request_finished();
        self.released = true;
        tokio::spawn(async move {
            let (to_client, from_client) = tunnel.closed().await;
            self.complete_with(bytes_sent + to_client, from_client, true);
        });
    }

    fn complete(&mut self, bytes_sent: u64, completed: bool) {
        self.complete_with(bytes_sent, 0, completed);
    }

    fn complete_with(&mut self, bytes_sent: u64, bytes_received: u64, completed: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if !completed && self.carrier.send_timed_out() {
            self.ctx.reason = Some(ErrorKind::SendTimeout);
            self.ctx.detail = Some("the client took in no response byte for timeouts.send".into());
        }
        crate::observe::metrics::record(
            &self.plane.metrics,
            self.route.as_deref().map(|r| &r.metrics),
            self.plane
                .listeners
                .get(self.listener)
                .map(|l| (&*l.no_route, &*l.metrics)),
            self.listener,
            &self.ctx,
            self.status,
        );
        if let Some(tracer) = &self.tracer {
            tracer.finish(&self.ctx, self.status);
        }
        let outcome = Outcome {
            status: self.status,
            bytes_sent,
            bytes_received,
            completed,
        };
        if let Some(route) = &self.route {
            route.stages.on_log(&self.ctx, &outcome);
        }
        if let Some(log) = &self.log {
            log.record(&self.ctx, outcome);
        }
        if !self.released {
            self.carrier.request_finished();
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if !self.done {
            self.ctx
                .detail
                .get_or_insert_with(|| "client went away before the response".to_owned());
            self.complete(0, false);
        }
    }
}

/// The body sent to the client: counts bytes and finishes the request when done.
pub(crate) struct ResponseBody {
    inner: Body,
    bytes: u64,
    finish: Option<Finish>,
}

impl ResponseBody {
    /// `inner`, finishing the request with `finish` when it is done.
    pub(crate) fn new(inner: Body, finish: Finish) -> Self {
        Self {
            inner,
            bytes: 0,
            finish: Some(finish),
        }
    }

    fn done(&mut self, completed: bool) {
        let Some(finish) = &mut self.finish else {
            return;
        };
        if completed && finish.tunnel.is_some() {
            if let Some(mut finish) = self.finish.take()
                && let Some(tunnel) = finish.tunnel.take()
            {
                finish.complete_after_tunnel(tunnel, self.bytes);
            }
            return;
        }
        // Finished and dropped in place: the request's state is large, and moving it out
        // first cost 15 instructions per request (`bench/instr`, scenario a).
        finish.complete(self.bytes, completed);
        self.finish = None;
    }
}

impl http_body::Body for ResponseBody {
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
                this.bytes += f.data_ref().map_or(0, |d| d.len() as u64);
                if this.inner.is_end_stream() {
                    this.done(true);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed mid-stream");
                if let Some(f) = &mut this.finish {
                    f.ctx.reason.get_or_insert(ErrorKind::UpstreamReset);
                    f.ctx.detail.get_or_insert_with(|| e.to_string());
                }
                this.done(false);
            }
            None => this.done(true),
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

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let completed = self.inner.is_end_stream();
        self.done(completed);
    }
}
