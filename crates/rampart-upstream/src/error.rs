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
    } else if is_tls_failure(err) {
        ErrorKind::UpstreamTls
    } else {
        ErrorKind::UpstreamReset
    };
    ProxyError::new(kind, detail)
}

/// Whether a TLS error is somewhere in `err`'s chain: an alert from the upstream after the
/// handshake (TLS 1.3 refuses a missing client certificate only then) or a bad record.
pub(crate) fn is_tls_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<rustls::Error>() {
            return true;
        }
        // An I/O error hides its payload from `source()`: look at it directly.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some()
        {
            return true;
        }
        cur = e.source();
    }
    false
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
