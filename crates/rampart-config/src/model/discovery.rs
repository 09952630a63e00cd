//! `[upstreams.discovery]`: targets that come from DNS (A/AAAA or SRV) or from a watched file
//! instead of a static list.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::units::HumanDuration;

/// Where an upstream's targets come from when they are not listed in `targets`. Exactly one of
/// `dns`, `srv` and `file` is set.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// `"host:port"`: every A/AAAA address of `host` becomes a target on `port`; re-resolved
    /// when the answer's TTL (bounded by `min_ttl` and `max_ttl`) runs out.
    #[serde(default)]
    pub dns: Option<Located<String>>,
    /// An SRV name (`"_http._tcp.api.internal"`): each record's host (resolved to its
    /// addresses) and port becomes a target, weighted by the record's weight; only the lowest
    /// priority with a usable target takes requests.
    #[serde(default)]
    pub srv: Option<Located<String>>,
    /// A TOML or JSON file (by extension) listing the targets: `targets = ["host:port", ...]`
    /// and optional `weights`. Re-read when it changes; a broken file keeps the last list.
    #[serde(default)]
    pub file: Option<Located<String>>,
    /// DNS servers as `"ip"` or `"ip:port"` (default: the ones in `/etc/resolv.conf`).
    #[serde(default)]
    pub resolvers: Vec<Located<String>>,
    /// Shortest time an answer is used before asking again, whatever its TTL says.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: HumanDuration,
    /// Longest time an answer is used before asking again, whatever its TTL says.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: HumanDuration,
    /// Address families asked for: `any` (A and AAAA), `ipv4` or `ipv6`.
    #[serde(default)]
    pub family: AddressFamily,
}

/// Which addresses DNS discovery asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    /// A and AAAA records.
    #[default]
    Any,
    /// A records only.
    Ipv4,
    /// AAAA records only.
    Ipv6,
}

const fn default_min_ttl() -> HumanDuration {
    HumanDuration::secs(1)
}

const fn default_max_ttl() -> HumanDuration {
    HumanDuration::secs(60)
}
