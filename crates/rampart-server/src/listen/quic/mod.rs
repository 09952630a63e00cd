//! The QUIC listener of a TLS listener with `[listeners.http3]`: one UDP socket on the TCP
//! listener's address and port, one quinn endpoint on it (served by one worker: a connection's
//! packets must all reach the endpoint that holds it, also after the client's address
//! changes), the connection caps and address validation (Retry) checked before a handshake
//! costs anything, then each connection served by the HTTP/3 front end.
//!
//! Connection IDs carry a keyed hash that differs per process: after a binary upgrade both
//! processes read the one handed-over socket, and each drops the other's packets as unknown
//! instead of answering them with a stateless reset, so connections left on the old process
//! finish there (a dropped packet is retransmitted by the client).

mod endpoint;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rampart_config::model::{Http3, QuicRetry};
use socket2::{Domain, Protocol, Socket, Type};

pub(crate) use self::endpoint::serve_endpoint;
use crate::listen::tls::TlsListener;

/// Unidirectional streams a client may open: HTTP/3 needs three (control, QPACK encoder and
/// decoder); a few more leave room for extensions `h3` ignores.
const MAX_UNI_STREAMS: u32 = 8;

/// One listener's compiled QUIC side.
pub(crate) struct QuicListener {
    /// The listener's TLS termination, whose QUIC config new connections use.
    pub(crate) tls: Arc<TlsListener>,
    pub(crate) transport: Arc<quinn::TransportConfig>,
    pub(crate) retry: QuicRetry,
    pub(crate) early_data: bool,
    pub(crate) max_reset_streams: u32,
}

impl QuicListener {
    /// The QUIC side of `tls` as `h3` asks for it.
    pub(crate) fn compile(h3: &Http3, tls: Arc<TlsListener>) -> Result<Self, String> {
        tls.enable_quic(h3.early_data)?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(h3.max_concurrent_streams.into())
            .max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(h3.idle_timeout.get())
                    .map_err(|_| "http3.idle_timeout is too long for QUIC".to_owned())?,
            ));
        Ok(Self {
            tls,
            transport: Arc::new(transport),
            retry: h3.retry,
            early_data: h3.early_data,
            max_reset_streams: h3.max_reset_streams,
        })
    }
}

/// Binds the UDP socket of a QUIC listener at `addr` (the TCP listener's bound address, so the
/// same port). IPv6 sockets are IPv6-only, as the TCP ones.
pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {addr} for HTTP/3: {e}")))?;
    Ok(socket.into())
}
