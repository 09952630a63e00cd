//! Errors a client's request body can fail with, and the reason each maps to.

use std::error::Error;

use crate::body::BodyTooLarge;
use crate::error::{ErrorKind, ProxyError};

/// The error a client body fails with when it arrives slower than `limits.min_body_rate`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request body slower than {rate} bytes/s after the grace period")]
pub struct BodyTooSlow {
    /// The minimum rate, in bytes per second.
    pub rate: u64,
}

/// The reason for a client body failure found anywhere in `err`'s source chain:
/// [`ErrorKind::BodyTooLarge`], [`ErrorKind::BodyTooSlow`], or the kind of a [`ProxyError`]
/// that a stage transforming the body failed it with (such as `decompression_limit`); `None`
/// for other failures.
#[must_use]
pub fn client_body_reason(err: &(dyn Error + 'static)) -> Option<ErrorKind> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<BodyTooLarge>() {
            return Some(ErrorKind::BodyTooLarge);
        }
        if e.is::<BodyTooSlow>() {
            return Some(ErrorKind::BodyTooSlow);
        }
        if let Some(refused) = e.downcast_ref::<ProxyError>() {
            return Some(refused.kind);
        }
        cur = e.source();
    }
    None
}
