//! Rampart's data plane: listeners and worker threads, HTTP/1.1 and cleartext HTTP/2 on one
//! port, the request pipeline (identity, limits, normalization, routing, stages, handlers), the
//! proxy handler with forwarding headers and upgrade tunnels, the access log, graceful shutdown,
//! and the compiled runtime snapshot shared by all of them.
//!
//! Depends on `rampart-core`, `rampart-config`, `rampart-router`, `rampart-upstream` and
//! `rampart-filters`; nothing depends on it but the binary, the admin API and the test kit.

#![forbid(unsafe_code)]

mod access_log;
mod admin;
pub mod audit;
mod client_body;
mod client_close;
mod config_watch;
mod conn;
mod conn_io;
mod conn_limits;
mod conn_proto;
mod control;
mod explain;
mod gates;
mod handler;
mod head_scan;
mod listener;
mod metrics;
mod normalize;
pub mod otel;
mod pipeline;
mod proxy_header;
mod reuse;
mod route_gates;
mod runtime;
mod sanity;
mod server;
mod stream_scan;
mod timefmt;
pub mod tls;
mod tunnel;
mod worker;

pub use access_log::AccessLog;
pub use control::ReloadReport;
pub use explain::{ExplainReport, explain};
pub use runtime::{CompiledRoute, Runtime, compile};
pub use server::{ADMIN_SOCKET, ServerHandle, StartError, StartOptions, start, start_with};
pub use tls::stats::{HandshakeFailure, TlsStats, TlsStatsSnapshot};
