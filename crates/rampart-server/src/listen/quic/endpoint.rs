//! A QUIC listener's endpoint: accepting connections (caps, Retry, the TLS config in service)
//! and opening each one (handshake or 0-RTT) before the HTTP/3 front end serves it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use quinn::crypto::HandshakeTokenKey;
use rampart_config::model::{QuicRetry, RETRY_UNDER_LOAD_ABOVE};
use rampart_core::ConnInfo;
use tokio::sync::watch;

use crate::http::conn::closed;
use crate::http::h3::{self, H3Facts};
use crate::listen::conn_limits::ConnPermit;
use crate::listen::edge::{Edge, Listening};
use crate::listen::quic::QuicListener;
use crate::observe::metrics::quic::{QuicRefusal, QuicStats};
use crate::observe::track::track_connection;

/// A fresh key for the address validation tokens of one endpoint.
fn token_key() -> Arc<dyn HandshakeTokenKey> {
    let mut secret = [0u8; 64];
    // aws-lc-rs's system RNG does not fail on Linux; a zero key would still work, only weaker.
    let _ = aws_lc_rs::rand::fill(&mut secret);
    Arc::new(aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, &[]).extract(&secret))
}

/// The server config for a connection of `q` (the TLS config in service now).
fn server_config(
    q: &QuicListener,
    key: &Arc<dyn HandshakeTokenKey>,
) -> Option<quinn::ServerConfig> {
    let crypto = q.tls.quic()?;
    let mut config = quinn::ServerConfig::new(crypto, Arc::clone(key));
    config.transport_config(Arc::clone(&q.transport));
    Some(config)
}

/// Listener `name`'s QUIC side in the edge in service, with its index.
fn find(listening: &Listening, name: &str) -> Option<(Arc<Edge>, usize, Arc<QuicListener>)> {
    let edge = listening.edge();
    let index = edge.plane.listeners.iter().position(|l| &*l.name == name)?;
    let quic = edge.listeners.get(index)?.quic.clone()?;
    Some((edge, index, quic))
}

/// Serves listener `name`'s QUIC endpoint on `socket` until `close` says so; its connections
/// then get GOAWAY and finish their requests.
pub(crate) async fn serve_endpoint(
    socket: std::net::UdpSocket,
    name: Arc<str>,
    listening: Arc<Listening>,
    close: watch::Receiver<bool>,
) {
    let key = token_key();
    let Some(initial) = find(&listening, &name).and_then(|(_, _, q)| server_config(&q, &key))
    else {
        tracing::error!(listener = %name, "no QUIC config for this listener");
        return;
    };
    let bound = socket.local_addr().ok();
    let endpoint = match quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(initial),
        socket,
        Arc::new(quinn::TokioRuntime),
    ) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(listener = %name, error = %e, "cannot start the QUIC endpoint");
            return;
        }
    };
    let Some(bound) = bound else { return };
    let stats = Arc::clone(&listening.edge().plane.metrics.quic);
    let handshaking = Arc::new(AtomicUsize::new(0));
    let stop = closed(close.clone());
    tokio::pin!(stop);
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = &mut stop => break,
        };
        let Some(incoming) = incoming else { break };
        let Some((edge, index, quic)) = find(&listening, &name) else {
            incoming.ignore();
            continue;
        };
        let peer = incoming.remote_address();
        let Some(permit) = admit(&listening, &edge, index, peer) else {
            stats.refused(QuicRefusal::ConnectionCap);
            incoming.refuse();
            continue;
        };
        let validate = match quic.retry {
            QuicRetry::Always => true,
            QuicRetry::UnderLoad => handshaking.load(Ordering::Relaxed) > RETRY_UNDER_LOAD_ABOVE,
        };
        let incoming = if validate && !incoming.remote_address_validated() && incoming.may_retry() {
            match incoming.retry() {
                Ok(()) => {
                    stats.retry_sent();
                    continue;
                }
                Err(e) => e.into_incoming(),
            }
        } else {
            incoming
        };
        let Some(config) = server_config(&quic, &key) else {
            incoming.refuse();
            continue;
        };
        let connecting = match incoming.accept_with(Arc::new(config)) {
            Ok(c) => c,
            Err(e) => {
                stats.handshake_failed();
                tracing::debug!(peer = %peer, listener = %name, error = %e, "QUIC connection refused");
                continue;
            }
        };
        let opening = Opening {
            name: name.clone(),
            bound,
            quic,
            stats: stats.clone(),
            handshaking: handshaking.clone(),
        };
        let listening = listening.clone();
        let close = close.clone();
        tokio::spawn(Box::pin(async move {
            let _permit = permit;
            opening
                .serve(connecting, (edge, index), listening, close)
                .await;
        }));
    }
    // New connections are left unanswered from now on (after an upgrade the new process
    // answers them); the endpoint lives on while its connections finish, then closes its
    // socket (a reload may bind the port again).
    tokio::spawn(async move {
        let idle = endpoint.wait_idle();
        tokio::pin!(idle);
        loop {
            tokio::select! {
                () = &mut idle => break,
                incoming = endpoint.accept() => match incoming {
                    Some(incoming) => incoming.ignore(),
                    None => break,
                },
            }
        }
    });
}

/// The connection caps, as for TCP connections (the same counts).
fn admit(listening: &Listening, edge: &Edge, index: usize, peer: SocketAddr) -> Option<ConnPermit> {
    let plane = &edge.plane;
    let l = plane.listeners.get(index)?;
    let ip = peer.ip();
    let exempt = l.gates.trusted.contains(ip);
    listening
        .conn_limits
        .try_acquire(
            ip,
            plane.gates.max_connections,
            plane.gates.max_connections_per_ip,
            exempt,
        )
        .ok()
}

/// What opening one connection needs.
struct Opening {
    name: Arc<str>,
    bound: SocketAddr,
    quic: Arc<QuicListener>,
    stats: Arc<QuicStats>,
    handshaking: Arc<AtomicUsize>,
}

impl Opening {
    async fn serve(
        self,
        connecting: quinn::Connecting,
        (edge, index): (Arc<Edge>, usize),
        listening: Arc<Listening>,
        close: watch::Receiver<bool>,
    ) {
        let _guard = track_connection();
        let timeout = self
            .quic
            .tls
            .handshake_timeout
            .unwrap_or(edge.plane.settings.header_read_timeout);
        self.handshaking.fetch_add(1, Ordering::Relaxed);
        let opened = self.handshake(connecting, timeout, &edge).await;
        self.handshaking.fetch_sub(1, Ordering::Relaxed);
        let Some((conn, handshake_done)) = opened else {
            self.stats.handshake_failed();
            return;
        };
        self.stats.handshake();
        let peer = conn.remote_address();
        let local = SocketAddr::new(
            conn.local_ip().unwrap_or(self.bound.ip()),
            self.bound.port(),
        );
        let tls = self.quic.tls.quic_info(&conn, false);
        let info = ConnInfo::new(peer, local, self.name.clone(), "https").with_tls(Arc::new(tls));
        let facts = H3Facts {
            info: Arc::new(info),
            handshake_done,
            max_reset_streams: self.quic.max_reset_streams,
            stats: self.stats.clone(),
        };
        let plane = Arc::clone(&edge.plane);
        drop(edge);
        let shared = Arc::clone(&listening.shared);
        drop(listening);
        h3::serve(conn.clone(), facts, (plane, index), shared, close).await;
        // The client identity stays that of the first path (`peer`), whatever quinn migrated to.
        let migrated = conn.remote_address() != peer;
        self.stats.closed(conn.stats().path.lost_packets, migrated);
    }

    /// Completes the handshake within `timeout`, or with 0-RTT hands the connection over at
    /// once with a flag set when the handshake is done.
    async fn handshake(
        &self,
        connecting: quinn::Connecting,
        timeout: Duration,
        edge: &Edge,
    ) -> Option<(quinn::Connection, Option<Arc<AtomicBool>>)> {
        let connecting = if self.quic.early_data {
            match connecting.into_0rtt() {
                Ok((conn, accepted)) => {
                    let done = Arc::new(AtomicBool::new(false));
                    let flag = done.clone();
                    let tls_stats = Arc::clone(&edge.plane.tls_stats);
                    tokio::spawn(async move {
                        if accepted.await {
                            tls_stats.early_data_accepted();
                        }
                        flag.store(true, Ordering::Release);
                    });
                    return Some((conn, Some(done)));
                }
                Err(connecting) => connecting,
            }
        } else {
            connecting
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(conn)) => Some((conn, None)),
            Ok(Err(e)) => {
                tracing::debug!(listener = %self.name, error = %e, "QUIC handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(listener = %self.name, "QUIC handshake timed out");
                None
            }
        }
    }
}
