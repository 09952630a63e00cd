//! A worker's accept loop for one listening socket: the connection caps are checked before a
//! connection costs anything, then each connection is served on its own task.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::conn::closed;
use crate::listen::bind::ListenTuning;
use crate::listen::conn_limits::ConnPermit;
use crate::listen::edge::{Edge, Listening};

/// The connection caps, checked before a connection costs anything. Trusted proxies and PROXY
/// protocol sources count towards the global cap only (many clients share their address).
/// Also finds the listener in the edge in service (gone: the connection is closed).
fn admit(
    listening: &Listening,
    name: &str,
    peer: SocketAddr,
) -> Option<(ConnPermit, Arc<Edge>, usize)> {
    let edge = listening.edge();
    let plane = &edge.plane;
    let index = plane.listeners.iter().position(|l| &*l.name == name)?;
    let gates = &plane.gates;
    let ip = peer.ip();
    let l = &plane.listeners[index];
    let exempt = l.gates.trusted.contains(ip)
        || l.gates
            .proxy_protocol
            .as_ref()
            .is_some_and(|p| p.contains(ip));
    let permit = listening
        .conn_limits
        .try_acquire(
            ip,
            gates.max_connections,
            gates.max_connections_per_ip,
            exempt,
        )
        .ok()?;
    Some((permit, edge, index))
}

/// Sets listener `name`'s socket options on `listener` unless they are `applied` already (at
/// start, and at the first connection after a reload changed them).
fn tune(
    listener: &TcpListener,
    name: &str,
    wanted: ListenTuning,
    applied: &mut Option<ListenTuning>,
) {
    if *applied == Some(wanted) {
        return;
    }
    *applied = Some(wanted);
    if let Err(e) = wanted.apply(listener) {
        tracing::warn!(listener = %name, error = %e, "cannot set the options of a listening socket");
    }
}

/// Accepts connections of listener `name` on `listener` until `close` says so.
///
/// Each wake-up accepts until the queue is empty (`accept4` until `EAGAIN`, sockets created
/// non-blocking and close-on-exec by the call itself); tokio's cooperative budget makes a long
/// burst yield now and then so that accepted connections get served.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    listening: Arc<Listening>,
    close: watch::Receiver<bool>,
) {
    // One waiter for the whole loop, polled only when the watch says it changed: polling it
    // at every accepted connection cost about 300 instructions (callgrind, one request per
    // connection), and a `changed()` made inside `select!` would register and drop a waiter
    // on the watch each time.
    let stop = closed(close.clone());
    tokio::pin!(stop);
    let mut probe = close.clone();
    let mut stop_registered = false;
    // A socket bound to one address accepts connections on exactly that address: asked once
    // here, it saves a getsockname per connection. A wildcard bind asks per connection.
    let local = listener
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    let mut applied = None;
    {
        let edge = listening.edge();
        let index = edge.plane.listeners.iter().position(|l| *l.name == *name);
        if let Some(l) = index.and_then(|i| edge.listeners.get(i)) {
            tune(&listener, &name, l.tuning, &mut applied);
        }
    }
    loop {
        let accepted = std::future::poll_fn(|cx| {
            if !stop_registered || probe.has_changed().unwrap_or(true) {
                stop_registered = true;
                probe.borrow_and_update();
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => {
                let Some((permit, edge, index)) = admit(&listening, &name, peer) else {
                    // Over a connection cap: close at once, before any byte is read.
                    drop(stream);
                    continue;
                };
                if let Some(l) = edge.listeners.get(index) {
                    tune(&listener, &name, l.tuning, &mut applied);
                }
                // Hot path for short connections: the connection future is a few KiB;
                // boxed here, the spawn and the task's stage changes move a pointer
                // instead of copying it each time.
                let serve = Box::pin(crate::listen::conn::serve(
                    stream,
                    (peer, local),
                    (edge, index),
                    listening.clone(),
                    close.clone(),
                ));
                // Setting a connection up takes a larger future than serving it: once a
                // plain HTTP/1.1 connection is set up, that future is freed and the task
                // keeps only the serving one.
                tokio::spawn(async move {
                    let _permit = permit;
                    let opened = serve.await;
                    if let Some((serving, _guard)) = opened {
                        serving.await;
                    }
                });
            }
            Some(Err(e)) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::listen::sockopt;

    #[tokio::test]
    async fn a_changed_tuning_is_applied_again_and_an_unchanged_one_is_not() {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let deferred = ListenTuning {
            defer_accept: true,
            fast_open: 0,
        };
        let mut applied = None;
        tune(&socket, "t", deferred, &mut applied);
        assert_eq!(applied, Some(deferred));
        assert!(sockopt::defer_accept(socket.as_fd()).unwrap() > 0);
        // As a reload that turned it off would.
        tune(&socket, "t", ListenTuning::default(), &mut applied);
        assert_eq!(sockopt::defer_accept(socket.as_fd()).unwrap(), 0);
        // Unchanged: nothing is set (a value set behind its back stays).
        sockopt::set_defer_accept(socket.as_fd(), 1).unwrap();
        tune(&socket, "t", ListenTuning::default(), &mut applied);
        assert!(sockopt::defer_accept(socket.as_fd()).unwrap() > 0);
    }
}
