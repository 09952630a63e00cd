//! What a reload keeps from the runtime it replaces: parts whose config did not change keep
//! their state (upstream health and counters, TLS session caches and ticket keys; stage
//! factories keep theirs, such as rate-limit buckets, through `StageFactory::prepare`).
//! Connection pools are per worker and keyed by target, so they survive anyway.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_config::model::{Listener, Upstream};
use rampart_config::{Config, same_as_written};
use rampart_upstream::UpstreamSet;

use crate::listen::edge::Edge;
use crate::listen::tls::TlsListener;

/// The set of upstream `u` among the `sets` compiled from `previous`, when its config is
/// unchanged.
pub(crate) fn upstream(
    previous: &Config,
    sets: &HashMap<String, Arc<UpstreamSet>>,
    u: &Upstream,
) -> Option<Arc<UpstreamSet>> {
    let old = previous
        .raw()
        .upstreams
        .iter()
        .find(|o| o.name.as_str() == u.name.as_str())?;
    if !same_as_written(old, u) {
        return None;
    }
    sets.get(u.name.as_str()).cloned()
}

/// The TLS termination of listener `l` in the `edge` compiled from `previous`, when the
/// listener's config is unchanged.
pub(crate) fn tls_listener(
    previous: &Config,
    edge: &Edge,
    l: &Listener,
) -> Option<Arc<TlsListener>> {
    let raw = previous.raw();
    let index = raw
        .listeners
        .iter()
        .position(|o| o.name.as_str() == l.name.as_str())?;
    if !same_as_written(&raw.listeners[index], l) {
        return None;
    }
    edge.listeners.get(index)?.tls.clone()
}
