//! An HTTP/3 request body as the pipeline reads it (a [`ClientBody`], so body limits apply as
//! to the other protocols), and the writing of a response onto its stream.
//!
//! The body is read as it is polled: QUIC flow control holds the client back while the
//! upstream is slow, nothing is buffered whole. A `Content-Length` the DATA frames do not add
//! up to fails the body (RFC 9114 §4.1.2: the message is malformed), so an upstream never
//! sees a body of another length than the one announced.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::server::RequestStream;
use http::{HeaderMap, Response, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use rampart_core::{Body, BodySource, BoxError, ClientBody, ErrorKind, ProxyError};

use crate::pipeline::finish::ResponseBody;

/// The receiving half of a request stream.
pub(crate) type RecvHalf = RequestStream<h3_quinn::RecvStream, Bytes>;
/// The sending half of a request stream.
pub(crate) type SendHalf = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// Where a request body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Data,
    Trailers,
    Done,
}

struct BodyState {
    stream: RecvHalf,
    /// A frame read ahead (the first poll, to tell an empty body from one still to come).
    ahead: Option<Frame<Bytes>>,
    declared: Option<u64>,
    received: u64,
    phase: Phase,
}

/// A request body read from its stream (one body per stream: the id is not needed).
struct H3Body(Mutex<BodyState>);

fn malformed(detail: String) -> BoxError {
    Box::new(ProxyError::new(ErrorKind::AmbiguousFraming, detail))
}

impl BodyState {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.ahead.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        loop {
            match self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Data => match self.stream.poll_recv_data(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(Some(mut data))) => {
                        let bytes = data.copy_to_bytes(data.remaining());
                        self.received += bytes.len() as u64;
                        if let Some(declared) = self.declared
                            && self.received > declared
                        {
                            return self.fail(format!(
                                "request body longer than its content-length of {declared}"
                            ));
                        }
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    Poll::Ready(Ok(None)) => {
                        if let Some(declared) = self.declared
                            && self.received != declared
                        {
                            return self.fail(format!(
                                "request body of {} bytes for a content-length of {declared}",
                                self.received
                            ));
                        }
                        self.phase = Phase::Trailers;
                    }
                    Poll::Ready(Err(e)) => return self.fail(format!("request stream: {e}")),
                },
                Phase::Trailers => {
                    return match self.stream.poll_recv_trailers(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Ok(Some(trailers))) => {
                            self.phase = Phase::Done;
                            Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                        }
                        Poll::Ready(Ok(None)) => {
                            self.phase = Phase::Done;
                            Poll::Ready(None)
                        }
                        Poll::Ready(Err(e)) => self.fail(format!("request trailers: {e}")),
                    };
                }
            }
        }
    }

    fn fail(&mut self, detail: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.phase = Phase::Done;
        self.stream.stop_sending(Code::H3_MESSAGE_ERROR);
        Poll::Ready(Some(Err(malformed(detail))))
    }
}

impl H3Body {
    fn state(&self) -> std::sync::MutexGuard<'_, BodyState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BodySource for H3Body {
    fn poll_frame(
        &self,
        _id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state().poll(cx)
    }

    fn is_end_stream(&self, _id: u32) -> bool {
        let s = self.state();
        s.phase == Phase::Done && s.ahead.is_none()
    }

    fn size_hint(&self, _id: u32) -> SizeHint {
        let s = self.state();
        match s.declared {
            Some(declared) => SizeHint::with_exact(declared.saturating_sub(s.received)),
            None => SizeHint::default(),
        }
    }
}

/// The body of a request whose head arrived with `headers`, read from `stream`: empty when
/// the stream already ended with the head (a GET, usually), streamed otherwise.
pub(crate) fn request_body(stream: RecvHalf, headers: &HeaderMap) -> Result<Body, ProxyError> {
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    ProxyError::new(ErrorKind::AmbiguousFraming, "invalid content-length")
                })?,
        ),
    };
    let mut state = BodyState {
        stream,
        ahead: None,
        declared,
        received: 0,
        phase: Phase::Data,
    };
    // One look without waiting: the head and the end of the stream usually come together.
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match state.poll(&mut cx) {
        Poll::Ready(None) => return Ok(Body::Empty),
        Poll::Ready(Some(Ok(frame))) => state.ahead = Some(frame),
        Poll::Ready(Some(Err(e))) => {
            return Err(ProxyError::new(
                ErrorKind::AmbiguousFraming,
                format!("request body: {e}"),
            ));
        }
        Poll::Pending => {}
    }
    Ok(Body::Client(ClientBody::new(
        Arc::new(H3Body(Mutex::new(state))),
        0,
    )))
}

/// Fields HTTP/3 forbids in a message (RFC 9114 §4.2): HTTP/1.1 upstreams may send them.
const CONNECTION_SPECIFIC: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];

/// Why a response did not reach the client whole.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// The client cancelled the stream (or the connection went away).
    Cancelled,
    /// The client took in nothing for the send timeout.
    TimedOut,
    /// The response body failed mid-stream (the stream is reset).
    Body,
}

/// Writes `resp` onto `send`: head, body frames as they come, trailers, end of stream. Each
/// write may wait for the client's flow control for at most `send_timeout`.
pub(crate) async fn respond(
    send: &mut SendHalf,
    resp: Response<ResponseBody>,
    send_timeout: Duration,
) -> Result<(), SendFailure> {
    let (mut parts, mut body) = resp.into_parts();
    for name in &CONNECTION_SPECIFIC {
        parts.headers.remove(name);
    }
    parts.headers.remove("keep-alive");
    parts.headers.remove("proxy-connection");
    let head = Response::from_parts(parts, ());
    timed(send_timeout, send.send_response(head)).await?;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => timed(send_timeout, send.send_data(data)).await?,
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        timed(send_timeout, send.send_trailers(trailers)).await?;
                    }
                    break;
                }
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed mid-stream: resetting the HTTP/3 stream");
                send.stop_stream(Code::H3_INTERNAL_ERROR);
                return Err(SendFailure::Body);
            }
        }
    }
    timed(send_timeout, send.finish()).await
}

async fn timed<F>(limit: Duration, write: F) -> Result<(), SendFailure>
where
    F: Future<Output = Result<(), h3::error::StreamError>>,
{
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendFailure::Cancelled),
        Err(_) => Err(SendFailure::TimedOut),
    }
}
