//! `rampart top`: a live terminal dashboard of a running Rampart, read from its admin API
//! (`/status`, `/upstreams`, `/metrics`): requests per second, error ratios and latency
//! percentiles per route, upstream target health, connections per listener.

mod admin;
mod format;
mod model;
mod prom;
mod rows;
mod text;
mod ui;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

use anyhow::anyhow;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::widgets::TableState;

use crate::cli::TopArgs;
use model::Scrape;

/// How often keys are looked at while waiting for the next scrape.
const INPUT_TICK: Duration = Duration::from_millis(100);

/// The dashboard's state between frames.
struct App {
    previous: Option<Scrape>,
    current: Option<Scrape>,
    routes: Vec<model::RouteRow>,
    conns: Vec<model::ConnRow>,
    error: Option<String>,
    pane: usize,
    table: TableState,
}

impl App {
    fn update(&mut self, scrape: Result<Scrape, String>) {
        match scrape {
            Ok(s) => {
                self.previous = self.current.take();
                self.routes = model::routes(self.previous.as_ref(), &s);
                self.conns = model::connections(&s);
                self.current = Some(s);
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Handles a key; false when the user asked to quit.
    fn key(&mut self, code: KeyCode, modifiers: KeyModifiers) -> bool {
        let panes = ui::PANES.len();
        match code {
            KeyCode::Char('q') | KeyCode::Esc => return false,
            KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => return false,
            KeyCode::Tab | KeyCode::Right => self.switch((self.pane + 1) % panes),
            KeyCode::BackTab | KeyCode::Left => self.switch((self.pane + panes - 1) % panes),
            KeyCode::Char(c @ '1'..='3') => self.switch(usize::from(c as u8 - b'1')),
            KeyCode::Down | KeyCode::Char('j') => self.table.select_next(),
            KeyCode::Up | KeyCode::Char('k') => self.table.select_previous(),
            _ => {}
        }
        true
    }

    fn switch(&mut self, pane: usize) {
        self.pane = pane;
        self.table = TableState::default();
    }
}

/// Runs the dashboard until `q`, or prints one text snapshot with `--once`.
pub(crate) fn run(args: &TopArgs) -> anyhow::Result<ExitCode> {
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !args.once && !terminal {
        eprintln!(
            "rampart: top needs a terminal; use `curl {}/status` or `rampart top --once` for a text snapshot",
            args.admin.trim_end_matches('/')
        );
        return Ok(ExitCode::from(2));
    }
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("RAMPART_ADMIN_TOKEN").ok());
    let api =
        admin::AdminApi::new(&args.admin, token.as_deref()).map_err(|e| anyhow!("--admin: {e}"))?;
    let interval = Duration::from_millis(args.interval_ms.max(100));
    let scrapes = admin::spawn_poller(api, interval)?;
    if args.once {
        return once(&scrapes);
    }
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &scrapes, &args.admin);
    ratatui::restore();
    result.map(|()| ExitCode::SUCCESS)
}

/// Two reads one interval apart (so that rates can be computed), printed as text.
fn once(scrapes: &std::sync::mpsc::Receiver<Result<Scrape, String>>) -> anyhow::Result<ExitCode> {
    let read = || {
        scrapes
            .recv()
            .map_err(|_| anyhow!("the admin API poller stopped"))?
            .map_err(|e| anyhow!("admin API: {e}"))
    };
    let first = read()?;
    let second = read()?;
    let routes = model::routes(Some(&first), &second);
    let conns = model::connections(&second);
    print!("{}", text::snapshot(&second, &routes, &conns));
    Ok(ExitCode::SUCCESS)
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    scrapes: &std::sync::mpsc::Receiver<Result<Scrape, String>>,
    admin: &str,
) -> anyhow::Result<()> {
    let mut app = App {
        previous: None,
        current: None,
        routes: Vec::new(),
        conns: Vec::new(),
        error: None,
        pane: 0,
        table: TableState::default(),
    };
    loop {
        loop {
            match scrapes.try_recv() {
                Ok(s) => app.update(s),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(anyhow!("the admin API poller stopped"));
                }
            }
        }
        terminal.draw(|frame| {
            let view = ui::View {
                admin,
                current: app.current.as_ref(),
                routes: &app.routes,
                conns: &app.conns,
                error: app.error.as_deref(),
                pane: app.pane,
            };
            ui::draw(frame, &view, &mut app.table);
        })?;
        if event::poll(INPUT_TICK)?
            && let Event::Key(key) = event::read()?
            && key.kind == KeyEventKind::Press
            && !app.key(key.code, key.modifiers)
        {
            return Ok(());
        }
    }
}
