//! [`UpstreamSet`]: a compiled `[[upstreams]]` entry with its targets, balancer, health state,
//! retry rules and circuit breaker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Uri};
use rampart_config::model::{
    Balance, ProxyProtocolVersion, Upstream, UpstreamProtocol, UpstreamTls,
};
use rampart_config::syntax::{self, Target as TargetSpec};
use rampart_config::{ConfigError, Located};

use crate::balance::sticky::Sticky;
use crate::balance::{HashOn, Picker, View};
use crate::breaker::Breaker;
use crate::health::passive::{Health, OutlierRt};
use crate::health::probe::HealthCheckRt;
use crate::health::{TargetStats, TargetStatus};
use crate::retry::RetryRt;

/// One server of an upstream.
#[derive(Debug)]
pub struct Target {
    /// Where to connect.
    pub spec: TargetSpec,
    /// `host:port` as written, for logs and the `Host` of HTTP/2 requests.
    pub label: Arc<str>,
    /// The same as a header value.
    pub authority: HeaderValue,
    /// The per-worker pool this target's connections live in (stable across reloads).
    pub(crate) pool_key: usize,
}

impl Target {
    /// The host part of the target (DNS name or IP literal), for TLS server names.
    #[must_use]
    pub fn host(&self) -> String {
        match &self.spec {
            TargetSpec::Addr(addr) => addr.ip().to_string(),
            TargetSpec::Host(host, _) => host.clone(),
            TargetSpec::Unix(_) => "localhost".to_owned(),
        }
    }
}

/// A named group of targets with its connection settings.
#[derive(Debug)]
pub struct UpstreamSet {
    /// Name from config.
    pub name: Arc<str>,
    /// The targets, in config order.
    pub targets: Vec<Target>,
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
    /// Weight of each target, in target order.
    weights: Box<[u32]>,
    picker: Picker,
    hash_on: Option<HashOn>,
    pub(crate) sticky: Option<Sticky>,
    pub(crate) health: Health,
    pub(crate) health_check: Option<HealthCheckRt>,
    pub(crate) retry: RetryRt,
    pub(crate) breaker: Option<Breaker>,
    health_started: AtomicBool,
    /// Attempts beyond the first, all requests together.
    pub(crate) retries_total: AtomicU64,
}

/// What the balancer needs of a request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PickKey {
    /// Hash of the `hash_on` key.
    pub(crate) hash: Option<u64>,
    /// Target named by a valid sticky cookie.
    pub(crate) sticky: Option<usize>,
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
    /// A target that does not parse (validation normally catches this first).
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
        // Connections of different TLS settings never share a pool.
        let identity = tls
            .as_ref()
            .map(|t| format!("{}|{:?}", u.name.get(), t.settings));
        let mut errors = Vec::new();
        let mut targets = Vec::with_capacity(u.targets.len());
        for (i, t) in u.targets.iter().enumerate() {
            match build_target(t, u.protocol, identity.as_deref()) {
                Ok(target) => targets.push(target),
                Err(msg) => errors.push(ConfigError::new(
                    Some(t.span()),
                    format!("{path}.targets[{i}]"),
                    msg,
                )),
            }
        }
        let hash_on = match u.hash_on.as_ref() {
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
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let labels: Vec<&str> = targets.iter().map(|t| &*t.label).collect();
        let weights: Box<[u32]> = labels
            .iter()
            .map(|l| u.weights.get(*l).map_or(1, |w| **w).clamp(1, 1000))
            .collect();
        let sticky = u.sticky.as_ref().map(|s| {
            Sticky::new(
                &s.cookie,
                &s.secret,
                s.max_age.map(rampart_config::HumanDuration::get),
                &labels,
            )
        });
        let picker = Picker::new(u.balance, &labels, &weights);
        let targets_len = targets.len();
        Ok(Self {
            name: Arc::from(u.name.as_str()),
            targets,
            protocol: u.protocol,
            connect_timeout: u.connect_timeout.get(),
            request_timeout: u.request_timeout.get(),
            idle_timeout: u.idle_timeout.get(),
            max_idle_per_target: u.max_idle_per_target,
            tls,
            proxy_protocol: u.proxy_protocol.as_ref().map(|v| *v.get()),
            balance: u.balance,
            picker,
            weights,
            hash_on,
            sticky,
            health: Health::new(targets_len, OutlierRt::new(&u.outlier)),
            health_check: u.health_check.as_ref().map(HealthCheckRt::new),
            retry: RetryRt::new(&u.retry),
            breaker: u.circuit_breaker.as_ref().map(Breaker::new),
            health_started: AtomicBool::new(false),
            retries_total: AtomicU64::new(0),
        })
    }

    /// Picks a target for a request, skipping the ones it already `tried`.
    pub(crate) fn pick(&self, key: PickKey, tried: &[usize]) -> Option<usize> {
        let view = self.view(tried);
        if let Some(i) = key.sticky
            && view.usable(i)
        {
            return Some(i);
        }
        self.picker.pick(&view, key.hash)
    }

    /// The balancer's view of the targets now.
    pub(crate) fn view<'a>(&'a self, tried: &'a [usize]) -> View<'a> {
        View {
            stats: &self.health.stats,
            weights: &self.weights,
            all: self.health.panicking(),
            tried,
            max_in_flight: self.breaker.as_ref().map_or(u32::MAX, |b| b.per_target),
        }
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

    /// Live stats of target `i`.
    pub(crate) fn stats(&self, i: usize) -> &TargetStats {
        &self.health.stats[i]
    }

    /// Each target's state, reason, in-flight count, latency EWMA and totals (for the admin
    /// API and metrics). Reads atomics only.
    #[must_use]
    pub fn target_statuses(&self) -> Vec<TargetStatus> {
        self.targets
            .iter()
            .zip(self.health.stats.iter())
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
        self.targets
            .iter()
            .map(|t| crate::pool::idle_connections(t.pool_key))
            .sum()
    }

    /// Whether requests currently spread over all targets because too many are out.
    #[must_use]
    pub fn in_panic_mode(&self) -> bool {
        self.health.panicking()
    }

    /// Starts the background health service of this set (re-admission, slow start, gray
    /// failure detection, active probes). Idempotent; the service stops once the set is
    /// dropped. Call it when a runtime goes live; [`crate::forward`] also starts it on first use.
    pub fn start_health(self: &Arc<Self>) {
        if !self.health_started.load(Ordering::Relaxed)
            && !self.health_started.swap(true, Ordering::AcqRel)
        {
            crate::health::service::start(self);
        }
    }
}

fn build_target(
    text: &Located<String>,
    protocol: UpstreamProtocol,
    tls: Option<&str>,
) -> Result<Target, String> {
    let spec = syntax::parse_target(text)?;
    let authority = HeaderValue::from_str(text).map_err(|e| e.to_string())?;
    Ok(Target {
        pool_key: pool_key(&spec, protocol, tls),
        label: Arc::from(text.as_str()),
        authority,
        spec,
    })
}

/// Everything that makes connections interchangeable: target, protocol, TLS identity.
type PoolIdentity = (TargetSpec, UpstreamProtocol, Option<String>);

/// A small dense number per pool identity, the same for the life of the process, so pools are
/// found by indexing rather than hashing and survive config reloads.
fn pool_key(spec: &TargetSpec, protocol: UpstreamProtocol, tls: Option<&str>) -> usize {
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
            .map(|_| s.pick(PickKey::default(), &[]).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_retry_skips_the_tried_targets() {
        let s = set(&["127.0.0.1:1", "127.0.0.1:2"]);
        for _ in 0..50 {
            assert_eq!(s.pick(PickKey::default(), &[1]), Some(0));
        }
        assert_eq!(s.pick(PickKey::default(), &[0, 1]), None);
    }

    #[test]
    fn weights_and_hash_keys_come_from_config() {
        let s = set_with(
            &["127.0.0.1:1", "127.0.0.1:2"],
            "balance = \"maglev\"\nhash_on = \"header:x-user\"\nweights = { \"127.0.0.1:2\" = 3 }",
        );
        assert_eq!(&*s.weights, &[1, 3]);
        let mut headers = HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_static("alice"));
        let key = s.pick_key(&Uri::from_static("/"), &headers, None);
        assert!(key.hash.is_some());
        let first = s.pick(key, &[]);
        assert!(
            (0..20).all(|_| s.pick(key, &[]) == first),
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
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn pool_keys_are_stable_per_target_and_protocol() {
        let a = set(&["127.0.0.1:9"]);
        let b = set(&["127.0.0.1:9", "127.0.0.1:10"]);
        assert_eq!(a.targets[0].pool_key, b.targets[0].pool_key);
        assert_ne!(b.targets[0].pool_key, b.targets[1].pool_key);
    }
}
