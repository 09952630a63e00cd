//! Worker threads: each runs a single-threaded tokio runtime with its own listening sockets
//! (one per listener, `SO_REUSEPORT`), its own connection pools and no shared locks.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::server::Shared;

/// Counts a worker's open connections and tunnels, so shutdown can wait for them.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    active: AtomicUsize,
    zero: Notify,
}

/// Held by a connection or tunnel for its lifetime.
pub(crate) struct TrackGuard(Option<Arc<Tracker>>);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0
            && t.active.fetch_sub(1, Ordering::AcqRel) == 1
        {
            t.zero.notify_waiters();
        }
    }
}

thread_local! {
    static TRACKER: RefCell<Option<Arc<Tracker>>> = const { RefCell::new(None) };
}

/// Registers a connection or tunnel with the current worker (no-op outside a worker).
pub(crate) fn track_connection() -> TrackGuard {
    TRACKER.with_borrow(|t| {
        if let Some(t) = t {
            t.active.fetch_add(1, Ordering::AcqRel);
        }
        TrackGuard(t.clone())
    })
}

/// Runs one worker until shutdown and drain (blocking; call on the worker's own thread).
pub(crate) fn run(
    index: usize,
    sockets: Vec<(usize, std::net::TcpListener)>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tracker = Arc::new(Tracker::default());
    TRACKER.with_borrow_mut(|t| *t = Some(tracker.clone()));
    runtime.block_on(async move {
        let mut accept_loops = Vec::with_capacity(sockets.len());
        for (listener_index, socket) in sockets {
            let listener = TcpListener::from_std(socket)?;
            accept_loops.push(tokio::spawn(accept_loop(
                listener,
                listener_index,
                shared.clone(),
                shutdown.clone(),
            )));
        }
        for task in accept_loops {
            let _ = task.await;
        }
        // Listening sockets are closed now; give open connections time to finish.
        let drained = tokio::time::timeout(drain_timeout, wait_idle(&tracker))
            .await
            .is_ok();
        let left = tracker.active.load(Ordering::Acquire);
        if drained {
            tracing::debug!(worker = index, "worker drained");
        } else {
            tracing::warn!(
                worker = index,
                connections = left,
                ?drain_timeout,
                "drain timeout: closing remaining connections"
            );
        }
        Ok::<(), std::io::Error>(())
    })?;
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

async fn wait_idle(tracker: &Tracker) {
    loop {
        let notified = tracker.zero.notified();
        if tracker.active.load(Ordering::Acquire) == 0 {
            return;
        }
        notified.await;
    }
}

/// The connection caps, checked before a connection costs anything. Trusted proxies and PROXY
/// protocol sources count towards the global cap only (many clients share their address).
fn admit(
    shared: &Arc<Shared>,
    listener_index: usize,
    peer: std::net::SocketAddr,
) -> Option<crate::conn_limits::ConnPermit> {
    let rt = shared.runtime();
    let gates = &rt.gates;
    let ip = peer.ip();
    let exempt = rt.listeners.get(listener_index).is_some_and(|l| {
        l.gates.trusted.contains(ip)
            || l.gates
                .proxy_protocol
                .as_ref()
                .is_some_and(|p| p.contains(ip))
    });
    shared
        .conn_limits
        .try_acquire(
            ip,
            gates.max_connections,
            gates.max_connections_per_ip,
            exempt,
        )
        .ok()
}

async fn accept_loop(
    listener: TcpListener,
    listener_index: usize,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(permit) = admit(&shared, listener_index, peer) else {
                        // Over a connection cap: close at once, before any byte is read.
                        drop(stream);
                        continue;
                    };
                    let serve = crate::conn::serve(stream, peer, listener_index, shared.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        serve.await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
