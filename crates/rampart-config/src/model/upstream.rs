//! `[[upstreams]]`: named groups of servers that routes forward to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::model::balance::{
    Balance, CircuitBreaker, HealthCheck, Outlier, Retry, Sticky, Weights,
};
use crate::model::discovery::Discovery;
use crate::model::tls::UpstreamTls;
use crate::units::HumanDuration;

/// Protocol spoken to an upstream's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive connection pooling.
    #[default]
    Http1,
    /// Cleartext HTTP/2 with prior knowledge, one multiplexed connection per target and worker.
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`; needs `[upstreams.tls]`), one multiplexed connection per
    /// target and worker. gRPC upstreams use this or `h2c`.
    H2,
}

/// PROXY protocol version written at the start of every connection to an upstream's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolVersion {
    /// The text line (`PROXY TCP4 src dst sport dport`).
    V1,
    /// The binary header, with TLVs (authority, unique ID, TLS) and a CRC32C checksum.
    V2,
}

/// A named set of targets.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Unique name, referenced by routes' `upstream` key.
    pub name: Located<String>,
    /// Targets as `host:port` (IP literals or DNS names, resolved when connecting); empty when
    /// `[upstreams.discovery]` supplies them.
    #[serde(default)]
    pub targets: Vec<Located<String>>,
    /// `http1` or `h2c`.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Time allowed to establish a TCP connection to a target.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time allowed from sending a request until the response headers arrive.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// How long an unused pooled connection is kept before it is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Most idle HTTP/1.1 connections kept per target, per worker.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_target: usize,
    /// Speak TLS to the targets.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Open every connection with a PROXY protocol header naming the client (`v1` or `v2`);
    /// such connections serve one client only. `http1` upstreams and TLS passthrough.
    #[serde(default)]
    pub proxy_protocol: Option<Located<ProxyProtocolVersion>>,
    /// Load-balancing algorithm.
    #[serde(default)]
    pub balance: Balance,
    /// Request key of `ring_hash` and `maglev`: `client_ip`, `path`, `header:NAME` or
    /// `cookie:NAME`.
    #[serde(default)]
    pub hash_on: Option<Located<String>>,
    /// Target weights (`"host:port" = n`); unlisted targets weigh 1.
    #[serde(default)]
    pub weights: Weights,
    /// Cookie-based sticky sessions.
    #[serde(default)]
    pub sticky: Option<Sticky>,
    /// Active health checks.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Passive health: outlier and gray-failure ejection.
    #[serde(default)]
    pub outlier: Outlier,
    /// Retry rules.
    #[serde(default)]
    pub retry: Retry,
    /// Limits on requests in flight, with a wait queue.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Targets from DNS or a watched file instead of `targets`.
    #[serde(default)]
    pub discovery: Option<Discovery>,
}

const fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

const fn default_request_timeout() -> HumanDuration {
    HumanDuration::secs(60)
}

const fn default_idle_timeout() -> HumanDuration {
    HumanDuration::secs(90)
}

const fn default_max_idle() -> usize {
    256
}
