//! The compiled, immutable [`Runtime`] snapshot: the [`Edge`] the accept path reads, the
//! [`Plane`] requests read, and what a reload needs to build the next one. Startup,
//! `rampart check`, `rampart explain` and reload all build it with [`compile`] (or
//! [`compile_with`], which keeps state across a reload).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use rampart_config::{Config, ConfigError, Diagnostics};
use rampart_core::{Prepared, Previous};
use rampart_upstream::UpstreamSet;

use crate::listen::edge::Edge;
use crate::observe::metrics::Registry;
use crate::observe::tls_stats::TlsStats;
use crate::pipeline::gates::GlobalGates;
use crate::pipeline::handler::{Upstreams, hashes_on_header};
use crate::pipeline::plane::{CompiledRoute, Plane};
use crate::pipeline::settings::{Settings, Via};
use crate::pipeline::stages::StageRegistry;
use crate::runtime::listeners::compile_listener;
use crate::runtime::reuse;
use crate::runtime::routes::compile_route;

/// Everything the data plane needs, compiled from one config.
pub struct Runtime {
    pub(crate) config: Config,
    /// The accept path's part, holding the plane requests read.
    pub(crate) edge: Arc<Edge>,
    /// The stage factories the routes were built with, and what each prepared.
    pub(crate) stages: StageRegistry,
    pub(crate) prepared: Vec<Prepared>,
    /// Every compiled route, in config order (for the admin API).
    pub(crate) routes: Vec<Arc<CompiledRoute>>,
    /// Config generation: 1 at start, +1 per applied reload (0 for `check` and `explain`).
    pub(crate) generation: u64,
}

impl Runtime {
    /// The config this runtime was compiled from.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The response cache's store, when a route caches.
    #[must_use]
    pub fn cache(&self) -> Option<&rampart_cache::CacheStore> {
        self.prepared
            .iter()
            .find_map(rampart_core::Prepared::get::<rampart_cache::CacheStore>)
    }

    /// What requests read.
    pub(crate) fn plane(&self) -> &Plane {
        &self.edge.plane
    }

    /// Names and configured addresses of the listeners.
    #[must_use]
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.plane()
            .listeners
            .iter()
            .map(|l| (l.name.to_string(), l.bind))
            .collect()
    }

    /// The compiled upstreams, by name.
    #[must_use]
    pub fn upstreams(&self) -> &HashMap<String, Arc<UpstreamSet>> {
        &self.plane().upstreams.sets
    }

    /// Writes every circuit transition of this runtime's upstreams to `audit` (an upstream
    /// kept from the previous runtime keeps the observer it has).
    pub(crate) fn audit_circuits(&self, audit: &Arc<crate::observe::audit::AuditLog>) {
        for set in self.upstreams().values() {
            let audit = Arc::clone(audit);
            set.observe_circuit(Box::new(move |c| {
                audit.circuit_change(c.upstream, c.from.as_str(), c.to.as_str(), c.reason);
            }));
        }
    }

    /// Every compiled route, in config order.
    #[must_use]
    pub fn routes(&self) -> &[Arc<CompiledRoute>] {
        &self.routes
    }

    /// The config generation this runtime serves (1 at start, +1 per applied reload; 0 for
    /// `check` and `explain`).
    #[must_use]
    pub const fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of routes across all listeners (a route serving two listeners counts once).
    #[must_use]
    pub fn route_count(&self) -> usize {
        self.config.raw().routes.len()
    }

    /// Problems that do not refuse the config but need attention, such as a stapled OCSP
    /// response saying a certificate is revoked (`rampart check` prints them).
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        self.edge
            .listeners
            .iter()
            .filter_map(|l| l.tls.as_ref())
            .flat_map(|t| t.warnings.iter().cloned())
            .collect()
    }

    /// True when listener `name` serves HTTP/3.
    pub(crate) fn serves_quic(&self, name: &str) -> bool {
        self.plane()
            .listeners
            .iter()
            .position(|l| &*l.name == name)
            .and_then(|i| self.edge.listeners.get(i))
            .is_some_and(|l| l.quic.is_some())
    }

    /// The TLS counters (handshakes, failures, resumptions, early data, reloads, expiry).
    #[must_use]
    pub fn tls_stats(&self) -> &Arc<TlsStats> {
        &self.plane().tls_stats
    }
}

/// Compiles a validated config into a runtime with Rampart's built-in stages: upstream sets,
/// stages, handlers and one router per listener. The same function serves startup, `check`,
/// `explain` and reload.
///
/// # Errors
/// Problems only compiling can find (for example two routes whose path templates conflict),
/// rendered against the config text.
pub fn compile(config: &Config) -> Result<Runtime, Diagnostics> {
    compile_with(
        config,
        &Arc::new(Registry::default()),
        None,
        &StageRegistry::builtin(),
    )
}

/// [`compile`] for a running server: counts into `metrics`, builds routes with `stages`, and
/// keeps the stateful parts of `previous` (upstream sets with their health state, what stage
/// factories prepared, TLS listeners with their session caches) wherever their config did not
/// change.
pub(crate) fn compile_with(
    config: &Config,
    metrics: &Arc<Registry>,
    previous: Option<&Runtime>,
    stages: &StageRegistry,
) -> Result<Runtime, Diagnostics> {
    let raw = config.raw();
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut upstreams = HashMap::new();
    for (i, u) in raw.upstreams.iter().enumerate() {
        let kept = previous.and_then(|p| reuse::upstream(&p.config, p.upstreams(), u));
        if let Some(kept) = kept {
            upstreams.insert(u.name.to_string(), kept);
            continue;
        }
        match UpstreamSet::from_config(u, &format!("upstreams[{i}]")) {
            Ok(set) => {
                let set = Arc::new(set);
                // Probes and re-admission run from now on (not from the first request); the
                // service ends by itself once this runtime is dropped.
                set.start_health();
                upstreams.insert(u.name.to_string(), set);
            }
            Err(e) => errors.extend(e),
        }
    }
    let prepared = prepare_stages(config, previous, stages, &mut errors);
    let listener_names: Vec<&str> = raw.listeners.iter().map(|l| l.name.as_str()).collect();
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        let serves: Vec<(&str, bool)> = listener_names
            .iter()
            .map(|l| {
                (
                    *l,
                    r.listeners.is_empty() || r.listeners.iter().any(|n| n.as_str() == *l),
                )
            })
            .collect();
        let route_metrics =
            metrics.route(&r.name, r.upstream.as_deref().map(String::as_str), &serves);
        let built = (stages, prepared.as_slice(), metrics.as_ref());
        match compile_route(r, &path, config, &upstreams, built, route_metrics) {
            Ok(route) => routes.push((r, path, Arc::new(route))),
            Err(e) => errors.extend(e),
        }
    }
    let tls_stats = Arc::clone(&metrics.tls);
    let mut listeners = Vec::with_capacity(raw.listeners.len());
    let mut edge_listeners = Vec::with_capacity(raw.listeners.len());
    for (i, l) in raw.listeners.iter().enumerate() {
        let kept_tls = previous.and_then(|p| reuse::tls_listener(&p.config, &p.edge, l));
        let path = format!("listeners[{i}]");
        match compile_listener(l, &routes, raw, &path, &tls_stats, kept_tls) {
            Ok((plan, edge)) => {
                listeners.push(plan);
                edge_listeners.push(edge);
            }
            Err(e) => errors.extend(e),
        }
    }
    let gates = match GlobalGates::new(raw) {
        Ok(g) => Some(g),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    if !errors.is_empty() {
        errors.dedup();
        return Err(config.diagnostics(errors));
    }
    let Some(gates) = gates else {
        return Err(config.diagnostics(errors));
    };
    for l in &mut listeners {
        l.metrics = metrics.listener(&l.name);
        l.no_route = metrics.requests(&l.name, "", "");
    }
    let header_hashed: HashSet<String> = upstreams
        .keys()
        .filter(|name| hashes_on_header(config, name))
        .cloned()
        .collect();
    let plane = Plane {
        listeners,
        upstreams: Upstreams {
            sets: upstreams,
            header_hashed,
        },
        settings: settings(config),
        gates,
        tls_stats,
        metrics: Arc::clone(metrics),
        layout: layout(&listener_names),
    };
    Ok(Runtime {
        routes: routes.iter().map(|(_, _, c)| Arc::clone(c)).collect(),
        config: config.clone(),
        edge: Arc::new(Edge {
            plane: Arc::new(plane),
            listeners: edge_listeners,
        }),
        stages: stages.clone(),
        prepared,
        generation: 0,
    })
}

/// What each stage factory prepares for `config` (from what it prepared for `previous`).
fn prepare_stages(
    config: &Config,
    previous: Option<&Runtime>,
    stages: &StageRegistry,
    errors: &mut Vec<ConfigError>,
) -> Vec<Prepared> {
    stages
        .factories()
        .iter()
        .enumerate()
        .map(|(i, factory)| {
            let before = previous.and_then(|p| {
                Some(Previous {
                    config: &p.config,
                    prepared: p.prepared.get(i)?,
                })
            });
            factory.prepare(config, before).unwrap_or_else(|e| {
                errors.extend(e);
                Prepared::default()
            })
        })
        .collect()
}

fn layout(names: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    names.hash(&mut h);
    h.finish()
}

fn settings(config: &Config) -> Settings {
    let raw = config.raw();
    let via = |proto: &str| {
        raw.server
            .via
            .then(|| HeaderValue::from_str(&format!("{proto} {}", raw.server.name)).ok())
            .flatten()
    };
    Settings {
        max_uri_length: raw.limits.max_uri_length.as_usize(),
        max_header_count: raw.limits.max_header_count,
        max_header_size: raw.limits.max_header_size.as_usize(),
        header_read_timeout: raw.timeouts.header_read.get(),
        keepalive_timeout: raw.timeouts.keepalive.get(),
        send_timeout: raw.timeouts.send.get(),
        tunnel_idle_timeout: raw.timeouts.tunnel_idle.get(),
        via: Via {
            http10: via("1.0"),
            http11: via("1.1"),
            http2: via("2"),
            http3: via("3"),
        },
    }
}
