//! What became of mirrored (shadow) requests, per route and shadow upstream:
//! `rampart_mirror_requests_total{route, upstream, result}`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Registry;

/// The results a copy can have: its answer's status class, or why it got none.
const RESULTS: [&str; 8] = [
    "1xx", "2xx", "3xx", "4xx", "5xx", "failed", "dropped", "skipped",
];

/// Why a copy got no answer, or was never sent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MirrorMiss {
    /// It failed: no target, connect error, reset, timeout.
    Failed = 5,
    /// Over `max_concurrent`: not sent.
    Dropped = 6,
    /// Its request body was larger than `max_body`, or streamed: not sent.
    Skipped = 7,
}

/// The results of one route's copies to one shadow upstream.
#[derive(Debug, Default)]
pub(crate) struct MirrorCounts {
    by_result: [AtomicU64; RESULTS.len()],
}

impl MirrorCounts {
    /// A copy was answered with `status`.
    pub(crate) fn answered(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_result[class].fetch_add(1, Ordering::Relaxed);
    }

    /// A copy got no answer, or was not sent.
    pub(crate) fn missed(&self, why: MirrorMiss) {
        self.by_result[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every result label with its count so far.
    pub(super) fn results(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RESULTS
            .iter()
            .zip(&self.by_result)
            .map(|(result, n)| (*result, n.load(Ordering::Relaxed)))
    }
}

impl Registry {
    /// The counts of route `route`'s copies to `upstream`.
    pub(crate) fn mirror(&self, route: &str, upstream: &str) -> std::sync::Arc<MirrorCounts> {
        let key = (route.to_owned(), upstream.to_owned());
        std::sync::Arc::clone(self.tables().mirrors.entry(key).or_default())
    }
}
