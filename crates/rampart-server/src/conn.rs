//! Serving one client connection: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on the same
//! socket, upgrades, keep-alive and header timers, graceful shutdown, and a reason in the logs
//! for every connection that ends in an error.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rampart_core::{ConnInfo, ErrorKind, RequestCtx};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::access_log::Outcome;
use crate::client_close::{CloseWatch, SharedStream};
use crate::conn_io::{ConnState, HeaderTimeout, TimedIo};
use crate::conn_proto::{Prefixed, Served, Version};
use crate::runtime::Runtime;
use crate::server::Shared;
use crate::tls::Accepted;
use crate::tls::batch::BatchFlusher;

/// What every request on a connection shares.
pub(crate) struct ConnCtx {
    pub(crate) info: Arc<ConnInfo>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) listener_index: usize,
    pub(crate) state: Arc<ConnState>,
    /// The connection in `rampart_connections_active`.
    pub(crate) gauge: crate::metrics::ConnGauge,
    /// The snapshot the connection started on (not kept alive by the connection): its
    /// requests use it while it lives if a reload removed the listener.
    pub(crate) start: Weak<Runtime>,
    /// The listener layout of that snapshot: `listener_index` is valid in any runtime with it.
    pub(crate) layout: u64,
}

impl ConnCtx {
    /// The snapshot a new request runs on and the index of the connection's listener in it.
    /// `None`: a reload removed the listener and the old snapshot is gone.
    pub(crate) fn runtime(&self) -> (Arc<Runtime>, Option<usize>) {
        let rt = self.shared.runtime();
        if rt.layout == self.layout {
            return (rt, Some(self.listener_index));
        }
        if let Some(i) = rt
            .listeners
            .iter()
            .position(|l| l.name == self.info.listener)
        {
            return (rt, Some(i));
        }
        match self.start.upgrade() {
            Some(old) => (old, Some(self.listener_index)),
            None => (rt, None),
        }
    }
}

/// hyper's own limits sit above Rampart's so that Rampart answers limit violations itself (with
/// its error body and log line); hyper's bare 431 only answers grossly oversized heads.
const HYPER_HEADROOM: usize = 2;

/// The number of header fields hyper parses without allocating (its default limit).
const HYPER_INLINE_HEADERS: usize = 100;

/// Serves `stream` until it closes, the client goes idle, or shutdown is requested. `local` is
/// the connection's local address when the listening socket already tells it (bound to one IP).
pub(crate) async fn serve(
    mut stream: TcpStream,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    (rt, listener_index): (Arc<Runtime>, usize),
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _guard = crate::worker::track_connection();
    let _ = stream.set_nodelay(true);
    let local = local.or_else(|| stream.local_addr().ok()).unwrap_or(peer);
    let Some(listener) = rt.listeners.get(listener_index) else {
        return;
    };
    let mut info = ConnInfo::new(peer, local, listener.name.clone(), "http");
    // A configured load balancer must open with a PROXY protocol header; others are not asked.
    if let Some(from) = &listener.gates.proxy_protocol
        && from.contains(peer.ip())
    {
        match crate::proxy_header::read(&mut stream, rt.settings.header_read_timeout).await {
            Ok(Some(client)) => info = info.with_proxy_source(client),
            Ok(None) => {}
            Err(e) => {
                crate::proxy_header::log_refused(&e, &Arc::new(info), &shared);
                return;
            }
        }
    }
    if let Some(p) = listener.passthrough.clone() {
        let _gauge = listener.metrics.connection(crate::metrics::TCP);
        let stats = Arc::clone(&rt.tls_stats);
        drop(rt);
        Box::pin(p.serve(stream, (info.peer, info.local), &stats)).await;
        return;
    }
    let Some(tls) = listener.tls.clone() else {
        let (stream, watch) = SharedStream::new(stream);
        let facts = ConnFacts {
            info: Arc::new(info),
            handshake_done: None,
            close_watch: Some(watch),
            flusher: None,
        };
        return serve_http(stream, facts, (rt, listener_index), shared, shutdown).await;
    };
    // The TLS futures are boxed so that a plain connection's future (which every idle
    // keep-alive connection holds) is not sized for the handshake and the TLS streams.
    let timeout = rt.settings.header_read_timeout;
    match Box::pin(tls.accept(stream, timeout)).await {
        Ok((Accepted::Tls(s, flusher), facts)) => {
            let facts = ConnFacts {
                info: Arc::new(info.with_tls(Arc::new(facts))),
                handshake_done: None,
                close_watch: None,
                flusher: Some(flusher),
            };
            Box::pin(serve_http(s, facts, (rt, listener_index), shared, shutdown)).await;
        }
        Ok((Accepted::Early(s, flusher, handshake_done), facts)) => {
            let facts = ConnFacts {
                info: Arc::new(info.with_tls(Arc::new(facts))),
                handshake_done: Some(handshake_done),
                close_watch: None,
                flusher: Some(flusher),
            };
            let rt = (rt, listener_index);
            Box::pin(serve_http(s, facts, rt, shared, shutdown)).await;
        }
        Err(e) => {
            tracing::debug!(peer = %peer, listener = %tls.name, error = %e, "TLS handshake failed");
        }
    }
}

/// Wakes a draining connection's loop when its next request arrives.
#[derive(Default)]
struct NextRequest {
    armed: AtomicBool,
    /// The connection has dispatched a request already.
    served: AtomicBool,
    arrived: tokio::sync::Notify,
}

/// How long an idle keep-alive connection that served requests waits for its next one once
/// draining: clients in the middle of sending send within this; idle ones are closed after it.
const KEEPALIVE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl NextRequest {
    /// How long to wait for the next request once draining: a connection that never sent one
    /// gets the header read timeout, one that did gets [`KEEPALIVE_GRACE`] at most.
    fn grace(&self, header_timeout: std::time::Duration) -> std::time::Duration {
        if self.served.load(Ordering::Relaxed) {
            header_timeout.min(KEEPALIVE_GRACE)
        } else {
            header_timeout
        }
    }
}

fn gauge_is_h2(ctx: &ConnCtx) -> bool {
    ctx.gauge.protocol() == crate::metrics::H2
}

/// Runs each HTTP/2 stream hyper hands over as its own task, boxed first.
///
/// Hot path: a stream's future holds the whole request pipeline (several KiB), and spawning it
/// inline copies it into the task several times and again on every stage change of the task.
/// Boxed, the task holds a pointer; the future is copied once (measured with callgrind on TLS
/// + HTTP/2: see docs/benchmarks.md).
#[derive(Debug, Clone, Copy)]
struct StreamExecutor;

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(Box::pin(fut));
    }
}

/// Marks a request dispatched before the TLS handshake completed (it came in early data).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EarlyData;

/// What [`serve_http`] knows of a connection besides its stream.
struct ConnFacts {
    info: Arc<ConnInfo>,
    /// Set for early-data connections: requests dispatched while it is false came in early
    /// data.
    handshake_done: Option<Arc<AtomicBool>>,
    /// Plain TCP: the watch for a client closing mid-request, which replaces hyper's (see
    /// [`crate::client_close`]). TLS connections keep hyper's.
    close_watch: Option<CloseWatch>,
    /// TLS: hands what a wake-up of the connection wrote to TLS in one write (see
    /// [`crate::tls::batch`]).
    flusher: Option<BatchFlusher>,
}

/// Serves HTTP/1.1 and HTTP/2 on `stream` (TCP, or TLS after the handshake).
async fn serve_http<S>(
    stream: S,
    ConnFacts {
        info,
        handshake_done,
        mut close_watch,
        flusher,
    }: ConnFacts,
    (rt, listener_index): (Arc<Runtime>, usize),
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(listener) = rt.listeners.get(listener_index) else {
        return;
    };
    let state = Arc::new(ConnState::default());
    let settings = &rt.settings;
    let gauge = listener.metrics.connection(crate::metrics::HTTP1);
    let mut io = TimedIo::new(
        crate::metrics::io::Counted::new(stream, Arc::clone(&listener.metrics)),
        state.clone(),
        settings.header_read_timeout,
        settings.keepalive_timeout,
    );

    let mut http1 = http1::Builder::new();
    http1
        .keep_alive(true)
        .header_read_timeout(None)
        .half_close(close_watch.is_some());
    // hyper parses into an inline array of 100 headers; setting any limit makes it allocate and
    // fill an array of that size for every request (measured: ~3,000 instructions). Up to 100,
    // Rampart's own check enforces `max_header_count` and hyper's inline limit only refuses
    // heads beyond 100 fields, with a bare 431.
    if settings.max_header_count > HYPER_INLINE_HEADERS {
        http1.max_headers(settings.max_header_count.saturating_mul(HYPER_HEADROOM));
    }
    http1.max_buf_size(
        (settings.max_header_size + settings.max_uri_length)
            .saturating_mul(HYPER_HEADROOM)
            .max(8192),
    );
    let mut http2 = http2::Builder::new(StreamExecutor);
    http2
        .max_concurrent_streams(rt.gates.http2.max_concurrent_streams)
        .max_pending_accept_reset_streams(rt.gates.http2.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(rt.gates.http2.max_local_error_reset_streams)
        .max_header_list_size(
            u32::try_from(settings.max_header_size.saturating_mul(HYPER_HEADROOM))
                .unwrap_or(u32::MAX),
        );
    let serves_http2 = listener.http2;

    let ctx = Arc::new(ConnCtx {
        info: info.clone(),
        shared: shared.clone(),
        listener_index,
        state: state.clone(),
        gauge,
        start: Arc::downgrade(&rt),
        layout: rt.layout,
    });
    let header_timeout = rt.settings.header_read_timeout;
    let loop_ctx = ctx.clone();
    drop(rt);
    // When the listener stops accepting (reload, upgrade, shutdown), an HTTP/1 connection is
    // not closed while idle: a client may be sending its next request at that very moment and
    // would see the connection reset. It is closed after answering its next request (with
    // `Connection: close`), or once no request came within the header read timeout.
    let next_request = Arc::new(NextRequest::default());
    let on_request = next_request.clone();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        on_request.served.store(true, Ordering::Relaxed);
        if on_request.armed.load(Ordering::Relaxed) {
            on_request.arrived.notify_one();
        }
        // Decided when hyper dispatches the request: before the handshake completed, the
        // request can only have come in early data (and may be a replay).
        if let Some(done) = &handshake_done
            && !done.load(Ordering::Acquire)
        {
            req.extensions_mut().insert(EarlyData);
        }
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(crate::pipeline::handle(req, ctx).await) }
    });
    let (version, first) = if serves_http2 {
        match crate::conn_proto::sniff(&mut io).await {
            Ok(sniffed) => sniffed,
            Err(err) => {
                log_connection_error(&err, &info, &shared);
                return;
            }
        }
    } else {
        (Version::H1, Bytes::new())
    };
    if version == Version::H2 {
        // HTTP/2 reads all the time and sees the client go by itself.
        close_watch = None;
    }
    let io = TokioIo::new(Prefixed::new(first, io));
    let mut conn: Pin<Box<dyn Served>> = match version {
        Version::H1 => Box::pin(http1.serve_connection(io, service).with_upgrades()),
        Version::H2 => Box::pin(http2.serve_connection(io, service)),
    };
    let mut closing = false;
    let mut close_now = None;
    if *shutdown.borrow() {
        next_request.armed.store(true, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + header_timeout;
        close_now = Some(Box::pin(next_request_or(&next_request, deadline)));
    }
    // The shutdown signal is polled only when the watch says it changed: once registered, its
    // waiter stays registered, and polling it at every wake-up of the connection cost several
    // hundred instructions per request (callgrind).
    let mut probe = shutdown.clone();
    let mut stop_registered = false;
    let stop = crate::worker::closed(shutdown);
    tokio::pin!(stop);
    // From here until `finish` below, this loop writes out what the connection wrote.
    if let Some(flusher) = &flusher {
        flusher.defer();
    }
    let result = loop {
        let event = std::future::poll_fn(|cx| {
            let polled = conn.as_mut().poll(cx);
            // What this poll wrote leaves now, in one call.
            if let Some(flusher) = &flusher
                && let Poll::Ready(Err(_)) = flusher.poll_write_out(cx)
            {
                return Poll::Ready(ConnEvent::ClientGone);
            }
            if let Poll::Ready(result) = polled {
                return Poll::Ready(ConnEvent::Ended(result));
            }
            if let Some(watch) = close_watch.as_mut()
                && watch.poll_closed(cx, &state).is_ready()
            {
                return Poll::Ready(ConnEvent::ClientGone);
            }
            if closing {
                return Poll::Pending;
            }
            if state.take_idle() {
                return Poll::Ready(ConnEvent::Idle);
            }
            if let Some(close) = close_now.as_mut() {
                return close.as_mut().poll(cx).map(|()| ConnEvent::Idle);
            }
            if !stop_registered || probe.has_changed().unwrap_or(true) {
                stop_registered = true;
                probe.borrow_and_update();
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(ConnEvent::Stop);
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            ConnEvent::Ended(result) => break result,
            // Dropping the connection drops the request: it is logged as 499.
            ConnEvent::ClientGone => {
                tracing::debug!(peer = %info.peer, listener = %info.listener, "client closed the connection mid-request");
                break Ok(());
            }
            ConnEvent::Idle => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            // HTTP/2 closes without a race: GOAWAY names the last stream served.
            ConnEvent::Stop if gauge_is_h2(&loop_ctx) => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            ConnEvent::Stop => {
                next_request.armed.store(true, Ordering::Relaxed);
                let deadline = tokio::time::Instant::now() + next_request.grace(header_timeout);
                close_now = Some(Box::pin(next_request_or(&next_request, deadline)));
            }
        }
    };
    if let Some(flusher) = flusher {
        // Flushes write at once again (a tunnel may carry on with this stream), and what is
        // still held (a last response, a 408) is written, within the header timeout.
        let _ = tokio::time::timeout(header_timeout, flusher.finish()).await;
    }
    if let Err(err) = result {
        log_connection_error(&err, &info, &shared);
    }
}

/// What woke a connection's serving loop.
enum ConnEvent<R> {
    /// The connection is done.
    Ended(R),
    /// Close gracefully: idle HTTP/2, or a draining HTTP/1 connection whose next request came
    /// (it is answered with `Connection: close`) or did not come in time.
    Idle,
    /// Shutdown or reload was signalled.
    Stop,
    /// The client closed the connection while a request was in flight.
    ClientGone,
}

/// Completes when the next request arrives on a draining connection, or at `deadline`.
async fn next_request_or(next: &NextRequest, deadline: tokio::time::Instant) {
    tokio::select! {
        () = next.arrived.notified() => {}
        () = tokio::time::sleep_until(deadline) => {}
    }
}

/// Logs why a connection ended badly; protocol violations and header timeouts also get an
/// access log line (hyper has already answered them: 400, 414, 431, or our 408).
fn log_connection_error(
    err: &(dyn std::error::Error + Send + Sync + 'static),
    info: &Arc<ConnInfo>,
    shared: &Shared,
) {
    let mut timeout = None;
    let mut parse = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        // `io::Error::source()` skips the error it wraps: look inside explicitly.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if let Some(t) = e
            .downcast_ref::<HeaderTimeout>()
            .or_else(|| inner.and_then(|i| i.downcast_ref::<HeaderTimeout>()))
        {
            timeout = Some(t.request_id.clone());
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && h.is_parse()
        {
            parse = Some(if h.is_parse_too_large() {
                ErrorKind::HeadersTooLarge
            } else {
                ErrorKind::BadRequest
            });
        }
        cur = e.source();
    }
    let (kind, status, request_id) = match (timeout, parse) {
        (Some(id), _) => (ErrorKind::HeaderReadTimeout, 408, id),
        (None, Some(kind)) => {
            let status = if err.to_string().contains("URI too long") {
                414
            } else {
                kind.status().as_u16()
            };
            (kind, status, rampart_core::ids::new_request_id())
        }
        (None, None) => {
            tracing::debug!(peer = %info.peer, listener = %info.listener, error = %err, "connection ended with an error");
            return;
        }
    };
    tracing::info!(peer = %info.peer, listener = %info.listener, reason = kind.code(), error = %err, "malformed or slow request refused");
    if let Some(log) = &shared.access_log {
        // The request never parsed: its method and target are unknown ("-").
        let method = http::Method::from_bytes(b"-").unwrap_or_default();
        let mut ctx = RequestCtx::new(
            info.clone(),
            method,
            http::Uri::default(),
            http::Version::HTTP_11,
        );
        ctx.request_id = request_id;
        ctx.reason = Some(kind);
        ctx.detail = Some(err.to_string());
        log.record(
            &ctx,
            Outcome {
                status,
                bytes_sent: 0,
                completed: true,
            },
        );
    }
}
