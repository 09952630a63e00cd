//! What each subcommand does.

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use rampart_config::{Config, DEFAULT_CONFIG};

use crate::cli::{Cli, Command, ConfigCommand, ExplainArgs, ProxyArgs};
use crate::refused::Refused;
use crate::serve::run;

/// Runs the command the user asked for.
pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let level = cli.log_level.as_deref();
    match cli.command {
        None => run(&load(None)?, level, true, None),
        Some(Command::Run(args)) => {
            let embedded = args.config.is_none();
            let config = load(args.config.as_deref())?;
            run(&config, level, embedded, args.config)
        }
        Some(Command::Upgrade(args)) => {
            crate::upgrade::signal_and_wait(args.pid, Duration::from_secs(args.timeout))?;
            println!(
                "process {} handed over to its successor and exited",
                args.pid
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Check(args)) => Ok(check(&args.config)),
        Some(Command::Proxy(args)) => run(&proxy_config(&args)?, level, false, None),
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

fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let loaded = match path {
        Some(p) => rampart_config::load_file(p),
        None => rampart_config::load_default(),
    };
    loaded.map_err(|d| anyhow!(Refused(d)))
}

fn check(path: &Path) -> ExitCode {
    let compiled = rampart_config::load_file(path).and_then(|c| rampart_server::compile(&c));
    match compiled {
        Ok(rt) => {
            for warning in rt.warnings() {
                eprintln!("warning: {warning}");
            }
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

/// `rampart explain`'s exit code when no route would take the request (it would get 404, or
/// 400 for a path refused before routing).
const EXPLAIN_NOT_ROUTED: u8 = 3;

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
    Ok(if report.is_routed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXPLAIN_NOT_ROUTED)
    })
}
