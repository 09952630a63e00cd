//! Rate limiting: named policies ([`RateLimiter`]) compiled once per config and shared by the
//! routes that use them, each applied by a [`RateLimitStage`].
//!
//! A policy is a GCRA bucket per key ([`gcra`]), held in this process ([`LocalTable`]) or in
//! Redis ([`RedisStore`]) with the same arithmetic. A refused request gets 429 with
//! `Retry-After` and the `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and
//! `RateLimit-Policy` fields of draft-ietf-httpapi-ratelimit-headers-06. Admitted requests
//! carry no extra headers, so the common path formats nothing.

pub mod gcra;
pub mod key;
pub mod local;
mod policies;
pub mod redis;

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use rampart_config::model::RedisFailure;
use rampart_core::{
    Body, ErrorKind, Flow, Phases, ProxyError, RequestCtx, Stage, StageFuture, StageResult,
};

pub use gcra::{Rate, Verdict};
pub use key::{KeyBytes, KeyInput, KeySpec};
pub use local::LocalTable;
pub use policies::{RateLimitStages, RateLimiters};
pub use redis::{RedisHealth, RedisStore, RedisUnavailable};

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Where a policy keeps its buckets.
#[derive(Debug)]
pub enum Store {
    /// In this process.
    Local(LocalTable),
    /// In Redis, with what to do while Redis is unavailable.
    Redis {
        /// The shared Redis connection.
        store: Arc<RedisStore>,
        /// Fail open, closed, or to `fallback`.
        on_error: RedisFailure,
        /// With `on_error = local`: this instance's own buckets and rate meanwhile.
        fallback: Option<(LocalTable, Rate)>,
    },
}

/// One compiled policy.
#[derive(Debug)]
pub struct RateLimiter {
    name: Arc<str>,
    rate: Rate,
    key: KeySpec,
    store: Store,
    hasher: RandomState,
    epoch: Instant,
    limit: HeaderValue,
    policy: HeaderValue,
}

impl RateLimiter {
    /// A policy named `name` admitting `rate`, keyed by `key`, with buckets in `store`.
    ///
    /// # Errors
    /// Never for a validated config; a message otherwise.
    pub fn new(name: &str, rate: Rate, key: KeySpec, store: Store) -> Result<Self, String> {
        let limit = HeaderValue::from(rate.burst());
        let policy = HeaderValue::from_str(&format!("{};w={}", rate.burst(), rate.window_secs()))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            name: Arc::from(name),
            rate,
            key,
            store,
            hasher: RandomState::new(),
            epoch: Instant::now(),
            limit,
            policy,
        })
    }

    /// The policy's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Redis store of a `store = "redis"` policy.
    #[must_use]
    pub const fn redis_store(&self) -> Option<&Arc<RedisStore>> {
        match &self.store {
            Store::Redis { store, .. } => Some(store),
            Store::Local(_) => None,
        }
    }

    /// Decides a request seen at `at` (the local clock; Redis uses its own).
    fn check_local(
        &self,
        table: &LocalTable,
        rate: &Rate,
        input: &KeyInput<'_>,
        at: Instant,
    ) -> Option<Verdict> {
        let mut hasher = self.hasher.build_hasher();
        if !self.key.feed(input, &mut hasher) {
            return None;
        }
        let now_us =
            u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX);
        Some(table.check(std::hash::Hasher::finish(&hasher), now_us, rate))
    }

    /// The answer to a verdict under `rate`.
    fn answer(&self, rate: &Rate, v: Verdict, limit: &HeaderValue) -> StageResult {
        if v.allowed {
            return Ok(Flow::Continue);
        }
        let mut headers = HeaderMap::with_capacity(5);
        headers.insert(RETRY_AFTER, HeaderValue::from(rate.retry_after_secs(v)));
        headers.insert(RATELIMIT_LIMIT.clone(), limit.clone());
        headers.insert(
            RATELIMIT_REMAINING.clone(),
            HeaderValue::from(rate.remaining(v)),
        );
        headers.insert(
            RATELIMIT_RESET.clone(),
            HeaderValue::from(rate.reset_secs(v)),
        );
        if std::ptr::eq(rate, &self.rate) {
            headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
        }
        Err(ProxyError::new(
            ErrorKind::RateLimited,
            format!("rate limit {:?} exceeded", &*self.name),
        )
        .with_headers(headers))
    }

    /// What a Redis policy does without Redis.
    fn without_redis(
        &self,
        on_error: RedisFailure,
        fallback: Option<&(LocalTable, Rate)>,
        input: &KeyInput<'_>,
        at: Instant,
        why: &RedisUnavailable,
    ) -> StageResult {
        match (on_error, fallback) {
            (RedisFailure::Deny, _) => Err(ProxyError::new(
                ErrorKind::RateLimitUnavailable,
                format!("rate limit {:?}: Redis unavailable ({why:?})", &*self.name),
            )),
            (RedisFailure::Local, Some((table, rate))) => {
                let limit = HeaderValue::from(rate.burst());
                match self.check_local(table, rate, input, at) {
                    Some(v) => self.answer(rate, v, &limit),
                    None => Ok(Flow::Continue),
                }
            }
            (RedisFailure::Allow | RedisFailure::Local, _) => Ok(Flow::Continue),
        }
    }
}

/// Applies one policy to a route's requests.
#[derive(Debug)]
pub struct RateLimitStage {
    limiter: Arc<RateLimiter>,
    route: Arc<str>,
}

impl RateLimitStage {
    /// Applies `limiter` on route `route`.
    #[must_use]
    pub const fn new(limiter: Arc<RateLimiter>, route: Arc<str>) -> Self {
        Self { limiter, route }
    }
}

impl Stage for RateLimitStage {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let lim = &*self.limiter;
        let input = KeyInput {
            client_ip: ctx.client_ip,
            route: &self.route,
            headers: req.headers(),
            uri: req.uri(),
        };
        match &lim.store {
            Store::Local(table) => match lim.check_local(table, &lim.rate, &input, ctx.started) {
                Some(v) => lim.answer(&lim.rate, v, &lim.limit).into(),
                None => Ok(Flow::Continue).into(),
            },
            Store::Redis {
                store,
                on_error,
                fallback,
            } => {
                let mut bytes = KeyBytes::default();
                if !lim.key.feed(&input, &mut bytes) {
                    return Ok(Flow::Continue).into();
                }
                let bucket = store.bucket_key(&lim.name, &bytes.0);
                // The fallback needs the key again if Redis fails; keep what it is built from.
                let (client_ip, at) = (ctx.client_ip, ctx.started);
                let headers = req.headers();
                let uri = req.uri();
                StageFuture::Pending(Box::pin(async move {
                    match store.check(&bucket, &lim.rate).await {
                        Ok(v) => lim.answer(&lim.rate, v, &lim.limit),
                        Err(why) => {
                            let input = KeyInput {
                                client_ip,
                                route: &self.route,
                                headers,
                                uri,
                            };
                            lim.without_redis(*on_error, fallback.as_ref(), &input, at, &why)
                        }
                    }
                }))
            }
        }
    }
}

/// Microseconds of a duration, saturating.
#[must_use]
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
