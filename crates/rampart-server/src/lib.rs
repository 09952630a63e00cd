//! Rampart's data plane, in rooms that follow the way a request travels:
//!
//! - `listen`: accepting connections (`SO_REUSEPORT` sockets, connection caps, PROXY
//!   protocol, TLS termination and passthrough);
//! - `http`: the HTTP/1.1 and HTTP/2 front end, which turns each request into the one request
//!   type;
//! - `pipeline`: identity, gates, routing, the route's stages (the Stage API of
//!   `rampart-core`), handlers and tunnels, finishing with metrics and the access log;
//! - `observe`: access log, audit log, metrics, OTLP, TLS counters (a leaf every room uses);
//! - `runtime`: compiling a config into the snapshot the others read, workers, reload, and
//!   the handle the admin API uses.
//!
//! Imports point one way: `runtime → listen → http → pipeline → observe`.
//!
//! Depends on `rampart-core`, `rampart-config`, `rampart-router`, `rampart-upstream` and
//! `rampart-filters`; nothing depends on it but the binary, the admin API and the test kit.

// `deny`, not `forbid`: two audited exceptions carry their proofs of soundness: `listen::sockopt`
// (two socket option calls std and socket2 do not offer) and `http::h1::head` (field values
// httparse already checked, built without checking them again).
#![deny(unsafe_code)]

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod listen;
mod observe;
mod pipeline;
mod runtime;

pub use listen::tls;
pub use observe::access_log::AccessLog;
pub use observe::tls_stats::{HandshakeFailure, TlsStats, TlsStatsSnapshot};
pub use observe::{audit, otel};
pub use pipeline::plane::CompiledRoute;
pub use pipeline::stages::StageRegistry;
pub use rampart_cache::{CacheStore, Purge};
pub use runtime::compile::{Runtime, compile};
pub use runtime::control::ReloadReport;
pub use runtime::explain::{ExplainReport, explain};
pub use runtime::handle::{
    AdminHandle, ListenerProtocol, ListenerStatus, METRICS_CONTENT_TYPE, StageDecisions,
};
pub use runtime::server::{ServerHandle, StartError, StartOptions, start, start_with};
