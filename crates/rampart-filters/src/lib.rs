//! Rampart's built-in stages, one module each, each with the [`StageFactory`] that builds it
//! from a route's config (`AccessStages`, `CorsStages`, `DecompressStages`, ...). A stage is compiled from a
//! route's config once and shared by every worker; it holds only immutable or lock-free state.
//!
//! [`StageFactory`]: rampart_core::StageFactory
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

pub use access::{AccessList, AccessStage, AccessStages};
pub use client_cert::{ClientCertCheck, ClientCertStages};
pub use cors::{CorsStage, CorsStages};
pub use decompress::{DecompressStage, DecompressStages};
pub use geoip::GeoIp;
pub use header_edits::{HeaderEditStage, HeaderEditStages};
pub use limits::{BodyLimit, BodyLimitStages, MethodAllowList, MethodStages};
pub use ratelimit::{RateLimitStage, RateLimitStages, RateLimiter, RateLimiters};
pub use rewrite::{HostRewrite, PathRewrite, RewriteStages};
pub use security_headers::{SecurityHeaderStages, SecurityHeadersStage};
