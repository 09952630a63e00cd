//! Rampart's own HTTP/1.1 server: request heads parsed with httparse, request bodies decoded
//! from the connection as the pipeline reads them, responses written with their first body
//! bytes in one write, and a connection loop that holds no buffer between requests (read
//! buffers come from a per-worker pool).

mod conn;
mod encode;
mod exchange;
mod head;
mod pool;
mod upgrade;
mod wire;

pub(crate) use conn::{Timing, serve};
pub(crate) use exchange::Front;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use head::{Framing, Head, parse as parse_head};
pub(crate) use head::{INLINE_FIELDS, Limits};
pub(crate) use wire::{Wire, WireLock};
