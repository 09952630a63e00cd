//! Security gates: `[client_ip]` (trusted proxies), `[geoip]`, `[http2]` flood limits, and the
//! per-listener / per-route `access` and `proxy_protocol` tables.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Cidr, Located};

/// Which request header carries the chain of client addresses added by trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    #[serde(rename = "forwarded")]
    Forwarded,
}

/// `[client_ip]`: how the client's address is found when Rampart sits behind other proxies.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClientIpSection {
    /// Proxies whose forwarding header is believed (listeners may override the list).
    pub trusted_proxies: Vec<Located<Cidr>>,
    /// `x-forwarded-for` or `forwarded`.
    pub header: ClientIpHeader,
}

/// A listener's `proxy_protocol` table: which peers must open with a PROXY protocol header.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyProtocol {
    /// Peers (load balancers) that must send a PROXY protocol v1 or v2 header; others may not.
    pub from: Vec<Located<Cidr>>,
}

/// An `access` table on a listener or a route: who may use it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRules {
    /// When not empty, only client IPs in these networks are served.
    #[serde(default)]
    pub allow: Vec<Located<Cidr>>,
    /// Client IPs in these networks are refused (checked before `allow`).
    #[serde(default)]
    pub deny: Vec<Located<Cidr>>,
    /// When not empty, only clients located in these countries (ISO 3166-1 alpha-2) are served.
    #[serde(default)]
    pub allow_countries: Vec<Located<String>>,
    /// Clients located in these countries are refused.
    #[serde(default)]
    pub deny_countries: Vec<Located<String>>,
    /// When not empty, only clients in these autonomous systems are served.
    #[serde(default)]
    pub allow_asns: Vec<Located<u32>>,
    /// Clients in these autonomous systems are refused.
    #[serde(default)]
    pub deny_asns: Vec<Located<u32>>,
}

impl AccessRules {
    /// True when a country or ASN rule needs a GeoIP lookup.
    #[must_use]
    pub fn uses_geo(&self) -> bool {
        self.uses_country() || self.uses_asn()
    }

    /// True when a country rule is present.
    #[must_use]
    pub fn uses_country(&self) -> bool {
        !self.allow_countries.is_empty() || !self.deny_countries.is_empty()
    }

    /// True when an ASN rule is present.
    #[must_use]
    pub fn uses_asn(&self) -> bool {
        !self.allow_asns.is_empty() || !self.deny_asns.is_empty()
    }
}

/// `[geoip]`: MaxMind DB files used for country and ASN rules, logs and headers.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GeoIpSection {
    /// A MaxMind DB with `country.iso_code` (GeoLite2-Country, GeoIP2-City, ...).
    pub country_db: Option<Located<String>>,
    /// A MaxMind DB with `autonomous_system_number` (GeoLite2-ASN, ...).
    pub asn_db: Option<Located<String>>,
    /// Send the client's country code upstream in this request header (client values removed).
    pub country_header: Option<Located<String>>,
}

/// `[http2]`: limits on what one HTTP/2 client connection may do.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Section {
    /// Most streams (requests) a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Most streams a client may open and reset before Rampart accepted them ("rapid reset",
    /// CVE-2023-44487); beyond it the connection gets GOAWAY.
    pub max_pending_accept_reset_streams: usize,
    /// Most streams Rampart may reset because of client errors before it sends GOAWAY.
    pub max_local_error_reset_streams: usize,
}

impl Default for Http2Section {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 128,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 256,
        }
    }
}
