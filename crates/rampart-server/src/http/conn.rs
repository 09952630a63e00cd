//! Serving one client connection's HTTP: HTTP/1.1 and HTTP/2 (by ALPN, or by the prior-knowledge
//! preface on cleartext) on the same socket, upgrades, keep-alive and header timers, graceful
//! shutdown, and each request handed to the pipeline as the one request type.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rampart_core::{Body, ConnInfo, EarlyData};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::http::close_watch::CloseWatch;
use crate::http::conn_error::{log_connection_error, refuse_bad_preface};
use crate::http::front;
use crate::http::h2::H2Settings;
use crate::http::io::{ConnState, TimedIo};
use crate::http::proto::{self, Prefixed, Served, Version};
use crate::http::write_batch::BatchFlusher;
use crate::observe::metrics::{self, io::Counted};
use crate::pipeline::plane::Plane;
use crate::pipeline::request::{Arrival, handle};
use crate::pipeline::session::{Session, Shared};

/// hyper's own limits sit above Rampart's so that Rampart answers limit violations itself (with
/// its error body and log line); hyper's bare 431 only answers grossly oversized heads.
const HYPER_HEADROOM: usize = 2;

/// The number of header fields hyper parses without allocating (its default limit).
const HYPER_INLINE_HEADERS: usize = 100;

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

/// What [`serve_http`] knows of a connection besides its stream.
pub(crate) struct ConnFacts {
    pub(crate) info: Arc<ConnInfo>,
    /// Set for early-data connections: requests dispatched while it is false came in early
    /// data.
    pub(crate) handshake_done: Option<Arc<AtomicBool>>,
    /// Plain TCP: the watch for a client closing mid-request, which replaces hyper's (see
    /// [`crate::http::close_watch`]). TLS connections keep hyper's.
    pub(crate) close_watch: Option<CloseWatch>,
    /// TLS: hands what a wake-up of the connection wrote to TLS in one write (see
    /// [`crate::http::write_batch`]).
    pub(crate) flusher: Option<BatchFlusher>,
}

/// Serves HTTP/1.1 and HTTP/2 on `stream` (TCP, or TLS after the handshake) for listener
/// `listener_index` of `plane`.
pub(crate) async fn serve_http<S>(
    stream: S,
    ConnFacts {
        info,
        handshake_done,
        mut close_watch,
        flusher,
    }: ConnFacts,
    (plane, listener_index): (Arc<Plane>, usize),
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(listener) = plane.listeners.get(listener_index) else {
        return;
    };
    let state = Arc::new(ConnState::default());
    let settings = &plane.settings;
    let gauge = listener.metrics.connection(metrics::HTTP1);
    let mut io = TimedIo::new(
        Counted::new(stream, Arc::clone(&listener.metrics)),
        state.clone(),
        (
            settings.header_read_timeout,
            settings.keepalive_timeout,
            settings.send_timeout,
        ),
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
    // The most a request head may take while hyper reads it, before Rampart's own checks
    // answer it: HTTP/1.1 buffers that much, HTTP/2 decodes a header block up to that size and
    // hands it over, so every block Rampart's limits refuse gets Rampart's 431 and log line.
    let head_room = (settings.max_header_size + settings.max_uri_length)
        .saturating_mul(HYPER_HEADROOM)
        .max(8192);
    http1.max_buf_size(head_room);
    let h2_settings = H2Settings::new(&plane.gates.http2, head_room);
    let serves_http2 = listener.http2;
    let header_timeout = settings.header_read_timeout;
    let session = Arc::new(Session {
        info: info.clone(),
        shared: shared.clone(),
        carrier: state.clone(),
        listener_index,
        start: Arc::downgrade(&plane),
        layout: plane.layout,
    });
    drop(plane);
    // When the listener stops accepting (reload, upgrade, shutdown), an HTTP/1 connection is
    // not closed while idle: a client may be sending its next request at that very moment and
    // would see the connection reset. It is closed after answering its next request (with
    // `Connection: close`), or once no request came within the header read timeout.
    let next_request = Arc::new(NextRequest::default());
    let on_request = next_request.clone();
    let requests = state.clone();
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
        requests.request_started();
        let head_flags = requests.take_head_flags();
        let (plane, listener) = session.plane();
        let refusal = front::check(&req, &plane.settings, head_flags)
            .err()
            .map(Box::new);
        let arrival = Arrival {
            plane,
            listener,
            refusal,
        };
        let session = session.clone();
        let (parts, body) = req.into_parts();
        let req = Box::new(http::Request::from_parts(parts, Body::Incoming(body)));
        async move { Ok::<_, Infallible>(handle(req, session, arrival).await) }
    });
    // ALPN, when TLS negotiated it, decides the protocol: `h2` makes the connection HTTP/2
    // whatever it sends (RFC 9113 §3.4), `http/1.1` makes it HTTP/1.1. Without ALPN, and on
    // cleartext, only bytes that begin with the HTTP/2 preface are HTTP/2.
    let alpn = info.tls.as_ref().and_then(|t| t.alpn);
    let (version, first) = match alpn {
        _ if !serves_http2 || alpn == Some("http/1.1") => (Version::H1, Bytes::new()),
        _ => match proto::sniff(&mut io).await {
            Ok((Version::H1, first)) if alpn == Some("h2") => {
                if !first.is_empty() {
                    refuse_bad_preface(&mut io, &info, header_timeout).await;
                }
                return;
            }
            Ok(sniffed) => sniffed,
            Err(err) => {
                log_connection_error(&err, &info, &shared);
                return;
            }
        },
    };
    if version == Version::H2 {
        // HTTP/2 reads all the time and sees the client go by itself.
        close_watch = None;
        gauge.switch(metrics::HTTP1, metrics::H2);
    }
    let io = TokioIo::new(Prefixed::new(first, io));
    let mut conn: Pin<Box<dyn Served>> = match version {
        Version::H1 => Box::pin(http1.serve_connection(io, service).with_upgrades()),
        Version::H2 => Box::pin(h2_settings.serve(io, service)),
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
    let stop = closed(shutdown);
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
            ConnEvent::Stop if version == Version::H2 => {
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
    // A client that took in nothing for the send timeout is not waited for again.
    if let Some(flusher) = flusher.filter(|_| !state.send_timed_out()) {
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

/// Completes once `close` says `true`, or its sender is gone.
pub(crate) async fn closed(mut close: watch::Receiver<bool>) {
    if *close.borrow_and_update() {
        return;
    }
    while close.changed().await.is_ok() {
        if *close.borrow_and_update() {
            return;
        }
    }
}
