//! Smooth weighted round robin (nginx's algorithm), precomputed: one full cycle of the order
//! is computed when the upstream is compiled and walked with an atomic counter, so the pick
//! takes no lock. Weights {5, 1, 1} give `a a b a c a a`, not `a a a a a b c`.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::View;

/// Longest precomputed cycle; weights are scaled down by their common divisor first.
const MAX_CYCLE: u64 = 1 << 20;

/// One cycle of the smooth weighted order.
#[derive(Debug)]
pub struct Schedule {
    order: Box<[u32]>,
    next: AtomicUsize,
}

impl Schedule {
    /// Computes the cycle for `weights`.
    #[must_use]
    pub fn new(weights: &[u32]) -> Self {
        let g = weights.iter().copied().fold(0, gcd).max(1);
        let w: Vec<i64> = weights.iter().map(|&x| i64::from(x.max(1) / g)).collect();
        let total: i64 = w.iter().sum();
        let len = u64::try_from(total).unwrap_or(0).min(MAX_CYCLE);
        let mut current = vec![0i64; w.len()];
        let mut order = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        for _ in 0..len {
            let mut best = 0;
            for i in 0..w.len() {
                current[i] += w[i];
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            order.push(u32::try_from(best).unwrap_or(0));
        }
        Self {
            order: order.into_boxed_slice(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next usable target of the cycle.
    pub(super) fn pick(&self, view: &View<'_>) -> Option<usize> {
        let len = self.order.len();
        if len == 0 {
            return view.scan();
        }
        // A retry (something tried already) starts at a random place of the cycle, which keeps
        // the weights, and leaves the counter to first attempts.
        let start = if view.tried.is_empty() {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            fastrand::usize(0..len)
        };
        super::in_order(view, len, |k| self.order[(start + k) % len] as usize)
    }

    /// The cycle (tests).
    #[cfg(test)]
    pub(crate) fn order(&self) -> &[u32] {
        &self.order
    }
}

const fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
