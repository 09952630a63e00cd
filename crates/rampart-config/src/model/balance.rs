//! Per-upstream resilience settings: load balancing, sticky sessions, active health checks,
//! passive outlier detection, retries and circuit breaking.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::units::{ByteSize, HumanDuration};

/// How an upstream picks a target for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Power of two choices: two random targets, the one with the lower latency EWMA times
    /// requests in flight wins.
    #[default]
    P2c,
    /// Each target in turn.
    RoundRobin,
    /// Smooth weighted round robin over `weights`.
    WeightedRoundRobin,
    /// The target with the fewest requests in flight (relative to its weight).
    LeastRequest,
    /// A random target, in proportion to its weight.
    Random,
    /// Consistent hashing on a ring (ketama) keyed by `hash_on`.
    RingHash,
    /// Consistent hashing with a Maglev lookup table keyed by `hash_on`.
    Maglev,
}

impl Balance {
    /// The name as written in config.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::P2c => "p2c",
            Self::RoundRobin => "round_robin",
            Self::WeightedRoundRobin => "weighted_round_robin",
            Self::LeastRequest => "least_request",
            Self::Random => "random",
            Self::RingHash => "ring_hash",
            Self::Maglev => "maglev",
        }
    }

    /// Whether the algorithm hashes a request key.
    #[must_use]
    pub const fn is_hashing(self) -> bool {
        matches!(self, Self::RingHash | Self::Maglev)
    }
}

/// Target weights by target (`"host:port"` as written in `targets`), 1 to 1000; unlisted
/// targets weigh 1.
pub type Weights = BTreeMap<String, Located<u32>>;

/// Cookie-based sticky sessions: the first response sets a signed cookie naming the target;
/// later requests carrying it go to that target while it is available.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    /// Cookie name.
    #[serde(default = "default_sticky_cookie")]
    pub cookie: Located<String>,
    /// Key signing the cookie (HMAC-SHA256), at least 16 bytes; use `${ENV}` interpolation.
    pub secret: Located<String>,
    /// Cookie lifetime (`Max-Age`); a session cookie when absent.
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
}

fn default_sticky_cookie() -> Located<String> {
    Located::from("rampart_sticky".to_owned())
}

/// The kind of active probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// An HTTP/1.1 request; healthy when the status (and body) match.
    #[default]
    Http,
    /// A TCP connect; healthy when it succeeds.
    Tcp,
    /// `grpc.health.v1.Health/Check` over cleartext HTTP/2; healthy when `SERVING`.
    Grpc,
}

/// Active health checks: a background probe per target.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// `http`, `tcp` or `grpc`.
    #[serde(default)]
    pub kind: HealthCheckKind,
    /// Request path (HTTP).
    #[serde(default = "default_health_path")]
    pub path: Located<String>,
    /// Request method (HTTP).
    #[serde(default = "default_health_method")]
    pub method: Located<String>,
    /// `Host` header (HTTP); the target's `host:port` when absent.
    #[serde(default)]
    pub host: Option<Located<String>>,
    /// Statuses that count as healthy (HTTP); any 2xx or 3xx when empty.
    #[serde(default)]
    pub expected_statuses: Vec<Located<u16>>,
    /// Text the response body must contain (HTTP; the first 64 KiB are read).
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Service name asked about (gRPC); empty means the whole server.
    #[serde(default)]
    pub grpc_service: String,
    /// Time between probes of one target.
    #[serde(default = "default_health_interval")]
    pub interval: HumanDuration,
    /// Time a probe may take.
    #[serde(default = "default_health_timeout")]
    pub timeout: HumanDuration,
    /// Up to this much random delay added to each interval, so probes do not align.
    #[serde(default = "default_health_jitter")]
    pub jitter: HumanDuration,
    /// Consecutive successes that make an unhealthy target healthy.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy target unhealthy.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

fn default_health_path() -> Located<String> {
    Located::from("/".to_owned())
}

fn default_health_method() -> Located<String> {
    Located::from("GET".to_owned())
}

const fn default_health_interval() -> HumanDuration {
    HumanDuration::secs(5)
}

const fn default_health_timeout() -> HumanDuration {
    HumanDuration::secs(2)
}

const fn default_health_jitter() -> HumanDuration {
    HumanDuration::millis(500)
}

const fn default_healthy_threshold() -> u32 {
    2
}

const fn default_unhealthy_threshold() -> u32 {
    3
}

/// Passive health: targets are ejected on consecutive failures or persistent slowness.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Outlier {
    /// Turns passive ejection on.
    pub enabled: bool,
    /// Consecutive 5xx responses that eject a target (0 = never).
    pub consecutive_5xx: u32,
    /// Consecutive connect failures (refused, timed out, TLS) that eject a target (0 = never).
    pub consecutive_connect_errors: u32,
    /// Consecutive response timeouts or resets that eject a target (0 = never).
    pub consecutive_timeouts: u32,
    /// Gray failure: eject a target whose latency EWMA exceeds this multiple of the median of
    /// its peers' (0 = never); needs at least 2 targets.
    pub latency_factor: f64,
    /// ... and exceeds this absolute latency (so fast targets are never ejected for noise).
    pub latency_floor: HumanDuration,
    /// First ejection time; doubled on each further ejection of the same target.
    pub base_ejection: HumanDuration,
    /// Longest ejection time.
    pub max_ejection: HumanDuration,
    /// Most targets, in percent of the upstream, that may be out at once (ejected or failing
    /// active checks); beyond it, panic mode spreads requests over all targets.
    pub max_ejection_percent: u8,
    /// Panic mode (fail open): when more targets are out than `max_ejection_percent` allows,
    /// or all of them, spread requests over every target anyway. Off: targets that are out get
    /// no requests, and with none left a request gets a fast 503.
    pub panic_mode: bool,
    /// After re-admission, a target's share ramps up from 10% to 100% over this time (0s = at
    /// once).
    pub slow_start: HumanDuration,
}

impl Default for Outlier {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_5xx: 5,
            consecutive_connect_errors: 3,
            consecutive_timeouts: 3,
            latency_factor: 5.0,
            latency_floor: HumanDuration::millis(100),
            base_ejection: HumanDuration::secs(5),
            max_ejection: HumanDuration::secs(300),
            max_ejection_percent: 50,
            panic_mode: true,
            slow_start: HumanDuration::secs(10),
        }
    }
}

/// When and how often a failed request is tried again on another target.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Most attempts beyond the first (connect failures are retried at least once).
    pub max_retries: u8,
    /// Response statuses retried for idempotent methods.
    pub on_status: Vec<Located<u16>>,
    /// Retry idempotent requests whose connection was reset or timed out before a response.
    pub on_reset: bool,
    /// Request bodies up to this size are buffered so they can be replayed; larger ones are
    /// streamed and never replayed.
    pub buffer_body: ByteSize,
    /// Retries allowed, in percent of requests (a token bucket), so retries never multiply
    /// the load of a failing upstream.
    pub budget_percent: u8,
    /// Retries allowed per second regardless of the percentage (low traffic).
    pub budget_min_per_second: u32,
    /// Time allowed to each attempt for the response head; the route or upstream timeout when
    /// absent.
    pub per_try_timeout: Option<HumanDuration>,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_retries: 1,
            on_status: [502, 503, 504].into_iter().map(Located::from).collect(),
            on_reset: true,
            buffer_body: ByteSize::kib(64),
            budget_percent: 20,
            budget_min_per_second: 5,
            per_try_timeout: None,
        }
    }
}

/// Per-route retry overrides (`[routes.retry]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRetry {
    /// Overrides the upstream's `retry.max_retries`.
    #[serde(default)]
    pub max_retries: Option<u8>,
    /// Also retry non-idempotent methods (POST, PATCH) on statuses and resets.
    #[serde(default)]
    pub non_idempotent: bool,
    /// Overrides the upstream's `retry.per_try_timeout`.
    #[serde(default)]
    pub per_try_timeout: Option<HumanDuration>,
    /// Hedging: when an idempotent request has no response head after this long, send it to a
    /// second target too and use whichever answers first.
    #[serde(default)]
    pub hedge_after: Option<HumanDuration>,
}

/// Circuit breaking: bounds on what an upstream is asked to carry at once, and a circuit that
/// opens after failures and fails fast until a trial request succeeds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Most requests in flight to the upstream at once (all workers); none: no limit.
    #[serde(default)]
    pub max_requests: Option<u32>,
    /// Requests that may wait for a free slot beyond `max_requests`; more get a 503.
    #[serde(default)]
    pub max_pending: u32,
    /// How long a request may wait for a slot before a 503.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: HumanDuration,
    /// Most requests in flight to one target (for HTTP/1.1: busy connections); a full target
    /// is skipped by the balancer.
    #[serde(default)]
    pub max_requests_per_target: Option<u32>,
    /// `Retry-After` sent with the 503.
    #[serde(default = "default_retry_after")]
    pub retry_after: HumanDuration,
    /// Open the circuit after this many failed requests in a row (0: never on a count).
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Open the circuit when at least this share of the requests in `window` failed (0: never
    /// on a rate).
    #[serde(default)]
    pub failure_rate_percent: u8,
    /// The window over which `failure_rate_percent` is measured.
    #[serde(default = "default_failure_window")]
    pub window: HumanDuration,
    /// Fewest requests in a window before its failure rate counts.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// How long an open circuit fails fast before letting trial requests through.
    #[serde(default = "default_open_for")]
    pub open_for: HumanDuration,
    /// Trial requests let through half open; all must succeed to close the circuit.
    #[serde(default = "default_half_open_requests")]
    pub half_open_requests: u32,
}

impl CircuitBreaker {
    /// Whether the circuit can open (a failure count or rate is set).
    #[must_use]
    pub const fn trips(&self) -> bool {
        self.consecutive_failures > 0 || self.failure_rate_percent > 0
    }
}

const fn default_failure_window() -> HumanDuration {
    HumanDuration::secs(10)
}

const fn default_min_requests() -> u32 {
    20
}

const fn default_open_for() -> HumanDuration {
    HumanDuration::secs(5)
}

const fn default_half_open_requests() -> u32 {
    1
}

const fn default_queue_timeout() -> HumanDuration {
    HumanDuration::secs(1)
}

const fn default_retry_after() -> HumanDuration {
    HumanDuration::secs(1)
}
