//! The file source: a TOML or JSON file (by extension) that lists targets, watched for changes
//! (its directory, so editors' and orchestrators' atomic renames are seen) and re-read now and
//! then in case a change notification was missed (network and bind mounts).
//!
//! ```toml
//! targets = ["10.0.0.1:8080", "10.0.0.2:8080"]
//! [weights]
//! "10.0.0.2:8080" = 3
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use serde::Deserialize;

use super::Sink;
use crate::members::Entry;

/// Re-read the file this often even without a change notification.
const POLL: Duration = Duration::from_secs(10);
/// Wait this long after a notification for the writes to settle.
const SETTLE: Duration = Duration::from_millis(50);

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    targets: Vec<String>,
    #[serde(default)]
    weights: HashMap<String, u32>,
}

/// A watched target list.
#[derive(Debug)]
pub(super) struct FileSource {
    path: PathBuf,
}

impl FileSource {
    pub(super) fn new(path: &str) -> Self {
        Self {
            path: PathBuf::from(path),
        }
    }

    pub(super) fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    /// Reads and checks the file: every target must parse and the list must not be empty.
    pub(super) fn read(&self) -> Result<Vec<Entry>, String> {
        let shown = self.path.display();
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read the target file {shown}: {e}"))?;
        parse(&self.path, &text).map_err(|e| format!("target file {shown}: {e}"))
    }

    pub(super) async fn run<S: Sink>(&self, set: &Weak<S>) {
        let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel::<()>();
        let _watcher = watch(&self.path, tx);
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                _ = changed.recv() => tokio::time::sleep(SETTLE).await,
                () = tokio::time::sleep(POLL) => {}
            }
            while changed.try_recv().is_ok() {}
            let Some(set) = set.upgrade() else { return };
            match self.read() {
                Ok(entries) => {
                    last_error = None;
                    set.apply(entries, "file");
                }
                Err(why) => {
                    if last_error.as_ref() != Some(&why) {
                        tracing::warn!(upstream = %set.name(), error = %why, "target file not used; keeping the last targets");
                    }
                    last_error = Some(why);
                }
            }
        }
    }
}

/// Parses a target file: JSON when the name ends in `.json`, TOML otherwise.
fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, String> {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let file: TargetFile = if json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        toml::from_str(text).map_err(|e| e.message().to_owned())?
    };
    if file.targets.is_empty() {
        return Err("`targets` is empty".to_owned());
    }
    let mut entries = Vec::with_capacity(file.targets.len());
    for t in &file.targets {
        let mut e = Entry::parse(t)?;
        if entries.iter().any(|x: &Entry| x.label == e.label) {
            return Err(format!("target {t:?} is listed twice"));
        }
        if let Some(&w) = file.weights.get(t) {
            if !(1..=1000).contains(&w) {
                return Err(format!("weight of {t:?}: a weight is between 1 and 1000"));
            }
            e.weight = w;
        }
        entries.push(e);
    }
    if let Some(stray) = file.weights.keys().find(|k| !file.targets.contains(k)) {
        return Err(format!("weights: {stray:?} is not one of the targets"));
    }
    Ok(entries)
}

/// Watches the file's directory; `None` (logged) when the platform watcher cannot start, in
/// which case the periodic re-read still picks changes up.
fn watch(
    path: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = path.parent()?.to_path_buf();
    let name = Arc::new(path.file_name()?.to_owned());
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = tx.send(());
        }
    };
    let mut watcher = notify::recommended_watcher(handler)
        .inspect_err(
            |e| tracing::warn!(error = %e, "cannot watch target files; re-reading them every 10 s"),
        )
        .ok()?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .inspect_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the target file's directory"))
        .ok()?;
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(r: Result<Vec<Entry>, String>) -> Vec<(String, u32)> {
        r.unwrap()
            .into_iter()
            .map(|e| (e.label, e.weight))
            .collect()
    }

    #[test]
    fn toml_and_json_lists_with_weights_parse() {
        let toml =
            "targets = [\"127.0.0.1:1\", \"api.internal:80\"]\n[weights]\n\"127.0.0.1:1\" = 3\n";
        assert_eq!(
            labels(parse(Path::new("t.toml"), toml)),
            [
                ("127.0.0.1:1".to_owned(), 3),
                ("api.internal:80".to_owned(), 1)
            ]
        );
        let json =
            r#"{"targets": ["[::1]:8080", "unix:/run/app.sock"], "weights": {"[::1]:8080": 2}}"#;
        assert_eq!(
            labels(parse(Path::new("t.JSON"), json)),
            [
                ("[::1]:8080".to_owned(), 2),
                ("unix:/run/app.sock".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn broken_lists_are_refused_with_a_reason() {
        for (name, text, want) in [
            ("t.json", "{\"targets\": [\"127.0.0.1:1\"", "EOF"),
            ("t.toml", "targets = []", "empty"),
            ("t.toml", "targets = [\"127.0.0.1\"]", "invalid target"),
            (
                "t.toml",
                "targets = [\"127.0.0.1:1\", \"127.0.0.1:1\"]",
                "twice",
            ),
            (
                "t.toml",
                "targets = [\"127.0.0.1:1\"]\nweights = { \"127.0.0.1:2\" = 2 }",
                "not one of",
            ),
            (
                "t.toml",
                "targets = [\"127.0.0.1:1\"]\nweights = { \"127.0.0.1:1\" = 0 }",
                "between 1 and 1000",
            ),
            (
                "t.toml",
                "targets = [\"127.0.0.1:1\"]\nport = 3",
                "unknown field",
            ),
        ] {
            let err = parse(Path::new(name), text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_missing_file_names_itself() {
        let err = FileSource::new("/nonexistent/targets.toml")
            .read()
            .unwrap_err();
        assert!(err.contains("/nonexistent/targets.toml"), "{err}");
    }
}
