//! Observability sections owned by the tools: `[tracing]` (OpenTelemetry spans over OTLP) and
//! `[audit_log]` (configuration changes and security decisions).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::units::HumanDuration;

/// How spans travel to the OpenTelemetry collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/HTTP with a protobuf body (`POST {endpoint}`, usually port 4318, path `/v1/traces`).
    #[default]
    Http,
    /// OTLP/gRPC over cleartext HTTP/2 (usually port 4317).
    Grpc,
}

/// `[tracing]`: request spans exported to an OpenTelemetry collector over OTLP.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TracingSection {
    /// Export spans at all. When false, nothing is recorded per request.
    pub enabled: bool,
    /// Collector URL: `http://host:4318/v1/traces` for `http`, `http://host:4317` for `grpc`.
    pub endpoint: Located<String>,
    /// `http` (OTLP/HTTP protobuf) or `grpc` (OTLP/gRPC).
    pub protocol: OtlpProtocol,
    /// Share of new traces that are sampled, 0.0 to 1.0. A request carrying a `traceparent`
    /// follows its parent's sampled flag instead (parent-based sampling).
    pub sampling_ratio: Located<f64>,
    /// `service.name` resource attribute of every span.
    pub service_name: String,
    /// Extra request headers sent to the collector (for example an API key).
    pub headers: BTreeMap<String, String>,
    /// How long an export request may take before it is abandoned (its spans are dropped).
    pub export_timeout: HumanDuration,
}

impl Default for TracingSection {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: Located::new("http://127.0.0.1:4318/v1/traces".to_owned()),
            protocol: OtlpProtocol::Http,
            sampling_ratio: Located::new(1.0),
            service_name: "rampart".to_owned(),
            headers: BTreeMap::new(),
            export_timeout: HumanDuration::secs(10),
        }
    }
}

/// `[audit_log]`: one JSON line per configuration change and per security decision class.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuditLogSection {
    /// Write audit lines at all.
    pub enabled: bool,
    /// `stdout`, `stderr`, or a file path (appended to, created if missing).
    pub path: String,
    /// Security decisions (`access_denied`, `rate_limited`, smuggling rejects…) are written the
    /// first time each reason occurs in an interval of this length, then summarized with a count
    /// at the end of the interval: never one line per request.
    pub security_interval: HumanDuration,
}

impl Default for AuditLogSection {
    fn default() -> Self {
        Self {
            enabled: false,
            path: "stderr".to_owned(),
            security_interval: HumanDuration::secs(60),
        }
    }
}
