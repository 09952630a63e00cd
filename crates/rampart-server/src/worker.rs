//! Worker threads: each runs a single-threaded tokio runtime with its own listening sockets
//! (one per listener, `SO_REUSEPORT`), its own connection pools and no shared locks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

use crate::runtime::Runtime;
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

/// What the control plane asks of a running worker.
pub(crate) enum WorkerCmd {
    /// Start accepting on a new listening socket of listener `name`.
    Add(Arc<str>, std::net::TcpListener),
    /// Stop accepting for listener `name` and close its connections gracefully.
    Remove(Arc<str>),
}

/// One listener's accept loops in this worker and the signal that closes its connections.
struct Accepting {
    close: watch::Sender<bool>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

/// Runs one worker until shutdown and drain (blocking; call on the worker's own thread).
pub(crate) fn run(
    index: usize,
    sockets: Vec<(Arc<str>, std::net::TcpListener)>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
    mut cmds: mpsc::UnboundedReceiver<WorkerCmd>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tracker = Arc::new(Tracker::default());
    TRACKER.with_borrow_mut(|t| *t = Some(tracker.clone()));
    runtime.block_on(async move {
        let mut accepting: HashMap<Arc<str>, Accepting> = HashMap::new();
        for (name, socket) in sockets {
            add(&mut accepting, name, socket, &shared)?;
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(WorkerCmd::Add(name, socket)) => {
                        if let Err(e) = add(&mut accepting, name.clone(), socket, &shared) {
                            tracing::error!(worker = index, listener = %name, error = %e, "cannot accept on new listener");
                        }
                    }
                    Some(WorkerCmd::Remove(name)) => {
                        if let Some(a) = accepting.remove(&name) {
                            let _ = a.close.send(true);
                            for l in a.loops {
                                let _ = l.await;
                            }
                        }
                    }
                    None => break,
                },
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        for a in accepting.values() {
            let _ = a.close.send(true);
        }
        for (_, a) in accepting {
            for l in a.loops {
                let _ = l.await;
            }
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

/// Starts an accept loop for `socket` of listener `name`.
fn add(
    accepting: &mut HashMap<Arc<str>, Accepting>,
    name: Arc<str>,
    socket: std::net::TcpListener,
    shared: &Arc<Shared>,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(socket)?;
    let entry = accepting.entry(name.clone()).or_insert_with(|| Accepting {
        close: watch::channel(false).0,
        loops: Vec::new(),
    });
    entry.loops.push(tokio::spawn(accept_loop(
        listener,
        name,
        shared.clone(),
        entry.close.subscribe(),
    )));
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
/// Also finds the listener in the current snapshot (gone: the connection is closed).
fn admit(
    shared: &Arc<Shared>,
    name: &str,
    peer: std::net::SocketAddr,
) -> Option<(crate::conn_limits::ConnPermit, Arc<Runtime>, usize)> {
    let rt = shared.runtime();
    let index = rt.listeners.iter().position(|l| &*l.name == name)?;
    let gates = &rt.gates;
    let ip = peer.ip();
    let l = &rt.listeners[index];
    let exempt = l.gates.trusted.contains(ip)
        || l.gates
            .proxy_protocol
            .as_ref()
            .is_some_and(|p| p.contains(ip));
    let permit = shared
        .conn_limits
        .try_acquire(
            ip,
            gates.max_connections,
            gates.max_connections_per_ip,
            exempt,
        )
        .ok()?;
    Some((permit, rt, index))
}

async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    shared: Arc<Shared>,
    close: watch::Receiver<bool>,
) {
    // One waiter for the whole loop: a `changed()` made inside `select!` would register and
    // drop a waiter on the watch at every accepted connection.
    let stop = closed(close.clone());
    tokio::pin!(stop);
    // A socket bound to one address accepts connections on exactly that address: asked once
    // here, it saves a getsockname per connection. A wildcard bind asks per connection.
    let local = listener
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some((permit, rt, index)) = admit(&shared, &name, peer) else {
                        // Over a connection cap: close at once, before any byte is read.
                        drop(stream);
                        continue;
                    };
                    // Hot path for short connections: the connection future is several KiB
                    // (hyper's HTTP/1 and HTTP/2 state inline); boxed here, the spawn and the
                    // task's stage changes move a pointer instead of copying it each time.
                    let serve = Box::pin(crate::conn::serve(
                        stream,
                        (peer, local),
                        (rt, index),
                        shared.clone(),
                        close.clone(),
                    ));
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
            () = &mut stop => return,
        }
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
