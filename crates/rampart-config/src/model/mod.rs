//! The config as written: serde structs that refuse unknown keys, with defaults.
//!
//! These are the "raw" structs of the pipeline raw → validated → compiled. Values that later
//! checks may need to point at are [`Located`].

mod auth;
mod balance;
mod cache;
mod compress;
mod decompress;
mod discovery;
mod headers;
mod http3;
mod listener;
mod observability;
mod ops;
mod ratelimit;
mod route;
mod security;
mod settings;
mod static_files;
mod tls;
mod traffic;
mod upstream;

pub use auth::{
    ApiKey, ApiKeyProvider, AuthSection, BasicProvider, ClaimRule, JwtAlgorithm, JwtProvider,
    RouteAuth,
};
pub use balance::{
    Balance, CircuitBreaker, HealthCheck, HealthCheckKind, Outlier, Retry, RouteRetry, Sticky,
    Weights,
};
pub use cache::{CacheRules, CacheSection, RouteCache};
pub use compress::{Compress, CompressAlgorithm, CompressLevels, DEFAULT_COMPRESS_TYPES};
pub use decompress::Decompress;
pub use discovery::{AddressFamily, Discovery};
pub use headers::{Cors, HeaderEdits, OriginPattern, SecurityHeaders, SecurityHsts};
pub use http3::{Http3, QuicRetry, RETRY_UNDER_LOAD_ABOVE};
pub use listener::{ForwardedPolicy, Listener};
pub use observability::{AuditLogSection, OtlpProtocol, TracingSection};
pub use ops::{AdminSection, ReloadSection};
pub use ratelimit::{
    KeyPart, MissingKey, RateLimitFallback, RateLimitPolicy, RateLimitStore, RedisFailure,
    RedisSection,
};
pub use route::{
    HeaderMatch, PrefixReplace, QueryMatch, Redirect, RegexRewrite, Respond, Rewrite, Route,
};
pub use security::{
    AccessRules, ClientIpHeader, ClientIpSection, GeoIpSection, Http2Section, ProxyProtocol,
};
pub use settings::{
    AccessLogFormat, AccessLogSection, LimitsSection, LogFormat, LogSection, ServerSection,
    TimeoutsSection,
};
pub use static_files::{OpenFileCache, StaticFiles};
pub use tls::{
    ClientAuth, ClientCertHeaders, ClientCertRequirement, Hsts, ListenerTls, Passthrough,
    RedirectHttps, TlsCertificate, TlsVersion, UpstreamTls,
};
pub use traffic::{
    Fallback, Fault, FaultAbort, FaultDelay, Mirror, Split, SplitBackend, SplitOverride,
    SplitSticky, TrafficCondition,
};
pub use upstream::{ProxyProtocolVersion, Upstream, UpstreamProtocol};

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
    /// How the client's IP address is found behind trusted proxies.
    #[serde(default)]
    pub client_ip: ClientIpSection,
    /// MaxMind DB files for country and ASN rules.
    #[serde(default)]
    pub geoip: GeoIpSection,
    /// Limits on HTTP/2 client connections.
    #[serde(default)]
    pub http2: Http2Section,
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
    /// Authentication providers that routes' `auth` refers to.
    #[serde(default)]
    pub auth: AuthSection,
    /// Request spans exported to an OpenTelemetry collector over OTLP.
    #[serde(default)]
    pub tracing: TracingSection,
    /// Configuration changes and security decisions, one JSON line each.
    #[serde(default)]
    pub audit_log: AuditLogSection,
    /// The admin API listener; absent: no admin API.
    #[serde(default)]
    pub admin: Option<AdminSection>,
    /// How config changes are picked up while running.
    #[serde(default)]
    pub reload: ReloadSection,
    /// The shared response store of routes with `cache`.
    #[serde(default)]
    pub cache: CacheSection,
}

/// The top-level sections a config file may contain.
pub const SECTIONS: &[&str] = &[
    "server",
    "log",
    "access_log",
    "limits",
    "timeouts",
    "client_ip",
    "geoip",
    "http2",
    "listeners",
    "upstreams",
    "routes",
    "rate_limits",
    "redis",
    "auth",
    "tracing",
    "audit_log",
    "admin",
    "reload",
    "cache",
];
