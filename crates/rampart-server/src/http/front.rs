//! The front end's own checks of a request head, made when hyper dispatches it and handed to
//! the pipeline as its verdict: sizes (414 for a long target, 431 for too many or too large
//! headers), request sanity (400, see [`crate::http::sanity`]) and what the byte-level head
//! scan saw.

use http::Request;
use rampart_core::{ErrorKind, ProxyError};

use crate::http::sanity;
use crate::pipeline::request::Arrival;
use crate::pipeline::session::Session;
use crate::pipeline::settings::Settings;

/// A request as it arrives on `session`: the plane it runs on, its listener there, and what
/// [`check`] found wrong with it (`head_flags`: the head scan's findings).
pub(crate) fn arrive<B>(req: &Request<B>, session: &Session, head_flags: u8) -> Arrival {
    let (plane, listener) = session.plane();
    let refusal = check(req, &plane.settings, head_flags).err().map(Box::new);
    Arrival {
        plane,
        listener,
        refusal,
    }
}

/// Checks `req` against the limits in `settings` and for smuggling shapes; `head_flags` are
/// the head scan's findings for this request.
pub(crate) fn check<B>(
    req: &Request<B>,
    settings: &Settings,
    head_flags: u8,
) -> Result<(), ProxyError> {
    check_limits(req, settings)?;
    sanity::check(req)?;
    sanity::check_head_flags(head_flags)
}

/// 414 for a long target, 431 for too many or too large headers.
fn check_limits<B>(req: &Request<B>, s: &Settings) -> Result<(), ProxyError> {
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > s.max_uri_length {
        return Err(ProxyError::new(
            ErrorKind::UriTooLong,
            format!("request target of {target_len} bytes"),
        ));
    }
    let headers = req.headers();
    if headers.len() > s.max_header_count {
        return Err(ProxyError::new(
            ErrorKind::HeadersTooLarge,
            format!("{} header fields", headers.len()),
        ));
    }
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if size > s.max_header_size {
        return Err(ProxyError::new(
            ErrorKind::HeadersTooLarge,
            format!("{size} bytes of headers"),
        ));
    }
    Ok(())
}
