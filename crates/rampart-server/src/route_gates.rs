//! Compiling a route's gate stages: CORS and rate limits in front of the route's other stages,
//! header edits and security headers at the back (so that their response side runs first when
//! responses go back through the stages in reverse).
//!
//! Rate-limit policies are compiled once per config ([`RateLimiters`]) and shared by every
//! route that uses them, so a policy's buckets count all of its routes together unless its key
//! includes `route`.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_config::model::{RateLimitPolicy, RateLimitStore, RawConfig, RedisFailure, Route};
use rampart_config::{ConfigError, Located};
use rampart_core::Stage;
use rampart_filters::ratelimit::{KeySpec, LocalTable, Rate, RedisStore, Store, micros};
use rampart_filters::{
    CorsStage, HeaderEditStage, RateLimitStage, RateLimiter, SecurityHeadersStage,
};

/// Most buckets a local policy keeps (about 24 bytes each).
const MAX_KEYS: usize = 1_000_000;

/// The config's rate-limit policies, compiled.
#[derive(Default)]
pub(crate) struct RateLimiters {
    by_name: HashMap<String, Arc<RateLimiter>>,
    /// Policies with `all_routes = true`, in config order.
    all_routes: Vec<Arc<RateLimiter>>,
}

impl RateLimiters {
    /// Compiles every `[[rate_limits]]` policy (and the `[redis]` store they share).
    pub(crate) fn compile(raw: &RawConfig) -> Result<Self, Vec<ConfigError>> {
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

    /// Keeps `old`'s limiter (and so its buckets) for every policy `unchanged` says kept its
    /// config.
    pub(crate) fn keep_from(mut self, old: &Self, unchanged: impl Fn(&str) -> bool) -> Self {
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

/// The stages that go before a route's own: CORS (preflights are answered before anything
/// else costs), then the rate limits of every route, then the route's.
pub(crate) fn front_stages(
    r: &Route,
    path: &str,
    limiters: &RateLimiters,
) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    let route_name: Arc<str> = Arc::from(r.name.as_str());
    if let Some(cors) = &r.cors {
        let stage = CorsStage::new(cors).map_err(|m| {
            vec![ConfigError::new(
                Some(r.name.span()),
                format!("{path}.cors"),
                m,
            )]
        })?;
        stages.push(Box::new(stage));
    }
    for l in &limiters.all_routes {
        stages.push(Box::new(RateLimitStage::new(
            Arc::clone(l),
            Arc::clone(&route_name),
        )));
    }
    for (i, name) in r.rate_limits.iter().enumerate() {
        let l = limiters.by_name.get(name.as_str()).ok_or_else(|| {
            vec![ConfigError::new(
                Some(name.span()),
                format!("{path}.rate_limits[{i}]"),
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

/// The stages that go after a route's own: header edits, then security headers.
pub(crate) fn back_stages(r: &Route, path: &str) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    let err = |key: &str, m: String| {
        vec![ConfigError::new(
            Some(r.name.span()),
            format!("{path}.{key}"),
            m,
        )]
    };
    if r.request_headers.is_some() || r.response_headers.is_some() {
        let stage = HeaderEditStage::new(r.request_headers.as_ref(), r.response_headers.as_ref())
            .map_err(|m| err("request_headers", m))?;
        stages.push(Box::new(stage));
    }
    if let Some(h) = &r.security_headers {
        stages.push(Box::new(
            SecurityHeadersStage::new(h).map_err(|m| err("security_headers", m))?,
        ));
    }
    Ok(stages)
}
