//! Target selection: pure functions over a [`View`] of the endpoints (their weights and live
//! stats) and a request key. No locks: the only shared mutable state is one atomic counter for
//! the round-robin orders and the per-target atomics the view reads.
//!
//! Targets that do not take requests (ejected, unhealthy, at their per-target limit, or already
//! tried by this request) are skipped; a target in slow start is admitted in proportion to its
//! ramping share. In panic mode every target counts as available.

pub(crate) mod hash;
mod maglev;
mod ring;
pub(crate) mod sticky;
mod swrr;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rampart_config::model::Balance;

pub(crate) use hash::HashOn;
pub use hash::stable_hash;

use crate::health::{FULL_SHARE, TargetStats};

/// What the balancer sees of an upstream for one pick.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Live stats, one per target (shared with the target's later snapshots).
    pub stats: &'a [Arc<TargetStats>],
    /// Static weights, one per target (at least 1).
    pub weights: &'a [u32],
    /// Panic mode: ignore health.
    pub all: bool,
    /// Targets this request already tried.
    pub tried: &'a [usize],
    /// Most requests in flight per target (`u32::MAX` = no limit).
    pub max_in_flight: u32,
}

impl View<'_> {
    fn len(&self) -> usize {
        self.stats.len()
    }

    /// Whether target `i` may take this request at all.
    #[inline]
    pub fn usable(&self, i: usize) -> bool {
        let Some(s) = self.stats.get(i) else {
            return false;
        };
        !self.tried.contains(&i)
            && (self.all || s.state().takes_requests())
            && s.in_flight.load(Ordering::Relaxed) < self.max_in_flight
    }

    /// Slow start: admits a ramping target with probability share/1000.
    #[inline]
    fn admitted(&self, i: usize) -> bool {
        let share = self.stats[i].share.load(Ordering::Relaxed);
        self.all || share >= FULL_SHARE || fastrand::u32(0..FULL_SHARE) < share
    }

    fn share(&self, i: usize) -> u64 {
        if self.all {
            u64::from(FULL_SHARE)
        } else {
            u64::from(self.stats[i].share.load(Ordering::Relaxed).max(1))
        }
    }

    /// The first usable target from a random start (the last resort of every algorithm).
    fn scan(&self) -> Option<usize> {
        let n = self.len();
        let start = fastrand::usize(0..n.max(1));
        (0..n).map(|k| (start + k) % n).find(|&i| self.usable(i))
    }
}

/// A compiled balancing algorithm with the state it keeps between picks.
#[derive(Debug)]
pub enum Picker {
    /// Power of two choices on latency EWMA × in-flight.
    P2c,
    /// Round robin.
    RoundRobin(AtomicUsize),
    /// Smooth weighted round robin: a precomputed order walked by an atomic counter.
    Weighted(swrr::Schedule),
    /// Fewest requests in flight relative to weight.
    LeastRequest,
    /// Weighted random: cumulative weights.
    Random(Box<[u64]>),
    /// Ketama ring.
    Ring(ring::Ring),
    /// Maglev table.
    Maglev(maglev::Table),
}

impl Picker {
    /// Compiles `balance` for targets with these `labels` and `weights`.
    #[must_use]
    pub fn new(balance: Balance, labels: &[&str], weights: &[u32]) -> Self {
        match balance {
            Balance::P2c => Self::P2c,
            Balance::RoundRobin => Self::RoundRobin(AtomicUsize::new(0)),
            Balance::WeightedRoundRobin => Self::Weighted(swrr::Schedule::new(weights)),
            Balance::LeastRequest => Self::LeastRequest,
            Balance::Random => Self::Random(
                weights
                    .iter()
                    .scan(0u64, |acc, w| {
                        *acc += u64::from(*w);
                        Some(*acc)
                    })
                    .collect(),
            ),
            Balance::RingHash => Self::Ring(ring::Ring::new(labels, weights)),
            Balance::Maglev => Self::Maglev(maglev::Table::new(labels, weights)),
        }
    }

    /// Picks a target for a request whose hash key is `key` (used by the hashing algorithms;
    /// without one they pick at random).
    #[must_use]
    pub fn pick(&self, view: &View<'_>, key: Option<u64>) -> Option<usize> {
        let n = view.len();
        if n == 0 {
            return None;
        }
        if n == 1 {
            return view.usable(0).then_some(0);
        }
        match self {
            Self::P2c => p2c(view),
            // Only a request's first attempt moves the rotation on: a retry or hedge taking a
            // turn would hand every later first attempt the same target.
            Self::RoundRobin(next) => {
                let start = match view.tried.last() {
                    None => next.fetch_add(1, Ordering::Relaxed),
                    Some(&last) => last + 1,
                };
                in_order(view, n, |k| (start + k) % n)
            }
            Self::Weighted(schedule) => schedule.pick(view),
            Self::LeastRequest => least_request(view),
            Self::Random(cumulative) => weighted_random(view, cumulative),
            Self::Ring(ring) => match key {
                Some(key) => ring.pick(view, key),
                None => view.scan(),
            },
            Self::Maglev(table) => match key {
                Some(key) => table.pick(view, key),
                None => view.scan(),
            },
        }
    }
}

/// The first usable and admitted target in the order `at(0..n)`; else any usable one.
fn in_order(view: &View<'_>, n: usize, at: impl Fn(usize) -> usize) -> Option<usize> {
    (0..n)
        .map(at)
        .find(|&i| view.usable(i) && view.admitted(i))
        .or_else(|| view.scan())
}

/// Lower is better: latency EWMA (plus 1 ms so unmeasured targets are not flooded) times
/// requests in flight plus one, divided by weight and slow-start share.
fn p2c_cost(view: &View<'_>, i: usize) -> u64 {
    let s = &view.stats[i];
    let ewma = s.ewma_us.load(Ordering::Relaxed).saturating_add(1000);
    let load = u64::from(s.in_flight.load(Ordering::Relaxed)) + 1;
    let weight = u64::from(view.weights[i].max(1)) * view.share(i);
    ewma.saturating_mul(load).saturating_mul(1000) / weight
}

fn p2c(view: &View<'_>) -> Option<usize> {
    let n = view.len();
    let a = fastrand::usize(0..n);
    let mut b = fastrand::usize(0..n - 1);
    if b >= a {
        b += 1;
    }
    match (view.usable(a), view.usable(b)) {
        (true, true) => Some(if p2c_cost(view, b) < p2c_cost(view, a) {
            b
        } else {
            a
        }),
        (true, false) => Some(a),
        (false, true) => Some(b),
        (false, false) => view.scan(),
    }
}

fn least_request(view: &View<'_>) -> Option<usize> {
    let n = view.len();
    let start = fastrand::usize(0..n);
    let cost = |i: usize| {
        let load = u64::from(view.stats[i].in_flight.load(Ordering::Relaxed)) + 1;
        load * 1_000_000 / (u64::from(view.weights[i].max(1)) * view.share(i))
    };
    (0..n)
        .map(|k| (start + k) % n)
        .filter(|&i| view.usable(i))
        .min_by_key(|&i| cost(i))
}

fn weighted_random(view: &View<'_>, cumulative: &[u64]) -> Option<usize> {
    let total = cumulative.last().copied().unwrap_or(0);
    for _ in 0..4 {
        let r = fastrand::u64(0..total.max(1));
        let i = cumulative.partition_point(|&c| c <= r);
        if i < view.len() && view.usable(i) && view.admitted(i) {
            return Some(i);
        }
    }
    view.scan()
}

#[cfg(test)]
mod tests;
