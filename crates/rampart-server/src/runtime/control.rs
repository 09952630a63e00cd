//! The control plane of a running server: hot reload (parse → validate → compile → swap),
//! listeners bound and closed on reload, and the listening sockets kept for a binary upgrade.
//!
//! Reloads are serialized by one mutex that the request path never touches. A config that
//! fails anywhere leaves the running one in service, and the failure is logged, counted in
//! `rampart_config_reloads_total{result="failure"}` and returned to the caller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rampart_config::Config;
use serde::Serialize;
use tokio::sync::mpsc;

use arc_swap::ArcSwap;

use crate::listen::bind::bind_all;
use crate::listen::edge::Listening;
use crate::listen::quic::bind_udp;
use crate::listen::tls::TlsListener;
use crate::observe::audit::{ChangeSummary, Initiator};
use crate::observe::metrics::Registry;
use crate::runtime::compile::{Runtime, compile_with};
use crate::runtime::status::listener_statuses;
use crate::runtime::worker::WorkerCmd;

/// One listener's listening sockets (one per worker, sharing the port with `SO_REUSEPORT`).
pub(crate) struct BoundListener {
    pub(crate) name: Arc<str>,
    /// The address in the config (port 0 stays 0 here).
    pub(crate) bind: SocketAddr,
    /// The address actually bound.
    pub(crate) addr: SocketAddr,
    /// Duplicates of the workers' sockets: handed to a new binary on upgrade, closed when a
    /// reload removes the listener.
    pub(crate) sockets: Vec<std::net::TcpListener>,
    /// The HTTP/3 listener's UDP socket (served by the first worker), handed to a new binary
    /// on upgrade.
    pub(crate) udp: Option<std::net::UdpSocket>,
}

/// What a successful reload changed.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The generation now in service.
    pub generation: u64,
    /// Listeners bound by this reload.
    pub listeners_added: Vec<String>,
    /// Listeners closed by this reload.
    pub listeners_removed: Vec<String>,
}

/// Mutable control-plane state, behind [`Control::state`].
pub(crate) struct ControlState {
    pub(crate) listeners: Vec<BoundListener>,
    pub(crate) tls_watcher: Option<crate::listen::tls::reload::Watcher>,
}

/// The control plane of one running server.
pub(crate) struct Control {
    /// The runtime in service.
    pub(crate) current: ArcSwap<Runtime>,
    /// The data plane's accept path, which serves the current runtime's edge and plane.
    pub(crate) listening: Arc<Listening>,
    pub(crate) metrics: Arc<Registry>,
    pub(crate) workers: Vec<mpsc::UnboundedSender<WorkerCmd>>,
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) started: Instant,
    pub(crate) state: Mutex<ControlState>,
    /// Bumped by `POST /upgrade`; the binary watches it and starts the new process.
    pub(crate) upgrade: tokio::sync::watch::Sender<u64>,
}

impl Control {
    /// The runtime in service.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads from the config file the server was started with.
    pub(crate) fn reload_file(&self, by: &Initiator) -> Result<ReloadReport, String> {
        let Some(path) = &self.config_path else {
            return self.refused(by, "the server was not started from a config file".into());
        };
        match rampart_config::load_file(path) {
            Ok(config) => self.apply(&config, by),
            Err(d) => self.refused(by, d.to_string()),
        }
    }

    /// Reloads from config text (tests, embedding).
    pub(crate) fn reload_str(&self, text: &str, by: &Initiator) -> Result<ReloadReport, String> {
        match rampart_config::load_str(text, "<reload>") {
            Ok(config) => self.apply(&config, by),
            Err(d) => self.refused(by, d.to_string()),
        }
    }

    fn refused(&self, by: &Initiator, error: String) -> Result<ReloadReport, String> {
        self.metrics.reload_result(None);
        tracing::error!(trigger = by.trigger.as_str(), peer = %by.peer_text(), error = %error, "config reload refused: the running config stays in service");
        if let Some(audit) = &self.listening.shared.audit {
            audit.config_rejected(by, &error);
        }
        Err(error)
    }

    /// Compiles `config` against the running snapshot, binds new listeners, swaps, closes
    /// removed listeners.
    fn apply(&self, config: &Config, by: &Initiator) -> Result<ReloadReport, String> {
        let mut state = self.state();
        let current = self.runtime();
        let mut next = match compile_with(config, &self.metrics, Some(&current), &current.stages) {
            Ok(rt) => rt,
            Err(d) => return self.refused(by, d.to_string()),
        };
        let (added, removed) = match self.bind_new(&state, &next) {
            Ok(diff) => diff,
            Err(e) => return self.refused(by, e),
        };
        let quic_on = match bind_quic_on(&state, &next) {
            Ok(bound) => bound,
            Err(e) => return self.refused(by, e),
        };
        next.generation = current.generation + 1;
        let generation = next.generation;
        let report = ReloadReport {
            generation,
            listeners_added: added.iter().map(|b| b.name.to_string()).collect(),
            listeners_removed: removed.clone(),
        };
        // Removed listeners stop accepting first, so no connection is accepted for a
        // listener the new snapshot no longer has.
        for name in &removed {
            self.broadcast(|| WorkerCmd::Remove(Arc::from(name.as_str())));
        }
        state
            .listeners
            .retain(|b| !removed.iter().any(|r| **r == *b.name));
        let tls_changed = tls_set_changed(&current, &next);
        let summary = ChangeSummary::between(Some(current.config.raw()), config.raw());
        let next = Arc::new(next);
        self.current.store(Arc::clone(&next));
        self.listening.swap(Arc::clone(&next.edge));
        self.toggle_quic(&mut state, &next, quic_on);
        for bound in added {
            if let Some(udp) = &bound.udp {
                self.hand_quic(&bound.name, udp);
            }
            for (i, socket) in bound.sockets.iter().enumerate() {
                match socket.try_clone() {
                    Ok(s) => {
                        if let Some(w) = self.workers.get(i % self.workers.len().max(1)) {
                            let _ = w.send(WorkerCmd::Add(bound.name.clone(), s));
                        }
                    }
                    Err(e) => {
                        tracing::error!(listener = %bound.name, error = %e, "cannot hand socket to worker");
                    }
                }
            }
            state.listeners.push(bound);
        }
        let bound: Vec<(String, SocketAddr)> = state
            .listeners
            .iter()
            .map(|b| (b.name.to_string(), b.addr))
            .collect();
        for l in listener_statuses(&next, &bound) {
            if report.listeners_added.contains(&l.name) {
                tracing::info!(listener = %l.name, "listening on {}", l.describe());
            }
        }
        if tls_changed {
            state.tls_watcher = crate::listen::tls::reload::spawn(
                tls_listeners(&next),
                self.listening.shared.audit.clone(),
            );
        }
        let raw = config.raw();
        let listeners: Vec<&str> = raw.listeners.iter().map(|l| l.name.as_str()).collect();
        let routes: Vec<&str> = raw.routes.iter().map(|r| r.name.as_str()).collect();
        let upstreams: Vec<&str> = raw.upstreams.iter().map(|u| u.name.as_str()).collect();
        self.metrics.retain(&listeners, &routes, &upstreams);
        self.metrics.reload_result(Some(generation));
        if let Some(audit) = &self.listening.shared.audit {
            audit.config_change(by, generation, &summary);
            next.audit_circuits(audit);
        }
        tracing::info!(
            trigger = by.trigger.as_str(),
            peer = %by.peer_text(),
            generation,
            added = %report.listeners_added.join(", "),
            removed = %report.listeners_removed.join(", "),
            "config reloaded"
        );
        Ok(report)
    }

    /// Binds the listeners `next` has and the running server does not (or has on another
    /// address); returns them and the names of the listeners to close.
    fn bind_new(
        &self,
        state: &ControlState,
        next_rt: &Runtime,
    ) -> Result<(Vec<BoundListener>, Vec<String>), String> {
        let next = next_rt.plane();
        let keeps = |b: &BoundListener| {
            next.listeners
                .iter()
                .any(|l| l.name == b.name && l.bind == b.bind)
        };
        let removed: Vec<String> = state
            .listeners
            .iter()
            .filter(|b| !keeps(b))
            .map(|b| b.name.to_string())
            .collect();
        let mut added = Vec::new();
        for l in &next.listeners {
            let kept = state
                .listeners
                .iter()
                .any(|b| b.name == l.name && b.bind == l.bind);
            if kept {
                continue;
            }
            let sockets = bind_all(l.bind, self.workers.len(), l.backlog)
                .map_err(|e| format!("listener {:?}: {e}", l.name))?;
            let addr = sockets
                .first()
                .and_then(|s| s.local_addr().ok())
                .unwrap_or(l.bind);
            let udp = if next_rt.serves_quic(&l.name) {
                Some(bind_udp(addr).map_err(|e| format!("listener {:?}: {e}", l.name))?)
            } else {
                None
            };
            added.push(BoundListener {
                name: l.name.clone(),
                bind: l.bind,
                addr,
                sockets,
                udp,
            });
        }
        Ok((added, removed))
    }

    /// Serves the UDP sockets `on` bound for kept listeners that `next` turns HTTP/3 on, and
    /// stops the QUIC side of kept listeners it turns HTTP/3 off (their connections get
    /// GOAWAY and finish).
    fn toggle_quic(
        &self,
        state: &mut ControlState,
        next: &Runtime,
        mut on: Vec<(Arc<str>, std::net::UdpSocket)>,
    ) {
        for bound in &mut state.listeners {
            if let Some(i) = on.iter().position(|(n, _)| *n == bound.name) {
                let (_, udp) = on.swap_remove(i);
                self.hand_quic(&bound.name, &udp);
                bound.udp = Some(udp);
            } else if bound.udp.is_some() && !next.serves_quic(&bound.name) {
                if let Some(w) = self.workers.first() {
                    let _ = w.send(WorkerCmd::RemoveQuic(bound.name.clone()));
                }
                bound.udp = None;
            }
        }
    }

    /// Hands a QUIC listener's UDP socket to the first worker.
    fn hand_quic(&self, name: &Arc<str>, udp: &std::net::UdpSocket) {
        match udp.try_clone() {
            Ok(s) => {
                if let Some(w) = self.workers.first() {
                    let _ = w.send(WorkerCmd::AddQuic(name.clone(), s));
                }
            }
            Err(e) => {
                tracing::error!(listener = %name, error = %e, "cannot hand the UDP socket to a worker");
            }
        }
    }

    fn broadcast(&self, cmd: impl Fn() -> WorkerCmd) {
        for w in &self.workers {
            let _ = w.send(cmd());
        }
    }

    /// Asks the running binary to start its successor (see `rampart upgrade`).
    pub(crate) fn request_upgrade(&self) -> Result<(), String> {
        if self.upgrade.receiver_count() == 0 {
            return Err("binary upgrade is only available under `rampart run`".into());
        }
        self.upgrade.send_modify(|n| *n += 1);
        Ok(())
    }

    /// The metrics in the Prometheus text format.
    pub(crate) fn metrics_text(&self) -> String {
        let runtime = self.runtime();
        let redis = runtime
            .prepared
            .iter()
            .find_map(|p| p.get::<rampart_filters::RateLimiters>())
            .and_then(rampart_filters::RateLimiters::redis_health);
        let mut text =
            crate::observe::metrics::expo::encode(&self.metrics, runtime.upstreams(), redis);
        if let Some(cache) = runtime.cache() {
            text.push_str(&cache.metrics_text());
        }
        text
    }

    /// Marks the server as draining (`/readyz` answers 503).
    pub(crate) fn drain(&self) {
        self.listening.shared.set_draining();
    }

    /// Each listener's name and bound address.
    pub(crate) fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.state()
            .listeners
            .iter()
            .map(|b| (b.name.to_string(), b.addr))
            .collect()
    }
}

/// Binds the UDP sockets of the kept listeners on which `next` turns HTTP/3 on. The port may
/// still be held while the QUIC connections of an earlier `http3` finish closing: the reload
/// is then refused and can be tried again.
fn bind_quic_on(
    state: &ControlState,
    next: &Runtime,
) -> Result<Vec<(Arc<str>, std::net::UdpSocket)>, String> {
    state
        .listeners
        .iter()
        .filter(|b| b.udp.is_none() && next.serves_quic(&b.name))
        .map(|b| {
            bind_udp(b.addr)
                .map(|udp| (b.name.clone(), udp))
                .map_err(|e| format!("listener {:?}: {e}", b.name))
        })
        .collect()
}

/// The TLS listeners of `rt`, for the certificate watcher.
pub(crate) fn tls_listeners(rt: &Runtime) -> Vec<Arc<TlsListener>> {
    rt.edge
        .listeners
        .iter()
        .filter_map(|l| l.tls.clone())
        .collect()
}

fn tls_set_changed(a: &Runtime, b: &Runtime) -> bool {
    let a = tls_listeners(a);
    let b = tls_listeners(b);
    a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| !Arc::ptr_eq(x, y))
}
