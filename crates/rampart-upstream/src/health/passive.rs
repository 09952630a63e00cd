//! Passive health: each finished attempt reports its outcome; consecutive failures past a
//! threshold eject the target for an exponentially growing time, never taking more than
//! `max_ejection_percent` of the upstream out.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rampart_config::model::Outlier;

use super::{Reason, State, now_ms};
use crate::members::Members;

/// What an attempt on a target came to, as far as its health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response below 500.
    Success,
    /// A 5xx response.
    ServerError,
    /// The connection could not be opened.
    ConnectError,
    /// The connection was reset, or no response came in time.
    Timeout,
}

/// Compiled `[upstreams.outlier]`.
#[derive(Debug, Clone)]
pub(crate) struct OutlierRt {
    pub(crate) enabled: bool,
    pub(crate) consecutive_5xx: u32,
    pub(crate) consecutive_connect: u32,
    pub(crate) consecutive_timeouts: u32,
    pub(crate) latency_factor: f64,
    pub(crate) latency_floor_us: u64,
    pub(crate) base_ms: u64,
    pub(crate) max_ms: u64,
    pub(crate) max_out_percent: u32,
    pub(crate) panic_mode: bool,
    pub(crate) slow_start_ms: u64,
}

impl OutlierRt {
    pub(crate) fn new(o: &Outlier) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            enabled: o.enabled,
            consecutive_5xx: o.consecutive_5xx,
            consecutive_connect: o.consecutive_connect_errors,
            consecutive_timeouts: o.consecutive_timeouts,
            latency_factor: o.latency_factor,
            latency_floor_us: u64::try_from(o.latency_floor.get().as_micros()).unwrap_or(u64::MAX),
            base_ms: ms(o.base_ejection.get()).max(1),
            max_ms: ms(o.max_ejection.get()).max(1),
            max_out_percent: u32::from(o.max_ejection_percent.min(100)),
            panic_mode: o.panic_mode,
            slow_start_ms: ms(o.slow_start.get()),
        }
    }

    /// The ejection time after `previous` earlier ejections: base × 2^previous, capped.
    pub(crate) fn ejection_ms(&self, previous: u32) -> u64 {
        let factor = 1u64.checked_shl(previous.min(32)).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }
}

/// The outlier rules of one upstream and the panic flag the balancer reads. The targets' stats
/// live in the current [`Members`], passed to each call.
#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) outlier: OutlierRt,
    /// More targets are out than `max_ejection_percent` allows: spread over all of them.
    pub(crate) panic: AtomicBool,
    /// Targets out (ejected or unhealthy) at the last count.
    out: AtomicU32,
    /// Targets at the last count.
    total: AtomicU32,
}

/// Targets out in the tier that takes requests, and the tier's size: panic mode and the
/// ejection cap look at the targets that could take requests, not at backup tiers.
fn count_out(m: &Members) -> (u32, u32) {
    let (start, end) = m.tier();
    let tier = m.stats.get(start..end).unwrap_or_default();
    let out = tier.iter().filter(|s| !s.state().takes_requests()).count();
    (
        u32::try_from(out).unwrap_or(u32::MAX),
        u32::try_from(tier.len()).unwrap_or(u32::MAX),
    )
}

impl Health {
    pub(crate) fn new(outlier: OutlierRt) -> Self {
        Self {
            outlier,
            panic: AtomicBool::new(false),
            out: AtomicU32::new(0),
            total: AtomicU32::new(0),
        }
    }

    /// Whether the balancer should ignore health and use every target.
    #[inline]
    pub(crate) fn panicking(&self) -> bool {
        self.panic.load(Ordering::Relaxed)
    }

    /// Whether no target takes requests (all ejected or unhealthy), as of the last count.
    pub(crate) fn all_out(&self) -> bool {
        self.out.load(Ordering::Relaxed) == self.total.load(Ordering::Relaxed)
    }

    /// Recounts the targets out, enters or leaves panic mode (logged once each way) and
    /// recomputes the priority tiers that take requests.
    pub(crate) fn refresh_panic(&self, upstream: &str, m: &Members) {
        m.refresh_active();
        let (out, total) = count_out(m);
        self.out.store(out, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        let panic = self.outlier.panic_mode
            && out > 0
            && (out * 100 > self.outlier.max_out_percent * total || out == total);
        if self.panic.swap(panic, Ordering::Relaxed) != panic {
            if panic {
                tracing::warn!(
                    upstream,
                    out,
                    total,
                    "upstream in panic mode: spreading requests over all targets"
                );
            } else {
                tracing::info!(upstream, out, total, "upstream left panic mode");
            }
        }
    }

    /// Folds the outcome of one attempt on target `i` into its counters, ejecting it when a
    /// threshold is crossed.
    pub(crate) fn record(&self, upstream: &str, m: &Members, i: usize, outcome: Outcome) {
        let Some(s) = m.stats.get(i) else { return };
        s.requests.fetch_add(1, Ordering::Relaxed);
        if outcome == Outcome::Success {
            for c in [
                &s.consecutive_5xx,
                &s.consecutive_connect,
                &s.consecutive_timeouts,
            ] {
                if c.load(Ordering::Relaxed) != 0 {
                    c.store(0, Ordering::Relaxed);
                }
            }
            return;
        }
        s.failures.fetch_add(1, Ordering::Relaxed);
        if !self.outlier.enabled {
            return;
        }
        let (counter, threshold, reason) = match outcome {
            Outcome::ServerError => (
                &s.consecutive_5xx,
                self.outlier.consecutive_5xx,
                Reason::Consecutive5xx,
            ),
            Outcome::ConnectError => (
                &s.consecutive_connect,
                self.outlier.consecutive_connect,
                Reason::ConsecutiveConnectErrors,
            ),
            Outcome::Timeout | Outcome::Success => (
                &s.consecutive_timeouts,
                self.outlier.consecutive_timeouts,
                Reason::ConsecutiveTimeouts,
            ),
        };
        let seen = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if threshold > 0 && seen >= threshold {
            self.try_eject(upstream, m, i, reason);
        }
    }

    /// Ejects target `i` unless it is already out or the cap on ejected targets is reached.
    pub(crate) fn try_eject(&self, upstream: &str, m: &Members, i: usize, reason: Reason) -> bool {
        let (Some(s), Some(t)) = (m.stats.get(i), m.targets.get(i)) else {
            return false;
        };
        let label = &*t.label;
        let from = s.state();
        if !from.takes_requests() {
            return false;
        }
        let (out, total) = count_out(m);
        if (out + 1) * 100 > self.outlier.max_out_percent * total {
            tracing::debug!(
                upstream,
                target = label,
                reason = reason.code(),
                out,
                "ejection refused: max_ejection_percent reached"
            );
            return false;
        }
        let previous = s.ejections.load(Ordering::Relaxed);
        let duration_ms = self.outlier.ejection_ms(previous);
        s.eject_until_ms
            .store(now_ms().saturating_add(duration_ms), Ordering::Relaxed);
        if !s.transition(from, State::Ejected, reason) {
            return false;
        }
        s.ejections.store(previous + 1, Ordering::Relaxed);
        for c in [
            &s.consecutive_5xx,
            &s.consecutive_connect,
            &s.consecutive_timeouts,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        tracing::warn!(
            upstream,
            target = label,
            from = from.as_str(),
            to = "ejected",
            reason = reason.code(),
            ejection_ms = duration_ms,
            ejections = previous + 1,
            "target ejected"
        );
        self.refresh_panic(upstream, m);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(OutlierRt::new(&Outlier::default()))
    }

    #[test]
    fn consecutive_connect_errors_eject_and_success_resets_the_count() {
        let h = health();
        let m = Members::of(4);
        h.record("u", &m, 0, Outcome::ConnectError);
        h.record("u", &m, 0, Outcome::ConnectError);
        h.record("u", &m, 0, Outcome::Success);
        h.record("u", &m, 0, Outcome::ConnectError);
        assert_eq!(m.stats[0].state(), State::Healthy);
        h.record("u", &m, 0, Outcome::ConnectError);
        h.record("u", &m, 0, Outcome::ConnectError);
        assert_eq!(m.stats[0].state(), State::Ejected);
        assert_eq!(m.stats[0].reason(), Reason::ConsecutiveConnectErrors);
        assert_eq!(m.stats[0].taken_out(), [("consecutive_connect_errors", 1)]);
        assert_eq!(m.stats[0].failures.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn never_more_than_max_ejection_percent_is_ejected() {
        let h = health();
        let m = Members::of(4);
        for i in 0..4 {
            assert_eq!(
                h.try_eject("u", &m, i, Reason::Consecutive5xx),
                i < 2,
                "target {i}"
            );
        }
        assert!(
            !h.panicking(),
            "the cap keeps passive ejection out of panic mode"
        );
    }

    #[test]
    fn panic_mode_starts_when_too_many_targets_are_unhealthy() {
        let h = health();
        let m = Members::of(2);
        assert!(m.stats[0].transition(State::Healthy, State::Unhealthy, Reason::ActiveCheckFailed));
        h.refresh_panic("u", &m);
        assert!(!h.panicking(), "50% out is within the default cap");
        assert!(m.stats[1].transition(State::Healthy, State::Unhealthy, Reason::ActiveCheckFailed));
        h.refresh_panic("u", &m);
        assert!(h.panicking());
    }

    #[test]
    fn without_panic_mode_an_ejected_lone_target_stays_out() {
        let o = Outlier {
            max_ejection_percent: 100,
            panic_mode: false,
            ..Outlier::default()
        };
        let h = Health::new(OutlierRt::new(&o));
        let m = Members::of(1);
        for _ in 0..5 {
            h.record("u", &m, 0, Outcome::ServerError);
        }
        assert_eq!(m.stats[0].state(), State::Ejected);
        assert!(!h.panicking(), "fail-open is off");
        assert!(h.all_out());
        let with_panic = Health::new(OutlierRt::new(&Outlier {
            max_ejection_percent: 100,
            ..Outlier::default()
        }));
        let m = Members::of(1);
        assert!(with_panic.try_eject("u", &m, 0, Reason::Consecutive5xx));
        assert!(with_panic.panicking(), "the default fails open");
    }

    #[test]
    fn ejection_time_doubles_up_to_the_maximum() {
        let o = OutlierRt::new(&Outlier::default());
        assert_eq!(o.ejection_ms(0), 5_000);
        assert_eq!(o.ejection_ms(1), 10_000);
        assert_eq!(o.ejection_ms(3), 40_000);
        assert_eq!(o.ejection_ms(10), 300_000);
        assert_eq!(o.ejection_ms(99), 300_000);
    }

    #[test]
    fn disabled_outlier_detection_only_counts() {
        let o = Outlier {
            enabled: false,
            ..Outlier::default()
        };
        let h = Health::new(OutlierRt::new(&o));
        let m = Members::of(3);
        for _ in 0..10 {
            h.record("u", &m, 1, Outcome::ServerError);
        }
        assert_eq!(m.stats[1].state(), State::Healthy);
        assert_eq!(m.stats[1].failures.load(Ordering::Relaxed), 10);
    }
}
