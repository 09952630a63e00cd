//! `rampart top --once`: the dashboard's three panes as plain text, for scripts and for
//! terminals-less places (a pipe, a CI log, `watch`).

use std::fmt::Write as _;

use super::format::{count, percent, rate};
use super::model::{self, ConnRow, RouteRow, Scrape};
use super::rows::{ROUTE_HEADINGS, TARGET_HEADINGS, route_cells, target_cells};

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
    let route_rows = routes.iter().map(route_cells).collect();
    out.push_str(&columns(&ROUTE_HEADINGS, route_rows));
    let target_rows = scrape
        .upstreams
        .upstreams
        .iter()
        .flat_map(|u| u.targets.iter().map(|t| target_cells(u, t)))
        .collect();
    out.push('\n');
    out.push_str(&columns(&TARGET_HEADINGS, target_rows));
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
