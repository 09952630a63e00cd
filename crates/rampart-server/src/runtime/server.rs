//! Starting and stopping the data plane: compile, bind every listener for every worker, start
//! the worker threads, and on shutdown stop accepting, drain, and join.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_config::{Config, Diagnostics};
use tokio::sync::watch;

use crate::listen::bind::bind_all;
use crate::listen::edge::Listening;
use crate::listen::quic::bind_udp;
use crate::observe::access_log::AccessLog;
use crate::observe::audit::{AuditLog, ChangeSummary, Initiator, Trigger};
use crate::observe::metrics::Registry;
use crate::observe::otel::Tracer;
use crate::observe::tls_stats::TlsStatsSnapshot;
use crate::pipeline::session::Shared;
use crate::pipeline::stages::StageRegistry;
use crate::runtime::compile::compile_with;
use crate::runtime::control::{BoundListener, Control, ControlState, ReloadReport, tls_listeners};
use crate::runtime::handle::AdminHandle;

/// How to start: where the config came from (for reloads), sockets inherited from the
/// process being upgraded, and the stages routes are built with.
#[derive(Debug, Default)]
pub struct StartOptions {
    /// The config file, reloaded on SIGHUP, `POST /reload` and (with `[reload] watch`) when it
    /// changes.
    pub config_path: Option<std::path::PathBuf>,
    /// Listening sockets by listener name, handed over by the previous binary.
    pub inherited: Vec<(String, Vec<std::net::TcpListener>)>,
    /// HTTP/3 listeners' UDP sockets by listener name, handed over by the previous binary.
    pub inherited_udp: Vec<(String, std::net::UdpSocket)>,
    /// The stage factories (default: Rampart's built-in stages).
    pub stages: StageRegistry,
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
    drain_timeout: Duration,
    control: Arc<Control>,
    /// Watches the config file, when `[reload] watch` is on.
    _config_watcher: Option<crate::runtime::config_watch::ConfigWatcher>,
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
    let metrics = Arc::new(Registry::default());
    let mut runtime = compile_with(config, &metrics, None, &options.stages)?;
    runtime.generation = 1;
    metrics.set_generation(1);
    let raw = config.raw();
    let workers = match raw.server.workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    let mut per_worker: Vec<Vec<(Arc<str>, std::net::TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut listeners = Vec::with_capacity(runtime.plane().listeners.len());
    // The QUIC endpoints, all served by the first worker.
    let mut quic = Vec::new();
    for l in &runtime.plane().listeners {
        let inherited = options
            .inherited
            .iter()
            .position(|(n, _)| **n == *l.name)
            .map(|i| options.inherited.swap_remove(i).1);
        let sockets = match inherited {
            Some(s) if !s.is_empty() => s,
            _ => bind_all(l.bind, workers, l.backlog)?,
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
        let udp = if runtime.serves_quic(&l.name) {
            let inherited = options
                .inherited_udp
                .iter()
                .position(|(n, _)| **n == *l.name)
                .map(|i| options.inherited_udp.swap_remove(i).1);
            let socket = match inherited {
                Some(s) => s,
                None => bind_udp(addr)?,
            };
            quic.push((l.name.clone(), socket.try_clone()?));
            Some(socket)
        } else {
            None
        };
        listeners.push(BoundListener {
            name: l.name.clone(),
            bind: l.bind,
            addr,
            sockets,
            udp,
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
    if let Some(audit) = &audit {
        runtime.audit_circuits(audit);
    }
    let tracer = Tracer::start(&raw.tracing)?.map(Arc::new);
    let shared = Arc::new(Shared::new(
        Arc::clone(&runtime.edge.plane),
        access_log,
        audit,
        tracer,
    ));
    let listening = Arc::new(Listening::new(Arc::clone(&runtime.edge), shared));
    let tls_watcher =
        crate::listen::tls::reload::spawn(tls_listeners(&runtime), listening.shared.audit.clone());
    let (shutdown, _) = watch::channel(false);
    let drain_timeout = raw.server.drain_timeout.get();
    let mut handles = Vec::with_capacity(workers);
    let mut senders = Vec::with_capacity(workers);
    for (index, sockets) in per_worker.into_iter().enumerate() {
        let sockets = (
            sockets,
            if index == 0 {
                std::mem::take(&mut quic)
            } else {
                Vec::new()
            },
        );
        let listening = listening.clone();
        let rx = shutdown.subscribe();
        let (tx, cmds) = tokio::sync::mpsc::unbounded_channel();
        senders.push(tx);
        let handle = std::thread::Builder::new()
            .name(format!("rampart-worker-{index}"))
            .spawn(move || {
                crate::runtime::worker::run(index, sockets, listening, rx, drain_timeout, cmds)
            })?;
        handles.push(handle);
    }
    let control = Arc::new(Control {
        current: ArcSwap::from_pointee(runtime),
        listening,
        metrics,
        workers: senders,
        config_path: options.config_path.clone(),
        started: std::time::Instant::now(),
        state: std::sync::Mutex::new(ControlState {
            listeners,
            tls_watcher,
        }),
        upgrade: watch::channel(0).0,
    });
    let config_watcher = match (&options.config_path, &raw.reload) {
        (Some(path), r) if r.watch => {
            crate::runtime::config_watch::ConfigWatcher::spawn(path, r.debounce.get(), &control)
        }
        _ => None,
    };
    Ok(ServerHandle {
        shutdown,
        workers: handles,
        drain_timeout,
        control,
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
        audit.config_change(&trigger.into(), 1, &ChangeSummary::between(None, raw));
    }
    Ok(audit)
}

impl ServerHandle {
    fn shared(&self) -> &Shared {
        &self.control.listening.shared
    }

    /// The handle the admin API reaches the data plane through.
    #[must_use]
    pub fn admin_handle(&self) -> AdminHandle {
        AdminHandle::new(Arc::clone(&self.control))
    }

    /// The audit log, when `[audit_log]` enables it: the reload and upgrade paths record each
    /// configuration change there with [`AuditLog::config_change`].
    #[must_use]
    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.shared().audit.as_ref()
    }

    /// The OTLP span pipeline, when `[tracing]` enables it.
    #[must_use]
    pub fn tracer(&self) -> Option<&Arc<Tracer>> {
        self.shared().tracer.as_ref()
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

    /// Reloads the config file the server was started with (SIGHUP). On error the running
    /// config stays in service and the error is returned (and logged and counted).
    ///
    /// # Errors
    /// The file does not load, validate or compile, or a new listener cannot be bound.
    pub fn reload(&self, by: impl Into<Initiator>) -> Result<ReloadReport, String> {
        self.control.reload_file(&by.into())
    }

    /// Reloads from config text (as [`Self::reload`]).
    ///
    /// # Errors
    /// As [`Self::reload`].
    pub fn reload_str(&self, text: &str) -> Result<ReloadReport, String> {
        self.control.reload_str(text, &Trigger::AdminApi.into())
    }

    /// The generation of the config in service (1 at start).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.control.runtime().generation
    }

    /// The metrics in the Prometheus text format (what `GET /metrics` serves).
    #[must_use]
    pub fn metrics_text(&self) -> String {
        self.control.metrics_text()
    }

    /// Duplicates of every listening socket by listener name, for handing to a new binary.
    ///
    /// # Errors
    /// A socket cannot be duplicated (out of file descriptors).
    pub fn listening_sockets(&self) -> io::Result<Vec<(String, Vec<std::net::TcpListener>)>> {
        self.control
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
            .collect()
    }

    /// Duplicates of the HTTP/3 listeners' UDP sockets by listener name, for handing to a new
    /// binary.
    ///
    /// # Errors
    /// A socket cannot be duplicated (out of file descriptors).
    pub fn quic_sockets(&self) -> io::Result<Vec<(String, std::net::UdpSocket)>> {
        self.control
            .state()
            .listeners
            .iter()
            .filter_map(|b| b.udp.as_ref().map(|u| (b, u)))
            .map(|(b, u)| Ok((b.name.to_string(), u.try_clone()?)))
            .collect()
    }

    /// Changes each time `POST /upgrade` asks for a binary upgrade.
    #[must_use]
    pub fn upgrade_requests(&self) -> watch::Receiver<u64> {
        self.control.upgrade.subscribe()
    }

    /// Marks the server as draining (`/readyz` answers 503) ahead of a shutdown.
    pub fn drain(&self) {
        self.shared().set_draining();
    }

    /// Number of worker threads.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Client connections open now (the count `limits.max_connections` caps).
    #[must_use]
    pub fn connections_open(&self) -> usize {
        self.control.listening.conn_limits.open()
    }

    /// Client connections refused at accept by `limits.max_connections` or
    /// `limits.max_connections_per_ip` since start.
    #[must_use]
    pub fn connections_refused(&self) -> u64 {
        self.control.listening.conn_limits.refused()
    }

    /// Access log lines dropped because the writer could not keep up.
    #[must_use]
    pub fn access_log_dropped(&self) -> u64 {
        self.shared().access_log.as_ref().map_or(0, |l| l.dropped())
    }

    /// TLS counters: handshakes, failures, resumptions, early data, reloads, expiry times.
    #[must_use]
    pub fn tls_stats(&self) -> TlsStatsSnapshot {
        self.control.runtime().tls_stats().snapshot()
    }

    /// Each upstream of the running config (sorted by name) with its targets' health: state,
    /// reason, in-flight requests, latency EWMA and totals.
    #[must_use]
    pub fn upstream_statuses(&self) -> Vec<(String, Vec<rampart_upstream::TargetStatus>)> {
        let rt = self.control.runtime();
        let mut out: Vec<_> = rt
            .upstreams()
            .iter()
            .map(|(name, set)| (name.clone(), set.target_statuses()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Stops accepting, lets in-flight requests finish within the drain timeout, and waits for
    /// the workers to exit.
    pub fn shutdown(self) {
        self.shared().set_draining();
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
        if let Some(tracer) = &self.control.listening.shared.tracer {
            tracer.flush();
        }
    }
}
