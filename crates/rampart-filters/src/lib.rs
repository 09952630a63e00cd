//! Rampart's built-in stages, one module each. A stage is compiled from a route's config once
//! and shared by every worker; it holds only immutable or lock-free state.
//!
//! Depends on `rampart-core` and `rampart-config`; never on the server or upstream crates.

#![forbid(unsafe_code)]

pub mod access;
pub mod client_cert;
pub mod cors;
pub mod decompress;
pub mod geoip;
pub mod header_edits;
pub mod limits;
pub mod ratelimit;
pub mod rewrite;
pub mod security_headers;

pub use access::{AccessList, AccessStage};
pub use client_cert::ClientCertCheck;
pub use cors::CorsStage;
pub use geoip::GeoIp;
pub use header_edits::HeaderEditStage;
pub use limits::{BodyLimit, MethodAllowList};
pub use ratelimit::{RateLimitStage, RateLimiter};
pub use rewrite::{HostRewrite, PathRewrite};
pub use security_headers::SecurityHeadersStage;
