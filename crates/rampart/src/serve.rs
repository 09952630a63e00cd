//! `rampart run`: start the data plane, then react to signals until stopped. SIGTERM/SIGINT
//! drain and exit; SIGHUP reloads the config file; SIGUSR2 (or `POST /upgrade`) hands the
//! listening sockets to a new binary, then drains and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use rampart_admin::AdminServer;
use rampart_config::Config;
use rampart_server::audit::Trigger;
use rampart_server::{ServerHandle, StartOptions};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::logging;
use crate::refused::Refused;
use crate::upgrade::{self, SelfExe};

/// Runs `config` until a stop signal or a completed upgrade.
pub(crate) fn run(
    config: &Config,
    level: Option<&str>,
    embedded: bool,
    config_path: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    logging::init(level, &config.raw().log)?;
    let exe = SelfExe::capture();
    // Handled from before the first socket is bound: a supervisor may send SIGTERM as soon as
    // the service says it listens, and that must drain and exit 0, not kill the process.
    let mut signals = Signals::install()?;
    let mut inherited = upgrade::inherit()?;
    let mut options = StartOptions {
        config_path,
        inherited: std::mem::take(&mut inherited.sockets),
        ..StartOptions::default()
    };
    let mut admin_socket = std::mem::take(&mut options.inherited);
    options.inherited_udp = upgrade::udp_sockets(&mut admin_socket);
    options.inherited = admin_socket
        .extract_if(.., |(name, _)| name != rampart_admin::ADMIN_SOCKET)
        .collect();
    let handle = rampart_server::start_with(config, options).map_err(|e| match e {
        rampart_server::StartError::Config(d) => anyhow!(Refused(d)),
        rampart_server::StartError::Io(e) => anyhow!("cannot start: {e}"),
    })?;
    let admin = rampart_admin::start(config, &handle, &mut admin_socket)
        .context("cannot start the admin API")?;
    inherited.ready();
    for l in handle.admin_handle().listeners() {
        tracing::info!(listener = %l.name, "listening on {}", l.describe());
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        workers = handle.workers(),
        config = %config.source().origin,
        "rampart started"
    );
    if embedded && let Some((_, addr)) = handle.listeners().first() {
        eprintln!(
            "\nRampart is running on its embedded default config. Try:\n  open http://{addr}/ in a browser (a welcome page)\n  curl http://{addr}/echo\n  curl http://{addr}/proxy/hello\n  curl http://{addr}/healthz\nPrint the config with `rampart config default`; stop with Ctrl-C.\n"
        );
    }
    let mut upgrades = handle.upgrade_requests();
    loop {
        match signals.next(&mut upgrades) {
            Event::Stop(signal) => {
                tracing::info!(
                    signal,
                    "shutting down: no new connections, draining in-flight requests"
                );
                break;
            }
            Event::Reload => {
                // Errors are logged, counted and audited by the reload itself.
                let _ = handle.reload(Trigger::Sighup);
            }
            Event::Upgrade => match upgrade_to_successor(&handle, admin.as_ref(), &exe) {
                Ok(()) => {
                    tracing::info!("upgrade: the new process serves; draining and exiting");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "upgrade failed; still serving");
                }
            },
        }
    }
    drop(admin);
    handle.shutdown();
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn upgrade_to_successor(
    handle: &ServerHandle,
    admin: Option<&AdminServer>,
    exe: &SelfExe,
) -> anyhow::Result<()> {
    let mut sockets = handle
        .listening_sockets()
        .context("upgrade: cannot duplicate the listening sockets")?;
    if let Some(admin) = admin {
        let socket = admin
            .socket()
            .context("upgrade: cannot duplicate the admin API's socket")?;
        sockets.push((rampart_admin::ADMIN_SOCKET.to_owned(), vec![socket]));
    }
    let udp = handle
        .quic_sockets()
        .context("upgrade: cannot duplicate the HTTP/3 listeners' UDP sockets")?;
    sockets.extend(upgrade::udp_entries(udp));
    upgrade::hand_over(exe, &sockets)?;
    handle.drain();
    Ok(())
}

/// What the main loop was woken for.
enum Event {
    Stop(&'static str),
    Reload,
    Upgrade,
}

/// SIGTERM, SIGINT, SIGHUP and SIGUSR2, caught (and remembered if they arrive early) once
/// installed.
struct Signals {
    rt: tokio::runtime::Runtime,
    term: Signal,
    int: Signal,
    hup: Signal,
    usr2: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let context = rt.enter();
        let term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let usr2 = signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?;
        drop(context);
        Ok(Self {
            rt,
            term,
            int,
            hup,
            usr2,
        })
    }

    /// Blocks until a signal arrives or the admin API asks for an upgrade.
    fn next(&mut self, upgrades: &mut tokio::sync::watch::Receiver<u64>) -> Event {
        self.rt.block_on(async {
            tokio::select! {
                _ = self.term.recv() => Event::Stop("SIGTERM"),
                _ = self.int.recv() => Event::Stop("SIGINT"),
                _ = self.hup.recv() => Event::Reload,
                _ = self.usr2.recv() => Event::Upgrade,
                Ok(()) = upgrades.changed() => Event::Upgrade,
            }
        })
    }
}
