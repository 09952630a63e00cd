//! One attempt at one target: reuse or open a connection, send, and wait for the response
//! head within the timeout. The retry loop around it lives in [`crate::dispatch`].
//!
//! A pooled keep-alive connection that turns out to be closed before the request was written
//! is replaced by a fresh one transparently (the request comes back unsent).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, Version, header};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use rampart_config::model::UpstreamProtocol;
use rampart_core::{Body, BoxError, ErrorKind, ProxyError};
use tokio::sync::oneshot;

use crate::error::classify;
use crate::h1::{ExchangeError, H1Body, H1Conn, Head, ResponseFraming};
use crate::pool::{H2Checkout, PoolSlot};
use crate::set::{Target, UpstreamSet};
use crate::{connect, pool};

/// A response obtained from an upstream.
#[derive(Debug)]
pub struct Forwarded {
    /// The response; its body streams from the upstream (and hands the connection back to the
    /// pool once read).
    pub response: Box<Response<Body>>,
    /// The target that answered (`host:port` as configured).
    pub target: Arc<str>,
    /// Attempts beyond the first.
    pub retries: u8,
    /// Time from sending until the response head arrived.
    pub upstream_time: Duration,
    /// The response's map may hold hop-by-hop fields the proxy must remove. False only when
    /// Rampart's HTTP/1.1 client parsed the head and left none in (see [`crate::h1`]).
    pub hop_by_hop: bool,
    /// The request as sent (its body spent), when the protocol gives it back: kept for a
    /// retry on another target.
    pub(crate) sent: Option<Held>,
}

/// A request on its way through the attempts (and kept for another one). Boxed: it moves
/// several times per request, and a boxed request moves as one pointer.
pub(crate) type Held = Box<Request<Body>>;

/// Why forwarding failed, and where.
#[derive(Debug)]
pub struct ForwardError {
    /// What went wrong.
    pub error: ProxyError,
    /// The last target tried, when there was one.
    pub target: Option<Arc<str>>,
    /// Attempts beyond the first.
    pub retries: u8,
}

/// A failed attempt; `unsent` gives the request back when nothing of it reached the target.
pub(crate) struct Failure {
    pub(crate) error: ProxyError,
    pub(crate) unsent: Option<Held>,
    /// The request given back after (part of) it was sent.
    pub(crate) spent: Option<Held>,
}

impl Failure {
    fn unsent(error: ProxyError, req: Held) -> Self {
        Self {
            error,
            unsent: Some(req),
            spent: None,
        }
    }

    fn sent(error: ProxyError) -> Self {
        Self {
            error,
            unsent: None,
            spent: None,
        }
    }
}

/// One attempt of `req` on `target`, started at `started` (the caller's clock read, reused
/// for a pooled HTTP/1.1 connection) with `timeout` for the response head. `added`: field lines
/// the HTTP/1.1 encoder writes after the request's own (empty for HTTP/2 and upgrades, whose
/// added fields are in the map).
pub(crate) async fn attempt(
    set: &UpstreamSet,
    target: &Target,
    req: Held,
    added: &[u8],
    (started, timeout): (Instant, Duration),
    upgrade: bool,
    keep_sent: bool,
) -> Result<Forwarded, Failure> {
    // Rare or slow paths are boxed so their state does not enlarge every request's future
    // (a request's future is moved whole when hyper spawns an HTTP/2 stream).
    match set.protocol {
        _ if upgrade => Box::pin(attempt_upgrade(set, target, req, timeout)).await,
        UpstreamProtocol::H2c | UpstreamProtocol::H2 => attempt_h2(set, target, req, timeout).await,
        UpstreamProtocol::Http1 => {
            attempt_h1(set, target, req, added, (started, timeout), keep_sent).await
        }
    }
}

/// An upgrade (WebSocket and others) uses hyper's client on a dedicated connection: the
/// connection becomes a tunnel after a 101, so it is never pooled.
async fn attempt_upgrade(
    set: &UpstreamSet,
    target: &Target,
    mut req: Held,
    timeout: Duration,
) -> Result<Forwarded, Failure> {
    *req.version_mut() = Version::HTTP_11;
    let preface = set
        .proxy_protocol
        .map(|v| crate::proxy_header::for_request(v, &req));
    let mut sender = match connect::http1_upgradable(target, set, preface.as_deref()).await {
        Ok(sender) => sender,
        Err(error) => return Err(Failure::unsent(error, req)),
    };
    if sender.ready().await.is_err() {
        let error = ProxyError::new(
            ErrorKind::UpstreamReset,
            format!("{}: closed after handshake", target.label),
        )
        .retryable();
        return Err(Failure::unsent(error, req));
    }
    let (req, body_sent) = watch_body_end(*req);
    let started = Instant::now();
    let (outcome, body_failed) =
        with_timeout(sender.try_send_request(req), body_sent, timeout).await;
    match outcome {
        None => Err(timed_out(target, timeout)),
        Some(Ok(resp)) => Ok(finish(resp, target, started)),
        Some(Err(mut e)) => match e.take_message() {
            Some(back) => Err(Failure::unsent(
                classify(e.error(), &target.label).retryable(),
                Box::new(back),
            )),
            None => Err(Failure::sent(exchange_failure(
                e.error(),
                target,
                body_failed,
            ))),
        },
    }
}

/// HTTP/1.1 through Rampart's own client (see [`crate::h1`]): a pooled connection or a new one,
/// one exchange, and a body that streams from the connection and returns it to the pool.
async fn attempt_h1(
    set: &UpstreamSet,
    target: &Target,
    mut req: Held,
    added: &[u8],
    (started, timeout): (Instant, Duration),
    keep_sent: bool,
) -> Result<Forwarded, Failure> {
    let slot = PoolSlot {
        key: target.pool_key,
        max_idle: set.max_idle_per_target,
        idle_timeout: set.idle_timeout,
    };
    let replayable = req.body().is_end_stream() && crate::retry::is_idempotent(req.method());
    // A connection opened with a client's PROXY header belongs to that request alone.
    let preface = set
        .proxy_protocol
        .map(|v| crate::proxy_header::for_request(v, &req));
    let mut clock = Some(started);
    loop {
        // One clock read serves the pool's expiry check and, for a pooled connection, the
        // start of the exchange (the caller's, on the first pass).
        let now = clock.take().unwrap_or_else(Instant::now);
        let pooled = match preface {
            None => pool::take_h1(target.pool_key, now),
            Some(_) => None,
        };
        let (mut conn, fresh, started) = match pooled {
            Some(conn) => (conn, false, now),
            None => match Box::pin(connect::stream(target, set, preface.as_deref())).await {
                Ok(io) => (Box::new(H1Conn::new(io)), true, Instant::now()),
                Err(error) => return Err(Failure::unsent(error, req)),
            },
        };
        match conn
            .exchange(&mut req, added, started.into(), timeout)
            .await
        {
            Ok((head, complete)) => {
                let poolable = complete && preface.is_none();
                let hop_by_hop = head.hop_by_hop;
                let response = response_from(conn, head, poolable, slot);
                let upstream_time = started.elapsed();
                return Ok(Forwarded {
                    response,
                    target: target.label.clone(),
                    retries: 0,
                    upstream_time,
                    hop_by_hop,
                    sent: keep_sent.then_some(req),
                });
            }
            // A kept-alive connection the upstream closed just as it was reused: the request
            // carried no body and is idempotent, so it is safe to send again on a new one.
            Err(ExchangeError::Io(_)) if !fresh && replayable && conn.buf.is_empty() => {}
            Err(e) => {
                return Err(Failure {
                    error: exchange_error(e, target, conn.uses),
                    unsent: None,
                    spent: Some(req),
                });
            }
        }
    }
}

/// The response for the client; a bodiless one hands the connection back at once. `may_pool`
/// says the request was sent whole on a connection other requests may share.
fn response_from(
    conn: Box<H1Conn>,
    head: Head,
    may_pool: bool,
    slot: PoolSlot,
) -> Box<Response<Body>> {
    let reusable = head.keep_alive && may_pool;
    let body = match head.framing {
        ResponseFraming::Empty | ResponseFraming::Length(0) => {
            if reusable && conn.buf.is_empty() {
                pool::release_h1(conn, slot);
            }
            Body::Empty
        }
        framing => Body::boxed(H1Body::new(conn, framing, reusable, slot)),
    };
    let mut resp = Box::new(Response::new(body));
    *resp.status_mut() = head.status;
    *resp.version_mut() = head.version;
    // The map `Response::new` made is empty and owns no memory (`HeaderMap::new` does not
    // allocate): forgetting it instead of dropping it spares its drop glue on every response.
    std::mem::forget(std::mem::replace(resp.headers_mut(), head.headers));
    resp
}

fn exchange_error(e: ExchangeError, target: &Target, uses: u64) -> ProxyError {
    let label = &target.label;
    match e {
        ExchangeError::Io(err) => {
            let kind = if crate::error::is_tls_failure(&err) {
                ErrorKind::UpstreamTls
            } else {
                ErrorKind::UpstreamReset
            };
            ProxyError::new(
                kind,
                format!("{label}: {err} (request {uses} on this connection)"),
            )
        }
        ExchangeError::BadResponse(why) => {
            ProxyError::new(ErrorKind::UpstreamBadResponse, format!("{label}: {why}"))
        }
        ExchangeError::Timeout => ProxyError::new(
            ErrorKind::UpstreamTimeout,
            format!("{label}: no response head in time"),
        ),
        ExchangeError::Body(err) => {
            let kind = rampart_core::body_error::client_body_reason(&*err)
                .unwrap_or(ErrorKind::ClientBodyError);
            ProxyError::new(kind, err.to_string())
        }
    }
}

async fn attempt_h2(
    set: &UpstreamSet,
    target: &Target,
    req: Held,
    timeout: Duration,
) -> Result<Forwarded, Failure> {
    let mut sender = loop {
        match pool::checkout_h2(target.pool_key) {
            H2Checkout::Ready(sender) => break sender,
            H2Checkout::Connect(opening) => {
                let outcome = Box::pin(connect::http2(target, set)).await;
                opening.finish(&outcome);
                match outcome {
                    Ok(sender) => break sender,
                    Err(error) => return Err(Failure::unsent(error, req)),
                }
            }
            H2Checkout::Wait(mut rx) => {
                let outcome = rx
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|o| o.clone());
                match outcome {
                    Some(Ok(sender)) => break sender,
                    Some(Err(error)) => return Err(Failure::unsent(error, req)),
                    // The opener was abandoned: check again (and maybe open it ourselves).
                    None => {}
                }
            }
        }
    };
    if sender.ready().await.is_err() {
        let error = ProxyError::new(
            ErrorKind::UpstreamReset,
            format!("{}: HTTP/2 connection closed", target.label),
        )
        .retryable();
        return Err(Failure::unsent(error, req));
    }
    let req = to_absolute_form(*req, target, set.tls.is_some());
    let (req, body_sent) = watch_body_end(req);
    let started = Instant::now();
    let (outcome, body_failed) =
        with_timeout(sender.try_send_request(req), body_sent, timeout).await;
    match outcome {
        None => Err(timed_out(target, timeout)),
        Some(Ok(resp)) => Ok(finish(resp, target, started)),
        Some(Err(mut e)) => {
            let unsent = e.take_message().map(Box::new);
            let mut error = exchange_failure(e.error(), target, body_failed);
            if unsent.is_some() {
                error = error.retryable();
            }
            Err(Failure {
                error,
                unsent,
                spent: None,
            })
        }
    }
}

/// The failure of an exchange through hyper's client. When the client's request body failed
/// first (too large, too slow, broken), that is the reason: hyper's HTTP/2 client reports it
/// only as a reset of the stream, which is not the upstream's doing.
fn exchange_failure(
    err: &hyper::Error,
    target: &Target,
    body_failed: Option<ErrorKind>,
) -> ProxyError {
    match body_failed {
        Some(kind) => ProxyError::new(
            kind,
            format!("{}: request body failed: {err}", target.label),
        ),
        None => classify(err, &target.label),
    }
}

/// A response from hyper's client (HTTP/2, upgrades).
fn finish(resp: Response<Incoming>, target: &Target, started: Instant) -> Forwarded {
    let upstream_time = started.elapsed();
    let response = Box::new(resp.map(Body::Incoming));
    Forwarded {
        response,
        target: target.label.clone(),
        retries: 0,
        upstream_time,
        hop_by_hop: true,
        sent: None,
    }
}

fn timed_out(target: &Target, timeout: Duration) -> Failure {
    Failure::sent(ProxyError::new(
        ErrorKind::UpstreamTimeout,
        format!("{}: no response within {timeout:?}", target.label),
    ))
}

/// HTTP/2 carries the authority in the URI (`:authority`) instead of a `Host` header.
fn to_absolute_form(mut req: Request<Body>, target: &Target, tls: bool) -> Request<Body> {
    let authority = req
        .headers_mut()
        .remove(header::HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .or_else(|| Authority::try_from(target.label.as_ref()).ok());
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
    parts.authority = authority;
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = Version::HTTP_2;
    req
}

/// How sending a request body ended: `None` when it was sent whole, else the reason the
/// client's body failed with.
type BodyEnd = Option<ErrorKind>;

/// Waits for `response`; the timeout starts once the request body has been sent (at once for
/// requests without a body). `None` means it timed out. Also returns the reason the request
/// body failed, when it did.
async fn with_timeout<F, T>(
    response: F,
    mut body_sent: Option<oneshot::Receiver<BodyEnd>>,
    timeout: Duration,
) -> (Option<T>, BodyEnd)
where
    F: Future<Output = T>,
{
    let mut body_failed = None;
    let deadline = async {
        if let Some(rx) = body_sent.as_mut() {
            body_failed = rx.await.ok().flatten();
        }
        tokio::time::sleep(timeout).await;
    };
    let outcome = tokio::select! {
        biased;
        r = response => Some(r),
        () = deadline => None,
    };
    // The response may fail before the deadline saw the body's end.
    if body_failed.is_none()
        && let Some(rx) = body_sent.as_mut()
    {
        body_failed = rx.try_recv().ok().flatten();
    }
    (outcome, body_failed)
}

/// Wraps a request body so that the end of sending it can be awaited. Requests without a body
/// are left untouched (no allocation).
fn watch_body_end(req: Request<Body>) -> (Request<Body>, Option<oneshot::Receiver<BodyEnd>>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let (tx, rx) = oneshot::channel();
    let req = req.map(|inner| {
        Body::boxed(NotifyOnEnd {
            inner,
            tx: Some(tx),
        })
    });
    (req, Some(rx))
}

struct NotifyOnEnd {
    inner: Body,
    tx: Option<oneshot::Sender<BodyEnd>>,
}

impl http_body::Body for NotifyOnEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Err(err)) = &frame
            && let Some(tx) = this.tx.take()
        {
            let reason = rampart_core::body_error::client_body_reason(&**err)
                .unwrap_or(ErrorKind::ClientBodyError);
            let _ = tx.send(Some(reason));
        } else if (frame.is_none() || this.inner.is_end_stream())
            && let Some(tx) = this.tx.take()
        {
            let _ = tx.send(None);
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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use rampart_core::BodyTooLarge;

    use super::*;

    /// One data frame, then the failure a size-limited client body ends with.
    struct TooLarge(bool);

    impl http_body::Body for TooLarge {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if self.0 {
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit: 4 }))));
            }
            self.0 = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"abcd")))))
        }
    }

    #[tokio::test]
    async fn a_request_body_that_failed_gives_its_reason() {
        let (req, body_sent) = watch_body_end(Request::new(Body::boxed(TooLarge(false))));
        let mut body = req.into_body();
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.unwrap().is_err());
        // The response fails at once, as hyper's HTTP/2 client does after resetting the stream,
        // before the deadline has looked at the body.
        let (outcome, failed) =
            with_timeout(std::future::ready(()), body_sent, Duration::from_secs(5)).await;
        assert_eq!(outcome, Some(()));
        assert_eq!(failed, Some(ErrorKind::BodyTooLarge));
    }

    #[tokio::test]
    async fn a_request_body_sent_whole_gives_no_failure() {
        let (req, body_sent) = watch_body_end(Request::new(Body::full("abc")));
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            assert!(frame.is_ok());
        }
        let (outcome, failed) =
            with_timeout(std::future::ready(()), body_sent, Duration::from_secs(5)).await;
        assert_eq!((outcome, failed), (Some(()), None));
    }
}
