//! The health service: one background thread with its own event loop, where every upstream set
//! runs a maintenance task (re-admission after ejection, slow-start ramps, gray-failure
//! ejection) and one probe task per target when active checks are configured.
//!
//! The tasks hold only a [`Weak`] reference to their set: when a reload replaces the set and
//! the last request using it finishes, they end by themselves.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::{FULL_SHARE, Reason, SLOW_START_SHARE, State, now_ms};
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

/// Starts the maintenance task and the active probes of `set`.
pub(crate) fn start(set: &Arc<UpstreamSet>) {
    let Some(handle) = handle() else {
        tracing::error!(upstream = %set.name, "could not start the health service thread");
        return;
    };
    handle.spawn(maintain(Arc::downgrade(set)));
    if let Some(check) = &set.health_check {
        for i in 0..set.targets.len() {
            handle.spawn(super::probe::run(Arc::downgrade(set), i, check.clone()));
        }
    }
}

async fn maintain(set: Weak<UpstreamSet>) {
    let mut strikes: Vec<u8> = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(set) = set.upgrade() else { return };
        strikes.resize(set.targets.len(), 0);
        readmit_and_ramp(&set);
        eject_latency_outliers(&set, &mut strikes);
        set.health.refresh_panic(&set.name);
    }
}

/// Ends ejections whose back-off is over, advances slow starts, and forgets old ejections of
/// targets that stayed healthy longer than the longest ejection.
fn readmit_and_ramp(set: &UpstreamSet) {
    let h = &set.health;
    let now = now_ms();
    let slow_start = h.outlier.slow_start_ms;
    for (i, s) in h.stats.iter().enumerate() {
        let label = &*set.targets[i].label;
        match s.state() {
            State::Ejected if now >= s.eject_until_ms.load(Ordering::Relaxed) => {
                let median = peer_median_ewma(set, i);
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
fn peer_median_ewma(set: &UpstreamSet, except: usize) -> u64 {
    let mut peers: Vec<u64> = set
        .health
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
fn eject_latency_outliers(set: &UpstreamSet, strikes: &mut [u8]) {
    let o = &set.health.outlier;
    if !o.enabled || o.latency_factor <= 0.0 || set.targets.len() < 2 {
        return;
    }
    for (i, s) in set.health.stats.iter().enumerate() {
        let ewma = s.ewma_us();
        let median = peer_median_ewma(set, i);
        #[allow(clippy::cast_precision_loss)]
        let outlier = s.state().takes_requests()
            && median > 0
            && ewma > o.latency_floor_us
            && ewma as f64 > o.latency_factor * median as f64;
        strikes[i] = if outlier {
            strikes[i].saturating_add(1)
        } else {
            0
        };
        if strikes[i] >= LATENCY_STRIKES {
            strikes[i] = 0;
            let label = &set.targets[i].label;
            if set
                .health
                .try_eject(&set.name, label, i, Reason::LatencyOutlier)
            {
                tracing::debug!(upstream = %set.name, target = %label, ewma_us = ewma, peer_median_us = median, "latency outlier");
            }
        }
    }
}
