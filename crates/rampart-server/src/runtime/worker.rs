//! Worker threads: each runs a single-threaded tokio runtime with its own listening sockets
//! (one per listener, `SO_REUSEPORT`), its own connection pools and no shared locks. The
//! first worker also serves the QUIC endpoints (one UDP socket per HTTP/3 listener).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::listen::accept::accept_loop;
use crate::listen::edge::Listening;
use crate::listen::quic::serve_endpoint;
use crate::observe::track::{self, Tracker};

/// What the control plane asks of a running worker.
pub(crate) enum WorkerCmd {
    /// Start accepting on a new listening socket of listener `name`.
    Add(Arc<str>, std::net::TcpListener),
    /// Stop accepting for listener `name` and close its connections gracefully.
    Remove(Arc<str>),
    /// Serve listener `name`'s QUIC endpoint on this UDP socket.
    AddQuic(Arc<str>, std::net::UdpSocket),
    /// Stop listener `name`'s QUIC endpoint; its connections get GOAWAY and finish.
    RemoveQuic(Arc<str>),
}

/// A worker's listening sockets by listener name: TCP, and the QUIC endpoints' UDP sockets.
pub(crate) type WorkerSockets = (
    Vec<(Arc<str>, std::net::TcpListener)>,
    Vec<(Arc<str>, std::net::UdpSocket)>,
);

/// One listener's accept loops in this worker and the signal that closes its connections.
struct Accepting {
    close: watch::Sender<bool>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

/// Runs one worker until shutdown and drain (blocking; call on the worker's own thread).
pub(crate) fn run(
    index: usize,
    (sockets, udp): WorkerSockets,
    listening: Arc<Listening>,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
    mut cmds: mpsc::UnboundedReceiver<WorkerCmd>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tracker = Arc::new(Tracker::default());
    track::install(tracker.clone());
    runtime.block_on(async move {
        let mut accepting: HashMap<Arc<str>, Accepting> = HashMap::new();
        // QUIC endpoints are kept apart: a reload can turn HTTP/3 off on a listener it keeps.
        let mut quic: HashMap<Arc<str>, Accepting> = HashMap::new();
        for (name, socket) in sockets {
            add(&mut accepting, name, socket, &listening)?;
        }
        for (name, socket) in udp {
            add_quic(&mut quic, name, socket, &listening);
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(WorkerCmd::Add(name, socket)) => {
                        if let Err(e) = add(&mut accepting, name.clone(), socket, &listening) {
                            tracing::error!(worker = index, listener = %name, error = %e, "cannot accept on new listener");
                        }
                    }
                    Some(WorkerCmd::Remove(name)) => {
                        for a in [accepting.remove(&name), quic.remove(&name)].into_iter().flatten() {
                            let _ = a.close.send(true);
                            for l in a.loops {
                                let _ = l.await;
                            }
                        }
                    }
                    Some(WorkerCmd::AddQuic(name, socket)) => {
                        add_quic(&mut quic, name, socket, &listening);
                    }
                    Some(WorkerCmd::RemoveQuic(name)) => {
                        if let Some(a) = quic.remove(&name) {
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
        for a in accepting.values().chain(quic.values()) {
            let _ = a.close.send(true);
        }
        for (_, a) in accepting.into_iter().chain(quic) {
            for l in a.loops {
                let _ = l.await;
            }
        }
        // Listening sockets are closed now; give open connections time to finish.
        let drained = tokio::time::timeout(drain_timeout, tracker.idle())
            .await
            .is_ok();
        let left = tracker.active();
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
    listening: &Arc<Listening>,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(socket)?;
    let entry = accepting.entry(name.clone()).or_insert_with(|| Accepting {
        close: watch::channel(false).0,
        loops: Vec::new(),
    });
    entry.loops.push(tokio::spawn(accept_loop(
        listener,
        name,
        listening.clone(),
        entry.close.subscribe(),
    )));
    Ok(())
}

/// Starts listener `name`'s QUIC endpoint on `socket`.
fn add_quic(
    quic: &mut HashMap<Arc<str>, Accepting>,
    name: Arc<str>,
    socket: std::net::UdpSocket,
    listening: &Arc<Listening>,
) {
    let entry = quic.entry(name.clone()).or_insert_with(|| Accepting {
        close: watch::channel(false).0,
        loops: Vec::new(),
    });
    entry.loops.push(tokio::spawn(serve_endpoint(
        socket,
        name,
        listening.clone(),
        entry.close.subscribe(),
    )));
}
