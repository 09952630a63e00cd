//! A worker's accept loop for one listening socket: the connection caps are checked before a
//! connection costs anything, then each connection is served on its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::conn::closed;
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

/// Accepts connections of listener `name` on `listener` until `close` says so.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    listening: Arc<Listening>,
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
                    let Some((permit, edge, index)) = admit(&listening, &name, peer) else {
                        // Over a connection cap: close at once, before any byte is read.
                        drop(stream);
                        continue;
                    };
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
