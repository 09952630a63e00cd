//! Mapping hyper client errors to [`ProxyError`] kinds.

use std::error::Error as StdError;

use rampart_core::{ErrorKind, ProxyError};

/// Classifies a failed exchange with an upstream.
pub(crate) fn classify(err: &hyper::Error, target: &str) -> ProxyError {
    let detail = format!("{target}: {err}{}", source_chain(err));
    let kind = if let Some(kind) = rampart_core::body_error::client_body_reason(err) {
        kind
    } else if err.is_user() || err.is_body_write_aborted() {
        ErrorKind::ClientBodyError
    } else if err.is_parse() || err.is_parse_status() || err.is_parse_too_large() {
        ErrorKind::UpstreamBadResponse
    } else if err.is_timeout() {
        ErrorKind::UpstreamTimeout
    } else {
        ErrorKind::UpstreamReset
    };
    ProxyError::new(kind, detail)
}

fn source_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
