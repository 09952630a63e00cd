//! What each subcommand does.

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context as _, anyhow, bail};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use rampart_config::{Config, DEFAULT_CONFIG, Diagnostics};

use crate::cli::{Cli, Command, ConfigCommand, ExplainArgs, ProxyArgs};
use crate::logging;

/// Runs the command the user asked for.
pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let level = cli.log_level.as_deref();
    match cli.command {
        None => run(&load(None)?, level, true),
        Some(Command::Run(args)) => {
            let embedded = args.config.is_none();
            run(&load(args.config.as_deref())?, level, embedded)
        }
        Some(Command::Check(args)) => Ok(check(&args.config)),
        Some(Command::Proxy(args)) => run(&proxy_config(&args)?, level, false),
        Some(Command::Explain(args)) => explain(&args),
        Some(Command::Top(args)) => crate::top::run(&args),
        Some(Command::Doctor(args)) => Ok(crate::doctor::run(
            &args.config,
            args.format == crate::cli::Format::Json,
        )),
        Some(Command::Config(ConfigCommand::Default)) => {
            print!("{DEFAULT_CONFIG}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Config(ConfigCommand::Schema)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&rampart_config::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A config problem is printed as the diagnostics themselves, not wrapped in another message.
struct Refused(Diagnostics);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config refused:\n{}", self.0)
    }
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Refused {}

fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let loaded = match path {
        Some(p) => rampart_config::load_file(p),
        None => rampart_config::load_default(),
    };
    loaded.map_err(|d| anyhow!(Refused(d)))
}

fn run(config: &Config, level: Option<&str>, embedded: bool) -> anyhow::Result<ExitCode> {
    logging::init(level, &config.raw().log)?;
    // Handled from before the first socket is bound: a supervisor may send SIGTERM as soon as
    // the service says it listens, and that must drain and exit 0, not kill the process.
    let signals = Signals::install()?;
    let handle = rampart_server::start(config).map_err(|e| match e {
        rampart_server::StartError::Config(d) => anyhow!(Refused(d)),
        rampart_server::StartError::Io(e) => anyhow!("cannot start: {e}"),
    })?;
    for (name, addr) in handle.listeners() {
        tracing::info!(listener = %name, "listening on http://{addr}");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        workers = handle.workers(),
        config = %config.source().origin,
        "rampart started"
    );
    if embedded && let Some((_, addr)) = handle.listeners().first() {
        eprintln!(
            "\nRampart is running on its embedded default config. Try:\n  curl http://{addr}/echo\n  curl http://{addr}/proxy/hello\n  curl http://{addr}/healthz\nPrint the config with `rampart config default`; stop with Ctrl-C.\n"
        );
    }
    let signal = signals.wait();
    tracing::info!(
        signal,
        "shutting down: no new connections, draining in-flight requests"
    );
    handle.shutdown();
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and SIGINT, caught (and remembered if they arrive early) once installed.
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let context = rt.enter();
        let term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        drop(context);
        Ok(Self { rt, term, int })
    }

    /// Blocks until SIGTERM or SIGINT (returns at once if one already arrived).
    fn wait(mut self) -> &'static str {
        self.rt.block_on(async {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        })
    }
}

fn check(path: &Path) -> ExitCode {
    let compiled = rampart_config::load_file(path).and_then(|c| rampart_server::compile(&c));
    match compiled {
        Ok(rt) => {
            println!(
                "{}: ok ({}, {}, {})",
                path.display(),
                count(rt.listener_addrs().len(), "listener"),
                count(rt.route_count(), "route"),
                count(rt.upstreams().len(), "upstream")
            );
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprintln!("{d}");
            ExitCode::FAILURE
        }
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The config `rampart proxy` runs: one listener, one upstream, one route.
fn proxy_config(args: &ProxyArgs) -> anyhow::Result<Config> {
    let target = match args.to.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            bail!("--to: scheme {scheme:?} is not supported here; use http://host:port")
        }
        None => args.to.as_str(),
    };
    let target = target.trim_end_matches('/');
    let target = if target.contains(':') && !target.ends_with(']') {
        target.to_owned()
    } else {
        format!("{target}:80")
    };
    let text = format!(
        "[server]\nworkers = {workers}\n\n[access_log]\nenabled = {log}\n\n[[listeners]]\nname = \"proxy\"\nbind = {listen:?}\n\n[[upstreams]]\nname = \"target\"\ntargets = [{target:?}]\n\n[[routes]]\nname = \"all\"\nupstream = \"target\"\n",
        workers = args.workers,
        log = !args.quiet,
        listen = args.listen,
    );
    rampart_config::load_str(&text, "<rampart proxy>").map_err(|d| anyhow!(Refused(d)))
}

fn explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let config = load(Some(&args.config))?;
    let rt = rampart_server::compile(&config).map_err(|d| anyhow!(Refused(d)))?;
    let method = Method::from_str(&args.method)
        .with_context(|| format!("invalid method {:?}", args.method))?;
    let url = Uri::from_str(&args.url).with_context(|| format!("invalid URL {:?}", args.url))?;
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("invalid header {h:?}: expected `name: value`"))?;
        let name = HeaderName::from_str(name.trim())
            .with_context(|| format!("invalid header name in {h:?}"))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("invalid header value in {h:?}"))?;
        headers.append(name, value);
    }
    let report = rampart_server::explain(&rt, args.listener.as_deref(), &method, &url, &headers)
        .map_err(|e| anyhow!(e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.all {
        print!("{report:#}");
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
