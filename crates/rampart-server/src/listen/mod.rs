//! Where connections come in: binding listening sockets (`SO_REUSEPORT`, one per worker), the
//! accept loops with the connection caps, the PROXY protocol header, TLS (certificates by SNI,
//! client verification, early data, passthrough, certificate reload), and the compiled
//! [`edge::Edge`] they read, and the QUIC listener of HTTP/3 (`quic`).
//!
//! Imports `http`, `pipeline` and `observe`; only `runtime` imports it.

pub(crate) mod accept;
pub(crate) mod bind;
mod conn;
pub(crate) mod conn_limits;
pub(crate) mod edge;
mod proxy_header;
pub(crate) mod quic;
mod sockopt;
pub mod tls;
