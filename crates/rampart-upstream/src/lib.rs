//! Rampart's upstream layer: compiled upstream sets and their targets, target selection,
//! per-worker connection pools (HTTP/1.1 keep-alive and HTTP/2 multiplexing), connecting with
//! timeouts, and forwarding a request with the retry rules.
//!
//! Depends on `rampart-core` and `rampart-config` only; it knows nothing of listeners, routes
//! or stages.

mod connect;
mod error;
mod forward;
mod h1;
mod io;
mod pool;
pub mod proxy_header;
mod set;
pub mod tls;

pub use forward::{ForwardError, Forwarded, forward};
pub use set::{Target, UpstreamSet, UpstreamTlsRt};
