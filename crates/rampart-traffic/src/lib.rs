//! Traffic management stages: a route's `split` (a share of its requests to other upstreams,
//! sticky per user, with overrides by header or cookie) and `fault` (injected delays and error
//! answers, from the config or from a trusted client's `x-rampart-fault` header).
//!
//! Depends on `rampart-core` and `rampart-config`; never on the server or upstream crates.

#![forbid(unsafe_code)]

mod fault;
mod split;

pub use fault::{FaultStage, FaultStages};
pub use split::{SplitStage, SplitStages};
