//! [`AdminHandle`]: everything the admin API may see and do, and nothing else. The admin API
//! (its own crate, on its own thread) reaches the data plane only through it: reads are
//! snapshots, and actions (reload, drain, upgrade) go through the control plane.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::observe::audit::Trigger;
use crate::runtime::compile::Runtime;
use crate::runtime::control::{Control, ReloadReport};

/// The content type of [`AdminHandle::metrics_text`] (the Prometheus text format).
pub const METRICS_CONTENT_TYPE: &str = crate::observe::metrics::expo::CONTENT_TYPE;

/// What the admin API reaches the running server through. Cheap to clone.
#[derive(Clone)]
pub struct AdminHandle {
    control: Arc<Control>,
}

/// How a listener serves, for `GET /status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocol {
    /// Cleartext HTTP/1.1 (and h2c when enabled).
    Http,
    /// TLS terminated here, then HTTP/1.1 or HTTP/2.
    Https,
    /// TLS passed through by SNI to a backend.
    TlsPassthrough,
}

impl ListenerProtocol {
    /// The name the admin API shows.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::TlsPassthrough => "tls_passthrough",
        }
    }
}

/// One listener of the running config.
#[derive(Debug, Clone)]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The bound address (the real port when the config said port 0).
    pub address: SocketAddr,
    /// How it serves.
    pub protocol: ListenerProtocol,
}

/// One route's stage decisions: (stage name, answered, refused), in stage order.
pub type StageDecisions = Vec<(&'static str, u64, u64)>;

impl AdminHandle {
    pub(crate) const fn new(control: Arc<Control>) -> Self {
        Self { control }
    }

    /// The runtime in service: its config, routes and upstreams.
    #[must_use]
    pub fn runtime(&self) -> Arc<Runtime> {
        self.control.runtime()
    }

    /// The listeners of the running config, with their bound addresses.
    #[must_use]
    pub fn listeners(&self) -> Vec<ListenerStatus> {
        let rt = self.control.runtime();
        let addrs = self.control.listener_addrs();
        rt.plane()
            .listeners
            .iter()
            .zip(&rt.edge.listeners)
            .map(|(l, edge)| ListenerStatus {
                name: l.name.to_string(),
                address: addrs
                    .iter()
                    .find(|(n, _)| **n == *l.name)
                    .map_or(l.bind, |(_, a)| *a),
                protocol: if edge.tls.is_some() {
                    ListenerProtocol::Https
                } else if edge.passthrough.is_some() {
                    ListenerProtocol::TlsPassthrough
                } else {
                    ListenerProtocol::Http
                },
            })
            .collect()
    }

    /// Every route's stage decisions since start (counters survive reloads), by route name.
    #[must_use]
    pub fn stage_decisions(&self, route: &str) -> StageDecisions {
        let rt = self.control.runtime();
        let Some(compiled) = rt.routes.iter().find(|r| &*r.name == route) else {
            return Vec::new();
        };
        let counts = self.control.metrics.stage_decisions();
        let mut out: StageDecisions = Vec::new();
        for name in compiled.stage_names() {
            if out.iter().any(|(n, ..)| *n == name) {
                continue;
            }
            let (answered, refused) = counts
                .iter()
                .find(|(r, s, ..)| r == route && *s == name)
                .map_or((0, 0), |(_, _, a, r)| (*a, *r));
            out.push((name, answered, refused));
        }
        out
    }

    /// Time since the server started.
    #[must_use]
    pub fn uptime(&self) -> Duration {
        self.control.started.elapsed()
    }

    /// Number of worker threads.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.control.workers.len()
    }

    /// True once the server is draining.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.control.listening.shared.is_draining()
    }

    /// The metrics in the Prometheus text format.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        self.control.metrics_text()
    }

    /// Reloads the config file the server was started with; blocks while it compiles.
    ///
    /// # Errors
    /// The file does not load, validate or compile, or a new listener cannot be bound; the
    /// running config stays in service.
    pub fn reload(&self, trigger: Trigger) -> Result<ReloadReport, String> {
        self.control.reload_file(trigger)
    }

    /// Marks the server as draining: `/readyz` answers 503 from now on.
    pub fn drain(&self) {
        self.control.drain();
    }

    /// Asks the running binary to start its successor.
    ///
    /// # Errors
    /// The server does not run under `rampart run`, which performs upgrades.
    pub fn request_upgrade(&self) -> Result<(), String> {
        self.control.request_upgrade()
    }
}
