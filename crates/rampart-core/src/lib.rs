//! Rampart's shared vocabulary: the [`Body`] type, [`ProxyError`] and its reasons, the Stage
//! API every feature plugs into ([`Stage`], its phases and [`Flow`], [`StageFactory`]),
//! [`RequestCtx`], request IDs and trace context, header helpers, the one place where errors
//! become responses, and the [`timer::LazyTimer`] connection timers share.
//!
//! Depends only on `rampart-config` among Rampart crates; every other Rampart crate may use it.

#![forbid(unsafe_code)]

pub mod body;
pub mod body_error;
pub mod chunked;
pub mod client_ip;
pub mod country;
pub mod ctx;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod headers;
pub mod ids;
pub mod ip_value;
pub mod ipset;
pub mod principal;
pub mod proxy_protocol;
pub mod respond;
pub mod stage;
pub mod timer;

pub use body::{Body, BodySource, BodyTooLarge, BoxError, ClientBody, Streamed};
pub use country::CountryCode;
pub use ctx::{ClientCertInfo, ConnInfo, EarlyData, RequestCtx, TlsInfo};
pub use error::{ErrorKind, ProxyError, Side};
pub use ids::TraceContext;
pub use ipset::IpSet;
pub use principal::Principal;
pub use respond::error_response;
pub use stage::{
    Flow, ForwardBehind, Outcome, Phases, Prepared, Previous, RouteSpec, Stage, StageFactory,
    StageFuture, StageResult,
};
