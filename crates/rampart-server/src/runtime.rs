//! The compiled, immutable [`Runtime`] snapshot: what the data plane reads on every request.
//! Startup, `rampart check`, `rampart explain` and reload all build it with [`compile`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{HeaderValue, StatusCode};
use rampart_config::model::{ForwardedPolicy, Listener, Route};
use rampart_config::{Config, ConfigError, Diagnostics};
use rampart_core::Stage;
use rampart_filters::{BodyLimit, HostRewrite, MethodAllowList, PathRewrite};
use rampart_router::{Matcher, Router};
use rampart_upstream::UpstreamSet;

use crate::gates::{GlobalGates, ListenerGates};
use crate::handler::{Handler, RedirectSpec, RespondSpec};
use crate::metrics::{ListenerMetrics, Registry, RequestCounts, RouteMetrics};
use crate::route_gates::{self, RateLimiters};
use crate::tls::TlsListener;
use crate::tls::passthrough::PassthroughRt;
use crate::tls::stats::TlsStats;

/// Everything the data plane needs, compiled from one config.
pub struct Runtime {
    pub(crate) config: Config,
    pub(crate) listeners: Vec<ListenerRt>,
    pub(crate) upstreams: HashMap<String, Arc<UpstreamSet>>,
    pub(crate) settings: Settings,
    /// Process-wide security gates: GeoIP, HTTP/2 and connection limits, body rate.
    pub(crate) gates: GlobalGates,
    /// TLS counters shared by every TLS listener of this runtime.
    pub(crate) tls_stats: Arc<TlsStats>,
    /// The compiled rate-limit policies (their buckets are kept by a reload that keeps them).
    pub(crate) limiters: RateLimiters,
    /// Every compiled route, in config order (for the admin API).
    pub(crate) routes: Vec<Arc<CompiledRoute>>,
    /// The process's metrics (kept across reloads).
    pub(crate) metrics: Arc<Registry>,
    /// Config generation: 1 at start, +1 per applied reload (0 for `check` and `explain`).
    pub(crate) generation: u64,
    /// Identifies the listener list by names and order: a connection's cached listener index
    /// is valid in any runtime with the same layout.
    pub(crate) layout: u64,
}

/// One listener's settings and the router of the routes it serves.
pub(crate) struct ListenerRt {
    pub(crate) name: Arc<str>,
    pub(crate) bind: SocketAddr,
    pub(crate) http2: bool,
    pub(crate) backlog: u32,
    pub(crate) x_forwarded: ForwardedPolicy,
    pub(crate) forwarded: bool,
    pub(crate) trust_request_id: bool,
    pub(crate) health_endpoints: bool,
    pub(crate) router: Router<Arc<CompiledRoute>>,
    /// Trusted proxies, PROXY protocol sources and the access list.
    pub(crate) gates: ListenerGates,
    /// TLS termination, when the listener has `[listeners.tls]`.
    pub(crate) tls: Option<Arc<TlsListener>>,
    /// Redirect every request to HTTPS: (status, port suffix such as `:8443` or empty).
    pub(crate) redirect_https: Option<(StatusCode, Arc<str>)>,
    /// Forward raw TLS by SNI instead of serving HTTP.
    pub(crate) passthrough: Option<Arc<PassthroughRt>>,
    /// Header names carrying the client certificate upstream (client copies are removed).
    pub(crate) client_cert_headers: Arc<[HeaderName; 3]>,
    /// Bytes and open connections of this listener (kept across reloads).
    pub(crate) metrics: Arc<ListenerMetrics>,
    /// Requests answered without a route (fast path, refusals before routing, 404).
    pub(crate) no_route: Arc<RequestCounts>,
}

/// Process-wide request settings.
pub(crate) struct Settings {
    pub(crate) max_uri_length: usize,
    pub(crate) max_header_count: usize,
    pub(crate) max_header_size: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) tunnel_idle_timeout: Duration,
    /// `Via` values by the protocol version the message was received with (RFC 9110 §7.6.3).
    pub(crate) via: Via,
}

/// Precomputed `Via` header values, `None` when `server.via` is off.
pub(crate) struct Via {
    pub(crate) http10: Option<HeaderValue>,
    pub(crate) http11: Option<HeaderValue>,
    pub(crate) http2: Option<HeaderValue>,
}

impl Via {
    /// The value for a message received as `version`.
    pub(crate) const fn for_version(&self, version: http::Version) -> Option<&HeaderValue> {
        match version {
            http::Version::HTTP_2 => self.http2.as_ref(),
            http::Version::HTTP_10 | http::Version::HTTP_09 => self.http10.as_ref(),
            _ => self.http11.as_ref(),
        }
    }
}

/// A route ready to serve: its stages in their fixed order and its handler.
pub struct CompiledRoute {
    pub(crate) name: Arc<str>,
    pub(crate) stages: Vec<Box<dyn Stage>>,
    pub(crate) handler: Handler,
    pub(crate) timeout: Option<Duration>,
    /// What the route's requests count into.
    pub(crate) metrics: RouteMetrics,
}

impl CompiledRoute {
    /// The route's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of the stages the route runs, in order.
    #[must_use]
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// A one-line description of the handler.
    #[must_use]
    pub fn handler_summary(&self) -> String {
        self.handler.summary()
    }
}

impl Runtime {
    /// The config this runtime was compiled from.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Names and configured addresses of the listeners.
    #[must_use]
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.name.to_string(), l.bind))
            .collect()
    }

    /// The compiled upstreams, by name.
    #[must_use]
    pub fn upstreams(&self) -> &HashMap<String, Arc<UpstreamSet>> {
        &self.upstreams
    }

    /// Number of routes across all listeners (a route serving two listeners counts once).
    #[must_use]
    pub fn route_count(&self) -> usize {
        self.config.raw().routes.len()
    }

    /// The TLS counters (handshakes, failures, resumptions, early data, reloads, expiry).
    #[must_use]
    pub fn tls_stats(&self) -> &Arc<TlsStats> {
        &self.tls_stats
    }

    pub(crate) fn listener(&self, name: &str) -> Option<&ListenerRt> {
        self.listeners.iter().find(|l| &*l.name == name)
    }
}

/// Compiles a validated config into a runtime: upstream sets, stages, handlers and one router
/// per listener. The same function serves startup, `check`, `explain` and reload.
///
/// # Errors
/// Problems only compiling can find (for example two routes whose path templates conflict),
/// rendered against the config text.
pub fn compile(config: &Config) -> Result<Runtime, Diagnostics> {
    compile_with(config, &Arc::new(Registry::default()), None)
}

/// [`compile`] for a running server: counts into `metrics`, and keeps the stateful parts of
/// `previous` (upstream sets with their health state, rate-limit buckets, TLS listeners with
/// their session caches) wherever their config did not change.
pub(crate) fn compile_with(
    config: &Config,
    metrics: &Arc<Registry>,
    previous: Option<&Runtime>,
) -> Result<Runtime, Diagnostics> {
    let raw = config.raw();
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut upstreams = HashMap::new();
    for (i, u) in raw.upstreams.iter().enumerate() {
        if let Some(kept) = previous.and_then(|p| crate::reuse::upstream(p, u)) {
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
    let limiters = RateLimiters::compile(raw).unwrap_or_else(|e| {
        errors.extend(e);
        RateLimiters::default()
    });
    let limiters = match previous {
        Some(p) => crate::reuse::rate_limiters(limiters, raw, p.config.raw(), &p.limiters),
        None => limiters,
    };
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
        match compile_route(r, &path, config, &upstreams, &limiters, route_metrics) {
            Ok(route) => routes.push((r, path, Arc::new(route))),
            Err(e) => errors.extend(e),
        }
    }
    let tls_stats = Arc::clone(&metrics.tls);
    let mut listeners = Vec::with_capacity(raw.listeners.len());
    for (i, l) in raw.listeners.iter().enumerate() {
        let kept_tls = previous.and_then(|p| crate::reuse::tls_listener(p, l));
        match listener_runtime(
            l,
            &routes,
            raw,
            &format!("listeners[{i}]"),
            &tls_stats,
            kept_tls,
        ) {
            Ok(rt) => listeners.push(rt),
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
    Ok(Runtime {
        routes: routes.iter().map(|(_, _, c)| Arc::clone(c)).collect(),
        config: config.clone(),
        layout: layout(&listener_names),
        listeners,
        upstreams,
        settings: settings(config),
        gates,
        tls_stats,
        metrics: Arc::clone(metrics),
        generation: 0,
        limiters,
    })
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
        tunnel_idle_timeout: raw.timeouts.tunnel_idle.get(),
        via: Via {
            http10: via("1.0"),
            http11: via("1.1"),
            http2: via("2"),
        },
    }
}

fn listener_runtime(
    l: &Listener,
    routes: &[(&Route, String, Arc<CompiledRoute>)],
    raw: &rampart_config::RawConfig,
    path: &str,
    tls_stats: &Arc<TlsStats>,
    kept_tls: Option<Arc<TlsListener>>,
) -> Result<ListenerRt, Vec<ConfigError>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let tls = match &l.tls {
        Some(_) if kept_tls.is_some() => kept_tls,
        Some(t) => match TlsListener::compile(l, t, &format!("{path}.tls"), tls_stats) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                errors.extend(e);
                None
            }
        },
        None => None,
    };
    let names = l
        .tls
        .as_ref()
        .map(|t| t.client_cert_headers.clone())
        .unwrap_or_default();
    let header = |n: &str, fallback: &'static str| {
        HeaderName::from_bytes(n.as_bytes()).unwrap_or(HeaderName::from_static(fallback))
    };
    let client_cert_headers = Arc::new([
        header(&names.fingerprint, "x-client-cert-sha256"),
        header(&names.subject, "x-client-cert-subject"),
        header(&names.sans, "x-client-cert-sans"),
    ]);
    let redirect_https = l.redirect_https.as_ref().map(|r| {
        let status =
            StatusCode::from_u16(*r.status.get()).unwrap_or(StatusCode::PERMANENT_REDIRECT);
        let port: Arc<str> = match r.port {
            Some(443) | None => Arc::from(""),
            Some(p) => Arc::from(format!(":{p}")),
        };
        (status, port)
    });
    let passthrough = l
        .passthrough
        .as_ref()
        .map(|p| Arc::new(PassthroughRt::new(p, &raw.upstreams)));
    for (route, path, compiled) in routes {
        match Matcher::from_config(route, path) {
            Ok(m) if m.serves_listener(&l.name) => entries.push((m, Arc::clone(compiled))),
            Ok(_) => {}
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ListenerRt {
        name: Arc::from(l.name.as_str()),
        bind: *l.bind,
        http2: l.http2,
        backlog: l.backlog,
        x_forwarded: l.x_forwarded,
        forwarded: l.forwarded,
        trust_request_id: l.trust_request_id,
        health_endpoints: l.health_endpoints,
        router: Router::new(entries)?,
        gates: ListenerGates::new(l, raw),
        tls,
        redirect_https,
        passthrough,
        client_cert_headers,
        metrics: Arc::default(),
        no_route: Arc::default(),
    })
}

fn compile_route(
    r: &Route,
    path: &str,
    config: &Config,
    upstreams: &HashMap<String, Arc<UpstreamSet>>,
    limiters: &RateLimiters,
    metrics: RouteMetrics,
) -> Result<CompiledRoute, Vec<ConfigError>> {
    let err = |span, key: &str, msg: String| {
        vec![ConfigError::new(Some(span), format!("{path}.{key}"), msg)]
    };
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    if let Some(access) = &r.access {
        stages.push(Box::new(rampart_filters::AccessStage(
            rampart_filters::AccessList::new(access),
        )));
    }
    if let Some(cc) = &r.client_cert {
        stages.push(Box::new(rampart_filters::ClientCertCheck::new(cc)));
    }
    stages.extend(route_gates::front_stages(r, path, limiters)?);
    if !r.allow_methods.is_empty() {
        let methods: Vec<String> = r.allow_methods.iter().map(|m| m.to_string()).collect();
        let stage =
            MethodAllowList::new(&methods).map_err(|m| err(r.name.span(), "allow_methods", m))?;
        stages.push(Box::new(stage));
    }
    let max_body = r
        .max_body_size
        .unwrap_or(config.raw().limits.max_body_size)
        .get();
    stages.push(Box::new(BodyLimit::new(max_body)));
    if let Some(rw) = &r.rewrite {
        if let Some(p) = &rw.strip_prefix {
            stages.push(Box::new(PathRewrite::StripPrefix(p.to_string())));
        }
        if let Some(rp) = &rw.replace_prefix {
            stages.push(Box::new(PathRewrite::ReplacePrefix {
                from: rp.from.to_string(),
                to: rp.to.to_string(),
            }));
        }
        if let Some(rx) = &rw.path_regex {
            stages.push(Box::new(PathRewrite::Regex {
                pattern: rx.pattern.clone(),
                replace: rx.replace.to_string(),
            }));
        }
        if let Some(host) = &rw.host {
            let stage = HostRewrite::new(host).map_err(|m| err(host.span(), "rewrite.host", m))?;
            stages.push(Box::new(stage));
        }
    }
    stages.extend(route_gates::back_stages(r, path)?);
    let handler = if let Some(u) = &r.upstream {
        let set = upstreams.get(u.as_str()).ok_or_else(|| {
            err(
                u.span(),
                "upstream",
                format!("unknown upstream {:?}", u.get()),
            )
        })?;
        Handler::proxy(set, r.retry.as_ref(), config)
    } else if let Some(redirect) = &r.redirect {
        Handler::Redirect(
            RedirectSpec::new(redirect).map_err(|m| err(redirect.to.span(), "redirect", m))?,
        )
    } else if let Some(respond) = &r.respond {
        Handler::Respond(
            RespondSpec::new(respond).map_err(|m| err(respond.status.span(), "respond", m))?,
        )
    } else {
        Handler::Echo
    };
    Ok(CompiledRoute {
        name: Arc::from(r.name.as_str()),
        stages,
        handler,
        timeout: r.timeout.map(rampart_config::HumanDuration::get),
        metrics,
    })
}
