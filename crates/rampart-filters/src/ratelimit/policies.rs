//! The config's rate-limit policies, compiled once per config ([`RateLimiters`]) and shared by
//! every route that uses them, so a policy's buckets count all of its routes together unless
//! its key includes `route`; and [`RateLimitStages`], the factory that puts them on routes: the
//! `all_routes` policies first, then the route's own `rate_limits`, in order.
//!
//! A reload keeps a policy's limiter, and so its buckets, when neither the policy nor
//! `[redis]` changed.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_config::model::{RateLimitPolicy, RateLimitStore, RawConfig, RedisFailure};
use rampart_config::{Config, ConfigError, Located, same_as_written};
use rampart_core::{Prepared, Previous, RouteSpec, Stage, StageFactory};

use super::{
    KeySpec, LocalTable, Rate, RateLimitStage, RateLimiter, RedisHealth, RedisStore, Store, micros,
};

/// Most buckets a local policy keeps (about 24 bytes each).
const MAX_KEYS: usize = 1_000_000;

/// The config's rate-limit policies, compiled.
#[derive(Default)]
pub struct RateLimiters {
    by_name: HashMap<String, Arc<RateLimiter>>,
    /// Policies with `all_routes = true`, in config order.
    all_routes: Vec<Arc<RateLimiter>>,
}

impl RateLimiters {
    /// Compiles every `[[rate_limits]]` policy (and the `[redis]` store they share).
    ///
    /// # Errors
    /// A Redis URL or a rate that cannot be used, with spans.
    pub fn compile(raw: &RawConfig) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let redis = match &raw.redis {
            Some(r) => match RedisStore::new(
                r.url.get(),
                r.timeout.get().get(),
                r.retry_interval.get().get(),
                &r.key_prefix,
            ) {
                Ok(store) => Some(Arc::new(store)),
                Err(msg) => {
                    errors.push(ConfigError::new(Some(r.url.span()), "redis.url", msg));
                    None
                }
            },
            None => None,
        };
        let mut out = Self::default();
        for (i, p) in raw.rate_limits.iter().enumerate() {
            match limiter(p, &format!("rate_limits[{i}]"), redis.as_ref()) {
                Ok(l) => {
                    let l = Arc::new(l);
                    if p.all_routes {
                        out.all_routes.push(Arc::clone(&l));
                    }
                    out.by_name.insert(p.name.to_string(), l);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// The health of the Redis store the policies use (`None` without `[redis]` policies);
    /// policies kept across a reload may hold the previous store, so every distinct one
    /// counts.
    #[must_use]
    pub fn redis_health(&self) -> Option<RedisHealth> {
        let mut stores: Vec<&Arc<RedisStore>> = Vec::new();
        for limiter in self.by_name.values() {
            if let Some(store) = limiter.redis_store()
                && !stores.iter().any(|s| Arc::ptr_eq(s, store))
            {
                stores.push(store);
            }
        }
        stores
            .iter()
            .map(|s| s.health())
            .reduce(|a, b| RedisHealth {
                down: a.down || b.down,
                failures: a.failures + b.failures,
                recoveries: a.recoveries + b.recoveries,
            })
    }

    /// Keeps `old`'s limiter (and so its buckets) for every policy `unchanged` says kept its
    /// config.
    #[must_use]
    fn keep_from(mut self, old: &Self, unchanged: impl Fn(&str) -> bool) -> Self {
        for (name, limiter) in &mut self.by_name {
            let Some(kept) = old.by_name.get(name).filter(|_| unchanged(name)) else {
                continue;
            };
            for a in &mut self.all_routes {
                if Arc::ptr_eq(a, limiter) {
                    *a = Arc::clone(kept);
                }
            }
            *limiter = Arc::clone(kept);
        }
        self
    }

    /// `self` with the previous limiter of every policy whose config (and `[redis]`) did not
    /// change between `old_raw` and `raw`, so their buckets keep counting.
    #[must_use]
    pub fn keeping(self, raw: &RawConfig, old_raw: &RawConfig, old: &Self) -> Self {
        if !same_as_written(&raw.redis, &old_raw.redis) {
            return self;
        }
        self.keep_from(old, |name| {
            let new = raw.rate_limits.iter().find(|p| p.name.as_str() == name);
            let before = old_raw.rate_limits.iter().find(|p| p.name.as_str() == name);
            matches!((new, before), (Some(a), Some(b)) if same_as_written(a, b))
        })
    }
}

fn rate(
    requests: &Located<u64>,
    per: &Located<rampart_config::HumanDuration>,
    burst: Option<&Located<u64>>,
    path: &str,
) -> Result<Rate, ConfigError> {
    let burst = burst.map_or(*requests.get(), |b| *b.get());
    Rate::new(*requests.get(), micros(per.get().get()), burst).ok_or_else(|| {
        ConfigError::new(
            Some(requests.span()),
            format!("{path}.requests"),
            "this rate cannot be represented: at most one request per microsecond",
        )
    })
}

fn limiter(
    p: &RateLimitPolicy,
    path: &str,
    redis: Option<&Arc<RedisStore>>,
) -> Result<RateLimiter, ConfigError> {
    let main = rate(&p.requests, &p.per, p.burst.as_ref(), path)?;
    let parts: Vec<String> = p.key.iter().map(|k| k.to_string()).collect();
    let key = KeySpec::new(&parts, p.missing_key)
        .map_err(|m| ConfigError::new(Some(p.name.span()), format!("{path}.key"), m))?;
    let store = match (p.store, redis) {
        (RateLimitStore::Local, _) => Store::Local(LocalTable::new(MAX_KEYS)),
        (RateLimitStore::Redis, Some(store)) => {
            let on_error = p
                .on_redis_error
                .as_ref()
                .map_or(RedisFailure::Local, |o| *o.get());
            let fallback = match (&p.fallback, on_error) {
                (Some(f), RedisFailure::Local) => Some((
                    LocalTable::new(MAX_KEYS),
                    rate(
                        &f.requests,
                        &f.per,
                        f.burst.as_ref(),
                        &format!("{path}.fallback"),
                    )?,
                )),
                (None, RedisFailure::Local) => Some((LocalTable::new(MAX_KEYS), main)),
                _ => None,
            };
            Store::Redis {
                store: Arc::clone(store),
                on_error,
                fallback,
            }
        }
        (RateLimitStore::Redis, None) => {
            return Err(ConfigError::new(
                Some(p.name.span()),
                format!("{path}.store"),
                "`store = \"redis\"` needs a `[redis]` section",
            ));
        }
    };
    RateLimiter::new(&p.name, main, key, store)
        .map_err(|m| ConfigError::new(Some(p.name.span()), path, m))
}

/// Builds a route's rate-limit stages: every `all_routes` policy, then the route's own
/// `rate_limits` in order.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitStages;

impl StageFactory for RateLimitStages {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn prepare(
        &self,
        config: &Config,
        previous: Option<Previous<'_>>,
    ) -> Result<Prepared, Vec<ConfigError>> {
        let fresh = RateLimiters::compile(config.raw())?;
        let limiters = match previous.and_then(|p| Some((p.config, p.prepared.get()?))) {
            Some((old_config, old)) => fresh.keeping(config.raw(), old_config.raw(), old),
            None => fresh,
        };
        Ok(Prepared::new(limiters))
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(limiters) = prepared.get::<RateLimiters>() else {
            return Ok(Vec::new());
        };
        let r = route.route;
        let route_name: Arc<str> = Arc::from(r.name.as_str());
        let mut stages: Vec<Box<dyn Stage>> = Vec::new();
        for l in &limiters.all_routes {
            stages.push(Box::new(RateLimitStage::new(
                Arc::clone(l),
                Arc::clone(&route_name),
            )));
        }
        for (i, name) in r.rate_limits.iter().enumerate() {
            let l = limiters.by_name.get(name.as_str()).ok_or_else(|| {
                vec![route.error(
                    Some(name.span()),
                    &format!("rate_limits[{i}]"),
                    format!("unknown rate-limit policy {:?}", name.get()),
                )]
            })?;
            stages.push(Box::new(RateLimitStage::new(
                Arc::clone(l),
                Arc::clone(&route_name),
            )));
        }
        Ok(stages)
    }
}
