//! Ketama consistent hashing: each target owns `POINTS_PER_WEIGHT × weight` points on a 64-bit
//! ring; a key goes to the owner of the first point at or after its hash. Adding or removing
//! one of N targets moves about 1/N of the keys.

use super::View;
use super::hash::stable_hash;

/// Ring points per unit of weight.
const POINTS_PER_WEIGHT: u32 = 160;
/// Cap on the points of one target, whatever its weight.
const MAX_POINTS: u32 = 16_000;

/// The sorted ring of (point, target index).
#[derive(Debug)]
pub struct Ring {
    points: Box<[(u64, u32)]>,
}

impl Ring {
    /// Builds the ring; a target's points depend only on its label, so they survive changes to
    /// the other targets.
    #[must_use]
    pub fn new(labels: &[&str], weights: &[u32]) -> Self {
        let mut points = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            let weight = weights.get(i).copied().unwrap_or(1).max(1);
            let count = POINTS_PER_WEIGHT.saturating_mul(weight).min(MAX_POINTS);
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            for p in 0..count {
                let point = stable_hash(format!("{label}-{p}").as_bytes());
                points.push((point, index));
            }
        }
        points.sort_unstable();
        Self {
            points: points.into_boxed_slice(),
        }
    }

    /// The owner of `key`, or the next usable target clockwise.
    pub(super) fn pick(&self, view: &View<'_>, key: u64) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let start = self.points.partition_point(|&(p, _)| p < key);
        (0..len)
            .map(|k| self.points[(start + k) % len].1 as usize)
            .find(|&i| i < view.stats.len() && view.usable(i))
    }
}
