//! `[reload] watch`: reloads the config file when it changes on disk, once the writes have
//! been quiet for the debounce time (editors and `cp` write in steps; an atomic rename is seen
//! because the file's directory is watched).

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};

use crate::observe::audit::Trigger;
use crate::runtime::control::Control;

/// The running watcher; dropping it stops its thread.
pub(crate) struct ConfigWatcher {
    _inner: notify::RecommendedWatcher,
}

impl ConfigWatcher {
    /// Watches `path`; `None` (logged) when the platform watcher cannot start.
    pub(crate) fn spawn(path: &Path, debounce: Duration, control: &Arc<Control>) -> Option<Self> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = path.parent()?.to_path_buf();
        let name: OsString = path.file_name()?.to_owned();
        let (tx, rx) = mpsc::channel::<()>();
        let watched = name.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && event.paths.iter().any(|p| p.file_name() == Some(&watched))
            {
                let _ = tx.send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config file: reload with SIGHUP");
                return None;
            }
        };
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory");
            return None;
        }
        let control = Arc::clone(control);
        std::thread::Builder::new()
            .name("rampart-config-watch".into())
            .spawn(move || run(&rx, debounce, &control))
            .ok()?;
        Some(Self { _inner: watcher })
    }
}

fn run(rx: &mpsc::Receiver<()>, debounce: Duration, control: &Control) {
    while rx.recv().is_ok() {
        loop {
            match rx.recv_timeout(debounce) {
                Ok(()) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        // Errors are logged, counted and audited by the reload itself.
        let _ = control.reload_file(&Trigger::FileWatch.into());
    }
}
