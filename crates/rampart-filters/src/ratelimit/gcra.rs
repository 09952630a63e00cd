//! The Generic Cell Rate Algorithm, in integer microseconds. Local buckets and the Redis script
//! run exactly this arithmetic; [`Rate`] turns its one result, the bucket's *fill*, into the
//! numbers the response headers carry.
//!
//! A bucket is one timestamp, its theoretical arrival time (TAT). With emission interval
//! `T = per / requests` and capacity `C = burst × T`, a request arriving at `now` is admitted
//! when `max(TAT, now) + T − now ≤ C`, and then moves TAT to `max(TAT, now) + T`. A TAT in the
//! past is a full bucket, the same as no bucket at all, so idle buckets can be forgotten.

/// A policy's rate in the limiter's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// `T`: microseconds of the period one request uses up.
    interval_us: u64,
    /// `burst`: requests admitted at once from a full bucket.
    burst: u64,
    /// `C = burst × T`.
    capacity_us: u64,
}

/// What the algorithm decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The request is admitted.
    pub allowed: bool,
    /// `TAT − now` after the decision (never negative): how far the bucket is from full.
    pub fill_us: u64,
}

impl Rate {
    /// `requests` per `per_us` microseconds with bursts of `burst`; `None` when the interval
    /// would be under 1 µs or the capacity overflows (config validation refuses both).
    #[must_use]
    pub fn new(requests: u64, per_us: u64, burst: u64) -> Option<Self> {
        let interval_us = per_us.checked_div(requests).filter(|t| *t > 0)?;
        let capacity_us = interval_us.checked_mul(burst.max(1))?;
        Some(Self {
            interval_us,
            burst: burst.max(1),
            capacity_us,
        })
    }

    /// Requests admitted at once from a full bucket (`RateLimit-Limit`).
    #[must_use]
    pub const fn burst(&self) -> u64 {
        self.burst
    }

    /// `T` in microseconds.
    #[must_use]
    pub const fn interval_us(&self) -> u64 {
        self.interval_us
    }

    /// `C` in microseconds: the time an empty bucket takes to refill.
    #[must_use]
    pub const fn capacity_us(&self) -> u64 {
        self.capacity_us
    }

    /// Decides a request arriving at `now_us` on a bucket whose TAT is `tat_us` (0 for a new
    /// bucket). Returns the verdict and, when admitted, the new TAT to store.
    #[must_use]
    pub const fn decide(&self, tat_us: u64, now_us: u64) -> (Verdict, Option<u64>) {
        let fill = tat_us.saturating_sub(now_us);
        let after = fill.saturating_add(self.interval_us);
        if after > self.capacity_us {
            return (
                Verdict {
                    allowed: false,
                    fill_us: fill,
                },
                None,
            );
        }
        (
            Verdict {
                allowed: true,
                fill_us: after,
            },
            Some(now_us.saturating_add(after)),
        )
    }

    /// Requests still admissible right now (`RateLimit-Remaining`).
    #[must_use]
    pub const fn remaining(&self, v: Verdict) -> u64 {
        self.capacity_us.saturating_sub(v.fill_us) / self.interval_us
    }

    /// Whole seconds (rounded up) until the bucket is full again (`RateLimit-Reset`).
    #[must_use]
    pub const fn reset_secs(&self, v: Verdict) -> u64 {
        v.fill_us.div_ceil(1_000_000)
    }

    /// Whole seconds (rounded up, at least 1) until a refused request would be admitted
    /// (`Retry-After`).
    #[must_use]
    pub const fn retry_after_secs(&self, v: Verdict) -> u64 {
        let wait = (v.fill_us + self.interval_us).saturating_sub(self.capacity_us);
        let secs = wait.div_ceil(1_000_000);
        if secs == 0 { 1 } else { secs }
    }

    /// Seconds an empty bucket takes to refill, rounded up (the `w` of `RateLimit-Policy`).
    #[must_use]
    pub const fn window_secs(&self) -> u64 {
        let secs = self.capacity_us.div_ceil(1_000_000);
        if secs == 0 { 1 } else { secs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 requests per second, bursts of 10: T = 100 ms, C = 1 s.
    fn ten_per_second() -> Rate {
        Rate::new(10, 1_000_000, 10).unwrap()
    }

    /// Runs `n` requests at `now` on a bucket, returning how many were admitted.
    fn admit(rate: &Rate, tat: &mut u64, now: u64, n: u64) -> u64 {
        let mut admitted = 0;
        for _ in 0..n {
            let (v, new_tat) = rate.decide(*tat, now);
            if let Some(t) = new_tat {
                *tat = t;
            }
            admitted += u64::from(v.allowed);
        }
        admitted
    }

    #[test]
    fn a_full_bucket_admits_exactly_the_burst() {
        let rate = ten_per_second();
        let mut tat = 0;
        assert_eq!(admit(&rate, &mut tat, 5_000_000, 25), 10);
    }

    #[test]
    fn the_bucket_refills_one_request_per_interval() {
        let rate = ten_per_second();
        let mut tat = 0;
        let t0 = 1_000_000;
        assert_eq!(admit(&rate, &mut tat, t0, 10), 10);
        assert_eq!(admit(&rate, &mut tat, t0 + 99_999, 1), 0);
        assert_eq!(admit(&rate, &mut tat, t0 + 100_000, 2), 1);
        assert_eq!(admit(&rate, &mut tat, t0 + 2_000_000, 20), 10);
    }

    #[test]
    fn headers_follow_the_fill() {
        let rate = ten_per_second();
        let (first, tat) = rate.decide(0, 1_000_000);
        assert!(first.allowed);
        assert_eq!(rate.remaining(first), 9);
        assert_eq!(rate.reset_secs(first), 1);
        let mut tat = tat.unwrap();
        admit(&rate, &mut tat, 1_000_000, 9);
        let (refused, none) = rate.decide(tat, 1_000_000);
        assert!(!refused.allowed && none.is_none());
        assert_eq!(rate.remaining(refused), 0);
        assert_eq!(rate.retry_after_secs(refused), 1);
        assert_eq!(rate.reset_secs(refused), 1);
        assert_eq!(rate.window_secs(), 1);
    }

    #[test]
    fn slow_rates_wait_long() {
        // 2 per hour, bursts of 2: after both, the next is 30 minutes away.
        let rate = Rate::new(2, 3_600_000_000, 2).unwrap();
        let mut tat = 0;
        assert_eq!(admit(&rate, &mut tat, 10, 3), 2);
        let (v, _) = rate.decide(tat, 10);
        assert_eq!(rate.retry_after_secs(v), 1800);
        assert_eq!(rate.reset_secs(v), 3600);
    }

    #[test]
    fn impossible_rates_are_refused() {
        assert!(Rate::new(2_000_000, 1_000_000, 1).is_none());
        assert!(Rate::new(0, 1_000_000, 1).is_none());
        assert!(Rate::new(1, u64::MAX, 2).is_none());
    }

    #[test]
    fn a_clock_before_the_tat_never_underflows() {
        let rate = ten_per_second();
        let (v, _) = rate.decide(u64::MAX, 0);
        assert!(!v.allowed);
        assert_eq!(rate.remaining(v), 0);
    }
}
