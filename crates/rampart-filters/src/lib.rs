//! Rampart's built-in stages, one module each. A stage is compiled from a route's config once
//! and shared by every worker; it holds only immutable or lock-free state.
//!
//! Depends on `rampart-core` and `rampart-config`; never on the server or upstream crates.

pub mod limits;
pub mod rewrite;

pub use limits::{BodyLimit, MethodAllowList};
pub use rewrite::{HostRewrite, PathRewrite};
