//! The config as written: serde structs that refuse unknown keys, with defaults.
//!
//! These are the "raw" structs of the pipeline raw → validated → compiled. Values that later
//! checks may need to point at are [`Located`].

mod headers;
mod listener;
mod ratelimit;
mod route;
mod settings;
mod upstream;

pub use headers::{Cors, HeaderEdits, OriginPattern, SecurityHeaders, SecurityHsts};
pub use listener::{ForwardedPolicy, Listener};
pub use ratelimit::{
    KeyPart, MissingKey, RateLimitFallback, RateLimitPolicy, RateLimitStore, RedisFailure,
    RedisSection,
};
pub use route::{
    HeaderMatch, PrefixReplace, QueryMatch, Redirect, RegexRewrite, Respond, Rewrite, Route,
};
pub use settings::{
    AccessLogFormat, AccessLogSection, LimitsSection, LogFormat, LogSection, ServerSection,
    TimeoutsSection,
};
pub use upstream::{Upstream, UpstreamProtocol};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::Located;

/// A whole Rampart config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Process-wide settings: workers, shutdown.
    #[serde(default)]
    pub server: ServerSection,
    /// Diagnostic logging.
    #[serde(default)]
    pub log: LogSection,
    /// One line per request.
    #[serde(default)]
    pub access_log: AccessLogSection,
    /// Request size limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Client-side timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    /// Where Rampart accepts connections.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Named groups of servers that routes forward to.
    #[serde(default)]
    pub upstreams: Vec<Upstream>,
    /// Which requests go where, and what happens on the way.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Named rate-limit policies, applied by routes' `rate_limits` or to all routes.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitPolicy>,
    /// The Redis server shared by `store = "redis"` rate-limit policies.
    #[serde(default)]
    pub redis: Option<RedisSection>,
}

/// The top-level sections a config file may contain.
pub const SECTIONS: &[&str] = &[
    "server",
    "log",
    "access_log",
    "limits",
    "timeouts",
    "listeners",
    "upstreams",
    "routes",
    "rate_limits",
    "redis",
];
