//! [`ProxyError`]: why a request did not get a normal response, and which status that means.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue, StatusCode};

/// Which party a failure is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something we refuse.
    Client,
    /// The upstream failed or misbehaved.
    Upstream,
    /// Rampart's own configuration or state decided.
    Proxy,
}

/// The reason a request was refused or failed; each maps to one status and one stable code
/// that appears in error bodies, access logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed request (400).
    BadRequest,
    /// Request target longer than `limits.max_uri_length` (414).
    UriTooLong,
    /// Too many or too large request headers (431).
    HeadersTooLarge,
    /// Request body larger than the limit (413).
    BodyTooLarge,
    /// The route does not allow this method (405).
    MethodNotAllowed,
    /// The request headers did not arrive in time (408).
    HeaderReadTimeout,
    /// The client's request body failed or was cut short while forwarding (400).
    ClientBodyError,
    /// No route matches (404).
    NoRoute,
    /// The upstream has no usable target (503).
    NoTarget,
    /// Connecting to the upstream was refused or failed (502).
    UpstreamConnect,
    /// Connecting to the upstream timed out (504).
    UpstreamConnectTimeout,
    /// The TLS handshake with the upstream failed: untrusted or mismatched certificate,
    /// protocol error (502).
    UpstreamTls,
    /// The upstream reset or closed the connection before answering (502).
    UpstreamReset,
    /// The upstream's answer was not valid HTTP (502).
    UpstreamBadResponse,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// An unexpected internal failure (500).
    Internal,
    /// A rate-limit policy refused the request (429).
    RateLimited,
    /// A Redis rate-limit policy that fails closed could not reach Redis (503).
    RateLimitUnavailable,
    /// A CORS preflight from an origin, or for a method or header, that the route does not
    /// allow (403).
    CorsRejected,
    /// A compressed request body inflated beyond the size or ratio cap (413).
    DecompressionLimit,
    /// A request body's content coding is not one Rampart can decode for inspection (415).
    UnsupportedContentEncoding,
    /// A compressed request body is corrupt (400).
    BadContentEncoding,
    /// The request's Host is not served by the TLS connection's certificate (421).
    MisdirectedRequest,
    /// A request that is not safe to replay arrived in TLS early data (425).
    TooEarly,
    /// The route requires a client certificate that this connection did not present (403).
    ClientCertRejected,
    /// The request's body framing is ambiguous or invalid: `Content-Length` with
    /// `Transfer-Encoding`, differing lengths, a coding other than `chunked`, a bad chunk (400).
    AmbiguousFraming,
    /// A header field that must not be forwarded: bare CR/LF/NUL or other control characters,
    /// HTTP/2 connection-specific fields, an invalid `Host` (400).
    InvalidHeader,
    /// An absolute-form target whose authority differs from `Host` (400).
    HostMismatch,
    /// The client IP is denied, or not allowed, by an `access` list (403).
    IpDenied,
    /// The client's country or autonomous system is denied, or not allowed (403).
    GeoDenied,
    /// The request body arrived slower than `limits.min_body_rate` (408).
    BodyTooSlow,
    /// The client took in no response byte for `timeouts.send` (connection closed; the
    /// status logged is the one whose sending stalled).
    SendTimeout,
    /// A peer that must send a PROXY protocol header sent none (connection closed).
    ProxyProtocolMissing,
    /// A PROXY protocol header was malformed (connection closed).
    ProxyProtocolInvalid,
    /// The upstream's circuit breaker is open: too many requests in flight and the wait queue
    /// is full or timed out (503 with `Retry-After`).
    UpstreamOverloaded,
    /// The upstream's circuit is open after repeated failures: requests fail fast until a
    /// trial succeeds (503 with `Retry-After`).
    CircuitOpen,
    /// A static-file route has no file for the request path (or it is hidden).
    FileNotFound,
    /// A static-file route found something it must not serve (a link out of its root, a
    /// device or other non-regular file).
    FileForbidden,
    /// A precondition of the request (`If-Match`, `If-Unmodified-Since`) did not hold.
    PreconditionFailed,
    /// No range of the request's `Range` lies within the file (416 with `Content-Range`).
    RangeNotSatisfiable,
    /// The route requires authentication and the request carried no acceptable credentials
    /// (401 with `WWW-Authenticate`).
    Unauthenticated,
    /// The request authenticated but the principal may not use this route (403).
    AuthForbidden,
    /// The credentials could not be checked: the provider's keys or auth service are
    /// unavailable (503).
    AuthUnavailable,
}

impl ErrorKind {
    /// The HTTP status this failure is answered with.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BadRequest
            | Self::ClientBodyError
            | Self::BadContentEncoding
            | Self::AmbiguousFraming
            | Self::InvalidHeader
            | Self::HostMismatch
            | Self::ProxyProtocolMissing
            | Self::ProxyProtocolInvalid => StatusCode::BAD_REQUEST,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BodyTooLarge | Self::DecompressionLimit => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::HeaderReadTimeout | Self::BodyTooSlow | Self::SendTimeout => {
                StatusCode::REQUEST_TIMEOUT
            }
            Self::NoRoute | Self::FileNotFound => StatusCode::NOT_FOUND,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::NoTarget
            | Self::RateLimitUnavailable
            | Self::UpstreamOverloaded
            | Self::CircuitOpen
            | Self::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamConnect
            | Self::UpstreamTls
            | Self::UpstreamReset
            | Self::UpstreamBadResponse => StatusCode::BAD_GATEWAY,
            Self::UpstreamConnectTimeout | Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedContentEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            Self::TooEarly => StatusCode::TOO_EARLY,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::ClientCertRejected
            | Self::CorsRejected
            | Self::IpDenied
            | Self::GeoDenied
            | Self::FileForbidden
            | Self::AuthForbidden => StatusCode::FORBIDDEN,
        }
    }

    /// A small dense number per reason (declaration order, stable within one build), for
    /// per-reason counter tables that must not hash or lock on the request path.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Stable snake_case code, used in error bodies, logs and metric labels.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::BodyTooLarge => "body_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::HeaderReadTimeout => "header_read_timeout",
            Self::ClientBodyError => "client_body_error",
            Self::NoRoute => "no_route",
            Self::NoTarget => "no_upstream_target",
            Self::UpstreamOverloaded => "upstream_overloaded",
            Self::CircuitOpen => "circuit_open",
            Self::UpstreamConnect => "upstream_connect_failed",
            Self::UpstreamConnectTimeout => "upstream_connect_timeout",
            Self::UpstreamTls => "upstream_tls_failed",
            Self::UpstreamReset => "upstream_reset",
            Self::UpstreamBadResponse => "upstream_bad_response",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Internal => "internal_error",
            Self::RateLimited => "rate_limited",
            Self::RateLimitUnavailable => "rate_limit_unavailable",
            Self::CorsRejected => "cors_rejected",
            Self::DecompressionLimit => "decompression_limit",
            Self::UnsupportedContentEncoding => "unsupported_content_encoding",
            Self::BadContentEncoding => "bad_content_encoding",
            Self::MisdirectedRequest => "misdirected_request",
            Self::TooEarly => "too_early",
            Self::ClientCertRejected => "client_cert_rejected",
            Self::AmbiguousFraming => "ambiguous_framing",
            Self::InvalidHeader => "invalid_header",
            Self::HostMismatch => "host_mismatch",
            Self::IpDenied => "ip_denied",
            Self::GeoDenied => "geo_denied",
            Self::Unauthenticated => "unauthenticated",
            Self::AuthForbidden => "auth_forbidden",
            Self::AuthUnavailable => "auth_unavailable",
            Self::BodyTooSlow => "body_too_slow",
            Self::SendTimeout => "send_timeout",
            Self::ProxyProtocolMissing => "proxy_protocol_missing",
            Self::ProxyProtocolInvalid => "proxy_protocol_invalid",
            Self::FileNotFound => "file_not_found",
            Self::FileForbidden => "file_forbidden",
            Self::PreconditionFailed => "precondition_failed",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
        }
    }

    /// A short sentence safe to show to clients (it reveals nothing internal).
    #[must_use]
    pub const fn public_message(self) -> &'static str {
        match self {
            Self::BadRequest => "The request is malformed.",
            Self::UriTooLong => "The request target is too long.",
            Self::HeadersTooLarge => "The request headers are too large.",
            Self::BodyTooLarge => "The request body is too large.",
            Self::MethodNotAllowed => "This method is not allowed here.",
            Self::HeaderReadTimeout => "The request took too long to arrive.",
            Self::ClientBodyError => "The request body could not be read.",
            Self::NoRoute => "No route matches this request.",
            Self::FileNotFound => "Not found.",
            Self::FileForbidden => "Access to this file is forbidden.",
            Self::PreconditionFailed => "A precondition of the request did not hold.",
            Self::RangeNotSatisfiable => "The requested range is not satisfiable.",
            Self::NoTarget => "The service is unavailable.",
            Self::UpstreamOverloaded => "The service is overloaded; retry later.",
            Self::CircuitOpen => "The service is failing; retry later.",
            Self::UpstreamConnect
            | Self::UpstreamTls
            | Self::UpstreamReset
            | Self::UpstreamBadResponse => "The upstream service failed to answer.",
            Self::UpstreamConnectTimeout | Self::UpstreamTimeout => {
                "The upstream service did not answer in time."
            }
            Self::Internal => "An internal error occurred.",
            Self::RateLimited => "Too many requests; retry later.",
            Self::RateLimitUnavailable => "The service is temporarily unavailable.",
            Self::CorsRejected => "This cross-origin request is not allowed.",
            Self::DecompressionLimit => "The decompressed request body is too large.",
            Self::UnsupportedContentEncoding => {
                "The request body's content coding is not supported."
            }
            Self::BadContentEncoding => "The request body's compressed data is invalid.",
            Self::MisdirectedRequest => "This connection cannot serve this host.",
            Self::TooEarly => "Retry the request after the TLS handshake.",
            Self::ClientCertRejected => "A valid client certificate is required.",
            Self::AmbiguousFraming => "The request body framing is invalid.",
            Self::InvalidHeader => "The request headers are malformed.",
            Self::HostMismatch => "The request target and Host header disagree.",
            Self::IpDenied | Self::GeoDenied | Self::AuthForbidden => "Access denied.",
            Self::Unauthenticated => "Authentication is required.",
            Self::AuthUnavailable => "Authentication is temporarily unavailable.",
            Self::BodyTooSlow => "The request body arrived too slowly.",
            Self::SendTimeout => "The response was taken in too slowly.",
            Self::ProxyProtocolMissing | Self::ProxyProtocolInvalid => {
                "The connection preamble is invalid."
            }
        }
    }

    /// Who the failure is attributed to.
    #[must_use]
    pub const fn side(self) -> Side {
        match self {
            Self::BadRequest
            | Self::UriTooLong
            | Self::HeadersTooLarge
            | Self::BodyTooLarge
            | Self::MethodNotAllowed
            | Self::HeaderReadTimeout
            | Self::ClientBodyError
            | Self::MisdirectedRequest
            | Self::TooEarly
            | Self::ClientCertRejected
            | Self::RateLimited
            | Self::CorsRejected
            | Self::DecompressionLimit
            | Self::UnsupportedContentEncoding
            | Self::BadContentEncoding
            | Self::AmbiguousFraming
            | Self::InvalidHeader
            | Self::HostMismatch
            | Self::BodyTooSlow
            | Self::SendTimeout
            | Self::ProxyProtocolMissing
            | Self::ProxyProtocolInvalid
            | Self::FileNotFound
            | Self::FileForbidden
            | Self::PreconditionFailed
            | Self::RangeNotSatisfiable
            | Self::Unauthenticated
            | Self::AuthForbidden => Side::Client,
            Self::UpstreamConnect
            | Self::UpstreamConnectTimeout
            | Self::UpstreamTls
            | Self::UpstreamReset
            | Self::UpstreamBadResponse
            | Self::UpstreamTimeout => Side::Upstream,
            Self::NoRoute
            | Self::NoTarget
            | Self::UpstreamOverloaded
            | Self::CircuitOpen
            | Self::Internal
            | Self::RateLimitUnavailable
            | Self::IpDenied
            | Self::GeoDenied
            | Self::AuthUnavailable => Side::Proxy,
        }
    }
}

/// A failure on the way through the proxy: its kind, a detail for the logs (never sent to the
/// client), and whether another target may be tried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", kind.code())]
pub struct ProxyError {
    /// What happened.
    pub kind: ErrorKind,
    /// Internal detail for logs.
    pub detail: Cow<'static, str>,
    /// Whether the request can safely go to another target (nothing was sent yet).
    pub retryable: bool,
    /// For 405: the methods the route allows.
    pub allow: Option<HeaderValue>,
    /// Extra response headers (for 429: `Retry-After` and the `RateLimit-*` fields). Boxed so
    /// that errors without them stay small.
    pub headers: Option<Box<HeaderMap>>,
}

impl ProxyError {
    /// A failure of `kind` with a log detail.
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            retryable: false,
            allow: None,
            headers: None,
        }
    }

    /// Marks the failure as safe to retry on another target.
    #[must_use]
    pub const fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// A 405 listing the `allow`ed methods.
    #[must_use]
    pub fn method_not_allowed(allow: HeaderValue) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(ErrorKind::MethodNotAllowed, "method not in allow_methods")
        }
    }
}

impl ProxyError {
    /// Adds response headers to send with the error.
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = Some(Box::new(headers));
        self
    }
}

impl From<ErrorKind> for ProxyError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind, kind.public_message())
    }
}
