//! The health service: one background thread with its own event loop, where every upstream set
//! runs a maintenance task (re-admission after ejection, slow-start ramps, gray-failure
//! ejection), one probe task per target when active checks are configured, and its discovery
//! task when its targets come from DNS or a file.
//!
//! The tasks hold only a [`Weak`] reference to their set: when a reload replaces the set and
//! the last request using it finishes, they end by themselves. A probe task also ends when
//! discovery removes its target. [`UpstreamSet::start_health`] starts them, and the set is the
//! [`Sink`] its discovery task delivers to.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::{FULL_SHARE, Reason, SLOW_START_SHARE, State, now_ms};
use crate::discovery::Sink;
use crate::members::{Entry, Members};
use crate::set::UpstreamSet;

/// Period of the maintenance task.
const TICK: Duration = Duration::from_millis(250);
/// Consecutive ticks a target must be a latency outlier before it is ejected.
const LATENCY_STRIKES: u8 = 2;

/// The health thread's event loop, started on first use.
fn handle() -> Option<&'static tokio::runtime::Handle> {
    static HANDLE: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name("rampart-health".to_owned())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

impl UpstreamSet {
    /// Starts the background services of this set: health (re-admission, slow start, gray
    /// failure detection, active probes) and discovery. Idempotent; the services stop once the
    /// set is dropped. Call it when a runtime goes live; [`crate::forward`] also starts it on
    /// first use.
    pub fn start_health(self: &Arc<Self>) {
        if !self.health_started.load(Ordering::Relaxed)
            && !self.health_started.swap(true, Ordering::AcqRel)
        {
            start(self);
        }
    }
}

impl Sink for UpstreamSet {
    fn name(&self) -> &str {
        &self.name
    }

    fn apply(self: &Arc<Self>, entries: Vec<Entry>, source: &str) {
        let count = entries.len();
        if let Some(change) = self.replace_members(entries) {
            tracing::info!(upstream = %self.name, source, targets = count, joined = change.fresh.len(), "upstream targets updated");
            admit_discovered(self, &change.members, &change.fresh, change.first);
        }
    }

    fn answered(&self) {
        self.discovery_answered();
    }

    fn target_count(&self) -> usize {
        self.members().len()
    }
}

/// Starts the maintenance task, the active probes and the discovery of `set`.
fn start(set: &Arc<UpstreamSet>) {
    let Some(handle) = handle() else {
        tracing::error!(upstream = %set.name, "could not start the health service thread");
        return;
    };
    handle.spawn(maintain(Arc::downgrade(set)));
    let m = set.members();
    start_probes(set, &m, 0..m.len());
    if let Some(discovery) = &set.discovery {
        handle.spawn(discovery.clone().run(Arc::downgrade(set)));
    }
}

/// Starts the active probes of targets `which` of `m` (when checks are configured).
fn start_probes(set: &Arc<UpstreamSet>, m: &Members, which: impl IntoIterator<Item = usize>) {
    let (Some(check), Some(handle)) = (&set.health_check, handle()) else {
        return;
    };
    for i in which {
        if let Some(stats) = m.stats.get(i) {
            handle.spawn(super::probe::run(
                Arc::downgrade(set),
                Arc::downgrade(stats),
                check.clone(),
            ));
        }
    }
}

/// Takes in targets that discovery added to a running upstream: they ramp up through slow
/// start (when configured) and get their probes.
fn admit_discovered(set: &Arc<UpstreamSet>, m: &Members, fresh: &[usize], first: bool) {
    let slow_start = set.health.outlier.slow_start_ms > 0 && !first;
    for &i in fresh {
        let (Some(s), Some(t)) = (m.stats.get(i), m.targets.get(i)) else {
            continue;
        };
        if slow_start {
            s.share.store(SLOW_START_SHARE, Ordering::Relaxed);
            s.transition(State::Healthy, State::SlowStart, Reason::Discovered);
        }
        tracing::info!(upstream = %set.name, target = %t.label, state = s.state().as_str(), reason = Reason::Discovered.code(), "target discovered");
    }
    start_probes(set, m, fresh.iter().copied());
}

async fn maintain(set: Weak<UpstreamSet>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(set) = set.upgrade() else { return };
        let m = set.members();
        readmit_and_ramp(&set, &m);
        eject_latency_outliers(&set, &m);
        set.health.refresh_panic(&set.name, &m);
    }
}

/// Ends ejections whose back-off is over, advances slow starts, and forgets old ejections of
/// targets that stayed healthy longer than the longest ejection.
fn readmit_and_ramp(set: &UpstreamSet, m: &Members) {
    let h = &set.health;
    let now = now_ms();
    let slow_start = h.outlier.slow_start_ms;
    for (i, s) in m.stats.iter().enumerate() {
        let label = &*m.targets[i].label;
        match s.state() {
            State::Ejected if now >= s.eject_until_ms.load(Ordering::Relaxed) => {
                let median = peer_median_ewma(m, i);
                s.ewma_us.store(median, Ordering::Relaxed);
                let to = if slow_start > 0 {
                    s.share.store(SLOW_START_SHARE, Ordering::Relaxed);
                    State::SlowStart
                } else {
                    State::Healthy
                };
                if s.transition(State::Ejected, to, Reason::EjectionExpired) {
                    tracing::info!(upstream = %set.name, target = label, from = "ejected", to = to.as_str(), reason = Reason::EjectionExpired.code(), "target re-admitted");
                }
            }
            State::SlowStart => {
                let elapsed = now.saturating_sub(s.since_ms());
                let ramp = elapsed.saturating_mul(u64::from(FULL_SHARE - SLOW_START_SHARE))
                    / slow_start.max(1);
                let share = u64::from(SLOW_START_SHARE).saturating_add(ramp);
                if share >= u64::from(FULL_SHARE) {
                    s.share.store(FULL_SHARE, Ordering::Relaxed);
                    if s.transition(State::SlowStart, State::Healthy, Reason::SlowStartDone) {
                        tracing::info!(upstream = %set.name, target = label, from = "slow_start", to = "healthy", reason = Reason::SlowStartDone.code(), "target back to full share");
                    }
                } else {
                    s.share.store(
                        u32::try_from(share).unwrap_or(FULL_SHARE),
                        Ordering::Relaxed,
                    );
                }
            }
            State::Healthy
                if s.ejections.load(Ordering::Relaxed) > 0
                    && now.saturating_sub(s.since_ms()) > h.outlier.max_ms =>
            {
                s.ejections.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// The median latency EWMA of the other targets taking requests (0 when none has a sample).
fn peer_median_ewma(m: &Members, except: usize) -> u64 {
    let mut peers: Vec<u64> = m
        .stats
        .iter()
        .enumerate()
        .filter(|(j, s)| *j != except && s.state().takes_requests() && s.ewma_us() > 0)
        .map(|(_, s)| s.ewma_us())
        .collect();
    if peers.is_empty() {
        return 0;
    }
    peers.sort_unstable();
    peers[peers.len() / 2]
}

/// Gray failure: a target whose EWMA stays above `latency_factor` × its peers' median (and
/// above the floor) for [`LATENCY_STRIKES`] ticks is ejected.
fn eject_latency_outliers(set: &UpstreamSet, m: &Members) {
    let o = &set.health.outlier;
    if !o.enabled || o.latency_factor <= 0.0 || m.len() < 2 {
        return;
    }
    for (i, s) in m.stats.iter().enumerate() {
        let ewma = s.ewma_us();
        let median = peer_median_ewma(m, i);
        #[allow(clippy::cast_precision_loss)]
        let outlier = s.state().takes_requests()
            && median > 0
            && ewma > o.latency_floor_us
            && ewma as f64 > o.latency_factor * median as f64;
        let strikes = if outlier {
            s.latency_strikes.load(Ordering::Relaxed).saturating_add(1)
        } else {
            0
        };
        s.latency_strikes.store(strikes, Ordering::Relaxed);
        if strikes >= LATENCY_STRIKES {
            s.latency_strikes.store(0, Ordering::Relaxed);
            if set
                .health
                .try_eject(&set.name, m, i, Reason::LatencyOutlier)
            {
                tracing::debug!(upstream = %set.name, target = %m.targets[i].label, ewma_us = ewma, peer_median_us = median, "latency outlier");
            }
        }
    }
}
