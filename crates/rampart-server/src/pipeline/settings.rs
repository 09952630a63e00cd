//! The process-wide request and connection settings every request and connection reads:
//! size limits, timeouts, and the precomputed `Via` values.

use std::time::Duration;

use http::HeaderValue;

/// Process-wide request and connection settings.
pub(crate) struct Settings {
    pub(crate) max_uri_length: usize,
    pub(crate) max_header_count: usize,
    pub(crate) max_header_size: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    /// `timeouts.send`: the longest a write to the client may make no progress.
    pub(crate) send_timeout: Duration,
    pub(crate) tunnel_idle_timeout: Duration,
    /// `Via` values by the protocol version the message was received with (RFC 9110 §7.6.3).
    pub(crate) via: Via,
}

/// Precomputed `Via` header values, `None` when `server.via` is off.
pub(crate) struct Via {
    pub(crate) http10: Option<HeaderValue>,
    pub(crate) http11: Option<HeaderValue>,
    pub(crate) http2: Option<HeaderValue>,
    pub(crate) http3: Option<HeaderValue>,
}

impl Via {
    /// The value for a message received as `version`.
    pub(crate) const fn for_version(&self, version: http::Version) -> Option<&HeaderValue> {
        match version {
            http::Version::HTTP_2 => self.http2.as_ref(),
            http::Version::HTTP_3 => self.http3.as_ref(),
            http::Version::HTTP_10 | http::Version::HTTP_09 => self.http10.as_ref(),
            _ => self.http11.as_ref(),
        }
    }
}
