//! Connection caps checked at accept, before a connection costs anything: a global count and a
//! per-IP count, shared by every worker without locks.
//!
//! The global count is one atomic. Per-IP counts live in a count-min sketch: two arrays of
//! atomic counters indexed by two independent keyed hashes of the IP. A connection increments
//! both of its counters, and its IP's count is estimated as the smaller one. Collisions can
//! only over-estimate, never let an IP past its cap; with 2 × 65,536 counters and a random key,
//! two addresses sharing both counters is vanishingly rare and cannot be arranged by a client.
//! Memory is fixed (512 KiB) whatever the number of clients, so nothing needs evicting.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

const BUCKETS: usize = 1 << 16;

/// Process-wide connection counters (they outlive config reloads).
pub(crate) struct ConnLimits {
    total: AtomicUsize,
    rows: [Box<[AtomicU32]>; 2],
    hasher: RandomState,
    refused: AtomicU64,
    last_warning: AtomicU64,
    started: Instant,
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `limits.max_connections` reached.
    Total,
    /// `limits.max_connections_per_ip` reached for this address.
    PerIp,
}

/// Held for a connection's lifetime; gives its slots back on drop.
pub(crate) struct ConnPermit {
    limits: Arc<ConnLimits>,
    slots: Option<[usize; 2]>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(slots) = self.slots {
            self.limits.release(slots);
        }
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        let row = || {
            (0..BUCKETS)
                .map(|_| AtomicU32::new(0))
                .collect::<Box<[_]>>()
        };
        Self {
            total: AtomicUsize::new(0),
            rows: [row(), row()],
            hasher: RandomState::new(),
            refused: AtomicU64::new(0),
            last_warning: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        }
    }
}

impl ConnLimits {
    /// Admits a connection from `ip` under caps `max_total` and `max_per_ip` (0: none);
    /// `exempt` peers (trusted proxies, load balancers) count only towards the total.
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
        exempt: bool,
    ) -> Result<ConnPermit, Refusal> {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let mut permit = ConnPermit {
            limits: Arc::clone(self),
            slots: None,
        };
        if max_total != 0 && total > max_total {
            self.note_refusal(Refusal::Total, ip);
            return Err(Refusal::Total);
        }
        if max_per_ip == 0 || exempt {
            return Ok(permit);
        }
        let slots = self.slots(ip);
        let a = self.rows[0][slots[0]].fetch_add(1, Ordering::Relaxed) + 1;
        let b = self.rows[1][slots[1]].fetch_add(1, Ordering::Relaxed) + 1;
        permit.slots = Some(slots);
        if usize::try_from(a.min(b)).unwrap_or(usize::MAX) > max_per_ip {
            self.note_refusal(Refusal::PerIp, ip);
            return Err(Refusal::PerIp);
        }
        Ok(permit)
    }

    /// Open connections right now.
    pub(crate) fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Connections refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn slots(&self, ip: IpAddr) -> [usize; 2] {
        let h = self.hasher.hash_one(ip.to_canonical());
        #[allow(clippy::cast_possible_truncation)] // masked to 16 bits
        let slot = |shift: u32| ((h >> shift) as usize) & (BUCKETS - 1);
        [slot(0), slot(32)]
    }

    fn release(&self, slots: [usize; 2]) {
        self.rows[0][slots[0]].fetch_sub(1, Ordering::Relaxed);
        self.rows[1][slots[1]].fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a refusal and warns at most once a second (a flood must not flood the logs).
    fn note_refusal(&self, why: Refusal, ip: IpAddr) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.started.elapsed().as_secs();
        let last = self.last_warning.load(Ordering::Relaxed);
        if last != now
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let reason = match why {
                Refusal::Total => "max_connections",
                Refusal::PerIp => "max_connections_per_ip",
            };
            tracing::warn!(peer = %ip, reason, refused_total = refused, "connection refused at accept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_per_ip_cap_admits_up_to_the_limit_and_frees_on_drop() {
        let limits = Arc::new(ConnLimits::default());
        let a = ip("192.0.2.1");
        let held: Vec<ConnPermit> = (0..3)
            .map(|_| limits.try_acquire(a, 0, 3, false).unwrap())
            .collect();
        assert_eq!(
            limits.try_acquire(a, 0, 3, false).err(),
            Some(Refusal::PerIp)
        );
        // Another address is unaffected, and an exempt peer only counts towards the total.
        assert!(limits.try_acquire(ip("192.0.2.2"), 0, 3, false).is_ok());
        assert!(limits.try_acquire(a, 0, 3, true).is_ok());
        drop(held);
        assert!(limits.try_acquire(a, 0, 3, false).is_ok());
        assert_eq!(limits.open(), 0);
        assert_eq!(limits.refused(), 1);
    }

    #[test]
    fn the_total_cap_counts_every_address() {
        let limits = Arc::new(ConnLimits::default());
        let held: Vec<ConnPermit> = (0..5)
            .map(|i| {
                limits
                    .try_acquire(ip(&format!("198.51.100.{i}")), 5, 0, false)
                    .unwrap()
            })
            .collect();
        assert_eq!(limits.open(), 5);
        assert_eq!(
            limits.try_acquire(ip("203.0.113.1"), 5, 0, false).err(),
            Some(Refusal::Total)
        );
        assert_eq!(limits.open(), 5, "a refused connection gives its slot back");
        drop(held);
        assert_eq!(limits.open(), 0);
    }

    #[test]
    fn many_distinct_addresses_do_not_trip_each_others_cap() {
        let limits = Arc::new(ConnLimits::default());
        let held: Vec<ConnPermit> = (0..20_000u32)
            .map(|i| {
                let addr = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
                limits.try_acquire(addr, 0, 10, false).unwrap()
            })
            .collect();
        assert_eq!(held.len(), 20_000);
    }
}
