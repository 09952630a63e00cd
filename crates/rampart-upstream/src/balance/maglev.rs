//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size
//! filled from each target's permutation; a key is one table read. Weights give a target that
//! many turns per filling round. When a key's target is unusable the key is re-hashed, so the
//! other keys keep their targets.

use super::View;
use super::hash::{mix, stable_hash};

/// Table size: a prime well above 100 × the number of targets expected.
pub(crate) const TABLE_SIZE: usize = 65_537;
/// Re-hash attempts before falling back to a scan.
const REHASHES: u64 = 8;

/// The lookup table.
#[derive(Debug)]
pub struct Table {
    entries: Box<[u32]>,
}

impl Table {
    /// Fills the table for targets with these labels and weights.
    #[must_use]
    pub fn new(labels: &[&str], weights: &[u32]) -> Self {
        let m = TABLE_SIZE as u64;
        let n = labels.len();
        let mut entries = vec![u32::MAX; TABLE_SIZE];
        if n == 0 {
            return Self {
                entries: entries.into_boxed_slice(),
            };
        }
        let perms: Vec<(u64, u64)> = labels
            .iter()
            .map(|l| {
                let offset = stable_hash(l.as_bytes()) % m;
                let skip = mix(stable_hash(l.as_bytes()) ^ 0x9e37_79b9_7f4a_7c15) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut filled = 0;
        'fill: loop {
            for (i, &(offset, skip)) in perms.iter().enumerate() {
                for _ in 0..weights.get(i).copied().unwrap_or(1).max(1) {
                    let mut slot = ((offset + next[i] * skip) % m) as usize;
                    while entries[slot] != u32::MAX {
                        next[i] += 1;
                        slot = ((offset + next[i] * skip) % m) as usize;
                    }
                    entries[slot] = u32::try_from(i).unwrap_or(u32::MAX);
                    next[i] += 1;
                    filled += 1;
                    if filled == TABLE_SIZE {
                        break 'fill;
                    }
                }
            }
        }
        Self {
            entries: entries.into_boxed_slice(),
        }
    }

    /// The target of `key`, re-hashing when it is unusable.
    pub(super) fn pick(&self, view: &View<'_>, key: u64) -> Option<usize> {
        let mut h = key;
        for attempt in 0..REHASHES {
            let i = self.entries[(h % TABLE_SIZE as u64) as usize] as usize;
            if i < view.stats.len() && view.usable(i) {
                return Some(i);
            }
            h = mix(h ^ (attempt + 1));
        }
        view.scan()
    }

    /// The table entry of `key` (tests).
    #[cfg(test)]
    pub(crate) fn owner(&self, key: u64) -> u32 {
        self.entries[(key % TABLE_SIZE as u64) as usize]
    }
}
