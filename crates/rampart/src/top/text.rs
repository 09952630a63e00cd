//! `rampart top --once`: the dashboard's three panes as plain text, for scripts and for
//! terminals-less places (a pipe, a CI log, `watch`).

use std::fmt::Write as _;

use super::format::{count, latency, percent, rate};
use super::model::{self, ConnRow, RouteRow, Scrape};

/// The header, then the routes, upstreams and listeners tables, aligned in columns.
pub(crate) fn snapshot(scrape: &Scrape, routes: &[RouteRow], conns: &[ConnRow]) -> String {
    let status = &scrape.status;
    let totals = model::totals(routes, conns);
    let mut out = format!(
        "rampart {} · uptime {}s · generation {} · {} workers{}\n",
        status.version,
        status.uptime_seconds.round(),
        status.generation,
        status.workers,
        if status.draining { " · DRAINING" } else { "" }
    );
    let _ = writeln!(
        out,
        "requests {} · {} req/s · 5xx {} · connections {}\n",
        count(totals.requests),
        rate(totals.rps),
        percent(totals.err5xx),
        count(totals.connections)
    );
    let route_rows = routes
        .iter()
        .map(|r| {
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
        })
        .collect();
    out.push_str(&columns(
        &[
            "ROUTE", "REQUESTS", "REQ/S", "5XX", "4XX", "P50", "P90", "P99",
        ],
        route_rows,
    ));
    let target_rows = scrape
        .upstreams
        .upstreams
        .iter()
        .flat_map(|u| {
            u.targets.iter().map(|t| {
                vec![
                    u.name.clone(),
                    t.target.clone(),
                    t.state.clone(),
                    t.in_flight.to_string(),
                    format!("{:.1}ms", t.ewma_ms),
                    t.requests.to_string(),
                    t.failures.to_string(),
                    t.reason.clone().unwrap_or_default(),
                ]
            })
        })
        .collect();
    out.push('\n');
    out.push_str(&columns(
        &[
            "UPSTREAM",
            "TARGET",
            "STATE",
            "IN FLIGHT",
            "EWMA",
            "REQUESTS",
            "FAILURES",
            "REASON",
        ],
        target_rows,
    ));
    let listener_rows = status
        .listeners
        .iter()
        .map(|l| {
            let active: f64 = conns
                .iter()
                .filter(|c| c.listener == l.name)
                .map(|c| c.active)
                .sum();
            vec![
                l.name.clone(),
                l.address.clone(),
                l.protocol.clone(),
                count(Some(active)),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&columns(
        &["LISTENER", "ADDRESS", "PROTOCOL", "CONNECTIONS"],
        listener_rows,
    ));
    out
}

/// A table as text: each column as wide as its widest cell, two spaces between columns.
fn columns(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(head).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let pad = w.saturating_sub(cell.chars().count());
            let _ = write!(line, "{cell}{:pad$}  ", "");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_whatever_the_cell_widths() {
        let t = columns(
            &["A", "BB"],
            vec![
                vec!["long cell".into(), "x".into()],
                vec!["–".into(), "y".into()],
            ],
        );
        assert_eq!(t, "A          BB\nlong cell  x\n–          y\n");
    }
}
