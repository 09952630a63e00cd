//! [`Plane`]: the part of a compiled config that every request reads (listeners' routers and
//! policies, routes with their stages and handlers, upstream sets, request settings). It is
//! immutable: a reload builds a new one and swaps it in, and each request keeps the one it
//! started with. The runtime room compiles it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use rampart_router::Router;

use crate::observe::metrics::{ListenerMetrics, Registry, RequestCounts, RouteMetrics};
use crate::observe::tls_stats::TlsStats;
use crate::pipeline::gates::{GlobalGates, ListenerGates};
use crate::pipeline::handler::{ForwardPolicy, Handler, Upstreams};
use crate::pipeline::settings::Settings;
use crate::pipeline::stages::RouteStages;

/// What requests read, compiled from one config.
pub(crate) struct Plane {
    pub(crate) listeners: Vec<ListenerRt>,
    /// The compiled upstreams.
    pub(crate) upstreams: Upstreams,
    pub(crate) settings: Settings,
    /// Process-wide security gates: GeoIP, HTTP/2 and connection limits, body rate.
    pub(crate) gates: GlobalGates,
    /// TLS counters shared by every TLS listener.
    pub(crate) tls_stats: Arc<TlsStats>,
    /// The process's metrics (kept across reloads).
    pub(crate) metrics: Arc<Registry>,
    /// Identifies the listener list by names and order: a connection's cached listener index
    /// is valid in any plane with the same layout.
    pub(crate) layout: u64,
}

impl Plane {
    /// The listener called `name`.
    pub(crate) fn listener(&self, name: &str) -> Option<&ListenerRt> {
        self.listeners.iter().find(|l| &*l.name == name)
    }
}

/// One listener's request policy and the router of the routes it serves.
pub(crate) struct ListenerRt {
    pub(crate) name: Arc<str>,
    pub(crate) bind: SocketAddr,
    pub(crate) http2: bool,
    pub(crate) backlog: u32,
    /// Forwarding headers and client certificate headers sent upstream.
    pub(crate) forward: ForwardPolicy,
    pub(crate) trust_request_id: bool,
    pub(crate) health_endpoints: bool,
    pub(crate) router: Router<Arc<CompiledRoute>>,
    /// Trusted proxies, PROXY protocol sources and the access list.
    pub(crate) gates: ListenerGates,
    /// What TLS termination means for requests, when the listener terminates TLS.
    pub(crate) tls: Option<TlsPolicy>,
    /// `Alt-Svc` advertising HTTP/3 on the listener's port, when `http3.alt_svc` is on.
    pub(crate) alt_svc: Option<AltSvc>,
    /// Redirect every request to HTTPS: (status, port suffix such as `:8443` or empty).
    pub(crate) redirect_https: Option<(StatusCode, Arc<str>)>,
    /// Bytes and open connections of this listener (kept across reloads).
    pub(crate) metrics: Arc<ListenerMetrics>,
    /// Requests answered without a route (fast path, refusals before routing, 404).
    pub(crate) no_route: Arc<RequestCounts>,
}

/// The request side of a TLS listener's settings.
pub(crate) struct TlsPolicy {
    /// Refuse (421) requests whose host the connection's certificate does not cover.
    pub(crate) strict_sni: bool,
    /// `Strict-Transport-Security` added to responses that have none.
    pub(crate) hsts: Option<HeaderValue>,
}

/// The `Alt-Svc` value of an HTTP/3 listener: `h3=":PORT"; ma=SECONDS`. A listener bound to
/// port 0 learns its port from its first connection (the UDP socket shares the TCP port).
pub(crate) struct AltSvc {
    max_age: u64,
    value: OnceLock<HeaderValue>,
}

impl AltSvc {
    /// Advertises HTTP/3 on `port` (0: not known yet) for `max_age` seconds.
    pub(crate) fn new(port: u16, max_age: u64) -> Self {
        let value = OnceLock::new();
        if port != 0 {
            let _ = value.set(Self::format(port, max_age));
        }
        Self { max_age, value }
    }

    fn format(port: u16, max_age: u64) -> HeaderValue {
        HeaderValue::from_str(&format!("h3=\":{port}\"; ma={max_age}"))
            .unwrap_or_else(|_| HeaderValue::from_static("clear"))
    }

    /// The value for a connection that arrived on local `port`.
    pub(crate) fn value(&self, port: u16) -> &HeaderValue {
        self.value.get_or_init(|| Self::format(port, self.max_age))
    }
}

/// A route ready to serve: its stages by phase and its handler.
pub struct CompiledRoute {
    pub(crate) name: Arc<str>,
    pub(crate) stages: RouteStages,
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
        self.stages.names()
    }

    /// A one-line description of the handler.
    #[must_use]
    pub fn handler_summary(&self) -> String {
        self.handler.summary()
    }
}
