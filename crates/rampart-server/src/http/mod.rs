//! The HTTP/1.1 and HTTP/2 front end: drives a client connection's HTTP (protocol choice,
//! Rampart's own HTTP/1.1 server or hyper's HTTP/2, header and keep-alive timers, TLS write
//! batching),
//! scans request heads byte by byte, checks limits and request sanity, and hands every
//! request to the pipeline as the one request type. HTTP/3 (`h3`) is its sibling.
//!
//! Imports `pipeline` and `observe`; `listen` calls into it.

pub(crate) mod conn;
mod conn_error;
mod front;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzzing;
mod h1;
mod h2;
pub(crate) mod h3;
mod head_scan;
pub(crate) mod io;
mod proto;
mod sanity;
mod stream_scan;
pub(crate) mod write_batch;
