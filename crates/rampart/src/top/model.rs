//! What the dashboard shows, computed from two consecutive scrapes of the admin API: rates and
//! error ratios from counter deltas, latency percentiles from histogram bucket deltas (as
//! Prometheus' `histogram_quantile` does), and the admin API's JSON documents as they are.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;

use super::prom::Sample;

/// `GET /status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Status {
    pub(crate) version: String,
    pub(crate) uptime_seconds: f64,
    pub(crate) generation: u64,
    pub(crate) workers: u64,
    pub(crate) draining: bool,
    pub(crate) listeners: Vec<ListenerDoc>,
}

/// One listener in `/status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListenerDoc {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) protocol: String,
}

/// `GET /upstreams`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Upstreams {
    pub(crate) upstreams: Vec<UpstreamDoc>,
}

/// One upstream in `/upstreams`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UpstreamDoc {
    pub(crate) name: String,
    pub(crate) balance: String,
    pub(crate) targets: Vec<TargetDoc>,
}

/// One target in `/upstreams`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TargetDoc {
    pub(crate) target: String,
    pub(crate) state: String,
    pub(crate) reason: Option<String>,
    pub(crate) since_seconds: f64,
    pub(crate) in_flight: u64,
    pub(crate) ewma_ms: f64,
    pub(crate) requests: u64,
    pub(crate) failures: u64,
}

/// One read of the admin API.
#[derive(Debug, Clone)]
pub(crate) struct Scrape {
    pub(crate) at: Instant,
    pub(crate) status: Status,
    pub(crate) upstreams: Upstreams,
    pub(crate) metrics: Vec<Sample>,
}

/// A row of the routes pane.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteRow {
    pub(crate) route: String,
    /// Requests since start.
    pub(crate) total: f64,
    /// Requests per second over the last interval (None on the first scrape).
    pub(crate) rps: Option<f64>,
    /// Share of the interval's requests answered 5xx, and 4xx.
    pub(crate) err5xx: Option<f64>,
    pub(crate) err4xx: Option<f64>,
    /// Latency percentiles over the interval, in seconds.
    pub(crate) p50: Option<f64>,
    pub(crate) p90: Option<f64>,
    pub(crate) p99: Option<f64>,
}

/// A row of the connections pane.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConnRow {
    pub(crate) listener: String,
    pub(crate) protocol: String,
    pub(crate) active: f64,
}

/// Totals for the header.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Totals {
    /// Requests since start (None before the first read).
    pub(crate) requests: Option<f64>,
    pub(crate) rps: Option<f64>,
    pub(crate) err5xx: Option<f64>,
    /// Open connections (None before the first read).
    pub(crate) connections: Option<f64>,
}

const REQUESTS: &str = "rampart_requests_total";
const DURATION_BUCKET: &str = "rampart_request_duration_seconds_bucket";
const CONNECTIONS: &str = "rampart_connections_active";

/// The name shown for requests no route took.
pub(crate) const NO_ROUTE: &str = "(no route)";

fn route_name(s: &Sample) -> String {
    match s.label("route") {
        "" => NO_ROUTE.to_owned(),
        r => r.to_owned(),
    }
}

/// Per route and status class: request counts.
fn request_counts(metrics: &[Sample]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for s in metrics.iter().filter(|s| s.name == REQUESTS) {
        *out.entry(route_name(s))
            .or_default()
            .entry(s.label("status_class").to_owned())
            .or_default() += s.value;
    }
    out
}

/// A counter's increase; a counter that went down was reset (a new process), so all of its
/// current value is new.
fn increase(now: f64, before: f64) -> f64 {
    if now >= before { now - before } else { now }
}

/// Per route: (upper bound, cumulative count) of the latency histogram, sorted by bound.
fn buckets(metrics: &[Sample]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in metrics.iter().filter(|s| s.name == DURATION_BUCKET) {
        let Ok(le) = s.label("le").replace("+Inf", "inf").parse::<f64>() else {
            continue;
        };
        out.entry(route_name(s)).or_default().push((le, s.value));
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The `q` quantile of a cumulative histogram, interpolated linearly inside its bucket; the
/// `+Inf` bucket answers with the highest finite bound. None without observations.
pub(crate) fn quantile(q: f64, cumulative: &[(f64, f64)]) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in cumulative {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let width = count - lower.1;
            let within = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * within);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

/// Bucket-wise increase between two scrapes of one route's histogram.
fn bucket_increase(now: &[(f64, f64)], before: Option<&Vec<(f64, f64)>>) -> Vec<(f64, f64)> {
    now.iter()
        .map(|&(le, count)| {
            let prev = before
                .and_then(|b| b.iter().find(|(l, _)| *l == le))
                .map_or(0.0, |(_, c)| *c);
            (le, increase(count, prev))
        })
        .collect()
}

/// The routes pane: one row per route seen in the metrics, busiest first.
pub(crate) fn routes(prev: Option<&Scrape>, cur: &Scrape) -> Vec<RouteRow> {
    let now = request_counts(&cur.metrics);
    let before = prev.map(|p| request_counts(&p.metrics)).unwrap_or_default();
    let now_buckets = buckets(&cur.metrics);
    let before_buckets = prev.map(|p| buckets(&p.metrics)).unwrap_or_default();
    let secs = prev.map(|p| cur.at.duration_since(p.at).as_secs_f64());
    let mut rows: Vec<RouteRow> = now
        .iter()
        .map(|(route, classes)| {
            let total: f64 = classes.values().sum();
            let delta = |class: Option<&str>| -> f64 {
                classes
                    .iter()
                    .filter(|(c, _)| class.is_none_or(|want| c.as_str() == want))
                    .map(|(c, v)| {
                        let b = before
                            .get(route)
                            .and_then(|m| m.get(c))
                            .copied()
                            .unwrap_or(0.0);
                        increase(*v, b)
                    })
                    .sum()
            };
            let all = delta(None);
            let ratio = |class: &str| (all > 0.0).then(|| delta(Some(class)) / all);
            let hist = now_buckets
                .get(route)
                .map(|b| bucket_increase(b, before_buckets.get(route)))
                .unwrap_or_default();
            RouteRow {
                route: route.clone(),
                total,
                rps: secs.filter(|s| *s > 0.0).map(|s| all / s),
                err5xx: ratio("5xx"),
                err4xx: ratio("4xx"),
                p50: quantile(0.5, &hist),
                p90: quantile(0.9, &hist),
                p99: quantile(0.99, &hist),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.total
            .total_cmp(&a.total)
            .then_with(|| a.route.cmp(&b.route))
    });
    rows
}

/// The connections pane: active connections per listener and protocol.
pub(crate) fn connections(cur: &Scrape) -> Vec<ConnRow> {
    cur.metrics
        .iter()
        .filter(|s| s.name == CONNECTIONS)
        .map(|s| ConnRow {
            listener: s.label("listener").to_owned(),
            protocol: s.label("protocol").to_owned(),
            active: s.value,
        })
        .collect()
}

/// Header totals over all routes; nothing at all (no routes, no listeners) means no data yet.
pub(crate) fn totals(rows: &[RouteRow], conns: &[ConnRow]) -> Totals {
    let rps: Option<f64> = if rows.is_empty() {
        None
    } else {
        rows.iter().map(|r| r.rps).sum()
    };
    let err5xx = rps.and_then(|total| {
        let errors: f64 = rows
            .iter()
            .map(|r| r.rps.unwrap_or(0.0) * r.err5xx.unwrap_or(0.0))
            .sum();
        (total > 0.0).then(|| errors / total)
    });
    let any = !rows.is_empty() || !conns.is_empty();
    Totals {
        requests: any.then(|| rows.iter().map(|r| r.total).sum()),
        rps,
        err5xx,
        connections: any.then(|| conns.iter().map(|c| c.active).sum()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::top::prom::parse;

    fn scrape(at: Instant, text: &str) -> Scrape {
        Scrape {
            at,
            status: Status::default(),
            upstreams: Upstreams::default(),
            metrics: parse(text),
        }
    }

    const BEFORE: &str = r#"
rampart_requests_total{listener="web",route="api",upstream="app",method="GET",status_class="2xx"} 100
rampart_requests_total{listener="web",route="api",upstream="app",method="GET",status_class="5xx"} 0
rampart_requests_total{listener="web",route="",upstream="",method="GET",status_class="4xx"} 5
rampart_request_duration_seconds_bucket{route="api",le="0.01"} 50
rampart_request_duration_seconds_bucket{route="api",le="0.1"} 100
rampart_request_duration_seconds_bucket{route="api",le="+Inf"} 100
rampart_connections_active{listener="web",protocol="http1"} 3
rampart_connections_active{listener="web",protocol="h2"} 1
"#;

    const AFTER: &str = r#"
rampart_requests_total{listener="web",route="api",upstream="app",method="GET",status_class="2xx"} 280
rampart_requests_total{listener="web",route="api",upstream="app",method="POST",status_class="2xx"} 0
rampart_requests_total{listener="web",route="api",upstream="app",method="GET",status_class="5xx"} 20
rampart_requests_total{listener="web",route="",upstream="",method="GET",status_class="4xx"} 5
rampart_request_duration_seconds_bucket{route="api",le="0.01"} 50
rampart_request_duration_seconds_bucket{route="api",le="0.1"} 250
rampart_request_duration_seconds_bucket{route="api",le="+Inf"} 300
rampart_connections_active{listener="web",protocol="http1"} 3
rampart_connections_active{listener="web",protocol="h2"} 1
"#;

    #[test]
    fn rates_error_ratios_and_percentiles_come_from_deltas() {
        let t0 = Instant::now();
        let before = scrape(t0, BEFORE);
        let after = scrape(t0 + Duration::from_secs(2), AFTER);
        let rows = routes(Some(&before), &after);
        assert_eq!(rows.len(), 2);
        let api = &rows[0];
        assert_eq!(api.route, "api");
        assert!((api.total - 300.0).abs() < 1e-9);
        // 200 new requests in 2 s, 20 of them 5xx.
        assert!((api.rps.unwrap() - 100.0).abs() < 1e-9);
        assert!((api.err5xx.unwrap() - 0.1).abs() < 1e-9);
        assert!((api.err4xx.unwrap()).abs() < 1e-9);
        // The interval's 200 observations: 0 ≤ 10 ms, 150 in (10 ms, 100 ms], 50 above.
        // p50 is rank 100: 100/150 of the way through (0.01, 0.1].
        let p50 = api.p50.unwrap();
        assert!((p50 - (0.01 + 0.09 * 100.0 / 150.0)).abs() < 1e-9, "{p50}");
        // p99 falls in +Inf: reported as the highest finite bound.
        assert!((api.p99.unwrap() - 0.1).abs() < 1e-9);
        let none = &rows[1];
        assert_eq!(none.route, NO_ROUTE);
        assert_eq!(none.rps, Some(0.0));
        assert_eq!(none.err4xx, None, "no requests in the interval");
        let conns = connections(&after);
        let t = totals(&rows, &conns);
        assert!((t.requests.unwrap() - 305.0).abs() < 1e-9);
        assert!((t.rps.unwrap() - 100.0).abs() < 1e-9);
        assert!((t.err5xx.unwrap() - 0.1).abs() < 1e-9);
        assert!((t.connections.unwrap() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn the_first_scrape_has_totals_but_no_rates_and_resets_count_from_zero() {
        let t0 = Instant::now();
        let first = routes(None, &scrape(t0, AFTER));
        assert_eq!(first[0].rps, None);
        assert!((first[0].total - 300.0).abs() < 1e-9);
        assert!(first[0].p50.is_some(), "percentiles since start");
        // AFTER → BEFORE looks like a restart: counters went down.
        let rows = routes(
            Some(&scrape(t0, AFTER)),
            &scrape(t0 + Duration::from_secs(1), BEFORE),
        );
        assert!((rows[0].rps.unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        assert_eq!(quantile(0.5, &[]), None);
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        let h = [(0.1, 10.0), (0.2, 20.0), (f64::INFINITY, 20.0)];
        assert!((quantile(0.5, &h).unwrap() - 0.1).abs() < 1e-9);
        assert!((quantile(0.75, &h).unwrap() - 0.15).abs() < 1e-9);
        assert!((quantile(0.25, &h).unwrap() - 0.05).abs() < 1e-9);
    }

    #[test]
    fn admin_documents_parse_with_missing_fields() {
        let s: Status = serde_json::from_str(
            r#"{"version":"0.1.0","uptime_seconds":5,"generation":3,"workers":2,"draining":false,
                "listeners":[{"name":"web","address":"127.0.0.1:8080","protocol":"http"}]}"#,
        )
        .unwrap();
        assert_eq!(s.generation, 3);
        assert_eq!(s.listeners[0].name, "web");
        let u: Upstreams = serde_json::from_str(
            r#"{"upstreams":[{"name":"app","balance":"round_robin","targets":[
                {"target":"10.0.0.1:80","state":"ejected","reason":"5 consecutive failures",
                 "since_seconds":12,"in_flight":0,"ewma_ms":3.5,"requests":10,"failures":5},
                {"target":"10.0.0.2:80","state":"healthy"}]}]}"#,
        )
        .unwrap();
        let t = &u.upstreams[0].targets;
        assert_eq!(t[0].state, "ejected");
        assert_eq!(t[0].reason.as_deref(), Some("5 consecutive failures"));
        assert_eq!(t[1].requests, 0);
    }
}
