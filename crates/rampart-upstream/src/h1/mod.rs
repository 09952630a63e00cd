//! Rampart's own HTTP/1.1 upstream client: request encoding, response head parsing and body
//! framing, chunked decoding, and the connection that ties them together.

mod body;
mod conn;
mod decode;
mod encode;

pub(crate) use body::H1Body;
pub(crate) use conn::{ExchangeError, H1Conn};
pub(crate) use decode::{Head, ResponseFraming};
