//! Per-target health: the live state every worker reads ([`TargetStats`], atomics only), the
//! passive outlier detection fed by finished requests ([`passive`]), the compiled active
//! check ([`check`]), and the background service that re-admits ejected targets, ramps slow
//! starts, ejects gray failures, runs the active probes and discovery ([`service`], [`probe`]).
//!
//! State machine of one target:
//!
//! ```text
//!   healthy ──(consecutive failures | latency outlier)──▶ ejected ──(back-off over)──▶ slow_start
//!   healthy|slow_start|ejected ──(active probe fails N times)──▶ unhealthy
//!   unhealthy ──(active probe passes N times)──▶ slow_start ──(ramp done)──▶ healthy
//! ```
//!
//! Every transition is made by one compare-and-swap, so exactly one thread logs it.

pub(crate) mod check;
pub(crate) mod passive;
pub(crate) mod probe;
pub(crate) mod service;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// Milliseconds since the first call in this process: a cheap shared clock for atomics.
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Takes its full share.
    Healthy,
    /// Failing active health checks; takes no requests.
    Unhealthy,
    /// Ejected by passive outlier detection until its back-off ends; takes no requests.
    Ejected,
    /// Re-admitted, its share ramping up.
    SlowStart,
}

impl State {
    const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Unhealthy,
            2 => Self::Ejected,
            3 => Self::SlowStart,
            _ => Self::Healthy,
        }
    }

    /// Whether the balancer may pick the target (outside panic mode).
    #[must_use]
    pub const fn takes_requests(self) -> bool {
        matches!(self, Self::Healthy | Self::SlowStart)
    }

    /// The name used in logs and the admin API.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Ejected => "ejected",
            Self::SlowStart => "slow_start",
        }
    }
}

/// Why a target last changed state (stable snake_case codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No transition yet.
    None = 0,
    /// Consecutive 5xx responses.
    Consecutive5xx,
    /// Consecutive connect failures.
    ConsecutiveConnectErrors,
    /// Consecutive timeouts or resets.
    ConsecutiveTimeouts,
    /// Latency EWMA far above its peers'.
    LatencyOutlier,
    /// Active health checks failed.
    ActiveCheckFailed,
    /// Active health checks passed again.
    ActiveCheckPassed,
    /// The ejection back-off ended.
    EjectionExpired,
    /// The slow-start ramp completed.
    SlowStartDone,
    /// Discovery added the target to a running upstream (it starts in slow start).
    Discovered,
}

impl Reason {
    const ALL: [Self; 10] = [
        Self::None,
        Self::Consecutive5xx,
        Self::ConsecutiveConnectErrors,
        Self::ConsecutiveTimeouts,
        Self::LatencyOutlier,
        Self::ActiveCheckFailed,
        Self::ActiveCheckPassed,
        Self::EjectionExpired,
        Self::SlowStartDone,
        Self::Discovered,
    ];

    fn from_u8(v: u8) -> Self {
        Self::ALL.get(usize::from(v)).copied().unwrap_or(Self::None)
    }

    /// Stable code for logs and the admin API.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Consecutive5xx => "consecutive_5xx",
            Self::ConsecutiveConnectErrors => "consecutive_connect_errors",
            Self::ConsecutiveTimeouts => "consecutive_timeouts",
            Self::LatencyOutlier => "latency_outlier",
            Self::ActiveCheckFailed => "active_check_failed",
            Self::ActiveCheckPassed => "active_check_passed",
            Self::EjectionExpired => "ejection_expired",
            Self::SlowStartDone => "slow_start_done",
            Self::Discovered => "discovered",
        }
    }
}

/// Full share of a target, in thousandths.
pub(crate) const FULL_SHARE: u32 = 1000;
/// Share of a target entering slow start.
pub(crate) const SLOW_START_SHARE: u32 = 100;

/// The live, shared state of one target: written by requests (counters, EWMA, passive
/// failures) and by the health service (transitions), read by the balancer. Atomics only.
#[derive(Debug)]
pub struct TargetStats {
    state: AtomicU8,
    reason: AtomicU8,
    since_ms: AtomicU64,
    /// Requests sent and not yet answered (response head).
    pub(crate) in_flight: AtomicU32,
    /// Latency EWMA of the response head, in microseconds (0 = no sample yet).
    pub(crate) ewma_us: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Attempts given up before they were answered (a hedge answered first, the client left).
    pub(crate) abandoned: AtomicU64,
    pub(crate) consecutive_5xx: AtomicU32,
    pub(crate) consecutive_connect: AtomicU32,
    pub(crate) consecutive_timeouts: AtomicU32,
    /// Ejections so far (the back-off exponent); reset after a long healthy spell.
    pub(crate) ejections: AtomicU32,
    pub(crate) eject_until_ms: AtomicU64,
    /// Share in thousandths of a full one (slow start ramps it up).
    pub(crate) share: AtomicU32,
    /// Times the target was taken out, by [`Reason`] (indexed by its value).
    pub(crate) taken_out: [AtomicU64; Reason::ALL.len()],
    /// Consecutive maintenance ticks the target was a latency outlier (health thread only).
    pub(crate) latency_strikes: AtomicU8,
}

impl Default for TargetStats {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(State::Healthy as u8),
            reason: AtomicU8::new(Reason::None as u8),
            since_ms: AtomicU64::new(now_ms()),
            in_flight: AtomicU32::new(0),
            ewma_us: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_connect: AtomicU32::new(0),
            consecutive_timeouts: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            eject_until_ms: AtomicU64::new(0),
            share: AtomicU32::new(FULL_SHARE),
            taken_out: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_strikes: AtomicU8::new(0),
        }
    }
}

impl TargetStats {
    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Why the target last changed state.
    pub fn reason(&self) -> Reason {
        Reason::from_u8(self.reason.load(Ordering::Relaxed))
    }

    /// Milliseconds (on [`now_ms`]'s clock) of the last transition.
    pub(crate) fn since_ms(&self) -> u64 {
        self.since_ms.load(Ordering::Relaxed)
    }

    /// Latency EWMA in microseconds.
    pub(crate) fn ewma_us(&self) -> u64 {
        self.ewma_us.load(Ordering::Relaxed)
    }

    /// Sets the requests in flight and the latency EWMA (benchmarks and tests of selection).
    pub fn set_load(&self, in_flight: u32, ewma_us: u64) {
        self.in_flight.store(in_flight, Ordering::Relaxed);
        self.ewma_us.store(ewma_us, Ordering::Relaxed);
    }

    /// Moves from `from` to `to`; false when another thread changed the state first.
    pub(crate) fn transition(&self, from: State, to: State, reason: Reason) -> bool {
        if self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.reason.store(reason as u8, Ordering::Relaxed);
        self.since_ms.store(now_ms(), Ordering::Relaxed);
        if !to.takes_requests() {
            self.taken_out[reason as usize].fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// How many times the target was taken out (ejected or marked unhealthy), by reason code;
    /// reasons that never happened are left out.
    pub fn taken_out(&self) -> Vec<(&'static str, u64)> {
        Reason::ALL
            .iter()
            .zip(&self.taken_out)
            .map(|(r, n)| (r.code(), n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Folds one response-head latency into the EWMA (weight 1/4 for the new sample).
    pub(crate) fn observe_latency(&self, micros: u64) {
        let old = self.ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            micros.max(1)
        } else {
            (old * 3 + micros) / 4
        };
        self.ewma_us.store(new.max(1), Ordering::Relaxed);
    }
}

/// One target's state for the admin API and metrics (`GET /upstreams`).
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// `host:port` as configured.
    pub target: String,
    /// `healthy`, `unhealthy`, `ejected` or `slow_start`.
    pub state: State,
    /// Why it entered that state (`null` while it never changed).
    pub reason: Option<&'static str>,
    /// Seconds since the last transition (or since the upstream was loaded).
    pub since_seconds: u64,
    /// Requests in flight now.
    pub in_flight: u32,
    /// Latency EWMA of the response head, milliseconds.
    pub ewma_ms: f64,
    /// Requests sent to the target.
    pub requests: u64,
    /// Requests that failed there (connect errors, resets, timeouts, 5xx).
    pub failures: u64,
    /// Times taken out of rotation since the upstream was loaded, for any reason (passive
    /// outlier ejections and failed active checks): the sum of `taken_out`, and of
    /// `rampart_upstream_ejections_total` over its reasons.
    pub ejections: u64,
    /// Times taken out, by reason (the `reason` label of `rampart_upstream_ejections_total`);
    /// reasons with no event are left out.
    #[serde(rename = "ejections_by_reason", serialize_with = "as_map")]
    pub taken_out: Vec<(&'static str, u64)>,
    /// Requests given up there before an answer (a hedge answered first, the client left);
    /// counted in `requests`, their running time in `ewma_ms`.
    pub abandoned: u64,
    /// Passive ejections counting towards the back-off (the next one lasts
    /// `base_ejection` × 2^this); forgotten after a healthy spell of `max_ejection`.
    pub backoff_level: u32,
}

/// Serializes `(reason, count)` pairs as a JSON object.
fn as_map<S: serde::Serializer>(pairs: &[(&'static str, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (*k, *v)))
}

impl TargetStatus {
    pub(crate) fn read(label: &str, stats: &TargetStats) -> Self {
        let reason = stats.reason();
        #[allow(clippy::cast_precision_loss)]
        let ewma_ms = stats.ewma_us() as f64 / 1000.0;
        let taken_out = stats.taken_out();
        Self {
            target: label.to_owned(),
            state: stats.state(),
            reason: (reason != Reason::None).then(|| reason.code()),
            since_seconds: now_ms().saturating_sub(stats.since_ms()) / 1000,
            in_flight: stats.in_flight.load(Ordering::Relaxed),
            ewma_ms,
            requests: stats.requests.load(Ordering::Relaxed),
            failures: stats.failures.load(Ordering::Relaxed),
            ejections: taken_out.iter().map(|(_, n)| n).sum(),
            taken_out,
            backoff_level: stats.ejections.load(Ordering::Relaxed),
            abandoned: stats.abandoned.load(Ordering::Relaxed),
        }
    }
}
