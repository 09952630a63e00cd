//! Rampart's upstream layer: compiled upstream sets and their targets, load balancing
//! ([`balance`]), active and passive health with outlier and gray-failure ejection
//! ([`health`]), discovery of targets from DNS (A/AAAA, SRV) or a watched file, retries with a
//! budget, circuit breaking, per-worker connection pools
//! (HTTP/1.1 keep-alive and HTTP/2 multiplexing), connecting with timeouts, and forwarding a
//! request under those rules.
//!
//! Depends on `rampart-core` and `rampart-config` only; it knows nothing of listeners, routes
//! or stages.

pub mod balance;
mod breaker;
mod circuit;
mod connect;
mod discovery;
mod dispatch;
mod error;
mod forward;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod h1;
pub mod health;
mod io;
mod members;
mod pool;
pub mod proxy_header;
mod retry;
mod set;
pub mod tls;

pub use circuit::{CircuitChange, CircuitObserver, CircuitState, CircuitStatus};
pub use dispatch::{ForwardOpts, forward_with};
pub use forward::{ForwardError, Forwarded};
pub use health::{State as TargetState, TargetStatus};
pub use set::{Target, UpstreamSet, UpstreamTlsRt};
