//! [`IpSet`]: a set of IP networks with an allocation-free membership test, for trusted-proxy
//! lists and access rules checked on every request.
//!
//! Networks are stored as merged, sorted, disjoint ranges per address family, so a lookup is
//! one binary search over a few integers, whatever the number of networks.

use std::net::IpAddr;

use rampart_config::Cidr;

/// A set of IPv4 and IPv6 networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// The union of `networks`.
    pub fn new<'a>(networks: impl IntoIterator<Item = &'a Cidr>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in networks {
            match net.addr() {
                IpAddr::V4(a) => {
                    let start = u32::from(a);
                    let span = u32::MAX.checked_shr(u32::from(net.prefix())).unwrap_or(0);
                    v4.push((start, start | span));
                }
                IpAddr::V6(a) => {
                    let start = u128::from(a);
                    let span = u128::MAX.checked_shr(u32::from(net.prefix())).unwrap_or(0);
                    v6.push((start, start | span));
                }
            }
        }
        Self {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// True when the set holds no network at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// True when `ip` lies in one of the networks. IPv4-mapped IPv6 addresses
    /// (`::ffff:192.0.2.1`) are looked up as IPv4.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => in_ranges(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => in_ranges(&self.v4, u32::from(v4)),
                None => in_ranges(&self.v6, u128::from(v6)),
            },
        }
    }
}

/// Sorts ranges and merges overlapping or adjacent ones.
fn merge<T: Ord + Copy + Bump>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if last.1.next().is_some_and(|n| start <= n) || start <= last.1 => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out.shrink_to_fit();
    out
}

/// The next integer, if any (for merging adjacent ranges).
trait Bump: Sized {
    fn next(self) -> Option<Self>;
}

impl Bump for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Bump for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let after = ranges.partition_point(|r| r.0 <= x);
    after > 0 && ranges[after - 1].1 >= x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(nets: &[&str]) -> IpSet {
        let cidrs: Vec<Cidr> = nets.iter().map(|n| n.parse().unwrap()).collect();
        IpSet::new(&cidrs)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn membership_follows_the_networks() {
        let s = set(&[
            "10.0.0.0/8",
            "192.168.1.0/24",
            "203.0.113.7",
            "2001:db8::/32",
        ]);
        for inside in [
            "10.0.0.0",
            "10.255.255.255",
            "192.168.1.77",
            "203.0.113.7",
            "2001:db8::1",
        ] {
            assert!(s.contains(ip(inside)), "{inside}");
        }
        for outside in [
            "11.0.0.0",
            "9.255.255.255",
            "192.168.2.1",
            "203.0.113.8",
            "2001:db9::1",
            "::1",
        ] {
            assert!(!s.contains(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn mapped_ipv4_addresses_match_ipv4_networks() {
        let s = set(&["127.0.0.0/8"]);
        assert!(s.contains(ip("::ffff:127.0.0.1")));
        assert!(!s.contains(ip("::1")));
    }

    #[test]
    fn overlapping_and_adjacent_networks_are_merged() {
        let s = set(&["10.0.0.0/9", "10.128.0.0/9", "10.1.0.0/16", "0.0.0.0/0"]);
        assert_eq!(s.v4, vec![(0, u32::MAX)]);
        let s = set(&["10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24"]);
        assert_eq!(s.v4.len(), 2);
        assert!(s.contains(ip("10.0.1.255")));
        assert!(!s.contains(ip("10.0.2.0")));
        let all6 = set(&["::/0"]);
        assert!(all6.contains(ip("ffff::1")));
    }

    #[test]
    fn an_empty_set_contains_nothing() {
        let s = IpSet::default();
        assert!(s.is_empty());
        assert!(!s.contains(ip("0.0.0.0")));
    }
}
