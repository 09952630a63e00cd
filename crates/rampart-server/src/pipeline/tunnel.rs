//! Upgraded connections (WebSocket and any other HTTP/1.1 `Upgrade`): once the upstream has
//! answered 101, bytes are copied both ways until either side closes or the tunnel has been
//! idle for `timeouts.tunnel_idle`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// What a tunnel moved, read by the access log once it closed. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub(crate) struct TunnelReport(Arc<Activity>);

impl TunnelReport {
    /// Waits until the tunnel closed (or never opened); returns the bytes relayed (to the
    /// client, from the client).
    pub(crate) async fn closed(&self) -> (u64, u64) {
        let activity = &self.0;
        loop {
            let notified = activity.closed.notified();
            if activity.done.load(Ordering::Acquire) {
                break;
            }
            notified.await;
        }
        (
            activity.to_client.load(Ordering::Relaxed),
            activity.from_client.load(Ordering::Relaxed),
        )
    }
}

/// Marks the tunnel closed when dropped, however the tunnel task ends.
struct CloseOnDrop(Arc<Activity>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
        self.0.closed.notify_waiters();
    }
}

/// A stream a tunnel carries, whatever it runs over.
pub(crate) trait TunnelStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> TunnelStream for T {}

/// Where the connection sends its stream once it switched protocols.
type StreamSlot = oneshot::Receiver<Box<dyn TunnelStream>>;

/// The client side of an upgrade on Rampart's own HTTP/1.1 server: the connection hands its
/// stream (with any bytes it read past the request head) over once the `101` is written.
/// Carried in the request's extensions, so it is `Clone`; the first to take it gets it.
#[derive(Clone)]
pub(crate) struct ClientUpgrade(Arc<std::sync::Mutex<Option<StreamSlot>>>);

impl ClientUpgrade {
    /// A pair: the connection keeps the sender and the request carries this side.
    pub(crate) fn pair() -> (oneshot::Sender<Box<dyn TunnelStream>>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self(Arc::new(std::sync::Mutex::new(Some(rx)))))
    }

    fn take(&self) -> Option<StreamSlot> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Where the client side of a tunnel comes from.
pub(crate) enum ClientSide {
    /// hyper's server (HTTP/2 extended CONNECT).
    Hyper(OnUpgrade),
    /// Rampart's own HTTP/1.1 server.
    Own(ClientUpgrade),
}

impl ClientSide {
    /// The client's side of the upgrade, for `req`.
    pub(crate) fn of<B>(req: &mut http::Request<B>) -> Self {
        match req.extensions_mut().remove::<ClientUpgrade>() {
            Some(own) => Self::Own(own),
            None => Self::Hyper(hyper::upgrade::on(req)),
        }
    }

    async fn stream(self) -> Result<Box<dyn TunnelStream>, &'static str> {
        match self {
            Self::Hyper(upgrade) => match upgrade.await {
                Ok(upgraded) => Ok(Box::new(TokioIo::new(upgraded))),
                Err(_) => Err("the client connection did not switch protocols"),
            },
            Self::Own(own) => match own.take() {
                Some(rx) => rx
                    .await
                    .map_err(|_| "the client connection closed before switching protocols"),
                None => Err("the client side of the upgrade was taken already"),
            },
        }
    }
}

/// Starts the tunnel between the client's and the upstream's upgraded connections; the report
/// tells when it closed and what it relayed.
pub(crate) fn spawn(
    client: ClientSide,
    upstream: OnUpgrade,
    idle: Duration,
    request_id: HeaderValue,
) -> TunnelReport {
    let guard = crate::observe::track::track_connection();
    let clock = Arc::new(Activity::new());
    let report = TunnelReport(Arc::clone(&clock));
    tokio::spawn(async move {
        let _guard = guard;
        let _close = CloseOnDrop(Arc::clone(&clock));
        let (client, upstream) = match tokio::join!(client.stream(), upstream) {
            (Ok(c), Ok(u)) => (c, u),
            (c, u) => {
                tracing::debug!(
                    request_id = request_id.to_str().unwrap_or("-"),
                    client_ok = c.is_ok(),
                    upstream_ok = u.is_ok(),
                    "upgrade failed"
                );
                return;
            }
        };
        let mut a = Tracked {
            io: client,
            clock: clock.clone(),
            from_client: true,
        };
        let mut b = Tracked {
            io: TokioIo::new(upstream),
            clock: clock.clone(),
            from_client: false,
        };
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut a, &mut b) => {
                if let Ok((up, down)) = result {
                    tracing::debug!(request_id = request_id.to_str().unwrap_or("-"), bytes_to_upstream = up, bytes_to_client = down, "tunnel closed");
                }
            }
            () = clock.idle_for(idle) => {
                tracing::debug!(request_id = request_id.to_str().unwrap_or("-"), ?idle, "tunnel closed after idle timeout");
            }
        }
    });
    report
}

/// What moved through a tunnel: the time of the last byte (milliseconds since it started),
/// the bytes read from each side, and whether it closed.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    to_client: AtomicU64,
    from_client: AtomicU64,
    done: AtomicBool,
    closed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            from_client: AtomicU64::new(0),
            done: AtomicBool::new(false),
            closed: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// An I/O object that records activity on every successful read or write, and counts the
/// bytes read from it (`from_client`: it is the client's side).
struct Tracked<T> {
    io: T,
    clock: Arc<Activity>,
    from_client: bool,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before) as u64;
        if matches!(poll, Poll::Ready(Ok(()))) && read > 0 {
            self.clock.touch();
            let counter = if self.from_client {
                &self.clock.from_client
            } else {
                &self.clock.to_client
            };
            counter.fetch_add(read, Ordering::Relaxed);
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Copies bytes both ways between `a` and `b` until either side closes or nothing has moved for
/// `idle`. Returns the bytes moved (a→b, b→a) when the copy ended by itself.
pub(crate) async fn relay<A, B>(a: A, b: B, idle: Duration) -> Option<io::Result<(u64, u64)>>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let clock = Arc::new(Activity::new());
    let mut a = Tracked {
        io: a,
        clock: clock.clone(),
        from_client: true,
    };
    let mut b = Tracked {
        io: b,
        clock: clock.clone(),
        from_client: false,
    };
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut a, &mut b) => Some(result),
        () = clock.idle_for(idle) => None,
    }
}
