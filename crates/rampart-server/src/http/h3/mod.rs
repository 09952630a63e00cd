//! The HTTP/3 front end: serves one QUIC connection with `h3`, turns each request into the one
//! request type and hands it to the pipeline as HTTP/1.1 and HTTP/2 requests are, then writes
//! the response onto its stream. Beside `h1` and `h2`; the QUIC listener calls it.
//!
//! Limits of its own: the header block `h3` decodes (above Rampart's own limits, so Rampart
//! answers those with its 431 and log line), `CONNECT` refused, a client that cancels more
//! requests than it lets finish (the QUIC analogue of HTTP/2 "rapid reset") loses the
//! connection, and graceful shutdown with GOAWAY on reload of a removed listener, shutdown
//! and upgrade.

mod body;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h3::error::Code;
use http::{Method, Request};
use rampart_core::{ConnInfo, EarlyData, ErrorKind, ProxyError};
use tokio::sync::watch;

use crate::http::conn::closed;
use crate::http::front;
use crate::observe::metrics::{self, quic::QuicStats};
use crate::pipeline::plane::Plane;
use crate::pipeline::request::handle;
use crate::pipeline::session::{Carrier, Session, Shared};

use self::body::{SendFailure, request_body, respond};

/// The HTTP parsers' limits sit above Rampart's (as for HTTP/1.1 and HTTP/2) so that Rampart
/// answers limit violations itself; `h3`'s bare 431 only answers grossly oversized heads.
const HEAD_HEADROOM: usize = 2;

/// What [`serve`] knows of a QUIC connection besides the connection itself.
pub(crate) struct H3Facts {
    pub(crate) info: Arc<ConnInfo>,
    /// Set for 0-RTT connections once the handshake completed: requests that arrive before
    /// came in early data.
    pub(crate) handshake_done: Option<Arc<AtomicBool>>,
    /// `http3.max_reset_streams`.
    pub(crate) max_reset_streams: u32,
    pub(crate) stats: Arc<QuicStats>,
}

/// A QUIC connection as the pipeline reports back to it.
#[derive(Default)]
struct H3Conn {
    in_flight: AtomicUsize,
    /// Request streams being served (from acceptance to the end of the response).
    streams: AtomicUsize,
    /// Woken when `streams` drops to zero.
    idle: tokio::sync::Notify,
    /// Requests the client cancelled, less those it let finish (never below zero).
    cancelled: AtomicU32,
}

impl Carrier for H3Conn {
    fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn switch_protocols(&self) {}

    fn send_timed_out(&self) -> bool {
        false
    }
}

/// Counts one request stream as served while it lives.
struct StreamGuard(Arc<H3Conn>);

impl StreamGuard {
    fn new(conn: &Arc<H3Conn>) -> Self {
        conn.streams.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(conn))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.streams.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl H3Conn {
    /// Completes once no request stream is being served.
    async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.streams.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Counts a request's end; true when the client has now cancelled more than `limit`
    /// requests beyond those it let finish.
    fn ended(&self, finished: bool, limit: u32) -> bool {
        if finished {
            let _ = self
                .cancelled
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            return false;
        }
        self.cancelled.fetch_add(1, Ordering::Relaxed) + 1 > limit
    }
}

/// Serves HTTP/3 on `conn` for listener `listener_index` of `plane` until the client closes it,
/// it idles out, or `shutdown` asks for a graceful close (GOAWAY, in-flight requests finish).
pub(crate) async fn serve(
    conn: quinn::Connection,
    facts: H3Facts,
    (plane, listener_index): (Arc<Plane>, usize),
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let Some(listener) = plane.listeners.get(listener_index) else {
        return;
    };
    let _gauge = listener.metrics.connection(metrics::H3);
    let settings = &plane.settings;
    let head_room = (settings.max_header_size + settings.max_uri_length)
        .saturating_mul(HEAD_HEADROOM)
        .max(8192);
    let send_timeout = settings.send_timeout;
    let state = Arc::new(H3Conn::default());
    let session = Arc::new(Session {
        info: facts.info.clone(),
        shared,
        carrier: state.clone(),
        listener_index,
        start: Arc::downgrade(&plane),
        layout: plane.layout,
    });
    drop(plane);
    let mut h3 = match h3::server::builder()
        .max_field_section_size(head_room as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn.clone()))
        .await
    {
        Ok(h3) => h3,
        Err(e) => {
            tracing::debug!(peer = %facts.info.peer, listener = %facts.info.listener, error = %e, "HTTP/3 connection failed to start");
            return;
        }
    };
    let stop = closed(shutdown);
    tokio::pin!(stop);
    let mut closing = false;
    loop {
        let accepted = tokio::select! {
            accepted = h3.accept() => accepted,
            // After GOAWAY: the accepted requests are done, the connection closes.
            () = state.drained(), if closing => break,
            () = &mut stop, if !closing => {
                closing = true;
                // GOAWAY: streams the client opened beyond the last one accepted are refused
                // (retryable); accepted ones finish, then `accept` ends.
                if let Err(e) = h3.shutdown(0).await {
                    tracing::debug!(peer = %facts.info.peer, error = %e, "HTTP/3 GOAWAY failed");
                    break;
                }
                continue;
            }
        };
        match accepted {
            Ok(Some(resolver)) => {
                let request = Stream {
                    _guard: StreamGuard::new(&state),
                    session: session.clone(),
                    state: state.clone(),
                    conn: conn.clone(),
                    early: facts
                        .handshake_done
                        .as_ref()
                        .is_some_and(|done| !done.load(Ordering::Acquire)),
                    max_reset_streams: facts.max_reset_streams,
                    stats: facts.stats.clone(),
                    send_timeout,
                };
                tokio::spawn(Box::pin(request.serve(resolver)));
            }
            Ok(None) => break,
            Err(e) => {
                if !e.is_h3_no_error() {
                    tracing::debug!(peer = %facts.info.peer, listener = %facts.info.listener, error = %e, "HTTP/3 connection closed with an error");
                }
                break;
            }
        }
    }
    drop(h3);
    conn.close(
        Code::H3_NO_ERROR.value().try_into().unwrap_or_default(),
        b"",
    );
}

/// One request stream and what serving it needs.
struct Stream {
    _guard: StreamGuard,
    session: Arc<Session>,
    state: Arc<H3Conn>,
    conn: quinn::Connection,
    early: bool,
    max_reset_streams: u32,
    stats: Arc<QuicStats>,
    send_timeout: Duration,
}

type Resolver = h3::server::RequestResolver<h3_quinn::Connection, Bytes>;

impl Stream {
    async fn serve(self, resolver: Resolver) {
        let info = &self.session.info;
        let (head, stream) = match resolver.resolve_request().await {
            Ok(resolved) => resolved,
            Err(e) => {
                // `h3` already answered: 431 for a head over its limit, H3_MESSAGE_ERROR for a
                // malformed one, a connection error for a broken frame sequence.
                tracing::debug!(peer = %info.peer, listener = %info.listener, error = %e, "HTTP/3 request refused before the pipeline");
                self.ended(false);
                return;
            }
        };
        let (mut send, recv) = stream.split();
        let (parts, ()) = head.into_parts();
        let mut refusal = None;
        let body = match request_body(recv, &parts.headers) {
            Ok(body) => body,
            Err(e) => {
                refusal = Some(e);
                rampart_core::Body::Empty
            }
        };
        let mut req = Request::from_parts(parts, body);
        if req.method() == Method::CONNECT {
            refusal.get_or_insert_with(|| {
                ProxyError::new(
                    ErrorKind::MethodNotAllowed,
                    "CONNECT (and extended CONNECT) is not served over HTTP/3",
                )
            });
        }
        if self.early {
            req.extensions_mut().insert(EarlyData);
        }
        self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut arrival = front::arrive(&req, &self.session, 0);
        if let Some(refusal) = refusal {
            arrival.refusal.get_or_insert(Box::new(refusal));
        }
        let resp = handle(Box::new(req), self.session.clone(), arrival).await;
        let sent = respond(&mut send, resp, self.send_timeout).await;
        if let Err(why) = &sent {
            tracing::debug!(peer = %info.peer, listener = %info.listener, reason = ?why, "HTTP/3 response not delivered whole");
        }
        self.ended(!matches!(sent, Err(SendFailure::Cancelled)));
    }

    /// Counts the request's end; closes the connection of a client that cancels too many.
    fn ended(&self, finished: bool) {
        if self.state.ended(finished, self.max_reset_streams) {
            let info = &self.session.info;
            tracing::warn!(peer = %info.peer, listener = %info.listener, limit = self.max_reset_streams, "HTTP/3 client cancelled too many requests: closing the connection");
            self.stats.reset_flood();
            self.conn.close(
                Code::H3_EXCESSIVE_LOAD
                    .value()
                    .try_into()
                    .unwrap_or_default(),
                b"too many cancelled requests",
            );
        }
    }
}
