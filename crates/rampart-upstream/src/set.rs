//! [`UpstreamSet`]: a compiled `[[upstreams]]` entry with its targets, balancer, health state,
//! retry rules, circuit breaker and, when configured, the discovery that keeps its targets
//! current. It holds those parts; the services that run on a set (health, probes, discovery
//! tasks, connecting) sit above it and start from [`crate::health::service`].

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderMap, Uri};
use rampart_config::ConfigError;
use rampart_config::model::{
    Balance, ProxyProtocolVersion, Upstream, UpstreamProtocol, UpstreamTls,
};

use crate::balance::sticky::Sticky;
use crate::balance::{HashOn, View};
use crate::breaker::Breaker;
use crate::circuit::{Circuit, CircuitObserver, CircuitStatus};
use crate::discovery::Discovery;
use crate::health::TargetStatus;
use crate::health::check::HealthCheckRt;
use crate::health::passive::{Health, OutlierRt};
use crate::members::{Entry, Members, Shape};
use crate::retry::RetryRt;

pub use crate::members::Target;

/// A named group of targets with its connection settings.
#[derive(Debug)]
pub struct UpstreamSet {
    /// Name from config.
    pub name: Arc<str>,
    /// Protocol spoken to the targets.
    pub protocol: UpstreamProtocol,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time from the end of the request until the response headers arrive.
    pub request_timeout: Duration,
    /// Idle time after which a pooled connection is closed.
    pub idle_timeout: Duration,
    /// Most idle HTTP/1.1 connections per target and worker.
    pub max_idle_per_target: usize,
    /// TLS to the targets, when configured.
    pub tls: Option<UpstreamTlsRt>,
    /// PROXY protocol header opening each connection; such connections are never pooled.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    /// `balance` as written.
    pub balance: Balance,
    pub(crate) shape: Shape,
    members: Membership,
    hash_on: Option<HashOn>,
    pub(crate) sticky: Option<Sticky>,
    pub(crate) health: Health,
    pub(crate) health_check: Option<HealthCheckRt>,
    pub(crate) retry: RetryRt,
    pub(crate) breaker: Option<Breaker>,
    /// The circuit that opens after failures, when configured.
    pub(crate) circuit: Option<Circuit>,
    pub(crate) discovery: Option<Discovery>,
    /// Becomes true once discovery has produced a first list of targets.
    ready: tokio::sync::watch::Sender<bool>,
    /// Whether [`UpstreamSet::start_health`] has run.
    pub(crate) health_started: AtomicBool,
    /// Attempts beyond the first, all requests together.
    pub(crate) retries_total: AtomicU64,
}

/// Static targets never change; discovered ones are swapped whole.
#[derive(Debug)]
enum Membership {
    Fixed(Arc<Members>),
    Live(ArcSwap<Members>),
}

/// The members a request works with from start to end, even if discovery swaps them meanwhile.
pub(crate) enum Snapshot<'a> {
    Fixed(&'a Members),
    Live(Arc<Members>),
}

impl Deref for Snapshot<'_> {
    type Target = Members;

    fn deref(&self) -> &Members {
        match self {
            Self::Fixed(m) => m,
            Self::Live(m) => m,
        }
    }
}

/// Most tried targets a pick takes into account (a request makes at most this many attempts).
const MAX_TRIED: usize = 8;

/// A new set of targets that discovery swapped in.
pub(crate) struct MembersChange {
    pub(crate) members: Arc<Members>,
    /// Indexes of the targets that joined.
    pub(crate) fresh: Vec<usize>,
    /// The upstream had no targets before (its first discovery answer).
    pub(crate) first: bool,
}

/// What the balancer needs of a request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PickKey {
    /// Hash of the `hash_on` key.
    pub(crate) hash: Option<u64>,
    /// Target id named by a valid sticky cookie.
    pub(crate) sticky: Option<u64>,
}

/// An upstream's compiled TLS settings.
#[derive(Debug)]
pub struct UpstreamTlsRt {
    /// The rustls client configuration (roots, client certificate, ALPN).
    pub config: Arc<rustls::ClientConfig>,
    /// The settings as written (for the SNI name).
    pub settings: UpstreamTls,
}

impl UpstreamSet {
    /// Compiles an upstream from config; `path` (like `upstreams[0]`) locates errors.
    ///
    /// # Errors
    /// A target that does not parse (validation normally catches this first), or a discovery
    /// file that cannot be read.
    pub fn from_config(u: &Upstream, path: &str) -> Result<Self, Vec<ConfigError>> {
        let tls = match u.tls.as_ref().filter(|t| t.enabled) {
            Some(settings) => {
                let http2 = u.protocol != UpstreamProtocol::Http1;
                let config = crate::tls::client_config(settings, http2, &format!("{path}.tls"))?;
                Some(UpstreamTlsRt {
                    config,
                    settings: settings.clone(),
                })
            }
            None => None,
        };
        let mut errors = Vec::new();
        let mut entries = Vec::with_capacity(u.targets.len());
        for (i, t) in u.targets.iter().enumerate() {
            match Entry::parse(t) {
                Ok(e) => entries.push(e),
                Err(msg) => errors.push(ConfigError::new(
                    Some(t.span()),
                    format!("{path}.targets[{i}]"),
                    msg,
                )),
            }
        }
        let hash_on = compile_hash_on(u, path, &mut errors);
        let discovery = match &u.discovery {
            Some(d) => match Discovery::new(d, &format!("{path}.discovery")) {
                Ok((discovery, initial)) => {
                    entries = initial;
                    Some(discovery)
                }
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            None => None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let shape = Shape {
            balance: u.balance,
            protocol: u.protocol,
            // Connections of different TLS settings never share a pool.
            tls_identity: tls
                .as_ref()
                .map(|t| format!("{}|{:?}", u.name.get(), t.settings)),
            weights: u.weights.iter().map(|(k, w)| (k.clone(), **w)).collect(),
        };
        let (members, _) = Members::build(&shape, entries, None);
        let members = Arc::new(members);
        let ready = discovery.as_ref().is_none_or(Discovery::starts_ready);
        Ok(Self {
            name: Arc::from(u.name.as_str()),
            protocol: u.protocol,
            connect_timeout: u.connect_timeout.get(),
            request_timeout: u.request_timeout.get(),
            idle_timeout: u.idle_timeout.get(),
            max_idle_per_target: u.max_idle_per_target,
            tls,
            proxy_protocol: u.proxy_protocol.as_ref().map(|v| *v.get()),
            balance: u.balance,
            shape,
            members: if discovery.is_some() {
                Membership::Live(ArcSwap::new(members))
            } else {
                Membership::Fixed(members)
            },
            hash_on,
            sticky: u.sticky.as_ref().map(|s| {
                Sticky::new(
                    &s.cookie,
                    &s.secret,
                    s.max_age.map(rampart_config::HumanDuration::get),
                )
            }),
            health: Health::new(OutlierRt::new(&u.outlier)),
            health_check: u.health_check.as_ref().map(HealthCheckRt::new),
            retry: RetryRt::new(&u.retry),
            breaker: u.circuit_breaker.as_ref().map(Breaker::new),
            circuit: u.circuit_breaker.as_ref().and_then(Circuit::new),
            discovery,
            ready: tokio::sync::watch::Sender::new(ready),
            health_started: AtomicBool::new(false),
            retries_total: AtomicU64::new(0),
        })
    }

    /// The targets now, for the whole of one request.
    pub(crate) fn members(&self) -> Snapshot<'_> {
        match &self.members {
            Membership::Fixed(m) => Snapshot::Fixed(m),
            Membership::Live(m) => Snapshot::Live(m.load_full()),
        }
    }

    /// Replaces the targets with `entries` when they differ, keeping the state of the targets
    /// that stay; `None` when nothing changed (or the targets are static).
    pub(crate) fn replace_members(&self, entries: Vec<Entry>) -> Option<MembersChange> {
        let Membership::Live(live) = &self.members else {
            return None;
        };
        let old = live.load_full();
        if old.same_as(&entries) {
            self.ready.send_replace(true);
            return None;
        }
        let (new, fresh) = Members::build(&self.shape, entries, Some(&old));
        let new = Arc::new(new);
        live.store(Arc::clone(&new));
        self.health.refresh_panic(&self.name, &new);
        self.ready.send_replace(true);
        Some(MembersChange {
            members: new,
            fresh,
            first: old.len() == 0,
        })
    }

    /// Discovery has answered, even if only with a failure: requests stop waiting for it.
    pub(crate) fn discovery_answered(&self) {
        self.ready.send_replace(true);
    }

    /// Waits (at most `limit`) until discovery has answered for the first time.
    pub(crate) async fn wait_ready(&self, limit: Duration) {
        let mut ready = self.ready.subscribe();
        let _ = tokio::time::timeout(limit, ready.wait_for(|r| *r)).await;
    }

    /// Picks a target of `m` for a request, skipping the ones it already `tried`. Only the
    /// priority tier that takes requests is considered.
    pub(crate) fn pick(&self, m: &Members, key: PickKey, tried: &[usize]) -> Option<usize> {
        // In panic mode a retry still prefers a target that takes requests, if one is left:
        // panic mode spreads load, it should not send a retry to a target known to be down.
        let panicking = self.health.panicking();
        if panicking
            && !tried.is_empty()
            && let Some(i) = self.pick_in(m, key, tried, false)
        {
            return Some(i);
        }
        self.pick_in(m, key, tried, panicking)
    }

    fn pick_in(&self, m: &Members, key: PickKey, tried: &[usize], all: bool) -> Option<usize> {
        let (start, end, picker) = m.active_picker()?;
        let mut local = [0usize; MAX_TRIED];
        let mut n = 0;
        for &t in tried
            .iter()
            .filter(|&&t| (start..end).contains(&t))
            .take(MAX_TRIED)
        {
            local[n] = t - start;
            n += 1;
        }
        let view = View {
            stats: m.stats.get(start..end)?,
            weights: m.weights.get(start..end)?,
            all,
            tried: &local[..n],
            max_in_flight: self.breaker.as_ref().map_or(u32::MAX, |b| b.per_target),
        };
        if let Some(i) = key.sticky.and_then(|id| m.by_sticky_id(id))
            && (start..end).contains(&i)
            && view.usable(i - start)
        {
            return Some(i);
        }
        picker.pick(&view, key.hash).map(|i| i + start)
    }

    /// The balancing key of a request (empty when the algorithm needs none).
    pub(crate) fn pick_key(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        client_ip: Option<IpAddr>,
    ) -> PickKey {
        PickKey {
            hash: self
                .hash_on
                .as_ref()
                .and_then(|on| on.key(uri, headers, client_ip)),
            sticky: self.sticky.as_ref().and_then(|s| s.target(headers)),
        }
    }

    /// The targets' labels now (`host:port`, as written or as discovered).
    #[must_use]
    pub fn target_labels(&self) -> Vec<Arc<str>> {
        self.members()
            .targets
            .iter()
            .map(|t| Arc::clone(&t.label))
            .collect()
    }

    /// Where the targets come from, for `rampart explain` (`None` for a static list).
    #[must_use]
    pub fn discovery_source(&self) -> Option<String> {
        self.discovery.as_ref().map(Discovery::describe)
    }

    /// Each target's state, reason, in-flight count, latency EWMA and totals (for the admin
    /// API and metrics). Reads atomics only.
    #[must_use]
    pub fn target_statuses(&self) -> Vec<TargetStatus> {
        let m = self.members();
        m.targets
            .iter()
            .zip(m.stats.iter())
            .map(|(t, s)| TargetStatus::read(&t.label, s))
            .collect()
    }

    /// Retries (attempts beyond the first) since the upstream was loaded, for
    /// `rampart_upstream_retries_total`.
    #[must_use]
    pub fn retries_total(&self) -> u64 {
        self.retries_total.load(Ordering::Relaxed)
    }

    /// Idle pooled HTTP/1.1 connections to this upstream's targets, over all workers, for
    /// `rampart_upstream_pool_idle_connections`.
    #[must_use]
    pub fn idle_connections(&self) -> usize {
        self.members()
            .targets
            .iter()
            .map(|t| crate::pool::idle_connections(t.pool_key))
            .sum()
    }

    /// The circuit's state, when `[upstreams.circuit_breaker]` can open it (admin API,
    /// metrics).
    #[must_use]
    pub fn circuit_status(&self) -> Option<CircuitStatus> {
        self.circuit.as_ref().map(Circuit::status)
    }

    /// Tells `observe` of every transition of the circuit from now on (the first observer set
    /// stays; nothing happens without a circuit).
    pub fn observe_circuit(&self, observe: CircuitObserver) {
        if let Some(c) = &self.circuit {
            let _ = c.observer.set(observe);
        }
    }

    /// Whether requests currently spread over all targets because too many are out.
    #[must_use]
    pub fn in_panic_mode(&self) -> bool {
        self.health.panicking()
    }
}

fn compile_hash_on(u: &Upstream, path: &str, errors: &mut Vec<ConfigError>) -> Option<HashOn> {
    match u.hash_on.as_ref() {
        Some(text) => match HashOn::parse(text) {
            Ok(on) => Some(on),
            Err(msg) => {
                errors.push(ConfigError::new(
                    Some(text.span()),
                    format!("{path}.hash_on"),
                    msg,
                ));
                None
            }
        },
        None if u.balance.is_hashing() => Some(HashOn::ClientIp),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn set_with(targets: &[&str], extra: &str) -> UpstreamSet {
        let text = format!(
            "name = \"u\"\ntargets = [{}]\n{extra}\n",
            targets
                .iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let u: Upstream = toml::from_str(&text).unwrap();
        UpstreamSet::from_config(&u, "upstreams[0]").unwrap()
    }

    fn set(targets: &[&str]) -> UpstreamSet {
        set_with(targets, "")
    }

    #[test]
    fn round_robin_visits_every_target_in_turn() {
        let s = set_with(
            &["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
            "balance = \"round_robin\"",
        );
        let picks: Vec<usize> = (0..6)
            .map(|_| s.pick(&s.members(), PickKey::default(), &[]).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_retry_skips_the_tried_targets() {
        let s = set(&["127.0.0.1:1", "127.0.0.1:2"]);
        for _ in 0..50 {
            assert_eq!(s.pick(&s.members(), PickKey::default(), &[1]), Some(0));
        }
        assert_eq!(s.pick(&s.members(), PickKey::default(), &[0, 1]), None);
    }

    #[test]
    fn weights_and_hash_keys_come_from_config() {
        let s = set_with(
            &["127.0.0.1:1", "127.0.0.1:2"],
            "balance = \"maglev\"\nhash_on = \"header:x-user\"\nweights = { \"127.0.0.1:2\" = 3 }",
        );
        assert_eq!(&*s.members().weights, &[1, 3]);
        let mut headers = HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_static("alice"));
        let key = s.pick_key(&Uri::from_static("/"), &headers, None);
        assert!(key.hash.is_some());
        let m = s.members();
        let first = s.pick(&m, key, &[]);
        assert!(
            (0..20).all(|_| s.pick(&m, key, &[]) == first),
            "the same key, the same target"
        );
    }

    #[test]
    fn a_bad_hash_key_is_reported_at_its_span() {
        let u: Upstream = toml::from_str(
            "name = \"u\"\ntargets = [\"127.0.0.1:1\"]\nbalance = \"ring_hash\"\nhash_on = \"query:x\"",
        )
        .unwrap();
        let errors = UpstreamSet::from_config(&u, "upstreams[0]").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(format!("{errors:?}").contains("hash_on"));
    }

    #[test]
    fn statuses_report_every_target() {
        let s = set(&["127.0.0.1:1", "127.0.0.1:2"]);
        let st = s.target_statuses();
        assert_eq!(st.len(), 2);
        assert_eq!(st[1].target, "127.0.0.1:2");
        let json = serde_json::to_value(&st[0]).unwrap();
        assert_eq!(json["state"], "healthy");
        assert!(json["reason"].is_null());
        for key in [
            "since_seconds",
            "in_flight",
            "ewma_ms",
            "requests",
            "failures",
            "abandoned",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn a_sticky_cookie_for_a_removed_target_falls_back() {
        let s = set_with(
            &["127.0.0.1:1", "127.0.0.1:2"],
            "balance = \"round_robin\"\n[sticky]\nsecret = \"0123456789abcdef\"",
        );
        let gone = crate::balance::sticky::target_id("127.0.0.1:3");
        let key = PickKey {
            hash: None,
            sticky: Some(gone),
        };
        assert!(s.pick(&s.members(), key, &[]).is_some());
        let kept = crate::balance::sticky::target_id("127.0.0.1:2");
        let key = PickKey {
            hash: None,
            sticky: Some(kept),
        };
        for _ in 0..5 {
            assert_eq!(s.pick(&s.members(), key, &[]), Some(1));
        }
    }

    #[test]
    fn in_panic_mode_a_retry_prefers_a_target_that_takes_requests() {
        use crate::health::{Reason, State};
        let s = set(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        let m = s.members();
        for i in [0, 1] {
            assert!(m.stats[i].transition(
                State::Healthy,
                State::Unhealthy,
                Reason::ActiveCheckFailed
            ));
        }
        s.health.refresh_panic(&s.name, &m);
        assert!(s.in_panic_mode());
        for _ in 0..50 {
            assert_eq!(s.pick(&m, PickKey::default(), &[0]), Some(2));
        }
        assert_eq!(
            s.pick(&m, PickKey::default(), &[0, 2]),
            Some(1),
            "panic mode still reaches the rest"
        );
    }
}
