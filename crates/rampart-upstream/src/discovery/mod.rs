//! Discovery: keeps a dynamic upstream's targets current from DNS (A/AAAA of a name, or SRV
//! records) or from a watched file. Each source runs as one task on the health thread and
//! hands every new list to its [`Sink`] (the upstream set, which swaps the targets as one
//! snapshot and keeps the live state of the targets that remain). A failed lookup, an empty
//! answer or a broken file keeps the last list in service and is logged with its reason.
//!
//! This module knows sources and entries only, not the set that owns it: the set implements
//! [`Sink`] where its health service lives.

mod dns;
mod file;

use std::sync::{Arc, Weak};
use std::time::Duration;

use rampart_config::ConfigError;
use rampart_config::model::Discovery as DiscoveryConfig;

use crate::members::Entry;

/// Where a discovery task delivers: the upstream whose targets it keeps current. The task
/// holds it weakly and ends once it is gone.
pub(crate) trait Sink: Send + Sync + 'static {
    /// The upstream's name, for logs.
    fn name(&self) -> &str;
    /// Takes in a new list of targets from `source` (swapped in only when it changed).
    fn apply(self: &Arc<Self>, entries: Vec<Entry>, source: &str);
    /// Discovery has answered, even if only with a failure: requests stop waiting for it.
    fn answered(&self);
    /// How many targets are in service now.
    fn target_count(&self) -> usize;
}

/// A compiled `[upstreams.discovery]`, cheap to clone into its task.
#[derive(Debug, Clone)]
pub(crate) struct Discovery(Arc<Source>);

#[derive(Debug)]
enum Source {
    Dns(dns::DnsSource),
    File(file::FileSource),
}

impl Discovery {
    /// Compiles the section; a file source is read now, so that `rampart check` and startup
    /// report a missing or broken file. Returns the targets known at once (a file's).
    pub(crate) fn new(d: &DiscoveryConfig, path: &str) -> Result<(Self, Vec<Entry>), ConfigError> {
        if let Some(file) = &d.file {
            let source = file::FileSource::new(file);
            let entries = source
                .read()
                .map_err(|msg| ConfigError::new(Some(file.span()), format!("{path}.file"), msg))?;
            return Ok((Self(Arc::new(Source::File(source))), entries));
        }
        let source = dns::DnsSource::new(d).map_err(|msg| ConfigError::new(None, path, msg))?;
        Ok((Self(Arc::new(Source::Dns(source))), Vec::new()))
    }

    /// Whether the targets are known from the start (no first lookup to wait for).
    pub(crate) fn starts_ready(&self) -> bool {
        matches!(*self.0, Source::File(_))
    }

    /// The source in words, for `rampart explain`.
    pub(crate) fn describe(&self) -> String {
        match &*self.0 {
            Source::Dns(d) => d.describe(),
            Source::File(f) => f.describe(),
        }
    }

    /// Keeps the targets of `set` current until the set is dropped.
    pub(crate) async fn run<S: Sink>(self, set: Weak<S>) {
        match &*self.0 {
            Source::Dns(d) => d.run(&set).await,
            Source::File(f) => f.run(&set).await,
        }
    }
}

/// The wait after `failures` consecutive failed refreshes: `min` doubled each time, capped at
/// `max`.
fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    min.saturating_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_refreshes_back_off_up_to_the_ceiling() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(min, max, 0), Duration::from_secs(1));
        assert_eq!(backoff(min, max, 3), Duration::from_secs(8));
        assert_eq!(backoff(min, max, 40), max);
    }
}
