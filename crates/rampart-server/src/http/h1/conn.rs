//! The HTTP/1.1 connection loop: waits for the next request head without holding a buffer,
//! with the header-read and keep-alive timers, hands each request to a [`Dispatch`] (which
//! answers it in a boxed future, alive only during the request) and carries on while the
//! connection stays open. Draining on reload or shutdown: an idle connection is not closed at
//! once (a client may be sending its next request at that moment); its next request is
//! answered with `Connection: close`, or it is closed once none came within the grace period.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use rampart_core::timer::LazyTimer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::h1::head::{Head, HeadError, Limits};
use crate::http::h1::wire::{HeadRead, SharedWire, lock};
use crate::http::io::LINGER;

/// How long an idle keep-alive connection that served requests waits for its next one once
/// draining: clients in the middle of sending send within this; idle ones are closed after it.
const KEEPALIVE_GRACE: Duration = Duration::from_secs(1);

/// A connection's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// `timeouts.header_read`: from the first byte of a head (from `started` for the first
    /// request) until the head is complete; answered with 408.
    pub(crate) header: Duration,
    /// `timeouts.keepalive`: an idle connection is closed quietly after it.
    pub(crate) keepalive: Duration,
    /// When the connection was accepted.
    pub(crate) started: Instant,
    /// On closing, wait for the client's end of the stream even when nothing is unread yet:
    /// TLS clients may send `close_notify` right behind their last request, and if it arrives
    /// after the socket closed, the kernel resets the connection.
    pub(crate) linger_to_end: bool,
}

/// What a connection does after a request.
#[derive(Debug)]
pub(crate) enum Next {
    /// Wait for the next request.
    Continue,
    /// Close the connection.
    Close,
    /// The stream went to a tunnel: leave it open.
    Upgraded,
    /// The connection failed (logged by the caller).
    Failed(io::Error),
}

/// Why a head was answered without reaching the pipeline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    Bad(HeadError),
    /// The head did not arrive within the header read timeout.
    Timeout,
}

/// Serves the requests of one connection.
pub(crate) trait Dispatch<S>: Send + Sync {
    /// Dispatches the request of `head` and answers it.
    fn exchange<'a>(
        &'a self,
        wire: &'a SharedWire<S>,
        head: Box<Head>,
        turn: &'a mut Turn,
    ) -> Pin<Box<dyn Future<Output = Next> + Send + 'a>>;

    /// Answers a head refused before it became a request, and logs it.
    fn refuse<'a>(
        &'a self,
        wire: &'a SharedWire<S>,
        why: Refusal,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// The connection's draining state and shutdown signal, which requests in flight see too.
pub(crate) struct Turn {
    /// Set once draining began: when the connection closes unless a request is answered.
    drain: Option<Instant>,
    /// The connection has dispatched a request already.
    served: bool,
    header_timeout: Duration,
    stop: StopSignal,
}

impl Turn {
    /// A request was dispatched; returns whether it arrived while draining.
    pub(crate) const fn dispatched(&mut self) -> bool {
        self.served = true;
        self.drain.is_some()
    }

    /// Checks for a shutdown or reload signal (cheap when nothing changed).
    pub(crate) fn poll_stop(&mut self, cx: &mut std::task::Context<'_>) {
        if self.stop.poll(cx) {
            self.start_draining();
        }
    }

    /// True when a response written now closes the connection: draining, and the request
    /// came while draining or the grace period is over.
    pub(crate) fn closes(&self, arrived_draining: bool) -> bool {
        self.drain
            .is_some_and(|deadline| arrived_draining || Instant::now() >= deadline)
    }

    fn start_draining(&mut self) {
        if self.drain.is_none() {
            let grace = if self.served {
                self.header_timeout.min(KEEPALIVE_GRACE)
            } else {
                self.header_timeout
            };
            self.drain = Some(Instant::now() + grace);
        }
    }
}

/// The shutdown watch, polled only when it changed: once registered, its waiter stays
/// registered, and polling it at every wake-up of the connection would cost instructions on
/// every request.
struct StopSignal {
    probe: watch::Receiver<bool>,
    registered: bool,
    fired: bool,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl StopSignal {
    fn new(shutdown: watch::Receiver<bool>) -> Self {
        Self {
            probe: shutdown.clone(),
            registered: false,
            fired: false,
            closed: Box::pin(crate::http::conn::closed(shutdown)),
        }
    }

    /// True once, when the signal came.
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if self.fired {
            return false;
        }
        if !self.registered || self.probe.has_changed().unwrap_or(true) {
            self.registered = true;
            self.probe.borrow_and_update();
            if self.closed.as_mut().poll(cx).is_ready() {
                self.fired = true;
                return true;
            }
        }
        false
    }
}

/// What waiting for a head ended with.
enum Waited {
    Read(io::Result<HeadRead>),
    /// The deadline passed; `partial`: inside a head.
    Timeout {
        partial: bool,
    },
}

/// Serves requests on `wire` until the connection closes; returns the error it failed with.
pub(crate) async fn serve<S, D>(
    wire: SharedWire<S>,
    front: D,
    (timing, limits): (Timing, Limits),
    shutdown: watch::Receiver<bool>,
) -> Option<io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Dispatch<S>,
{
    let mut turn = Turn {
        drain: None,
        served: false,
        header_timeout: timing.header,
        stop: StopSignal::new(shutdown),
    };
    let first_deadline = timing.started + timing.header;
    let mut timer = LazyTimer::new(first_deadline);
    // The first request's head is due from accept; later ones from their first byte.
    let mut header_deadline = Some(first_deadline);
    loop {
        let mut idle_deadline = None;
        let waited = std::future::poll_fn(|cx| {
            loop {
                let mut w = lock(&wire);
                if let std::task::Poll::Ready(read) = w.poll_head(cx, limits) {
                    return std::task::Poll::Ready(Waited::Read(read));
                }
                let partial = w.has_buffered();
                drop(w);
                let deadline = if partial {
                    *header_deadline.get_or_insert_with(|| Instant::now() + timing.header)
                } else {
                    let due = header_deadline.unwrap_or_else(|| {
                        *idle_deadline.get_or_insert_with(|| Instant::now() + timing.keepalive)
                    });
                    turn.drain.map_or(due, |drain| drain.min(due))
                };
                if timer.poll_expired(cx, deadline).is_ready() {
                    return std::task::Poll::Ready(Waited::Timeout { partial });
                }
                if turn.stop.poll(cx) {
                    turn.start_draining();
                    continue;
                }
                return std::task::Poll::Pending;
            }
        })
        .await;
        header_deadline = None;
        let next = match waited {
            Waited::Read(Ok(HeadRead::Head(head))) => front.exchange(&wire, head, &mut turn).await,
            Waited::Read(Ok(HeadRead::Bad(e))) => {
                front.refuse(&wire, Refusal::Bad(e)).await;
                Next::Close
            }
            Waited::Read(Ok(HeadRead::End { partial })) => {
                if partial {
                    tracing::debug!("client closed the connection inside a request head");
                }
                Next::Close
            }
            Waited::Read(Err(e)) => Next::Failed(e),
            Waited::Timeout { partial: true } => {
                front.refuse(&wire, Refusal::Timeout).await;
                Next::Close
            }
            Waited::Timeout { partial: false } => Next::Close,
        };
        match next {
            Next::Continue => {}
            Next::Close => {
                let shutdown =
                    std::future::poll_fn(|cx| Pin::new(&mut lock(&wire).io).poll_shutdown(cx));
                // Boxed: a timeout holds a whole timer entry, which the idle future should not.
                let _ = Box::pin(tokio::time::timeout(timing.header, shutdown)).await;
                Box::pin(linger(&wire, timing.linger_to_end)).await;
                return None;
            }
            Next::Upgraded => return None,
            Next::Failed(e) => return Some(e),
        }
    }
}

/// Before a closing connection's socket is closed (its write side is shut already): if the
/// client sent bytes that were never read (a `close_notify`, the rest of a body, a pipelined
/// request), they are read and dropped until the client closes too, for [`LINGER`] at most.
/// Closing a socket with unread bytes makes the kernel reset the connection, and a reset can
/// destroy the last answer in the client's receive buffer before the client reads it. With
/// nothing unread, the connection closes at once (one read that finds nothing), unless
/// `to_end`: then it waits for the client's end of the stream in any case.
async fn linger<S: AsyncRead + Unpin>(wire: &SharedWire<S>, to_end: bool) {
    let mut scratch = [0_u8; 512];
    let mut unread = to_end;
    let drained = std::future::poll_fn(|cx| {
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match Pin::new(&mut lock(wire).io).poll_read(cx, &mut buf) {
                std::task::Poll::Ready(Ok(())) if !buf.filled().is_empty() => unread = true,
                std::task::Poll::Pending if unread => return std::task::Poll::Pending,
                // The client closed, failed, or has sent nothing more: close now.
                std::task::Poll::Ready(_) | std::task::Poll::Pending => {
                    return std::task::Poll::Ready(());
                }
            }
        }
    });
    let _ = tokio::time::timeout(LINGER, drained).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::http::h1::exchange::Front;
    use crate::http::h1::wire::{Wire, WireLock};
    use crate::http::io::{ConnState, SendClock};

    /// A dispatcher that answers nothing: only the loop's own state is measured.
    struct Nothing;

    impl<S: Send + 'static> Dispatch<S> for Nothing {
        fn exchange<'a>(
            &'a self,
            _: &'a SharedWire<S>,
            _: Box<Head>,
            _: &'a mut Turn,
        ) -> Pin<Box<dyn Future<Output = Next> + Send + 'a>> {
            Box::pin(async { Next::Close })
        }

        fn refuse<'a>(
            &'a self,
            _: &'a SharedWire<S>,
            _: Refusal,
        ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
            Box::pin(async {})
        }
    }

    /// What an idle keep-alive connection holds, in bytes: the loop's future (the request's
    /// future is boxed and exists only during a request) and the state behind its `Arc`s. A
    /// regression here costs memory on every idle connection.
    #[tokio::test]
    async fn an_idle_connection_holds_little() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let state = Arc::new(ConnState::default());
        let send = SendClock::new(Duration::from_secs(1));
        let wire = WireLock::new(Wire::new(server, &[], state, send));
        let (_stop, shutdown) = watch::channel(false);
        let timing = Timing {
            header: Duration::from_secs(1),
            keepalive: Duration::from_secs(1),
            started: Instant::now(),
            linger_to_end: false,
        };
        let limits = Limits {
            max_fields: crate::http::h1::head::INLINE_FIELDS,
            max_bytes: 8192,
        };
        let mut serving = Box::pin(serve(wire.clone(), Nothing, (timing, limits), shutdown));
        // Polled once: waiting for the first head, as an idle connection does.
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(serving.as_mut().poll(cx)));
        assert!(first.await.is_pending());
        let future = std::mem::size_of_val(&*serving) + std::mem::size_of::<Front>();
        let wire_state = std::mem::size_of::<WireLock<TcpStream>>();
        let conn_state = std::mem::size_of::<ConnState>();
        println!(
            "idle HTTP/1.1 connection: loop future {future} B, wire {wire_state} B, connection state {conn_state} B"
        );
        assert!(
            crate::http::h1::wire::lock(&wire).buf.is_none(),
            "an idle connection holds a read buffer"
        );
        assert!(
            future <= 448,
            "the idle connection future grew to {future} bytes"
        );
        assert!(
            wire_state <= 192,
            "the connection's wire state grew to {wire_state} bytes"
        );
        assert!(
            conn_state <= 128,
            "the connection state grew to {conn_state} bytes"
        );
        drop(client);
    }
}
