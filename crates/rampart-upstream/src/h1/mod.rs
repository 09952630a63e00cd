//! Rampart's own HTTP/1.1 upstream client: request encoding, response head parsing and body
//! framing, chunked decoding, and the connection that ties them together.

mod body;
mod conn;
mod decode;
mod encode;

pub(crate) use body::H1Body;
pub(crate) use conn::{ExchangeError, H1Conn};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use decode::{BadResponse, HeadScratch, final_response_started, parse_head};
pub(crate) use decode::{Head, ResponseFraming};
