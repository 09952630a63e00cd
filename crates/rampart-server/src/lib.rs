//! Rampart's data plane: listeners and worker threads, HTTP/1.1 and cleartext HTTP/2 on one
//! port, the request pipeline (identity, limits, normalization, routing, stages, handlers), the
//! proxy handler with forwarding headers and upgrade tunnels, the access log, graceful shutdown,
//! and the compiled runtime snapshot shared by all of them.
//!
//! Depends on `rampart-core`, `rampart-config`, `rampart-router`, `rampart-upstream` and
//! `rampart-filters`; nothing depends on it but the binary, the admin API and the test kit.

mod access_log;
pub mod audit;
mod client_body;
mod conn;
mod conn_io;
mod conn_limits;
mod explain;
mod gates;
mod handler;
mod head_scan;
mod listener;
mod normalize;
pub mod otel;
mod pipeline;
mod proxy_header;
mod route_gates;
mod runtime;
mod sanity;
mod server;
mod timefmt;
pub mod tls;
mod tunnel;
mod worker;

pub use access_log::AccessLog;
pub use explain::{ExplainReport, explain};
pub use runtime::{CompiledRoute, Runtime, compile};
pub use server::{ServerHandle, StartError, start};
pub use tls::stats::{HandshakeFailure, TlsStats, TlsStatsSnapshot};
