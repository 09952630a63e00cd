//! Process-wide sections: `[server]`, `[log]`, `[access_log]`, `[limits]`, `[timeouts]`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

/// `[server]`: worker threads, shutdown, identity.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Worker threads, each with its own event loop and listening sockets; 0 means one per core.
    pub workers: usize,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT before exit.
    pub drain_timeout: HumanDuration,
    /// Name used in the `Via` header sent upstream and to clients.
    pub name: String,
    /// Add a `Via` header (RFC 9110 §7.6.3) to forwarded requests and responses.
    pub via: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            workers: 0,
            drain_timeout: HumanDuration::secs(30),
            name: "rampart".to_owned(),
            via: true,
        }
    }
}

/// Output format of diagnostic logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: diagnostic logs on stderr.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Filter such as `info` or `rampart=debug,hyper=warn`; `--log-level` and `RUST_LOG` override it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Format of access log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// One JSON object per request with every field.
    #[default]
    Json,
    /// The Apache/nginx combined format, plus request id, route and durations.
    Combined,
}

/// `[access_log]`: one line per request.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogSection {
    /// Write access log lines at all.
    pub enabled: bool,
    /// `json` or `combined`.
    pub format: AccessLogFormat,
    /// `stdout`, `stderr`, or a file path (appended to, created if missing).
    pub path: String,
}

impl Default for AccessLogSection {
    fn default() -> Self {
        Self {
            enabled: true,
            format: AccessLogFormat::Json,
            path: "stdout".to_owned(),
        }
    }
}

/// `[limits]`: sizes beyond which a request is refused.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Longest request target (path and query) accepted; longer gets 414.
    pub max_uri_length: ByteSize,
    /// Most request header fields accepted; more gets 431.
    pub max_header_count: usize,
    /// Largest total size of request header names and values; larger gets 431.
    pub max_header_size: ByteSize,
    /// Largest request body accepted (routes may lower or raise it); larger gets 413.
    pub max_body_size: ByteSize,
    /// Most client connections open at once, across all listeners and workers; 0: no limit.
    pub max_connections: usize,
    /// Most client connections open at once from one IP address; 0: no limit.
    pub max_connections_per_ip: usize,
    /// Slowest request body accepted, in bytes per second, after `timeouts.body_grace`; 0: off.
    pub min_body_rate: ByteSize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_uri_length: ByteSize::kib(8),
            max_header_count: 100,
            max_header_size: ByteSize::kib(32),
            max_body_size: ByteSize::mib(10),
            max_connections: 50_000,
            max_connections_per_ip: 1_000,
            min_body_rate: ByteSize::kib(1),
        }
    }
}

/// `[timeouts]`: how long Rampart waits for clients.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsSection {
    /// Time allowed to receive a request's complete header block, from its first byte (or from
    /// accept for the first request); exceeded gets 408 and the connection closes.
    pub header_read: HumanDuration,
    /// How long an idle client connection (no request in flight) is kept open.
    pub keepalive: HumanDuration,
    /// Idle time after which a WebSocket or other upgraded tunnel is closed.
    pub tunnel_idle: HumanDuration,
    /// Time a request body may take before `limits.min_body_rate` applies to it.
    pub body_grace: HumanDuration,
    /// How long a write to a client may make no progress (the client reads nothing) before
    /// the connection is closed.
    pub send: HumanDuration,
}

impl Default for TimeoutsSection {
    fn default() -> Self {
        Self {
            header_read: HumanDuration::secs(10),
            keepalive: HumanDuration::secs(75),
            tunnel_idle: HumanDuration::secs(600),
            body_grace: HumanDuration::secs(10),
            send: HumanDuration::secs(60),
        }
    }
}
