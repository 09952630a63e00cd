//! The circuit of `[upstreams.circuit_breaker]`: closed while requests succeed; open after
//! `consecutive_failures` failed requests in a row or a `failure_rate_percent` over `window`;
//! open, every request fails fast (503 `circuit_open` with `Retry-After`) for `open_for`; then
//! half open: `half_open_requests` trial requests go through; all succeed and it closes, one
//! fails and it opens again. Atomics only; every transition is one compare-and-swap, so exactly
//! one thread logs it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue, header};
use rampart_config::model::CircuitBreaker;
use rampart_core::{ErrorKind, ProxyError};
use serde::Serialize;

use crate::health::now_ms;

/// Where a circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Requests go through; failures are counted.
    Closed,
    /// Requests fail fast.
    Open,
    /// A few trial requests go through.
    HalfOpen,
}

impl CircuitState {
    /// Every state, in gauge order.
    pub const ALL: [Self; 3] = [Self::Closed, Self::Open, Self::HalfOpen];

    const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Open,
            2 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }

    /// The name used in logs, metrics and the admin API.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A circuit's state for the admin API and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct CircuitStatus {
    /// `closed`, `open` or `half_open`.
    pub state: CircuitState,
    /// Why it last changed state (`null` while it never did).
    pub reason: Option<&'static str>,
    /// Seconds since the last transition (or since the upstream was loaded).
    pub since_seconds: u64,
    /// Transitions since the upstream was loaded, by the state entered (closed, open,
    /// half_open).
    pub transitions: [u64; 3],
}

/// One transition of an upstream's circuit, handed to its [`CircuitObserver`].
#[derive(Debug, Clone, Copy)]
pub struct CircuitChange<'a> {
    /// The upstream's name.
    pub upstream: &'a str,
    /// The state left.
    pub from: CircuitState,
    /// The state entered.
    pub to: CircuitState,
    /// Why (`consecutive_failures`, `failure_rate`, `open_for_elapsed`, `trial_succeeded`,
    /// `trial_failed`).
    pub reason: &'static str,
}

/// Told of every transition of a circuit (the audit log), on the thread that made it.
pub type CircuitObserver = Box<dyn Fn(&CircuitChange<'_>) + Send + Sync>;

/// Why a circuit changed state.
const REASONS: [&str; 4] = [
    "consecutive_failures",
    "failure_rate",
    "open_for_elapsed",
    "trial_succeeded",
];
const TRIAL_FAILED: u8 = 4;

/// The compiled circuit of one upstream.
pub(crate) struct Circuit {
    consecutive_limit: u32,
    rate_percent: u32,
    min_requests: u32,
    window_ms: u64,
    open_ms: u64,
    trials: u32,
    state: AtomicU8,
    /// Index into [`REASONS`] plus one (`TRIAL_FAILED` + 1 for a failed trial); 0: none yet.
    reason: AtomicU8,
    since_ms: AtomicU64,
    consecutive: AtomicU32,
    window_start_ms: AtomicU64,
    window_requests: AtomicU32,
    window_failures: AtomicU32,
    trials_left: AtomicU32,
    trial_successes: AtomicU32,
    transitions: [AtomicU64; 3],
    /// Told of each transition, once set.
    pub(crate) observer: OnceLock<CircuitObserver>,
}

impl std::fmt::Debug for Circuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circuit")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// A request let through the circuit; report its outcome with [`Ticket::finish`]. A trial
/// dropped without an outcome (the client left, its own body failed) gives its place back.
pub(crate) struct Ticket<'a> {
    circuit: &'a Circuit,
    trial: bool,
}

impl Ticket<'_> {
    /// Counts the request as a success or a failure of the upstream.
    pub(crate) fn finish(self, upstream: &str, failed: bool) {
        let circuit = self.circuit;
        std::mem::forget(self);
        circuit.record(upstream, failed);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let c = self.circuit;
        if self.trial && c.state() == CircuitState::HalfOpen {
            let _ = c
                .trials_left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < c.trials).then_some(n + 1)
                });
        }
    }
}

impl Circuit {
    /// The circuit of `c`, when it can open.
    pub(crate) fn new(c: &CircuitBreaker) -> Option<Self> {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        c.trips().then(|| Self {
            consecutive_limit: c.consecutive_failures,
            rate_percent: u32::from(c.failure_rate_percent.min(100)),
            min_requests: c.min_requests.max(1),
            window_ms: ms(c.window.get()).max(1),
            open_ms: ms(c.open_for.get()).max(1),
            trials: c.half_open_requests.max(1),
            state: AtomicU8::new(CircuitState::Closed as u8),
            reason: AtomicU8::new(0),
            since_ms: AtomicU64::new(now_ms()),
            consecutive: AtomicU32::new(0),
            window_start_ms: AtomicU64::new(now_ms()),
            window_requests: AtomicU32::new(0),
            window_failures: AtomicU32::new(0),
            trials_left: AtomicU32::new(0),
            trial_successes: AtomicU32::new(0),
            transitions: std::array::from_fn(|_| AtomicU64::new(0)),
            observer: OnceLock::new(),
        })
    }

    fn state(&self) -> CircuitState {
        CircuitState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Lets a request through, or refuses it fast while the circuit is open (or half open with
    /// every trial taken).
    pub(crate) fn admit(&self, upstream: &str) -> Result<Ticket<'_>, ProxyError> {
        match self.state() {
            CircuitState::Closed => Ok(Ticket {
                circuit: self,
                trial: false,
            }),
            CircuitState::Open => {
                let opened = self.since_ms.load(Ordering::Relaxed);
                let now = now_ms();
                let reopens = opened.saturating_add(self.open_ms);
                if now < reopens {
                    return Err(self.refusal(upstream, reopens - now));
                }
                self.transition(upstream, CircuitState::Open, CircuitState::HalfOpen, 2);
                self.trial(upstream)
            }
            CircuitState::HalfOpen => self.trial(upstream),
        }
    }

    fn trial(&self, upstream: &str) -> Result<Ticket<'_>, ProxyError> {
        let took = self
            .trials_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if took {
            Ok(Ticket {
                circuit: self,
                trial: true,
            })
        } else {
            Err(self.refusal(upstream, self.open_ms))
        }
    }

    /// The fast 503 of an open circuit, retrying after `wait_ms` (at least a second).
    fn refusal(&self, upstream: &str, wait_ms: u64) -> ProxyError {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait_ms.div_ceil(1000).max(1)),
        );
        ProxyError::new(
            ErrorKind::CircuitOpen,
            format!(
                "{upstream}: circuit {} after failures",
                self.state().as_str()
            ),
        )
        .with_headers(headers)
    }

    fn record(&self, upstream: &str, failed: bool) {
        match self.state() {
            CircuitState::Open => {}
            CircuitState::HalfOpen => {
                if failed {
                    self.transition(
                        upstream,
                        CircuitState::HalfOpen,
                        CircuitState::Open,
                        TRIAL_FAILED,
                    );
                } else if self.trial_successes.fetch_add(1, Ordering::AcqRel) + 1 >= self.trials {
                    self.transition(upstream, CircuitState::HalfOpen, CircuitState::Closed, 3);
                }
            }
            CircuitState::Closed => self.record_closed(upstream, failed),
        }
    }

    fn record_closed(&self, upstream: &str, failed: bool) {
        if self.consecutive_limit > 0 {
            if failed {
                let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= self.consecutive_limit {
                    self.transition(upstream, CircuitState::Closed, CircuitState::Open, 0);
                    return;
                }
            } else if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
        }
        if self.rate_percent == 0 {
            return;
        }
        let now = now_ms();
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= self.window_ms
            && self
                .window_start_ms
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.window_requests.store(0, Ordering::Relaxed);
            self.window_failures.store(0, Ordering::Relaxed);
        }
        let requests = self.window_requests.fetch_add(1, Ordering::Relaxed) + 1;
        let failures = if failed {
            self.window_failures.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.window_failures.load(Ordering::Relaxed)
        };
        if failed
            && requests >= self.min_requests
            && u64::from(failures) * 100 >= u64::from(self.rate_percent) * u64::from(requests)
        {
            self.transition(upstream, CircuitState::Closed, CircuitState::Open, 1);
        }
    }

    /// Moves from `from` to `to` for reason `why`; the thread that wins logs it.
    fn transition(&self, upstream: &str, from: CircuitState, to: CircuitState, why: u8) {
        if to == CircuitState::Open {
            // Ready before any thread can see half open.
            self.trials_left.store(self.trials, Ordering::Relaxed);
            self.trial_successes.store(0, Ordering::Relaxed);
        }
        if self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        self.since_ms.store(now_ms(), Ordering::Relaxed);
        self.reason.store(why + 1, Ordering::Relaxed);
        self.transitions[to as usize].fetch_add(1, Ordering::Relaxed);
        if to == CircuitState::Closed {
            self.consecutive.store(0, Ordering::Relaxed);
            self.window_requests.store(0, Ordering::Relaxed);
            self.window_failures.store(0, Ordering::Relaxed);
            self.window_start_ms.store(now_ms(), Ordering::Relaxed);
        }
        let reason = reason_code(why);
        if to == CircuitState::Open {
            tracing::warn!(
                upstream,
                from = from.as_str(),
                to = to.as_str(),
                reason,
                open_ms = self.open_ms,
                "circuit opened"
            );
        } else {
            tracing::info!(
                upstream,
                from = from.as_str(),
                to = to.as_str(),
                reason,
                "circuit changed state"
            );
        }
        if let Some(observe) = self.observer.get() {
            observe(&CircuitChange {
                upstream,
                from,
                to,
                reason,
            });
        }
    }

    /// The circuit's state now.
    pub(crate) fn status(&self) -> CircuitStatus {
        let why = self.reason.load(Ordering::Relaxed);
        CircuitStatus {
            state: self.state(),
            reason: why.checked_sub(1).map(reason_code),
            since_seconds: now_ms().saturating_sub(self.since_ms.load(Ordering::Relaxed)) / 1000,
            transitions: std::array::from_fn(|i| self.transitions[i].load(Ordering::Relaxed)),
        }
    }
}

fn reason_code(why: u8) -> &'static str {
    REASONS
        .get(usize::from(why))
        .copied()
        .unwrap_or("trial_failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit(text: &str) -> Circuit {
        Circuit::new(&toml::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let c = circuit("consecutive_failures = 3\nopen_for = \"1h\"");
        for failed in [true, true, false, true, true] {
            c.admit("u").unwrap().finish("u", failed);
        }
        assert_eq!(c.state(), CircuitState::Closed);
        c.admit("u").unwrap().finish("u", true);
        assert_eq!(c.state(), CircuitState::Open);
        let refused = c.admit("u").err().unwrap();
        assert_eq!(refused.kind, ErrorKind::CircuitOpen);
        assert_eq!(refused.headers.unwrap()["retry-after"], "3600");
        assert_eq!(c.status().reason, Some("consecutive_failures"));
    }

    #[test]
    fn half_open_trials_close_on_success_and_reopen_on_failure() {
        let c = circuit("consecutive_failures = 1\nopen_for = \"1ms\"\nhalf_open_requests = 2");
        c.admit("u").unwrap().finish("u", true);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let first = c.admit("u").unwrap();
        assert_eq!(c.state(), CircuitState::HalfOpen);
        let second = c.admit("u").unwrap();
        assert!(c.admit("u").is_err(), "only two trials");
        drop(second);
        let second = c.admit("u").unwrap();
        first.finish("u", true);
        assert_eq!(c.state(), CircuitState::Open);
        drop(second);
        assert_eq!(
            c.trials_left.load(Ordering::Relaxed),
            2,
            "a trial of the last round does not add a place to the next"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        for _ in 0..2 {
            c.admit("u").unwrap().finish("u", false);
        }
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.status().transitions, [1, 2, 2]);
        assert_eq!(c.status().reason, Some("trial_succeeded"));
    }

    #[test]
    fn opens_on_a_failure_rate_once_enough_requests_were_seen() {
        let c = circuit("failure_rate_percent = 50\nmin_requests = 4\nwindow = \"1h\"");
        for failed in [true, true, false] {
            c.admit("u").unwrap().finish("u", failed);
        }
        assert_eq!(c.state(), CircuitState::Closed, "3 requests are too few");
        c.admit("u").unwrap().finish("u", true);
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(c.status().reason, Some("failure_rate"));
    }

    #[test]
    fn a_limit_only_breaker_has_no_circuit() {
        assert!(Circuit::new(&toml::from_str("max_requests = 5").unwrap()).is_none());
    }
}
