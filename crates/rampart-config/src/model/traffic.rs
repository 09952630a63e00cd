//! Traffic management on a route: `split` (a share of the route's requests to other
//! upstreams, sticky per user, with overrides), `mirror` (a copy of a share of them to a
//! shadow upstream) and `fault` (injected delays and aborts for testing how clients and
//! services cope).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};
use crate::{Cidr, Located};

/// `[routes.mirror]`: a copy of a share of the route's proxied requests goes to another
/// upstream, fire-and-forget: its answer is read and dropped, and it never changes or slows
/// the client's answer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// The shadow upstream (a name from `[[upstreams]]`).
    pub upstream: Located<String>,
    /// The share of requests copied, in percent (default 100).
    #[serde(default = "all")]
    pub percent: Located<f64>,
    /// Copy only requests with this header or cookie value (and within `percent`).
    #[serde(default)]
    pub only_if: Option<TrafficCondition>,
    /// How long a copy may take, answer body included (default 5 s).
    #[serde(default = "default_mirror_timeout")]
    pub timeout: HumanDuration,
    /// Most copies in flight at once; copies over it are dropped and counted (default 64).
    #[serde(default = "default_mirror_concurrency")]
    pub max_concurrent: Located<u32>,
    /// Largest request body copied (read once, shared with the primary request); requests
    /// with a larger body, or a streamed one without `Content-Length`, are not copied and are
    /// counted as skipped (default 64 KiB).
    #[serde(default = "default_mirror_body")]
    pub max_body: ByteSize,
    /// Appended to the copy's `Host` (before any port), as `-shadow` gives
    /// `api.example.com-shadow`, so the shadow service can tell copies apart.
    #[serde(default)]
    pub host_suffix: Option<Located<String>>,
}

/// `[routes.fallback]`: another upstream that gets the request when the route's own has no
/// usable target (none healthy, circuit open, every connect failed) or answers with one of
/// `on_status`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// The fallback upstream (a name from `[[upstreams]]`).
    pub upstream: Located<String>,
    /// Answers of the route's upstream that send the request to the fallback instead
    /// (such as `[503]`); empty: only an unavailable upstream does.
    #[serde(default)]
    pub on_status: Vec<Located<u16>>,
    /// Largest request body kept to send again (its length must be known); a request with a
    /// larger or streamed body has no fallback (default 64 KiB).
    #[serde(default = "default_mirror_body")]
    pub max_body: ByteSize,
}

/// A header or a cookie with exactly one value.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficCondition {
    /// A request header (case-insensitive name) …
    #[serde(default)]
    pub header: Option<Located<String>>,
    /// … or a cookie …
    #[serde(default)]
    pub cookie: Option<Located<String>>,
    /// … with exactly this value.
    pub value: String,
}

const fn default_mirror_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

const fn default_mirror_concurrency() -> Located<u32> {
    Located::new(64)
}

const fn default_mirror_body() -> ByteSize {
    ByteSize::kib(64)
}

/// `[routes.split]`: sends a share of the route's requests to other upstreams (a canary, a
/// new version); the route's own `upstream` gets the rest.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// The other upstreams and their shares, in percent of the route's requests (together at
    /// most 100).
    pub backends: Vec<SplitBackend>,
    /// Keeps a user on the upstream first chosen for them.
    #[serde(default)]
    pub sticky: Option<SplitSticky>,
    /// Requests that name their upstream (`x-canary: always`), checked in order before the
    /// shares; the first that matches decides.
    #[serde(default)]
    pub overrides: Vec<SplitOverride>,
}

/// One upstream of a split and its share.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBackend {
    /// The upstream (a name from `[[upstreams]]`).
    pub upstream: Located<String>,
    /// Its share of the route's requests, in percent (`0.5` to `100`; `0` sends it nothing
    /// but overrides and sticky users).
    pub percent: Located<f64>,
}

/// How a split keeps a user on one upstream: by a header that names the user (its value is
/// hashed into the shares), or by a cookie Rampart sets on the first response.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSticky {
    /// A request header whose value identifies the user (`x-user-id`): the same value always
    /// goes to the same upstream while the shares stay the same.
    #[serde(default)]
    pub header: Option<Located<String>>,
    /// A cookie naming the chosen upstream (by an opaque tag): set on the response when the
    /// request had none, honoured while it names an upstream of this split.
    #[serde(default)]
    pub cookie: Option<Located<String>>,
}

/// A request that names its upstream through a header or a cookie value.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitOverride {
    /// A request header (case-insensitive name) …
    #[serde(default)]
    pub header: Option<Located<String>>,
    /// … or a cookie …
    #[serde(default)]
    pub cookie: Option<Located<String>>,
    /// … with exactly this value.
    pub value: String,
    /// Where such a request goes: the route's upstream or one of the split's backends.
    pub upstream: Located<String>,
}

/// `[routes.fault]`: injected delays and aborts, from the config (a share of requests) and,
/// for clients in `header_from`, from a request's `x-rampart-fault` header. Every injected
/// fault is logged as one.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Delays a share of requests before they go on.
    #[serde(default)]
    pub delay: Option<FaultDelay>,
    /// Answers a share of requests with an error status instead of handling them.
    #[serde(default)]
    pub abort: Option<FaultAbort>,
    /// Clients (IP networks) whose `x-rampart-fault` header is honoured
    /// (`delay=250ms`, `abort=503`, or both, comma-separated). Empty: the header is ignored.
    #[serde(default)]
    pub header_from: Vec<Located<Cidr>>,
    /// The longest delay a header may ask for (default 10 s).
    #[serde(default = "default_max_delay")]
    pub max_delay: HumanDuration,
}

/// A delay injected into a share of requests.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultDelay {
    /// How long.
    pub duration: HumanDuration,
    /// The share of requests delayed, in percent (default 100).
    #[serde(default = "all")]
    pub percent: Located<f64>,
}

/// An error answer injected into a share of requests.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultAbort {
    /// The status answered (400 to 599).
    pub status: Located<u16>,
    /// The share of requests aborted, in percent (default 100).
    #[serde(default = "all")]
    pub percent: Located<f64>,
}

const fn all() -> Located<f64> {
    Located::new(100.0)
}

const fn default_max_delay() -> HumanDuration {
    HumanDuration::secs(10)
}
