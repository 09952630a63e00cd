//! What a reload keeps from the runtime it replaces: parts whose config did not change keep
//! their state (upstream health and counters, rate-limit buckets, TLS session caches and
//! ticket keys). Connection pools are per worker and keyed by target, so they survive anyway.

use std::sync::Arc;

use rampart_config::RawConfig;
use rampart_config::model::{Listener, Upstream};
use rampart_upstream::UpstreamSet;
use serde::Serialize;

use crate::route_gates::RateLimiters;
use crate::runtime::Runtime;
use crate::tls::TlsListener;

/// True when `a` and `b` are the same config (compared as written, spans aside).
pub(crate) fn same<T: Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The previous set of upstream `u`, when its config is unchanged.
pub(crate) fn upstream(previous: &Runtime, u: &Upstream) -> Option<Arc<UpstreamSet>> {
    let old = previous
        .config
        .raw()
        .upstreams
        .iter()
        .find(|o| o.name.as_str() == u.name.as_str())?;
    if !same(old, u) {
        return None;
    }
    previous.upstreams.get(u.name.as_str()).cloned()
}

/// `fresh` with the previous limiter of every policy whose config (and `[redis]`) did not
/// change, so their buckets keep counting.
pub(crate) fn rate_limiters(
    fresh: RateLimiters,
    raw: &RawConfig,
    old_raw: &RawConfig,
    old: &RateLimiters,
) -> RateLimiters {
    if !same(&raw.redis, &old_raw.redis) {
        return fresh;
    }
    fresh.keep_from(old, |name| {
        let new = raw.rate_limits.iter().find(|p| p.name.as_str() == name);
        let before = old_raw.rate_limits.iter().find(|p| p.name.as_str() == name);
        matches!((new, before), (Some(a), Some(b)) if same(a, b))
    })
}

/// The previous TLS termination of listener `l`, when the listener's config is unchanged.
pub(crate) fn tls_listener(previous: &Runtime, l: &Listener) -> Option<Arc<TlsListener>> {
    let old = previous
        .config
        .raw()
        .listeners
        .iter()
        .find(|o| o.name.as_str() == l.name.as_str())?;
    if !same(old, l) {
        return None;
    }
    previous.listener(&l.name)?.tls.clone()
}
