//! Metrics: lock-free counters the data plane bumps on every request and connection, and a
//! [`Registry`] that owns them by config name so they survive reloads.
//!
//! The request path only touches atomics reached through the runtime snapshot it already
//! holds (`Relaxed` adds, no lock, no hashing, no allocation). Tables keyed by names are
//! locked only when a config is compiled and when `/metrics` is scraped.

pub(crate) mod expo;
pub(crate) mod io;
mod mirror;
mod process;
pub(crate) mod quic;
mod text;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http::{Method, Version};
use rampart_core::{ErrorKind, RequestCtx};

pub(crate) use mirror::{MirrorCounts, MirrorMiss};

use crate::observe::tls_stats::TlsStats;

/// Histogram bucket bounds in microseconds (.001 s to 10 s).
pub(crate) const BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Method labels; anything else counts as `OTHER` (bounded cardinality).
pub(crate) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// Status class labels.
pub(crate) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Connection protocol labels of `rampart_connections_active`.
pub(crate) const PROTOCOLS: [&str; 4] = ["http1", "h2", "h3", "tcp"];
/// Index of `http1` in [`PROTOCOLS`].
pub(crate) const HTTP1: usize = 0;
/// Index of `h2` in [`PROTOCOLS`].
pub(crate) const H2: usize = 1;
/// Index of `h3` in [`PROTOCOLS`].
pub(crate) const H3: usize = 2;
/// Index of `tcp` in [`PROTOCOLS`].
pub(crate) const TCP: usize = 3;

/// Slots of the per-reason rejection table (more than there are reasons).
const REASONS: usize = 128;

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// A latency histogram with the buckets of [`BUCKETS_US`] (counts per bucket, not cumulative).
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US.partition_point(|b| *b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (the last one is `+Inf`, the total) and the sum in seconds.
    pub(crate) fn read(&self) -> ([u64; BUCKETS_US.len() + 1], f64) {
        let mut out = [0; BUCKETS_US.len() + 1];
        let mut acc = 0;
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            acc += b.load(Ordering::Relaxed);
            *o = acc;
        }
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        (out, sum)
    }
}

/// Requests by method and status class for one (listener, route) pair.
#[derive(Debug, Default)]
pub(crate) struct RequestCounts {
    by: [[AtomicU64; CLASSES.len()]; METHODS.len()],
}

impl RequestCounts {
    fn count(&self, method: &Method, status: u16) {
        self.by[method_index(method)][class_index(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Non-zero counts as (method, class, count).
    pub(crate) fn nonzero(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> {
        self.by.iter().enumerate().flat_map(|(m, row)| {
            row.iter().enumerate().filter_map(move |(c, n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then_some((METHODS[m], CLASSES[c], n))
            })
        })
    }
}

/// `http_version` labels of `rampart_listener_requests_total`.
pub(crate) const HTTP_VERSIONS: [&str; 4] = ["1.0", "1.1", "2", "3"];

/// Index of `version` in [`HTTP_VERSIONS`] (HTTP/0.9 never reaches the pipeline; it would
/// count as 1.0).
fn version_index(version: Version) -> usize {
    match version {
        Version::HTTP_11 => 1,
        Version::HTTP_2 => 2,
        Version::HTTP_3 => 3,
        _ => 0,
    }
}

/// Per-listener counters: bytes, open connections, requests by HTTP version.
#[derive(Debug, Default)]
pub(crate) struct ListenerMetrics {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
    active: [AtomicI64; PROTOCOLS.len()],
    requests: [AtomicU64; HTTP_VERSIONS.len()],
}

impl ListenerMetrics {
    /// Counts a finished request of `version`.
    fn request(&self, version: Version) {
        self.requests[version_index(version)].fetch_add(1, Ordering::Relaxed);
    }

    /// Finished requests by `http_version` label.
    pub(crate) fn requests(&self) -> impl Iterator<Item = (&'static str, u64)> {
        HTTP_VERSIONS
            .iter()
            .zip(&self.requests)
            .map(|(v, n)| (*v, n.load(Ordering::Relaxed)))
    }

    /// Counts an open connection of `protocol` (index into [`PROTOCOLS`]) until dropped.
    pub(crate) fn connection(self: &Arc<Self>, protocol: usize) -> ConnGauge {
        let protocol = protocol.min(PROTOCOLS.len() - 1);
        self.active[protocol].fetch_add(1, Ordering::Relaxed);
        ConnGauge {
            metrics: Arc::clone(self),
            protocol: AtomicUsize::new(protocol),
        }
    }

    /// Open connections by protocol label.
    pub(crate) fn active(&self) -> impl Iterator<Item = (&'static str, i64)> {
        PROTOCOLS
            .iter()
            .zip(&self.active)
            .map(|(p, n)| (*p, n.load(Ordering::Relaxed)))
    }
}

/// An open connection in `rampart_connections_active`.
pub(crate) struct ConnGauge {
    metrics: Arc<ListenerMetrics>,
    protocol: AtomicUsize,
}

impl ConnGauge {
    /// Moves the connection from `from` to `to` (a cleartext connection that spoke HTTP/2);
    /// a no-op when it is not labelled `from`.
    pub(crate) fn switch(&self, from: usize, to: usize) {
        if to < PROTOCOLS.len()
            && self
                .protocol
                .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.metrics.active[from].fetch_sub(1, Ordering::Relaxed);
            self.metrics.active[to].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        self.metrics.active[*self.protocol.get_mut()].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-upstream counters.
#[derive(Debug, Default)]
pub(crate) struct UpstreamMetrics {
    pub(crate) duration: Histogram,
    pub(crate) retries: AtomicU64,
}

/// What one compiled route counts into (looked up by name once, at compile time).
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    pub(crate) duration: Arc<Histogram>,
    /// gRPC calls Rampart answered itself, by gRPC status code.
    pub(crate) grpc: Arc<GrpcCounts>,
    pub(crate) upstream: Option<Arc<UpstreamMetrics>>,
    /// Request counts by the index of the listener in this runtime (`None`: not served).
    pub(crate) by_listener: Box<[Option<Arc<RequestCounts>>]>,
}

/// Highest gRPC status code (16, `UNAUTHENTICATED`).
const GRPC_CODES: usize = 17;

/// gRPC calls Rampart answered itself on one route, by gRPC status code.
#[derive(Debug, Default)]
pub(crate) struct GrpcCounts {
    by_code: [AtomicU64; GRPC_CODES],
}

impl GrpcCounts {
    fn count(&self, code: u8) {
        let i = usize::from(code).min(GRPC_CODES - 1);
        self.by_code[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Non-zero counts as (code, count).
    pub(crate) fn nonzero(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.by_code.iter().enumerate().filter_map(|(code, n)| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then_some((code, n))
        })
    }
}

/// How often the stages of one name on one route answered or refused a request.
#[derive(Debug, Default)]
pub(crate) struct StageCounts {
    /// The stage answered the request itself.
    pub(crate) answered: AtomicU64,
    /// The stage refused the request.
    pub(crate) refused: AtomicU64,
}

impl StageCounts {
    /// (answered, refused) so far.
    pub(crate) fn read(&self) -> (u64, u64) {
        (
            self.answered.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// Key of a request-count series: (listener, route, upstream); "" when none.
pub(crate) type SeriesKey = (String, String, String);

/// Name-keyed tables: written when a config is compiled, read by scrapes.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) requests: BTreeMap<SeriesKey, Arc<RequestCounts>>,
    pub(crate) route_durations: BTreeMap<String, Arc<Histogram>>,
    pub(crate) route_grpc: BTreeMap<String, Arc<GrpcCounts>>,
    pub(crate) upstreams: BTreeMap<String, Arc<UpstreamMetrics>>,
    pub(crate) listeners: BTreeMap<String, Arc<ListenerMetrics>>,
    /// Stage decisions by (route, stage name).
    pub(crate) stages: BTreeMap<(String, &'static str), Arc<StageCounts>>,
    /// Mirrored requests by (route, shadow upstream).
    pub(crate) mirrors: BTreeMap<(String, String), Arc<MirrorCounts>>,
}

/// Every metric of one process, kept across reloads.
#[derive(Debug)]
pub(crate) struct Registry {
    rejections: [AtomicU64; REASONS],
    reason_codes: [OnceLock<&'static str>; REASONS],
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    generation: AtomicU64,
    last_success: AtomicI64,
    pub(crate) started: SystemTime,
    /// TLS counters of every TLS listener, whatever the generation.
    pub(crate) tls: Arc<TlsStats>,
    /// QUIC counters of every HTTP/3 listener.
    pub(crate) quic: Arc<quic::QuicStats>,
    pub(crate) tables: Mutex<Tables>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            rejections: std::array::from_fn(|_| AtomicU64::new(0)),
            reason_codes: std::array::from_fn(|_| OnceLock::new()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            last_success: AtomicI64::new(unix_now()),
            started: SystemTime::now(),
            tls: Arc::default(),
            quic: Arc::default(),
            tables: Mutex::default(),
        }
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Registry {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counters of listener `name`.
    pub(crate) fn listener(&self, name: &str) -> Arc<ListenerMetrics> {
        Arc::clone(self.tables().listeners.entry(name.to_owned()).or_default())
    }

    /// The request counts of (listener, route, upstream).
    pub(crate) fn requests(
        &self,
        listener: &str,
        route: &str,
        upstream: &str,
    ) -> Arc<RequestCounts> {
        let key = (listener.to_owned(), route.to_owned(), upstream.to_owned());
        Arc::clone(self.tables().requests.entry(key).or_default())
    }

    /// What route `name` (proxying to `upstream`, serving `listeners` by runtime index) counts
    /// into.
    pub(crate) fn route(
        &self,
        name: &str,
        upstream: Option<&str>,
        listeners: &[(&str, bool)],
    ) -> RouteMetrics {
        let mut t = self.tables();
        let duration = Arc::clone(t.route_durations.entry(name.to_owned()).or_default());
        let grpc = Arc::clone(t.route_grpc.entry(name.to_owned()).or_default());
        let up = upstream.map(|u| Arc::clone(t.upstreams.entry(u.to_owned()).or_default()));
        let by_listener = listeners
            .iter()
            .map(|(l, serves)| {
                serves.then(|| {
                    let key = (
                        (*l).to_owned(),
                        name.to_owned(),
                        upstream.unwrap_or("").to_owned(),
                    );
                    Arc::clone(t.requests.entry(key).or_default())
                })
            })
            .collect();
        RouteMetrics {
            duration,
            grpc,
            upstream: up,
            by_listener,
        }
    }

    /// What the stages named `stage` on route `route` count their decisions into.
    pub(crate) fn stage(&self, route: &str, stage: &'static str) -> Arc<StageCounts> {
        let key = (route.to_owned(), stage);
        Arc::clone(self.tables().stages.entry(key).or_default())
    }

    /// Every route's stage decisions: (route, stage, answered, refused), sorted.
    pub(crate) fn stage_decisions(&self) -> Vec<(String, &'static str, u64, u64)> {
        self.tables()
            .stages
            .iter()
            .map(|((route, stage), c)| {
                let (answered, refused) = c.read();
                (route.clone(), *stage, answered, refused)
            })
            .collect()
    }

    /// Forgets series whose listener, route or upstream the current config no longer has
    /// (called after a successful reload; counters of kept names go on counting).
    pub(crate) fn retain(&self, listeners: &[&str], routes: &[&str], upstreams: &[&str]) {
        let mut t = self.tables();
        t.requests.retain(|(l, r, u), _| {
            listeners.contains(&l.as_str())
                && (r.is_empty() || routes.contains(&r.as_str()))
                && (u.is_empty() || upstreams.contains(&u.as_str()))
        });
        t.route_durations
            .retain(|r, _| routes.contains(&r.as_str()));
        t.route_grpc.retain(|r, _| routes.contains(&r.as_str()));
        t.upstreams.retain(|u, _| upstreams.contains(&u.as_str()));
        t.listeners.retain(|l, _| listeners.contains(&l.as_str()));
        t.stages.retain(|(r, _), _| routes.contains(&r.as_str()));
        t.mirrors
            .retain(|(r, u), _| routes.contains(&r.as_str()) && upstreams.contains(&u.as_str()));
    }

    /// Counts a request refused or failed for `kind`.
    pub(crate) fn rejected(&self, kind: ErrorKind) {
        let i = kind.index().min(REASONS - 1);
        if self.reason_codes[i].get().is_none() {
            let _ = self.reason_codes[i].set(kind.code());
        }
        self.rejections[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Rejections by reason code.
    pub(crate) fn rejections(&self) -> Vec<(&'static str, u64)> {
        self.reason_codes
            .iter()
            .zip(&self.rejections)
            .filter_map(|(c, n)| c.get().map(|c| (*c, n.load(Ordering::Relaxed))))
            .collect()
    }

    /// Records the generation in service without counting a reload (startup).
    pub(crate) fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Ordering::Relaxed);
        self.last_success.store(unix_now(), Ordering::Relaxed);
    }

    /// Records a reload attempt; on success the new generation.
    pub(crate) fn reload_result(&self, generation: Option<u64>) {
        match generation {
            Some(g) => {
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                self.generation.store(g, Ordering::Relaxed);
                self.last_success.store(unix_now(), Ordering::Relaxed);
            }
            None => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// (successful reloads, failed reloads, generation, last success in Unix seconds).
    pub(crate) fn reloads(&self) -> (u64, u64, u64, i64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
            self.generation.load(Ordering::Relaxed),
            self.last_success.load(Ordering::Relaxed),
        )
    }
}

/// Counts one finished request: by listener/route/method/status class, by listener and HTTP
/// version, its latency, its upstream latency and retries, and its reason when it was refused
/// or failed. `on_listener` is the listener's (no-route counts, own counters).
pub(crate) fn record(
    registry: &Registry,
    route: Option<&RouteMetrics>,
    on_listener: Option<(&RequestCounts, &ListenerMetrics)>,
    listener: usize,
    ctx: &RequestCtx,
    status: u16,
) {
    if let Some((_, metrics)) = on_listener {
        metrics.request(ctx.version);
    }
    match route {
        Some(r) => {
            if let Some(Some(counts)) = r.by_listener.get(listener) {
                counts.count(&ctx.method, status);
            }
            r.duration.observe(ctx.started.elapsed());
            if let Some(code) = ctx.grpc_status {
                r.grpc.count(code);
            }
            if let Some(up) = &r.upstream {
                if let Some(d) = ctx.upstream_duration {
                    up.duration.observe(d);
                }
                if ctx.retries > 0 {
                    up.retries
                        .fetch_add(u64::from(ctx.retries), Ordering::Relaxed);
                }
            }
        }
        None => {
            if let Some((no_route, _)) = on_listener {
                no_route.count(&ctx.method, status);
            }
        }
    }
    if let Some(kind) = ctx.reason {
        registry.rejected(kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(1_000));
        h.observe(Duration::from_micros(1_001));
        h.observe(Duration::from_secs(11));
        let (b, sum) = h.read();
        assert_eq!(b[0], 1, "1 ms falls in le=0.001");
        assert_eq!(b[1], 2);
        assert_eq!(b[12], 2);
        assert_eq!(b[13], 3, "+Inf holds everything");
        assert!((sum - 11.002_001).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn unknown_methods_and_odd_statuses_stay_bounded() {
        let c = RequestCounts::default();
        c.count(&Method::from_bytes(b"BREW").unwrap(), 999);
        c.count(&Method::GET, 0);
        let all: Vec<_> = c.nonzero().collect();
        assert!(all.contains(&("OTHER", "5xx", 1)), "{all:?}");
        assert!(all.contains(&("GET", "1xx", 1)), "{all:?}");
    }

    #[test]
    fn rejections_are_counted_by_reason_code() {
        let r = Registry::default();
        r.rejected(ErrorKind::NoRoute);
        r.rejected(ErrorKind::NoRoute);
        r.rejected(ErrorKind::BadRequest);
        let all = r.rejections();
        assert!(all.contains(&(ErrorKind::NoRoute.code(), 2)), "{all:?}");
        assert!(all.contains(&("bad_request", 1)), "{all:?}");
    }

    #[test]
    fn retain_drops_series_of_removed_names_only() {
        let r = Registry::default();
        let kept = r.requests("public", "a", "");
        kept.count(&Method::GET, 200);
        let _ = r.requests("public", "gone", "");
        r.retain(&["public"], &["a"], &[]);
        let t = r.tables();
        assert_eq!(t.requests.len(), 1);
        assert!(Arc::ptr_eq(
            &kept,
            &t.requests[&("public".into(), "a".into(), String::new())]
        ));
    }
}
