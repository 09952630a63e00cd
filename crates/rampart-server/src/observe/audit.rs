//! The audit log: one JSON line per configuration change and per class of security decision,
//! separate from the access log and never one line per request.
//!
//! Configuration changes are written by whoever applies a config: [`AuditLog::config_change`]
//! at startup (here) and from the reload and upgrade paths. Security decisions are counted per
//! reason with atomics on the request path ([`AuditLog::security`]); the first of each reason
//! in an interval is written at once with an example request, and the writer thread summarizes
//! the rest with a count when the interval ends.

mod diff;

use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use rampart_config::model::AuditLogSection;
use rampart_core::{ErrorKind, RequestCtx};
use serde::Serialize;
use serde_json::json;

pub use diff::{ChangeSummary, NameDiff};

use crate::observe::timefmt;

/// Lines buffered between writers and the writer thread (config changes and first decisions
/// are rare; this only guards against a stuck disk).
const QUEUE: usize = 1024;

/// What applied a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The process started with it.
    Startup,
    /// SIGHUP asked for a reload.
    Sighup,
    /// The config file changed on disk.
    FileWatch,
    /// `POST /reload` on the admin API.
    AdminApi,
    /// A new binary took over the listening sockets.
    Upgrade,
}

/// Who asked for a configuration change: the trigger, and where known the peer that asked
/// (the admin API's client) and its identity (set once the admin API names its callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiator {
    /// What kind of event applied the config.
    pub trigger: Trigger,
    /// The address of the client that asked, for requests over the admin API.
    pub peer: Option<SocketAddr>,
    /// The authenticated name of who asked, when the caller is known by name.
    pub identity: Option<String>,
}

impl Initiator {
    /// A change asked for over the admin API by the client at `peer`.
    #[must_use]
    pub const fn admin(peer: SocketAddr) -> Self {
        Self {
            trigger: Trigger::AdminApi,
            peer: Some(peer),
            identity: None,
        }
    }

    /// The peer for a log line: its address, or `-` when the change did not come over the
    /// network.
    #[must_use]
    pub fn peer_text(&self) -> String {
        self.peer
            .map_or_else(|| "-".to_owned(), |peer| peer.to_string())
    }

    /// Adds this initiator's fields to an audit line.
    fn annotate(&self, line: &mut serde_json::Value) {
        line["trigger"] = json!(self.trigger);
        if let Some(peer) = self.peer {
            line["peer"] = json!(peer.to_string());
        }
        if let Some(identity) = &self.identity {
            line["identity"] = json!(identity);
        }
    }
}

impl From<Trigger> for Initiator {
    fn from(trigger: Trigger) -> Self {
        Self {
            trigger,
            peer: None,
            identity: None,
        }
    }
}

impl Trigger {
    /// The name logs and the audit log use: `startup`, `sighup`, `file_watch`, `admin_api`,
    /// `upgrade`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Sighup => "sighup",
            Self::FileWatch => "file_watch",
            Self::AdminApi => "admin_api",
            Self::Upgrade => "upgrade",
        }
    }
}

/// Refusals that are security decisions, each with its slot in the counters.
const AUDITED: &[ErrorKind] = &[
    ErrorKind::IpDenied,
    ErrorKind::GeoDenied,
    ErrorKind::RateLimited,
    ErrorKind::CorsRejected,
    ErrorKind::ClientCertRejected,
    ErrorKind::MisdirectedRequest,
    ErrorKind::TooEarly,
    ErrorKind::AmbiguousFraming,
    ErrorKind::InvalidHeader,
    ErrorKind::HostMismatch,
    ErrorKind::BodyTooSlow,
    ErrorKind::DecompressionLimit,
    ErrorKind::ProxyProtocolMissing,
    ErrorKind::ProxyProtocolInvalid,
    ErrorKind::Unauthenticated,
    ErrorKind::AuthForbidden,
];

/// The slot of `kind` in [`AUDITED`], if it is a security decision.
fn slot(kind: ErrorKind) -> Option<usize> {
    AUDITED.iter().position(|k| *k == kind)
}

/// Per-reason counts of the current interval.
#[derive(Debug, Default)]
struct Counters {
    count: [AtomicU64; AUDITED.len()],
    reported: [AtomicBool; AUDITED.len()],
}

/// A running audit log.
#[derive(Debug)]
pub struct AuditLog {
    tx: SyncSender<String>,
    counters: Arc<Counters>,
    dropped: AtomicU64,
}

impl AuditLog {
    /// Opens the log described by `cfg`, or `None` when it is disabled.
    ///
    /// # Errors
    /// The log file cannot be opened for appending, or the writer thread not started.
    pub fn open(cfg: &AuditLogSection) -> io::Result<Option<Self>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let out = crate::observe::access_log::open_sink(&cfg.path)?;
        let (tx, rx) = sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            rx,
            out: BufWriter::new(out),
            counters: counters.clone(),
            interval: cfg.security_interval.get(),
        };
        std::thread::Builder::new()
            .name("rampart-audit-log".into())
            .spawn(move || writer.run())?;
        Ok(Some(Self {
            tx,
            counters,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Records that a configuration was applied: who applied it, its generation, and what
    /// changed by name (see [`ChangeSummary::between`]).
    pub fn config_change(&self, by: &Initiator, generation: u64, summary: &ChangeSummary) {
        let mut line = json!({
            "ts": now(),
            "event": "config_change",
        });
        by.annotate(&mut line);
        line["generation"] = json!(generation);
        line["changes"] = json!(summary);
        self.send(&line);
    }

    /// Records that a configuration was refused (the previous one keeps serving).
    pub fn config_rejected(&self, by: &Initiator, error: &str) {
        let mut line = json!({
            "ts": now(),
            "event": "config_rejected",
        });
        by.annotate(&mut line);
        line["error"] = json!(error);
        self.send(&line);
    }

    /// Records a certificate (or client CA / CRL) reload of listener `listener` from `file`:
    /// put in service (`error` is `None`) or refused, the previous files staying in service.
    pub fn tls_reload(&self, listener: &str, file: &str, error: Option<&str>) {
        self.send(&json!({
            "ts": now(),
            "event": "certificate_reload",
            "result": if error.is_none() { "ok" } else { "failed" },
            "listener": listener,
            "file": file,
            "error": error,
        }));
    }

    /// Records a transition of an upstream's circuit (closed, open, half open) and why.
    pub fn circuit_change(&self, upstream: &str, from: &str, to: &str, reason: &str) {
        self.send(&json!({
            "ts": now(),
            "event": "circuit_change",
            "upstream": upstream,
            "from": from,
            "to": to,
            "reason": reason,
        }));
    }

    /// Counts a refused request if its reason is a security decision; the first of each reason
    /// in an interval is written at once. Two relaxed atomic operations per audited refusal,
    /// nothing for other requests.
    pub fn security(&self, ctx: &RequestCtx) {
        let Some(i) = ctx.reason.and_then(slot) else {
            return;
        };
        self.counters.count[i].fetch_add(1, Ordering::Relaxed);
        if self.counters.reported[i].swap(true, Ordering::Relaxed) {
            return;
        }
        self.send(&json!({
            "ts": now(),
            "event": "security_decision",
            "reason": AUDITED[i].code(),
            "status": AUDITED[i].status().as_u16(),
            "example": {
                "client_ip": ctx.client_ip.to_string(),
                "listener": &*ctx.conn.listener,
                "route": ctx.route.as_deref(),
                "method": ctx.method.as_str(),
                "request_id": ctx.request_id.to_str().unwrap_or(""),
                "detail": ctx.detail.as_deref(),
            },
        }));
    }

    /// Lines dropped because the writer could not keep up.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, value: &serde_json::Value) {
        let mut line = value.to_string();
        line.push('\n');
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn now() -> String {
    timefmt::rfc3339_millis(SystemTime::now())
}

/// The writer thread: writes lines as they come and the interval summaries when due.
struct Writer {
    rx: Receiver<String>,
    out: BufWriter<Box<dyn Write + Send>>,
    counters: Arc<Counters>,
    interval: Duration,
}

impl Writer {
    fn run(mut self) {
        let mut due = Instant::now() + self.interval;
        loop {
            let wait = due.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(line) => {
                    let _ = self.out.write_all(line.as_bytes());
                    let _ = self.out.flush();
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.summarize();
                    due = Instant::now() + self.interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.summarize();
                    return;
                }
            }
        }
    }

    /// One line per reason seen in the interval, then a fresh interval.
    fn summarize(&mut self) {
        for (i, kind) in AUDITED.iter().enumerate() {
            let count = self.counters.count[i].swap(0, Ordering::Relaxed);
            self.counters.reported[i].store(false, Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let line = json!({
                "ts": now(),
                "event": "security_summary",
                "reason": kind.code(),
                "status": kind.status().as_u16(),
                "count": count,
                "interval_seconds": self.interval.as_secs_f64(),
            });
            let _ = writeln!(self.out, "{line}");
        }
        let _ = self.out.flush();
    }
}
