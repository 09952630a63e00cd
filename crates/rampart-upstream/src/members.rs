//! The targets of an upstream at one moment ([`Members`]): their addresses, weights, priority
//! tiers and the balancer compiled for them. Static upstreams have one for life; discovery
//! swaps in a new one when the targets change, carrying each remaining target's live
//! [`TargetStats`] over so health, ejections and latency history survive the swap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use http::HeaderValue;
use rampart_config::model::{Balance, UpstreamProtocol};
use rampart_config::syntax::Target as TargetSpec;

use crate::balance::Picker;
use crate::balance::sticky::target_id;
use crate::health::TargetStats;

/// One server of an upstream.
#[derive(Debug)]
pub struct Target {
    /// Where to connect.
    pub spec: TargetSpec,
    /// `host:port` as written (or as discovered), for logs and the `Host` of HTTP/2 requests.
    pub label: Arc<str>,
    /// The same as a header value.
    pub authority: HeaderValue,
    /// The per-worker pool this target's connections live in (stable across reloads).
    pub(crate) pool_key: usize,
    /// The DNS name the address was discovered under, for TLS server names.
    pub(crate) server_name: Option<Arc<str>>,
    /// Priority tier (SRV priority; 0 otherwise): lower tiers are used first.
    pub(crate) priority: u16,
    /// Id named by sticky-session cookies.
    pub(crate) sticky_id: u64,
}

impl Target {
    /// The host part of the target (DNS name or IP literal), for TLS server names.
    #[must_use]
    pub fn host(&self) -> String {
        if let Some(name) = &self.server_name {
            return name.to_string();
        }
        match &self.spec {
            TargetSpec::Addr(addr) => addr.ip().to_string(),
            TargetSpec::Host(host, _) => host.clone(),
            TargetSpec::Unix(_) => "localhost".to_owned(),
        }
    }
}

/// A target as a source describes it, before it joins a [`Members`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) spec: TargetSpec,
    pub(crate) label: String,
    /// 1 to 1000, unless config `weights` overrides it.
    pub(crate) weight: u32,
    pub(crate) priority: u16,
    pub(crate) server_name: Option<Arc<str>>,
}

impl Entry {
    /// A target written as `host:port` (weight 1, priority 0).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        Ok(Self {
            spec: rampart_config::syntax::parse_target(text)?,
            label: text.to_owned(),
            weight: 1,
            priority: 0,
            server_name: None,
        })
    }
}

/// The priority tiers of `entries` (sorted by priority) as `start..end` ranges, followed by
/// the range of every target when there is more than one tier.
fn tiers(entries: &[Entry]) -> Vec<(usize, usize)> {
    let mut tiers = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        if i == entries.len() || entries[i].priority != entries[start].priority {
            tiers.push((start, i));
            start = i;
        }
    }
    if tiers.len() != 1 {
        tiers.push((0, entries.len()));
    }
    tiers
}

/// The authority of HTTP/2 requests to a target: the DNS name it was found under, else its
/// label.
fn authority(e: &Entry) -> HeaderValue {
    let text = match (&e.server_name, &e.spec) {
        (Some(name), TargetSpec::Addr(addr)) => format!("{name}:{}", addr.port()),
        _ => e.label.clone(),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("upstream"))
}

/// What every snapshot of one upstream shares: how targets become pool keys and how they are
/// balanced.
#[derive(Debug)]
pub(crate) struct Shape {
    pub(crate) balance: Balance,
    pub(crate) protocol: UpstreamProtocol,
    /// Connections of different TLS settings never share a pool.
    pub(crate) tls_identity: Option<String>,
    /// Config `weights` by label: they win over a source's weights.
    pub(crate) weights: HashMap<String, u32>,
}

/// The targets of an upstream at one moment, ordered by priority tier.
#[derive(Debug)]
pub(crate) struct Members {
    pub(crate) targets: Box<[Target]>,
    /// Each target's live stats, in target order.
    pub(crate) stats: Box<[Arc<TargetStats>]>,
    pub(crate) weights: Box<[u32]>,
    /// One balancer per priority tier (`start..end` of `targets`), and one over every target
    /// when there are several tiers (used when no tier has a target taking requests).
    pickers: Box<[(usize, usize, Picker)]>,
    /// The entries these members were built from (to tell whether a new list changes anything).
    entries: Box<[Entry]>,
    /// The tier that takes requests now, `start..end` of `targets` (see
    /// [`Members::refresh_active`]).
    tier_start: AtomicUsize,
    tier_end: AtomicUsize,
}

impl Members {
    /// Builds members from `entries` (stably sorted by priority), reusing the stats of targets
    /// `previous` already had, by label. The second value lists the targets that are new.
    pub(crate) fn build(
        shape: &Shape,
        mut entries: Vec<Entry>,
        previous: Option<&Self>,
    ) -> (Self, Vec<usize>) {
        entries.sort_by_key(|e| e.priority);
        let mut fresh = Vec::new();
        let mut targets = Vec::with_capacity(entries.len());
        let mut stats = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let kept = previous.and_then(|p| p.stats_of(&e.label));
            if kept.is_none() {
                fresh.push(i);
            }
            stats.push(kept.unwrap_or_default());
            targets.push(Target {
                pool_key: pool_key(&e.spec, shape.protocol, shape.tls_identity.as_deref()),
                authority: authority(e),
                label: Arc::from(e.label.as_str()),
                spec: e.spec.clone(),
                server_name: e.server_name.clone(),
                priority: e.priority,
                sticky_id: target_id(&e.label),
            });
        }
        let weights: Box<[u32]> = entries
            .iter()
            .map(|e| {
                shape
                    .weights
                    .get(&e.label)
                    .copied()
                    .unwrap_or(e.weight)
                    .clamp(1, 1000)
            })
            .collect();
        let labels: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
        let pickers = tiers(&entries)
            .into_iter()
            .map(|(start, end)| {
                let picker = Picker::new(shape.balance, &labels[start..end], &weights[start..end]);
                (start, end, picker)
            })
            .collect();
        let members = Self {
            tier_start: AtomicUsize::new(0),
            tier_end: AtomicUsize::new(targets.len()),
            targets: targets.into(),
            stats: stats.into(),
            weights,
            pickers,
            entries: entries.into(),
        };
        members.refresh_active();
        (members, fresh)
    }

    /// Whether `entries` describe exactly these members.
    pub(crate) fn same_as(&self, entries: &[Entry]) -> bool {
        let mut sorted = entries.to_vec();
        sorted.sort_by_key(|e| e.priority);
        *self.entries == *sorted
    }

    fn stats_of(&self, label: &str) -> Option<Arc<TargetStats>> {
        let i = self.targets.iter().position(|t| &*t.label == label)?;
        Some(Arc::clone(&self.stats[i]))
    }

    /// Where the target with these stats is now (`None` once it left).
    pub(crate) fn index_of(&self, stats: &Arc<TargetStats>) -> Option<usize> {
        self.stats.iter().position(|s| Arc::ptr_eq(s, stats))
    }

    /// The target a sticky cookie's id names, if it is still a member.
    pub(crate) fn by_sticky_id(&self, id: u64) -> Option<usize> {
        self.targets.iter().position(|t| t.sticky_id == id)
    }

    /// The number of targets.
    pub(crate) fn len(&self) -> usize {
        self.targets.len()
    }

    /// The targets of the tier that takes requests now (all targets when there is one tier,
    /// or when no tier has a target taking requests).
    pub(crate) fn tier(&self) -> (usize, usize) {
        (
            self.tier_start.load(Ordering::Relaxed),
            self.tier_end.load(Ordering::Relaxed),
        )
    }

    /// The tier that takes requests now and its balancer.
    pub(crate) fn active_picker(&self) -> Option<(usize, usize, &Picker)> {
        let tier = self.tier();
        let (start, end, picker) = self
            .pickers
            .iter()
            .find(|(s, e, _)| (*s, *e) == tier)
            .or_else(|| self.pickers.last())?;
        Some((*start, *end, picker))
    }

    /// Recomputes the tier that takes requests: the lowest priority with a target taking
    /// requests. Returns it.
    pub(crate) fn refresh_active(&self) -> (usize, usize) {
        let n = self.targets.len();
        let mut tier = (0, n);
        let mut start = 0;
        for i in 0..=n {
            let boundary =
                i == n || (i > start && self.targets[i].priority != self.targets[start].priority);
            if boundary {
                if self.stats[start..i]
                    .iter()
                    .any(|s| s.state().takes_requests())
                {
                    tier = (start, i);
                    break;
                }
                start = i;
            }
        }
        self.tier_start.store(tier.0, Ordering::Relaxed);
        self.tier_end.store(tier.1, Ordering::Relaxed);
        tier
    }
}

#[cfg(test)]
impl Members {
    /// `n` targets `127.0.0.1:1..=n` balanced round robin (tests of health and selection).
    pub(crate) fn of(n: u16) -> Self {
        let shape = Shape {
            balance: Balance::RoundRobin,
            protocol: UpstreamProtocol::Http1,
            tls_identity: None,
            weights: HashMap::new(),
        };
        let entries = (1..=n)
            .filter_map(|p| Entry::parse(&format!("127.0.0.1:{p}")).ok())
            .collect();
        Self::build(&shape, entries, None).0
    }
}

/// Everything that makes connections interchangeable: target, protocol, TLS identity.
type PoolIdentity = (TargetSpec, UpstreamProtocol, Option<String>);

/// A small dense number per pool identity, the same for the life of the process, so pools are
/// found by indexing rather than hashing and survive config reloads.
pub(crate) fn pool_key(spec: &TargetSpec, protocol: UpstreamProtocol, tls: Option<&str>) -> usize {
    static KEYS: OnceLock<Mutex<HashMap<PoolIdentity, usize>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let next = keys.len();
    *keys
        .entry((spec.clone(), protocol, tls.map(str::to_owned)))
        .or_insert(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Reason, State};

    fn shape() -> Shape {
        Shape {
            balance: Balance::RoundRobin,
            protocol: UpstreamProtocol::Http1,
            tls_identity: None,
            weights: HashMap::new(),
        }
    }

    fn entry(label: &str, priority: u16) -> Entry {
        Entry {
            priority,
            ..Entry::parse(label).unwrap()
        }
    }

    #[test]
    fn a_rebuild_keeps_the_state_of_remaining_targets_only() {
        let (old, fresh) = Members::build(
            &shape(),
            vec![entry("127.0.0.1:1", 0), entry("127.0.0.1:2", 0)],
            None,
        );
        assert_eq!(fresh, [0, 1]);
        assert!(old.stats[1].transition(State::Healthy, State::Ejected, Reason::Consecutive5xx));
        let (new, fresh) = Members::build(
            &shape(),
            vec![entry("127.0.0.1:2", 0), entry("127.0.0.1:3", 0)],
            Some(&old),
        );
        assert_eq!(fresh, [1], "only 127.0.0.1:3 is new");
        assert!(Arc::ptr_eq(&new.stats[0], &old.stats[1]));
        assert_eq!(new.stats[0].state(), State::Ejected);
        assert_eq!(new.index_of(&old.stats[0]), None, "127.0.0.1:1 left");
        assert_eq!(new.by_sticky_id(target_id("127.0.0.1:1")), None);
        assert_eq!(new.by_sticky_id(target_id("127.0.0.1:3")), Some(1));
    }

    #[test]
    fn only_the_lowest_tier_with_a_usable_target_takes_requests() {
        let (m, _) = Members::build(
            &shape(),
            vec![
                entry("127.0.0.1:3", 20),
                entry("127.0.0.1:1", 10),
                entry("127.0.0.1:2", 10),
            ],
            None,
        );
        assert_eq!(&*m.targets[2].label, "127.0.0.1:3", "sorted by priority");
        assert_eq!(m.tier(), (0, 2));
        for s in &m.stats[..2] {
            assert!(s.transition(State::Healthy, State::Unhealthy, Reason::ActiveCheckFailed));
        }
        assert_eq!(m.refresh_active(), (2, 3), "the backup tier takes over");
        assert!(m.stats[2].transition(State::Healthy, State::Ejected, Reason::Consecutive5xx));
        assert_eq!(m.refresh_active(), (0, 3), "nothing usable: every target");
    }

    #[test]
    fn same_entries_in_another_order_change_nothing() {
        let entries = vec![entry("127.0.0.1:1", 0), entry("127.0.0.1:2", 1)];
        let (m, _) = Members::build(&shape(), entries.clone(), None);
        assert!(m.same_as(&[entries[0].clone(), entries[1].clone()]));
        assert!(!m.same_as(&entries[..1]));
    }

    #[test]
    fn pool_keys_are_stable_per_target_and_protocol() {
        let spec = |t: &str| rampart_config::syntax::parse_target(t).unwrap();
        let a = pool_key(&spec("127.0.0.1:9"), UpstreamProtocol::Http1, None);
        assert_eq!(
            a,
            pool_key(&spec("127.0.0.1:9"), UpstreamProtocol::Http1, None)
        );
        assert_ne!(
            a,
            pool_key(&spec("127.0.0.1:10"), UpstreamProtocol::Http1, None)
        );
        assert_ne!(
            a,
            pool_key(&spec("127.0.0.1:9"), UpstreamProtocol::H2c, None)
        );
    }
}
