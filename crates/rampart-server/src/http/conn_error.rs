//! How a client connection that broke HTTP ends: the log line (and access log line) for a
//! malformed or slow request head that the HTTP/1.1 server, hyper or the header timer refused, and the HTTP/2
//! connection error for a connection whose ALPN said `h2` but which did not send the preface.

use std::sync::Arc;
use std::time::Duration;

use rampart_core::{ConnInfo, ErrorKind, Outcome, RequestCtx};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::http::io::{HeaderTimeout, SendTimeout};
use crate::pipeline::session::Shared;

/// The server's connection preface (an empty SETTINGS frame, RFC 9113 §3.4), then GOAWAY with
/// last stream 0 and PROTOCOL_ERROR (§6.8): the answer to a connection that negotiated `h2`
/// and then sent something other than the client preface.
const PREFACE_REFUSAL: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, length 0, stream 0
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, length 8, stream 0
    0, 0, 0, 0, // last stream ID 0
    0, 0, 0, 1, // PROTOCOL_ERROR
];

/// Answers a connection that negotiated `h2` but did not open with the client preface: a
/// connection error of type PROTOCOL_ERROR (GOAWAY, then close), never an HTTP/1.1 answer.
pub(crate) async fn refuse_bad_preface<I: AsyncWrite + Unpin>(
    io: &mut I,
    info: &ConnInfo,
    timeout: Duration,
) {
    tracing::info!(peer = %info.peer, listener = %info.listener, reason = "h2_bad_preface", "connection refused: ALPN negotiated h2 but the client did not send the HTTP/2 preface");
    let _ = tokio::time::timeout(timeout, async {
        io.write_all(&PREFACE_REFUSAL).await?;
        io.flush().await?;
        io.shutdown().await
    })
    .await;
}

/// Logs why a connection ended badly; protocol violations and header timeouts also get an
/// access log line (hyper has already answered them: 400, 414, 431, or our 408).
pub(crate) fn log_connection_error(
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
        (None, None) if is_send_timeout(err) => {
            tracing::info!(peer = %info.peer, listener = %info.listener, reason = ErrorKind::SendTimeout.code(), error = %err, "connection closed: the client stopped taking in its answer");
            return;
        }
        (None, None) => {
            tracing::debug!(peer = %info.peer, listener = %info.listener, error = %err, "connection ended with an error");
            return;
        }
    };
    log_refused_head(kind, status, request_id, &err.to_string(), info, shared);
}

/// Logs a request head refused before it became a request (malformed, too large, or too
/// slow), with an access log line: its method and target are unknown ("-").
pub(crate) fn log_refused_head(
    kind: ErrorKind,
    status: u16,
    request_id: http::HeaderValue,
    detail: &str,
    info: &Arc<ConnInfo>,
    shared: &Shared,
) {
    tracing::info!(peer = %info.peer, listener = %info.listener, reason = kind.code(), error = %detail, "malformed or slow request refused");
    if let Some(log) = &shared.access_log {
        let method = http::Method::from_bytes(b"-").unwrap_or_default();
        let mut ctx = RequestCtx::new(
            info.clone(),
            method,
            http::Uri::default(),
            http::Version::HTTP_11,
        );
        ctx.request_id = request_id;
        ctx.reason = Some(kind);
        ctx.detail = Some(detail.to_owned());
        log.record(
            &ctx,
            Outcome {
                status,
                bytes_sent: 0,
                bytes_received: 0,
                completed: true,
            },
        );
    }
}

/// True when `err` (or an error inside it) is a [`SendTimeout`].
fn is_send_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if e.is::<SendTimeout>() || matches!(inner, Some(i) if i.is::<SendTimeout>()) {
            return true;
        }
        cur = e.source();
    }
    false
}
