//! What a reload keeps from the runtime it replaces: parts whose config did not change keep
//! their state (upstream health and counters, TLS session caches and ticket keys; stage
//! factories keep theirs, such as rate-limit buckets, through `StageFactory::prepare`).
//! Connection pools are per worker and keyed by target, so they survive anyway.

use std::sync::Arc;

use rampart_config::model::{Listener, Upstream};
use rampart_config::same_as_written;
use rampart_upstream::UpstreamSet;

use crate::listen::tls::TlsListener;
use crate::runtime::compile::Runtime;

/// The previous set of upstream `u`, when its config is unchanged.
pub(crate) fn upstream(previous: &Runtime, u: &Upstream) -> Option<Arc<UpstreamSet>> {
    let old = previous
        .config
        .raw()
        .upstreams
        .iter()
        .find(|o| o.name.as_str() == u.name.as_str())?;
    if !same_as_written(old, u) {
        return None;
    }
    previous.upstreams().get(u.name.as_str()).cloned()
}

/// The previous TLS termination of listener `l`, when the listener's config is unchanged.
pub(crate) fn tls_listener(previous: &Runtime, l: &Listener) -> Option<Arc<TlsListener>> {
    let raw = previous.config.raw();
    let index = raw
        .listeners
        .iter()
        .position(|o| o.name.as_str() == l.name.as_str())?;
    if !same_as_written(&raw.listeners[index], l) {
        return None;
    }
    previous.edge.listeners.get(index)?.tls.clone()
}
