//! Observing the data plane: the access log, the audit log, metrics and their Prometheus
//! exposition, OTLP trace export, TLS counters, the connection tracker that a draining worker
//! waits on, and time formatting.
//!
//! A leaf room: it imports no other room, and every room may use it.

pub(crate) mod access_log;
pub mod audit;
pub(crate) mod metrics;
pub mod otel;
pub(crate) mod timefmt;
pub(crate) mod tls_stats;
pub(crate) mod track;
