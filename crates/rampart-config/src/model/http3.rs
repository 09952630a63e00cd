//! `[listeners.http3]`: HTTP/3 over QUIC on a TLS listener's address and port (UDP).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

/// When a QUIC listener asks new clients to prove their address with a Retry packet first
/// (address validation, RFC 9000 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuicRetry {
    /// Only while more than [`RETRY_UNDER_LOAD_ABOVE`] handshakes are in progress on the
    /// listener (a handshake flood): a normal connection costs no extra round trip.
    #[default]
    UnderLoad,
    /// Every new connection: one extra round trip, and no spoofed source address ever costs
    /// a handshake.
    Always,
}

/// Handshakes in progress on one QUIC listener above which `retry = "under_load"` validates
/// new clients' addresses.
pub const RETRY_UNDER_LOAD_ABOVE: usize = 64;

/// `[listeners.http3]`: serve HTTP/3 on UDP at the listener's address and port, with the
/// listener's certificates, client verification, access list and client-IP rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http3 {
    /// Advertise HTTP/3 on the listener's TCP responses with `Alt-Svc: h3=":PORT"`.
    #[serde(default = "yes")]
    pub alt_svc: bool,
    /// How long clients may remember the `Alt-Svc` advertisement (`ma=`).
    #[serde(default = "default_alt_svc_max_age")]
    pub alt_svc_max_age: HumanDuration,
    /// Accept 0-RTT early data on resumed connections: only safe methods are served from it
    /// (others get 425 Too Early); forwarded ones carry `Early-Data: 1`.
    #[serde(default)]
    pub early_data: bool,
    /// Most request streams a client may have open at once on one connection.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// A connection that carries no packet for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// When new clients must first prove their address: `under_load` or `always`.
    #[serde(default)]
    pub retry: QuicRetry,
    /// Most requests a client may cancel (reset) on one connection beyond those it let
    /// finish; past it the connection is closed with `H3_EXCESSIVE_LOAD`.
    #[serde(default = "default_max_reset_streams")]
    pub max_reset_streams: u32,
}

impl Default for Http3 {
    fn default() -> Self {
        Self {
            alt_svc: true,
            alt_svc_max_age: default_alt_svc_max_age(),
            early_data: false,
            max_concurrent_streams: default_max_concurrent_streams(),
            idle_timeout: default_idle_timeout(),
            retry: QuicRetry::default(),
            max_reset_streams: default_max_reset_streams(),
        }
    }
}

const fn yes() -> bool {
    true
}

const fn default_alt_svc_max_age() -> HumanDuration {
    HumanDuration::secs(86_400)
}

const fn default_max_concurrent_streams() -> u32 {
    100
}

const fn default_idle_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}

const fn default_max_reset_streams() -> u32 {
    64
}
