//! Opening one accepted client connection: the PROXY protocol header from a configured load
//! balancer, TLS passthrough by SNI, the TLS handshake, then the HTTP front end.

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_core::ConnInfo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::http::conn::{ConnFacts, Serving, serve_http};
use crate::listen::edge::{Edge, Listening};
use crate::listen::proxy_header;
use crate::listen::tls::Accepted;
use crate::listen::tls::passthrough::{self, Choice};
use crate::observe::metrics;
use crate::observe::tls_stats::HandshakeFailure;
use crate::observe::track::{TrackGuard, track_connection};

/// Serves `stream` until it closes, the client goes idle, or shutdown is requested. `local` is
/// the connection's local address when the listening socket already tells it (bound to one IP).
/// A plain HTTP/1.1 connection comes back set up, to be served once this future is dropped
/// (with the guard that counts it as open).
pub(crate) async fn serve(
    mut stream: TcpStream,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    (edge, listener_index): (Arc<Edge>, usize),
    listening: Arc<Listening>,
    shutdown: watch::Receiver<bool>,
) -> Option<(Serving, TrackGuard)> {
    let guard = track_connection();
    // No TCP_NODELAY here: Linux copies it from the listening socket, which has it (see
    // `bind`), into every connection it accepts; setting it again was a syscall per connection.
    let local = local.or_else(|| stream.local_addr().ok()).unwrap_or(peer);
    let plane = &edge.plane;
    let (Some(listener), Some(opening)) = (
        plane.listeners.get(listener_index),
        edge.listeners.get(listener_index),
    ) else {
        return None;
    };
    let shared = &listening.shared;
    let mut info = ConnInfo::new(peer, local, listener.name.clone(), "http");
    // A configured load balancer must open with a PROXY protocol header; others are not asked.
    if let Some(from) = &listener.gates.proxy_protocol
        && from.contains(peer.ip())
    {
        match proxy_header::read(&mut stream, plane.settings.header_read_timeout).await {
            Ok(Some(client)) => info = info.with_proxy_source(client),
            Ok(None) => {}
            Err(e) => {
                proxy_header::log_refused(&e, &Arc::new(info), shared);
                return None;
            }
        }
    }
    if let Some(p) = opening.passthrough.clone() {
        let stats = Arc::clone(&plane.tls_stats);
        let addrs = (info.peer, info.local);
        let Some(tls) = &opening.tls else {
            let _gauge = listener.metrics.connection(metrics::TCP);
            drop(edge);
            Box::pin(p.serve(stream, addrs, &stats)).await;
            return None;
        };
        // Both on one port: the ClientHello's SNI name says which.
        match Box::pin(p.choose(&stream, tls)).await {
            Choice::Terminate => {}
            Choice::Pass(backend, sni) => {
                let _gauge = listener.metrics.connection(metrics::TCP);
                drop(edge);
                Box::pin(p.pass(stream, (backend, sni), addrs, &stats)).await;
                return None;
            }
            Choice::Close(why) => {
                if why == passthrough::NO_HELLO_IN_TIME {
                    stats.failure(HandshakeFailure::Timeout);
                }
                tracing::debug!(peer = %peer, listener = %listener.name, reason = why, "TLS connection closed before its ClientHello");
                return None;
            }
        }
    }
    let shared = Arc::clone(shared);
    let Some(tls) = opening.tls.clone() else {
        let facts = ConnFacts {
            info: Arc::new(info),
            handshake_done: None,
            flusher: None,
        };
        let plane = Arc::clone(&edge.plane);
        drop(edge);
        let serving = serve_http(stream, facts, (plane, listener_index), shared, shutdown).await;
        return serving.map(|s| (s, guard));
    };
    // The TLS futures are boxed so that a plain connection's future (which every idle
    // keep-alive connection holds) is not sized for the handshake and the TLS streams.
    let timeout = plane.settings.header_read_timeout;
    let plane = Arc::clone(&edge.plane);
    drop(edge);
    match Box::pin(tls.accept(stream, timeout)).await {
        Ok((Accepted::Tls(s, flusher), facts)) => {
            let facts = ConnFacts {
                info: Arc::new(info.with_tls(Arc::new(facts))),
                handshake_done: None,
                flusher: Some(flusher),
            };
            let serving = Box::pin(serve_http(
                s,
                facts,
                (plane, listener_index),
                shared,
                shutdown,
            ))
            .await;
            if let Some(serving) = serving {
                serving.await;
            }
        }
        Ok((Accepted::Early(s, flusher, handshake_done), facts)) => {
            let facts = ConnFacts {
                info: Arc::new(info.with_tls(Arc::new(facts))),
                handshake_done: Some(handshake_done),
                flusher: Some(flusher),
            };
            let plane = (plane, listener_index);
            if let Some(serving) = Box::pin(serve_http(s, facts, plane, shared, shutdown)).await {
                serving.await;
            }
        }
        Err(e) => {
            tracing::debug!(peer = %peer, listener = %tls.name, error = %e, "TLS handshake failed");
        }
    }
    drop(guard);
    None
}
