//! `[[rate_limits]]` (named rate-limit policies that routes refer to) and `[redis]` (the shared
//! store for policies with `store = "redis"`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::units::HumanDuration;

/// A named rate-limit policy: a GCRA bucket of `burst` requests refilled at `requests` per
/// `per`, one bucket per distinct key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    /// Unique name, referenced by routes' `rate_limits` and shown in logs.
    pub name: Located<String>,
    /// Sustained rate: this many requests per `per`.
    pub requests: Located<u64>,
    /// The period `requests` are counted over.
    #[serde(default = "default_per")]
    pub per: Located<HumanDuration>,
    /// Most requests admitted at once after a quiet spell (default: `requests`).
    #[serde(default)]
    pub burst: Option<Located<u64>>,
    /// What a bucket is keyed by: `client_ip`, `route`, `header:NAME`, `query:NAME`; several
    /// parts combine into one key.
    #[serde(default = "default_key")]
    pub key: Vec<Located<String>>,
    /// What to do when a `header:`/`query:` key part is absent.
    #[serde(default)]
    pub missing_key: MissingKey,
    /// Apply this policy to every route (before the route's own `rate_limits`).
    #[serde(default)]
    pub all_routes: bool,
    /// Where buckets live: this process, or Redis (shared by every instance).
    #[serde(default)]
    pub store: RateLimitStore,
    /// With `store = "redis"`: what to do while Redis cannot answer in time (default `local`).
    #[serde(default)]
    pub on_redis_error: Option<Located<RedisFailure>>,
    /// With `on_redis_error = "local"`: the per-instance limit used meanwhile (default: the
    /// policy's own `requests`, `per` and `burst`).
    #[serde(default)]
    pub fallback: Option<RateLimitFallback>,
}

fn default_per() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(1))
}

fn default_key() -> Vec<Located<String>> {
    vec![Located::new("client_ip".to_owned())]
}

/// What a policy does with a request lacking a `header:` or `query:` key part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissingKey {
    /// The part counts as empty: all such requests share the buckets of the other parts.
    #[default]
    Share,
    /// The policy does not apply to the request.
    Skip,
}

/// Where a policy's buckets live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitStore {
    /// In this process, shared by its workers.
    #[default]
    Local,
    /// In Redis (`[redis]`), shared by every instance using the same Redis.
    Redis,
}

/// What a Redis-backed policy does while Redis is unreachable or slower than `redis.timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailure {
    /// Enforce the `fallback` limit in this instance alone.
    #[default]
    Local,
    /// Let requests through unlimited (fail open).
    Allow,
    /// Refuse requests with 503 (fail closed).
    Deny,
}

/// The per-instance limit of a Redis policy while Redis is unavailable.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFallback {
    /// Sustained rate: this many requests per `per`.
    pub requests: Located<u64>,
    /// The period `requests` are counted over.
    #[serde(default = "default_per")]
    pub per: Located<HumanDuration>,
    /// Most requests admitted at once (default: `requests`).
    #[serde(default)]
    pub burst: Option<Located<u64>>,
}

/// `[redis]`: the Redis server that `store = "redis"` rate-limit policies share.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: Located<String>,
    /// Longest a request waits for Redis (connecting included) before the policy's
    /// `on_redis_error` applies.
    #[serde(default = "default_redis_timeout")]
    pub timeout: Located<HumanDuration>,
    /// After a failure, how long requests skip Redis and use `on_redis_error` directly.
    #[serde(default = "default_retry_interval")]
    pub retry_interval: Located<HumanDuration>,
    /// Prefix of every key Rampart writes.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

fn default_redis_timeout() -> Located<HumanDuration> {
    Located::new(HumanDuration::millis(50))
}

fn default_retry_interval() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(1))
}

fn default_key_prefix() -> String {
    "rampart:rl:".to_owned()
}

/// One part of a rate-limit key, parsed from a `key` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// `client_ip`: the request's client address.
    ClientIp,
    /// `route`: the route's name, so a policy shared by routes counts each route apart.
    Route,
    /// `header:NAME`: the value of a request header (lower-cased name).
    Header(String),
    /// `query:NAME`: the value of a query parameter (as sent, not decoded).
    Query(String),
}

impl KeyPart {
    /// Parses `client_ip`, `route`, `header:NAME` or `query:NAME`.
    ///
    /// # Errors
    /// Explains the accepted forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            None if text == "client_ip" => Ok(Self::ClientIp),
            None if text == "route" => Ok(Self::Route),
            Some(("header", name)) if crate::syntax::is_token(name) => {
                Ok(Self::Header(name.to_ascii_lowercase()))
            }
            Some(("query", name)) if !name.is_empty() && crate::syntax::is_header_value(name) => {
                Ok(Self::Query(name.to_owned()))
            }
            Some(("jwt", _)) => Err(format!(
                "invalid key part {text:?}: JWT claims can be used once authentication is configurable; use `header:NAME` meanwhile"
            )),
            _ => Err(format!(
                "invalid key part {text:?}: expected \"client_ip\", \"route\", \"header:NAME\" or \"query:NAME\""
            )),
        }
    }
}
