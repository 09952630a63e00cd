//! What each listener of a runtime is: its bound address, how it serves and which HTTP
//! versions it speaks, for the startup line, the reload log and `GET /status`.

use std::net::SocketAddr;

use crate::runtime::compile::Runtime;

/// How a listener serves, for `GET /status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocol {
    /// Cleartext HTTP/1.1 (and h2c when enabled).
    Http,
    /// TLS terminated here, then HTTP/1.1 or HTTP/2.
    Https,
    /// TLS passed through by SNI to a backend.
    TlsPassthrough,
}

impl ListenerProtocol {
    /// The name the admin API shows.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::TlsPassthrough => "tls_passthrough",
        }
    }

    /// The URL scheme clients use to reach it.
    #[must_use]
    pub const fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::TlsPassthrough => "tls",
        }
    }
}

/// One listener of the running config.
#[derive(Debug, Clone)]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The bound address (the real port when the config said port 0).
    pub address: SocketAddr,
    /// How it serves.
    pub protocol: ListenerProtocol,
    /// Whether it accepts HTTP/2 (by ALPN over TLS, with prior knowledge in cleartext).
    pub http2: bool,
    /// Whether it also serves HTTP/3 over QUIC on the same port (UDP).
    pub http3: bool,
}

impl ListenerStatus {
    /// `scheme://address (versions)`, as the startup line prints it: `https://0.0.0.0:443
    /// (http/1.1, h2, h3)`, `http://127.0.0.1:8080 (http/1.1, h2c)`, `tls://0.0.0.0:8443
    /// (passthrough)`.
    #[must_use]
    pub fn describe(&self) -> String {
        let versions = match (self.protocol, self.http2) {
            (ListenerProtocol::TlsPassthrough, _) => "passthrough",
            (ListenerProtocol::Https, true) => "http/1.1, h2",
            (ListenerProtocol::Http, true) => "http/1.1, h2c",
            (_, false) => "http/1.1",
        };
        let h3 = if self.http3 { ", h3" } else { "" };
        format!(
            "{}://{} ({versions}{h3})",
            self.protocol.scheme(),
            self.address
        )
    }
}

/// The listeners of `rt`, with the bound addresses in `addrs` (by name; a listener missing
/// there shows its configured address).
pub(crate) fn listener_statuses(
    rt: &Runtime,
    addrs: &[(String, SocketAddr)],
) -> Vec<ListenerStatus> {
    rt.plane()
        .listeners
        .iter()
        .zip(&rt.edge.listeners)
        .map(|(l, edge)| ListenerStatus {
            name: l.name.to_string(),
            address: addrs
                .iter()
                .find(|(n, _)| **n == *l.name)
                .map_or(l.bind, |(_, a)| *a),
            // A listener that terminates some names and passes others through is `https`.
            protocol: if edge.tls.is_some() {
                ListenerProtocol::Https
            } else if edge.passthrough.is_some() {
                ListenerProtocol::TlsPassthrough
            } else {
                ListenerProtocol::Http
            },
            http2: l.http2,
            http3: edge.quic.is_some(),
        })
        .collect()
}
