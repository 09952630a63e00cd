//! The cells of the routes and targets tables, shared by the dashboard and the text snapshot.

use super::format::{count, latency, percent, rate};
use super::model::{RouteRow, TargetDoc, UpstreamDoc};

/// The routes table's column headings.
pub(crate) const ROUTE_HEADINGS: [&str; 8] = [
    "ROUTE", "REQUESTS", "REQ/S", "5XX", "4XX", "P50", "P90", "P99",
];

/// One route's cells, in [`ROUTE_HEADINGS`] order.
pub(crate) fn route_cells(r: &RouteRow) -> Vec<String> {
    vec![
        r.route.clone(),
        count(Some(r.total)),
        rate(r.rps),
        percent(r.err5xx),
        percent(r.err4xx),
        latency(r.p50),
        latency(r.p90),
        latency(r.p99),
    ]
}

/// The targets table's column headings.
pub(crate) const TARGET_HEADINGS: [&str; 9] = [
    "UPSTREAM",
    "TARGET",
    "STATE",
    "IN FLIGHT",
    "EWMA",
    "REQUESTS",
    "FAILURES",
    "SINCE",
    "REASON",
];

/// One target's cells, in [`TARGET_HEADINGS`] order.
pub(crate) fn target_cells(u: &UpstreamDoc, t: &TargetDoc) -> Vec<String> {
    vec![
        u.name.clone(),
        t.target.clone(),
        t.state.clone(),
        t.in_flight.to_string(),
        format!("{:.1}ms", t.ewma_ms),
        t.requests.to_string(),
        t.failures.to_string(),
        format!("{:.0}s", t.since_seconds),
        t.reason.clone().unwrap_or_default(),
    ]
}
