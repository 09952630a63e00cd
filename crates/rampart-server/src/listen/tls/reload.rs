//! Certificate hot reload: a background thread watches the directories of every certificate,
//! key, OCSP, CA and CRL file (so atomic renames and symlink swaps are seen) and, after a short
//! quiet period, reloads what changed. A certificate is swapped in its `ArcSwap` slot; a new CA
//! bundle or CRL rebuilds the listener's config with the same session cache and ticket keys.
//! Handshakes in progress and established connections keep what they started with. A broken
//! new file keeps the old one in service, is logged, and counts as a reload failure.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};

use super::TlsListener;
use super::{certs, ocsp};
use crate::observe::audit::AuditLog;

/// How long the files must be quiet before a reload (editors and `cp` write in steps).
const SETTLE: Duration = Duration::from_millis(250);

/// The running watcher; dropping it stops the thread.
pub(crate) struct Watcher {
    _inner: notify::RecommendedWatcher,
    _thread: JoinHandle<()>,
}

fn absolute(path: &str) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path))
}

/// Starts watching the files of `listeners`; `None` when there is nothing to watch or the
/// platform watcher cannot start (logged: certificates then change only with a restart).
/// Every reload, put in service or refused, is written to `audit` when there is one.
pub(crate) fn spawn(
    listeners: Vec<Arc<TlsListener>>,
    audit: Option<Arc<AuditLog>>,
) -> Option<Watcher> {
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for l in &listeners {
        for f in l.files() {
            if let Some(dir) = absolute(&f).parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
    }
    if dirs.is_empty() {
        return None;
    }
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                for p in event.paths {
                    let _ = tx.send(p);
                }
            }
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch certificate files: changes need a restart");
            return None;
        }
    };
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch certificate directory");
        }
    }
    let thread = std::thread::Builder::new()
        .name("rampart-tls-reload".to_owned())
        .spawn(move || run(&rx, &listeners, audit.as_deref()))
        .ok()?;
    Some(Watcher {
        _inner: watcher,
        _thread: thread,
    })
}

fn run(rx: &mpsc::Receiver<PathBuf>, listeners: &[Arc<TlsListener>], audit: Option<&AuditLog>) {
    let mut trust: HashMap<String, Vec<u8>> = HashMap::new();
    for l in listeners {
        for f in l.files() {
            if l.is_trust_file(&f) {
                trust.insert(f.clone(), std::fs::read(&f).unwrap_or_default());
            }
        }
    }
    while let Ok(first) = rx.recv() {
        let mut changed_dirs: HashSet<PathBuf> = HashSet::new();
        changed_dirs.extend(first.parent().map(Path::to_path_buf));
        // Wait for the writes to settle, collecting everything that changed meanwhile.
        loop {
            match rx.recv_timeout(SETTLE) {
                Ok(p) => {
                    changed_dirs.extend(p.parent().map(Path::to_path_buf));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        for l in listeners {
            let touched = l.files().iter().any(|f| {
                absolute(f)
                    .parent()
                    .is_some_and(|d| changed_dirs.contains(d))
            });
            if touched {
                reload_listener(l, &mut trust, audit);
            }
        }
    }
}

/// Reloads whatever changed in `l`'s files. Public to the crate for tests and a future
/// `rampart reload`.
pub(crate) fn reload_listener(
    l: &TlsListener,
    trust: &mut HashMap<String, Vec<u8>>,
    audit: Option<&AuditLog>,
) {
    let record = |file: &str, error: Option<&str>| {
        if let Some(audit) = audit {
            audit.tls_reload(&l.name, file, error);
        }
    };
    for slot in &l.resolver.slots {
        match certs::load_certified_key(
            &slot.cert_path,
            &slot.key_path,
            slot.ocsp_path.as_deref(),
            l.provider(),
        ) {
            Ok(loaded) => {
                let current = slot.key.load();
                let cert_changed = current.cert != loaded.key.cert;
                let ocsp_file = slot.ocsp_path.as_deref().unwrap_or_default();
                match &loaded.staple {
                    certs::Staple::Refused(why) => {
                        l.stats.ocsp_refused();
                        tracing::error!(listener = %l.name, cert = %slot.cert_path, ocsp = ocsp_file, error = %why, "OCSP response refused: not stapled");
                        if !cert_changed {
                            // Same certificate: the response already stapled stays.
                            record(ocsp_file, Some(why));
                            continue;
                        }
                    }
                    certs::Staple::Stapled(checked) if current.ocsp != loaded.key.ocsp => {
                        tracing::info!(listener = %l.name, cert = %slot.cert_path, ocsp = ocsp_file, "OCSP response reloaded");
                        ocsp::log_stapled(&l.name, &slot.cert_path, checked);
                    }
                    _ => {}
                }
                if !cert_changed && current.ocsp == loaded.key.ocsp {
                    continue;
                }
                let stapled = loaded.key.ocsp.is_some();
                slot.store(loaded.key, loaded.not_after);
                l.stats
                    .set_expiry(&format!("{}:{}", l.name, slot.cert_path), loaded.not_after);
                l.stats.reloaded();
                if cert_changed {
                    tracing::info!(listener = %l.name, cert = %slot.cert_path, expires = %certs::fmt_time(loaded.not_after), stapled, "certificate reloaded");
                    record(&slot.cert_path, None);
                } else {
                    record(ocsp_file, None);
                }
            }
            Err(e) => {
                l.stats.reload_failed();
                tracing::error!(listener = %l.name, cert = %slot.cert_path, error = %e, "certificate reload failed: the previous certificate stays in service");
                record(&slot.cert_path, Some(&e));
            }
        }
    }
    let mut trust_changed = Vec::new();
    for f in l.files() {
        if !l.is_trust_file(&f) {
            continue;
        }
        let now = std::fs::read(&f).unwrap_or_default();
        if trust.get(&f) != Some(&now) {
            trust.insert(f.clone(), now);
            trust_changed.push(f);
        }
    }
    if !trust_changed.is_empty() {
        let files = trust_changed.join(", ");
        match l.rebuild() {
            Ok(()) => {
                l.stats.reloaded();
                tracing::info!(listener = %l.name, files = %files, "client CA / CRL reloaded");
                record(&files, None);
            }
            Err(e) => {
                l.stats.reload_failed();
                tracing::error!(listener = %l.name, error = %e, "client CA / CRL reload failed: the previous ones stay in service");
                record(&files, Some(&e));
            }
        }
    }
}
