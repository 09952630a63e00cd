//! Retry rules and the retry budget.
//!
//! - A connect failure (nothing was sent) is always retried, on a target not tried yet.
//! - A 5xx listed in `on_status`, or a reset/timeout with `on_reset`, is retried only for
//!   idempotent methods (or where the route allows non-idempotent ones), only when the body can
//!   be replayed (none, or fully buffered under `buffer_body`), and only while the budget has a
//!   token: each request adds `budget_percent`/100 of a token, each such retry takes one, plus
//!   `budget_min_per_second` free retries per second for low traffic.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use http::Method;
use rampart_config::model::{Retry, RouteRetry};

use crate::health::now_ms;

/// One token in the budget's fixed-point unit.
const TOKEN: i64 = 1000;
/// Most tokens saved up (so a long quiet spell does not allow a retry storm).
const MAX_TOKENS: i64 = 100 * TOKEN;

/// Compiled `[upstreams.retry]`.
#[derive(Debug)]
pub(crate) struct RetryRt {
    pub(crate) max_retries: u8,
    on_status: Box<[u16]>,
    pub(crate) on_reset: bool,
    pub(crate) buffer_body: u64,
    pub(crate) per_try_timeout: Option<Duration>,
    budget: Budget,
}

/// The rules one request runs under (upstream rules with the route's overrides).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) max_retries: u8,
    /// The method may be sent twice.
    pub(crate) replay_allowed: bool,
    pub(crate) per_try_timeout: Option<Duration>,
    /// Send a second copy to another target when no response head came this soon (idempotent
    /// methods only).
    pub(crate) hedge_after: Option<Duration>,
}

impl RetryRt {
    pub(crate) fn new(r: &Retry) -> Self {
        Self {
            max_retries: r.max_retries,
            on_status: r.on_status.iter().map(|s| **s).collect(),
            on_reset: r.on_reset,
            buffer_body: r.buffer_body.get(),
            per_try_timeout: r.per_try_timeout.map(rampart_config::HumanDuration::get),
            budget: Budget::new(r.budget_percent, r.budget_min_per_second),
        }
    }

    /// The rules for a request with `method` on a route with `route` overrides.
    pub(crate) fn rules(&self, method: &Method, route: Option<&RouteRetry>) -> Rules {
        Rules {
            max_retries: route
                .and_then(|r| r.max_retries)
                .unwrap_or(self.max_retries),
            replay_allowed: is_idempotent(method) || route.is_some_and(|r| r.non_idempotent),
            per_try_timeout: route
                .and_then(|r| r.per_try_timeout.map(rampart_config::HumanDuration::get))
                .or(self.per_try_timeout),
            hedge_after: route
                .and_then(|r| r.hedge_after.map(rampart_config::HumanDuration::get))
                .filter(|_| is_idempotent(method)),
        }
    }

    /// Whether a response with `status` is worth another target.
    pub(crate) fn retries_status(&self, status: u16) -> bool {
        self.on_status.contains(&status)
    }

    /// Whether any response status or reset could be retried (the body is worth buffering).
    pub(crate) fn retries_responses(&self) -> bool {
        !self.on_status.is_empty() || self.on_reset
    }

    /// Counts one request into the budget.
    pub(crate) fn deposit(&self) {
        self.budget.deposit();
    }

    /// Takes a token for a retry; false when the budget is spent.
    pub(crate) fn withdraw(&self) -> bool {
        self.budget.withdraw()
    }
}

/// RFC 9110 §9.2.2 idempotent methods.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A token bucket shared by all workers (atomics).
#[derive(Debug)]
struct Budget {
    tokens: AtomicI64,
    per_request: i64,
    min_per_second: u32,
    /// `second << 32 | retries taken from the floor in that second`.
    floor: AtomicU64,
}

impl Budget {
    fn new(percent: u8, min_per_second: u32) -> Self {
        Self {
            tokens: AtomicI64::new(0),
            per_request: i64::from(percent) * TOKEN / 100,
            min_per_second,
            floor: AtomicU64::new(0),
        }
    }

    fn deposit(&self) {
        if self.per_request > 0 && self.tokens.load(Ordering::Relaxed) < MAX_TOKENS {
            self.tokens.fetch_add(self.per_request, Ordering::Relaxed);
        }
    }

    fn withdraw(&self) -> bool {
        if self.tokens.fetch_sub(TOKEN, Ordering::Relaxed) >= TOKEN {
            return true;
        }
        self.tokens.fetch_add(TOKEN, Ordering::Relaxed);
        self.take_from_floor()
    }

    fn take_from_floor(&self) -> bool {
        let second = now_ms() / 1000;
        let mut cur = self.floor.load(Ordering::Relaxed);
        loop {
            let (s, used) = (cur >> 32, cur & 0xffff_ffff);
            let used = if s == second { used } else { 0 };
            if used >= u64::from(self.min_per_second) {
                return false;
            }
            let new = (second << 32) | (used + 1);
            match self
                .floor
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_share_of_requests_plus_a_floor() {
        let b = Budget::new(20, 0);
        assert!(!b.withdraw(), "no requests yet, no floor");
        for _ in 0..100 {
            b.deposit();
        }
        let allowed = (0..100).filter(|_| b.withdraw()).count();
        assert_eq!(allowed, 20);
        let floor = Budget::new(0, 3);
        let allowed = (0..10).filter(|_| floor.withdraw()).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn rules_follow_method_and_route() {
        let r = RetryRt::new(&Retry::default());
        assert!(r.rules(&Method::GET, None).replay_allowed);
        assert!(!r.rules(&Method::POST, None).replay_allowed);
        let route = RouteRetry {
            max_retries: Some(3),
            non_idempotent: true,
            per_try_timeout: None,
            hedge_after: Some(rampart_config::HumanDuration::millis(50)),
        };
        let rules = r.rules(&Method::POST, Some(&route));
        assert!(rules.replay_allowed);
        assert_eq!(rules.max_retries, 3);
        assert_eq!(rules.hedge_after, None, "POST is never hedged");
        assert_eq!(
            r.rules(&Method::GET, Some(&route)).hedge_after,
            Some(Duration::from_millis(50))
        );
        assert!(r.retries_status(503));
        assert!(!r.retries_status(500));
    }
}
