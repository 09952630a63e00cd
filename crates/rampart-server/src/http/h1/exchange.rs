//! One request on an HTTP/1.1 connection: the head becomes the pipeline's request (its body
//! read from the connection as the pipeline polls it), the pipeline's future runs while the
//! connection watches for the client leaving, and the response is written: its head from a
//! pooled buffer in the same write as the first piece of the body.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body::Body as _;
use rampart_core::{Body, ClientBody, EarlyData, ErrorKind};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::http::conn_error::log_refused_head;
use crate::http::front;
use crate::http::h1::conn::{Dispatch, Next, Refusal, Turn};
use crate::http::h1::encode::{self, BodyFacts, Exchange, Framing, chunk_line, encode_head};
use crate::http::h1::head::{self, Head, HeadError};
use crate::http::h1::pool;
use crate::http::h1::upgrade::Upgraded;
use crate::http::h1::wire::{SharedWire, lock};
use crate::http::io::{ConnState, timeout_response};
use crate::pipeline::finish::ResponseBody;
use crate::pipeline::request::handle;
use crate::pipeline::session::Session;
use crate::pipeline::tunnel::ClientUpgrade;

/// The front end of one client connection: hands its requests to the pipeline.
pub(crate) struct Front {
    pub(crate) session: Arc<Session>,
    pub(crate) state: Arc<ConnState>,
    /// Set for early-data connections: requests dispatched while it is false came in early
    /// data.
    pub(crate) handshake_done: Option<Arc<AtomicBool>>,
}

impl<S> Dispatch<S> for Front
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn exchange<'a>(
        &'a self,
        wire: &'a SharedWire<S>,
        head: Box<Head>,
        turn: &'a mut Turn,
    ) -> Pin<Box<dyn Future<Output = Next> + Send + 'a>> {
        Box::pin(exchange(self, wire, head, turn))
    }

    fn refuse<'a>(
        &'a self,
        wire: &'a SharedWire<S>,
        why: Refusal,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(refuse(self, wire, why))
    }
}

/// Dispatches the request of `head` and writes its response.
async fn exchange<S>(front: &Front, wire: &SharedWire<S>, head: Box<Head>, turn: &mut Turn) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Head {
        request,
        framing,
        keep_alive,
        expects_continue,
        upgrade,
        flags,
    } = *head;
    let arrived_draining = turn.dispatched();
    let head_request = request.method() == Method::HEAD;
    let version = request.version();
    let id = lock(wire).start_body(framing, expects_continue);
    let body = match framing {
        head::Framing::Length(_) | head::Framing::Chunked => {
            Body::Client(ClientBody::new(wire.clone(), id))
        }
        head::Framing::Empty | head::Framing::Refused => Body::Empty,
    };
    let mut req = request.map(|()| body);
    // Decided when the request is dispatched: before the handshake completed, the request can
    // only have come in early data (and may be a replay).
    if let Some(done) = &front.handshake_done
        && !done.load(Ordering::Acquire)
    {
        req.extensions_mut().insert(EarlyData);
    }
    let upgrade_to = upgrade.then(|| {
        let (to, side) = ClientUpgrade::pair();
        req.extensions_mut().insert(side);
        to
    });
    front.state.request_started();
    let arrival = front::arrive(&req, &front.session, flags);
    let mut handling = pin!(handle(Box::new(req), front.session.clone(), arrival));
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(resp) = handling.as_mut().poll(cx) {
            return Poll::Ready(Some(resp));
        }
        if lock(wire).poll_watch(cx).is_ready() {
            return Poll::Ready(None);
        }
        turn.poll_stop(cx);
        Poll::Pending
    })
    .await;
    let Some(response) = response else {
        // Dropping the request's future drops the request: it is logged as 499.
        client_gone(front);
        return Next::Close;
    };
    let (parts, mut body) = response.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS
        && let Some(to) = upgrade_to
    {
        return switch(wire, &parts, body, to).await;
    }
    let exchange = Exchange {
        head_request,
        version,
        keep_alive: keep_alive && !turn.closes(arrived_draining) && !front.state.send_timed_out(),
    };
    let facts = BodyFacts {
        empty: body.is_end_stream(),
        exact: body.size_hint().exact(),
    };
    let mut out = pool::take();
    let (framing, keep) = encode_head(parts.status, &parts.headers, facts, exchange, &mut out);
    drop(parts);
    let sent = send(wire, out, &mut body, framing, turn).await;
    drop(body);
    match sent {
        Ok(Sent::Whole) => {}
        Ok(Sent::ClientGone) => {
            client_gone(front);
            return Next::Close;
        }
        Ok(Sent::Cut) => return Next::Close,
        Err(e) => return Next::Failed(e),
    }
    let mut w = lock(wire);
    if !w.body_done() {
        // The request's body was not read to its end: what follows cannot be told apart.
        w.abandon_body();
        return Next::Close;
    }
    if !keep || (w.peer_done && !w.has_buffered()) {
        return Next::Close;
    }
    Next::Continue
}

fn client_gone(front: &Front) {
    let info = &front.session.info;
    tracing::debug!(peer = %info.peer, listener = %info.listener, "client closed the connection mid-request");
}

/// How sending a response ended.
enum Sent {
    Whole,
    /// The response body failed: the client gets a cut message and the connection closes.
    Cut,
    /// The client reset the connection while the body was awaited.
    ClientGone,
}

/// Writes the response: `out` holds its head, written together with the first piece of the
/// body (or alone, for a bodiless answer).
async fn send<S>(
    wire: &SharedWire<S>,
    out: BytesMut,
    body: &mut ResponseBody,
    framing: Framing,
    turn: &mut Turn,
) -> io::Result<Sent>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut head: &[u8] = &out;
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut result = Sent::Whole;
    if framing != Framing::None && !body.is_end_stream() {
        loop {
            let frame = std::future::poll_fn(|cx| {
                if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                    return Poll::Ready(Some(frame));
                }
                if lock(wire).poll_watch(cx).is_ready() {
                    return Poll::Ready(None);
                }
                turn.poll_stop(cx);
                Poll::Pending
            })
            .await;
            let frame = match frame {
                None => {
                    result = Sent::ClientGone;
                    break;
                }
                Some(None) => break,
                Some(Some(Err(_))) => {
                    result = Sent::Cut;
                    break;
                }
                Some(Some(Ok(frame))) => frame,
            };
            let end = body.is_end_stream();
            match frame.into_data() {
                Ok(data) => {
                    write_data(wire, &mut head, &data, framing, &mut left, end).await?;
                    if left == 0 && framing != Framing::Chunked {
                        break;
                    }
                }
                Err(frame) => {
                    if let (Ok(trailers), Framing::Chunked) = (frame.into_trailers(), framing) {
                        let mut tail = BytesMut::new();
                        encode::encode_trailers(&trailers, &mut tail);
                        write_all(wire, &mut [head, &tail]).await?;
                        head = &[];
                        left = 0;
                        break;
                    }
                }
            }
            if end {
                break;
            }
        }
    }
    let finished = match framing {
        Framing::Chunked if left != 0 && matches!(result, Sent::Whole) => {
            write_all(wire, &mut [head, encode::LAST_CHUNK]).await?;
            true
        }
        Framing::Length(_) if left != 0 => false,
        _ => {
            write_all(wire, &mut [head]).await?;
            true
        }
    };
    std::future::poll_fn(|cx| lock(wire).poll_flush(cx)).await?;
    pool::give(out);
    if !finished && matches!(result, Sent::Whole) {
        // The body ended short of its length: the client sees a cut message.
        result = Sent::Cut;
    }
    Ok(result)
}

/// Writes one piece of body data (with the head, if it is still unsent); `end`: the body ends
/// with it (a chunked body's last chunk goes in the same write).
async fn write_data<S>(
    wire: &SharedWire<S>,
    head: &mut &[u8],
    data: &Bytes,
    framing: Framing,
    left: &mut u64,
    end: bool,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match framing {
        Framing::Chunked if data.is_empty() && !end => Ok(()),
        Framing::Chunked => {
            let mut line = [0u8; 18];
            let len = chunk_line(data.len(), &mut line);
            let line: &[u8] = if data.is_empty() { &[] } else { &line[..len] };
            let crlf: &[u8] = if data.is_empty() { &[] } else { b"\r\n" };
            let last: &[u8] = if end { encode::LAST_CHUNK } else { &[] };
            if end {
                *left = 0;
            }
            write_all(wire, &mut [*head, line, data, crlf, last]).await?;
            *head = &[];
            Ok(())
        }
        _ => {
            // Never more than the length said (a body longer than its length is cut there).
            let take = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
            *left -= take as u64;
            write_all(wire, &mut [*head, &data[..take]]).await?;
            *head = &[];
            Ok(())
        }
    }
}

async fn write_all<S>(wire: &SharedWire<S>, parts: &mut [&[u8]]) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    std::future::poll_fn(|cx| lock(wire).poll_write_all(cx, parts)).await
}

/// Writes the `101` and hands the stream to the tunnel.
async fn switch<S>(
    wire: &SharedWire<S>,
    parts: &http::response::Parts,
    body: ResponseBody,
    to: tokio::sync::oneshot::Sender<Box<dyn crate::pipeline::tunnel::TunnelStream>>,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut out = pool::take();
    let exchange = Exchange {
        head_request: false,
        version: http::Version::HTTP_11,
        keep_alive: true,
    };
    let facts = BodyFacts {
        empty: true,
        exact: Some(0),
    };
    let _ = encode_head(parts.status, &parts.headers, facts, exchange, &mut out);
    let written = async {
        write_all(wire, &mut [&out]).await?;
        std::future::poll_fn(|cx| lock(wire).poll_flush(cx)).await
    }
    .await;
    pool::give(out);
    drop(body);
    if let Err(e) = written {
        return Next::Failed(e);
    }
    if to.send(Box::new(Upgraded(wire.clone()))).is_err() {
        return Next::Close;
    }
    Next::Upgraded
}

/// Answers a head refused before it became a request (or one that did not arrive in time),
/// logs it, and leaves the connection to close.
async fn refuse<S>(front: &Front, wire: &SharedWire<S>, why: Refusal)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request_id = rampart_core::ids::new_request_id();
    let (kind, status, detail) = match why {
        Refusal::Timeout => (
            ErrorKind::HeaderReadTimeout,
            408,
            "request header read timed out".to_owned(),
        ),
        Refusal::Bad(e) => {
            let kind = match e {
                HeadError::Malformed(_) => ErrorKind::BadRequest,
                HeadError::TooLarge => ErrorKind::HeadersTooLarge,
                HeadError::UriTooLong => ErrorKind::UriTooLong,
            };
            (kind, e.status(), e.to_string())
        }
    };
    let answer = match why {
        Refusal::Timeout => timeout_response(&request_id),
        Refusal::Bad(e) => refusal_response(e, &request_id),
    };
    let session = &front.session;
    log_refused_head(
        kind,
        status,
        request_id,
        &detail,
        &session.info,
        &session.shared,
    );
    lock(wire).abandon_body();
    // Best effort, within the header timeout: a client this broken may not read it.
    let timeout = session.plane().0.settings.header_read_timeout;
    let _ = tokio::time::timeout(timeout, async {
        write_all(wire, &mut [answer.as_bytes()]).await?;
        std::future::poll_fn(|cx| lock(wire).poll_flush(cx)).await
    })
    .await;
}

/// The answer to a head refused unread: its status, and the request ID in a plain-text body.
fn refusal_response(error: HeadError, request_id: &http::HeaderValue) -> String {
    let id = request_id.to_str().unwrap_or("");
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let reason = status.canonical_reason().unwrap_or("");
    let text = match error {
        HeadError::Malformed(_) => "The request is malformed.",
        HeadError::TooLarge => "The request's header fields are too large.",
        HeadError::UriTooLong => "The request target is too long.",
    };
    let body = format!("{} {reason}: {text}\nRequest ID: {id}\n", status.as_u16());
    format!(
        "HTTP/1.1 {} {reason}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\nx-request-id: {id}\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_u16(),
        body.len()
    )
}
