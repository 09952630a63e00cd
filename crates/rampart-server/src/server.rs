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
use crate::control::{Control, ReloadReport};
use crate::runtime::{Runtime, compile_with};

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

    /// Marks the server as draining: `/readyz` answers 503 from now on.
    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Puts `rt` in service: new connections and requests use it, running ones finish on
    /// theirs.
    pub(crate) fn swap(&self, rt: Arc<Runtime>) {
        self.runtime.store(rt);
    }
}

/// The name the admin API's socket travels under in [`StartOptions::inherited`] (listener
/// names cannot start with `@`).
pub const ADMIN_SOCKET: &str = "@admin";

/// How to start: where the config came from (for reloads) and sockets inherited from the
/// process being upgraded.
#[derive(Debug, Default)]
pub struct StartOptions {
    /// The config file, reloaded on SIGHUP, `POST /reload` and (with `[reload] watch`) when it
    /// changes.
    pub config_path: Option<std::path::PathBuf>,
    /// Listening sockets by listener name, handed over by the previous binary.
    pub inherited: Vec<(String, Vec<std::net::TcpListener>)>,
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
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<io::Result<()>>>,
    shared: Arc<Shared>,
    drain_timeout: Duration,
    control: Arc<Control>,
    /// The admin API listener, when `[admin]` is configured.
    admin: Option<crate::admin::AdminServer>,
    /// Watches the config file, when `[reload] watch` is on.
    _config_watcher: Option<crate::config_watch::ConfigWatcher>,
}

/// Compiles `config`, binds its listeners and starts its workers.
///
/// # Errors
/// A config that does not compile, a listener that cannot be bound (port taken, permission),
/// an access log file that cannot be opened.
pub fn start(config: &Config) -> Result<ServerHandle, StartError> {
    start_with(config, StartOptions::default())
}

/// [`start`] with a config file to reload from and sockets inherited on upgrade.
///
/// # Errors
/// As [`start`].
pub fn start_with(config: &Config, mut options: StartOptions) -> Result<ServerHandle, StartError> {
    let upgraded = !options.inherited.is_empty();
    let metrics = Arc::new(crate::metrics::Registry::default());
    let mut runtime = compile_with(config, &metrics, None)?;
    runtime.generation = 1;
    metrics.set_generation(1);
    let raw = config.raw();
    let workers = match raw.server.workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    let mut per_worker: Vec<Vec<(Arc<str>, std::net::TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut listeners = Vec::with_capacity(runtime.listeners.len());
    for l in &runtime.listeners {
        let inherited = options
            .inherited
            .iter()
            .position(|(n, _)| **n == *l.name)
            .map(|i| options.inherited.swap_remove(i).1);
        let sockets = match inherited {
            Some(s) if !s.is_empty() => s,
            _ => crate::listener::bind_all(l.bind, workers, l.backlog)?,
        };
        let addr = sockets
            .first()
            .map(std::net::TcpListener::local_addr)
            .transpose()?
            .unwrap_or(l.bind);
        // Every socket is served (several per worker when the old binary had more workers).
        for (i, socket) in sockets.iter().enumerate() {
            per_worker[i % workers].push((l.name.clone(), socket.try_clone()?));
        }
        listeners.push(crate::control::BoundListener {
            name: l.name.clone(),
            bind: l.bind,
            addr,
            sockets,
        });
    }
    let access_log = AccessLog::open(&raw.access_log)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("access log {:?}: {e}", raw.access_log.path),
            )
        })?
        .map(Arc::new);
    let trigger = if upgraded {
        Trigger::Upgrade
    } else {
        Trigger::Startup
    };
    let audit = open_audit_log(config, trigger)?;
    let tracer = crate::otel::Tracer::start(&raw.tracing)?.map(Arc::new);
    let shared = Arc::new(Shared {
        runtime: ArcSwap::from_pointee(runtime),
        access_log,
        audit,
        tracer,
        draining: AtomicBool::new(false),
        conn_limits: Arc::default(),
    });
    let tls_watcher = crate::tls::reload::spawn(crate::control::tls_listeners(&shared.runtime()));
    let (shutdown, _) = watch::channel(false);
    let drain_timeout = raw.server.drain_timeout.get();
    let mut handles = Vec::with_capacity(workers);
    let mut senders = Vec::with_capacity(workers);
    for (index, sockets) in per_worker.into_iter().enumerate() {
        let shared = shared.clone();
        let rx = shutdown.subscribe();
        let (tx, cmds) = tokio::sync::mpsc::unbounded_channel();
        senders.push(tx);
        let handle = std::thread::Builder::new()
            .name(format!("rampart-worker-{index}"))
            .spawn(move || crate::worker::run(index, sockets, shared, rx, drain_timeout, cmds))?;
        handles.push(handle);
    }
    let control = Arc::new(Control {
        shared: shared.clone(),
        metrics,
        workers: senders,
        config_path: options.config_path.clone(),
        started: std::time::Instant::now(),
        state: std::sync::Mutex::new(crate::control::ControlState {
            listeners,
            tls_watcher,
        }),
        upgrade: watch::channel(0).0,
    });
    let admin_socket = options
        .inherited
        .iter()
        .position(|(n, _)| n == ADMIN_SOCKET)
        .and_then(|i| options.inherited.swap_remove(i).1.into_iter().next());
    let admin = match &raw.admin {
        Some(a) if a.enabled => Some(crate::admin::AdminServer::start(
            a,
            control.clone(),
            admin_socket,
        )?),
        _ => None,
    };
    let config_watcher = match (&options.config_path, &raw.reload) {
        (Some(path), r) if r.watch => {
            crate::config_watch::ConfigWatcher::spawn(path, r.debounce.get(), &control)
        }
        _ => None,
    };
    Ok(ServerHandle {
        shutdown,
        workers: handles,
        shared,
        drain_timeout,
        control,
        admin,
        _config_watcher: config_watcher,
    })
}

/// Opens the audit log and records the configuration started with (at startup or by an upgrade)
/// as generation 1.
fn open_audit_log(config: &Config, trigger: Trigger) -> io::Result<Option<Arc<AuditLog>>> {
    let raw = config.raw();
    let audit = AuditLog::open(&raw.audit_log)
        .map_err(|e| io::Error::new(e.kind(), format!("audit log {:?}: {e}", raw.audit_log.path)))?
        .map(Arc::new);
    if let Some(audit) = &audit {
        audit.config_change(trigger, 1, &ChangeSummary::between(None, raw));
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
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        self.control.listener_addrs()
    }

    /// The bound address of the listener called `name`.
    #[must_use]
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }

    /// The bound address of the admin API, when `[admin]` is configured.
    #[must_use]
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(crate::admin::AdminServer::addr)
    }

    /// Reloads the config file the server was started with (SIGHUP). On error the running
    /// config stays in service and the error is returned (and logged and counted).
    ///
    /// # Errors
    /// The file does not load, validate or compile, or a new listener cannot be bound.
    pub fn reload(&self, trigger: crate::audit::Trigger) -> Result<ReloadReport, String> {
        self.control.reload_file(trigger)
    }

    /// Reloads from config text (as [`Self::reload`]).
    ///
    /// # Errors
    /// As [`Self::reload`].
    pub fn reload_str(&self, text: &str) -> Result<ReloadReport, String> {
        self.control
            .reload_str(text, crate::audit::Trigger::AdminApi)
    }

    /// The generation of the config in service (1 at start).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.shared.runtime().generation
    }

    /// The metrics in the Prometheus text format (what `GET /metrics` serves).
    #[must_use]
    pub fn metrics_text(&self) -> String {
        crate::metrics::expo::encode(&self.control.metrics, &self.shared.runtime())
    }

    /// Duplicates of every listening socket by listener name, for handing to a new binary.
    ///
    /// # Errors
    /// A socket cannot be duplicated (out of file descriptors).
    pub fn listening_sockets(&self) -> io::Result<Vec<(String, Vec<std::net::TcpListener>)>> {
        let mut out = self
            .control
            .state()
            .listeners
            .iter()
            .map(|b| {
                let dups = b
                    .sockets
                    .iter()
                    .map(std::net::TcpListener::try_clone)
                    .collect::<io::Result<Vec<_>>>()?;
                Ok((b.name.to_string(), dups))
            })
            .collect::<io::Result<Vec<_>>>()?;
        if let Some(admin) = &self.admin {
            out.push((ADMIN_SOCKET.to_owned(), vec![admin.socket.try_clone()?]));
        }
        Ok(out)
    }

    /// Changes each time `POST /upgrade` asks for a binary upgrade.
    #[must_use]
    pub fn upgrade_requests(&self) -> watch::Receiver<u64> {
        self.control.upgrade.subscribe()
    }

    /// Marks the server as draining (`/readyz` answers 503) ahead of a shutdown.
    pub fn drain(&self) {
        self.shared.set_draining();
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
        drop(self.admin);
        {
            let mut state = self.control.state();
            state.tls_watcher = None;
            // Close our copies of the listening sockets with the accept loops, so nothing
            // queues on a socket no one will accept from (a successor keeps its own copies).
            state.listeners.clear();
        }
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
