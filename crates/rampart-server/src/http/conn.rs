//! Serving one client connection's HTTP: HTTP/1.1 (Rampart's own server, [`crate::http::h1`])
//! and HTTP/2 (hyper's; by ALPN, or by the prior-knowledge preface on cleartext) on the same
//! socket, keep-alive and header timers, graceful shutdown, and each request handed to the
//! pipeline as the one request type.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rampart_core::{Body, ConnInfo, EarlyData};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::http::conn_error::{log_connection_error, refuse_bad_preface};
use crate::http::front;
use crate::http::h1;
use crate::http::h2::H2Settings;
use crate::http::io::{ConnState, SendClock, TimedIo};
use crate::http::proto::{self, Prefixed, Version};
use crate::http::write_batch::BatchFlusher;
use crate::observe::metrics::{self, io::Counted};
use crate::pipeline::plane::Plane;
use crate::pipeline::request::handle;
use crate::pipeline::session::{Session, Shared};

/// The HTTP parsers' own limits sit above Rampart's so that Rampart answers limit violations
/// itself (with its error body and log line); the parsers' bare refusals only answer grossly
/// oversized heads.
const HEAD_HEADROOM: usize = 2;

/// Wakes a draining HTTP/2 connection's loop when its next request arrives.
#[derive(Default)]
struct NextRequest {
    armed: AtomicBool,
    arrived: tokio::sync::Notify,
}

/// What [`serve_http`] knows of a connection besides its stream.
pub(crate) struct ConnFacts {
    pub(crate) info: Arc<ConnInfo>,
    /// Set for early-data connections: requests dispatched while it is false came in early
    /// data.
    pub(crate) handshake_done: Option<Arc<AtomicBool>>,
    /// TLS: hands what a wake-up of the connection wrote to TLS in one write (see
    /// [`crate::http::write_batch`]).
    pub(crate) flusher: Option<BatchFlusher>,
}

/// The serving of an HTTP/1.1 connection once it is set up, boxed on its own: the caller drops
/// the (larger) future that set it up, so an idle connection holds only this.
pub(crate) type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves HTTP/1.1 and HTTP/2 on `stream` (TCP, or TLS after the handshake) for listener
/// `listener_index` of `plane`. HTTP/2 is served before this returns; HTTP/1.1 is returned to
/// be awaited once this future is gone.
pub(crate) async fn serve_http<S>(
    stream: S,
    ConnFacts {
        info,
        handshake_done,
        flusher,
    }: ConnFacts,
    (plane, listener_index): (Arc<Plane>, usize),
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Option<Serving>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let listener = plane.listeners.get(listener_index)?;
    let state = Arc::new(ConnState::default());
    let settings = &plane.settings;
    let gauge = listener.metrics.connection(metrics::HTTP1);
    let header_timeout = settings.header_read_timeout;
    // Built in a block: what only the start needs (the timed stream before it moves into the
    // HTTP/1.1 connection, the settings) is not kept in this future, which every idle
    // keep-alive connection holds, while the connection serves.
    let serving = {
        let mut io = TimedIo::new(
            Counted::new(stream, Arc::clone(&listener.metrics)),
            state.clone(),
            (
                settings.header_read_timeout,
                settings.keepalive_timeout,
                settings.send_timeout,
            ),
        );

        // The most a request head may take before Rampart's own checks answer it: HTTP/1.1
        // buffers that much, HTTP/2 decodes a header block up to that size and hands it over, so
        // every head Rampart's limits refuse gets Rampart's 431 and log line.
        let head_room = (settings.max_header_size + settings.max_uri_length)
            .saturating_mul(HEAD_HEADROOM)
            .max(8192);
        let serves_http2 = listener.http2;
        let timing = h1::Timing {
            header: header_timeout,
            keepalive: settings.keepalive_timeout,
            started: tokio::time::Instant::now(),
            linger_to_end: info.tls.is_some(),
        };
        let limits = h1::Limits {
            // Parsed on the stack up to `INLINE_FIELDS`; Rampart's own check refuses more than
            // `max_header_count` with its error body, so one more than that must parse.
            max_fields: settings
                .max_header_count
                .saturating_add(1)
                .max(h1::INLINE_FIELDS),
            max_bytes: head_room,
        };
        let send_timeout = settings.send_timeout;
        let h2_limits = plane.gates.http2.clone();
        let session = Arc::new(Session {
            info: info.clone(),
            shared: shared.clone(),
            carrier: state.clone(),
            listener_index,
            start: Arc::downgrade(&plane),
            layout: plane.layout,
        });
        drop(plane);
        // ALPN, when TLS negotiated it, decides the protocol: `h2` makes the connection HTTP/2
        // whatever it sends (RFC 9113 §3.4), `http/1.1` makes it HTTP/1.1. Without ALPN, and on
        // cleartext, only bytes that begin with the HTTP/2 preface are HTTP/2.
        let alpn = info.tls.as_ref().and_then(|t| t.alpn);
        let (version, first) = match alpn {
            _ if !serves_http2 || alpn == Some("http/1.1") => (Version::H1, Bytes::new()),
            // The rare steps are boxed: the connection's future, which every idle keep-alive
            // connection holds, is sized for its largest step.
            _ => match Box::pin(proto::sniff(&mut io)).await {
                Ok((Version::H1, first)) if alpn == Some("h2") => {
                    if !first.is_empty() {
                        Box::pin(refuse_bad_preface(&mut io, &info, header_timeout)).await;
                    }
                    return None;
                }
                Ok(sniffed) => sniffed,
                Err(err) => {
                    log_connection_error(&err, &info, &shared);
                    return None;
                }
            },
        };
        if version == Version::H2 {
            gauge.switch(metrics::HTTP1, metrics::H2);
            let h2 = H2Conn {
                session,
                state,
                handshake_done,
                flusher,
                header_room: head_room,
                limits: h2_limits,
            };
            Box::pin(serve_h2(Prefixed::new(first, io), h2, shutdown)).await;
            return None;
        }
        let wire = h1::Wire::new(
            io.into_inner(),
            &first,
            state.clone(),
            SendClock::new(send_timeout),
        );
        let front = h1::Front {
            session,
            state: state.clone(),
            handshake_done,
        };
        h1::serve(h1::WireLock::new(wire), front, (timing, limits), shutdown)
    };
    Some(Box::pin(async move {
        let _gauge = gauge;
        let failed = serving.await;
        // HTTP/1.1 writes out at every flush: what is still held (a last answer) goes now.
        if let Some(flusher) = flusher.filter(|_| !state.send_timed_out()) {
            let _ = Box::pin(tokio::time::timeout(header_timeout, flusher.finish())).await;
        }
        if let Some(err) = failed {
            log_connection_error(&err, &info, &shared);
        }
    }))
}

/// What an HTTP/2 connection needs besides its stream.
struct H2Conn {
    session: Arc<Session>,
    state: Arc<ConnState>,
    handshake_done: Option<Arc<AtomicBool>>,
    flusher: Option<BatchFlusher>,
    header_room: usize,
    limits: rampart_config::model::Http2Section,
}

/// Serves HTTP/2 on `io` with hyper.
async fn serve_h2<S>(
    io: Prefixed<TimedIo<Counted<S>>>,
    conn: H2Conn,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let H2Conn {
        session,
        state,
        handshake_done,
        flusher,
        header_room,
        limits: h2_limits,
    } = conn;
    let info = session.info.clone();
    let shared = session.shared.clone();
    let header_timeout = session.plane().0.settings.header_read_timeout;
    let http2 = H2Settings::new(&h2_limits, header_room);
    let next_request = Arc::new(NextRequest::default());
    let on_request = next_request.clone();
    let requests = state.clone();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
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
        let arrival = front::arrive(&req, &session, head_flags);
        let session = session.clone();
        let (parts, body) = req.into_parts();
        let req = Box::new(http::Request::from_parts(parts, Body::Incoming(body)));
        async move { Ok::<_, Infallible>(handle(req, session, arrival).await) }
    });
    let mut conn = Box::pin(http2.serve(TokioIo::new(io), service));
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
            ConnEvent::ClientGone => {
                tracing::debug!(peer = %info.peer, listener = %info.listener, "client closed the connection mid-request");
                break Ok(());
            }
            // GOAWAY names the last stream served: HTTP/2 closes without a race.
            ConnEvent::Idle | ConnEvent::Stop => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    // A client that took in nothing for the send timeout is not waited for again.
    if let Some(flusher) = flusher.filter(|_| !state.send_timed_out()) {
        // Flushes write at once again, and what is still held is written, within the header
        // timeout.
        let _ = tokio::time::timeout(header_timeout, flusher.finish()).await;
    }
    if let Err(err) = result {
        log_connection_error(&err, &info, &shared);
    }
}

/// What woke an HTTP/2 connection's serving loop.
enum ConnEvent<R> {
    /// The connection is done.
    Ended(R),
    /// Close gracefully: the connection was idle for the keep-alive timeout, or it was
    /// draining and its next request came (or did not come in time).
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
