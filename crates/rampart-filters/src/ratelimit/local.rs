//! [`LocalTable`]: GCRA buckets of one policy in this process, shared by every worker.
//!
//! Buckets live in a fixed number of shards, each a read-write lock over a map from the key's
//! 64-bit hash to the bucket's TAT in an atomic. A request for a known key takes only its
//! shard's read lock and updates the TAT with a compare-and-swap; only a new key takes the
//! write lock. Memory is bounded: a bucket whose TAT has passed is full, which is the same as
//! absent, so inserts sweep such buckets out of their shard every [`SWEEP_EVERY_US`] or when
//! the shard is at its share of `max_keys`. New keys that still find their shard full share
//! one overflow bucket until room frees up.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use super::gcra::{Rate, Verdict};

/// Number of shards (a power of two).
const SHARDS: usize = 64;

/// How often (in microseconds of limiter time) an insert sweeps its shard of idle buckets.
pub(crate) const SWEEP_EVERY_US: u64 = 10_000_000;

/// The map key of the shared overflow bucket (real keys never hash to it: see [`slot`]).
const OVERFLOW: u64 = 0;

/// A map from key hash to TAT, hashed by the key hash itself.
type Buckets = HashMap<u64, AtomicU64, BuildHasherDefault<IdentityHasher>>;

/// The buckets of one policy.
#[derive(Debug)]
pub struct LocalTable {
    shards: Box<[Shard]>,
    /// Most buckets a shard holds before new keys overflow.
    per_shard: usize,
}

/// One shard, aligned to its own cache lines so that workers hitting different shards do not
/// contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    inner: RwLock<ShardInner>,
}

#[derive(Debug, Default)]
struct ShardInner {
    buckets: Buckets,
    last_sweep_us: u64,
}

impl LocalTable {
    /// A table holding at most about `max_keys` buckets.
    #[must_use]
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Decides a request with key hash `key` at `now_us` under `rate`.
    pub fn check(&self, key: u64, now_us: u64, rate: &Rate) -> Verdict {
        let key = slot(key);
        let shard = &self.shards[shard_index(key)];
        {
            let inner = shard.inner.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(tat) = inner.buckets.get(&key) {
                return update(tat, now_us, rate);
            }
        }
        let mut inner = shard.inner.write().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *inner;
        if inner.buckets.len() >= self.per_shard
            || now_us.saturating_sub(inner.last_sweep_us) >= SWEEP_EVERY_US
        {
            sweep(inner, now_us);
        }
        let key = if inner.buckets.len() >= self.per_shard && !inner.buckets.contains_key(&key) {
            OVERFLOW
        } else {
            key
        };
        let tat = inner
            .buckets
            .entry(key)
            .or_insert_with(|| AtomicU64::new(0));
        update(tat, now_us, rate)
    }

    /// Buckets held right now (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.inner
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .buckets
                    .len()
            })
            .sum()
    }

    /// True when no bucket is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Moves the real key 0 off the overflow slot.
const fn slot(key: u64) -> u64 {
    if key == OVERFLOW { 1 } else { key }
}

/// The shard of a key: its top bits (the low bits pick the map bucket).
const fn shard_index(key: u64) -> usize {
    (key >> (64 - SHARDS.trailing_zeros())) as usize
}

/// Applies GCRA to one bucket with a compare-and-swap loop (other workers may update it
/// concurrently under the same read lock).
fn update(tat: &AtomicU64, now_us: u64, rate: &Rate) -> Verdict {
    let mut current = tat.load(Ordering::Acquire);
    loop {
        let (verdict, new_tat) = rate.decide(current, now_us);
        let Some(new_tat) = new_tat else {
            return verdict;
        };
        match tat.compare_exchange_weak(current, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return verdict,
            Err(seen) => current = seen,
        }
    }
}

/// Forgets full buckets (TAT not after `now_us`) and gives memory back when most is unused.
fn sweep(inner: &mut ShardInner, now_us: u64) {
    inner
        .buckets
        .retain(|_, tat| tat.load(Ordering::Acquire) > now_us);
    if inner.buckets.capacity() > 64 && inner.buckets.len() < inner.buckets.capacity() / 4 {
        inner.buckets.shrink_to_fit();
    }
    inner.last_sweep_us = now_us;
}

/// The keys are already hashes: use them as they are.
#[derive(Debug, Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate() -> Rate {
        // 10 per second, bursts of 10.
        Rate::new(10, 1_000_000, 10).unwrap()
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let table = LocalTable::new(1000);
        let r = rate();
        let a = (0..15).filter(|_| table.check(42, 1, &r).allowed).count();
        let b = (0..15).filter(|_| table.check(43, 1, &r).allowed).count();
        assert_eq!((a, b), (10, 10));
    }

    #[test]
    fn idle_buckets_are_swept_and_memory_stays_bounded() {
        let table = LocalTable::new(SHARDS * 4);
        let r = rate();
        // Many distinct keys at one instant: each shard holds at most 4 plus the overflow.
        for k in 0..10_000u64 {
            table.check(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1_000, &r);
        }
        assert!(table.len() <= SHARDS * 5, "{} buckets", table.len());
        // Once their buckets have refilled, new keys sweep the idle ones away.
        let later = 1_000 + SWEEP_EVERY_US + 2_000_000;
        for k in 0..SHARDS as u64 * 4 {
            table.check(
                (k + 1_000_000).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                later,
                &r,
            );
        }
        assert!(table.len() <= SHARDS * 5, "{} buckets", table.len());
    }

    #[test]
    fn new_keys_in_a_full_shard_share_the_overflow_bucket() {
        let table = LocalTable::new(SHARDS);
        let r = rate();
        // Fill every shard's single slot, then keep hitting with fresh keys at the same time.
        let mut admitted = 0;
        for k in 0..100_000u64 {
            if table
                .check(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1, &r)
                .allowed
            {
                admitted += 1;
            }
        }
        // 64 shards × (10 for the one real key + at most 10 for the overflow bucket).
        assert!(admitted <= SHARDS * 20, "{admitted} admitted");
    }

    #[test]
    fn concurrent_workers_never_exceed_the_burst() {
        let table = std::sync::Arc::new(LocalTable::new(1000));
        let r = Rate::new(1000, 3_600_000_000, 1000).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let t = table.clone();
                std::thread::spawn(move || (0..1000).filter(|_| t.check(7, 5, &r).allowed).count())
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 1000);
    }
}
