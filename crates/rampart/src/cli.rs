//! Command-line interface (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  rampart                                     run the embedded default config (127.0.0.1:8080)
  rampart run -c rampart.toml                 run a config file
  rampart check -c rampart.toml               validate a config; exit 0 if it would start
  rampart proxy --listen 127.0.0.1:8080 --to http://127.0.0.1:3000
                                              forward everything, no config file
  rampart explain -c rampart.toml GET http://api.example.com/users/7 -H 'x-env: prod'
                                              show which route takes a request, and why
  rampart doctor -c rampart.toml              check ports, certificates, upstreams, limits
  rampart upgrade --pid 1234                  replace the running binary without dropping a connection
  rampart top --admin http://127.0.0.1:9901   live dashboard of a running Rampart
  rampart config default > rampart.toml       start a config from the embedded default
  rampart config schema > rampart.schema.json JSON Schema for editor completion";

/// Rampart: a security-first, high-performance reverse proxy and API gateway.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// Log filter (`info`, `debug`, `rampart_server=debug,info`); overrides RUST_LOG and the config.
    #[arg(long, global = true, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gateway (with no -c: the embedded default config).
    #[command(after_help = "Examples:\n  rampart run\n  rampart run -c /etc/rampart/rampart.toml")]
    Run(ConfigArg),
    /// Parse, validate and compile a config without binding anything; exit 0 or 1.
    #[command(
        after_help = "Examples:\n  rampart check -c rampart.toml && systemctl reload rampart"
    )]
    Check(RequiredConfig),
    /// Forward every request from one address to one upstream, no config file needed.
    #[command(
        after_help = "Examples:\n  rampart proxy --listen 127.0.0.1:8080 --to http://127.0.0.1:3000\n  rampart proxy --to 10.0.0.5:8000"
    )]
    Proxy(ProxyArgs),
    /// Show which route a request would take, its stages and upstream, and why other routes lost.
    /// Exit 0 when a route takes the request, 3 when none does, 1 on errors.
    #[command(
        after_help = "Examples:\n  rampart explain -c rampart.toml GET http://api.example.com/v1/users\n  rampart explain -c rampart.toml POST /upload -H 'host: files.example.com' --all"
    )]
    Explain(ExplainArgs),
    /// Check the machine and a config: fd limit, ports, certificates, upstreams, kernel settings.
    /// Exit 0 when nothing is worse than info, 2 on warnings, 1 on errors.
    #[command(
        after_help = "Examples:\n  rampart doctor -c rampart.toml\n  rampart doctor -c rampart.toml --format json | jq '.findings[] | select(.severity != \"ok\")'"
    )]
    Doctor(DoctorArgs),
    /// Replace a running Rampart with the binary now at its path, without refusing a connection:
    /// sends SIGUSR2 and waits until the old process has handed over and exited.
    #[command(
        after_help = "Examples:\n  cp rampart-new /usr/local/bin/rampart && rampart upgrade --pid $(pidof -s rampart)\n  curl -X POST http://127.0.0.1:9901/upgrade"
    )]
    Upgrade(UpgradeArgs),
    /// Live dashboard of a running Rampart, read from its admin API (q quits).
    #[command(
        after_help = "Examples:\n  rampart top\n  rampart top --admin http://10.0.0.5:9901 --token \"$ADMIN_TOKEN\"\n  rampart top --once --interval 500\n\nKeys: q quit, tab or ←/→ switch pane (routes, upstreams, listeners), ↑/↓ select."
    )]
    Top(TopArgs),
    /// Print the embedded default config or the config's JSON Schema.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// Config file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RequiredConfig {
    /// Config file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct TopArgs {
    /// Admin API base URL (the `[admin]` listener).
    #[arg(long, default_value = "http://127.0.0.1:9901", value_name = "URL")]
    pub(crate) admin: String,
    /// Bearer token of the admin API (default: $RAMPART_ADMIN_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
    /// Refresh interval in milliseconds (at least 100).
    #[arg(long = "interval", default_value_t = 1000, value_name = "MS")]
    pub(crate) interval_ms: u64,
    /// Print one text snapshot (two reads one interval apart) and exit; needs no terminal.
    #[arg(long)]
    pub(crate) once: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Config file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

/// Output format of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct UpgradeArgs {
    /// Process ID of the running Rampart.
    #[arg(long)]
    pub(crate) pid: i32,
    /// Seconds to wait for the old process to exit.
    #[arg(long, default_value_t = 60)]
    pub(crate) timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub(crate) listen: String,
    /// Upstream to forward to: `http://host:port` or `host:port`.
    #[arg(long, value_name = "URL")]
    pub(crate) to: String,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub(crate) workers: usize,
    /// Do not write an access log.
    #[arg(long)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// Config file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Listener to evaluate on (default: the one whose port the URL names, else the first).
    #[arg(long)]
    pub(crate) listener: Option<String>,
    /// Also print every route's precedence key.
    #[arg(long)]
    pub(crate) all: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Request method.
    pub(crate) method: String,
    /// Request URL (`http://host/path?query`) or path (`/path`; give the host with -H).
    pub(crate) url: String,
    /// Request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub(crate) headers: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the embedded default config.
    Default,
    /// Print the JSON Schema of the config file.
    Schema,
}
