//! Test support for Rampart: a real gateway started in-process ([`TestGateway`]), real origin
//! servers and raw clients for integration tests, and the module-circle check ([`modgraph`]).
//!
//! Every origin binds `127.0.0.1:0`, runs on the caller's tokio runtime, exposes `addr()`, and
//! stops (its accept loop and every connection task are aborted) when dropped.

#![forbid(unsafe_code)]

pub mod certs;
mod gateway;
mod h1;
pub mod http_client;
mod http_origin;
mod mmdb;
pub mod modgraph;
mod ocsp;
mod ports;
mod recording;
mod scripted;
mod server;
mod ws_origin;

pub use certs::{CertFiles, KeyKind, TestPki};
pub use gateway::{GatewayBuilder, TestGateway};
pub use http_client::{RawConnection, RawResponse, raw_request, raw_request_parsed};
pub use http_origin::HttpOrigin;
pub use mmdb::{MmdbValue, MmdbWriter, asn_record, country_record};
pub use ocsp::OcspStatus;
pub use ports::free_port_closed;
pub use recording::RecordingOrigin;
pub use scripted::{Behavior, ScriptedOrigin};
pub use ws_origin::WsOrigin;

/// Re-export of `reqwest`, the HTTP client tests use against Rampart and the origins.
pub use reqwest;
/// Re-export of `tokio_tungstenite`, the WebSocket client tests use.
pub use tokio_tungstenite;
