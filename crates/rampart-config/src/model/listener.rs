//! `[[listeners]]`: addresses Rampart accepts connections on.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::http3::Http3;
use crate::model::security::{AccessRules, ProxyProtocol};
use crate::model::tls::{ListenerTls, Passthrough, RedirectHttps};
use crate::{Cidr, Located};

/// What to do with `X-Forwarded-*` (and, when enabled, `Forwarded`) headers sent by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForwardedPolicy {
    /// Keep the client's values and add this hop (use behind a trusted load balancer).
    Append,
    /// Discard the client's values and send only this hop (safe at the edge).
    #[default]
    Rewrite,
    /// Discard the client's values and send none.
    Drop,
}

/// One listening address speaking HTTP/1.1 and (optionally) cleartext HTTP/2.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique name, used by routes, logs and metrics.
    pub name: Located<String>,
    /// Address and port, such as `0.0.0.0:8080` or `[::1]:8080`.
    #[schemars(with = "String")]
    pub bind: Located<SocketAddr>,
    /// Accept cleartext HTTP/2 with prior knowledge on the same port as HTTP/1.1.
    #[serde(default = "yes")]
    pub http2: bool,
    /// Policy for `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
    #[serde(default)]
    pub x_forwarded: ForwardedPolicy,
    /// Also send the RFC 7239 `Forwarded` header, under the same policy.
    #[serde(default)]
    pub forwarded: bool,
    /// Keep a client's `X-Request-ID` instead of generating one (only behind a trusted proxy).
    #[serde(default)]
    pub trust_request_id: bool,
    /// Answer `GET /healthz` and `GET /readyz` on this listener before routing.
    #[serde(default = "yes")]
    pub health_endpoints: bool,
    /// Length of the kernel's accept queue.
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// Let the kernel hand a connection over only once its first bytes arrived
    /// (`TCP_DEFER_ACCEPT`), instead of at the end of the TCP handshake.
    #[serde(default)]
    pub defer_accept: bool,
    /// Accept TCP Fast Open (request bytes in the SYN) with at most this many connections
    /// waiting for their handshake; 0 turns it off.
    #[serde(default)]
    pub fast_open: Located<u32>,
    /// Proxies whose forwarding header is believed on this listener (replaces
    /// `client_ip.trusted_proxies` when given, even when empty).
    #[serde(default)]
    pub trusted_proxies: Option<Vec<Located<Cidr>>>,
    /// Require a PROXY protocol header from these peers.
    #[serde(default)]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Who may connect: IP networks, countries, autonomous systems.
    #[serde(default)]
    pub access: Option<AccessRules>,
    /// Terminate TLS on this listener (HTTPS).
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Answer every request with a redirect to HTTPS (a plaintext listener's only job).
    #[serde(default)]
    pub redirect_https: Option<RedirectHttps>,
    /// Forward raw TLS connections by SNI name without terminating them.
    #[serde(default)]
    pub passthrough: Option<Passthrough>,
    /// Also serve HTTP/3 over QUIC (UDP) on the same address and port (TLS listeners only).
    #[serde(default)]
    pub http3: Option<Http3>,
}

const fn yes() -> bool {
    true
}

const fn default_backlog() -> u32 {
    4096
}
