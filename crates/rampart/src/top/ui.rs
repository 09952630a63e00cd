//! Drawing the dashboard with ratatui: a header with the process and totals, tabs for the
//! panes (routes, upstreams, listeners), the selected pane's table, and a key help line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState, Tabs};

use super::format::{count, percent, rate};
use super::model::{self, ConnRow, RouteRow, Scrape};
use super::rows::{ROUTE_HEADINGS, TARGET_HEADINGS, route_cells, target_cells};

/// The panes, in tab order.
pub(crate) const PANES: [&str; 3] = ["Routes", "Upstreams", "Listeners"];

/// Everything the dashboard draws from.
pub(crate) struct View<'a> {
    pub(crate) admin: &'a str,
    pub(crate) current: Option<&'a Scrape>,
    pub(crate) routes: &'a [RouteRow],
    pub(crate) conns: &'a [ConnRow],
    pub(crate) error: Option<&'a str>,
    pub(crate) pane: usize,
}

/// Draws one frame.
pub(crate) fn draw(frame: &mut Frame<'_>, view: &View<'_>, table: &mut TableState) {
    let [header, tabs, body, help] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(header_widget(view), header);
    frame.render_widget(
        Tabs::new(PANES.to_vec())
            .select(view.pane)
            .highlight_style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)),
        tabs,
    );
    let table_widget = match view.pane {
        0 => routes_table(view.routes),
        1 => upstreams_table(view.current),
        _ => listeners_table(view.current, view.conns),
    };
    frame.render_stateful_widget(table_widget, body, table);
    frame.render_widget(
        Paragraph::new("q quit · tab/←→ switch pane · ↑↓ select")
            .style(Style::new().fg(Color::DarkGray)),
        help,
    );
}

fn header_widget<'a>(view: &View<'a>) -> Paragraph<'a> {
    let totals = model::totals(view.routes, view.conns);
    let mut lines = Vec::new();
    match view.current {
        Some(s) => lines.push(Line::from(format!(
            "rampart {} · uptime {}s · generation {} · {} workers{}",
            s.status.version,
            s.status.uptime_seconds.round(),
            s.status.generation,
            s.status.workers,
            if s.status.draining {
                " · DRAINING"
            } else {
                ""
            }
        ))),
        None => lines.push(Line::from(format!("connecting to {}…", view.admin))),
    }
    lines.push(Line::from(format!(
        "requests {} · {} req/s · 5xx {} · connections {}",
        count(totals.requests),
        rate(totals.rps),
        percent(totals.err5xx),
        count(totals.connections)
    )));
    if let Some(e) = view.error {
        lines.push(Line::from(Span::styled(
            format!("admin API: {e}"),
            Style::new().fg(Color::Red),
        )));
    }
    Paragraph::new(lines).block(Block::new())
}

fn table<'a>(head: &'a [&'a str], rows: Vec<Row<'a>>, widths: &[Constraint]) -> Table<'a> {
    Table::new(rows, widths.to_vec())
        .header(Row::new(head.to_vec()).style(Style::new().add_modifier(Modifier::BOLD)))
        .block(Block::bordered())
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
}

fn routes_table(rows: &[RouteRow]) -> Table<'static> {
    let body = rows
        .iter()
        .map(|r| {
            Row::new(route_cells(r)).style(if r.err5xx.is_some_and(|e| e > 0.0) {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            })
        })
        .collect();
    let mut widths = vec![Constraint::Min(16)];
    widths.extend([Constraint::Length(10); 7]);
    table(&ROUTE_HEADINGS, body, &widths)
}

fn state_style(state: &str) -> Style {
    match state {
        "healthy" => Style::new().fg(Color::Green),
        "slow_start" => Style::new().fg(Color::Yellow),
        _ => Style::new().fg(Color::Red),
    }
}

fn upstreams_table(current: Option<&Scrape>) -> Table<'static> {
    let body = current
        .into_iter()
        .flat_map(|s| &s.upstreams.upstreams)
        .flat_map(|u| {
            u.targets
                .iter()
                .map(|t| Row::new(target_cells(u, t)).style(state_style(&t.state)))
        })
        .collect();
    table(
        &TARGET_HEADINGS,
        body,
        &[
            Constraint::Min(12),
            Constraint::Min(21),
            Constraint::Length(11),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Min(10),
        ],
    )
}

fn listeners_table(current: Option<&Scrape>, conns: &[ConnRow]) -> Table<'static> {
    let body = current
        .into_iter()
        .flat_map(|s| &s.status.listeners)
        .map(|l| {
            let mine: Vec<&ConnRow> = conns.iter().filter(|c| c.listener == l.name).collect();
            let total: f64 = mine.iter().map(|c| c.active).sum();
            let detail = mine
                .iter()
                .filter(|c| c.active > 0.0)
                .map(|c| format!("{} {:.0}", c.protocol, c.active))
                .collect::<Vec<_>>()
                .join(", ");
            Row::new(vec![
                l.name.clone(),
                l.address.clone(),
                l.protocol.clone(),
                format!("{total:.0}"),
                detail,
            ])
        })
        .collect();
    table(
        &[
            "LISTENER",
            "ADDRESS",
            "PROTOCOL",
            "CONNECTIONS",
            "BY PROTOCOL",
        ],
        body,
        &[
            Constraint::Min(12),
            Constraint::Min(21),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Min(10),
        ],
    )
}
