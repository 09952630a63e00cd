//! Starting and stopping the data plane: compile, bind every listener for every worker, start
//! the worker threads, and on shutdown stop accepting, drain, and join.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_config::{Config, Diagnostics};
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::audit::{AuditLog, ChangeSummary, Trigger};
use crate::runtime::{Runtime, compile};

/// State shared by all workers: the current runtime snapshot and process-wide services.
pub(crate) struct Shared {
    runtime: ArcSwap<Runtime>,
    pub(crate) access_log: Option<Arc<AccessLog>>,
    /// Configuration changes and security decisions (`[audit_log]`), when enabled.
    pub(crate) audit: Option<Arc<AuditLog>>,
    /// Request spans exported over OTLP (`[tracing]`), when enabled.
    pub(crate) tracer: Option<Arc<crate::otel::Tracer>>,
    draining: AtomicBool,
    /// Open-connection counts for the global and per-IP caps (kept across reloads).
    pub(crate) conn_limits: Arc<crate::conn_limits::ConnLimits>,
}

impl Shared {
    /// The current runtime snapshot (requests keep the one they started with).
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// True once shutdown began (`/readyz` then answers 503).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config compiles with errors.
    #[error("{0}")]
    Config(#[from] Diagnostics),
    /// A listener could not be bound, a log could not be opened, or a thread not started.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A running Rampart data plane.
pub struct ServerHandle {
    listeners: Vec<(String, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<io::Result<()>>>,
    shared: Arc<Shared>,
    drain_timeout: Duration,
    /// Watches certificate files; dropped on shutdown.
    tls_watcher: Option<crate::tls::reload::Watcher>,
}

/// Compiles `config`, binds its listeners and starts its workers.
///
/// # Errors
/// A config that does not compile, a listener that cannot be bound (port taken, permission),
/// an access log file that cannot be opened.
pub fn start(config: &Config) -> Result<ServerHandle, StartError> {
    let runtime = compile(config)?;
    let raw = config.raw();
    let workers = match raw.server.workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    let mut per_worker: Vec<Vec<(usize, std::net::TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut listeners = Vec::with_capacity(runtime.listeners.len());
    for (index, l) in runtime.listeners.iter().enumerate() {
        let sockets = crate::listener::bind_all(l.bind, workers, l.backlog)?;
        let bound = sockets
            .first()
            .map(std::net::TcpListener::local_addr)
            .transpose()?
            .unwrap_or(l.bind);
        listeners.push((l.name.to_string(), bound));
        for (w, socket) in sockets.into_iter().enumerate() {
            per_worker[w].push((index, socket));
        }
    }
    let access_log = AccessLog::open(&raw.access_log)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("access log {:?}: {e}", raw.access_log.path),
            )
        })?
        .map(Arc::new);
    let audit = open_audit_log(config)?;
    let tracer = crate::otel::Tracer::start(&raw.tracing)?.map(Arc::new);
    let shared = Arc::new(Shared {
        runtime: ArcSwap::from_pointee(runtime),
        access_log,
        audit,
        tracer,
        draining: AtomicBool::new(false),
        conn_limits: Arc::default(),
    });
    let tls_listeners: Vec<_> = shared
        .runtime()
        .listeners
        .iter()
        .filter_map(|l| l.tls.clone())
        .collect();
    let tls_watcher = crate::tls::reload::spawn(tls_listeners);
    let (shutdown, _) = watch::channel(false);
    let drain_timeout = raw.server.drain_timeout.get();
    let mut handles = Vec::with_capacity(workers);
    for (index, sockets) in per_worker.into_iter().enumerate() {
        let shared = shared.clone();
        let rx = shutdown.subscribe();
        let handle = std::thread::Builder::new()
            .name(format!("rampart-worker-{index}"))
            .spawn(move || crate::worker::run(index, sockets, shared, rx, drain_timeout))?;
        handles.push(handle);
    }
    Ok(ServerHandle {
        listeners,
        shutdown,
        workers: handles,
        shared,
        drain_timeout,
        tls_watcher,
    })
}

/// Opens the audit log and records the startup configuration as generation 1.
fn open_audit_log(config: &Config) -> io::Result<Option<Arc<AuditLog>>> {
    let raw = config.raw();
    let audit = AuditLog::open(&raw.audit_log)
        .map_err(|e| io::Error::new(e.kind(), format!("audit log {:?}: {e}", raw.audit_log.path)))?
        .map(Arc::new);
    if let Some(audit) = &audit {
        audit.config_change(Trigger::Startup, 1, &ChangeSummary::between(None, raw));
    }
    Ok(audit)
}

impl ServerHandle {
    /// The audit log, when `[audit_log]` enables it: the reload and upgrade paths record each
    /// configuration change there with [`AuditLog::config_change`].
    #[must_use]
    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.shared.audit.as_ref()
    }

    /// The OTLP span pipeline, when `[tracing]` enables it.
    #[must_use]
    pub fn tracer(&self) -> Option<&Arc<crate::otel::Tracer>> {
        self.shared.tracer.as_ref()
    }

    /// Each listener's name and bound address (the real port when the config said port 0).
    #[must_use]
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// The bound address of the listener called `name`.
    #[must_use]
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// Number of worker threads.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Client connections open now (the count `limits.max_connections` caps).
    #[must_use]
    pub fn connections_open(&self) -> usize {
        self.shared.conn_limits.open()
    }

    /// Client connections refused at accept by `limits.max_connections` or
    /// `limits.max_connections_per_ip` since start.
    #[must_use]
    pub fn connections_refused(&self) -> u64 {
        self.shared.conn_limits.refused()
    }

    /// Access log lines dropped because the writer could not keep up.
    #[must_use]
    pub fn access_log_dropped(&self) -> u64 {
        self.shared.access_log.as_ref().map_or(0, |l| l.dropped())
    }

    /// TLS counters: handshakes, failures, resumptions, early data, reloads, expiry times.
    #[must_use]
    pub fn tls_stats(&self) -> crate::tls::stats::TlsStatsSnapshot {
        self.shared.runtime().tls_stats.snapshot()
    }

    /// Each upstream of the running config (sorted by name) with its targets' health: state,
    /// reason, in-flight requests, latency EWMA and totals.
    #[must_use]
    pub fn upstream_statuses(&self) -> Vec<(String, Vec<rampart_upstream::TargetStatus>)> {
        let rt = self.shared.runtime();
        let mut out: Vec<_> = rt
            .upstreams
            .iter()
            .map(|(name, set)| (name.clone(), set.target_statuses()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Stops accepting, lets in-flight requests finish within the drain timeout, and waits for
    /// the workers to exit.
    pub fn shutdown(self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        drop(self.tls_watcher);
        let _ = self.shutdown.send(true);
        for worker in self.workers {
            match worker.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "worker failed"),
                Err(_) => tracing::error!("worker panicked"),
            }
        }
        tracing::debug!(drain_timeout = ?self.drain_timeout, "all workers stopped");
        if let Some(tracer) = &self.shared.tracer {
            tracer.flush();
        }
    }
}
