//! OpenTelemetry request spans exported over OTLP (`[tracing]`).
//!
//! Workers decide sampling when a request arrives (parent-based: a `traceparent` carries its
//! caller's decision; new traces are sampled by trace ID against `sampling_ratio`, so every
//! service using the same ratio agrees) and, for sampled requests only, hand a small
//! [`SpanRecord`] to the exporter thread over a bounded channel when the response is done.
//! The exporter thread batches, encodes (OTLP protobuf, see [`proto`]) and sends them over
//! OTLP/HTTP or OTLP/gRPC. A full channel drops spans and counts them; requests never wait.
//! With `[tracing]` disabled there is no tracer at all and no per-request cost beyond one
//! `Option` check.

mod export;
mod proto;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use rampart_config::model::TracingSection;
use rampart_core::{RequestCtx, TraceContext};

/// Spans buffered between the workers and the exporter thread.
const QUEUE: usize = 8192;

/// One finished, sampled request, as the exporter needs it.
#[derive(Debug)]
pub(crate) struct SpanRecord {
    trace_id: u128,
    span_id: u64,
    parent_id: Option<u64>,
    start_unix_nanos: u64,
    end_unix_nanos: u64,
    method: Method,
    path: String,
    status: u16,
    route: Option<Arc<str>>,
    upstream: Option<Arc<str>>,
    target: Option<Arc<str>>,
    listener: Arc<str>,
    client_ip: IpAddr,
    upstream_nanos: Option<u64>,
    reason: Option<&'static str>,
    retries: u8,
}

impl SpanRecord {
    /// `METHOD route` (the route name stands for `http.route`), or `METHOD` without a route.
    fn name(&self) -> String {
        match &self.route {
            Some(r) => format!("{} {r}", self.method),
            None => self.method.to_string(),
        }
    }

    /// The span's attributes, with OpenTelemetry's semantic convention names where one exists.
    fn for_each_attribute(&self, mut f: impl FnMut(&str, proto::Value<'_>)) {
        use proto::Value::{Double, Int, Str};
        f("http.request.method", Str(self.method.as_str()));
        f("url.path", Str(&self.path));
        f("http.response.status_code", Int(i64::from(self.status)));
        f("client.address", Str(&self.client_ip.to_string()));
        f("rampart.listener", Str(&self.listener));
        if let Some(route) = &self.route {
            f("http.route", Str(route));
            f("rampart.route", Str(route));
        }
        if let Some(upstream) = &self.upstream {
            f("rampart.upstream", Str(upstream));
        }
        if let Some(target) = &self.target {
            f("server.address", Str(target));
        }
        if let Some(nanos) = self.upstream_nanos {
            f("rampart.upstream_duration_ms", Double(nanos as f64 / 1e6));
        }
        if let Some(reason) = self.reason {
            f("error.type", Str(reason));
        }
        if self.retries > 0 {
            f("rampart.retries", Int(i64::from(self.retries)));
        }
    }
}

/// Messages to the exporter thread.
pub(crate) enum Msg {
    Span(Box<SpanRecord>),
    /// Export everything queued, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The running span pipeline.
#[derive(Debug)]
pub struct Tracer {
    tx: SyncSender<Msg>,
    /// New traces whose trace ID's low 64 bits are below this are sampled.
    threshold: u64,
    always: bool,
    dropped: AtomicU64,
    flush_timeout: Duration,
    stats: Arc<export::Stats>,
}

impl Tracer {
    /// Starts the exporter thread for `cfg`, or returns `None` when tracing is disabled.
    ///
    /// # Errors
    /// The endpoint is invalid (validation prevents it) or the thread cannot start.
    pub fn start(cfg: &TracingSection) -> io::Result<Option<Self>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let ratio = cfg.sampling_ratio.get().clamp(0.0, 1.0);
        let (tx, rx) = sync_channel(QUEUE);
        let stats = Arc::new(export::Stats::default());
        export::spawn(cfg, rx, stats.clone())?;
        Ok(Some(Self {
            tx,
            // `as` saturates: 1.0 gives u64::MAX, and `always` covers the last value.
            threshold: (ratio * u64::MAX as f64) as u64,
            always: ratio >= 1.0,
            dropped: AtomicU64::new(0),
            flush_timeout: cfg.export_timeout.get() + Duration::from_secs(1),
            stats,
        }))
    }

    /// Decides whether a request is sampled and records the decision in its trace flags (so
    /// that the upstream's `traceparent` carries it): the caller's decision when the request
    /// continued a trace, the ratio applied to the trace ID otherwise.
    pub(crate) fn sample(&self, trace: &mut TraceContext) {
        if trace.parent_id.is_some() {
            return;
        }
        let low = trace.trace_id as u64;
        if self.always || low < self.threshold {
            trace.flags |= 1;
        } else {
            trace.flags &= !1;
        }
    }

    /// Queues the span of a finished request, if it was sampled.
    pub(crate) fn finish(&self, ctx: &RequestCtx, status: u16) {
        if ctx.trace.flags & 1 == 0 {
            return;
        }
        let end = SystemTime::now();
        let start = end.checked_sub(ctx.started.elapsed()).unwrap_or(end);
        let record = SpanRecord {
            trace_id: ctx.trace.trace_id,
            span_id: ctx.trace.span_id,
            parent_id: ctx.trace.parent_id,
            start_unix_nanos: unix_nanos(start),
            end_unix_nanos: unix_nanos(end),
            method: ctx.method.clone(),
            path: ctx.uri.path().to_owned(),
            status,
            route: ctx.route.clone(),
            upstream: ctx.upstream.clone(),
            target: ctx.upstream_target.clone(),
            listener: ctx.conn.listener.clone(),
            client_ip: ctx.client_ip,
            upstream_nanos: ctx
                .upstream_duration
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            reason: ctx.reason.map(rampart_core::ErrorKind::code),
            retries: ctx.retries,
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Msg::Span(Box::new(record))) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Exports every queued span now and waits (bounded by the export timeout) until done.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(self.flush_timeout);
        }
    }

    /// Spans dropped because the queue was full, or because their export failed.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.stats.failed_spans()
    }

    /// Spans the collector accepted.
    #[must_use]
    pub fn exported(&self) -> u64 {
        self.stats.exported_spans()
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(ratio: f64) -> Tracer {
        let (tx, _rx) = sync_channel(1);
        let ratio: f64 = ratio;
        Tracer {
            tx,
            threshold: (ratio * u64::MAX as f64) as u64,
            always: ratio >= 1.0,
            dropped: AtomicU64::new(0),
            flush_timeout: Duration::from_secs(1),
            stats: Arc::default(),
        }
    }

    fn sampled(t: &Tracer, trace: TraceContext) -> bool {
        let mut trace = trace;
        t.sample(&mut trace);
        trace.flags & 1 == 1
    }

    #[test]
    fn new_traces_follow_the_ratio_and_continued_ones_their_parent() {
        let new = TraceContext::continue_or_start(None);
        assert!(sampled(&tracer(1.0), new));
        assert!(!sampled(&tracer(0.0), new));
        let half = tracer(0.5);
        let hits = (0..10_000)
            .filter(|_| sampled(&half, TraceContext::continue_or_start(None)))
            .count();
        assert!((4_000..6_000).contains(&hits), "{hits}");
        let parent_sampled =
            TraceContext::continue_or_start(Some(&http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )));
        assert!(sampled(&tracer(0.0), parent_sampled));
        let parent_not = TraceContext::continue_or_start(Some(&http::HeaderValue::from_static(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )));
        assert!(!sampled(&tracer(1.0), parent_not));
    }
}
