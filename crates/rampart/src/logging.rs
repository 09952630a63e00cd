//! Diagnostic logging on stderr: `--log-level` wins over `RUST_LOG`, which wins over the
//! config's `[log]` section.

use anyhow::Context as _;
use rampart_config::model::{LogFormat, LogSection};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub(crate) fn init(cli_level: Option<&str>, section: &LogSection) -> anyhow::Result<()> {
    let filter = match (cli_level, std::env::var("RUST_LOG").ok()) {
        (Some(level), _) => {
            EnvFilter::try_new(level).with_context(|| format!("invalid --log-level {level:?}"))?
        }
        (None, Some(env)) if !env.is_empty() => {
            EnvFilter::try_new(&env).with_context(|| format!("invalid RUST_LOG {env:?}"))?
        }
        _ => EnvFilter::try_new(&section.level)
            .with_context(|| format!("invalid log.level {:?}", section.level))?,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match section.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
