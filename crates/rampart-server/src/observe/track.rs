//! Counting a worker's open connections and tunnels, so that a draining worker can wait for
//! them to finish. Each worker thread installs its [`Tracker`]; connections and tunnels
//! register with whichever tracker their thread has.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts a worker's open connections and tunnels.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    active: AtomicUsize,
    zero: Notify,
}

impl Tracker {
    /// Connections and tunnels open now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Completes once nothing is open.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.zero.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by a connection or tunnel for its lifetime.
pub(crate) struct TrackGuard(Option<Arc<Tracker>>);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0
            && t.active.fetch_sub(1, Ordering::AcqRel) == 1
        {
            t.zero.notify_waiters();
        }
    }
}

thread_local! {
    static TRACKER: RefCell<Option<Arc<Tracker>>> = const { RefCell::new(None) };
}

/// Makes `tracker` the one this thread's connections and tunnels register with.
pub(crate) fn install(tracker: Arc<Tracker>) {
    TRACKER.with_borrow_mut(|t| *t = Some(tracker));
}

/// Registers a connection or tunnel with the current worker (no-op outside a worker).
pub(crate) fn track_connection() -> TrackGuard {
    TRACKER.with_borrow(|t| {
        if let Some(t) = t {
            t.active.fetch_add(1, Ordering::AcqRel);
        }
        TrackGuard(t.clone())
    })
}
